"""Requests and bytes of lazy remote navigation, and bulk download under a rate limit.

Against the local NOMAD-compatible server (real HTTP on 127.0.0.1), with the real archives of
../shared (or the samples when it is absent). The baseline for each navigation is what
nomad-lab's client does: download the whole archive (one GET per entry) — its bytes are
measured in the same run. Prints a table; asserts nothing.

Usage: python benchmarks/bench_client.py [--bulk 1000] [--rate 30]
"""

from __future__ import annotations

import argparse
import copy
import secrets
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "nomad-data"


def _new_id() -> str:
    return secrets.token_urlsafe(21)[:28]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bulk", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=30.0, help="server limit, requests/s")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import archivemap
    from archivemap._json import read_json
    from archivemap.remote.fetch import open_archive
    from archivemap.server import Faults, LocalServer

    if SHARED.is_dir():
        schema = archivemap.Schema(SHARED / "metainfo" / "nomad-2.0.0-metainfo.json")
        big = read_json(SHARED / "archives" / "lammps-methane-nvt-md.parsed.archive.json")
        vasp = read_json(SHARED / "archives" / "vasp-si16-singlepoint.recorded.archive.json")
    else:
        schema = archivemap.Schema(REPO / "samples" / "metainfo.json")
        files = sorted((REPO / "samples" / "archives").glob("*.json"))
        big, vasp = read_json(files[0]), read_json(files[-1])
    big_id, vasp_id = big["metadata"]["entry_id"], vasp["metadata"]["entry_id"]
    linker = copy.deepcopy(vasp)
    link_id = _new_id()
    linker["metadata"]["entry_id"] = link_id
    linker["workflow"] = [{"calculation_result_ref": f"../entries/{big_id}/archive#/run/0/calculation/-1"}]
    store = {big_id: big, vasp_id: vasp, link_id: linker}

    rows = []
    with LocalServer(store) as srv:
        client = archivemap.Client(srv.url)

        def measure(name: str, action, baseline_entry: str) -> None:
            srv.clear_log()
            action()
            reqs, nbytes = len(srv.requests), sum(r.response_bytes for r in srv.requests)
            srv.clear_log()
            client.archive_raw(baseline_entry, "*")
            whole = srv.requests[0].response_bytes
            rows.append((name, reqs, nbytes, whole))

        seed = open_archive(client, vasp_id, {"workflow": "*"}, schema=schema)
        measure("seed path workflow→calculation→energy", lambda: seed.workflow[0].calculation_result_ref.energy.total.value, vasp_id)
        md = open_archive(client, big_id, {"metadata": "*"}, schema=schema)
        paths = [f"run[0].calculation[{i}].energy" for i in range(0, 100, 10)]
        measure("10 paths in one entry (prefetch)", lambda: md.prefetch(paths), big_id)
        hop = open_archive(client, link_id, {"workflow": "*"}, schema=schema)
        measure("cross-entry hop (calculation[-1])", lambda: hop.workflow[0].calculation_result_ref.energy.total.value, big_id)

    print(f"{'navigation':<42}{'requests':>9}{'bytes':>12}{'whole archive':>15}{'ratio':>8}")
    for name, reqs, nbytes, whole in rows:
        print(f"{name:<42}{reqs:>9}{nbytes:>12,}{whole:>15,}{nbytes / whole:>8.3f}")

    bulk = {}
    for i in range(args.bulk):
        eid = _new_id()
        archive = copy.copy(vasp)
        archive["metadata"] = dict(vasp["metadata"], entry_id=eid, upload_id=f"bulk{i % 7}")
        bulk[eid] = archive
    with LocalServer(bulk, faults=Faults(rate_limit=args.rate)) as srv:
        client = archivemap.Client(srv.url, rate=args.rate * 0.9, max_concurrency=8)
        start = time.perf_counter()
        got = dict(client.archives_raw({}, {"results": "*"}, page_size=1000, batch_size=10))
        wall = time.perf_counter() - start
        n_requests = len(srv.requests)
        n_503 = sum(1 for r in srv.requests if r.status == 503)
        nbytes = sum(r.response_bytes for r in srv.requests)
    ideal = n_requests / args.rate
    print(f"\nbulk: {len(got)}/{args.bulk} entries, each once: {len(got) == args.bulk}; {n_requests} requests "
          f"({n_503} answered 503), {nbytes:,} bytes")
    print(f"wall {wall:.1f} s vs ideal {ideal:.1f} s (requests ÷ {args.rate:.0f}/s): {wall / ideal:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
