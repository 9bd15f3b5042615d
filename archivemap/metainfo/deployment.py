"""A deployment's metainfo by URL, downloaded once and kept in the user's cache folder.

A NOMAD deployment serves its metainfo (with its plugins) at ``<root>/gui/artifacts.js``:
8–10 MB that every process would download again. :func:`deployment_environment` keeps it:

- **once per process**: the Environment is remembered by URL;
- **once per content on disk**: the parsed export is cached like the embedded one
  (:mod:`archivemap.metainfo.cache`), keyed by the sha256 of what the server sent; a small
  record per deployment URL (``deployment-<sha256 of the URL>.json``) names that content and
  the validators the server gave (``ETag``, ``Last-Modified``);
- **revalidated cheaply**: a later process sends one conditional GET (``If-None-Match`` /
  ``If-Modified-Since``); ``304 Not Modified`` costs no body and no parse. A server that gives
  no validators is downloaded again, and its content hash still spares the parse when
  nothing changed;
- **usable offline**: when the server cannot be reached (or ``offline=True``), the cached
  metainfo is used; only a deployment never seen before needs the network.

The download is bounded like :func:`~archivemap.metainfo.exports.load_environment`'s
(:data:`~archivemap.metainfo.exports.MAX_METAINFO_BYTES`, a deadline), streamed.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests

from archivemap.errors import DefinitionError
from archivemap.metainfo.cache import cache_dir, load_cached_environment, store_environment, write_atomically
from archivemap.metainfo.environment import Environment
from archivemap.metainfo.exports import METAINFO_DEADLINE, artifacts_url, parse_export, read_metainfo_body

__all__ = ["Download", "deployment_environment", "download_metainfo", "forget_deployments"]

#: ``requests.get`` or a session's ``get``: called as ``get(url, headers=..., timeout=..., stream=True)``.
SessionGet = Callable[..., Any]

_memo: dict[str, Environment] = {}
_memo_lock = threading.Lock()


class Download:
    """One answer to a metainfo GET: the status, the validators, and the body (empty for 304)."""

    __slots__ = ("status", "etag", "last_modified", "body")

    def __init__(self, status: int, etag: str | None, last_modified: str | None, body: bytes) -> None:
        self.status = status
        self.etag = etag
        self.last_modified = last_modified
        self.body = body


def download_metainfo(
    url: str, get: SessionGet | None = None, headers: Mapping[str, str] | None = None
) -> Download:
    """GET ``url`` streamed, within :data:`MAX_METAINFO_BYTES` and the deadline.

    Raises:
        DefinitionError: an error status, too large or too slow.
        requests.RequestException: the server could not be reached (the caller decides
            whether a cached copy will do).
    """
    get = get or requests.get
    deadline = time.monotonic() + METAINFO_DEADLINE
    with get(url, headers=dict(headers or {}), timeout=(10, 60), stream=True) as response:
        status = int(response.status_code)
        etag = response.headers.get("ETag")
        modified = response.headers.get("Last-Modified")
        if status == 304:
            return Download(304, etag, modified, b"")
        if status >= 400:
            raise DefinitionError(f"cannot download metainfo: HTTP {status}", url)
        return Download(status, etag, modified, read_metainfo_body(response, url, deadline))


def deployment_environment(
    api_base_url: str,
    *,
    session_get: SessionGet | None = None,
    offline: bool = False,
    revalidate: bool = True,
) -> Environment:
    """The metainfo a NOMAD deployment serves, cached on disk and per process.

    Args:
        api_base_url: the deployment's API (``https://nomad-lab.eu/prod/v1/api/v1``), its root,
            or the URL of its ``artifacts.js``.
        session_get: what sends the GET (a client's ``session.get``, for its headers, proxies
            and retries); ``requests.get`` by default.
        offline: never ask the server; use the cached copy (raises without one).
        revalidate: ask the server whether the cached copy is current (one conditional GET,
            once per process); ``False`` uses any cached copy as it is.

    Returns:
        The environment; the same object for the same URL within a process.

    Raises:
        DefinitionError: nothing cached and the download failed (or ``offline``), or the
            deployment's answer is not metainfo.
    """
    url = artifacts_url(api_base_url)
    with _memo_lock:
        found = _memo.get(url)
        if found is not None:
            return found
        env = _fetch(url, session_get, offline=offline, revalidate=revalidate)
        _memo[url] = env
        return env


def forget_deployments() -> None:
    """Drop the per-process memo (the disk cache stays): the next call revalidates."""
    with _memo_lock:
        _memo.clear()


def _fetch(url: str, get: SessionGet | None, *, offline: bool, revalidate: bool) -> Environment:
    record_path = cache_dir() / "metainfo" / f"deployment-{hashlib.sha256(url.encode()).hexdigest()[:40]}.json"
    record = _read_record(record_path, url)
    cached = load_cached_environment("deployment", record["sha256"], url) if record else None
    if cached is not None and (offline or not revalidate):
        return cached
    if offline:
        raise DefinitionError("no cached metainfo for this deployment (offline)", url)
    headers: dict[str, str] = {}
    if cached is not None and record is not None:
        if record.get("etag"):
            headers["If-None-Match"] = record["etag"]
        if record.get("last_modified"):
            headers["If-Modified-Since"] = record["last_modified"]
    try:
        answer = download_metainfo(url, get, headers)
    except requests.RequestException as exc:
        if cached is not None:  # offline, or the server is down: the copy we have will do
            return cached
        raise DefinitionError(f"cannot download metainfo: {type(exc).__name__}: {exc}", url) from None
    if answer.status == 304 and cached is not None:
        return cached
    if answer.status == 304:  # a validator we did not send: ask again, unconditionally
        answer = download_metainfo(url, get)
    sha = hashlib.sha256(answer.body).hexdigest()
    env = load_cached_environment("deployment", sha, url)  # the same content another URL (or an earlier run) sent
    if env is None:
        data = parse_export(answer.body.decode("utf-8", "replace"), url)
        if "packages" not in data and "section_definitions" in data:
            data = {"packages": [data]}
        if not isinstance(data.get("packages"), list):
            raise DefinitionError("the deployment's answer is not metainfo (no 'packages')", url)
        env = store_environment("deployment", sha, data, url)
    _write_record(record_path, {"url": url, "sha256": sha, "etag": answer.etag, "last_modified": answer.last_modified})
    return env


def _read_record(path: Path, url: str) -> dict[str, Any] | None:
    """The deployment's record, or ``None`` when missing, unreadable or not this URL's."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("url") != url or not isinstance(record.get("sha256"), str):
        return None
    return record


def _write_record(path: Path, record: dict[str, Any]) -> None:
    """Write the record atomically (temp file + rename); a failure only costs a download."""
    write_atomically(path, json.dumps(record).encode())
