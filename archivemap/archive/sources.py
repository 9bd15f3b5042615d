"""Where archives come from: a folder of archive files, a zip of them, or dicts in memory.

A source lets references into other entries (``../upload/archive/<id>#...``,
``../upload/archive/mainfile/<path>#...``, ``../upload/raw/<path>#...``) resolve offline,
the way NOMAD resolves them on the server. Targets are found by the ids and mainfiles in
the archives' ``metadata``, never by opening a path taken from a reference, so a reference
cannot make the source read outside its folder.
"""

from __future__ import annotations

import os
import pickle
import threading
import uuid
import weakref
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from archivemap._json import parse_json, read_json
from archivemap.archive.context import ArchiveContext, new_archive
from archivemap.archive.references import ParsedReference, entry_id_from_mainfile
from archivemap.archive.schema import Schema
from archivemap.archive.sections import Section
from archivemap._warnings import warn_at_caller
from archivemap.errors import (
    ArchiveDataError,
    ArchivemapError,
    DanglingReferenceError,
    SourceWarning,
    UnsafePathError,
    UnsupportedReferenceError,
)

__all__ = ["MAX_ARCHIVE_BYTES", "DirectorySource", "MemorySource", "ZipSource"]

#: The largest archive file a source reads (NOMAD's largest archives are a few GB).
MAX_ARCHIVE_BYTES = 4 * 1024**3


class _IndexedSource:
    """Shared lookup logic: entries by id and by (upload, mainfile).

    The index is built the first time a lookup needs it, not when the source is made:
    loading one file of a folder (``archivemap show FILE``) must not read the whole folder
    unless a reference leads out of the file.
    """

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self._raw: dict[str, Any] = {}  # entry id -> loader key
        self._by_mainfile: dict[tuple[str | None, str], str] = {}
        self._by_mainfile_any: dict[str, str] = {}
        self._roots: dict[str, Section] = {}
        self._lock = threading.RLock()
        self._indexed = False

    def _ensure_index(self) -> None:
        with self._lock:
            if not self._indexed:
                self._indexed = True
                self._build_index()

    def _build_index(self) -> None:
        """Read what the source holds and :meth:`_add` each archive."""
        raise NotImplementedError

    def _add(self, key: Any, meta: Any, fallback_id: str) -> None:
        meta = meta if isinstance(meta, dict) else {}
        found = meta.get("entry_id")
        entry_id: str = found if isinstance(found, str) else fallback_id
        self._raw[entry_id] = key
        mainfile = meta.get("mainfile")
        if isinstance(mainfile, str):
            upload = meta.get("upload_id") if isinstance(meta.get("upload_id"), str) else None
            self._by_mainfile[(upload, mainfile)] = entry_id
            self._by_mainfile_any.setdefault(mainfile, entry_id)

    def _read(self, key: Any) -> dict[str, Any]:
        raise NotImplementedError

    def entry_ids(self) -> list[str]:
        """Every entry id this source holds, sorted (the first call reads every archive once)."""
        self._ensure_index()
        return sorted(self._raw)

    def register(self, root: Section) -> None:
        """Remember an already loaded root so references back to it reuse it."""
        if root.m_entry_id:
            self._roots.setdefault(root.m_entry_id, root)

    def archive(self, entry_id: str) -> Section:
        """The root section of an entry, loaded once and cached."""
        with self._lock:
            root = self._roots.get(entry_id)
            if root is None:
                self._ensure_index()
                if entry_id not in self._raw:
                    raise DanglingReferenceError(f"no entry {entry_id!r} in this source", entry_id=entry_id)
                root = new_archive(self._read(self._raw[entry_id]), self.schema, source=self, entry_id=entry_id)
                self._roots[entry_id] = root
            return root

    def archive_for(self, ref: ParsedReference, context: ArchiveContext) -> Section:
        """The root of the archive a cross-entry reference points into."""
        if ref.installation is not None:
            raise UnsupportedReferenceError(
                "reference into another NOMAD installation; use archivemap.Client for it",
                reference=ref.raw,
            )
        self._ensure_index()
        entry_id = ref.entry_id
        if entry_id is None and ref.mainfile is not None:
            upload = ref.upload_id or context.upload_id
            entry_id = self._by_mainfile.get((upload, ref.mainfile))
            if entry_id is None and upload is not None:
                computed = entry_id_from_mainfile(upload, ref.mainfile)
                entry_id = computed if computed in self._raw else None
            if entry_id is None:
                entry_id = self._by_mainfile_any.get(ref.mainfile)
        if entry_id is None and ref.mainfile is not None:
            by_file = self._by_relative_file(ref.mainfile)
            if by_file is not None:
                return by_file
        if entry_id is None:
            raise DanglingReferenceError("no archive for this reference in the source", reference=ref.raw)
        return self.archive(entry_id.strip())

    def _by_relative_file(self, relative: str) -> Section | None:
        """An archive file named by a ``raw/<path>`` reference, when no metadata names it."""
        return None

    # -- pickling: as the path and the schema; indexed again on the other side -------------------
    def _pickle_path(self) -> Path:
        raise NotImplementedError

    def __reduce__(self) -> tuple[Any, ...]:
        key = (type(self), str(self._pickle_path()), self.schema)
        with _sources_lock:
            _sources.setdefault(key, self)  # unpickled in this process: this very source
        return (_rebuild_source, key)


