"""The local NOMAD-compatible server: lifecycle, configuration and the public handle on it."""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Iterable, Mapping
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from archivemap._embedded import EMBEDDED_METAINFO
from archivemap.server._app import Api
from archivemap.server._auth import APP_TOKEN_MAX_EXPIRES_IN, TokenStore
from archivemap.server._faults import FaultInjector, Faults
from archivemap.server._http import ApiRequestHandler, Watchdog, loopback_hosts, normalise_hosts
from archivemap.server._log import MAX_RECORDS, RequestLog, RequestRecord
from archivemap.server._store import EntryStore

__all__ = ["LocalServer", "serve"]

_logger = logging.getLogger("archivemap.server")

API_BASE = "/api/v1"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # the open connections, so that stopping ends them: a stopped server must not go on
        # answering a client's keep-alive connection from a handler thread
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End every open connection (after :meth:`shutdown`: no new ones come)."""
        with self._connections_lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:  # already gone
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up (or faults that hang up on them) are not server errors.
        _logger.debug("connection error from %s", client_address, exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class LocalServer:
    """A NOMAD API v1 subset served from local archives, for offline tests and development.

    Serves ``entries/query``, ``entries/archive/query``, ``entries/{id}/archive[/query]``,
    ``entries/{id}``, ``uploads/{upload_id}/archive/{entry_id}``, raw files
    (``entries/{id}/raw``, ``uploads/{id}/raw/{path}`` with byte ranges, ``entries/raw/query``),
    ``uploads``, ``uploads/{id}[/entries]``, ``datasets/[{id}]``, ``users``, ``auth/token`` and
    ``auth/app_token`` with NOMAD's ``required`` semantics and error layouts, and injects
    faults on demand (:class:`Faults`). Every request is recorded in :attr:`requests`.

    Example::

        with LocalServer("archives/") as server:
            response = requests.post(f"{server.url}/entries/query", json={})

    Args:
        source: a folder of archive ``*.json`` files, or a mapping ``entry_id -> archive``
            (archives are shared, not copied, so thousands of entries are cheap).
        host: the address to bind; must be a loopback address unless ``allow_remote``.
        port: the port; 0 picks a free one.
        faults: faults to inject from the start (changeable later with :meth:`update_faults`).
        users: ``username -> password`` accepted by ``POST auth/token``.
        require_auth: when True every endpoint except ``POST auth/token`` answers 401
            without a valid bearer token.
        allow_remote: allow binding a non-loopback address (the server has no real security).
        token_lifetime: seconds an access token stays valid.
        app_token_max_expires_in: the largest ``expires_in`` ``auth/app_token`` accepts.
        metainfo: a NOMAD metainfo export (``.json`` or ``.json.gz``, e.g. nomad-lab 2.0.0's
            ``nomad dev metainfo``); with it ``required`` follows NOMAD's schema exactly
            (unknown keys skipped, only reference quantities resolved, ``m_def`` honoured)
            and queries know every search quantity. Default: the NOMAD 2.0.0 export shipped
            with the package, so the server answers as NOMAD does out of the box (read once
            per process, ~0.3 s). ``None``: no schema; ``required`` then follows the JSON as
            stored (every key kept, every string that looks like a reference resolved).
        token: a static secret; when set, every request must carry
            ``Authorization: Bearer <token>`` or gets 401. It is never logged.
        allowed_hosts: the ``Host`` header values answered; others get 400 (DNS
            rebinding). Default: the bound address and the localhost names; ``["*"]``
            answers any host.
        request_timeout: seconds a client has to send a complete request (line, headers,
            body) before its connection is closed; also how long an idle keep-alive
            connection is kept.
        max_body_bytes: the largest request body; larger ones get 413.
        max_log_records: how many requests :attr:`requests` keeps (the newest).
        raw: the raw-files folder, laid out ``<raw>/<upload_id>/<path in upload>``, served by
            ``entries/{id}/raw``, ``uploads/{id}/raw/{path}`` and ``entries/raw/query``; by
            default a ``raw/`` folder beside a served archives folder, when there is one.
        pats: personal access tokens ``token -> scopes`` (e.g. ``["entries:read"]``): requests
            with one get NOMAD's 403 ``Missing scopes: [...]`` outside their scopes.

    Raises:
        ValueError: for a non-loopback ``host`` without ``allow_remote``, or bad limits.
        NotADirectoryError: when ``source`` is a path but not a folder.
    """

    def __init__(
        self,
        source: str | Path | Mapping[str, Mapping[str, Any]],
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
        users: Mapping[str, str] | None = None,
        require_auth: bool = False,
        *,
        allow_remote: bool = False,
        token_lifetime: float = 3600.0,
        app_token_max_expires_in: int = APP_TOKEN_MAX_EXPIRES_IN,
        metainfo: str | Path | None = EMBEDDED_METAINFO,
        token: str | None = None,
        allowed_hosts: Iterable[str] | None = None,
        request_timeout: float = 5.0,
        max_body_bytes: int = 4 * 1024 * 1024,
        max_log_records: int = MAX_RECORDS,
        raw: str | Path | None = None,
        pats: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        if not allow_remote and not _is_loopback(host):
            raise ValueError(
                f"refusing to bind {host!r}: the local server only binds loopback addresses "
                "(pass allow_remote=True to override; it has no real security)"
            )
        if request_timeout <= 0 or max_body_bytes <= 0 or max_log_records <= 0:
            raise ValueError("request_timeout, max_body_bytes and max_log_records must be positive")
        if token is not None and not token.strip():
            raise ValueError("token must not be empty")
        self.host = host.strip("[]")
        self.allowed_hosts = (
            loopback_hosts(self.host) if allowed_hosts is None else normalise_hosts(allowed_hosts)
        )
        self.request_timeout = float(request_timeout)
        self.max_body_bytes = int(max_body_bytes)
        self._requested_port = port
        if isinstance(source, Mapping):
            self.store = EntryStore.from_mapping(source, metainfo)
        else:
            self.store = EntryStore.from_directory(source, metainfo)
        self._tokens = TokenStore(users, token_lifetime, app_token_max_expires_in)
        for pat, scopes in (pats or {}).items():
            self._tokens.add_pat(pat, "pat-user", scopes)
        if raw is None and not isinstance(source, Mapping):
            sibling = Path(source).resolve().parent / "raw"
            raw = sibling if sibling.is_dir() else None
        self.raw = None if raw is None else Path(raw)
        self._injector = FaultInjector(faults)
        self._log = RequestLog(max_log_records)
        self.require_auth = require_auth or token is not None
        self._api = Api(self.store, self._tokens, self._injector, require_auth, token, raw=self.raw)
        self._watchdog = Watchdog()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        state = self.url if self._httpd is not None else "stopped"
        return f"LocalServer({state}, entries={len(self.store)}, require_auth={self.require_auth})"

    # -- lifecycle -----------------------------------------------------------------------

    def _bind(self) -> _Server:
        api, injector, log = self._api, self._injector, self._log
        handler = type(
            "BoundApiRequestHandler",
            (ApiRequestHandler,),
            {
                "api": api,
                "injector": injector,
                "request_log": log,
                "base_path": API_BASE + "/",
                "watchdog": self._watchdog,
                "request_timeout": self.request_timeout,
                "allowed_hosts": self.allowed_hosts,
                "max_body_bytes": self.max_body_bytes,
            },
        )
        server_class = _Server6 if ":" in self.host else _Server
        server = server_class((self.host, self._requested_port), handler)
        self._watchdog.start()
        return server

    def start(self) -> LocalServer:
        """Bind and serve in a background thread; returns self.

        Raises:
            RuntimeError: when already running.
            OSError: when the port cannot be bound.
        """
        if self._httpd is not None:
            raise RuntimeError("LocalServer is already running")
        self._httpd = self._bind()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"archivemap-server-{self.port}", daemon=True,
        )
        self._thread.start()
        _logger.info("serving %d entries at %s", len(self.store), self.url)
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and end open connections; safe to call twice."""
        httpd, thread = self._httpd, self._thread
        self._httpd, self._thread = None, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        httpd.close_connections()
        self._watchdog.stop()
        if thread is not None:
            thread.join(timeout=5)

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (what ``archivemap serve`` does)."""
        if self._httpd is not None:
            raise RuntimeError("LocalServer is already running")
        self._httpd = self._bind()
        _logger.info("serving %d entries at %s", len(self.store), self.url)
        try:
            self._httpd.serve_forever(poll_interval=0.25)
        finally:
            self._httpd.server_close()
            self._watchdog.stop()
            self._httpd = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- addresses -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (the requested one before :meth:`start`)."""
        if self._httpd is None:
            return self._requested_port
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The API base URL, ``http://127.0.0.1:<port>/api/v1`` (no trailing slash)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{API_BASE}"

    # -- faults --------------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        """A copy of the current fault configuration (counters show what is left)."""
        return self._injector.faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._injector.configure(faults)

    def update_faults(self, **changes: Any) -> Faults:
        """Change some fault settings while running, e.g. ``update_faults(fail_next=3)``.

        Returns:
            The new configuration.

        Raises:
            TypeError: for an unknown field.
            ValueError: for an out-of-range value.
        """
        return self._injector.update(**changes)

    def clear_faults(self) -> None:
        """Turn every fault off (keeps the seed)."""
        self._injector.configure(Faults(seed=self._injector.faults.seed))

    @property
    def in_flight(self) -> int:
        """Requests being handled right now."""
        return self._injector.in_flight

    # -- auth ----------------------------------------------------------------------------

    def expire_tokens(self, refresh_tokens: bool = False) -> None:
        """Invalidate every issued access and app token, to test a client's refresh on 401.

        Args:
            refresh_tokens: also invalidate refresh tokens (forces a new password login).
        """
        self._tokens.expire_all(refresh_tokens)

    # -- request log ---------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the request log, oldest first."""
        return self._log.snapshot()

    def clear_log(self) -> None:
        """Forget all recorded requests."""
        self._log.clear()

    def count_requests(
        self, path: str | None = None, method: str | None = None, status: int | None = None
    ) -> int:
        """How many recorded requests match (see :meth:`RequestLog.count`).

        Args:
            path: path below the API base, e.g. ``"entries/archive/query"``; a trailing
                ``*`` matches a prefix.
            method: HTTP method.
            status: response status (0 for dropped connections).
        """
        return self._log.count(path=path, method=method, status=status)


def serve(directory: str | Path, host: str = "127.0.0.1", port: int = 8000, **options: Any) -> None:
    """Serve a folder of archives until interrupted (the ``archivemap serve DIR`` command).

    Args:
        directory: the folder of archive ``*.json`` files.
        host: the loopback address to bind.
        port: the port (0 picks a free one; the URL is logged at INFO level).
        **options: further :class:`LocalServer` arguments (``users``, ``faults``, ...).
    """
    server = LocalServer(directory, host=host, port=port, **options)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
