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
(the header before the first download, ``"complete": false`` until the end, atomically
replaced), and downloads go through the disk cache, so a bulk download killed halfway and
started again with the same lock downloads only what it had not stored yet. A lock of another
dataset is never overwritten (:class:`~archivemap.errors.LockfileConflictError`), and reading
one checks its structure and its ``required_hash`` (:func:`read_lock`).

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
from archivemap._warnings import warn_at_caller
from archivemap.archive.context import new_archive
from archivemap.archive.schema import Schema
from archivemap.archive.sections import Section
from archivemap.errors import (
    ArchiveDataError,
    ArchivemapError,
    DatasetIncompleteError,
    DatasetIntegrityError,
    DatasetWarning,
    HTTPStatusError,
    LockfileConflictError,
    NotDownloadedError,
    TransportError,
)
from archivemap.remote.cache import (
    FAILED_BY_SERVER,
    ArchiveCache,
    ArchiveClient,
    EntryState,
    cached_archives,
    canonical_json,
    list_entries,
    locked_hash,
    lost_entries_text,
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
    "previous_lock",
    "read_lock",
]

FORMAT = "archivemap-dataset/1"
#: the lockfile is rewritten after this many new entries (and at the end)
FLUSH_EVERY = 100


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
    """The parsed lockfile, checked for its format, its structure and its ``required_hash``.

    Why check here: every reader (``open_dataset``, a resumed ``Client.archives(lock=)``,
    Dask) trusts these fields, and a hand-edited or truncated lock should fail once, naming
    the file and the field, not as a ``KeyError`` deep inside a replay. A ``required`` that
    no longer has its ``required_hash`` was edited after the run: the locked payload hashes
    were computed for another ``required``, so nothing could be verified against them.

    Raises:
        ArchiveDataError: not JSON, not a lockfile of this format, or a field missing or of
            the wrong type (the message names the field, e.g. ``entries[3].entry_id``).
        DatasetIntegrityError: ``required`` does not have the locked ``required_hash``.
    """
    label = str(path)
    data = parse_json(Path(path).read_bytes(), label)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ArchiveDataError(f"not an archivemap dataset lockfile ({FORMAT})", label)

    def bad(field: str, what: str) -> ArchiveDataError:
        return ArchiveDataError(f"not a valid dataset lockfile: {field} {what}", label)

    deployment = data.get("deployment")
    if not isinstance(deployment, dict):
        raise bad("deployment", "must be an object with the API url")
    if not isinstance(deployment.get("url"), str) or not deployment["url"]:
        raise bad("deployment.url", "must be the deployment's API URL")
    if not isinstance(deployment.get("version"), (str, type(None))):
        raise bad("deployment.version", "must be a string or null")
    for key in ("query", "required", "required_hash"):
        if key not in data:
            raise bad(key, "is missing")
    if not isinstance(data["required"], (dict, str)):
        raise bad("required", "must be an object or a string")
    if not isinstance(data["required_hash"], str):
        raise bad("required_hash", "must be a string")
    if not isinstance(data.get("complete", False), bool):
        raise bad("complete", "must be true or false")
    entries = data.get("entries")
    if not isinstance(entries, list):
        raise bad("entries", "must be a list")
    seen: set[str] = set()
    for index, item in enumerate(entries):
        where = f"entries[{index}]"
        if not isinstance(item, dict):
            raise bad(where, "must be an object")
        entry_id = item.get("entry_id")
        if not isinstance(entry_id, str) or not entry_id:
            raise bad(f"{where}.entry_id", "is missing" if entry_id is None else "must be a non-empty string")
        if entry_id in seen:
            raise bad(f"{where}.entry_id", f"{entry_id!r} is listed twice")
        seen.add(entry_id)
        if not isinstance(item.get("payload_hash"), str):
            raise bad(f"{where}.payload_hash", "is missing" if "payload_hash" not in item else "must be a string")
        for key in ("upload_id", "processing_time", "license", "retrieved_at"):
            if not isinstance(item.get(key), (str, type(None))):
                raise bad(f"{where}.{key}", "must be a string or null")
    if payload_hash(data["required"]) != data["required_hash"]:
        raise DatasetIntegrityError(
            f"{label}: 'required' does not have the locked required_hash (was the lockfile edited?); "
            "its payload hashes belong to another 'required', so the dataset cannot be verified"
        )
    return data


