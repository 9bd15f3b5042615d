"""Benchmark: importing generated classes, and ``import archivemap``.

Plain script, prints medians and ratios, asserts nothing::

    python benchmarks/bench_import.py [--repeat 5]

1. Generates the NOMAD 2.0.0 export into a temp dir, then imports every generated module in
   a fresh interpreter (target ≤ 1.5 s with compiled ``.pyc``; the first, cold run that
   compiles them is reported apart). Baseline: the same interpreter importing only the
   archivemap modules the generated code needs.
2. ``import archivemap`` vs ``python -c pass`` (target ≤ 0.3 s extra).

Needs ../shared/nomad-data next to the repository for part 1; exits 0 with a message otherwise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXPORT = REPO.parent / "shared" / "nomad-data" / "metainfo" / "nomad-2.0.0-metainfo.json"

_IMPORT_ALL = """
import importlib, time
start = time.perf_counter()
import archivemap.metainfo.fields, archivemap.archive.sections, attrs, numpy, pint
base = time.perf_counter()
import nomad_classes as pkg
for name in sorted(pkg.MODULES):
    importlib.import_module("nomad_classes." + name)
end = time.perf_counter()
print(base - start, end - base, len(pkg.CLASSES))
"""


def _wall(argv: list[str], cwd: Path | None = None) -> tuple[float, str]:
    # Users' interpreters cache bytecode; a sandbox may set PYTHONDONTWRITEBYTECODE, which
    # would make every "warm" run recompile 6 MB of source.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    start = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=cwd, env=env)
    return time.perf_counter() - start, out.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    py = sys.executable

    print("import archivemap vs python -c pass (wall time of a fresh interpreter, medians):")
    bare = statistics.median(_wall([py, "-c", "pass"])[0] for _ in range(args.repeat))
    am = statistics.median(_wall([py, "-c", "import archivemap"])[0] for _ in range(args.repeat))
    print(f"  python -c pass          {bare:6.3f} s")
    print(f"  import archivemap       {am:6.3f} s   +{am - bare:.3f} s ({am / bare:.1f}x)   target ≤ +0.3 s: "
          f"{'met' if am - bare <= 0.3 else 'NOT met'}")

    if not EXPORT.is_file():
        print(f"skipped generated-package import: {EXPORT} not found")
        return 0
    from archivemap_codegen import generate

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(EXPORT, root / "nomad_classes")
        runs = []
        for _ in range(args.repeat + 1):
            wall, out = _wall([py, "-c", _IMPORT_ALL], cwd=root)
            base_s, modules_s, n = out.split()
            runs.append((wall, float(base_s), float(modules_s), int(n)))
        cold, warm = runs[0], runs[1:]
        med = lambda i: statistics.median(r[i] for r in warm)  # noqa: E731
        print(f"every module of the NOMAD 2.0.0 package ({warm[0][3]} classes), fresh interpreter:")
        print(f"  cold (compiles .pyc)    modules {cold[2]:6.3f} s   wall {cold[0]:6.3f} s")
        print(f"  warm, median            modules {med(2):6.3f} s   wall {med(0):6.3f} s")
        print(f"  baseline (archivemap, attrs, numpy, pint imports) {med(1):6.3f} s;"
              f" modules/baseline {med(2) / med(1):.1f}x")
        print(f"  target ≤ 1.5 s for the modules: {'met' if med(2) <= 1.5 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
