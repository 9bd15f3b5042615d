"""Dataset lockfiles: a small JSON file that names, and lets anyone reproduce, a downloaded dataset.

Why: a query answers differently next month (entries are added, reprocessed, withdrawn), so a
result computed from "the entries matching Q" can be neither cited nor checked. A lockfile
records what a run actually got: the deployment (API URL and, when ``GET info`` answers, its
version), the query, the normalised ``required`` and its hash, the schema's identity, and per
entry its id, upload id, processing time (``last_processing_time``), licence, the time it was
retrieved and the sha256 of the canonical JSON of the archive data that was used.

:func:`open_dataset` reproduces exactly that dataset from the disk cache
(:mod:`archivemap.remote.cache`) or the server, checks every payload hash, and names the
entries that changed on the server since (reprocessed, or gone). Writing is incremental
(``"complete": false`` until the end, atomically replaced), and downloads go through the disk
cache, so a bulk download killed halfway and started again with the same lock downloads only
what it had not stored yet.

The file is JSON with one entry per line: readable, diffable, and parseable everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from archivemap.archive.context import new_archive
from archivemap.archive.schema import Schema
from archivemap.archive.sections import Section
from archivemap.errors import ArchivemapError, HTTPStatusError, NotDownloadedError, TransportError
from archivemap.remote import client as remote_client
from archivemap.remote.cache import (
    ArchiveCache,
    EntryState,
    cached_archives,
    canonical_json,
    list_entries,
    payload_hash,
    project,
)
from archivemap.remote.fetch import ClientSource, RemoteFetcher
from archivemap.remote.required import Required

__all__ = [
    "Dataset",
    "DatasetIntegrityError",
    "LockWriter",
    "dataset_archives",
    "dataset_raw",
    "deployment_version",
    "lock_header",
    "open_dataset",
    "open_section",
    "read_lock",
]

FORMAT = "archivemap-dataset/1"
#: the lockfile is rewritten after this many new entries (and at the end)
FLUSH_EVERY = 100


class DatasetIntegrityError(ArchivemapError):
    """Data that should reproduce a lockfile's entry does not have its payload hash."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _query_ids(entry_ids: Sequence[str]) -> dict[str, Any]:
    return {"entry_id:any": list(entry_ids)}


def deployment_version(client: Any) -> str | None:
    """The deployment's version from ``GET info`` (``None`` when the server has no such endpoint)."""
    try:
        info = client.get_json("info")
    except (HTTPStatusError, TransportError, ArchivemapError):
        return None
    if isinstance(info, Mapping):
        version = info.get("version")
        if isinstance(version, Mapping):
            return str(version.get("version") or "") or None
        if version is not None:
            return str(version)
    return None