def previous_lock(path: str | os.PathLike[str], header: Mapping[str, Any]) -> dict[str, Any] | None:
    """The lock already at ``path`` when it is of the dataset ``header`` names (to resume or
    replay), or None when there is no file.

    Raises:
        LockfileConflictError: the file is the lock of another dataset (query, ``required``
            or deployment): writing would destroy that record.
        ArchiveDataError: the file is not a readable lockfile (it is not overwritten either).
        DatasetIntegrityError: the file's ``required`` was edited (see :func:`read_lock`).
    """
    if not Path(path).exists():
        return None
    lock = read_lock(path)
    differs = [
        name
        for name, same in (
            ("deployment", lock["deployment"]["url"] == header["deployment"]["url"]),
            ("query", lock.get("query") == header.get("query")),
            ("required", lock["required_hash"] == header.get("required_hash")),
        )
        if not same
    ]
    if differs:
        raise LockfileConflictError(
            f"{path} is the lockfile of another dataset (its {' and '.join(differs)} differ"
            f"{'s' if len(differs) == 1 else ''}); write this one to another path, or delete {path} "
            "to replace it",
            str(path),
        )
    return lock


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
        #: entries added since the file was last written
        self.unflushed = 0

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
        self.unflushed += 1
        if self.unflushed >= FLUSH_EVERY:
            self.write(complete=False)

    def write(self, complete: bool) -> None:
        """Atomically (re)write the file; one entry per line.

        An incomplete lock also keeps the earlier lock's entries this run has not reached
        yet: a resumed run interrupted again must not forget what the first one recorded.
        """
        entries = dict(self.entries)
        if not complete:
            entries.update((key, item) for key, item in self.previous.items() if key not in entries)
        header = {**self.header, "complete": complete, "written_at": _now(), "count": len(entries)}
        head = orjson.dumps(header, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
        lines = ",\n".join("    " + dump_json(item, sort_keys=True).decode() for item in entries.values())
        text = head[:-2] + ',\n  "entries": [\n' + lines + ("\n" if lines else "") + "  ]\n}\n"
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.path)
        self.unflushed = 0


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


def locked_states(lock: Mapping[str, Any]) -> list[EntryState]:
    return [
        EntryState(str(item["entry_id"]), item.get("upload_id"), str(item.get("processing_time") or ""), item.get("license"))
        for item in lock["entries"]
    ]


