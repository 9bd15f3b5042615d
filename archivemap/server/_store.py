"""The entries a local server answers for, read from a folder or given in memory.

Entries are indexed once at start: the archive dict, its ids, and a flattened search document
(``metadata`` plus a ``results`` subset) that ``entries/query`` filters on. Archives given in
memory are shared, never deep-copied, so a test can serve thousands of entries built from one
real archive.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from archivemap._json import read_json
from archivemap.errors import ArchiveDataError
from archivemap.server._required import Definitions
from archivemap.server._schema import Schema, load_schema


__all__ = ["ARCHIVE_KEYS", "DEFAULT_UPLOAD_ID", "Entry", "EntryStore"]

_logger = logging.getLogger("archivemap.server")

#: A JSON object with none of these top-level keys is not an archive (e.g. provenance files).
ARCHIVE_KEYS = frozenset(
    {"metadata", "run", "data", "workflow", "workflow2", "results", "definitions"}
)
#: Upload id given to archives whose ``metadata`` does not name one.
DEFAULT_UPLOAD_ID = "archivemap_local"

# Search-document parts of `results` that a metadata answer carries: small and searchable.
_RESULTS_PARTS = ("material", "method")
_HEAVY_MATERIAL_KEYS = frozenset({"topology"})
# EntryMetadata properties NOMAD 2.0.0 does not index (no a_elasticsearch): not in search documents.
_NOT_INDEXED = frozenset(
    {
        "entry_hash", "last_edit_time", "embargo_length", "license", "coauthors", "coauthor_groups",
        "entry_coauthors", "reviewers", "reviewer_groups", "source_files", "entry_timestamp",
    }
)


class Entry:
    """One served entry: its archive and what ``entries/query`` knows about it.

    Attributes:
        entry_id: the id the server answers for (the mapping key or ``metadata.entry_id``).
        upload_id: the upload id (``metadata.upload_id`` or :data:`DEFAULT_UPLOAD_ID`).
        mainfile: ``metadata.mainfile``, else the file name, else the entry id.
        parser_name: ``metadata.parser_name`` or None.
        archive: the archive dict; shared, treat it as read-only.
        metadata: the metadata document ``entries/query`` returns.
        fields: the flattened search document: dotted name -> list of leaf values.
        many: the dotted names whose values sit in lists (not sortable, list semantics).
    """

    __slots__ = ("archive", "entry_id", "fields", "mainfile", "many", "metadata", "parser_name", "upload_id")

    def __init__(
        self,
        entry_id: str,
        archive: Mapping[str, Any],
        source_name: str | None = None,
        field_cache: dict[tuple[int, int], tuple[dict[str, list[Any]], frozenset[str]]] | None = None,
    ) -> None:
        raw_metadata = archive.get("metadata")
        metadata_in: Mapping[str, Any] = raw_metadata if isinstance(raw_metadata, Mapping) else {}
        if metadata_in.get("entry_id", entry_id) != entry_id:
            # A re-keyed copy (e.g. synthesised in a test): shallow copies keep the big parts shared.
            archive = {**archive, "metadata": {**metadata_in, "entry_id": entry_id}}
        self.entry_id = entry_id
        self.archive = archive
        self.upload_id: str = str(metadata_in.get("upload_id") or DEFAULT_UPLOAD_ID)
        self.mainfile: str = str(metadata_in.get("mainfile") or source_name or entry_id)
        parser = metadata_in.get("parser_name")
        self.parser_name: str | None = None if parser is None else str(parser)
        results = archive.get("results")
        self.metadata = _metadata_document(self, metadata_in, results)
        # Entries synthesised from one archive share its metadata: flatten it once.
        cache_key = (id(metadata_in), id(results))
        cached = None if field_cache is None else field_cache.get(cache_key)
        if cached is None or cached[0].get("mainfile") != [self.mainfile]:
            self.fields, self.many = _flatten(self.metadata)
            if field_cache is not None:
                field_cache[cache_key] = (self.fields, self.many)
        else:
            self.fields, self.many = {**cached[0], "entry_id": [entry_id]}, cached[1]

    def __repr__(self) -> str:
        return f"Entry({self.entry_id!r}, upload_id={self.upload_id!r}, mainfile={self.mainfile!r})"


def _user(user_id: Any) -> Any:
    """A user as the search document holds it; names are unknown offline, the id stands in."""
    if isinstance(user_id, Mapping):
        return dict(user_id)
    return {"user_id": user_id, "name": user_id}


def _users(value: Any) -> list[Any]:
    return [_user(item) for item in value] if isinstance(value, list) else []


def _metadata_document(
    entry: Entry, metadata: Mapping[str, Any], results: Any
) -> dict[str, Any]:
    """NOMAD's search document of an entry: indexed metadata, users as objects, results."""
    document = {key: value for key, value in metadata.items() if key not in _NOT_INDEXED}
    main_author = metadata.get("main_author")
    if main_author is not None:
        author = _user(main_author)
        coauthors = _users(metadata.get("coauthors"))
        document["main_author"] = author
        if metadata.get("external_db") == "EELS Data Base":
            document["authors"] = _users(metadata.get("entry_coauthors"))
        else:
            document["authors"] = [author, *coauthors, *_users(metadata.get("entry_coauthors"))]
        document["writers"] = [author, *coauthors]
        document["viewers"] = [author, *coauthors, *_users(metadata.get("reviewers"))]
        if "origin" not in document:
            document["origin"] = metadata.get("external_db") or author.get("name")
    datasets = metadata.get("datasets")
    if isinstance(datasets, list) and datasets:
        # NOMAD's search document holds datasets as objects (``datasets.dataset_id``), not ids
        document["datasets"] = [
            dict(item) if isinstance(item, Mapping) else {"dataset_id": item, "dataset_name": item} for item in datasets
        ]
    document["entry_id"] = entry.entry_id
    document["upload_id"] = entry.upload_id
    document["mainfile"] = entry.mainfile
    if entry.parser_name is not None:
        document["parser_name"] = entry.parser_name
    if isinstance(results, Mapping):
        subset: dict[str, Any] = {}
        for part in _RESULTS_PARTS:
            value = results.get(part)
            if isinstance(value, Mapping):
                if part == "material":
                    value = {k: v for k, v in value.items() if k not in _HEAVY_MATERIAL_KEYS}
                subset[part] = value
        if subset:
            document["results"] = subset
    return document


