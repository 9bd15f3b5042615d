"""Load + navigation vs orjson.loads, and full materialisation time and memory.

Reports ratios against a baseline measured in the same run (never asserts):

* load + the navigation of the seed story (workflow → calculation → energy in eV, a dotted
  m_get, the last system's positions) vs ``orjson.loads`` of the same bytes, on every real
  archive in ../shared and on a ~100 MB archive made with make_large.py (target ≤ 1.5×);
* reading every quantity of the large archive: time, and peak memory vs the parsed dict
  (target ≤ 2×).

* the same full materialisation vs nomad-lab 2.0.0's ``EntryArchive.m_from_dict`` (target
  ≥ 5× faster), when a Python with nomad-lab is given (``--nomad-python``) or made on request
  (``--make-nomad-venv DIR`` installs nomad-lab 2.0.0 and the run/workflow/atomistic plugins).

Usage: python benchmarks/bench_load.py [--steps 4200] [--repeat 3] [--nomad-python PY]
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


NOMAD_PACKAGES = [
    "nomad-lab==2.0.0",
    "nomad-schema-plugin-run==1.0.5",
    "nomad-schema-plugin-simulation-workflow==1.0.11",
    "nomad-parser-plugins-atomistic==1.0.14",
]

_NOMAD_SCRIPT = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
import runschema, simulationworkflowschema  # noqa: F401  (register the plugin sections)
import atomisticparsers.lammps.metainfo  # noqa: F401
from nomad.datamodel import EntryArchive
data = json.load(open(sys.argv[1]))
times = []
for _ in range(int(sys.argv[2])):
    start = time.perf_counter()
    EntryArchive.m_from_dict(data)
    times.append(time.perf_counter() - start)
print(sorted(times)[len(times) // 2])
"""


def make_nomad_venv(directory: Path) -> Path:
    """Create a venv with nomad-lab 2.0.0 and the plugins the large archive needs."""
    import venv

    venv.create(directory, with_pip=True)
    python = directory / "bin" / "python"
    constraint = directory / "constraints.txt"
    constraint.write_text("nomad-lab==2.0.0\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-c", str(constraint), *NOMAD_PACKAGES], check=True)
    return python


def nomad_from_dict(python: Path, archive: Path, repeat: int) -> float:
    out = subprocess.run([str(python), "-c", _NOMAD_SCRIPT, str(archive), str(repeat)],
                         check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def _touch_everything(archive) -> int:
    n = 0
    for section in archive.m_contents():
        for fm in section._m_set_fields():
            try:
                getattr(section, fm.attribute)
            except LookupError:  # a dangling reference: reading it raises, by design
                pass
            n += fm.kind == "quantity"
    return n


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=4200, help="make_large.py -n (4200 ≈ 108 MB)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--nomad-python", type=Path, help="a Python with nomad-lab 2.0.0 and plugins")
    parser.add_argument("--make-nomad-venv", type=Path, help="create that venv here first")
    args = parser.parse_args()
    if args.make_nomad_venv:
        args.nomad_python = make_nomad_venv(args.make_nomad_venv)
    if not SHARED.is_dir():
        print(f"skipped: {SHARED} not found")
        return 0
    import archivemap
    from archivemap.archive.load import load

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
            repeat = args.repeat if len(data) > 10_000_000 else max(args.repeat, 200)
            _navigate(load(data, schema))  # warm: classes built, units parsed (once per process)
            base = _median(lambda: orjson.loads(data), repeat)
            ours = _median(lambda: _navigate(load(data, schema)), repeat)
            print(f"{path.name[:42]:<44}{base * 1e3:10.3f} ms {ours * 1e3:12.3f} ms {ours / base:7.2f}x")
        data = large.read_bytes()
        print(f"\nlarge archive: {len(data) / 1e6:.0f} MB")
        tracemalloc.start()
        parsed = orjson.loads(data)
        dict_peak = tracemalloc.get_traced_memory()[1]
        dict_kept = tracemalloc.get_traced_memory()[0]
        del parsed
        tracemalloc.reset_peak()
        archive = load(data, schema)
        n = _touch_everything(archive)
        full_peak = tracemalloc.get_traced_memory()[1]
        full_kept = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        del archive
        full = _median(lambda: _touch_everything(load(data, schema)), args.repeat)
        print(f"full materialisation (parse + every quantity): {n} quantities in {full:.2f} s; "
              f"peak {full_peak / 1e6:.0f} MB vs parsed dict {dict_peak / 1e6:.0f} MB ({full_peak / dict_peak:.2f}x); "
              f"kept after reading everything {full_kept / 1e6:.0f} MB vs the dict alone "
              f"{dict_kept / 1e6:.0f} MB ({full_kept / dict_kept:.2f}x)")
        if args.nomad_python:
            # nomad-lab gets the parsed dict (json.load is not timed), so add ours without parsing
            parsed_time = _median(lambda: orjson.loads(data), args.repeat)
            theirs = nomad_from_dict(args.nomad_python, large, args.repeat)
            ours = full - parsed_time
            print(f"nomad-lab EntryArchive.m_from_dict: {theirs:.2f} s; archivemap without parsing: {ours:.2f} s "
                  f"-> {theirs / ours:.1f}x faster")
        else:
            print("nomad-lab m_from_dict: pass --nomad-python or --make-nomad-venv DIR to compare")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
