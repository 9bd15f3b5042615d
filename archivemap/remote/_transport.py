"""The client's transport: urllib3 connections that end at the API call's deadline.

Why a module of its own: socket timeouts bound each ``recv``, not their sum, so a server that
sends its status line and headers one byte per second never trips them. Every API call has a
total deadline instead (``Client(deadline=...)``); this module makes the connections honour it.
The calling thread declares its deadline (:func:`call_deadline`), the watched connections arm
a timer for their request and header phase, and the timer shuts the socket down when the
deadline passes (:func:`shut_down_at`), which ends a blocked ``recv`` in any thread at once.
The body is read under the same deadline by :func:`archivemap.remote._body.read_body`, with
:func:`watchdog` for its socket.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import requests
import urllib3
from requests.adapters import HTTPAdapter

from archivemap._version import __version__

__all__ = [
    "REDIRECTS",
    "RETRYABLE_EXCEPTIONS",
    "DeadlineAdapter",
    "DeadlineExceeded",
    "call_deadline",
    "new_session",
    "shut_down_at",
    "watchdog",
]

#: The statuses of a redirect: the client follows them itself, so credentials stay home.
REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
# Failures after which the same request may well succeed: the connection dropped, timed
# out, or the body arrived cut short (requests raises ChunkedEncodingError for a body
# shorter than its Content-Length; a cut without Content-Length shows up as bad JSON).
RETRYABLE_EXCEPTIONS: Final = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


class DeadlineExceeded(Exception):
    """The call's total deadline passed (while waiting, sending or reading)."""


#: The deadline of the API call the current thread is making (read by the connections).
_CALL = threading.local()


@contextmanager
def call_deadline(deadline: float | None) -> Iterator[None]:
    """Within the block, connections the current thread uses end at ``deadline`` (monotonic)."""
    _CALL.deadline = deadline  # for the connection's header-phase watchdog
    try:
        yield
    finally:
        _CALL.deadline = None


def shut_down_at(deadline: float, get_socket: Any, fired: threading.Event | None = None) -> threading.Timer:
    """A started timer that shuts down ``get_socket()`` at ``deadline`` (a monotonic time).

    A ``recv`` blocked in another thread returns at once when its socket is shut down, so
    a server dripping bytes cannot hold that thread past the deadline, however short each
    individual wait is. The socket is looked up when the timer fires (a connection may open
    its socket only after the timer was armed).
    """

    def fire() -> None:
        if fired is not None:
            fired.set()
        sock = get_socket()
        if isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(max(0.0, deadline - time.monotonic()), fire)
    timer.daemon = True
    timer.start()
    return timer


def watchdog(response: requests.Response, deadline: float | None, fired: threading.Event) -> threading.Timer | None:
    """A timer that shuts the response's socket down when the deadline passes.

    Reads return what the socket has, but one read may still wait up to the socket
    timeout; the watchdog ends even that wait at the deadline. ``fired`` tells the
    reader why the body ended.
    """
    if deadline is None:
        return None
    connection = getattr(response.raw, "connection", None)
    return shut_down_at(deadline, lambda: getattr(connection, "sock", None), fired)


def _arm(connection: Any) -> None:
    deadline = getattr(_CALL, "deadline", None)
    if deadline is not None:
        connection._archivemap_watch = shut_down_at(deadline, lambda: getattr(connection, "sock", None))


def _disarm(connection: Any) -> None:
    timer = getattr(connection, "_archivemap_watch", None)
    if timer is not None:
        timer.cancel()
        connection._archivemap_watch = None


class _Watched:
    """The request and header phase of a connection end at the calling thread's deadline.

    Socket timeouts bound each ``recv``, not their sum: a server that sends its status line
    and headers one byte per second never trips them. The body is watched by its reader
    (:func:`archivemap.remote._body.read_body`). Mixed into urllib3's http and https
    connections.
    """

    def request(self, *args: Any, **kwargs: Any) -> None:
        _arm(self)
        try:
            super().request(*args, **kwargs)  # type: ignore[misc]
        except BaseException:
            _disarm(self)
            raise

    def getresponse(self) -> Any:
        try:
            return super().getresponse()  # type: ignore[misc]
        finally:
            _disarm(self)


class _WatchedHTTPConnection(_Watched, urllib3.connection.HTTPConnection):
    """An http connection with a deadline on its request and header phase."""


class _WatchedHTTPSConnection(_Watched, urllib3.connection.HTTPSConnection):
    """An https connection with a deadline on its request and header phase."""


class _WatchedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """The client's transport adapter: pools whose connections honour the call's deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


def new_session(pool_size: int) -> requests.Session:
    """A session whose connections honour the call's deadline, ``pool_size`` per host."""
    session = requests.Session()
    # Retries are ours (they must share the limiter); urllib3's own are switched off.
    adapter = DeadlineAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = f"archivemap/{__version__}"
    return session
