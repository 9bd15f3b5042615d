"""Scale-out on Dask: a query's archives as a ``dask.bag``, within the deployment's limits.

Why: one Python process is the bottleneck for tens of thousands of entries, but NOMAD's
limits (about 10 concurrent requests and 30 requests/s per IP) apply to every process and
machine behind one address, so simply running N clients multiplies the load by N and gets
the whole cluster refused. Here:

* The driver lists the matching entry ids (and their processing state) up front, ordered by
  id, and cuts them into shards; each shard is one bag partition. A shard is a pure function
  of its ids, so a shard lost with a killed worker is recomputed by Dask's scheduler, never
  appended twice (and each shard de-duplicates by entry id).
* Every worker process builds its own :class:`~archivemap.remote.client.Client` from a small
  picklable spec (URL and options; a token only when the caller passed one to
  :func:`read_archives`, so credentials are never captured in a task graph by accident) and
  keeps it for the shards it runs, so its rate budget is continuous across shards.
* The budget is divided: with ``slots`` processes allowed to download at once (a
  ``distributed.Semaphore`` of that many leases, held per shard, so it holds however many
  workers join), each process gets ``max_concurrency // slots`` concurrent requests and
  ``rate / slots - 1`` requests/s (the ``- 1``: an evenly spaced budget of r/s can put r + 1
  requests into one second, so the sum over slots stays within ``rate``).
* Workers share the disk cache (:mod:`archivemap.remote.cache`, SQLite WAL), so a second
  run of the same analysis downloads nothing; and :func:`write_lock` writes a dataset lockfile
  (:mod:`archivemap.remote.lockfile`) for a bag, replayable by ``read_archives(lock=...)``.

Dask is an optional extra (``pip install 'archivemap[dask]'``); nothing in the library imports
this module, and it imports Dask only when called.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archivemap.errors import DatasetIntegrityError
from archivemap.remote.cache import (
    ArchiveCache,
    EntryState,
    cached_archives,
    list_entries,
    locked_hash,
)
from archivemap.remote.client import Client
from archivemap.remote.lockfile import (
    LockWriter,
    deployment_version,
    lock_header,
    locked_states,
    previous_lock,
    read_lock,
)
from archivemap.remote.required import Required

__all__ = ["ClientSpec", "read_archives", "read_dataframe", "write_lock"]

_INSTALL_HINT = "archivemap.dask needs Dask: pip install 'archivemap[dask]'"
#: NOMAD's per-IP concurrency limit
DEFAULT_MAX_CONCURRENCY = 10
#: below NOMAD's 30 requests/s per IP
DEFAULT_RATE = 25.0


def _bag_module() -> Any:
    try:
        import dask.bag  # noqa: PLC0415 (the optional extra, imported on use)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(_INSTALL_HINT) from exc
    return dask.bag


def _distributed() -> Any:
    try:
        import distributed  # noqa: PLC0415 (the optional extra, imported on use)
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    return distributed


@dataclass(frozen=True)
class ClientSpec:
    """How a worker builds its client: picklable, with a token only when one was given.

    Attributes:
        url: the API base URL.
        token: a bearer token, only if the caller passed it on explicitly.
        max_concurrency: this process's share of the concurrency limit.
        rate: this process's share of the rate limit (requests/s).
        options: further :class:`~archivemap.remote.client.Client` options (no credentials).
        cache_dir: the shared disk cache folder, or None for no cache.
        cache_size: the cache's size limit in bytes.
        offline: answer from the cache only.
    """

    url: str
    token: str | None = field(default=None, repr=False)
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    rate: float = DEFAULT_RATE
    options: tuple[tuple[str, Any], ...] = ()
    cache_dir: str | None = None
    cache_size: int = 2 * 1024**3
    offline: bool = False

    def key(self) -> str:
        """Names this spec in a process (the token only as a hash)."""
        token = hashlib.sha256((self.token or "").encode()).hexdigest()[:16]
        return repr((self.url, token, self.max_concurrency, self.rate, self.options, self.cache_dir, self.offline))

    def build(self) -> Client:
        """A new client for this spec."""
        return Client(self.url, self.token, max_concurrency=self.max_concurrency, rate=self.rate, **dict(self.options))

    def cache(self) -> ArchiveCache | None:
        """The shared disk cache, or None."""
        return None if self.cache_dir is None else ArchiveCache(self.cache_dir, size_limit=self.cache_size)


_clients: dict[str, tuple[Client, ArchiveCache | None]] = {}
_clients_lock = threading.Lock()
_local_slots: dict[str, threading.BoundedSemaphore] = {}


def _client_for(spec: ClientSpec) -> tuple[Client, ArchiveCache | None]:
    """One client (and cache handle) per spec per worker process, kept across shards."""
    with _clients_lock:
        key = f"{os.getpid()}:{spec.key()}"
        if key not in _clients:
            _clients[key] = (spec.build(), spec.cache())
        return _clients[key]


@contextmanager
def _lease(name: str, slots: int) -> Iterator[None]:
    """Hold one of ``slots`` cluster-wide download leases (a ``distributed.Semaphore``).

    Outside a distributed worker (Dask's local schedulers) a process-wide semaphore does the
    same job, since then every task runs in this process.
    """
    distributed = _distributed()
    worker = None
    if distributed is not None:
        try:
            worker = distributed.get_worker()
        except ValueError:
            worker = None
    if worker is not None:
        semaphore = distributed.Semaphore(max_leases=slots, name=name)
        with semaphore:
            yield
        return
    with _clients_lock:
        local = _local_slots.setdefault(name, threading.BoundedSemaphore(slots))
    with local:
        yield


@dataclass(frozen=True)
class _Shard:
    """One partition's work: entry states, what to download, and how."""

    spec: ClientSpec
    required: Required
    lease: str
    slots: int
    entries: tuple[tuple[str, str | None, str, str | None], ...]
    hashes: tuple[tuple[str, str], ...] = ()
    batch_size: int = 10


def _load_shard(shard: _Shard) -> list[dict[str, Any]]:
    """Download (or read from the shared cache) one shard; each entry once."""
    client, cache = _client_for(shard.spec)
    states = [EntryState(*item) for item in shard.entries]
    locked = dict(shard.hashes)
    records: dict[str, dict[str, Any]] = {}
    with _lease(shard.lease, shard.slots):
        stream = cached_archives(
            client, cache, states, shard.required, offline=shard.spec.offline, batch_size=shard.batch_size
        )
        for state, archive in stream:
            digest = locked_hash(archive, shard.required)
            if locked and locked.get(state.entry_id) != digest:
                raise DatasetIntegrityError(f"entry {state.entry_id} does not match its locked payload hash")
            records.setdefault(
                state.entry_id,
                {
                    "entry_id": state.entry_id,
                    "upload_id": state.upload_id,
                    "processing_time": state.processing_time,
                    "license": state.license,
                    "payload_hash": digest,
                    "archive": archive,
                },
            )
    return list(records.values())


def _cluster_slots(max_concurrency: int) -> int:
    """How many processes may download at once: the cluster's workers, at most the limit."""
    distributed = _distributed()
    if distributed is not None:
        try:
            client = distributed.get_client()
        except ValueError:
            client = None
        if client is not None:
            workers = client.scheduler_info().get("workers", {})
            return max(1, min(max_concurrency, len(workers) or 1))
    return 1


def read_archives(
    url: str,
    query: Any = None,
    required: Required = "*",
    *,
    token: str | None = None,
    cache: str | os.PathLike[str] | bool | None = None,
    cache_size: int = 2 * 1024**3,
    lock: str | os.PathLike[str] | None = None,
    offline: bool = False,
    shard_size: int = 100,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    rate: float = DEFAULT_RATE,
    slots: int | None = None,
    batch_size: int = 10,
    client_options: Mapping[str, Any] | None = None,
) -> Any:
    """The archives of a query's entries as a ``dask.bag`` of records, one partition per shard.

    Each record is ``{"entry_id", "upload_id", "processing_time", "license",
    "payload_hash", "archive"}`` (the archive as a dict of the ``required`` part).

    Args:
        url: the deployment's API URL.
        query: the NOMAD query (``None``: all visible entries).
        required: what to download of each archive.
        token: a bearer token for the workers; passed on only because you pass it here.
        cache: the disk cache folder shared by the workers (``True``: the default folder,
            :func:`~archivemap.remote.cache.default_cache_dir`; None/False: no cache).
        cache_size: the cache's size limit in bytes.
        lock: a dataset lockfile: when it exists (complete, same deployment, query and
            ``required``) its entries are replayed and every payload hash is checked;
            write one for a bag with :func:`write_lock`.
        offline: workers answer from the cache only (needs ``lock`` for the entry list).
        shard_size: entries per partition.
        max_concurrency: concurrent requests for the whole cluster (at most 10).
        rate: requests per second for the whole cluster.
        slots: processes downloading at once (default: the cluster's worker count).
        batch_size: archives per ``entries/archive/query`` request.
        client_options: further client options for the driver and the workers (no
            credentials: use ``token``).

    Returns:
        A ``dask.bag.Bag``.
    """
    db = _bag_module()
    options = dict(client_options or {})
    if {"token", "username", "password"} & set(options):
        raise ValueError("pass credentials with token=, never inside client_options")
    max_concurrency = max(1, min(max_concurrency, DEFAULT_MAX_CONCURRENCY))
    slots = max(1, min(slots or _cluster_slots(max_concurrency), max_concurrency))
    per_process_rate = max(0.5, rate / slots - 1.0) if rate > 0 else 0.0
    cache_dir: str | None
    if cache is True:
        cache_dir = str(ArchiveCache().directory)
    elif cache is None or cache is False:
        cache_dir = None
    else:
        cache_dir = str(Path(cache))
    spec = ClientSpec(
        url=url,
        token=token,
        max_concurrency=max(1, max_concurrency // slots),
        rate=per_process_rate,
        options=tuple(sorted(options.items())),
        cache_dir=cache_dir,
        cache_size=cache_size,
        offline=offline,
    )
    driver = Client(url, token, max_concurrency=max_concurrency, rate=max(0.5, rate - 1.0) if rate > 0 else 0.0, **options)
    query_json = driver.query_json(query)
    hashes: dict[str, str] = {}
    states: list[EntryState] | None = None
    if lock is not None and Path(lock).exists():
        locked = read_lock(lock)
        header = lock_header(driver.base_url, None, query_json, required, None)
        if all(locked.get(key) == header[key] for key in ("query", "required_hash")) and locked.get("complete"):
            states = locked_states(locked)
            hashes = {str(item["entry_id"]): str(item["payload_hash"]) for item in locked["entries"]}
    if states is None:
        if offline:
            raise ValueError("offline needs a complete lockfile of this query and required (lock=)")
        states = list_entries(driver, query_json)
    driver.close()
    lease = "archivemap-limits-" + hashlib.sha256(driver.base_url.encode()).hexdigest()[:12]
    shards = []
    for start in range(0, len(states), max(1, shard_size)):
        part = states[start : start + shard_size]
        shards.append(
            _Shard(
                spec=spec,
                required=required,
                lease=lease,
                slots=slots,
                entries=tuple((s.entry_id, s.upload_id, s.processing_time, s.license) for s in part),
                hashes=tuple((s.entry_id, hashes[s.entry_id]) for s in part if s.entry_id in hashes),
                batch_size=batch_size,
            )
        )
    if not shards:
        return db.from_sequence([], npartitions=1)
    return db.from_sequence(shards, partition_size=1).map(_load_shard).flatten()


def write_lock(
    path: str | os.PathLike[str],
    bag: Any,
    url: str,
    query: Any = None,
    required: Required = "*",
    *,
    token: str | None = None,
) -> int:
    """Write the lockfile of a bag from :func:`read_archives`; returns the entry count.

    Computes the bag's records again: with a shared cache that costs no archive request.

    Raises:
        LockfileConflictError: ``path`` holds the lock of another dataset.
    """
    client = Client(url, token)
    try:
        header = lock_header(client.base_url, deployment_version(client), client.query_json(query), required, None)
    finally:
        client.close()
    previous = previous_lock(path, header)  # refuses another dataset's lock
    writer = LockWriter(path, header, previous["entries"] if previous else ())
    records = sorted(bag.map(_lock_record).compute(), key=lambda item: item[0])
    for entry_id, upload_id, processing_time, licence, digest in records:
        writer.add(EntryState(entry_id, upload_id, processing_time, licence), digest)
    writer.write(complete=True)
    return len(records)


def _lock_record(record: Mapping[str, Any]) -> tuple[str, str | None, str, str | None, str]:
    return (
        record["entry_id"],
        record["upload_id"],
        record["processing_time"],
        record.get("license"),
        record["payload_hash"],
    )


def read_dataframe(
    url: str,
    query: Any,
    required: Required,
    columns: Callable[[Mapping[str, Any]], Mapping[str, Any]],
    meta: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
    **options: Any,
) -> Any:
    """:func:`read_archives` as a ``dask.dataframe``: ``columns(record)`` gives one row.

    Needs ``dask[dataframe]`` (pandas, pyarrow) besides the ``dask`` extra.
    """
    bag = read_archives(url, query, required, **options)
    try:
        return bag.map(columns).to_dataframe(meta=meta)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("read_dataframe needs dask[dataframe]: pip install 'dask[dataframe]'") from exc