def open_section(client: ArchiveAPI, state: EntryState, archive: dict[str, Any], required: Required, schema: Schema, source: ClientSource) -> Section:
    """The lazy root of an archive that is already anchored (from the cache): no second graft."""
    raw = dict(archive)
    refs = raw.pop("m_ref_archives", None)
    if isinstance(refs, dict) and refs:
        source.remember_ref_archives(refs)
    fetcher = RemoteFetcher(client, state.entry_id, required, source=source)
    fetcher.learn_placed_targets(raw, required)  # what the spec reached through references is here
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
    wins: its entries are replayed, each checked against its payload hash, and the file is
    left as it is (a lockfile pins a dataset; delete it to refresh). An incomplete one (an
    interrupted run) is resumed: the query is listed again and what the cache already holds
    is not downloaded again. Offline, the entries come from the lock.

    A new lock is written at once with its header alone (``"complete": false``), then every
    ``FLUSH_EVERY`` entries, and when the caller stops early or an error ends the run: a run
    killed at any point leaves a lock to resume from.

    Raises:
        LockfileConflictError: ``lock`` holds the lock of another dataset.
        DatasetIntegrityError: replaying a complete lock, an entry's payload differs from it.
        DatasetIncompleteError: replaying a complete lock, entries could not be reproduced
            (after yielding the others; ``dataset`` is None, ``unavailable`` names them).
    """
    query_json = client.query_json(query, schema)
    header = (
        lock_header(client.base_url, deployment_version(client), query_json, required, schema)
        if lock is not None
        else None
    )
    previous = previous_lock(lock, header) if lock is not None and header is not None else None
    replay = previous is not None and bool(previous.get("complete"))
    if previous is not None and (replay or offline):
        entries = locked_states(previous)
    elif offline:
        raise NotDownloadedError("offline: listing a query needs the server (give the lockfile of a run)")
    else:
        entries = list_entries(client, query_json, page_size=page_size, owner=options.get("owner", "visible"))
    if replay:
        assert previous is not None
        yield from _replayed(client, cache, previous, entries, required, str(lock), offline=offline, **options)
        return
    writer = None
    if lock is not None and header is not None:
        writer = LockWriter(lock, header, previous["entries"] if previous else ())
        if previous is None:
            writer.write(complete=False)  # the header alone: an interrupted run leaves a lock
    finished = False
    lost: dict[str, str] = {}
    try:
        for state, archive in cached_archives(client, cache, entries, required, offline=offline, missing=lost, **options):
            if writer is not None:
                writer.add(state, locked_hash(archive, required))
            yield state, archive
        finished = True
        if lost:  # deleted since the listing, or failed by the server: said, not hidden
            warn_at_caller(lost_entries_text(lost, len(entries)), DatasetWarning)
    finally:
        if writer is not None:
            if finished:
                # entries the server failed may come on another run: the lock stays open for it
                failed = any(why.startswith(FAILED_BY_SERVER) for why in lost.values())
                writer.write(complete=not failed)
            elif writer.unflushed:
                writer.write(complete=False)  # stopped early or failed: keep what came


def _replayed(
    client: DatasetClient,
    cache: ArchiveCache | None,
    lock: Mapping[str, Any],
    entries: Sequence[EntryState],
    required: Required,
    path: str,
    *,
    offline: bool,
    **options: Any,
) -> Iterator[tuple[EntryState, dict[str, Any]]]:
    """A complete lock's entries, each verified against its payload hash; the file is kept."""
    hashes = {str(item["entry_id"]): str(item["payload_hash"]) for item in lock["entries"]}
    got: set[str] = set()
    reasons: dict[str, str] = {}  # told in the error below, not warned about as well
    for state, archive in cached_archives(client, cache, entries, required, offline=offline, missing=reasons, **options):
        if locked_hash(archive, required) != hashes[state.entry_id] and cache is not None and not offline:
            # the cache's copy may be what changed: downloaded again, the server's copy decides
            cache.delete(client.base_url, state.entry_id)
            fresh = list(cached_archives(client, cache, [state], required, offline=False, **options))
            archive = fresh[0][1] if fresh else archive
        if locked_hash(archive, required) != hashes[state.entry_id]:
            where = "in the cache (offline)" if offline else "on the server"
            raise DatasetIntegrityError(
                f"entry {state.entry_id} does not match its payload hash in {path}: it changed {where} "
                "since the lock was written (archivemap.open_dataset names what changed)"
            )
        got.add(state.entry_id)
        yield state, archive
    why = "not in the cache (offline)" if offline else "the server has no archive for it"
    lost = {state.entry_id: reasons.get(state.entry_id, why) for state in entries if state.entry_id not in got}
    if lost:
        raise DatasetIncompleteError(
            f"{len(lost)} of {len(entries)} entries of {path} could not be reproduced: {', '.join(list(lost)[:10])}",
            None,
            lost,
        )


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
