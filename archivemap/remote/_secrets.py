"""Credentials that never show themselves, and the scrubbing of their echoes.

Why a module of its own: a token or password must not reach a ``repr``, a log line, an
exception message or a pickle, and a server may echo what it received in any spelling
(percent-encoded once or twice, form-encoded, JSON- or HTML-escaped, inside the
``Authorization`` header's base64). Wrapping a credential in :class:`Secret` keeps it out of
the first four; :func:`secret_pattern` and :func:`scrub_with` take it out of everything the
server says before the client logs or raises it.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterable
from typing import Any, Final, SupportsIndex
from urllib.parse import quote, quote_plus

__all__ = ["REDACTED", "Secret", "base64_spellings", "scrub_with", "secret_pattern", "spellings"]

REDACTED: Final = "<redacted>"


class Secret:
    """A credential that does not show itself in ``repr``, ``str``, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return REDACTED

    __str__ = __repr__

    def __reduce_ex__(self, protocol: SupportsIndex) -> str | tuple[Any, ...]:
        # a secret never reaches pickle bytes by accident (Client.__reduce__ decides)
        raise TypeError("credentials are not pickled; see Client(pickle_credentials=True)")


def spellings(secret: str) -> set[str]:
    """A secret as it may come back: raw, percent/form-encoded (once, twice), JSON, HTML, base64."""
    once = {quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret), quote_plus(secret)}
    twice = {quote(v, safe="") for v in once} | {quote_plus(v, safe="") for v in once}
    escaped = json.dumps(secret)[1:-1]
    found = {secret, *once, *twice, escaped, escaped.replace("/", "\\/")}
    found.add(json.dumps(secret, ensure_ascii=False)[1:-1])
    found.add(html.escape(secret))
    found.update(base64_spellings(secret))
    return found


def base64_spellings(text: str) -> set[str]:
    """``text`` in standard and URL-safe base64, with and without padding."""
    raw = text.encode()
    encoded = {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    return encoded | {e.rstrip("=") for e in encoded}


def secret_pattern(secrets: Iterable[str], basic_auth: tuple[str, str] | None = None) -> re.Pattern[str] | None:
    """One regex for every spelling in which a server may echo a credential back.

    A server echoes what it received: the password form-encoded from the login body,
    percent-encoded once or twice, the ``Authorization`` header's base64, or JSON-escaped
    inside an error document. Matching is case-insensitive (``%2a`` and ``%2A`` are the
    same byte); over-redacting a look-alike costs nothing.

    Args:
        secrets: the credentials in clear (token, password).
        basic_auth: ``(username, password)`` whose ``username:password`` base64 is a
            spelling too.

    Returns:
        The pattern, or ``None`` when there is no secret to look for.
    """
    variants: set[str] = set()
    for secret in secrets:
        variants.update(spellings(secret))
    if not variants:
        return None
    if basic_auth is not None:
        variants.update(base64_spellings(f"{basic_auth[0]}:{basic_auth[1]}"))
    ordered = sorted((v for v in variants if v), key=len, reverse=True)
    return re.compile("|".join(map(re.escape, ordered)), re.IGNORECASE)


def scrub_with(value: Any, pattern: re.Pattern[str]) -> Any:
    """``value`` with every match of ``pattern`` redacted: strings, dict keys and values,
    and list items, recursively."""
    if isinstance(value, str):
        return pattern.sub(REDACTED, value)
    if isinstance(value, (list, tuple)):
        return [scrub_with(v, pattern) for v in value]
    if isinstance(value, dict):
        return {scrub_with(k, pattern): scrub_with(v, pattern) for k, v in value.items()}
    return value
