"""The HTTP side of the local server: sockets, limits, injected faults and the request log.

One :class:`ApiRequestHandler` per connection (HTTP/1.1 keep-alive, as ``requests`` sessions
use it). Before an endpoint runs, a request passes the guards that make the server safe to
leave running: the ``Host`` header must name the server (DNS rebinding), the body must fit
the size cap, and a :class:`Watchdog` cuts off a client that is slow to send its request
(slowloris). Faults are decided when a request arrives, so a dropped or rate-limited request
costs the server nothing.
"""

from __future__ import annotations

import heapq
import ipaddress
import json
import logging
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import orjson

from archivemap.server._app import Api, Request, Response, internal_error
from archivemap.server._faults import FaultDecision, FaultInjector
from archivemap.server._log import RequestLog, RequestRecord, loggable_body

__all__ = ["ApiRequestHandler", "Watchdog", "dumps", "host_allowed", "loopback_hosts", "normalise_hosts"]

_logger = logging.getLogger("archivemap.server")

_FAULT_MESSAGES = {
    "rate_limit": "Service Unavailable: rate limit exceeded (injected by archivemap's local server)",
    "concurrency": "Service Unavailable: too many concurrent requests (injected by archivemap's local server)",
    "storm": "Service Unavailable (injected by archivemap's local server)",
}
_LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
_WRITE_SLICE = 1 << 20


def dumps(body: Any) -> bytes:
    """Serialise like NOMAD's API (orjson: NaN becomes null), falling back to the stdlib."""
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(body, default=str).encode("utf-8")


def loopback_hosts(bound: str) -> frozenset[str]:
    """The host names a server bound to ``bound`` answers by default."""
    return frozenset({bound.strip("[]").lower(), *_LOCAL_NAMES})


