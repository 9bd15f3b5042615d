"""Reproduce a dataset from its lockfile: ``archivemap.open_dataset("dataset.lock")``.

Why: a lockfile (:mod:`archivemap.remote.lockfile`, written by ``Client.archives(lock=...)``,
``archivemap fetch --lock`` or :func:`archivemap.dask.write_lock`) names exactly which data a
result was computed from. Reproducing it must give exactly that data or say why not: every
payload hash is checked, and the server is asked which locked entries were reprocessed or
are gone since, so a reader knows precisely what a replay can and cannot vouch for. Entries
that cannot be reproduced are an error (:class:`~archivemap.errors.DatasetIncompleteError`,
which keeps the rest) unless the caller asks for a partial dataset.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from archivemap.archive.load import default_schema
from archivemap.archive.schema import Schema, SchemaSource, as_schema
from archivemap.archive.sections import Section
from archivemap.archive.sources import MemorySource
from archivemap.errors import DatasetIncompleteError, DatasetIntegrityError
from archivemap.remote.cache import (
    ArchiveCache,
    EntryState,
    canonical_json,
    list_entries,
    locked_hash,
    project,
    required_difference,
)
from archivemap.remote.client import Client
from archivemap.remote.lockfile import entry_ids_query, locked_states, read_lock
from archivemap.remote.required import Required

__all__ = ["Dataset", "DatasetIncompleteError", "DatasetIntegrityError", "open_dataset"]


#: Guards the making of datasets' sources (one per dataset and schema). One lock for all
#: datasets rather than one each: a lock in the dataclass would make it unpicklable.
_SOURCES_LOCK = threading.Lock()


@dataclass
class Dataset:
    """A lockfile's dataset, reproduced.

    Attributes:
        lock: the parsed lockfile.
        archives: ``entry_id -> archive dict`` in the lock's order, each with its locked hash
            (:meth:`archive` and :meth:`items` give them as typed sections).
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
    _sources: dict[Schema, MemorySource] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        # the sources are made again on first use: pickled, each would carry every archive again
        return {**self.__dict__, "_sources": {}}

    def archive(self, entry_id: str, schema: Schema | SchemaSource | None = None) -> Section:
        """Entry ``entry_id`` as typed, lazy sections, like :func:`archivemap.load` gives.

        References into the dataset's other entries resolve to their sections (one root per
        entry and schema, shared); references to what the locked ``required`` left out are
        dangling, as they would be in the downloaded JSON.

        Args:
            entry_id: one of :attr:`archives`.
            schema: the metainfo to read with (default: the embedded NOMAD metainfo). The
                lock records the identity of the schema it was written with
                (``schema_hash``); use that deployment's schema for its plugins' sections.

        Raises:
            KeyError: the entry is not in the dataset (see :attr:`unavailable` for why).
        """
        if entry_id not in self.archives:
            why = self.unavailable.get(entry_id, "not in the lockfile")
            raise KeyError(f"entry {entry_id!r} is not in this dataset: {why}")
        return self.source(schema).archive(entry_id)

    def items(self, schema: Schema | SchemaSource | None = None) -> Iterator[tuple[str, Section]]:
        """``(entry_id, root section)`` of every entry, in the lock's order (see :meth:`archive`)."""
        source = self.source(schema)
        for entry_id in self.archives:
            yield entry_id, source.archive(entry_id)

    def source(self, schema: Schema | SchemaSource | None = None) -> MemorySource:
        """The dataset as an archive source: ``load(other, schema, archives=dataset.source())``
        resolves references into the dataset."""
        sch = as_schema(schema) if schema is not None else default_schema()
        with _SOURCES_LOCK:
            found = self._sources.get(sch)
            if found is None:
                found = self._sources[sch] = MemorySource(self.archives, sch)
            return found

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
    client: Client | None = None,
    cache: ArchiveCache | str | os.PathLike[str] | None = None,
    offline: bool = False,
    strict: bool = True,
    partial: bool = False,
    **client_options: Any,
) -> Dataset:
    """Reproduce the dataset a lockfile names, verifying every payload hash.

    Each entry comes from the disk cache when it holds the locked processing state, else from
    the server (only if the server still has that state). Online, the server is asked for the
    current state of every locked entry, and :attr:`Dataset.changed` names each one that
    was reprocessed or is gone.

    A cached copy at the locked state that holds all of the locked ``required`` but not the
    locked payload was damaged or tampered with: it is dropped and downloaded again online
    (the server's copy decides), and is a hash mismatch offline.

    Args:
        path: the lockfile.
        client: a client for the lock's deployment (default: a new one for its URL).
        cache: the disk cache (default: the client's, else :func:`~archivemap.remote.cache.default_cache_dir`).
        offline: never contact the server (entries must be in the cache); also when
            ``client`` is an offline client.
        strict: raise :class:`DatasetIntegrityError` when a payload hash does not match
            (otherwise such entries are left out and listed in :attr:`Dataset.unavailable`,
            which makes the dataset incomplete: see ``partial``).
        partial: return the entries that could be reproduced when others cannot (listed in
            :attr:`Dataset.unavailable`) instead of raising :class:`DatasetIncompleteError`.
        client_options: for the new client.

    Raises:
        DatasetIntegrityError: ``strict``, and a payload (cached offline, or the server's)
            does not have its locked hash; or the lock's ``required`` was edited.
        DatasetIncompleteError: not ``partial``, and locked entries cannot be reproduced;
            the error's ``dataset`` holds the others.
        ArchiveDataError: the lockfile is not JSON or not well formed (names the field).
    """
    lock = read_lock(path)
    url = str(lock["deployment"]["url"])
    if client is None:
        client = Client(url, **client_options)
    offline = offline or client.offline  # an offline client is never asked to go online
    if cache is None:
        cache = client.cache or ArchiveCache()
    elif not isinstance(cache, ArchiveCache):
        cache = ArchiveCache(cache)
    required: Required = lock["required"]
    states = locked_states(lock)
    hashes = {str(item["entry_id"]): str(item["payload_hash"]) for item in lock["entries"]}
    dataset = Dataset(lock)
    if not offline:
        dataset.checked_server = True
        dataset.changed.update(_changed_on_server(client, states))
    found: dict[str, dict[str, Any]] = {}
    bad: dict[str, str] = {}
    fetchable: list[EntryState] = []
    for state in states:
        entry_id = state.entry_id
        cached = cache.get(url, entry_id)
        if cached is not None and cached.state == state.processing_time and required_difference(required, cached.required) is None:
            mine = project(cached.archive, required)
            if locked_hash(mine, required) == hashes[entry_id]:
                found[entry_id] = mine
                continue
            # the whole locked spec at the locked state, and another payload: a damaged or
            # edited copy when the row holds exactly that spec; a row widened by another
            # spec may project differently (whole values under index selections)
            exact = canonical_json(cached.required) == canonical_json(required)
            if not offline:
                cache.delete(url, entry_id)  # the server's copy decides
            elif exact:
                bad[entry_id] = "the cached copy does not have the locked payload hash (the copy or the lock was changed)"
                continue
            else:
                dataset.unavailable[entry_id] = "the cached copy (widened by another required) does not give the locked payload (offline)"
                continue
        if offline:
            dataset.unavailable[entry_id] = "not in the cache (offline)"
        elif entry_id in dataset.changed:
            dataset.unavailable[entry_id] = f"not in the cache and {dataset.changed[entry_id]}"
        else:
            fetchable.append(state)
    if fetchable:
        # exactly the locked spec, not the cache's wider row: the hash is of what was locked
        by_id = {state.entry_id: state for state in fetchable}
        for start in range(0, len(fetchable), 200):
            part = [state.entry_id for state in fetchable[start : start + 200]]
            for entry_id, answer in client.archives_raw(entry_ids_query(part), required):
                state = by_id[entry_id]
                archive = project(cache.add(url, entry_id, state.processing_time, state.upload_id, required, answer), required)
                if locked_hash(archive, required) == hashes[entry_id]:
                    found[entry_id] = archive
                else:
                    bad[entry_id] = "the server's payload hash differs from the lock"
    for state in states:
        entry_id = state.entry_id
        if entry_id in found:
            dataset.archives[entry_id] = found[entry_id]
        elif entry_id in bad:
            dataset.unavailable[entry_id] = bad[entry_id]
        else:
            dataset.unavailable.setdefault(entry_id, "the server has no archive for it")
    if bad and strict:
        raise DatasetIntegrityError(f"{_entries(len(bad))} of {path} not matching the locked payload hash: {_named(bad)}")
    if dataset.unavailable and not partial:
        raise DatasetIncompleteError(
            f"{len(dataset.unavailable)} of {_entries(len(states))} of {path} cannot be reproduced: "
            f"{_named(dataset.unavailable)} (partial=True gives the other {len(dataset.archives)})",
            dataset,
            dataset.unavailable,
        )
    return dataset


def _changed_on_server(client: Client, states: list[EntryState]) -> dict[str, str]:
    """``entry_id -> what changed`` for locked entries the server has reprocessed or lost."""
    current: dict[str, EntryState] = {}
    ids = [state.entry_id for state in states]
    for start in range(0, len(ids), 500):
        for state in list_entries(client, entry_ids_query(ids[start : start + 500])):
            current[state.entry_id] = state
    changed: dict[str, str] = {}
    for state in states:
        now = current.get(state.entry_id)
        if now is None:
            changed[state.entry_id] = "no longer on the server (deleted or not visible)"
        elif now.processing_time != state.processing_time:
            changed[state.entry_id] = f"reprocessed on the server: {state.processing_time or '?'} -> {now.processing_time or '?'}"
    return changed


def _entries(count: int) -> str:
    return f"{count} entry" if count == 1 else f"{count} entries"


def _named(reasons: dict[str, str], most: int = 10) -> str:
    """The first ``most`` entries with their reasons, for one message line."""
    items = list(reasons.items())
    text = "; ".join(f"{entry_id} ({why})" for entry_id, why in items[:most])
    return text + (f"; and {len(items) - most} more" if len(items) > most else "")
