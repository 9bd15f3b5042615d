"""nomad-lab 2.0.0's side of the benchmarks: run by a Python that has nomad-lab, never by ours.

bench_load.py and bench_references.py start it in a subprocess, round by round, interleaved
with archivemap's own rounds, so both are measured on the same machine in the same minutes.
It imports nothing from archivemap (that Python need not have it) and prints one JSON line.

Make that Python once (about 3 minutes, 1.5 GB)::

    python -m venv /tmp/nomad-venv
    /tmp/nomad-venv/bin/pip install -c <(echo nomad-lab==2.0.0) nomad-lab==2.0.0 \
        nomad-schema-plugin-run==1.0.5 nomad-schema-plugin-simulation-workflow==1.0.11 \
        nomad-parser-plugins-atomistic==1.0.14 nomad-parser-plugins-electronic

(``bench_load.py --make-nomad-venv DIR`` does the same.) Commands, each printing JSON:

- ``navigate ARCHIVES_DIR GOLDEN_DIR REPEAT``: per archive, the median of ``json.loads`` +
  ``EntryArchive.m_from_dict`` + the navigation of its golden values (every check read, with
  its unit; every resolved reference followed), as archivemap's ``_navigate_golden`` does; an
  archive nomad-lab cannot load without NOMAD's server context gets the error instead.
- ``references ARCHIVE REPEAT``: every reference quantity of the archive resolved, sections
  built first (only the resolution is timed), as bench_references.py does for archivemap.
- ``from_dict ARCHIVE REPEAT``: ``EntryArchive.m_from_dict`` of the parsed archive.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

warnings.simplefilter("ignore")

import runschema  # noqa: E402,F401  (registers the run sections)
import simulationworkflowschema  # noqa: E402,F401  (registers the workflow sections)
from nomad.datamodel import EntryArchive  # noqa: E402
from nomad.metainfo import MProxy, Reference  # noqa: E402

for plugin in ("atomisticparsers.lammps.metainfo", "electronicparsers.vasp.metainfo",
               "electronicparsers.exciting.metainfo", "electronicparsers.fhiaims.metainfo"):
    try:  # the code-specific sections (x_vasp_..., x_exciting_...), when installed
        __import__(plugin)
    except ImportError:
        pass

_SEGMENT = re.compile(r"([^.\[\]]+)(?:\[(-?\d+)\])?")


def _walk(node: Any, path: str) -> Any:
    for match in _SEGMENT.finditer(path):
        node = getattr(node, match.group(1))
        if match.group(2) is not None:
            node = node[int(match.group(2))]
    return node


def _navigate(root: Any, golden: dict[str, Any]) -> None:
    for check in golden["checks"]:
        kind, path = check.get("kind"), check["path"]
        try:
            if kind == "m_def":
                _walk(root, path.rpartition(".")[0]).m_def.qualified_name()
            else:
                value = _walk(root, path)
                if check.get("unit") and value is not None:
                    value.to(check["unit"])
        except (AttributeError, LookupError, TypeError):
            pass
    for ref in golden["references"]:
        if ref.get("status") != "resolved":
            continue
        if ref.get("kind") == "definition":
            root.m_resolve(ref["section_path"]).m_def  # noqa: B018
        else:
            root.m_resolve(ref["owner_path"])
            if ref["reference"].startswith("#/"):
                root.m_resolve(ref["reference"][1:])


def navigate(archives: Path, golden_dir: Path, repeat: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in sorted(archives.glob("*.archive.json")):
        data = path.read_bytes()
        golden = json.loads((golden_dir / path.name.replace(".archive.json", ".json")).read_text())

        def run() -> None:
            _navigate(EntryArchive.m_from_dict(json.loads(data)), golden)

        try:
            run()
        except Exception as exc:  # noqa: BLE001  (reported, not measured)
            out[path.name] = {"error": f"{type(exc).__name__}: {str(exc)[:120]}"}
            continue
        times = []
        for _ in range(repeat if len(data) < 1_000_000 else max(1, repeat // 10)):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        out[path.name] = {"seconds": statistics.median(times)}
    return out


def references(archive: Path, repeat: int) -> dict[str, Any]:
    data = json.loads(archive.read_bytes())
    times, n = [], 0
    for _ in range(repeat):
        root = EntryArchive.m_from_dict(data)
        # which quantities hold references is found before the clock starts: only reading
        # them (and resolving each proxy) is timed
        holders = [
            (section, quantity.name)
            for section in root.m_all_contents(include_self=True)
            for quantity in section.m_def.all_quantities.values()
            if isinstance(quantity.type, Reference) and section.m_is_set(quantity)
        ]
        start = time.perf_counter()
        n = 0
        for section, name in holders:
            value = getattr(section, name)
            for each in value if isinstance(value, list) else [value]:
                if isinstance(each, MProxy):
                    each.m_proxy_resolve()
                n += 1
        times.append(time.perf_counter() - start)
    return {"references": n, "seconds": statistics.median(times)}


def from_dict(archive: Path, repeat: int) -> dict[str, Any]:
    data = json.loads(archive.read_bytes())
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        EntryArchive.m_from_dict(data)
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times)}


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "navigate":
        result = navigate(Path(args[0]), Path(args[1]), int(args[2]))
    elif command == "references":
        result = references(Path(args[0]), int(args[1]))
    elif command == "from_dict":
        result = from_dict(Path(args[0]), int(args[1]))
    else:
        sys.exit(f"unknown command {command!r}")
    print(json.dumps(result))