class DirectorySource(_IndexedSource):
    """A folder of archive JSON files (``*.json``, searched recursively).

    Args:
        directory: the folder.
        schema: the schema to load archives with.
    """

    def __init__(
        self, directory: str | os.PathLike[str], schema: Schema, *, max_file_bytes: int = MAX_ARCHIVE_BYTES
    ) -> None:
        super().__init__(schema)
        self.directory = Path(directory).resolve()
        self.max_file_bytes = max_file_bytes

    def _build_index(self) -> None:
        for path in sorted(self.directory.rglob("*.json")):
            if self.directory not in path.resolve().parents:
                continue  # a symlink that points out of the folder is not part of it
            if not path.is_file():  # a FIFO or a device would block or never end
                continue
            if path.stat().st_size > self.max_file_bytes:
                warn_at_caller(f"{path}: larger than {self.max_file_bytes} bytes; skipped", SourceWarning)
                continue
            try:
                data = read_json(path)
            except (ArchivemapError, OSError, UnicodeError) as exc:
                warn_at_caller(f"{path}: not readable as JSON ({exc}); skipped", SourceWarning)
                continue
            if not isinstance(data, dict):
                continue
            meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
            self._add(path, meta, path.name.split(".")[0])

    def _by_relative_file(self, relative: str) -> Section | None:
        target = self.path(relative)  # refuses ../ and absolute paths
        if target.suffix != ".json" or not target.is_file():
            return None
        data = read_json(target)
        meta = data.get("metadata") if isinstance(data, dict) else None
        entry_id = meta.get("entry_id") if isinstance(meta, dict) else None
        self._ensure_index()
        if isinstance(entry_id, str) and entry_id in self._raw:
            return self.archive(entry_id)
        with self._lock:
            root = self._roots.get(str(target))
            if root is None:
                root = self._roots[str(target)] = new_archive(data, self.schema, source=self)
            return root

    def _pickle_path(self) -> Path:
        return self.directory

    def path(self, relative: str) -> Path:
        """A file inside the folder; refuses paths that would leave it."""
        target = (self.directory / relative).resolve()
        if target != self.directory and self.directory not in target.parents:
            raise UnsafePathError(f"path {relative!r} escapes {self.directory}")
        return target

    def _read(self, key: Any) -> dict[str, Any]:
        data = read_json(key)
        return data  # type: ignore[no-any-return]


