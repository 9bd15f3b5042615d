"""Reading metainfo exports: from a file, a URL, JSON text or bytes, or a dict, to an Environment.

NOMAD hands its metainfo out in several wrappings: an Environment export
(``{"packages": [...]}``), a single Package export, the GUI's ``artifacts.js``
(``window.nomadArtifacts = {...};``, the metainfo under ``metainfo``), or a deployment URL whose
``/gui/artifacts.js`` serves it. This module unwraps them all into the dict an
:class:`~archivemap.metainfo.environment.Environment` is built from, and keeps the network part
bounded: a download is streamed, refused past :data:`MAX_METAINFO_BYTES` (counted as it is
decompressed) or past :data:`METAINFO_DEADLINE`. It exists apart from the environment because
none of this is about definitions: the environment takes a parsed dict and never touches a file
or the network, and :mod:`archivemap.metainfo.deployment` reuses the bounded reading for its
conditional GETs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from archivemap._json import parse_json
from archivemap._lazy import deferred_import
from archivemap.errors import ArchiveDataError, DefinitionError
from archivemap.metainfo.environment import Environment

requests = deferred_import("requests")  # only a metainfo URL needs it, and it costs 0.1 s to import

__all__ = [
    "MAX_METAINFO_BYTES",
    "METAINFO_DEADLINE",
    "artifacts_url",
    "load_environment",
    "parse_export",
    "read_metainfo_body",
]


def _read_text(source: str | Path) -> tuple[str, str]:
    """Text and label of a file or URL; a URL to a deployment reads its GUI artifacts."""
    text = str(source)
    if text.startswith(("http://", "https://")):
        url = artifacts_url(text)
        return _download_text(requests, url), url
    path = Path(source)
    return path.read_text(encoding="utf-8"), str(path)


def artifacts_url(url: str) -> str:
    """Where a deployment serves its metainfo: ``<root>/gui/artifacts.js`` for its API or root URL.

    A URL that already names a ``.js`` or ``.json`` file is returned as it is.
    """
    if url.endswith((".js", ".json")):
        return url
    url = url.rstrip("/")
    for suffix in ("/api/v1", "/api"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    return url + "/gui/artifacts.js"


#: The most a metainfo download may be once decompressed (NOMAD 2.0's export: 8.4 MB), and
#: how long it may take in all; a server that sends more or drips slower is refused.
MAX_METAINFO_BYTES = 256 * 1024 * 1024
METAINFO_DEADLINE = 300.0


def read_metainfo_body(response: Any, url: str, deadline: float) -> bytes:
    """The body of a streamed metainfo answer, within :data:`MAX_METAINFO_BYTES` and ``deadline``.

    Counted as it is decompressed, so a compressed bomb stops at the limit.

    Raises:
        DefinitionError: too large, or past ``deadline`` (a ``time.monotonic()`` value).
    """
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=1 << 16):
        size += len(chunk)
        if size > MAX_METAINFO_BYTES:
            raise DefinitionError(f"metainfo larger than {MAX_METAINFO_BYTES} bytes", url)
        if time.monotonic() > deadline:
            raise DefinitionError(f"metainfo download took longer than {METAINFO_DEADLINE:.0f} s", url)
        chunks.append(chunk)
    return b"".join(chunks)


def _download_text(requests: Any, url: str) -> str:
    """GET ``url`` as text, streamed, within :data:`MAX_METAINFO_BYTES` and the deadline.

    Raises:
        DefinitionError: the request failed, the answer was an error, too large or too slow.
    """
    deadline = time.monotonic() + METAINFO_DEADLINE
    try:
        with requests.get(url, timeout=(10, 60), stream=True) as response:
            response.raise_for_status()
            return read_metainfo_body(response, url, deadline).decode("utf-8", "replace")  # NOMAD: UTF-8
    except requests.RequestException as exc:
        raise DefinitionError(f"cannot download metainfo: {type(exc).__name__}: {exc}", url) from None


def parse_export(text: str, label: str) -> dict[str, Any]:
    """Parse an export, or a GUI ``artifacts.js`` (``window.nomadArtifacts = {...};``).

    Raises:
        DefinitionError: no JSON object, invalid JSON, or not an object.
    """
    body = text.strip()
    if not body.startswith("{"):
        start = body.find("{")
        if start < 0:
            raise DefinitionError("no JSON object in metainfo source", label)
        body = body[start:].rstrip().rstrip(";")
    try:
        data = parse_json(body)  # exact: an integer default of any size stays an int
    except ArchiveDataError as exc:
        raise DefinitionError(f"metainfo cannot be read: {exc.args[0]}", label) from None
    if isinstance(data, dict) and "packages" not in data and isinstance(data.get("metainfo"), dict):
        data = data["metainfo"]
    if not isinstance(data, dict):
        raise DefinitionError("metainfo root must be a JSON object", label)
    return data


def load_environment(source: Environment | Mapping[str, Any] | str | Path | bytes) -> Environment:
    """Load a metainfo Environment from a file, URL, JSON text/bytes or dict.

    Args:
        source: a path to an export (``.json``) or GUI artifact (``artifacts.js``), the URL of
            a NOMAD deployment (its ``/gui/artifacts.js`` is read), JSON bytes, or the dict.
            An :class:`Environment` is returned as it is.

    Returns:
        The environment.

    Raises:
        DefinitionError: the source is not a metainfo export.
    """
    if isinstance(source, Environment):
        return source
    if isinstance(source, Mapping):
        data = dict(source)
        label = "<dict>"
        if "packages" not in data and isinstance(data.get("metainfo"), Mapping):
            data = dict(data["metainfo"])
        if "packages" not in data and "section_definitions" in data:
            data = {"packages": [data]}  # a single Package export
    elif isinstance(source, bytes):
        data, label = parse_export(source.decode("utf-8"), "<bytes>"), "<bytes>"
    else:
        text, label = _read_text(source)
        data = parse_export(text, label)
        if "packages" not in data and "section_definitions" in data:
            data = {"packages": [data]}
    return Environment(data, source=label)
