"""The request log of the local server: what clients asked and what they got.

Tests assert on it ("the client sent 3 requests, the second with page_after_value ...").
Records never hold credentials: only whether an ``Authorization`` header was present, and
fields named like secrets are replaced by ``"<redacted>"``. The log is bounded, so a server
left running does not grow: it keeps the newest :data:`MAX_RECORDS` records, and bodies
larger than :data:`MAX_BODY_CHARS` are kept as truncated text.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import urllib.parse
from collections.abc import Callable
from typing import Any

import orjson

__all__ = ["MAX_BODY_CHARS", "MAX_RECORDS", "RequestLog", "RequestRecord", "loggable_body", "redact"]

_SECRET_WORDS = ("password", "token", "secret", "signature")
#: Records kept by default (the oldest are dropped first).
MAX_RECORDS = 10_000
#: Bodies whose JSON text is longer are logged as that text, cut to this length.
MAX_BODY_CHARS = 4096


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it.

    Attributes:
        method: ``GET``/``POST``/...
        path: the path below the API base (``entries/query``), without the query string;
            the full path when it is outside the API.
        query: the URL query string (may be empty).
        body: the parsed JSON or form body (secrets redacted), None when there was none or
            it was not parseable; a body longer than a few kB as JSON text is kept as the
            start of that text (a string).
        status: the status sent; 0 for a dropped connection.
        response_bytes: body bytes actually sent.
        timestamp: ``time.time()`` when the request arrived.
        duration: seconds from arrival to the end of the answer.
        authorized: whether an ``Authorization`` header was present (never its value).
        fault: the injected fault (``drop``, ``truncate``, ``rate_limit``, ``concurrency``,
            ``storm``, ``page_size``) or None.
    """

    method: str
    path: str
    query: str
    body: Any
    status: int
    response_bytes: int
    timestamp: float
    duration: float
    authorized: bool
    fault: str | None = None


def redact(value: Any) -> Any:
    """A copy of a JSON-like body with secret-looking keys replaced by ``"<redacted>"``."""
    stack: list[tuple[Any, Any, Any]] = []
    root: list[Any] = [None]
    stack.append((value, root, 0))
    while stack:  # iterative: a deeply nested body must not exhaust the recursion limit
        node, parent, key = stack.pop()
        if isinstance(node, dict):
            copy: Any = {}
            for name, item in node.items():
                if any(word in str(name).lower() for word in _SECRET_WORDS):
                    copy[name] = "<redacted>"
                else:
                    copy[name] = None
                    stack.append((item, copy, name))
        elif isinstance(node, list):
            copy = [None] * len(node)
            stack.extend((item, copy, index) for index, item in enumerate(node))
        else:
            copy = node
        parent[key] = copy
    return root[0]


def loggable_body(raw: bytes, content_type: str) -> Any:
    """A request body as the log keeps it: parsed, redacted, and cut to a few kB.

    JSON bodies (and bodies without a content type) are parsed, forms are decoded; other
    or unparsable bodies are logged as None. A redacted body longer than
    :data:`MAX_BODY_CHARS` as JSON text is kept as the start of that text.
    """
    if not raw.strip():
        return None
    if content_type == "application/x-www-form-urlencoded":
        parsed: Any = dict(urllib.parse.parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    elif content_type in ("", "application/json") or content_type.endswith("+json"):
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
    else:
        return None
    clean = redact(parsed)
    try:
        text = orjson.dumps(clean).decode("utf-8")
    except TypeError:  # nested deeper than orjson writes: log it as cut, unparsed text
        return "<body not logged: nested too deeply>"
    if len(text) <= MAX_BODY_CHARS:
        return clean
    return f"{text[:MAX_BODY_CHARS]}... (truncated, {len(text)} characters)"


class RequestLog:
    """A thread-safe, bounded list of :class:`RequestRecord` with counting helpers.

    Args:
        max_records: how many records are kept; older ones are dropped.
    """

    def __init__(self, max_records: int = MAX_RECORDS) -> None:
        self._lock = threading.Lock()
        self._records: collections.deque[RequestRecord] = collections.deque(maxlen=max(1, max_records))

    def append(self, record: RequestRecord) -> None:
        """Add a record (called by handler threads)."""
        with self._lock:
            self._records.append(record)

    def snapshot(self) -> list[RequestRecord]:
        """A copy of all records, oldest first."""
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        """Forget all records."""
        with self._lock:
            self._records.clear()

    def count(
        self,
        path: str | None = None,
        method: str | None = None,
        status: int | None = None,
        where: Callable[[RequestRecord], bool] | None = None,
    ) -> int:
        """Count records matching every given criterion.

        Args:
            path: exact path below the API base (``entries/archive/query``); a trailing
                ``*`` matches a prefix (``entries/*``).
            method: HTTP method.
            status: response status.
            where: any other condition.
        """
        def matches(record: RequestRecord) -> bool:
            if path is not None:
                if path.endswith("*"):
                    if not record.path.startswith(path[:-1]):
                        return False
                elif record.path != path:
                    return False
            if method is not None and record.method != method.upper():
                return False
            if status is not None and record.status != status:
                return False
            return where is None or where(record)

        with self._lock:
            return sum(1 for record in self._records if matches(record))
