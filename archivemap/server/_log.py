"""The request log of the local server: what clients asked and what they got.

Tests assert on it ("the client sent 3 requests, the second with page_after_value ...").
Records never hold credentials: only whether an ``Authorization`` header was present, and
form fields named like secrets are replaced by ``"<redacted>"``.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["RequestLog", "RequestRecord", "redact"]

_SECRET_WORDS = ("password", "token", "secret", "signature")


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it.

    Attributes:
        method: ``GET``/``POST``/...
        path: the path below the API base (``entries/query``), without the query string;
            the full path when it is outside the API.
        query: the URL query string (may be empty).
        body: the parsed JSON or form body (secrets redacted), None when there was none or
            it was not parseable.
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
    if isinstance(value, dict):
        return {
            key: "<redacted>" if any(word in str(key).lower() for word in _SECRET_WORDS) else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


class RequestLog:
    """A thread-safe list of :class:`RequestRecord` with counting helpers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []

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
