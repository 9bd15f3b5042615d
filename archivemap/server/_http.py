"""The HTTP side of the local server: sockets, injected faults and the request log.

One :class:`ApiRequestHandler` per connection (HTTP/1.1 keep-alive, as ``requests`` sessions
use it). Faults are decided when a request arrives, before the endpoint runs, so a dropped or
rate-limited request costs the server nothing.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import orjson

from archivemap.server._app import Api, Request, Response, internal_error
from archivemap.server._faults import FaultDecision, FaultInjector
from archivemap.server._log import RequestLog, RequestRecord, redact
from archivemap.server._problems import validation_item

__all__ = ["ApiRequestHandler", "dumps"]

_logger = logging.getLogger("archivemap.server")

_FAULT_MESSAGES = {
    "rate_limit": "Service Unavailable: rate limit exceeded (injected by archivemap's local server)",
    "concurrency": "Service Unavailable: too many concurrent requests (injected by archivemap's local server)",
    "storm": "Service Unavailable (injected by archivemap's local server)",
}


def dumps(body: Any) -> bytes:
    """Serialise like NOMAD's API (orjson: NaN becomes null), falling back to the stdlib."""
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(body, default=str).encode("utf-8")


class ApiRequestHandler(BaseHTTPRequestHandler):
    """Serves :attr:`api` below :attr:`base_path`; configured by subclassing per server."""

    protocol_version = "HTTP/1.1"
    server_version = "archivemap-local-nomad"
    api: ClassVar[Api]
    injector: ClassVar[FaultInjector]
    request_log: ClassVar[RequestLog]
    base_path: ClassVar[str] = "/api/v1/"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch()

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        _logger.debug("%s %s", self.address_string(), format % args)

    def _dispatch(self) -> None:
        arrived, started = time.time(), time.monotonic()
        split = urllib.parse.urlsplit(self.path)
        path = split.path
        api_path = path[len(self.base_path) :].strip("/") if path.startswith(self.base_path) else None
        raw_body = self._read_body()
        request, problem = self._parse(api_path or "", split.query, raw_body)
        decision = self.injector.admit()
        logged_body = None if request is None else redact(request.json if request.form is None else request.form)

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

        # Records are written before the answer leaves, so a client that saw the answer
        # (or the dropped connection) always finds its request in the log.
        if decision.kind == "drop":
            record(0, 0, "drop")
            self._drop_connection()
            return
        try:
            response = self._answer(decision, request, problem, api_path)
        finally:
            self.injector.release(decision)
        payload = dumps(response.body)
        body = payload if decision.truncate is None else payload[: int(len(payload) * decision.truncate)]
        fault = response.fault or decision.kind or ("truncate" if decision.truncate is not None else None)
        record(response.status, len(body), fault)
        self._send(response, len(payload), body, truncated=decision.truncate is not None)

    def _answer(
        self, decision: FaultDecision, request: Request | None, problem: Response | None, api_path: str | None
    ) -> Response:
        if decision.kind is not None:
            return Response(decision.status, {"detail": _FAULT_MESSAGES[decision.kind]}, dict(decision.headers), decision.kind)
        if decision.delay:
            time.sleep(decision.delay)
        if api_path is None:
            return Response(404, {"detail": "Not Found"})
        if problem is not None:
            return problem
        assert request is not None
        try:
            return self.api.handle(request)
        except Exception as error:  # Api.handle already catches; belt and braces
            return internal_error(error)

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        try:
            size = int(length) if length else 0
        except ValueError:
            size = 0
        return self.rfile.read(size) if size > 0 else b""

    def _parse(self, api_path: str, query: str, raw: bytes) -> tuple[Request | None, Response | None]:
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        json_body: Any = None
        form: dict[str, str] | None = None
        if content_type == "application/x-www-form-urlencoded":
            pairs = urllib.parse.parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
            form = dict(pairs)
        elif raw.strip():
            try:
                json_body = orjson.loads(raw)
            except orjson.JSONDecodeError as error:
                item = validation_item(
                    ["body", error.pos], "JSON decode error", "json_invalid", {}, {"error": error.msg}
                )
                return None, Response(422, {"detail": [item]})
        request = Request(
            method=self.command,
            path=api_path,
            query=urllib.parse.parse_qs(query, keep_blank_values=True),
            authorization=self.headers.get("Authorization"),
            json=json_body,
            form=form,
        )
        return request, None

    def _send(self, response: Response, full_length: int, body: bytes, truncated: bool) -> None:
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(full_length))
            for name, value in response.headers.items():
                self.send_header(name, value)
            if truncated:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
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
