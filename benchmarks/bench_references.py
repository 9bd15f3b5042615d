"""Every reference of a large MD archive resolved: time and references/s, before vs after.

"Before" is the implementation committed at ``--baseline`` (default ``HEAD``), exported with
``git archive`` into a temporary folder and run in a subprocess, interleaved with the working
tree's, so the two are measured on the same machine in the same minutes (medians).
nomad-lab is compared when a Python with it is given (``--nomad-python``, see bench_load.py).

Usage: python benchmarks/bench_references.py [--steps 4200] [--repeat 3] [--baseline HEAD]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "nomad-data"

# Runs in a subprocess with the implementation under test first on sys.path.
_MEASURE = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import archivemap
from archivemap.archive.load import load

schema = archivemap.Schema(sys.argv[2])
data = open(sys.argv[1], "rb").read()

out = []
for _ in range(int(sys.argv[3])):
    root = load(data, schema)
    # the sections are built and the reference quantities found before the clock starts:
    # only reading them (which resolves each reference) is timed, as nomad_side.py does
    holders = [
        (section, fm.attribute)
        for section in root.m_contents()
        for fm in section.m_set_fields()
        if fm.kind == "quantity" and fm.is_reference
    ]
    start, cpu = time.perf_counter(), time.process_time()
    n = 0
    for section, attribute in holders:
        value = getattr(section, attribute)
        n += len(value) if isinstance(value, list) else 1
    out.append((time.perf_counter() - start, time.process_time() - cpu))
print(json.dumps({"references": n, "times": out, "module": archivemap.__file__}))
"""


def export_baseline(rev: str, into: Path) -> Path:
    """The ``archivemap`` package as committed at ``rev``, written below ``into``."""
    blob = subprocess.run(["git", "-C", str(REPO), "archive", rev, "archivemap"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    return into


def measure(pythonpath: Path, archive: Path, metainfo: Path, repeat: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(archive), str(metainfo), str(repeat)],
                         check=True, capture_output=True, text=True, env=env, cwd=pythonpath)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=4200)
    parser.add_argument("--repeat", type=int, default=3, help="rounds (each: before, after)")
    parser.add_argument("--baseline", default="HEAD", help="git revision of the 'before' implementation")
    parser.add_argument("--archive", type=Path, help="an existing large archive (else make_large.py makes one)")
    args = parser.parse_args()
    if not SHARED.is_dir():
        print(f"skipped: {SHARED} not found")
        return 0
    metainfo = SHARED / "metainfo" / "nomad-2.0.0-metainfo.json"
    with tempfile.TemporaryDirectory() as tmp:
        archive = args.archive
        if archive is None:
            archive = Path(tmp) / "large.archive.json"
            subprocess.run([sys.executable, str(SHARED / "make_large.py"),
                            str(SHARED / "archives" / "lammps-methane-nvt-md.parsed.archive.json"),
                            str(archive), "-n", str(args.steps)], check=True, capture_output=True)
        baseline = export_baseline(args.baseline, Path(tmp) / "baseline")
        before: list[list[float]] = []
        after: list[list[float]] = []
        n = 0
        for _ in range(args.repeat):  # interleaved
            b = measure(baseline, archive, metainfo, 1)
            a = measure(REPO, archive, metainfo, 1)
            assert a["references"] == b["references"], (a["references"], b["references"])
            n = a["references"]
            before += b["times"]
            after += a["times"]
        print(f"archive: {archive.stat().st_size / 1e6:.0f} MB, {n} references (medians of {args.repeat}, interleaved)")
        for label, k in (("wall", 0), ("CPU", 1)):
            tb = statistics.median(t[k] for t in before)
            ta = statistics.median(t[k] for t in after)
            print(f"  {label:4} before ({args.baseline}): {tb:.3f} s {n / tb:>10,.0f} references/s | "
                  f"after: {ta:.3f} s {n / ta:>10,.0f} references/s | {tb / ta:.1f}x faster")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
