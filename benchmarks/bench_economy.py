"""Requests and bytes of analyses over the shared archives, next to the minimum.

Against the bundled server with NOMAD's ``required`` semantics (``metainfo=`` given, so it
answers as NOMAD's own code does: tests/server/test_conformance.py), real HTTP on 127.0.0.1.
For each scenario the minimum is counted the same way: the fewest requests any client needs
(one listing page plus the archive batches for bulk runs; one request per entry otherwise), and
the bytes of the exact answer. Prints a table; asserts nothing.

    python benchmarks/bench_economy.py [--batch-size 10]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "nomad-data"


def final_energy(archive: Any) -> Any:
    workflow = archive.workflow2
    if workflow is None or workflow.results is None:
        return None
    calc = workflow.results.calculation_result_ref
    if calc is None or calc.energy is None or calc.energy.total is None:
        return None
    return float(calc.energy.total.value.to("eV").magnitude)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", type=int, default=10)
    args = parser.parse_args()
    if not SHARED.is_dir():
        print(f"needs {SHARED}")
        return 1
    os.environ.setdefault("ARCHIVEMAP_CACHE_DIR", tempfile.mkdtemp())
    warnings.simplefilter("ignore")
    import archivemap
    from archivemap.server import LocalServer

    metainfo = SHARED / "metainfo" / "nomad-2.0.0-metainfo.json"
    schema = archivemap.Schema(metainfo)
    golden: dict[str, list[str]] = {}
    for path in sorted((SHARED / "golden").glob("*.json")):
        data = json.loads(path.read_text())
        archive = json.loads((SHARED / "archives" / data["archive"]).read_text())
        golden[archive["metadata"]["entry_id"]] = [c["path"] for c in data["checks"] if c.get("kind") == "quantity"]
    entries = len(golden)
    bulk_minimum = 1 + -(-entries // args.batch_size)
    rows: list[tuple[str, int, int, int, str]] = []
    with LocalServer(SHARED / "archives", metainfo=metainfo) as server:
        url = server.url

        # 1. the seed path: {"workflow": "*"}, then the referenced calculation's energy
        client = archivemap.Client(url)
        archive = client.archive("1WGSYo1RrGFEIcM17Re4kjHC7k6p", {"workflow": "*"}, schema=schema)
        before = (client.requests_made, client.bytes_received)
        archive.workflow[0].calculation_result_ref.energy.total.value  # noqa: B018
        rows.append(("seed path follow-up after {workflow: *}", client.requests_made - before[0],
                     client.bytes_received - before[1], 1, "1 request"))

        # 2. every golden value, in bulk from "*": nothing to fetch after the download
        client = archivemap.Client(url)
        for entry_id, root in client.archives(None, "*", schema=schema, batch_size=args.batch_size):
            for path in golden.get(entry_id, []):
                root.m_get(path)
        rows.append(("golden values, bulk '*' then navigated", client.requests_made, client.bytes_received,
                     bulk_minimum, "listing + batches"))

        # 3. every golden value, lazily from {"metadata": "*"}: one request per value read
        client = archivemap.Client(url)
        values = 0
        for entry_id, root in client.archives(None, {"metadata": "*"}, schema=schema, batch_size=args.batch_size):
            for path in golden.get(entry_id, []):
                root.m_get(path)
                values += 1
        rows.append((f"golden values, lazily from metadata ({values} values)", client.requests_made,
                     client.bytes_received, bulk_minimum + values, "listing + batches + 1 per value"))

        # 4. final energy of every entry: required_for on 2 samples, then one bulk download
        client = archivemap.Client(url)
        analysis = client.analyze(None, final_energy, sample=2, schema=schema, batch_size=args.batch_size)
        rows.append((f"final energy, analyze() (follow-ups: {analysis.follow_ups})", analysis.requests,
                     analysis.bytes, bulk_minimum, "listing + batches (+ sampling)"))
        derived = analysis.required
        client = archivemap.Client(url)
        for _, root in client.archives(None, derived, schema=schema, batch_size=args.batch_size):
            final_energy(root)
        rows.append(("final energy, the derived spec in bulk", client.requests_made, client.bytes_received,
                     bulk_minimum, "listing + batches"))

        # 5. the same with a hand-written minimal spec
        hand = {"workflow2": {"results": {"calculation_result_ref": {"energy": {"total": {"value": "*"}}}}}}
        client = archivemap.Client(url)
        for _, root in client.archives(None, hand, schema=schema, batch_size=args.batch_size):
            final_energy(root)
        rows.append(("final energy, hand-written minimal spec", client.requests_made, client.bytes_received,
                     bulk_minimum, "listing + batches"))

    print(f"{entries} entries, batch size {args.batch_size}; derived spec: {json.dumps(derived)}")
    print(f"{'scenario':58} {'requests':>8} {'minimum':>8} {'ratio':>6} {'bytes':>10}")
    for name, requests, received, minimum, _ in rows:
        print(f"{name:58} {requests:8d} {minimum:8d} {requests / minimum:6.2f} {received:10d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