def _flatten(document: Mapping[str, Any]) -> tuple[dict[str, list[Any]], frozenset[str]]:
    """Dotted names to leaf values (lists of objects contribute every item's values), and
    the names met inside a list."""
    fields: dict[str, list[Any]] = {}
    many: set[str] = set()

    def walk(prefix: str, value: Any, in_list: bool) -> None:
        if isinstance(value, Mapping):
            for key, child in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), child, in_list)
        elif isinstance(value, list):
            for child in value:
                walk(prefix, child, True)
            if prefix and not value:
                many.add(prefix)
        elif prefix:
            fields.setdefault(prefix, []).append(value)
            if in_list:
                many.add(prefix)

    walk("", document, False)
    return fields, frozenset(many)


class EntryStore:
    """All entries of a server, sorted by entry id, with the lookups the reader needs.

    Implements :class:`archivemap.server._refs.ArchiveLookup`.

    Args:
        entries: the entries (duplicate ids: the first wins, with a warning).
        schema: definitions for the ``required`` reader (NOMAD's schema semantics), or None
            to read archives without schema knowledge.

    Attributes:
        definitions: the schema-aware definition resolver, or None without a schema.
    """

    def __init__(self, entries: Iterable[Entry], schema: Schema | None = None) -> None:
        by_id: dict[str, Entry] = {}
        for entry in entries:
            if entry.entry_id in by_id:
                _logger.warning("duplicate entry id %s (%s); keeping the first", entry.entry_id, entry.mainfile)
                continue
            by_id[entry.entry_id] = entry
        self._by_id = by_id
        self.entries: list[Entry] = sorted(by_id.values(), key=lambda entry: entry.entry_id)
        self._ids = [entry.entry_id for entry in self.entries]
        self._by_mainfile: dict[tuple[str, str], str] = {}
        for entry in self.entries:
            self._by_mainfile.setdefault((entry.upload_id, entry.mainfile), entry.entry_id)
        self.known_fields: frozenset[str] = frozenset(
            name for entry in self.entries for name in entry.fields
        )
        self.many_fields: frozenset[str] = frozenset(name for entry in self.entries for name in entry.many)
        self.schema = schema
        self.definitions: Definitions | None = None if schema is None else Definitions(schema, self)
        #: the search fields, computed by the query module on first use
        self.search_fields: object | None = None

    @classmethod
    def from_mapping(
        cls, archives: Mapping[str, Mapping[str, Any]], metainfo: str | Path | None = None
    ) -> EntryStore:
        """Entries from ``entry_id -> archive``; archives are shared, not copied.

        Args:
            archives: the archives by entry id.
            metainfo: a NOMAD metainfo export (``.json`` or ``.json.gz``) to read archives
                with NOMAD's schema semantics, or None.
        """
        cache: dict[tuple[int, int], tuple[dict[str, list[Any]], frozenset[str]]] = {}
        schema = None if metainfo is None else load_schema(metainfo)
        return cls((Entry(entry_id, archive, field_cache=cache) for entry_id, archive in archives.items()), schema)

    @classmethod
    def from_directory(cls, directory: str | Path, metainfo: str | Path | None = None) -> EntryStore:
        """Entries from the ``*.json`` files of a folder (not its sub-folders).

        Files that are not JSON objects with at least one archive key (:data:`ARCHIVE_KEYS`)
        are skipped with a log record, so a folder may hold provenance or notes files;
        unreadable or malformed files are skipped with a warning. The server always starts.

        Args:
            directory: the folder.
            metainfo: a NOMAD metainfo export to read archives with, or None.

        Raises:
            NotADirectoryError: when ``directory`` is not a folder.
        """
        folder = Path(directory)
        if not folder.is_dir():
            raise NotADirectoryError(f"not a directory: {folder}")
        entries: list[Entry] = []
        for path in sorted(folder.glob("*.json")):
            archive = _read_archive_file(path)
            if archive is None:
                continue
            name = path.name.removesuffix(".json").removesuffix(".archive")
            metadata = archive.get("metadata")
            entry_id = metadata.get("entry_id") if isinstance(metadata, Mapping) else None
            try:
                entries.append(Entry(str(entry_id or name), archive, source_name=path.name))
            except Exception as error:  # a malformed archive must not stop the server  # noqa: BLE001
                _logger.warning("skipping %s: cannot index it (%s: %s)", path.name, type(error).__name__, error)
        return cls(entries, None if metainfo is None else load_schema(metainfo))

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, entry_id: str) -> Entry | None:
        """The entry with that id, or None."""
        return self._by_id.get(entry_id)

    def index_after(self, entry_id: str) -> int:
        """Position of the first entry whose id sorts after ``entry_id``."""
        return bisect.bisect_right(self._ids, entry_id)

    def archive_for(self, entry_id: str) -> tuple[Mapping[str, Any], str | None] | None:
        """``(archive, upload_id)`` for cross-entry references, or None."""
        entry = self._by_id.get(entry_id)
        return None if entry is None else (entry.archive, entry.upload_id)

    def entry_id_for_mainfile(self, upload_id: str | None, mainfile: str) -> str | None:
        """The entry with that mainfile in that upload, or None."""
        return self._by_mainfile.get((upload_id or DEFAULT_UPLOAD_ID, mainfile))


def _read_archive_file(path: Path) -> dict[str, Any] | None:
    try:
        archive = read_json(path)  # NaN/Infinity literals included
    except (ArchiveDataError, OSError, RecursionError, MemoryError) as error:
        _logger.warning("skipping %s: %s", path.name, error)
        return None
    if not isinstance(archive, dict) or not ARCHIVE_KEYS.intersection(archive):
        _logger.info(
            "skipping %s: not an archive (a JSON object with one of %s)",
            path.name,
            ", ".join(sorted(ARCHIVE_KEYS)),
        )
        return None
    return archive
