"""``Client.analyze``: sample a query's first entries whole, derive ``required``, download the rest.

Why a module of its own: the analysis is an algorithm over the client, not a request. It pages
the query itself for its samples (whole archives, or lazy roots where a page would be too
large), records what the analysis reads (:func:`~archivemap.remote.derive.record_access`),
derives the spec from that (:func:`~archivemap.remote.derive.required_from_access`) and hands
the rest of the query, from where the samples ended, to ``Client.archives``. It uses the
client through :class:`SamplingClient` and the client's
:class:`~archivemap.remote._paging.Pager`, so it does not import the client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, Protocol

from archivemap.archive.schema import Schema, SchemaSource
from archivemap.archive.sections import Section
from archivemap.errors import ResponseTooLargeError, ServerError
from archivemap.remote._cursors import decode_cursor, encode_cursor
from archivemap.remote._limits import RetryPolicy
from archivemap.remote._paging import Pager, next_cursor
from archivemap.remote.cache import ArchiveCache
from archivemap.remote.derive import SAMPLE_REQUIRED, AccessPath, Analysis, record_access, required_from_access
from archivemap.remote.fetch import ArchiveAPI, ClientSource, open_archive_from
from archivemap.remote.query import Query
from archivemap.remote.required import Required

__all__ = ["SAMPLE_PAGE_BYTES", "SamplingClient", "analyze"]

# the client's logger: where these messages were logged before the module was split off
log = logging.getLogger("archivemap.remote.client")

#: Default of ``Client.analyze(sample_bytes=...)``: the most bytes a page of whole sample
#: archives may have. The shared corpus' archives are 4 kB to 2 MB; a page past this (a large
#: MD archive: 100 MB is not worth downloading to learn which values an analysis reads) is
#: abandoned and its entries are sampled lazily, a request per value read.
SAMPLE_PAGE_BYTES: Final = 4 * 1024 * 1024


class SamplingClient(ArchiveAPI, Protocol):
    """What an analysis needs of the HTTP client (implemented by ``Client``)."""

    @property
    def cache(self) -> ArchiveCache | None:
        """The disk cache; with one, the bulk run covers every entry (it records the query)."""
        ...

    @property
    def retry_policy(self) -> RetryPolicy:
        """Whose ``statuses`` are overload, not a page too large to sample whole."""
        ...

    @property
    def requests_made(self) -> int:
        """HTTP requests sent so far (the analysis reports what it cost)."""
        ...

    @property
    def bytes_received(self) -> int:
        """Response body bytes received so far."""
        ...

    def query_json(
        self, query: Query | Mapping[str, Any] | None, schema: Schema | SchemaSource | None = None, order_by: str | None = None
    ) -> dict[str, Any]:
        """The query JSON to send, checked against the schema first."""
        ...

    def archive(
        self, entry_id: str, required: Required = "*", *, schema: Schema | SchemaSource | None = None, fetch: bool = True
    ) -> Section:
        """One entry's archive as a lazy root (a sample too large to download whole)."""
        ...

    def archives(
        self, query: Query | Mapping[str, Any] | None, required: Required = "*", **options: Any
    ) -> Iterator[tuple[str, Section]]:
        """The bulk download of the rest (``schema=``, ``after=``, ...), mapped to lazy roots."""
        ...


