"""``load``: archive JSON from a path, bytes, dict or file object to a lazy typed root section."""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from typing import IO, Any

from archivemap._json import parse_json, read_json
from archivemap.archive.context import ArchiveSource, Fetcher, new_archive
from archivemap.archive.schema import Schema, as_schema
from archivemap.archive.sections import Section
from archivemap.archive.sources import DirectorySource
from archivemap.errors import ArchiveDataError
from archivemap.metainfo.default import default_environment

__all__ = ["default_schema", "load", "set_default_schema"]

SchemaLike = Any  # Schema | Environment | path | URL | dict | bytes


def _raw_archive(source: Any) -> tuple[dict[str, Any], str]:
    if isinstance(source, Mapping):
        data, label = source, "<dict>"
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data, label = parse_json(bytes(source), "<bytes>"), "<bytes>"
    elif isinstance(source, (str, os.PathLike)):
        if isinstance(source, str) and _is_json_text(source):
            raise ArchiveDataError(
                "load() was given JSON text where it reads a path; pass the text as bytes "
                "(text.encode()) or parsed (a dict)"
            )
        if os.path.isdir(source):  # the same error as opening it, saying what reads folders
            raise IsADirectoryError(
                errno.EISDIR,
                "a folder: load() reads one archive file; a folder's archives are read by "
                "archivemap.DirectorySource(folder) (or `archivemap show FOLDER PATH`)",
                str(source),
            )
        data, label = read_json(source), str(source)
    elif callable(getattr(source, "read", None)):  # a binary file object (IO[bytes])
        stream: IO[bytes] = source
        label = str(getattr(stream, "name", "<file>"))
        data = parse_json(stream.read(), label)
    else:
        raise ArchiveDataError(f"cannot load an archive from a {type(source).__name__}")
    if not isinstance(data, dict):
        raise ArchiveDataError(f"archive root must be a JSON object, got {type(data).__name__}", label)
    if _is_api_answer(data):
        data = data["data"]["archive"]
    return data, label  # type: ignore[return-value]


def _is_json_text(text: str) -> bool:
    """Whether a string that names no file is JSON text (``'{"run": []}'``), so that a file
    called ``[2024-05] si16.json`` that is missing is still a missing file."""
    if not text.lstrip().startswith(("{", "[")) or os.path.exists(text):
        return False
    try:
        parse_json(text)
    except ArchiveDataError:
        return False
    return True


# The envelope of NOMAD's archive answers (GET entries/{id}/archive, POST .../archive/query).
_ANSWER_KEYS = frozenset({"entry_id", "required", "data"})
_ANSWER_DATA_KEYS = frozenset({"entry_id", "upload_id", "parser_name", "archive"})


def _is_api_answer(data: Mapping[str, Any]) -> bool:
    """Whether a dict is an API answer around an archive, not an archive.

    An archive may hold ``entry_id`` and a ``data`` section too, so only an exact envelope
    counts: top-level keys among ``entry_id, required, data``, ``data`` keys among
    ``entry_id, upload_id, parser_name, archive``, ``archive`` a dict, and the entry ids,
    where both are given, equal. Anything else is loaded as the archive it is.
    """
    inner = data.get("data")
    if not (isinstance(inner, dict) and "entry_id" in data and set(data) <= _ANSWER_KEYS):
        return False
    if not (isinstance(inner.get("archive"), dict) and set(inner) <= _ANSWER_DATA_KEYS):
        return False
    return "entry_id" not in inner or inner["entry_id"] == data["entry_id"]


_default_schema: Schema | None = None


def set_default_schema(schema: SchemaLike | None) -> None:
    """Set the schema ``load`` uses when none is given (also: env ``ARCHIVEMAP_METAINFO``)."""
    global _default_schema
    _default_schema = as_schema(schema) if schema is not None else None


def _pick_schema(schema: SchemaLike | None) -> Schema:
    if schema is not None:
        return as_schema(schema)
    if _default_schema is not None:
        return _default_schema
    env = os.environ.get("ARCHIVEMAP_METAINFO")
    if env:
        return as_schema(env)
    return default_schema()


def default_schema() -> Schema:
    """The schema of the NOMAD metainfo embedded in the package (one per process).

    What ``load`` uses when no schema is given, set or named by ``ARCHIVEMAP_METAINFO``: the
    public NOMAD schema reads any archive of a standard deployment; archives of plugins it
    lacks keep their unknown parts, with a warning, as with any other schema.
    """
    return as_schema(default_environment())


def load(
    source: Any,
    schema: SchemaLike | None = None,
    *,
    archives: ArchiveSource | str | os.PathLike[str] | None = None,
    fetcher: Fetcher | None = None,
    entry_id: str | None = None,
    upload_id: str | None = None,
) -> Section:
    """Load an archive and return its root section (EntryArchive), lazily.

    Nothing below the root is converted until it is read.

    Args:
        source: a path, JSON bytes, a dict, or a binary file object.
        schema: the metainfo: a :class:`Schema`, an Environment, a path or URL of an export,
            or a dict. Classes generated for it are used when the Schema has them. Without
            it: the schema of :func:`set_default_schema`, else ``ARCHIVEMAP_METAINFO``, else
            the embedded NOMAD metainfo (:func:`default_schema`).
        archives: where other archives come from, to follow cross-entry references: a folder
            (path) of archive files, or any :class:`ArchiveSource` such as a client. A path is
            indexed on every call; to load many archives of one folder, pass one
            :class:`~archivemap.archive.sources.DirectorySource` instead.
        fetcher: fetches what was not downloaded (set by the client).
        entry_id, upload_id: the entry's identity when the archive's metadata lacks it.

    Returns:
        The root section.

    Raises:
        ArchiveDataError: the source is not a JSON object.
        IsADirectoryError: the path is a folder (read folders with a DirectorySource).
    """
    raw, _label = _raw_archive(source)
    sch = _pick_schema(schema)
    if isinstance(archives, (str, os.PathLike)):
        archives = DirectorySource(archives, sch)
    owned = not isinstance(source, Mapping)  # parsed here: no caller holds the dict
    return new_archive(
        raw, sch, source=archives, fetcher=fetcher, entry_id=entry_id, upload_id=upload_id, owns_data=owned
    )
