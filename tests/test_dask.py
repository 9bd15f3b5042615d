"""archivemap.dask on a real distributed.LocalCluster (2 worker processes) against LocalServer.

The server injects 503 storms with Retry-After, dropped connections and truncated bodies and
enforces the limits itself; a worker is SIGKILLed mid-run. Checked from the results and the
server's request log: every entry exactly once, server-side concurrency never above 10 and the
request rate (any 1 s window) never above the configured limit, across both workers; a second
run is served from the shared disk cache with no archive request; a lockfile written for the
bag replays offline to the same payloads. No wall-clock assertions.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from archivemap.server import Faults, LocalServer
from tests.test_cache import archive_requests, synthesise

distributed = pytest.importorskip("distributed")
pytest.importorskip("dask.bag")

import archivemap.dask as amdask  # noqa: E402 (after the extra's importorskip)

pytestmark = pytest.mark.shared

#: entries served; 2,000 as issue 10 asks (ARCHIVEMAP_DASK_ENTRIES lowers it for a quick run)
ENTRIES = int(os.environ.get("ARCHIVEMAP_DASK_ENTRIES", "2000"))
RATE_LIMIT = 20.0  # the deployment's configured rate (requests/s), below NOMAD's 30
CONCURRENCY_LIMIT = 10
REQUIRED = {"metadata": "*", "results": {"material": "*"}}
#: storms are long: every request of a storm may be one client's retry of the same call
OPTIONS = {"retries": 12, "backoff_max": 4.0}


def max_concurrency(records: list[Any]) -> int:
    events = sorted([(r.timestamp, 1) for r in records] + [(r.timestamp + r.duration, -1) for r in records])
    current = peak = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


def max_rate(records: list[Any]) -> int:
    """The most requests that arrived within any 1-second window."""
    times = sorted(r.timestamp for r in records)
    peak = start = 0
    for end, moment in enumerate(times):
        while moment - times[start] >= 1.0:
            start += 1
        peak = max(peak, end - start + 1)
    return peak


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    import dask

    with dask.config.set(
        {
            "distributed.scheduler.locks.lease-timeout": "3s",
            "distributed.scheduler.locks.lease-validation-interval": "1s",
            "distributed.scheduler.allowed-failures": 5,
        }
    ):
        with distributed.LocalCluster(
            n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None, memory_limit="1GiB"
        ) as local, distributed.Client(local) as client:
            yield client


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalServer, list[str]]]:
    folder = tmp_path_factory.mktemp("archives")
    ids = synthesise(folder, ENTRIES)
    faults = Faults(
        rate_limit=RATE_LIMIT,
        max_concurrent=CONCURRENCY_LIMIT,
        latency=0.05,
        latency_jitter=0.1,
        retry_after=1,
        fail_probability=0.02,
        drop_probability=0.01,
        truncate_probability=0.01,
        seed=10,
    )
    with LocalServer(folder, faults=faults, max_log_records=1_000_000) as server:
        yield server, ids


def _kill_one_worker(client: Any, server: LocalServer, after: int, killed: list[int]) -> None:
    """SIGKILL one worker process once ``after`` archive requests have been made."""
    while len(archive_requests(server)) < after:
        time.sleep(0.05)
    pid = next(iter(client.run(os.getpid).values()))
    os.kill(pid, signal.SIGKILL)
    killed.append(pid)


def test_cluster_run_exactly_once_within_limits(cluster: Any, served: tuple[LocalServer, list[str]], tmp_path: Path) -> None:
    server, ids = served
    cache = tmp_path / "cache"
    server.clear_log()
    bag = amdask.read_archives(server.url, None, REQUIRED, cache=cache, rate=RATE_LIMIT, shard_size=100, client_options=OPTIONS)
    assert bag.npartitions == -(-len(ids) // 100)
    server.update_faults(fail_next=10, truncate_next=3, drop_next=3)  # a 503 storm (Retry-After) first
    killed: list[int] = []
    killer = threading.Thread(target=_kill_one_worker, args=(cluster, server, max(3, len(ids) // 40), killed), daemon=True)
    killer.start()
    records = bag.compute()
    killer.join(5)
    assert killed, "no worker was killed during the run"
    got = [record["entry_id"] for record in records]
    assert len(got) == len(set(got)), "duplicates"
    assert sorted(got) == ids, "lost entries"
    log = server.requests
    faults = {r.fault for r in log}
    assert {"storm", "drop", "truncate"} <= faults, faults
    print(f"requests={len(log)} peak concurrency={max_concurrency(log)} peak rate={max_rate(log)}/s")
    assert max_concurrency(log) <= CONCURRENCY_LIMIT
    assert max_rate(log) <= RATE_LIMIT
    assert not any(r.fault in ("rate_limit", "concurrency") for r in log), "the server had to refuse requests"

    # second run: the workers share the disk cache, so no archive is downloaded again
    server.clear_log()
    again = amdask.read_archives(server.url, None, REQUIRED, cache=cache, rate=RATE_LIMIT, shard_size=100, client_options=OPTIONS).compute()
    assert {r["entry_id"]: r["payload_hash"] for r in again} == {r["entry_id"]: r["payload_hash"] for r in records}
    assert archive_requests(server) == []

    # the lockfile of the bag, replayed offline from the shared cache, gives the same payloads
    lock = tmp_path / "dataset.lock"
    assert amdask.write_lock(lock, bag, server.url, None, REQUIRED) == len(ids)
    server.clear_log()
    replay = amdask.read_archives(server.url, None, REQUIRED, cache=cache, lock=lock, offline=True).compute()
    assert server.requests == []
    assert {r["entry_id"]: r["payload_hash"] for r in replay} == {r["entry_id"]: r["payload_hash"] for r in records}


def test_dataframe_path(cluster: Any, served: tuple[LocalServer, list[str]], tmp_path: Path) -> None:
    pytest.importorskip("dask.dataframe")  # dask[dataframe] (pandas, pyarrow) is not in the extra
    server, ids = served
    query = {"entry_id:any": ids[:30]}
    frame = amdask.read_dataframe(
        server.url,
        query,
        {"metadata": "*"},
        lambda record: {"entry_id": record["entry_id"], "upload_id": record["archive"]["metadata"]["upload_id"]},
        meta=[("entry_id", str), ("upload_id", str)],
        cache=tmp_path / "cache",
        shard_size=10,
        client_options=OPTIONS,
    )
    table = frame.compute()
    assert sorted(table["entry_id"]) == ids[:30]


def test_import_archivemap_does_not_import_the_extra() -> None:
    """Nothing in the library imports archivemap.dask or distributed (pint itself imports
    ``dask`` when it is installed, so that one is not ours to check)."""
    import subprocess
    import sys

    code = (
        "import sys, archivemap, archivemap.remote.client, archivemap.remote.dataset, archivemap.cli; "
        "print('archivemap.dask' in sys.modules, 'distributed' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


def test_credentials_stay_out_of_the_graph_unless_passed(cluster: Any, served: tuple[LocalServer, list[str]]) -> None:
    import pickle

    server, ids = served
    with pytest.raises(ValueError):
        amdask.read_archives(server.url, {"entry_id:any": ids[:2]}, "*", client_options={"token": "secret"})
    bag = amdask.read_archives(server.url, {"entry_id:any": ids[:2]}, {"metadata": "*"})
    assert b"secret" not in pickle.dumps(dict(bag.__dask_graph__()))
