"""A failed request told in a few words and a typed error: server error answers, broken connections.

Why a module of its own: what a person reads when a request fails comes from two noisy sources.
NOMAD's ``detail`` is a string, a list of pydantic validation items or a 500 report
(:func:`summarise_detail` makes one line of any of them), and its status decides the
:mod:`archivemap.errors` class (:func:`status_error`). A failed connection's text is urllib3's
pool and socket internals; :func:`transport_reason` keeps the few words that matter, for the
client's messages and the CLI alike. Everything a server says may echo a credential, so the
caller's ``scrub`` runs over it before it reaches a message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Final

import requests

from archivemap.errors import (
    AuthenticationError,
    BadRequestError,
    ForbiddenError,
    HTTPStatusError,
    NotFoundError,
    ServerError,
    ValidationError,
)
from archivemap.remote._body import TruncatedBody, parse_body

__all__ = ["status_error", "summarise_detail", "transport_reason"]

_STATUS_ERRORS: Final[dict[int, type[HTTPStatusError]]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: ForbiddenError,
    404: NotFoundError,
    422: ValidationError,
}

# What a failed connection's text (urllib3's, through requests) says, in a few words.
_TRANSPORT_REASONS: Final = (
    ("connection refused", "connection refused"),
    ("name or service not known", "host name not found"),
    ("nodename nor servname", "host name not found"),
    ("temporary failure in name resolution", "name resolution failed for now"),  # EAI_AGAIN: retried
    ("timed out", "timed out"),
    ("timeout", "timed out"),
    ("connection reset", "connection reset"),
    ("connection aborted", "connection reset"),
)


def transport_reason(text: str) -> str | None:
    """The few words a person needs from a failed connection's message (``connection
    refused``), or ``None`` when it says something else; the message itself is pool and
    socket internals of urllib3."""
    lowered = text.lower()
    return next((reason for needle, reason in _TRANSPORT_REASONS if needle in lowered), None)


def summarise_detail(detail: Any) -> str:
    """One line out of NOMAD's ``detail``: a string, validation items, or a 500 report."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        lines = []
        for item in detail:
            if isinstance(item, Mapping):
                loc = item.get("loc")
                where = f" (at {'.'.join(map(str, _flatten(loc)))})" if loc else ""
                lines.append(f"{item.get('msg', item)}{where}")
            else:
                lines.append(str(item))
        return "; ".join(lines)
    if isinstance(detail, Mapping):
        reason = detail.get("reason") or detail.get("exception_class")
        return str(reason) if reason else json.dumps(detail, default=str)[:500]
    return "" if detail is None else str(detail)


def _flatten(loc: Any) -> list[Any]:
    if isinstance(loc, (list, tuple)):
        return [x for part in loc for x in _flatten(part)]
    return [loc]


def status_error(
    method: str,
    url: str,
    response: requests.Response,
    content: bytes | bytearray,
    scrub: Callable[[Any], Any],
) -> HTTPStatusError:
    """The typed error of an answer with an error status (a subclass per status).

    Args:
        method: the request's method.
        url: the URL that answered.
        response: the answer.
        content: its body (perhaps cut: error bodies are read for their detail only).
        scrub: takes the client's credentials out of what the server said.

    Returns:
        The error, carrying the scrubbed URL, the status and NOMAD's ``detail``.
    """
    try:
        parsed = parse_body(content)
        detail = parsed.get("detail", parsed) if isinstance(parsed, dict) else parsed
    except TruncatedBody:
        # scrub before cutting: a cut through a secret would leave a piece of it
        detail = scrub(bytes(content).decode("utf-8", "replace"))[:500]
    detail = scrub(detail)
    status = response.status_code
    cls = _STATUS_ERRORS.get(status, ServerError if status >= 500 else HTTPStatusError)
    summary = summarise_detail(detail)
    # the reason phrase is the server's text too, and may echo a credential
    message = scrub(f"{method} -> {status} {response.reason or ''}".rstrip())
    return cls(f"{message}: {summary}" if summary else message, scrub(url), status, detail)
