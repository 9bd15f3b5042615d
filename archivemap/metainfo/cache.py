"""The on-disk cache of parsed metainfo exports, so that a second process skips the parse.

A metainfo export is 8.4 MB of JSON; parsing it (and, for the embedded one, decompressing it)
is most of what "schema ready" costs once the definition objects are built lazily. The cache
keeps the *parsed dict* (plain dicts, lists, strings, numbers: what ``orjson.loads`` returns),
never objects of archivemap's classes, so that a change to a class can never meet a stale
cache entry.

The form was chosen by measuring on the NOMAD 2.0 export (8.4 MB, 2-core machine, garbage
collection paused as here): ``orjson.loads`` 36 ms, ``pickle.loads`` 28 ms, ``marshal.loads``
22 ms. ``marshal`` wins and needs nothing but builtins; its format belongs to one Python
version, so the version is part of the key. ``marshal`` trusts its input, so every file
carries a CRC-32 of its payload and a file that does not match (torn, truncated, edited) is
ignored and rebuilt.

Files are keyed by the content hash of the export, the archivemap version and the Python
version; writes go to a temporary file in the same directory and are renamed into place
(``os.replace``), so two processes writing the same entry at once leave one whole file.

Where: ``ARCHIVEMAP_CACHE_DIR`` when set, else the user cache directory of ``platformdirs``
(``~/.cache/archivemap`` on Linux). :func:`clear_cache` (or ``rm -r`` of the folder) empties it.
"""

from __future__ import annotations

import gc
import marshal
import os
import struct
import sys
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import platformdirs

from archivemap._version import __version__

__all__ = ["CACHE_ENV", "cache_dir", "cached_export", "clear_cache", "load_parsed", "store_parsed", "write_atomically"]

#: The environment variable that relocates the cache (tests point it at a temporary folder).
CACHE_ENV = "ARCHIVEMAP_CACHE_DIR"

# magic (format version 1) + CRC-32 and length of the marshal payload
_MAGIC = b"AMMI\x01"
_HEADER = struct.Struct("<5sIQ")
_SUFFIX = ".marshal"


def cache_dir() -> Path:
    """The folder of archivemap's caches (not created here)."""
    where = os.environ.get(CACHE_ENV)
    return Path(where) if where else Path(platformdirs.user_cache_dir("archivemap", appauthor=False))


def _entry_path(kind: str, content_sha256: str) -> Path:
    py = f"py{sys.version_info[0]}{sys.version_info[1]}m{marshal.version}"
    return cache_dir() / "metainfo" / f"{kind}-{content_sha256[:40]}-{__version__}-{py}{_SUFFIX}"


def load_parsed(kind: str, content_sha256: str) -> dict[str, Any] | None:
    """The cached parsed export for this content, or ``None`` (missing, corrupt or unreadable)."""
    path = _entry_path(kind, content_sha256)
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    if len(blob) < _HEADER.size:
        return None
    magic, crc, size = _HEADER.unpack_from(blob)
    payload = memoryview(blob)[_HEADER.size :]
    if magic != _MAGIC or size != len(payload) or zlib.crc32(payload) != crc:
        return None
    paused = gc.isenabled()
    gc.disable()  # ~300,000 containers, none garbage: the collector would only rescan them
    try:
        data = marshal.loads(payload)
    except (ValueError, EOFError, TypeError):
        return None
    finally:
        if paused:
            gc.enable()
    return data if isinstance(data, dict) and isinstance(data.get("packages"), list) else None


def store_parsed(kind: str, content_sha256: str, data: dict[str, Any]) -> Path | None:
    """Write a parsed export to the cache atomically; ``None`` when it cannot be written.

    A cache that cannot be written (read-only home, full disk, a value ``marshal`` refuses)
    only costs the next process a parse, so every such failure is swallowed.
    """
    path = _entry_path(kind, content_sha256)
    try:
        payload = marshal.dumps(data)
    except ValueError:
        return None
    header = _HEADER.pack(_MAGIC, zlib.crc32(payload), len(payload))
    return path if write_atomically(path, header + payload) else None


def write_atomically(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` through a temporary file and a rename: readers see the old
    file or the whole new one, never a part. ``False`` when it cannot be written (a cache
    that cannot be written only costs the next process some work)."""
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
        tmp = None
        return True
    except OSError:
        return False
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def cached_export(kind: str, content_sha256: str, parse: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The parsed export from the cache, else ``parse()``'s, which is then cached."""
    found = load_parsed(kind, content_sha256)
    if found is not None:
        return found
    data = parse()
    store_parsed(kind, content_sha256, data)
    return data


def clear_cache() -> int:
    """Remove every cached metainfo (all versions); the number of files removed."""
    removed = 0
    folder = cache_dir() / "metainfo"
    if not folder.is_dir():
        return 0
    for file in folder.iterdir():
        if file.suffix in (_SUFFIX, ".tmp", ".json", ".js"):
            try:
                file.unlink()
                removed += 1
            except OSError:
                pass
    return removed