def analyze(
    client: SamplingClient,
    pager: Pager,
    query: Query | Mapping[str, Any] | None,
    analysis: Callable[[Section], Any],
    *,
    sample: int,
    schema: Schema,
    sample_bytes: int,
    options: dict[str, Any],
) -> Analysis:
    """Run ``analysis`` on every entry of ``query``, downloading only what it reads.

    What :meth:`~archivemap.remote.client.Client.analyze` does (its docstring tells the
    steps) once its arguments are checked and ``schema`` is chosen; ``options`` are passed on
    to ``client.archives`` (an ``after`` among them is where the samples start).
    """
    requests_before, bytes_before = client.requests_made, client.bytes_received
    query_json = client.query_json(query, schema)
    owner = str(options.get("owner", "visible"))
    user_after = options.pop("after", None)
    cursor, skip, passed = decode_cursor(user_after)
    exhausted = False
    if skip:  # a position inside a page: the cursor of the page after it, by listing first
        cursor, passed, exhausted = _skip(pager, query_json, owner, cursor, skip, passed)
    source = ClientSource(client, schema)
    samples: list[tuple[str, Any, set[AccessPath], Section]] = []
    errors: dict[str, str] = {}
    first_error: Exception | None = None
    follow_ups = 0
    budget = 4 * sample
    while not exhausted and len(samples) < budget:
        if sum(result is not None for _, result, _, _ in samples) >= sample:
            break
        size = sample if not samples else budget - len(samples)
        page = _sample_page(client, pager, query_json, owner, cursor, size, schema, source, sample_bytes)
        roots, following, positions, whole = page
        for entry_id, root in roots:
            try:
                result, paths = record_access(analysis, root)
            except Exception as exc:  # an odd entry; a broken analysis shows below
                errors[entry_id] = f"{type(exc).__name__}: {exc}"
                first_error = first_error or exc
                result, paths = None, set()
            samples.append((entry_id, result, paths, root))
            if whole:  # what a lazy sample fetches is the sampling, not a follow-up
                follow_ups += _fetches(root)
        if following is None:
            exhausted = True
            break
        cursor = following
        passed = None if passed is None else passed + positions
    if first_error is not None and len(errors) == len(samples):
        raise first_error  # it failed on every sample: the analysis, not the data
    informative = [paths for _, result, paths, _ in samples if result is not None]
    # every sample's reads count: the uninformative ones show which absences to decide
    required = required_from_access(informative + [p for _, r, p, _ in samples if r is None], bulk=True)
    results: list[tuple[str, Any]] = [(entry_id, result) for entry_id, result, _, _ in samples]
    rest: str | None = encode_cursor(cursor, 0, passed)  # with how many entries precede it
    if options.get("lock") is not None or client.cache is not None:
        # a lockfile and the cache record the whole query: the bulk run covers every entry
        results, follow_ups, errors = [], 0, {}
        exhausted, rest = False, user_after
    if not exhausted:
        for entry_id, root in client.archives(query, required, schema=schema, after=rest, **options):
            try:
                result = analysis(root)
            except Exception as exc:  # recorded; the other entries go on
                errors[entry_id] = f"{type(exc).__name__}: {exc}"
                result = None
            results.append((entry_id, result))
            follow_ups += _fetches(root)
    return Analysis(
        results,
        required,
        client.requests_made - requests_before,
        client.bytes_received - bytes_before,
        follow_ups,
        errors,
    )


def _skip(
    pager: Pager, query: dict[str, Any], owner: str, after: str | None, skip: int, passed: int | None
) -> tuple[str | None, int | None, bool]:
    """A page cursor ``skip`` entries past ``after`` (one listing request of ``skip`` ids).

    Returns:
        ``(cursor, entries before it or None, whether nothing follows)``.
    """
    data, following = _id_page(pager, query, owner, skip, after)
    return following, None if passed is None else passed + len(data), following is None


def _id_page(
    pager: Pager, query: dict[str, Any], owner: str, size: int, after: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One listing page of ``size`` entry ids after ``after`` (in entry id order), and the
    cursor after it (``None`` when nothing follows)."""
    body = {"owner": owner, "query": query, "required": {"include": ["entry_id"]}}
    pages = pager.pages("entries/query", body, size, after, order_by="entry_id")
    try:
        data, _, info = next(pages, ([], None, {}))
    finally:
        pages.close()
    return data, next_cursor(info, data)


def _sample_page(
    client: SamplingClient,
    pager: Pager,
    query: dict[str, Any],
    owner: str,
    cursor: str | None,
    size: int,
    schema: Schema,
    source: ClientSource,
    max_bytes: int,
) -> tuple[list[tuple[str, Section]], str | None, int, bool]:
    """The roots of the next ``size`` entries after ``cursor``, the cursor after them, how
    many positions of the query the page covered (entries without archive included), and
    whether the roots were downloaded whole (else they are lazy).

    Whole archives (``"*"``) in one request while the page stays below ``max_bytes``:
    whatever the analysis reads is in hand. A larger page (or one the server cannot
    render) is listed instead and its entries opened lazily.
    """
    try:
        data, info, size = pager.archive_page(query, owner, "*", cursor, size, max_bytes=max_bytes)
    except (ResponseTooLargeError, ServerError) as error:
        if isinstance(error, ServerError) and error.status_code in client.retry_policy.statuses:
            raise
        log.info("sample page not downloaded whole (%s); sampling its entries lazily", error)
        data, following = _id_page(pager, query, owner, size, cursor)
        ids = sorted({str(item["entry_id"]) for item in data if isinstance(item.get("entry_id"), str)})
        lazy = [(entry_id, client.archive(entry_id, required=SAMPLE_REQUIRED, schema=schema)) for entry_id in ids]
        return lazy, following, len(data), False
    archives = {
        item["entry_id"]: item["archive"]
        for item in data
        if isinstance(item.get("entry_id"), str) and isinstance(item.get("archive"), dict)
    }
    roots = [
        (entry_id, open_archive_from(client, entry_id, archives[entry_id], "*", schema, source))
        for entry_id in sorted(archives)
    ]
    # a page with a next cursor is a full page of the search, whatever the answer dropped
    return roots, next_cursor(info, data), size, True


def _fetches(root: Section) -> int:
    """Requests a root's fetcher sent after it was downloaded (lazy follow-ups)."""
    ctx = root.m_context
    fetcher = ctx.fetcher if ctx is not None else None
    return int(getattr(fetcher, "fetches", 0))
