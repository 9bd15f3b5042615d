"""Benchmark: ``import archivemap`` + default schema ready + load of a small archive, cold vs warm.

Plain script, prints medians and ratios, asserts nothing::

    python benchmarks/bench_schema.py [--repeat 5] [--python PY]

Every figure is the wall time of a fresh interpreter (what a user waits for at a prompt),
interleaved round by round so that load on the machine hits every variant alike, against
``python -c pass`` measured in the same run:

- ``cold``: an empty cache folder (``ARCHIVEMAP_CACHE_DIR`` in a new temporary folder each
  time): the embedded export is decompressed, parsed and written to the cache;
- ``warm``: the cache written by an earlier run: the parsed form is read back;
- ``schema only``: the same two without the archive layer (``default_environment()``
  alone), which shows the schema's own cost apart from importing numpy and pint;
- ``import + schema ready``: ``from archivemap.archive.load import default_schema;
  default_schema()``, the goal's figure (numpy and pint are imported by the first value that
  needs them, not here);
- ``import + schema + load``: and a small archive loaded and one energy read in eV, which
  does import numpy and pint;
- ``numpy+pint+attrs``: importing the libraries the first unit conversion needs.

pint imports dask when it is installed (``pint.compat``), which most users do not have; to
measure without it, give ``--python`` a venv that has the core dependencies but no dask::

    python -m venv /tmp/nodask && /tmp/nodask/bin/pip install requests attrs cattrs pint \
        networkx numpy orjson platformdirs lazy_loader
    python benchmarks/bench_schema.py --python /tmp/nodask/bin/python

(archivemap itself comes from this checkout: the interpreter runs in the repository root.)

Goals (issue 14): import + schema ready ≤ 0.1 s warm, ≤ 0.3 s cold.
The user's real cache is never touched: every run uses a temporary ``ARCHIVEMAP_CACHE_DIR``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable  # --python: another interpreter (one without dask, see above)
ARCHIVE = REPO / "samples" / "archives" / "si2-single-point.archive.json"

LOAD = f"""
import archivemap
a = archivemap.load({str(ARCHIVE)!r})
v = a.workflow[0].calculation_result_ref.energy.total.value.to("eV")
"""
# the command line as a user types it (whole process): what every command pays, and one read
CLI_HELP = """
import contextlib, io
from archivemap.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    main(["--help"])
"""
CLI_SHOW = f"""
from archivemap.cli import main
main(["show", {str(ARCHIVE)!r}, "workflow[0].calculation_result_ref.energy.total.value", "--unit", "eV"])
"""
# issue 14's "import + schema ready": what a user waits for before the first load
SCHEMA_READY = """
from archivemap.archive.load import default_schema
default_schema()
"""
SCHEMA_ONLY = """
from archivemap.metainfo.default import default_environment
default_environment().section("nomad.datamodel.datamodel.EntryArchive").all_properties
"""
FLOOR = "import numpy, pint, attrs"
# nomad-lab's "schema ready": its datamodel and the plugins the shared archives use, imported
NOMAD_READY = """
import warnings
warnings.simplefilter("ignore")
from nomad.datamodel import EntryArchive
import runschema, simulationworkflowschema, atomisticparsers.lammps.metainfo
import electronicparsers.vasp.metainfo, electronicparsers.exciting.metainfo, electronicparsers.fhiaims.metainfo
EntryArchive.m_def.all_properties
"""
BREAKDOWN = """
import time, gc
t0 = time.perf_counter()
from archivemap.metainfo import cache, default
t1 = time.perf_counter()
sha = default.default_sha256()
t2 = time.perf_counter()
env = default.read_default_environment()
t3 = time.perf_counter()
env.section("nomad.datamodel.datamodel.EntryArchive").all_properties
t4 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3)
"""


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _run(code: str, cache: str, python: str | None = None) -> tuple[float, float, str]:
    """Wall and CPU time (user + system) of a fresh interpreter running ``code``, and its output.

    CPU time is reported too because on a shared 2-core machine wall time includes waiting
    for a core; CPU time does not.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "ARCHIVEMAP_METAINFO")}
    env["ARCHIVEMAP_CACHE_DIR"] = cache
    cpu, start = _cpu(), time.perf_counter()
    out = subprocess.run([python or PYTHON, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=REPO)
    return time.perf_counter() - start, _cpu() - cpu, out.stdout


def _wall(code: str, cache: str) -> tuple[float, str]:
    wall, _cpu_s, out = _run(code, cache)
    return wall, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--python", default=sys.executable, help="the interpreter to measure (default: this one)")
    parser.add_argument("--nomad-python", help="a Python with nomad-lab 2.0.0 and plugins (see nomad_side.py)")
    args = parser.parse_args()
    global PYTHON
    PYTHON = args.python
    dask = subprocess.run([PYTHON, "-c", "import importlib.util as u; print(u.find_spec('dask') is not None)"],
                          capture_output=True, text=True, check=True).stdout.strip()
    print(f"interpreter: {PYTHON} (dask installed: {dask})")

    with tempfile.TemporaryDirectory() as tmp:
        warm_dir = str(Path(tmp) / "warm")
        _wall(SCHEMA_ONLY, warm_dir)  # writes the cache the warm runs read
        _wall("import archivemap, numpy, pint", warm_dir)  # bytecode compiled, files in the page cache
        rows: dict[str, list[float]] = {}
        cpus: dict[str, list[float]] = {}
        cold_breakdown: list[list[float]] = []
        warm_breakdown: list[list[float]] = []
        for i in range(args.repeat):
            cold = lambda tag: str(Path(tmp) / f"cold-{tag}-{i}")  # noqa: E731
            for name, code, where in (
                ("python -c pass", "pass", warm_dir),
                ("import archivemap", "import archivemap", warm_dir),
                ("import numpy+pint+attrs (floor)", FLOOR, warm_dir),
                ("schema only, cold", SCHEMA_ONLY, cold("s")),
                ("schema only, warm", SCHEMA_ONLY, warm_dir),
                ("import + schema ready, cold", SCHEMA_READY, cold("r")),
                ("import + schema ready, warm", SCHEMA_READY, warm_dir),
                ("import + schema + load, cold", LOAD, cold("l")),
                ("import + schema + load, warm", LOAD, warm_dir),
                ("archivemap --help", CLI_HELP, warm_dir),
                ("archivemap show ... --unit eV, warm", CLI_SHOW, warm_dir),
            ):
                wall, cpu, _out = _run(code, where)
                rows.setdefault(name, []).append(wall)
                cpus.setdefault(name, []).append(cpu)
            if args.nomad_python:
                for name, code in (("nomad-lab: python -c pass", "pass"), ("nomad-lab: import + schema ready", NOMAD_READY)):
                    wall, cpu, _out = _run(code, warm_dir, args.nomad_python)
                    rows.setdefault(name, []).append(wall)
                    cpus.setdefault(name, []).append(cpu)
            cold_breakdown.append([float(x) for x in _wall(BREAKDOWN, cold("b"))[1].split()])
            warm_breakdown.append([float(x) for x in _wall(BREAKDOWN, warm_dir)[1].split()])

    med = {name: statistics.median(times) for name, times in rows.items()}
    cpu = {name: statistics.median(times) for name, times in cpus.items()}
    base, cbase = med["python -c pass"], cpu["python -c pass"]
    print(f"fresh interpreters, medians of {args.repeat} interleaved rounds ({os.cpu_count()} cores):")
    print(f"  {'':34} {'wall':>8} {'- pass':>8} {'x pass':>7} {'cpu':>8} {'- pass':>8} {'x pass':>7}")
    for name, value in med.items():
        c = cpu[name]
        print(f"  {name:34} {value:7.3f}s {value - base:7.3f}s {value / base:6.1f}x "
              f"{c:7.3f}s {c - cbase:7.3f}s {c / cbase:6.1f}x")
    goal = {"import + schema ready, warm": 0.1, "import + schema ready, cold": 0.3}
    for name, limit in goal.items():
        extra = med[name] - base
        print(f"  goal {name}: +{extra:.3f} s over python -c pass, goal ≤ {limit} s: {'met' if extra <= limit else 'NOT met'}")
    if "nomad-lab: import + schema ready" in med:
        theirs = med["nomad-lab: import + schema ready"] - med["nomad-lab: python -c pass"]
        for name in ("import + schema ready, warm", "import + schema ready, cold"):
            ours = med[name] - base
            print(f"  nomad-lab import + schema ready: +{theirs:.3f} s over its python -c pass -> "
                  f"{theirs / ours:.0f}x archivemap's {name.split(', ')[1]} +{ours:.3f} s")
    labels = ("import metainfo layer", "hash package file", "Environment: cache, or gunzip+parse+build+pack",
              "EntryArchive.all_properties")
    for title, runs in (("cold", cold_breakdown), ("warm", warm_breakdown)):
        parts = ", ".join(f"{label} {statistics.median(r[j] for r in runs) * 1000:.1f} ms" for j, label in enumerate(labels))
        print(f"  schema ready, in process, {title}: {parts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