class ZipSource(_IndexedSource):
    """A zip of archive JSON files, such as NOMAD's archive download.

    Members are read when needed, never all up front, and each read is bounded: a member
    larger than ``max_member_bytes`` once decompressed (a zip bomb declares a small size and
    inflates without end) is skipped with a :class:`SourceWarning`. The index of entry ids and
    mainfiles is built the first time a cross-entry reference needs it.

    Raises:
        ArchiveDataError: the file is not a zip archive.
        UnsafePathError: a member's name would leave the archive (``../``, absolute).
    """

    def __init__(
        self, path: str | os.PathLike[str], schema: Schema, *, max_member_bytes: int = MAX_ARCHIVE_BYTES
    ) -> None:
        super().__init__(schema)
        label = str(path)
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
            raise ArchiveDataError(f"not a readable zip archive: {exc}", label) from None
        self._path = Path(path).resolve() if isinstance(path, (str, os.PathLike)) else None
        self.max_member_bytes = max_member_bytes
        self._members: list[str] = []
        for name in sorted(self.zip.namelist()):
            if not name.endswith(".json"):
                continue
            if name.startswith("/") or ".." in Path(name).parts:
                raise UnsafePathError(f"zip member {name!r} escapes the archive")
            self._members.append(name)

    def _build_index(self) -> None:
        for name in self._members:
            data = self._read_member(name)
            if isinstance(data, dict):
                meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
                self._add(name, meta, Path(name).name.split(".")[0])

    def _read_member(self, name: str) -> Any:
        """A member's parsed JSON, or ``None`` (with a warning) when it is too large or bad."""
        try:
            with self.zip.open(name) as stream:
                raw = stream.read(self.max_member_bytes + 1)
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
            warn_at_caller(f"{name}: cannot be read from the zip ({exc}); skipped", SourceWarning)
            return None
        if len(raw) > self.max_member_bytes:
            warn_at_caller(f"{name}: larger than {self.max_member_bytes} bytes; skipped", SourceWarning)
            return None
        try:
            return parse_json(raw, name)
        except ArchivemapError as exc:
            warn_at_caller(f"{name}: {exc}; skipped", SourceWarning)
            return None

    def _read(self, key: Any) -> dict[str, Any]:
        data = self._read_member(key)
        if not isinstance(data, dict):
            raise DanglingReferenceError(f"zip member {key!r} is not a readable archive")
        return data

    def _pickle_path(self) -> Path:
        if self._path is None:
            raise pickle.PicklingError("a ZipSource opened from a file object cannot be pickled; open it by path")
        return self._path


class MemorySource(_IndexedSource):
    """Archives already in memory, by entry id (a dataset's, see :func:`archivemap.open_dataset`).

    References between them resolve as in a folder: by the ids and mainfiles of their
    ``metadata``. The dicts are read, never changed, so the caller keeps them as they are.

    Pickled (with any section of its archives), it carries all of them, so that references
    between entries still resolve where it is unpickled; sections unpickled one by one in a
    process share one copy. To send one entry alone, send its dict and load it there.

    Args:
        archives: ``entry_id -> archive dict``; an archive's ``metadata.entry_id`` wins over
            the key it is stored under.
        schema: the schema to load archives with.
    """

    def __init__(self, archives: Mapping[str, dict[str, Any]], schema: Schema) -> None:
        super().__init__(schema)
        self._archives = dict(archives)
        self._token = uuid.uuid4().hex  # who it is across pickles (see _rebuild_memory_source)

    def _build_index(self) -> None:
        for entry_id, data in self._archives.items():
            self._add(entry_id, data.get("metadata"), entry_id)

    def _read(self, key: Any) -> dict[str, Any]:
        return self._archives[key]

    def __reduce__(self) -> tuple[Any, ...]:
        with _sources_lock:
            _memory_sources.setdefault(self._token, self)
        return (_rebuild_memory_source, (self._token, self._archives, self.schema))


#: Sources unpickled (or pickled) in this process, by (class, path, schema): sections
#: unpickled one by one share one source instead of indexing the folder each time.
_sources: weakref.WeakValueDictionary[tuple[Any, str, Schema], _IndexedSource] = weakref.WeakValueDictionary()
_sources_lock = threading.Lock()


#: Memory sources pickled or unpickled in this process, by token.
_memory_sources: weakref.WeakValueDictionary[str, MemorySource] = weakref.WeakValueDictionary()


def _rebuild_memory_source(token: str, archives: Mapping[str, dict[str, Any]], schema: Schema) -> MemorySource:
    with _sources_lock:
        found = _memory_sources.get(token)
        if found is None:
            found = MemorySource(archives, schema)
            found._token = token
            _memory_sources[token] = found
        return found


def _rebuild_source(kind: Callable[[str, Schema], _IndexedSource], path: str, schema: Schema) -> _IndexedSource:
    with _sources_lock:
        found = _sources.get((kind, path, schema))
        if found is None:
            found = _sources[(kind, path, schema)] = kind(path, schema)
        return found
