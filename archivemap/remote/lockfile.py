"""Dataset lockfiles: the format, and the cached, locked bulk download ``Client.archives`` uses.

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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import orjson

from archivemap._json import dump_json, parse_json
from archivemap.archive.context import new_archive
from archivemap.archive.schema import Schema
from archivemap.archive.sections import Section
from archivemap.errors import ArchivemapError, HTTPStatusError, NotDownloadedError, TransportError
from archivemap.remote.cache import (
    ArchiveCache,
    ArchiveClient,
    EntryState,
    cached_archives,
    canonical_json,
    list_entries,
    payload_hash,
)
from archivemap.remote.fetch import ArchiveAPI, ClientSource, RemoteFetcher
from archivemap.remote.required import Required

__all__ = [
    "FORMAT",
    "DatasetIntegrityError",
    "LockWriter",
    "dataset_archives",
    "dataset_raw",
    "deployment_version",
    "entry_ids_query",
    "lock_header",
    "locked_states",
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


class DatasetClient(ArchiveClient, ArchiveAPI, Protocol):
    """What a locked dataset needs of a client (:class:`~archivemap.remote.client.Client`).

    A protocol rather than the class: the client writes locks through this module, so the
    module cannot import it back.
    """

    cache: ArchiveCache | None
    offline: bool

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any: ...

    def query_json(self, query: Any, schema: Any = None, order_by: str | None = None) -> dict[str, Any]: ...


def entry_ids_query(entry_ids: Sequence[str]) -> dict[str, Any]:
    return {"entry_id:any": list(entry_ids)}


def deployment_version(client: DatasetClient) -> str | None:
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
    data = parse_json(Path(path).read_bytes(), str(path))
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
        lines = ",\n".join("    " + dump_json(item, sort_keys=True).decode() for item in self.entries.values())
        text = head[:-2] + ',\n  "entries": [\n' + lines + ("\n" if lines else "") + "  ]\n}\n"
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.path)
        self._unflushed = 0


def lock_header(
    url: str, version: str | None, query: Any, required: Required, schema: Schema | None
) -> dict[str, Any]:
    """The dataset's identity: deployment (API URL and version), query, ``required`` and schema.

    The version is given, not asked for here, so that a header can be made where the server
    is not to be asked (a Dask driver that only compares headers).
    """
    normalised = parse_json(canonical_json(required))
    return {
        "format": FORMAT,
        "deployment": {"url": url, "version": version},
        "query": parse_json(canonical_json(query)),
        "required": normalised,
        "required_hash": payload_hash(normalised),
        "schema_hash": None if schema is None else schema.identity,
    }


def _same_dataset(lock: Mapping[str, Any], header: Mapping[str, Any]) -> bool:
    return all(lock.get(key) == header.get(key) for key in ("query", "required_hash")) and (
        lock.get("deployment", {}).get("url") == header["deployment"]["url"]
    )


def locked_states(lock: Mapping[str, Any]) -> list[EntryState]:
    return [
        EntryState(str(item["entry_id"]), item.get("upload_id"), str(item.get("processing_time") or ""), item.get("license"))
        for item in lock.get("entries", [])
    ]


def open_section(client: ArchiveAPI, state: EntryState, archive: dict[str, Any], required: Required, schema: Schema, source: ClientSource) -> Section:
    """The lazy root of an archive that is already anchored (from the cache): no second graft."""
    raw = dict(archive)
    refs = raw.pop("m_ref_archives", None)
    if isinstance(refs, dict) and refs:
        source.remember_ref_archives(refs)
    fetcher = RemoteFetcher(client, state.entry_id, required, source=source)
    return new_archive(raw, schema, source=source, fetcher=fetcher, entry_id=state.entry_id, upload_id=state.upload_id)


def dataset_raw(
    client: DatasetClient,
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
    header = (
        lock_header(client.base_url, deployment_version(client), query_json, required, schema)
        if lock is not None
        else None
    )
    previous: dict[str, Any] | None = None
    if lock is not None and Path(lock).exists():
        candidate = read_lock(lock)
        assert header is not None
        if _same_dataset(candidate, header):
            previous = candidate
    if previous is not None and (previous.get("complete") or offline):
        entries = locked_states(previous)
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
    client: DatasetClient,
    query: Any,
    required: Required,
    schema: Schema,
    *,
    lock: str | os.PathLike[str] | None = None,
    **options: Any,
) -> Iterator[tuple[str, Section]]:
    """:func:`dataset_raw` mapped to lazy roots (what ``Client.archives(cache=/lock=)`` returns)."""
    cache = client.cache
    if cache is None and lock is not None:
        cache = ArchiveCache()  # resuming a locked download needs somewhere to keep what came
    offline = client.offline
    source = ClientSource(client, schema)
    for state, archive in dataset_raw(client, query, required, schema=schema, lock=lock, cache=cache, offline=offline, **options):
        yield state.entry_id, open_section(client, state, archive, required, schema, source)
