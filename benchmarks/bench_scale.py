"""Bulk download throughput: one process vs Dask with 2 workers, and cold vs warm disk cache.

Against the local NOMAD-compatible server (real HTTP on 127.0.0.1) serving N entries
synthesised from ../shared's real archives (new entry ids, written to a temporary folder),
with NOMAD's limits switched on in the server (``--rate`` requests/s, 10 concurrent) and a
per-request latency. Both runs are configured with the same limits, so both should come near
the limit and the cluster must not exceed it: the request log's peak rate and concurrency
are printed next to the throughput. Cold: empty disk cache; warm: the same run again (a
metadata listing per shard, no archive request). Prints a table; asserts nothing.

Usage: python benchmarks/bench_scale.py [--entries 2000] [--rate 30] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _peaks(records: list[Any]) -> tuple[int, int]:
    events = sorted([(r.timestamp, 1) for r in records] + [(r.timestamp + r.duration, -1) for r in records])
    current = concurrency = 0
    for _, step in events:
        current += step
        concurrency = max(concurrency, current)
    times = sorted(r.timestamp for r in records)
    rate = start = 0
    for end, moment in enumerate(times):
        while moment - times[start] >= 1.0:
            start += 1
        rate = max(rate, end - start + 1)
    return concurrency, rate


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=30.0, help="the server's limit, requests/s")
    parser.add_argument("--latency", type=float, default=0.05, help="server latency per request, s")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import distributed

    import archivemap.dask as amdask
    from archivemap.remote.cache import ArchiveCache, cached_archives, list_entries
    from archivemap.remote.client import Client
    from archivemap.server import Faults, LocalServer
    from tests.test_cache import synthesise

    required = {"metadata": "*", "results": {"material": "*"}}
    rows: list[tuple[str, float, int, int, int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "archives"
        synthesise(folder, args.entries)
        faults = Faults(rate_limit=args.rate, max_concurrent=10, latency=args.latency)
        with LocalServer(folder, faults=faults, max_log_records=1_000_000) as server:

            def single(cache: Path) -> int:
                client = Client(server.url, max_concurrency=10, rate=max(0.5, args.rate - 1.0))
                states = list_entries(client, None)
                return sum(1 for _ in cached_archives(client, ArchiveCache(cache), states, required))

            def measure(label: str, run: Any) -> None:
                server.clear_log()
                start = time.perf_counter()
                count = run()
                seconds = time.perf_counter() - start
                concurrency, rate = _peaks(server.requests)
                rows.append((label, seconds, count, concurrency, rate))

            cache1 = Path(tmp) / "cache-single"
            measure("1 process, cold cache", lambda: single(cache1))
            measure("1 process, warm cache", lambda: single(cache1))
            with distributed.LocalCluster(
                n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None
            ) as cluster, distributed.Client(cluster):
                cache2 = Path(tmp) / "cache-dask"

                def dask_run() -> int:
                    bag = amdask.read_archives(server.url, None, required, cache=cache2, rate=args.rate)
                    return len(bag.compute())

                measure("Dask 2 workers, cold cache", dask_run)
                measure("Dask 2 workers, warm cache", dask_run)
    print(f"{args.entries} entries; server limits {args.rate:g} requests/s, 10 concurrent; latency {args.latency:g} s")
    print(f"{'run':<28} {'seconds':>8} {'entries/s':>10} {'entries':>8} {'peak conc.':>10} {'peak req/s':>10}")
    for label, seconds, count, concurrency, rate in rows:
        print(f"{label:<28} {seconds:8.2f} {count / seconds:10.1f} {count:8d} {concurrency:10d} {rate:10d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
