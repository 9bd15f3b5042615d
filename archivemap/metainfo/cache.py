"""The on-disk cache of parsed metainfo exports, so that a second process skips the parse.

A metainfo export is 8.4 MB of JSON; parsing it (and, for the embedded one, decompressing it)
is most of what "schema ready" costs once the definition objects are built lazily. The cache
keeps builtins only (dicts, lists, strings, numbers, bytes), never objects of archivemap's
classes, so that a change to a class can never meet a stale cache entry.

What it keeps of an export is its *packed* form (:meth:`Environment.pack`): one ``marshal``
blob per package plus a small index (qualified names, definition ids and extensions, each
pointing at a definition path), so that a second process decodes and builds a package only
when a lookup reaches into it. Measured on the NOMAD 2.0 export (2-core machine): reading
the whole parsed dict back took ``marshal.loads`` 22 ms and building all 2,582 sections
24 ms, and freeing those ~250,000 objects at exit another 60 ms; the packed form loads in a
few milliseconds, and most of its 99 packages (code-specific ones) are never built.

``marshal`` was chosen over ``orjson`` (36 ms for the whole export) and ``pickle`` (28 ms) and
needs nothing but builtins; its format belongs to one Python version, so the version is part
of the key. ``marshal`` trusts its input, so every file carries a CRC-32 of its payload and a
file that does not match (torn, truncated, edited) is ignored and rebuilt.

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
from archivemap.errors import DefinitionError
from archivemap.metainfo.environment import Environment, is_packed_export

__all__ = [
    "CACHE_ENV",
    "cache_dir",
    "cached_environment",
    "clear_cache",
    "load_cached_environment",
    "load_parsed",
    "store_environment",
    "store_parsed",
    "write_atomically",
]

#: The environment variable that relocates the cache (tests point it at a temporary folder).
CACHE_ENV = "ARCHIVEMAP_CACHE_DIR"

# magic (format version 2: packed exports) + CRC-32 and length of the marshal payload
_MAGIC = b"AMMI\x02"
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
    """The cached (packed or plain) export for this content, or ``None`` (missing, corrupt or
    unreadable)."""
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
    gc.disable()  # a plain export is ~300,000 containers, none garbage: no rescans
    try:
        data = marshal.loads(payload)
    except (ValueError, EOFError, TypeError):
        return None
    finally:
        if paused:
            gc.enable()
    return data if isinstance(data, dict) and isinstance(data.get("packages"), list) else None


def store_parsed(kind: str, content_sha256: str, data: dict[str, Any]) -> Path | None:
    """Write a (packed or plain) export to the cache atomically; ``None`` when it cannot be written.

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


def load_cached_environment(kind: str, content_sha256: str, source: str | None) -> Environment | None:
    """The environment of the cached export for this content, or ``None`` when not cached.

    A packed export gives an environment that builds packages on demand; a plain one (an
    export that could not be packed) is built whole.
    """
    found = load_parsed(kind, content_sha256)
    if found is None:
        return None
    if is_packed_export(found):
        return Environment.from_packed(found, source=source)
    if found.get("format") is not None:  # packed, but not in this layout: parse again
        return None
    return Environment(found, source=source)


def store_environment(kind: str, content_sha256: str, data: dict[str, Any], source: str | None) -> Environment:
    """The environment of a parsed export, whose packed form is then cached.

    Raises:
        DefinitionError: ``data`` is not metainfo the definition model accepts (nothing is
            cached then).
    """
    env = Environment(data, source=source)
    packed = env.pack()  # before any lookup: the index is read off the fresh environment
    store_parsed(kind, content_sha256, packed if packed is not None else data)
    return env


def cached_environment(
    kind: str, content_sha256: str, parse: Callable[[], dict[str, Any]], source: str | None
) -> Environment:
    """The environment of the cached export for this content, else of ``parse()``'s, cached.

    Raises:
        DefinitionError: ``parse()`` raised it, or its export is not accepted.
    """
    try:
        found = load_cached_environment(kind, content_sha256, source)
    except DefinitionError:  # the cache is checked, so only a bug gets here: parse again
        found = None
    return found if found is not None else store_environment(kind, content_sha256, parse(), source)


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
