"""A malicious HTTP server on 127.0.0.1 for the client's adversarial tests.

The test supplies ``respond(handler, method, path, body)``, which writes whatever it likes to
``handler.wfile`` (a gzip bomb, a body dripping byte by byte, a reason phrase echoing a
password). Every request is logged in :attr:`HostileServer.requests` before it is answered,
so "no request reached this server" is a plain assertion. Used in-process and, for the
memory and time budgets, inside :func:`tests.adversarial.harness.run_bounded` children.
"""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Respond = Callable[[BaseHTTPRequestHandler, str, str, bytes], None]


class HostileServer:
    """A real ``ThreadingHTTPServer`` in a daemon thread whose answers the test writes raw.

    Attributes:
        url: the API base, ``http://127.0.0.1:<port>/api/v1``.
        requests: ``(method, path below /api/v1/, headers, body)`` of every request.
    """

    def __init__(self, respond: Respond) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("/api/v1/", 1)[-1]
                owner.requests.append((self.command, path, dict(self.headers), body))
                try:
                    respond(self, self.command, path, body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up on purpose: that is the point
                self.close_connection = True

            do_GET = do_POST = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/api/v1"
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def send_json(
    handler: BaseHTTPRequestHandler,
    status: int,
    payload: Any,
    headers: dict[str, str] | None = None,
    reason: str | None = None,
    raw: bytes | None = None,
) -> None:
    """One complete answer with a ``Content-Length`` (``raw`` replaces the JSON body)."""
    data = raw if raw is not None else json.dumps(payload).encode()
    handler.send_response(status, reason)
    for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
        handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(data)))
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.wfile.write(data)


def bomb_blocks(encoding: str, megabytes: int) -> Iterator[bytes]:
    """A ``gzip`` or ``deflate`` stream of ``megabytes`` MiB of zeros, about 1 KiB per MiB.

    After ``Z_FULL_FLUSH`` the compressor starts from scratch, so one compressed MiB can be
    repeated: gigabytes of output cost nothing to make and a few MiB to send.
    """
    wbits = 31 if encoding == "gzip" else 15
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    zeros = bytes(1 << 20)
    yield compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    for _ in range(megabytes - 1):
        yield block
