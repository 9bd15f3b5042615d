"""Bulk archive downloads: the :class:`ArchiveStream` of ``Client.archives_raw``.

Why a module of its own: a bulk download is the client's one long-running job, with its own
state (what is listed, requested, downloaded, yielded, missing or failed) and its own rules.
Archives are downloaded concurrently but yielded in listing order, so one cursor describes
what has been yielded; answers are matched to entries by ``entry_id``, never by position, and
entries an answer dropped are requested again; a batch the server answers 500 is split until
the entries it cannot render are known (:class:`EntryFailure`), the rest delivered.

The stream uses the client through :class:`BulkClient` (the public requests it sends) and the
client's :class:`~archivemap.remote._paging.Pager` (the pages, with the page sizes the
deployment accepts), so it does not import the client. :class:`BulkSource` lets references
between entries of one download use the archives in hand.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Protocol

import attrs

from archivemap._progress import Progress as _Progress
from archivemap.archive.context import ArchiveContext
from archivemap.archive.references import ParsedReference
from archivemap.archive.schema import Schema
from archivemap.archive.sections import Section
from archivemap.errors import (
    ClientError,
    HTTPStatusError,
    MalformedResponseError,
    NotFoundError,
    ServerError,
    TransportError,
    ValidationError,
)
from archivemap.remote._cursors import decode_cursor, encode_cursor
from archivemap.remote._failures import summarise_detail
from archivemap.remote._limits import RetryPolicy
from archivemap.remote._paging import JsonAPI, Pager, is_page_size_error, next_cursor
from archivemap.remote.fetch import ArchiveAPI, ClientSource, open_archive_from
from archivemap.remote.required import Required

__all__ = ["ArchiveStream", "BulkClient", "BulkSource", "EntryFailure"]

# the client's logger: where these messages were logged before the module was split off
log = logging.getLogger("archivemap.remote.client")


class BulkClient(JsonAPI, Protocol):
    """What a bulk download needs of the HTTP client (implemented by ``Client``)."""

    @property
    def max_concurrency(self) -> int:
        """The concurrency cap: worker threads, and twice it the batches in flight."""
        ...

    @property
    def retry_policy(self) -> RetryPolicy:
        """Whose ``statuses`` are overload, not an entry's fault."""
        ...

    def archive_raw(self, entry_id: str, required: Required = "*") -> dict[str, Any]:
        """One entry's archive, asked for alone (the last resort for a dropped entry)."""
        ...


@attrs.frozen
class EntryFailure:
    """An entry of a bulk download whose archive the server refused to produce.

    NOMAD answers a whole ``entries/archive/query`` batch with 500 when one archive in it
    cannot be rendered; the stream splits such batches until the failing entries are known
    and records each here instead of failing the download.

    Attributes:
        entry_id: the entry.
        status: the HTTP status of the answer for this entry alone.
        detail: the server's explanation (credentials scrubbed).
        url: the URL that answered so.
    """

    entry_id: str
    status: int
    detail: str
    url: str


@attrs.frozen
class _ArchivePage:
    """One answer of ``entries/archive/query`` paginating the query itself.

    Attributes:
        archives: ``entry_id -> archive`` of the entries the answer holds.
        total: the number of entries the query matches (``None`` if not said).
        following: ``next_page_after_value`` (``None`` on the last page).
        size: the page size the server accepted.
    """

    archives: dict[str, dict[str, Any]]
    total: int | None
    following: str | None
    size: int


