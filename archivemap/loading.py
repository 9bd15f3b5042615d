"""``load``: archive JSON from a path, bytes, dict or file object to a lazy typed root section."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from archivemap._context import ArchiveContext, ArchiveSource, Fetcher
from archivemap.errors import ArchiveDataError
from archivemap.schema import Schema, as_schema

__all__ = ["load", "parse_json", "read_json"]

SchemaLike = Any  # Schema | Environment | path | URL | dict | bytes


def parse_json(data: bytes | str, label: str | None = None) -> Any:
    """Parse JSON text; NOMAD's Python-dumped ``NaN``/``Infinity`` are accepted (spec §2.2)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        if "NaN" in text or "Infinity" in text:
            import json

            try:
                return json.loads(text)
            except (ValueError, RecursionError):
                pass
        raise ArchiveDataError(f"not valid JSON: {exc}", label) from None


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read and parse one JSON file."""
    p = Path(path)
    return parse_json(p.read_bytes(), str(p))  # a missing file stays FileNotFoundError


def _raw_archive(source: Any) -> tuple[dict[str, Any], str]:
    if isinstance(source, Mapping):
        data, label = source, "<dict>"
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data, label = parse_json(bytes(source), "<bytes>"), "<bytes>"
    elif isinstance(source, (str, os.PathLike)):
        data, label = read_json(source), str(source)
    elif hasattr(source, "read"):
        label = str(getattr(source, "name", "<file>"))
        data = parse_json(source.read(), label)
    else:
        raise ArchiveDataError(f"cannot load an archive from a {type(source).__name__}")
    if not isinstance(data, dict):
        raise ArchiveDataError(f"archive root must be a JSON object, got {type(data).__name__}", label)
    # An API answer ({"data": {"archive": {...}}}) is unwrapped to the archive.
    inner = data.get("data")
    if isinstance(inner, dict) and isinstance(inner.get("archive"), dict) and "entry_id" in data:
        data = inner["archive"]
    return data, label  # type: ignore[return-value]


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
    raise ArchiveDataError(
        "no schema: pass schema=<metainfo export path, URL or Schema>, call "
        "archivemap.set_default_schema(), or set ARCHIVEMAP_METAINFO"
    )


def load(
    source: Any,
    schema: SchemaLike | None = None,
    *,
    archives: ArchiveSource | str | os.PathLike[str] | None = None,
    fetcher: Fetcher | None = None,
    entry_id: str | None = None,
    upload_id: str | None = None,
) -> Any:
    """Load an archive and return its root section (EntryArchive), lazily.

    Nothing below the root is converted until it is read.

    Args:
        source: a path, JSON bytes, a dict, or a binary file object.
        schema: the metainfo: a :class:`Schema`, an Environment, a path or URL of an export,
            or a dict. Classes generated for it are used when the Schema has them.
        archives: where other archives come from, to follow cross-entry references: a folder
            (path) of archive files, or any :class:`ArchiveSource` such as a client. A path is
            indexed on every call; to load many archives of one folder, pass one
            :class:`~archivemap.sources.DirectorySource` instead.
        fetcher: fetches what was not downloaded (set by the client).
        entry_id, upload_id: the entry's identity when the archive's metadata lacks it.

    Returns:
        The root section.

    Raises:
        ArchiveDataError: the source is not a JSON object.
    """
    raw, _label = _raw_archive(source)
    sch = _pick_schema(schema)
    if isinstance(archives, (str, os.PathLike)):
        from archivemap.sources import DirectorySource

        archives = DirectorySource(archives, sch)
    ctx = ArchiveContext(sch, raw, source=archives, fetcher=fetcher, entry_id=entry_id, upload_id=upload_id)
    root = sch.root_class().m_load(raw, None, None, ctx)
    ctx.root = root
    if archives is not None and hasattr(archives, "register"):
        archives.register(root)
    return root
