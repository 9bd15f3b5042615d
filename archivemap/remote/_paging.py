"""Cursor-paged endpoints of NOMAD (spec §5.5), asked for in one place.

Why a module of its own: the entries listing, the archive pages of a bulk download and the
samples of an analysis all page the same way, and all meet the same deployment limits. A
deployment refuses a page size it finds too large with a 422; :class:`Pager` halves the size
until one is accepted and remembers it per path, so later listings and batches do not earn
the same 422 again. It also checks every answer for NOMAD's shape (a ``data`` list of objects,
a ``pagination`` object, a ``next_page_after_value`` that is a string and never comes back),
so a broken server cannot make a listing page forever.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Generator, Mapping
from typing import Any, Protocol

from archivemap.errors import MalformedResponseError, ValidationError
from archivemap.remote.required import Required

__all__ = ["JsonAPI", "Pager", "is_page_size_error", "next_cursor"]

# the client's logger: where these messages were logged before the module was split off
log = logging.getLogger("archivemap.remote.client")


class JsonAPI(Protocol):
    """What paging needs of the HTTP client (implemented by ``Client``)."""

    def post_json(self, path: str, body: Any = None, *, max_bytes: int | None = None) -> Any:
        """``POST`` JSON to an API path; the decoded JSON answer."""
        ...

    def url(self, path: str) -> str:
        """The absolute URL of an API path (for error messages)."""
        ...


def is_page_size_error(error: ValidationError) -> bool:
    """Whether a 422 complains about the page size (too large for this server)."""
    text = json.dumps(error.detail, default=str).lower()
    return "page_size" in text or "page size" in text or "bad_page" in text


def next_cursor(info: Mapping[str, Any], data: list[Any]) -> str | None:
    """The cursor of the page after this one; ``None`` after the last (or an empty) page."""
    after = info.get("next_page_after_value")
    return None if after is None or not data else str(after)


class Pager:
    """Pages of one client's cursor-paged endpoints, with the page sizes its deployment allows.

    Thread-safe: the concurrent batches of a bulk download learn a refused size together.
    """

    def __init__(self, api: JsonAPI) -> None:
        self._api = api
        self._lock = threading.Lock()
        # path -> the largest page size worth asking for: a deployment's limit, learned once
        # from its 422s and kept, so later listings and batches do not earn them again
        self._limits: dict[str, int] = {}

    def pages(
        self,
        path: str,
        body: Mapping[str, Any],
        page_size: int,
        after: str | None = None,
        **pagination: Any,
    ) -> Generator[tuple[list[Any], str | None, dict[str, Any]], None, None]:
        """Cursor pagination (spec §5.5): yields ``(data, page_start_cursor, pagination)``.

        Halves the page size when the server refuses it with a 422, so a client configured
        for a generous installation still works against a strict one.

        Raises:
            MalformedResponseError: an answer without a ``data`` list of objects or without a
                ``pagination`` object, or a ``next_page_after_value`` that was seen before
                (a cursor cycle would otherwise page forever).
        """
        cursor = after
        size = page_size
        seen: set[str] = set() if after is None else {after}
        while True:
            data, info, size = self.page(path, body, pagination, cursor, size)
            yield data, cursor, info
            after_page = info.get("next_page_after_value")
            if not data or after_page is None:
                return
            after_page = str(after_page)
            if after_page in seen:
                raise MalformedResponseError(
                    f"pagination cycles: next_page_after_value {after_page[:100]!r} came back after "
                    f"{len(seen)} page(s)", self._api.url(path)
                )
            seen.add(after_page)
            cursor = after_page

    def page(
        self,
        path: str,
        body: Mapping[str, Any],
        pagination: Mapping[str, Any],
        cursor: str | None,
        size: int,
        *,
        max_bytes: int | None = None,
    ) -> tuple[list[Any], dict[str, Any], int]:
        """One page of a cursor-paged endpoint: ``(data, pagination, page size used)``.

        The one place a page is asked for: the size is lowered (and learned for ``path``) where
        the deployment refuses it with a 422, and a ``next_page_after_value`` that is not a
        string is a malformed answer.
        """
        size = self.size(path, size)
        while True:
            request = dict(pagination, page_size=size)
            if cursor is not None:
                request["page_after_value"] = cursor
            try:
                answer = self._api.post_json(path, {**body, "pagination": request}, max_bytes=max_bytes)
            except ValidationError as error:
                if size > 1 and is_page_size_error(error):
                    size = self.refused(path, size)
                    continue
                raise
            data, info = self._parts(path, answer)
            after_page = info.get("next_page_after_value")
            if after_page is not None and (not isinstance(after_page, (str, int)) or isinstance(after_page, bool)):
                raise MalformedResponseError(
                    f"next_page_after_value is a {type(after_page).__name__}, not a string", self._api.url(path)
                )
            return data, info, size

    def archive_page(
        self,
        query: dict[str, Any],
        owner: str,
        required: Required,
        cursor: str | None,
        size: int,
        *,
        max_bytes: int | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any], int]:
        """One page of ``entries/archive/query`` paging the query itself, by ``entry_id``.

        Returns:
            ``(data, pagination, page size used)``; the size is lowered (and learned) where
            the deployment refuses it.
        """
        body = {"owner": owner, "query": query, "required": required}
        return self.page("entries/archive/query", body, {"order_by": "entry_id"}, cursor, size, max_bytes=max_bytes)

    def size(self, path: str, wanted: int) -> int:
        """``wanted``, or less where ``path`` refused such a page before."""
        limit = self._limits.get(path)
        return wanted if limit is None else min(wanted, limit)

    def refused(self, path: str, size: int) -> int:
        """Learn that ``path`` refused pages of ``size``; the next size to try (half)."""
        smaller = max(1, size // 2)
        with self._lock:
            if smaller < self._limits.get(path, size):
                self._limits[path] = smaller
        log.warning("%s refused a page size of %d; using %d from now on", path, size, smaller)
        return smaller

    def _parts(self, path: str, answer: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """``data`` and ``pagination`` of a listing answer, checked for NOMAD's shape."""
        if not isinstance(answer, dict):
            raise MalformedResponseError(f"answer is a {type(answer).__name__}, not an object", self._api.url(path))
        data = answer.get("data")
        if data is None:
            data = []
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise MalformedResponseError("answer's data is not a list of objects", self._api.url(path))
        info = answer.get("pagination")
        if not isinstance(info, dict):
            raise MalformedResponseError("answer has no pagination object", self._api.url(path))
        return data, info
