"""Load + navigation vs orjson.loads, and full materialisation time and memory.

Reports ratios against a baseline measured in the same run (never asserts):

* load + the navigation of the seed story (workflow → calculation → energy in eV, a dotted
  m_get, the last system's positions) vs ``orjson.loads`` of the same bytes, on every real
  archive in ../shared and on a ~100 MB archive made with make_large.py (target ≤ 1.5×);
* reading every quantity of the large archive: time, and peak memory vs the parsed dict
  (target ≤ 2×).

Usage: python benchmarks/bench_load.py [--steps 4200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "nomad-data"


def _median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _navigate(archive) -> None:
    workflow = archive.workflow2 if archive.workflow2 is not None else None
    if archive.workflow:
        calc = archive.workflow[0].calculation_result_ref
        if calc is not None and calc.energy is not None and calc.energy.total is not None:
            calc.energy.total.value.to("eV")
    elif workflow is not None and getattr(workflow, "results", None) is not None:
        getattr(workflow.results, "calculation_result_ref", None)
    if archive.run:
        calcs = archive.run[0].calculation
        if calcs:
            energy = calcs[-1].energy
            if energy is not None and energy.total is not None:
                energy.total.value.to("eV")
        systems = archive.run[0].system
        if systems and systems[-1].atoms is not None:
            systems[-1].atoms.positions  # noqa: B018


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=4200, help="make_large.py -n (4200 ≈ 108 MB)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not SHARED.is_dir():
        print(f"skipped: {SHARED} not found")
        return 0
    import archivemap
    from archivemap.loading import load

    schema = archivemap.Schema(SHARED / "metainfo" / "nomad-2.0.0-metainfo.json")
    warnings.simplefilter("ignore")
    print("file                                        orjson.loads   load+navigate   ratio")
    files = sorted((SHARED / "archives").glob("*.archive.json"))
    with tempfile.TemporaryDirectory() as tmp:
        large = Path(tmp) / "large.archive.json"
        subprocess.run(
            [sys.executable, str(SHARED / "make_large.py"), str(SHARED / "archives" / "lammps-methane-nvt-md.parsed.archive.json"),
             str(large), "-n", str(args.steps)],
            check=True, capture_output=True,
        )
        for path in [*files, large]:
            data = path.read_bytes()
            base = _median(lambda: orjson.loads(data), args.repeat)
            ours = _median(lambda: _navigate(load(data, schema)), args.repeat)
            print(f"{path.name[:42]:<44}{base * 1e3:10.1f} ms {ours * 1e3:12.1f} ms {ours / base:7.2f}x")
        data = large.read_bytes()
        print(f"\nlarge archive: {len(data) / 1e6:.0f} MB")
        tracemalloc.start()
        parsed = orjson.loads(data)
        dict_peak = tracemalloc.get_traced_memory()[1]
        del parsed
        tracemalloc.reset_peak()
        t = time.perf_counter()
        archive = load(data, schema)
        n = 0
        for section in archive.m_contents():
            for _ in section.m_quantities():
                n += 1
        full = time.perf_counter() - t
        full_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"full materialisation: {n} quantities in {full:.2f} s; "
              f"peak {full_peak / 1e6:.0f} MB vs parsed dict {dict_peak / 1e6:.0f} MB ({full_peak / dict_peak:.2f}x)")
        print("nomad-lab m_from_dict: not measured here (no nomad-lab venv); golden/ files record "
              "nomad-lab's own m_from_dict times per archive for comparison")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
