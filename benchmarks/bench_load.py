"""Issue 14's figures in one run: load + navigation, custom schemas, references, full read, memory.

Every figure is a ratio against a baseline measured in the same run, interleaved, medians
(the machine is shared: never trust one timing). Nothing is asserted here; the invariants that
do not depend on time are tests/test_perf_invariants.py.

1. Each shared archive (../shared/nomad-data/archives): ``orjson.loads`` of its bytes vs
   ``load`` alone and ``load`` + the navigation of its golden values (every check of
   golden/<name>.json read with ``m_get``, with its unit; every resolved reference followed, as
   tests/test_golden.py does). Target ≤ 1.5x. Beside it, the *floor* any Python library pays:
   ``orjson.loads`` + the same paths walked through the parsed dicts and lists (no types, no
   units, no checks: a regular expression splits each path), and nomad-lab's
   ``json.loads`` + ``EntryArchive.m_from_dict`` + the same navigation (nomad_side.py).
2. 1,000 loads of one custom-schema entry (ELN, its own section definitions): classes built
   (``Schema.classes_built``) and traced memory kept between load 100 and load 1,000.
3. Every reference of the large archive resolved, sections built first (only the resolution is
   timed): references/s now vs the implementation at ``--baseline`` (a git revision, run in a
   subprocess; see bench_references.py), and vs nomad-lab resolving the same references.
4. The large archive (make_large.py, ``--steps 4200`` ≈ 108 MB): full read (parse + every
   quantity of every section) vs its parse (``orjson.loads``); memory kept after the full read
   vs the parsed dict alone (tracemalloc).
5. nomad-lab's ``EntryArchive.m_from_dict`` of the same archive vs ours without parsing.

nomad-lab runs in its own Python (``--nomad-python PY``, or ``--make-nomad-venv DIR`` to
create one: see nomad_side.py), round by round, interleaved with ours.

Usage: python benchmarks/bench_load.py [--steps 4200] [--repeat 3] [--baseline REV]
       [--large PATH] [--nomad-python PY | --make-nomad-venv DIR] [--only N]
"""

from __future__ import annotations

import argparse
import gc
import json
import re
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

import numpy as np
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
    "nomad-parser-plugins-electronic",
]
NOMAD_SIDE = Path(__file__).resolve().with_name("nomad_side.py")


def make_nomad_venv(directory: Path) -> Path:
    """Create a venv with nomad-lab 2.0.0 and the plugins the shared archives need."""
    import venv

    venv.create(directory, with_pip=True)
    python = directory / "bin" / "python"
    constraint = directory / "constraints.txt"
    constraint.write_text("nomad-lab==2.0.0\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-c", str(constraint), *NOMAD_PACKAGES], check=True)
    return python


