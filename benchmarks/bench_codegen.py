"""Benchmark: generate the classes for the whole NOMAD 2.0.0 export (target ≤ 5 s).

Plain script, prints medians and ratios, asserts nothing::

    python benchmarks/bench_codegen.py [--repeat 5]

Baseline in the same run: loading the export into the definition model (which codegen does
first). Needs ../shared/nomad-data next to the repository; exits 0 with a message otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXPORT = REPO.parent / "shared" / "nomad-data" / "metainfo" / "nomad-2.0.0-metainfo.json"
TARGET_S = 5.0


def _time(fn, repeat: int) -> list[float]:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not EXPORT.is_file():
        print(f"skipped: {EXPORT} not found (the shared NOMAD corpus sits next to the repo)")
        return 0

    from archivemap.metainfo.exports import load_environment
    from archivemap_codegen import generate, generate_files
    from archivemap_codegen.layout import plan

    load = _time(lambda: load_environment(EXPORT), args.repeat)
    planned = _time(lambda: plan(load_environment(EXPORT)), args.repeat)
    files = _time(lambda: generate_files(EXPORT), args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        written = _time(lambda: generate(EXPORT, Path(tmp) / "nomad_classes"), args.repeat)
        size = sum(p.stat().st_size for p in (Path(tmp) / "nomad_classes").iterdir())
        count = len(list((Path(tmp) / "nomad_classes").iterdir()))

    base = statistics.median(load)
    print(f"NOMAD 2.0.0 export, {args.repeat} runs, medians ({count} files, {size / 1e6:.1f} MB):")
    for label, times in (
        ("load definitions (baseline)", load),
        ("load + plan", planned),
        ("load + plan + render", files),
        ("generate (write files)", written),
    ):
        med = statistics.median(times)
        print(f"  {label:30s} {med:7.3f} s   {med / base:5.1f}x baseline")
    total = statistics.median(written)
    print(f"  target ≤ {TARGET_S} s: {'met' if total <= TARGET_S else 'NOT met'} ({total / TARGET_S:.0%} of budget)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
