"""The metainfo embedded in the package: NOMAD 2.0.0's, used when no schema is given.

``load(path)`` and the CLI read NOMAD archives without ``schema=``/``--metainfo`` with this
export (nomad-lab 2.0.0 with the plugins listed in the README, ``nomad dev metainfo``), shipped
gzip-compressed (1.2 MB instead of 8.4 MB; gzip rather than xz because it decompresses in
17 ms instead of 46 ms and the cold start is what a user waits for).

It is read once per process (:func:`default_environment`) and its parsed form is cached on
disk (:mod:`archivemap.metainfo.cache`), packed, keyed by the sha256 of the packaged file, so
a second process skips decompression and parsing, and builds only the packages it uses.

Refresh it (for a newer NOMAD): run ``nomad dev metainfo > export.json`` in the deployment's
environment, then ``python -m archivemap.metainfo.default export.json`` (rewrites the packaged
file), update :data:`archivemap._embedded.NOMAD_VERSION` and the README.
"""

from __future__ import annotations

import gzip
import hashlib
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from archivemap._embedded import EMBEDDED_METAINFO, NOMAD_VERSION
from archivemap.errors import DefinitionError
from archivemap.metainfo.cache import cached_environment
from archivemap.metainfo.environment import Environment

__all__ = [
    "DATA_FILE",
    "NOMAD_VERSION",
    "default_environment",
    "default_export",
    "default_sha256",
    "read_default_environment",
    "write_data_file",
]

#: The embedded export, gzip-compressed (found by a leaf, as the bundled server reads it too).
DATA_FILE = EMBEDDED_METAINFO
#: What error messages and ``Environment.source`` call it.
SOURCE_LABEL = f"<embedded NOMAD {NOMAD_VERSION} metainfo>"

_lock = threading.Lock()
_environment: Environment | None = None


def default_sha256() -> str:
    """The sha256 of the packaged file (the cache key: 1.2 MB hash, ~1 ms)."""
    return hashlib.sha256(DATA_FILE.read_bytes()).hexdigest()


def read_default_environment() -> Environment:
    """A new Environment of the embedded export: from the disk cache when there, else
    decompressed, parsed, and cached (:func:`default_environment` keeps one per process)."""
    blob = DATA_FILE.read_bytes()

    def parse() -> dict[str, Any]:
        try:
            data = orjson.loads(gzip.decompress(blob))
        except (OSError, EOFError, orjson.JSONDecodeError) as exc:
            raise DefinitionError(f"the embedded metainfo is damaged: {exc}", str(DATA_FILE)) from None
        if not isinstance(data, dict) or not isinstance(data.get("packages"), list):
            raise DefinitionError("the embedded metainfo is not an export", str(DATA_FILE))
        return data

    return cached_environment("embedded", hashlib.sha256(blob).hexdigest(), parse, SOURCE_LABEL)


def default_export() -> Mapping[str, Any]:
    """The embedded export as parsed from its JSON (from the disk cache when there)."""
    return read_default_environment().raw


def default_environment() -> Environment:
    """The embedded NOMAD metainfo as an Environment, built once per process (thread-safe)."""
    global _environment
    if _environment is None:
        with _lock:
            if _environment is None:
                _environment = read_default_environment()
    return _environment


def write_data_file(export: Path, target: Path = DATA_FILE) -> str:
    """Compress an export into the package data file (reproducibly: no timestamp); its sha256."""
    raw = export.read_bytes()
    data = orjson.loads(raw)
    if not isinstance(data, dict) or not isinstance(data.get("packages"), list):
        raise DefinitionError("not a metainfo export (no 'packages' list)", str(export))
    blob = gzip.compress(raw, 9, mtime=0)
    target.write_bytes(blob)
    return hashlib.sha256(blob).hexdigest()


if __name__ == "__main__":  # python -m archivemap.metainfo.default EXPORT.json
    if len(sys.argv) != 2:
        sys.exit("usage: python -m archivemap.metainfo.default EXPORT.json")
    print(write_data_file(Path(sys.argv[1])))
