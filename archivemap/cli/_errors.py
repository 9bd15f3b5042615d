"""What went wrong, in one line: the command line's own errors and the line ``main`` prints.

A command raises :class:`CommandError` for a failure it explains itself and :class:`UsageError`
for a value that cannot work (exit 2, like argparse's own errors); anything else becomes
``ExceptionName: message`` on one line. A connection that fails names the server and, when the
URL lacks NOMAD's ``/api/v1``, the URL to try instead.
"""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit

from archivemap.errors import HTTPStatusError, NotFoundError, TransportError
from archivemap.remote.client import api_base_url, transport_reason

__all__ = ["CommandError", "UsageError", "error_line"]


class CommandError(Exception):
    """A failure the command explains itself (its message is the one line printed)."""


class UsageError(CommandError):
    """A command-line value that cannot work (exit 2, like argparse's own errors)."""


def _url_hint(url: str | None) -> str:
    """A hint when a URL lacks NOMAD's ``/api/v1``."""
    if not url or "/api/v1" in urlsplit(url).path:
        return ""
    try:
        suggestion = api_base_url(url)
    except ValueError:
        return ""
    return f"; NOMAD's API lives under /api/v1: try --url {suggestion}"


def _transport_reason(error: TransportError) -> str:
    text = str(error)
    return transport_reason(text) or text.split(": ", 1)[-1][:160]


def _server_of(url: str | None) -> str:
    if not url:
        return "the server"
    parts = urlsplit(url)
    marker = parts.path.find("/api/v1")
    path = parts.path[: marker + 7] if marker >= 0 else parts.path
    return f"{parts.scheme}://{parts.netloc}{path}"


def error_line(args: argparse.Namespace, exc: Exception) -> str:
    """The one line that says what went wrong, and what to do when we know."""
    url = getattr(args, "url", None)
    if isinstance(exc, TransportError):
        return f"cannot reach {_server_of(exc.url or url)} ({_transport_reason(exc)}){_url_hint(url)}"
    if isinstance(exc, NotFoundError) and _url_hint(url):
        return f"{type(exc).__name__}: {exc}{_url_hint(url)}"
    if isinstance(exc, HTTPStatusError):
        return f"{type(exc).__name__}: {exc}{_url_hint(url)}"
    if isinstance(exc, CommandError):
        return str(exc)
    text = " ".join(str(exc).split())  # one line, whatever the message held
    return f"{type(exc).__name__}: {text}"
