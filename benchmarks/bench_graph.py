"""How long reference_graph takes on a large MD archive, against orjson.loads of the same file.

    python benchmarks/bench_graph.py                 # makes a 20,000-step archive in a temp dir
    python benchmarks/bench_graph.py --archive big.json   # reuse a file made by make_large.py

The archive comes from ../shared/nomad-data/make_large.py (a real LAMMPS run scaled up, every
reference valid). Target: building the graph of 20,000 calculations in <= 2 s. Both timings
run in this process, so the ratio is comparable across machines; nothing is asserted.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "nomad-data"


def make_archive(out: Path, n: int) -> None:
    """Write an n-step archive with the shared generator (not timed)."""
    source = SHARED / "archives" / "lammps-methane-nvt-md.parsed.archive.json"
    cmd = [sys.executable, str(SHARED / "make_large.py"), str(source), str(out), "-n", str(n)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def best_of(repeat: int, func: object) -> tuple[float, float, object]:
    """(first run, best run, last result) in seconds."""
    times = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return times[0], min(times), result


def run(path: Path, repeat: int) -> None:
    from archivemap.graph import reference_graph
    from archivemap.archive.load import load
    from archivemap.archive.schema import Schema

    schema = Schema(SHARED / "metainfo" / "nomad-2.0.0-metainfo.json")
    data = path.read_bytes()
    _, t_json, raw = best_of(repeat, lambda: orjson.loads(data))
    archive = load(raw, schema)
    t_first, t_graph, g = best_of(repeat, lambda: reference_graph(archive))
    n_calc = len(raw["run"][0]["calculation"])  # type: ignore[index]
    print(f"archive: {path.name}, {len(data) / 1e6:.0f} MB, {n_calc} calculations")
    print(f"orjson.loads:        {t_json:7.3f} s (best of {repeat})")
    print(f"reference_graph:     {t_graph:7.3f} s (best of {repeat}; first run {t_first:.3f} s)")
    print(f"ratio graph / loads: {t_graph / t_json:7.3f}")
    print(f"graph: {g.number_of_nodes()} nodes, {g.number_of_edges()} edges")  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archive", type=Path, help="an existing large archive (skips generation)")
    parser.add_argument("-n", type=int, default=20_000, help="calculations to generate (default 20000)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.archive is not None:
        run(args.archive, args.repeat)
        return
    if not SHARED.is_dir():
        sys.exit(f"needs the shared NOMAD data at {SHARED}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"large-{args.n}.archive.json"
        print(f"generating {path.name} with make_large.py (not timed) ...", flush=True)
        make_archive(path, args.n)
        run(path, args.repeat)


if __name__ == "__main__":
    main()