class ArchiveStream(Iterator[tuple[str, dict[str, Any]]]):
    """The iterator :meth:`~archivemap.remote.client.Client.archives_raw` returns.

    Archives are downloaded concurrently but yielded in listing order, so one cursor
    position describes exactly what has been yielded: resuming with ``after=stream.cursor``
    continues with the next entry, without repeats or gaps, even after an exception.

    The first request is an ``entries/archive/query`` that pages the query itself (ordered
    by ``entry_id``, one batch per page): it brings the first batch of archives, the total and
    the next cursor at once, so a query of at most one batch costs one request, and one of at
    most two batches two. Larger queries continue from that cursor with id listings and
    concurrent batches (``entry_id:any``), which is what lets failing or dropped entries be
    isolated and re-requested. A page the server answers 500, or one that lacks entries
    (NOMAD silently drops entries without archive), is listed and downloaded in batches too;
    the archives it did hold are kept.

    Attributes:
        cursor: an opaque resume position after the last yielded (or missing) entry;
            ``None`` before the first one.
        total: the number of entries the query matches (from the first page).
        missing: ``{entry_id: reason}`` for entries whose archive could not be had.
        failed: ``{entry_id: EntryFailure}`` for entries the server answered with an error
            (HTTP 500) even on their own; every other entry of their batches is delivered.
            :meth:`retry_failed` downloads them again. Like missing entries, they are
            behind :attr:`cursor` once passed.
    """

    def __init__(
        self,
        client: BulkClient,
        pager: Pager,
        *,
        query: dict[str, Any],
        required: Required,
        page_size: int,
        batch_size: int,
        after: str | None,
        owner: str,
        progress: bool | None,
        max_attempts: int,
    ) -> None:
        self._client = client
        self._pager = pager
        self._query = query
        self._required = required
        self._page_size = page_size
        self._batch_size = batch_size
        self._owner = owner
        self._max_attempts = max(1, max_attempts)
        self._progress_enabled = progress
        self.cursor: str | None = after
        self.total: int | None = None
        self.missing: dict[str, str] = {}
        self.failed: dict[str, EntryFailure] = {}
        # downloaded, not yet yielded (read by Client.archives: references between entries
        # of one download are resolved without asking the server again)
        self._done: dict[str, dict[str, Any]] = {}
        self._generator: Iterator[tuple[str, dict[str, Any]]] = self._run(*decode_cursor(after))

    def __next__(self) -> tuple[str, dict[str, Any]]:
        return next(self._generator)

    def close(self) -> None:
        """Stop downloading; pending requests are cancelled."""
        close = getattr(self._generator, "close", None)
        if close is not None:
            close()

    def held(self, entry_id: str) -> dict[str, Any] | None:
        """The archive of ``entry_id`` if it was downloaded but not yet yielded."""
        return self._done.get(entry_id)

    def retry_failed(self) -> ArchiveStream:
        """A new stream over the entries in :attr:`failed` so far (e.g. once the server is fixed).

        Its own :attr:`failed` reports those that fail again.
        """
        ids = sorted(self.failed)
        stream = ArchiveStream(
            self._client,
            self._pager,
            query={"entry_id:any": ids},
            required=self._required,
            page_size=self._page_size,
            batch_size=self._batch_size,
            after=None,
            owner=self._owner,
            progress=self._progress_enabled,
            max_attempts=self._max_attempts,
        )
        if not ids:
            stream._generator = iter(())  # nothing to list: no request at all
        return stream

    def _run(
        self, after: str | None, skip: int, base: int | None
    ) -> Generator[tuple[str, dict[str, Any]], None, None]:
        client = self._client
        window = 2 * client.max_concurrency
        seen: set[str] = set()
        # id -> (page cursor, index, entries before the page cursor or None)
        position: dict[str, tuple[str | None, int, int | None]] = {}
        # id -> resume position once it is passed, where it is better than the position's
        # (the last entry of an archive page: the next page's cursor, no skip)
        page_end: dict[str, str] = {}
        order: deque[str] = deque()  # ids not yet yielded, in listing order
        pending: deque[str] = deque()  # ids not yet requested
        attempts: dict[str, int] = {}
        done = self._done
        prefetched: dict[str, dict[str, Any]] = {}  # archives of a page that is listed again
        in_flight: dict[Future[dict[str, dict[str, Any]]], list[str]] = {}
        # where the next archive page starts (None: no archive page any more)
        archive_cursor: tuple[str | None, int | None] | None = None if skip else (after, base)
        archive_pages = 0
        listing_from: tuple[str | None, int, int | None] = (after, skip, base)
        pages: Generator[tuple[list[Any], str | None, dict[str, Any]], None, None] | None = None
        listing_base: int | None = None
        listing_done = False
        progress = _Progress(self._progress_enabled)
        executor = ThreadPoolExecutor(client.max_concurrency, thread_name_prefix="archivemap")

        def listed(entry_id: Any, where: tuple[str | None, int, int | None]) -> None:
            if not isinstance(entry_id, str) or entry_id in seen:
                return
            seen.add(entry_id)
            position[entry_id] = where
            order.append(entry_id)
            if entry_id in prefetched:
                done[entry_id] = prefetched.pop(entry_id)
            else:
                pending.append(entry_id)

        def set_total(total: Any) -> None:
            if self.total is None and isinstance(total, int) and not isinstance(total, bool):
                self.total = total
                progress.total = total

        try:
            while True:
                while not listing_done and len(pending) < self._batch_size * window:
                    if archive_cursor is not None:
                        cursor, before = archive_cursor
                        archive_cursor = None
                        archive_pages += 1
                        page = self._archive_page(cursor)
                        if page is None:  # a 500 for the page as a whole: batches isolate it
                            listing_from = (cursor, 0, before)
                            continue
                        set_total(page.total)
                        expected = None if page.total is None or before is None else page.total - before
                        count = len(page.archives)
                        if count < page.size and (page.following is not None or expected != count):
                            # entries without archive were dropped: list the page to know them
                            prefetched.update(page.archives)
                            listing_from = (cursor, 0, before)
                            continue
                        after_page = None if before is None else before + count
                        prefetched.update(page.archives)
                        ids = sorted(page.archives)  # the listing order: by entry_id
                        for index, entry_id in enumerate(ids):
                            listed(entry_id, (cursor, index, before))
                        if page.following is None:
                            listing_done = True
                        else:
                            if ids and ids[-1] in position:
                                page_end[ids[-1]] = encode_cursor(page.following, 0, after_page)
                            remaining = None if expected is None else expected - count
                            if remaining is not None and remaining <= 0:
                                listing_done = True  # NOMAD's cursor after a full last page
                            elif remaining is not None and remaining <= page.size and archive_pages < 2:
                                archive_cursor = (page.following, after_page)
                            else:
                                listing_from = (page.following, 0, after_page)
                        break  # yield this page before asking for more
                    if pages is None:
                        start, skip, listing_base = listing_from
                        body = {"owner": self._owner, "query": self._query, "required": {"include": ["entry_id"]}}
                        pages = self._pager.pages("entries/query", body, self._page_size, start, order_by="entry_id")
                    page_data = next(pages, None)
                    if page_data is None:
                        listing_done = True
                        break
                    data, page_cursor, info = page_data
                    set_total(info.get("total"))
                    page_base = listing_base
                    if listing_base is not None:
                        listing_base += len(data)
                    for index, item in enumerate(data):
                        if skip:
                            skip -= 1
                            continue
                        listed(item.get("entry_id"), (page_cursor, index, page_base))
                while pending and len(in_flight) < window:
                    batch = self._next_batch(pending, attempts)
                    if len(batch) == 1 and attempts.get(batch[0], 0) >= self._max_attempts:
                        future = executor.submit(self._fetch_single, batch[0])
                    else:
                        future = executor.submit(self._fetch_batch, batch)
                    in_flight[future] = batch
                while order and (order[0] in done or order[0] in self.missing or order[0] in self.failed):
                    entry_id = order.popleft()
                    page_cursor, index, page_base = position.pop(entry_id)
                    self.cursor = page_end.pop(entry_id, None) or encode_cursor(page_cursor, index + 1, page_base)
                    progress.advance()
                    if entry_id in done:
                        yield entry_id, done.pop(entry_id)
                if not in_flight and not pending and listing_done:
                    return
                if not in_flight:
                    continue  # an archive page was yielded: on to the next page
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    batch = in_flight.pop(future)
                    found = future.result()
                    for entry_id in batch:
                        if entry_id in found:
                            done[entry_id] = found[entry_id]
                        elif entry_id not in self.missing and entry_id not in self.failed:
                            attempts[entry_id] = attempts.get(entry_id, 0) + 1
                            pending.appendleft(entry_id)
        finally:
            if pages is not None:
                pages.close()
            executor.shutdown(wait=False, cancel_futures=True)
            progress.close()

    def _archive_page(self, cursor: str | None) -> _ArchivePage | None:
        """The next batch of the query's entries with their archives, in one request.

        ``None`` when the server answers the page with a 500 (it cannot render one archive
        of it): the page is then listed and downloaded in batches that isolate the failure.
        """
        client = self._client
        try:
            data, info, size = self._pager.archive_page(self._query, self._owner, self._required, cursor, self._batch_size)
        except ServerError as error:
            if error.status_code in client.retry_policy.statuses:
                raise  # overload or gateway trouble after every retry: not an entry's fault
            log.info("archive page answered %d; listing it and splitting it in batches", error.status_code)
            return None
        archives: dict[str, dict[str, Any]] = {}
        for item in data:
            entry_id, archive = item.get("entry_id"), item.get("archive")
            if isinstance(entry_id, str) and isinstance(archive, dict):
                archives.setdefault(entry_id, archive)
        following = next_cursor(info, data)
        total = info.get("total")
        return _ArchivePage(
            archives,
            total if isinstance(total, int) and not isinstance(total, bool) else None,
            None if following == cursor else following,  # a cursor that does not move: the end
            size,
        )

    def _next_batch(self, pending: deque[str], attempts: dict[str, int]) -> list[str]:
        """The next ids to request; an entry past its batch attempts goes on its own."""
        if attempts.get(pending[0], 0) >= self._max_attempts:
            return [pending.popleft()]
        limit = self._pager.size("entries/archive/query", self._batch_size)
        batch: list[str] = []
        while pending and len(batch) < limit:
            if attempts.get(pending[0], 0) >= self._max_attempts:
                break
            batch.append(pending.popleft())
        return batch

    def _fetch_batch(self, batch: list[str]) -> dict[str, dict[str, Any]]:
        body = {
            "owner": self._owner,
            "query": {"entry_id:any": batch},
            "pagination": {"page_size": len(batch)},
            "required": self._required,
        }
        try:
            answer = self._client.post_json("entries/archive/query", body)
        except ValidationError as error:
            if len(batch) > 1 and is_page_size_error(error):
                self._pager.refused("entries/archive/query", len(batch))
                half = len(batch) // 2
                return {**self._fetch_batch(batch[:half]), **self._fetch_batch(batch[half:])}
            raise
        except ServerError as error:
            if error.status_code in self._client.retry_policy.statuses:
                raise  # overload or gateway trouble after every retry: not an entry's fault
            # NOMAD answers a whole batch 500 when it cannot render one archive in it:
            # bisect until the failing entries are known, and deliver the rest
            if len(batch) == 1:
                self._record_failure(batch[0], error)
                return {}
            half = len(batch) // 2
            log.info("archive batch of %d answered %d; splitting it", len(batch), error.status_code)
            return {**self._fetch_batch(batch[:half]), **self._fetch_batch(batch[half:])}
        data = answer.get("data") if isinstance(answer, dict) else None
        if data is None and isinstance(answer, dict) and "data" not in answer:
            data = []
        if not isinstance(data, list):
            raise MalformedResponseError(
                "archive answer's data is not a list", self._client.url("entries/archive/query")
            )
        wanted = set(batch)
        found: dict[str, dict[str, Any]] = {}
        for item in data:
            entry_id = item.get("entry_id") if isinstance(item, dict) else None
            archive = item.get("archive") if isinstance(item, dict) else None
            if entry_id in wanted and isinstance(archive, dict):
                found.setdefault(entry_id, archive)
        if len(found) < len(batch):
            log.info("archive answer lacked %d of %d entries", len(batch) - len(found), len(batch))
        return found

    def _record_failure(self, entry_id: str, error: HTTPStatusError) -> None:
        failure = EntryFailure(entry_id, error.status_code, summarise_detail(error.detail) or str(error), error.url or "")
        log.warning("entry %s: the server answered %d: %s", entry_id, failure.status, failure.detail[:300])
        self.failed[entry_id] = failure

    def _fetch_single(self, entry_id: str) -> dict[str, dict[str, Any]]:
        """Last resort for an entry batches keep dropping: ask for it alone.

        A 404 here ("exists, but has no archive") makes the entry *missing*; any other
        failure is a real error and propagates.
        """
        try:
            return {entry_id: self._client.archive_raw(entry_id, self._required)}
        except NotFoundError as error:
            reason = str(error)
        except ServerError as error:
            if error.status_code in self._client.retry_policy.statuses:
                raise
            self._record_failure(entry_id, error)
            return {}
        except (TransportError, HTTPStatusError):
            raise
        except ClientError as error:  # a 200 without an archive
            reason = str(error)
        log.warning("no archive for entry %s: %s", entry_id, reason)
        self.missing[entry_id] = reason
        return {}