def _host_name(header: str) -> str:
    """The host of a ``Host`` header value, without port and IPv6 brackets, lower case."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value


def host_allowed(header: str | None, allowed: frozenset[str] | None) -> bool:
    """Whether a ``Host`` header names this server (``allowed`` None: any host)."""
    if allowed is None or "*" in allowed:
        return True
    if not header:
        return False
    name = _host_name(header)
    if name in allowed:
        return True
    try:
        return any(ipaddress.ip_address(name) == ipaddress.ip_address(host) for host in allowed if _is_ip(host))
    except ValueError:
        return False


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


class Watchdog:
    """Closes connections whose request has not fully arrived by its deadline.

    One thread for all connections of a server; handlers :meth:`arm` a deadline while they
    wait for a request (line, headers and body) and :meth:`disarm` it once it is read.
    """

    def __init__(self, interval: float = 0.1) -> None:
        self._interval = interval
        self._lock = threading.Lock()
        self._deadlines: dict[int, tuple[float, socket.socket]] = {}
        self._heap: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the watching thread (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="archivemap-server-watchdog", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the watching thread."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)

    def arm(self, connection: socket.socket, seconds: float) -> None:
        """Cut ``connection`` off unless :meth:`disarm` is called within ``seconds``."""
        deadline = time.monotonic() + seconds
        with self._lock:
            self._deadlines[id(connection)] = (deadline, connection)
            heapq.heappush(self._heap, (deadline, id(connection)))

    def disarm(self, connection: socket.socket) -> None:
        """Forget the deadline of ``connection``."""
        with self._lock:
            self._deadlines.pop(id(connection), None)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            now = time.monotonic()
            overdue: list[socket.socket] = []
            with self._lock:
                while self._heap and self._heap[0][0] <= now:
                    deadline, key = heapq.heappop(self._heap)
                    current = self._deadlines.get(key)
                    if current is not None and current[0] == deadline:
                        del self._deadlines[key]
                        overdue.append(current[1])
            for connection in overdue:
                _logger.info("closing a connection that did not send its request in time")
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class ApiRequestHandler(BaseHTTPRequestHandler):
    """Serves :attr:`api` below :attr:`base_path`; configured by subclassing per server."""

    protocol_version = "HTTP/1.1"
    server_version = "archivemap-local-nomad"
    #: socket timeout of reads and writes once a request is being answered (seconds)
    timeout = 60.0
    api: ClassVar[Api]
    injector: ClassVar[FaultInjector]
    request_log: ClassVar[RequestLog]
    base_path: ClassVar[str] = "/api/v1/"
    watchdog: ClassVar[Watchdog]
    #: seconds a client has to send a complete request (line, headers and body)
    request_timeout: ClassVar[float] = 5.0
    #: ``Host`` header values answered (None: any)
    allowed_hosts: ClassVar[frozenset[str] | None] = None
    #: the largest request body accepted (bytes)
    max_body_bytes: ClassVar[int] = 4 * 1024 * 1024

    def setup(self) -> None:
        super().setup()
        try:  # answers go out in two writes (headers, body): no Nagle delay between them
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def handle_one_request(self) -> None:
        self.watchdog.arm(self.connection, self.request_timeout)
        try:
            super().handle_one_request()
        except OSError:  # includes a socket the watchdog shut down
            self.close_connection = True
        finally:
            self.watchdog.disarm(self.connection)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch()

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch()

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch()

    def do_HEAD(self) -> None:  # noqa: N802
        # NOMAD's GET routes do not take HEAD: FastAPI answers 405 with its JSON detail,
        # and so does the API here; only the headers are sent (HTTP: no body after HEAD)
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        _logger.debug("%s %s", self.address_string(), format % args)

    def _dispatch(self) -> None:
        arrived, started = time.time(), time.monotonic()
        split = urllib.parse.urlsplit(self.path)
        path = split.path
        api_path = path[len(self.base_path) :].strip("/") if path.startswith(self.base_path) else None
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        raw_body = b""
        guard = self._guard()
        if guard is None:
            read = self._read_body()
            if read is None:  # the client hung up or was cut off mid-body
                self.close_connection = True
                return
            raw_body = read
        self.watchdog.disarm(self.connection)
        logged_body = loggable_body(raw_body, content_type)

        def record(status: int, sent: int, fault: str | None) -> None:
            self.request_log.append(
                RequestRecord(
                    method=self.command,
                    path=api_path if api_path is not None else path,
                    query=split.query,
                    body=logged_body,
                    status=status,
                    response_bytes=sent,
                    timestamp=arrived,
                    duration=time.monotonic() - started,
                    authorized=self.headers.get("Authorization") is not None,
                    fault=fault,
                )
            )

        if guard is not None:
            payload = dumps(guard.body)
            record(guard.status, len(payload), None)
            self.close_connection = True
            self._send(guard, len(payload), payload, truncated=False, close=True)
            return
        decision = self.injector.admit()
        # Records are written before the answer leaves, so a client that saw the answer
        # (or the dropped connection) always finds its request in the log.
        if decision.kind == "drop":
            record(0, 0, "drop")
            self._drop_connection()
            return
        request = Request(
            method=self.command,
            path=api_path or "",
            query=urllib.parse.parse_qs(split.query, keep_blank_values=True),
            authorization=self.headers.get("Authorization"),
            body=raw_body,
            content_type=content_type,
            url=f"http://{self.headers.get('Host', '')}{self.path}",
            range=self.headers.get("Range"),
        )
        try:
            response = self._answer(decision, request, api_path)
        finally:
            self.injector.release(decision)
        payload = response.body if isinstance(response.body, bytes) else dumps(response.body)
        body = payload if decision.truncate is None else payload[: int(len(payload) * decision.truncate)]
        fault = response.fault or decision.kind or ("truncate" if decision.truncate is not None else None)
        record(response.status, len(body), fault)
        self._send(response, len(payload), body, truncated=decision.truncate is not None)

    def _guard(self) -> Response | None:
        """The early answer for a request that may not reach the API, or None."""
        if not host_allowed(self.headers.get("Host"), self.allowed_hosts):
            _logger.warning("refused a request for host %r (not this server)", self.headers.get("Host"))
            return Response(400, {"detail": "Invalid host header"})
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return Response(411, {"detail": "Length Required: send the body with a Content-Length"})
        length = self.headers.get("Content-Length")
        if length:
            try:
                size = int(length)
            except ValueError:
                size = -1
            if size < 0:
                return Response(400, {"detail": "Invalid Content-Length header"})
            if size > self.max_body_bytes:
                return Response(
                    413,
                    {"detail": f"Request body too large: {size} bytes, the limit is {self.max_body_bytes} bytes"},
                )
        return None

    def _answer(self, decision: FaultDecision, request: Request, api_path: str | None) -> Response:
        if decision.kind is not None:
            return Response(decision.status, {"detail": _FAULT_MESSAGES[decision.kind]}, dict(decision.headers), decision.kind)
        if decision.delay:
            time.sleep(decision.delay)
        if api_path is None:
            return Response(404, {"detail": "Not Found"})
        try:
            return self.api.handle(request)
        except Exception as error:  # Api.handle already catches; belt and braces
            return internal_error(error)

    def _read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        size = int(length) if length else 0
        if size <= 0:
            return b""
        try:
            data = self.rfile.read(size)
        except OSError:
            return None
        return data if len(data) == size else None

    def _send(self, response: Response, full_length: int, body: bytes, truncated: bool, close: bool = False) -> None:
        try:
            self.send_response(response.status)
            if "Content-Type" not in response.headers:  # raw files bring their own
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(full_length))
            for name, value in response.headers.items():
                self.send_header(name, value)
            if truncated or close:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command == "HEAD":
                body = b""
            # in slices: the socket timeout bounds each slice, so a slow reader of a large
            # answer is served, while a reader that stalls is let go
            view = memoryview(body)
            for start in range(0, len(view), _WRITE_SLICE):
                self.wfile.write(view[start : start + _WRITE_SLICE])
            self.wfile.flush()
        except OSError:  # the client hung up; nothing left to answer
            self.close_connection = True
            return
        if truncated:
            # The announced length was the full body: the client sees the connection end early.
            self._drop_connection()

    def _drop_connection(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def normalise_hosts(hosts: Iterable[str]) -> frozenset[str]:
    """``allowed_hosts`` as given by a user: names lower-cased, brackets and ports removed."""
    return frozenset(_host_name(host) if host != "*" else "*" for host in hosts)