def read_lock(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed lockfile (checked for its format)."""
    data = orjson.loads(Path(path).read_bytes())
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not an archivemap dataset lockfile ({FORMAT})")
    return data


class LockWriter:
    """Writes a lockfile incrementally: the header, then entries as they arrive.

    Entries already in an earlier lock of the same dataset keep their ``retrieved_at`` when
    their payload is unchanged, so resuming does not rewrite history.
    """

    def __init__(self, path: str | os.PathLike[str], header: dict[str, Any], previous: Sequence[Mapping[str, Any]] = ()) -> None:
        self.path = Path(path)
        self.header = header
        self.previous = {str(item["entry_id"]): dict(item) for item in previous}
        self.entries: dict[str, dict[str, Any]] = {}
        self._unflushed = 0

    def add(self, state: EntryState, digest: str) -> None:
        """Record one entry (its payload hash ``digest``)."""
        old = self.previous.get(state.entry_id)
        retrieved = old["retrieved_at"] if old and old.get("payload_hash") == digest else _now()
        record = {
            "entry_id": state.entry_id,
            "upload_id": state.upload_id,
            "processing_time": state.processing_time,
            "payload_hash": digest,
            "retrieved_at": retrieved,
        }
        if state.license is not None:
            record["license"] = state.license
        self.entries[state.entry_id] = record
        self._unflushed += 1
        if self._unflushed >= FLUSH_EVERY:
            self.write(complete=False)

    def write(self, complete: bool) -> None:
        """Atomically (re)write the file; one entry per line."""
        header = {**self.header, "complete": complete, "written_at": _now(), "count": len(self.entries)}
        head = orjson.dumps(header, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
        lines = ",\n".join("    " + orjson.dumps(item, option=orjson.OPT_SORT_KEYS).decode() for item in self.entries.values())
        text = head[:-2] + ',\n  "entries": [\n' + lines + ("\n" if lines else "") + "  ]\n}\n"
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.path)
        self._unflushed = 0


def lock_header(client: Any, query: Any, required: Required, schema: Schema | None) -> dict[str, Any]:
    """The dataset's identity: deployment, query, ``required`` and schema."""
    normalised = orjson.loads(canonical_json(required))
    return {
        "format": FORMAT,
        "deployment": {"url": client.base_url, "version": deployment_version(client)},
        "query": orjson.loads(canonical_json(query)),
        "required": normalised,
        "required_hash": payload_hash(normalised),
        "schema_hash": None if schema is None else schema.identity,
    }


def _same_dataset(lock: Mapping[str, Any], header: Mapping[str, Any]) -> bool:
    return all(lock.get(key) == header.get(key) for key in ("query", "required_hash")) and (
        lock.get("deployment", {}).get("url") == header["deployment"]["url"]
    )


def _states(lock: Mapping[str, Any]) -> list[EntryState]:
    return [
        EntryState(str(item["entry_id"]), item.get("upload_id"), str(item.get("processing_time") or ""), item.get("license"))
        for item in lock.get("entries", [])
    ]


def open_section(client: Any, state: EntryState, archive: dict[str, Any], required: Required, schema: Schema, source: ClientSource) -> Section:
    """The lazy root of an archive that is already anchored (from the cache): no second graft."""
    raw = dict(archive)
    refs = raw.pop("m_ref_archives", None)
    if isinstance(refs, dict) and refs:
        source.remember_ref_archives(refs)
    fetcher = RemoteFetcher(client, state.entry_id, required, source=source)
    return new_archive(raw, schema, source=source, fetcher=fetcher, entry_id=state.entry_id, upload_id=state.upload_id)


def dataset_raw(
    client: Any,
    query: Any,
    required: Required,
    *,
    schema: Schema | None = None,
    lock: str | os.PathLike[str] | None = None,
    cache: ArchiveCache | None = None,
    offline: bool = False,
    page_size: int = 1000,
    **options: Any,
) -> Iterator[tuple[EntryState, dict[str, Any]]]:
    """``(state, archive)`` of a query's entries through the cache, writing ``lock`` if given.

    With an existing, *complete* lock of the same deployment, query and ``required`` the lock
    wins: its entries are replayed (a lockfile pins a dataset; delete it to refresh). An
    incomplete one (an interrupted run) is resumed: the query is listed again and what the
    cache already holds is not downloaded again. Offline, the entries come from the lock.
    """
    query_json = client.query_json(query, schema)
    header = lock_header(client, query_json, required, schema) if lock is not None else None
    previous: dict[str, Any] | None = None
    if lock is not None and Path(lock).exists():
        candidate = read_lock(lock)
        assert header is not None
        if _same_dataset(candidate, header):
            previous = candidate
    if previous is not None and (previous.get("complete") or offline):
        entries = _states(previous)
    elif offline:
        raise NotDownloadedError("offline: listing a query needs the server (give the lockfile of a run)")
    else:
        entries = list_entries(client, query_json, page_size=page_size, owner=options.get("owner", "visible"))
    writer = None
    if lock is not None and header is not None:
        writer = LockWriter(lock, header, previous.get("entries", []) if previous else ())
    for state, archive in cached_archives(client, cache, entries, required, offline=offline, **options):
        if writer is not None:
            writer.add(state, payload_hash(archive))
        yield state, archive
    if writer is not None:
        writer.write(complete=True)


def dataset_archives(
    client: Any,
    query: Any,
    required: Required,
    schema: Schema,
    *,
    lock: str | os.PathLike[str] | None = None,
    **options: Any,
) -> Iterator[tuple[str, Section]]:
    """:func:`dataset_raw` mapped to lazy roots (what ``Client.archives(cache=/lock=)`` returns)."""
    cache = getattr(client, "cache", None)
    if cache is None and lock is not None:
        cache = ArchiveCache()  # resuming a locked download needs somewhere to keep what came
    offline = bool(getattr(client, "offline", False))
    source = ClientSource(client, schema)
    for state, archive in dataset_raw(client, query, required, schema=schema, lock=lock, cache=cache, offline=offline, **options):
        yield state.entry_id, open_section(client, state, archive, required, schema, source)


@dataclass
class Dataset:
    """A lockfile's dataset, reproduced.

    Attributes:
        lock: the parsed lockfile.
        archives: ``entry_id -> archive dict`` in the lock's order, each with its locked hash.
        changed: ``entry_id -> what changed`` for entries the server no longer has as locked
            (reprocessed, or gone); empty when not checked (offline).
        unavailable: ``entry_id -> why`` for locked entries that could not be reproduced
            (not in the cache, and changed on the server or offline).
        checked_server: whether the server was asked what changed.
    """

    lock: dict[str, Any]
    archives: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed: dict[str, str] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    checked_server: bool = False

    @property
    def url(self) -> str:
        """The deployment's API URL."""
        return str(self.lock["deployment"]["url"])

    @property
    def required(self) -> Required:
        """The locked ``required``."""
        required: Required = self.lock["required"]
        return required

    def __len__(self) -> int:
        return len(self.archives)


def open_dataset(
    path: str | os.PathLike[str],
    *,
    client: Any = None,
    cache: ArchiveCache | str | os.PathLike[str] | None = None,
    offline: bool = False,
    strict: bool = True,
    **client_options: Any,
) -> Dataset:
    """Reproduce the dataset a lockfile names, verifying every payload hash.

    Each entry comes from the disk cache when it holds the locked processing state, else from
    the server (only if the server still has that state). Online, the server is asked for the
    current state of every locked entry, and :attr:`Dataset.changed` names each one that
    was reprocessed or is gone.

    Args:
        path: the lockfile.
        client: a client for the lock's deployment (default: a new one for its URL).
        cache: the disk cache (default: the client's, else :func:`~archivemap.remote.cache.default_cache_dir`).
        offline: never contact the server (entries must be in the cache).
        strict: raise :class:`DatasetIntegrityError` when a payload hash does not match
            (otherwise such entries are left out and listed in :attr:`Dataset.unavailable`).
        client_options: for the new client.
    """
    lock = read_lock(path)
    url = str(lock["deployment"]["url"])
    if client is None:
        client = remote_client.Client(url, **client_options)
    if cache is None:
        cache = getattr(client, "cache", None) or ArchiveCache()
    elif not isinstance(cache, ArchiveCache):
        cache = ArchiveCache(cache)
    required: Required = lock["required"]
    states = _states(lock)
    hashes = {str(item["entry_id"]): item.get("payload_hash") for item in lock.get("entries", [])}
    dataset = Dataset(lock)
    current: dict[str, EntryState] = {}
    if not offline:
        dataset.checked_server = True
        ids = [state.entry_id for state in states]
        for start in range(0, len(ids), 500):
            for state in list_entries(client, _query_ids(ids[start : start + 500])):
                current[state.entry_id] = state
        for state in states:
            now = current.get(state.entry_id)
            if now is None:
                dataset.changed[state.entry_id] = "no longer on the server (deleted or not visible)"
            elif now.processing_time != state.processing_time:
                dataset.changed[state.entry_id] = (
                    f"reprocessed on the server: {state.processing_time or '?'} -> {now.processing_time or '?'}"
                )
    found: dict[str, dict[str, Any]] = {}
    fetchable: list[EntryState] = []
    for state in states:
        cached = cache.get(url, state.entry_id)
        mine = None if cached is None else project(cached.archive, required)
        if cached is not None and mine is not None and cached.state == state.processing_time and payload_hash(mine) == hashes[state.entry_id]:
            found[state.entry_id] = mine
        elif offline or state.entry_id in dataset.changed:
            dataset.unavailable[state.entry_id] = "not in the cache" + (
                " (offline)" if offline else f" and {dataset.changed[state.entry_id]}"
            )
        else:
            fetchable.append(state)
    if fetchable:
        # exactly the locked spec, not the cache's wider row: the hash is of what was locked
        by_id = {state.entry_id: state for state in fetchable}
        for start in range(0, len(fetchable), 200):
            part = [state.entry_id for state in fetchable[start : start + 200]]
            for entry_id, answer in client.archives_raw(_query_ids(part), required):
                state = by_id[entry_id]
                archive = project(cache.add(url, entry_id, state.processing_time, state.upload_id, required, answer), required)
                found[entry_id] = archive
    bad = []
    for state in states:
        got = found.get(state.entry_id)
        if got is None:
            dataset.unavailable.setdefault(state.entry_id, "the server has no archive for it")
            continue
        if payload_hash(got) != hashes[state.entry_id]:
            bad.append(state.entry_id)
            dataset.unavailable[state.entry_id] = "payload hash differs from the lock"
            continue
        dataset.archives[state.entry_id] = got
    if bad and strict:
        raise DatasetIntegrityError(f"{len(bad)} entries do not match their locked payload hash: {', '.join(bad[:10])}")
    return dataset