class BulkSource(ClientSource):
    """The archive source of one bulk download: entries it already holds are not asked for.

    An ELN entry's ``m_def`` often names a definition in another entry of its upload
    (``../upload/raw/base.schema.archive.yaml#/definitions/section_definitions/2``), and that
    entry is often part of the same download, in the same batch: resolving the class must
    then use the archive in hand (with ``"*"`` it holds every definition) instead of sending
    ``{"definitions": "*"}`` for it. Entries yielded earlier are found through the roots
    :class:`ClientSource` keeps; this adds those downloaded but not yet yielded.
    """

    def __init__(self, client: ArchiveAPI, schema: Schema, stream: ArchiveStream, required: Required) -> None:
        super().__init__(client, schema)
        self._client = client
        self._stream = stream
        self._required = required
        self._early: dict[str, Section] = {}  # opened for a reference before their turn

    def root(self, entry_id: str, answer: dict[str, Any]) -> Section:
        """The lazy root of a downloaded entry (the one a reference opened already, if any)."""
        early = self._early.pop(entry_id, None)
        if early is not None:
            return early
        return open_archive_from(self._client, entry_id, answer, self._required, self.schema, self)

    def archive_for(self, ref: ParsedReference, context: ArchiveContext) -> Section:
        """The referenced entry's root: from the download when it holds it, else lazily."""
        entry_id = ref.target_entry_id(context.upload_id) if ref.installation is None else None
        if entry_id is not None:
            early = self._early.get(entry_id)
            if early is not None:
                return early
            answer = self._stream.held(entry_id)
            if answer is not None:
                root = open_archive_from(self._client, entry_id, answer, self._required, self.schema, self)
                self._early[entry_id] = root
                return root
        return super().archive_for(ref, context)
