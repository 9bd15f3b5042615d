"""Issue 14's figures in one run: load + navigation, custom schemas, references, full read, memory.

Every figure is a ratio against a baseline measured in the same run, interleaved, medians
(the machine is shared: never trust one timing). Nothing is asserted here; the invariants that
do not depend on time are tests/test_perf_invariants.py.

1. Each shared archive (../shared/nomad-data/archives): ``orjson.loads`` of its bytes vs
   ``load`` alone and ``load`` + the navigation of its golden values (every check of
   golden/<name>.json read with ``m_get``, with its unit; every resolved reference followed, as
   tests/test_golden.py does). Target ≤ 1.5x.
2. 1,000 loads of one custom-schema entry (ELN, its own section definitions): classes built
   (``Schema.classes_built``) and traced memory kept between load 100 and load 1,000.
3. Every reference of the large archive resolved: references/s now vs the implementation at
   ``--baseline`` (a git revision, run in a subprocess; see bench_references.py).
4. The large archive (make_large.py, ``--steps 4200`` ≈ 108 MB): full read (parse + every
   quantity of every section) vs its parse (``orjson.loads``); memory kept after the full read
   vs the parsed dict alone (tracemalloc).
5. With ``--nomad-python`` (or ``--make-nomad-venv DIR``, which installs nomad-lab 2.0.0 and
   the plugins the large archive needs into a venv there): nomad-lab's
   ``EntryArchive.m_from_dict`` of the same archive vs ours without parsing.

Usage: python benchmarks/bench_load.py [--steps 4200] [--repeat 3] [--baseline REV]
       [--large PATH] [--nomad-python PY | --make-nomad-venv DIR] [--only N]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "nomad-data"
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_references  # noqa: E402  (beside this file)

ELN_ENTRY = "eln-inheriting-sections.recorded.archive.json"


def _median(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _navigate_golden(root: Any, golden: dict[str, Any]) -> None:
    """Read every golden value and follow every resolved reference (as tests/test_golden.py)."""
    for check in golden["checks"]:
        kind, path = check.get("kind"), check["path"]
        try:
            if kind == "m_def":
                type(root.m_get(path.rpartition(".")[0])).m_qualified_name  # noqa: B018
            elif kind == "definition_reference":
                owner, _, name = path.rpartition(".")
                root.m_get(owner).m_reference(name)
            else:
                value = root.m_get(path)
                if check.get("unit"):
                    value.to(check["unit"])
        except LookupError:
            pass
    for ref in golden["references"]:
        if ref.get("status") != "resolved":
            continue
        if ref.get("kind") == "definition":
            root.m_resolve("#" + ref["section_path"])
        else:
            root.m_resolve("#" + ref["owner_path"]).m_resolve(ref["reference"])


def _read_everything(archive: Any) -> int:
    n = 0
    for section in archive.m_contents():
        for fm in section.m_set_fields():
            try:
                getattr(section, fm.attribute)
            except LookupError:  # a dangling reference: reading it raises, by design
                pass
            n += fm.kind == "quantity"
    return n


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


def shared_archives(schema: Any, rounds: int) -> None:
    from archivemap.archive.load import load
    from archivemap.archive.sources import DirectorySource

    source = DirectorySource(SHARED / "archives", schema)
    print("1. load + golden navigation vs orjson.loads (medians of interleaved rounds)")
    print(f"   {'archive':<44}{'orjson':>10}{'load':>10}{'load+nav':>11}{'load/orj':>10}{'+nav/orj':>10}")
    rows = []
    for path in sorted((SHARED / "archives").glob("*.archive.json")):
        data = path.read_bytes()
        golden = json.loads((SHARED / "golden" / path.name.replace(".archive.json", ".json")).read_text())
        def ours() -> None:
            _navigate_golden(load(data, schema, archives=source), golden)
        ours()  # warm: classes built, units parsed (once per process)
        repeat = 5 if len(data) > 1_000_000 else 50
        base, alone, full = [], [], []
        for _ in range(rounds):
            base.append(_median(lambda: orjson.loads(data), repeat))
            alone.append(_median(lambda: load(data, schema, archives=source), repeat))
            full.append(_median(ours, repeat))
        b, a, f = statistics.median(base), statistics.median(alone), statistics.median(full)
        rows.append((path.name, b, a, f))
        print(f"   {path.name[:42]:<44}{b * 1e3:8.3f}ms{a * 1e3:8.3f}ms{f * 1e3:9.3f}ms{a / b:9.2f}x{f / b:9.2f}x")


def thousand_loads(schema: Any) -> None:
    from archivemap.archive.load import load

    data = (SHARED / "archives" / ELN_ENTRY).read_bytes()
    warnings.simplefilter("ignore")
    for _ in range(100):
        _read_everything(load(data, schema))
    built = schema.classes_built
    gc.collect()
    tracemalloc.start()
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    start = time.perf_counter()
    for _ in range(900):
        _read_everything(load(data, schema))
    per_load = (time.perf_counter() - start) / 900
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(f"\n2. 1,000 loads of {ELN_ENTRY} (custom schema), every property read:")
    print(f"   classes built by loads 101-1,000: {schema.classes_built - built} (the schema had built "
          f"{built} before them); traced memory kept by loads 101-1,000: {(after - before) / 1e3:+.1f} kB "
          f"({(after - before) / 900:+.0f} B per load); {per_load * 1e6:.0f} µs per load + full read")


def references(large: Path, baseline: str, rounds: int) -> None:
    metainfo = SHARED / "metainfo" / "nomad-2.0.0-metainfo.json"
    with tempfile.TemporaryDirectory() as tmp:
        old = bench_references.export_baseline(baseline, Path(tmp))
        before, after = [], []
        n = 0
        for _ in range(rounds):
            b = bench_references.measure(old, large, metainfo, 1)
            a = bench_references.measure(REPO, large, metainfo, 1)
            n = a["references"]
            before += b["times"]
            after += a["times"]
    print(f"\n3. every reference of the large archive resolved ({n} references; medians of {rounds}, interleaved):")
    for label, k in (("wall", 0), ("CPU", 1)):
        tb = statistics.median(t[k] for t in before)
        ta = statistics.median(t[k] for t in after)
        print(f"   {label:4} before ({baseline}): {tb:.3f} s = {n / tb:>9,.0f} refs/s | now: {ta:.3f} s = "
              f"{n / ta:>9,.0f} refs/s | {tb / ta:.1f}x")


def large_archive(schema: Any, large: Path, rounds: int, nomad_python: Path | None) -> None:
    from archivemap.archive.load import load

    data = large.read_bytes()
    base, full = [], []
    n = 0
    for _ in range(rounds):
        base.append(_median(lambda: orjson.loads(data), 1))
        t = time.perf_counter()
        n = _read_everything(load(data, schema))
        full.append(time.perf_counter() - t)
        gc.collect()
    b, f = statistics.median(base), statistics.median(full)
    print(f"\n4. large archive, {len(data) / 1e6:.0f} MB ({large.name}):")
    print(f"   full read (parse + {n} quantities): {f:.2f} s vs orjson.loads {b:.2f} s -> {f / b:.2f}x the parse")
    gc.collect()
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    parsed = orjson.loads(data)
    dict_kept = tracemalloc.get_traced_memory()[0] - start
    del parsed
    gc.collect()
    start = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    archive = load(data, schema)
    _read_everything(archive)
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0] - start
    tracemalloc.stop()
    del archive
    print(f"   memory kept after reading everything: {kept / 1e6:.0f} MB vs the parsed dict alone "
          f"{dict_kept / 1e6:.0f} MB -> {kept / dict_kept:.2f}x")
    if nomad_python:
        theirs = nomad_from_dict(nomad_python, large, rounds)
        ours = f - b  # nomad-lab gets the parsed dict (json.load is not timed)
        print(f"5. nomad-lab EntryArchive.m_from_dict: {theirs:.2f} s; archivemap without parsing: {ours:.2f} s "
              f"-> {theirs / ours:.1f}x faster")
    else:
        print("5. nomad-lab: pass --nomad-python PY or --make-nomad-venv DIR to compare")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=4200, help="make_large.py -n (4200 ≈ 108 MB)")
    parser.add_argument("--large", type=Path, help="an existing large archive (else make_large.py makes one)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--baseline", default="HEAD", help="git revision whose references are compared")
    parser.add_argument("--nomad-python", type=Path, help="a Python with nomad-lab 2.0.0 and plugins")
    parser.add_argument("--make-nomad-venv", type=Path, help="create that venv here first")
    parser.add_argument("--only", type=int, choices=(1, 2, 3, 4), help="run that figure alone (4 includes 5)")
    args = parser.parse_args()
    if args.make_nomad_venv:
        args.nomad_python = make_nomad_venv(args.make_nomad_venv)
    if not SHARED.is_dir():
        print(f"skipped: {SHARED} not found")
        return 0
    import archivemap

    warnings.simplefilter("ignore")
    schema = archivemap.Schema(SHARED / "metainfo" / "nomad-2.0.0-metainfo.json")
    if args.only in (1, 2):
        (shared_archives if args.only == 1 else thousand_loads)(schema, *([args.repeat] if args.only == 1 else []))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        large = args.large
        if large is None:
            large = Path(tmp) / "large.archive.json"
            subprocess.run(
                [sys.executable, str(SHARED / "make_large.py"),
                 str(SHARED / "archives" / "lammps-methane-nvt-md.parsed.archive.json"), str(large),
                 "-n", str(args.steps)],
                check=True, capture_output=True,
            )
        if args.only is None:
            shared_archives(schema, args.repeat)
            thousand_loads(schema)
        if args.only in (None, 3):
            references(large, args.baseline, args.repeat)
        if args.only in (None, 4):
            large_archive(schema, large, args.repeat, args.nomad_python)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