def nomad(python: Path, *args: object) -> dict[str, Any]:
    """One command of nomad_side.py run by nomad-lab's Python; its JSON answer."""
    out = subprocess.run([str(python), str(NOMAD_SIDE), *map(str, args)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


_SEGMENT = re.compile(r"([^.\[\]]+)(?:\[(-?\d+)\])?")


def _floor_walk(node: Any, path: str) -> Any:
    for match in _SEGMENT.finditer(path):
        node = node[match.group(1)]
        if match.group(2) is not None:
            node = node[int(match.group(2))]
    return node


def _floor_walk_reference(node: Any, reference: str) -> Any:
    for part in reference.lstrip("#/").split("/"):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def floor_navigation(data: bytes, golden: dict[str, Any]) -> None:
    """The floor: ``orjson.loads`` and the golden paths walked through plain dicts and lists.

    What any Python reader pays to reach the same values, with nothing of what a typed reader
    does (no classes, no units, no reference parsing, no errors that say where).
    """
    root = orjson.loads(data)
    for check in golden["checks"]:
        path = check["path"]
        try:
            value = _floor_walk(root, path.rpartition(".")[0] if check.get("kind") == "m_def" else path)
            if check.get("unit"):
                np.asarray(value) * 1.0
        except (KeyError, IndexError, TypeError):
            pass
    for ref in golden["references"]:
        if ref.get("status") != "resolved":
            continue
        try:
            if ref.get("kind") == "definition":
                _floor_walk_reference(root, ref["section_path"])
            else:
                _floor_walk_reference(root, ref["owner_path"])
                if ref["reference"].startswith("#/"):
                    _floor_walk_reference(root, ref["reference"])
        except (KeyError, IndexError, TypeError):
            pass


def shared_archives(schema: Any, rounds: int, nomad_python: Path | None) -> None:
    from archivemap.archive.load import load
    from archivemap.archive.sources import DirectorySource

    source = DirectorySource(SHARED / "archives", schema)
    cases = []
    for path in sorted((SHARED / "archives").glob("*.archive.json")):
        golden = json.loads((SHARED / "golden" / path.name.replace(".archive.json", ".json")).read_text())
        cases.append((path.name, path.read_bytes(), golden))
    times: dict[str, dict[str, list[float]]] = {name: {} for name, _, _ in cases}
    failed: dict[str, str] = {}
    for _ in range(rounds):  # each round measures every variant of every archive, nomad-lab's too
        for name, data, golden in cases:
            def ours(data: bytes = data, golden: dict[str, Any] = golden) -> None:
                _navigate_golden(load(data, schema, archives=source), golden)
            ours()  # warm: classes built, units parsed (once per process)
            repeat = 5 if len(data) > 1_000_000 else 50
            row = times[name]
            row.setdefault("orjson", []).append(_median(lambda: orjson.loads(data), repeat))
            row.setdefault("floor", []).append(_median(lambda: floor_navigation(data, golden), repeat))
            row.setdefault("load", []).append(_median(lambda: load(data, schema, archives=source), repeat))
            row.setdefault("nav", []).append(_median(ours, repeat))
        if nomad_python:
            for name, answer in nomad(nomad_python, "navigate", SHARED / "archives", SHARED / "golden", 20).items():
                if "error" in answer:
                    failed[name] = answer["error"]
                else:
                    times[name].setdefault("nomad", []).append(answer["seconds"])
    print("1. load + golden navigation, medians of interleaved rounds; floor = orjson.loads + the same")
    print("   paths walked in the parsed dicts; nomad = json.loads + EntryArchive.m_from_dict + navigation")
    print(f"   {'archive':<40}{'orjson':>9}{'floor':>9}{'load':>9}{'load+nav':>10}{'nomad':>10}"
          f"{'load/orj':>9}{'+nav/orj':>9}{'floor/orj':>10}{'+nav/flr':>9}{'nomad/us':>9}")
    for name, _, _ in cases:
        m = {k: statistics.median(v) for k, v in times[name].items()}
        b, fl, a, f = m["orjson"], m["floor"], m["load"], m["nav"]
        theirs = f"{m['nomad'] * 1e3:8.2f}ms" if "nomad" in m else f"{'—':>10}"
        versus = f"{m['nomad'] / f:8.0f}x" if "nomad" in m else f"{'—':>9}"
        print(f"   {name[:38]:<40}{b * 1e3:7.3f}ms{fl * 1e3:7.3f}ms{a * 1e3:7.3f}ms{f * 1e3:8.3f}ms{theirs}"
              f"{a / b:8.2f}x{f / b:8.2f}x{fl / b:9.2f}x{f / fl:8.2f}x{versus}")
    for name, error in failed.items():
        why = " (it needs NOMAD's server context to follow it)" if "context" in error or "resolve" in error else ""
        print(f"   nomad-lab failed on {name}{why}: {error}")


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


def references(large: Path, baseline: str, rounds: int, nomad_python: Path | None) -> None:
    metainfo = SHARED / "metainfo" / "nomad-2.0.0-metainfo.json"
    with tempfile.TemporaryDirectory() as tmp:
        old = bench_references.export_baseline(baseline, Path(tmp))
        before, after, theirs = [], [], []
        n = 0
        for _ in range(rounds):
            b = bench_references.measure(old, large, metainfo, 1)
            a = bench_references.measure(REPO, large, metainfo, 1)
            n = a["references"]
            before += b["times"]
            after += a["times"]
            if nomad_python:
                theirs.append(nomad(nomad_python, "references", large, 1)["seconds"])
    print(f"\n3. every reference of the large archive resolved, sections built first ({n} references; "
          f"medians of {rounds}, interleaved):")
    for label, k in (("wall", 0), ("CPU", 1)):
        tb = statistics.median(t[k] for t in before)
        ta = statistics.median(t[k] for t in after)
        print(f"   {label:4} before ({baseline}): {tb:.3f} s = {n / tb:>9,.0f} refs/s | now: {ta:.3f} s = "
              f"{n / ta:>9,.0f} refs/s | {tb / ta:.1f}x")
    if theirs:
        tn, ta = statistics.median(theirs), statistics.median(t[0] for t in after)
        print(f"   nomad-lab (m_proxy_resolve of each): {tn:.3f} s = {n / tn:>9,.0f} refs/s -> archivemap is "
              f"{tn / ta:.1f}x faster (wall)")


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
        theirs = nomad(nomad_python, "from_dict", large, rounds)["seconds"]
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
    if args.only == 1:
        shared_archives(schema, args.repeat, args.nomad_python)
        return 0
    if args.only == 2:
        thousand_loads(schema)
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
            shared_archives(schema, args.repeat, args.nomad_python)
            thousand_loads(schema)
        if args.only in (None, 3):
            references(large, args.baseline, args.repeat, args.nomad_python)
        if args.only in (None, 4):
            large_archive(schema, large, args.repeat, args.nomad_python)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
