"""The rest of NOMAD's read API on the client: raw files, uploads, datasets, users, referrers,
aggregations, and queries checked against the deployment's search keys before they are sent.

:class:`ApiMethods` is a base class of :class:`archivemap.remote.client.Client`; it only uses the
client's transport (``get_json``, ``post_json``, the shared session, limiter and retry policy),
so every call here shares the client's concurrency cap, rate budget, retries and the rule that
credentials never leave the client's own host.

Raw files: built here, not on ``nomad-fsspec``. That package (PyPI, 0.1–0.4.x, an fsspec
filesystem over ``/datasets/<id>/<upload>/<path>``) was evaluated: it addresses files by
dataset and upload only (no ``entries/{id}/raw`` zips, no ``entries/raw/query``), brings its own
HTTP stack and retry loop (so downloads would not share this client's limiter, 503 back-off and
same-host credential rule, and two retry policies would disagree), does not follow NOMAD's 307
to the storage gateway, and adds ``fsspec`` as a dependency for what is one streamed ``GET`` with
an HTTP ``Range`` header. Random access inside a remote file (what fsspec is good at) is not
what users asked for; whole files on disk, resumable, are.

Why downloads go to a ``.part`` file: a download cut off (network, Ctrl-C, size limit) never
leaves a file that looks complete; the next call resumes the part with ``Range: bytes=N-`` when
the server said ``Accept-Ranges: bytes`` (and answers 206), and starts over otherwise.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, urljoin

import attrs
import requests

from archivemap._json import dump_json
from archivemap._progress import Progress
from archivemap.archive.schema import Schema, SchemaSource, as_schema
from archivemap.errors import (
    ClientError,
    DownloadLimitError,
    HTTPStatusError,
    MissingScopeError,
    QueryError,
    TransportError,
)
from archivemap.metainfo.search import SearchQuantities, search_quantities
from archivemap.remote._transport import REDIRECTS, RETRYABLE_EXCEPTIONS
from archivemap.remote.query import Query, query_json, validate_order_by

__all__ = ["MAX_ENTRY_DOWNLOAD", "ApiMethods", "DownloadPlan", "bulk_requests", "missing_scopes", "scope_error"]

log = logging.getLogger("archivemap.remote.endpoints")

_CHUNK: Final = 1 << 16
# NOMAD 2.0.0 writes ``f"Missing scopes: {sorted(missing)}"`` over members of its ``Scope`` enum, so
# the detail reads ``Missing scopes: [<Scope.ENTRIES_READ: 'entries:read'>]``; plain strings
# (``['entries:read']``) are read as well, for deployments that print the values.
_SCOPE_LIST: Final = re.compile(r"missing scopes?:?\s*\[([^\]]*)\]", re.IGNORECASE)
_QUOTED: Final = re.compile(r"'([^']+)'|\"([^\"]+)\"")
#: NOMAD refuses raw zips of more entries than this (``max_entry_download``).
MAX_ENTRY_DOWNLOAD: Final = 50_000

QueryLike = Query | Mapping[str, Any] | None


def missing_scopes(error: HTTPStatusError) -> list[str]:
    """The scopes a 403 ``{"detail": "Missing scopes: [...]"}`` names; empty for other errors.

    Reads NOMAD 2.0.0's enum form (``[<Scope.ENTRIES_READ: 'entries:read'>]``) and plain lists
    (``['entries:read']``, ``[entries:read]``) alike: the scope is the quoted value where there
    is one, else the comma-separated text.
    """
    if error.status_code != 403 or not isinstance(error.detail, str):
        return []
    found = _SCOPE_LIST.search(error.detail)
    if found is None:
        return []
    inside = found.group(1)
    quoted = [single or double for single, double in _QUOTED.findall(inside)]
    if quoted:
        return quoted
    return [part.strip(" <>") for part in inside.split(",") if part.strip(" <>")]


def scope_error(error: HTTPStatusError) -> HTTPStatusError:
    """A :class:`MissingScopeError` naming the scopes for a scope 403, else ``error`` itself.

    The client's one status-to-error step calls this, so every endpoint (entries, archives,
    raw files, uploads...) says which scope a personal access token lacks.
    """
    scopes = missing_scopes(error)
    if not scopes:
        return error
    message = (
        f"the token lacks the scope{'s' if len(scopes) > 1 else ''} {', '.join(scopes)}: create a "
        f"personal access token with {'them' if len(scopes) > 1 else 'it'} ({error})"
    )
    return MissingScopeError(message, error.url, error.status_code, error.detail, scopes)


def _file_name(path: str) -> str:
    """The local name for a server path: its last segment, never a way out of the target folder."""
    name = PurePosixPath(path.replace("\\", "/")).name
    if name in ("", ".", ".."):
        raise ValueError(f"no file name in {path!r}")
    return name


def _quote_path(path: str) -> str:
    parts = [part for part in path.strip("/").split("/") if part]
    if not parts or any(part in (".", "..") for part in parts):
        raise ValueError(f"not a path inside an upload: {path!r}")
    return "/".join(quote(part, safe="") for part in parts)


@attrs.frozen
class DownloadPlan:
    """What :meth:`ApiMethods.explain` found a bulk download will cost.

    Attributes:
        entries: how many entries the query matches.
        requests: listing pages plus archive batches.
        approx_bytes: sampled bytes per entry times the entries.
        approx_seconds: the requests at the client's rate limit (a lower bound).
        sampled: how many entries the byte estimate rests on.
    """

    entries: int
    requests: int
    approx_bytes: int
    approx_seconds: float
    sampled: int

    def __str__(self) -> str:
        return (
            f"{self.entries} entries, {self.requests} requests, ~{self.approx_bytes / 1e6:.1f} MB "
            f"(from {self.sampled} sampled), >= {self.approx_seconds:.1f} s at the rate limit"
        )


class ApiMethods:
    """NOMAD endpoints beyond entries and archives; a base class of ``Client``.

    Attributes:
        schema: the deployment's metainfo (a :class:`~archivemap.archive.schema.Schema`) that
            queries are checked against when a call does not name one; ``None``: queries go
            out unchecked. Set it once, ``client.schema = Schema("nomad-metainfo.json")``.
    """

    schema: Schema | None = None

    if TYPE_CHECKING:  # provided by Client
        base_url: str
        timeout: tuple[float, float]
        max_redirects: int
        url: Callable[[str], str]
        get_json: Callable[..., Any]
        post_json: Callable[..., Any]
        entries: Callable[..., Iterator[dict[str, Any]]]
        archive_raw: Callable[..., dict[str, Any]]

        @property
        def rate(self) -> float: ...

    # ------------------------------------------------------------------ typed queries

    def search_keys(self, schema: Schema | SchemaSource | None = None) -> SearchQuantities | None:
        """The search keys queries are checked against: ``schema``'s, else :attr:`schema`'s.

        ``None`` when neither is known, or when the metainfo has no ``EntryArchive`` (a custom
        schema alone): then queries are sent as given rather than refused wholesale.
        """
        chosen = schema if schema is not None else self.schema
        if chosen is None:
            return None
        quantities = search_quantities(as_schema(chosen).environment)
        return quantities or None

    def query_json(
        self, query: QueryLike, schema: Schema | SchemaSource | None = None, order_by: str | None = None
    ) -> dict[str, Any]:
        """The ``query`` JSON to send, checked first when the search keys are known.

        Raised before any request, so a misspelt key never reaches a server (NOMAD answers
        422, other servers silently match everything); values with pint units go out as
        numbers in the unit the index stores.

        Raises:
            QueryError: an unknown key (with the nearest ones), a wrong operator or value, or
                an ``order_by`` that is no scalar search key.
        """
        quantities = self.search_keys(schema)
        data = query_json(query, quantities)
        if order_by and quantities is not None:
            validate_order_by(order_by, quantities)
        return data

    # ------------------------------------------------------------------ helpers

    def _paged_get(self, path: str, params: Mapping[str, Any], page_size: int) -> Iterator[tuple[dict[str, Any], Any]]:
        """NOMAD's page-numbered listings (uploads, an upload's entries, datasets): answers in order.

        Stops at an empty page, a short page, the announced total, or a missing
        ``next_page_after_value``, whichever comes first, so a server that never says "last"
        cannot loop forever.
        """
        if page_size < 1:
            raise ValueError("page_size must be positive")
        page = 1
        seen = 0
        while True:
            answer = self.get_json(path, {**params, "page": page, "page_size": page_size})
            data = answer.get("data") if isinstance(answer, dict) else None
            if not isinstance(data, list):
                raise ClientError(f"answer of {path} has no data list", self.url(path))
            yield answer, data
            seen += len(data)
            info = answer.get("pagination") or {}
            total = info.get("total")
            if (
                len(data) < page_size
                or (isinstance(total, int) and seen >= total)
                or info.get("next_page_after_value") is None
            ):
                return
            page += 1

    # ------------------------------------------------------------------ uploads

    def uploads(self, *, page_size: int = 100, **filters: Any) -> Iterator[dict[str, Any]]:
        """Your uploads and those shared with you (``GET uploads``; needs a token).

        Args:
            page_size: uploads per request.
            **filters: NOMAD's query parameters, e.g. ``is_published=True``,
                ``upload_name="..."``, ``roles="main_author"``.

        Yields:
            Upload dicts (``upload_id``, ``upload_name``, ``main_author``, ``published``...).

        Raises:
            AuthenticationError: no token (NOMAD lists only the caller's uploads).
            MissingScopeError: the token lacks ``uploads:read``.
        """
        params = {key: _param(value) for key, value in filters.items() if value is not None}
        for _, data in self._paged_get("uploads", params, page_size):
            yield from data

    def upload(self, upload_id: str) -> dict[str, Any]:
        """One upload's metadata (``GET uploads/{upload_id}``).

        Raises:
            NotFoundError: unknown upload, or not visible to you.
        """
        answer = self.get_json(f"uploads/{quote(upload_id, safe='')}")
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, dict):
            raise ClientError(f"answer for upload {upload_id} has no data", self.url(f"uploads/{upload_id}"))
        return data

    def upload_entries(self, upload_id: str, *, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """The entries of one upload as ``GET uploads/{upload_id}/entries`` lists them.

        Yields:
            Entry dicts (``entry_id``, ``mainfile``, ``parser_name``, ``process_status`` and
            ``entry_metadata``), in the server's order.
        """
        path = f"uploads/{quote(upload_id, safe='')}/entries"
        for _, data in self._paged_get(path, {}, page_size):
            yield from data

    # ------------------------------------------------------------------ datasets

    def datasets(self, *, page_size: int = 100, **filters: Any) -> Iterator[dict[str, Any]]:
        """Datasets (``GET datasets/``), e.g. ``datasets(user_id=...)`` or ``dataset_name=...``.

        Yields:
            Dataset dicts (``dataset_id``, ``dataset_name``, ``user_id``, ``doi``...).
        """
        params = {key: _param(value) for key, value in filters.items() if value is not None}
        for _, data in self._paged_get("datasets/", params, page_size):
            yield from data

    def dataset(self, dataset_id: str) -> dict[str, Any]:
        """One dataset (``GET datasets/{dataset_id}``).

        Raises:
            NotFoundError: unknown dataset.
        """
        answer = self.get_json(f"datasets/{quote(dataset_id, safe='')}")
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, dict):
            raise ClientError(f"answer for dataset {dataset_id} has no data", self.url(f"datasets/{dataset_id}"))
        return data

    def dataset_entries(
        self, dataset_id: str, required: Mapping[str, Any] | None = None, **options: Any
    ) -> Iterator[dict[str, Any]]:
        """The entries of a dataset: ``entries`` with ``{"datasets.dataset_id": dataset_id}``."""
        return self.entries({"datasets.dataset_id": dataset_id}, required, **options)

    # ------------------------------------------------------------------ users

    def users(self, user_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Users by id (``GET users?user_id=...``): names for ``main_author`` ids."""
        ids = list(dict.fromkeys(user_ids))
        if not ids:
            return []
        answer = self.get_json("users", {"user_id": ids})
        data = answer.get("data") if isinstance(answer, dict) else None
        return [item for item in data or [] if isinstance(item, dict)]

    def user(self, user_id: str | None = None) -> dict[str, Any]:
        """One user (``GET users/{user_id}``), or with no id the token's owner (``users/me``)."""
        path = "users/me" if user_id is None else f"users/{quote(user_id, safe='')}"
        answer = self.get_json(path)
        if not isinstance(answer, dict):
            raise ClientError(f"answer of {path} is not a user", self.url(path))
        return answer

    # ------------------------------------------------------------------ referrers

    def referrers(
        self, entry_id: str, required: Mapping[str, Any] | None = None, **options: Any
    ) -> Iterator[dict[str, Any]]:
        """The entries that reference ``entry_id`` (search ``entry_references.target_entry_id``).

        NOMAD indexes every reference an entry holds to another entry in ``entry_references``;
        this is how its GUI shows "referenced by". The entry itself is not listed.
        """
        for item in self.entries({"entry_references.target_entry_id": entry_id}, required, **options):
            if item.get("entry_id") != entry_id:
                yield item

    # ------------------------------------------------------------------ aggregations

    def explain(
        self,
        query: QueryLike = None,
        required: Any = "*",
        *,
        sample: int = 3,
        page_size: int = 1000,
        batch_size: int = 10,
        schema: Schema | SchemaSource | None = None,
    ) -> DownloadPlan:
        """What a bulk download of ``query`` with ``required`` will cost, before starting it.

        One ``page_size=0`` query gives the number of entries; ``sample`` entries are
        downloaded with ``required`` to estimate the bytes per entry; requests and time follow
        from the listing page size, the batch size and this client's rate limit
        (:func:`bulk_requests`). A scientist
        about to download 50,000 archives from a shared deployment should know it first.

        Returns:
            The plan (entries, requests, approximate bytes and seconds), also readable as text.
        """
        body = {"owner": "visible", "query": self.query_json(query, schema), "pagination": {"page_size": 0}}
        answer = self.post_json("entries/query", body)
        pagination = answer.get("pagination") if isinstance(answer, dict) else None
        total = int(pagination.get("total", 0)) if isinstance(pagination, dict) else 0
        sizes: list[int] = []
        if sample > 0 and total:
            for entry in self.entries(query, page_size=min(sample, page_size), schema=schema):
                if len(sizes) >= sample:
                    break
                sizes.append(len(dump_json(self.archive_raw(str(entry["entry_id"]), required))))
        requests_needed = bulk_requests(total, page_size, batch_size)
        per_entry = sum(sizes) / len(sizes) if sizes else 0.0
        seconds = requests_needed / self.rate if self.rate > 0 else 0.0
        return DownloadPlan(total, requests_needed, int(per_entry * total), seconds, len(sizes))

    def aggregate(
        self,
        query: QueryLike = None,
        *,
        terms: str | Sequence[str] = (),
        histogram: Mapping[str, float | Mapping[str, Any]] | None = None,
        size: int = 10,
        owner: str = "visible",
        schema: Schema | SchemaSource | None = None,
    ) -> dict[str, list[dict[str, Any]]]:
        """Counts of entries per value (``terms``) or per bin (``histogram``) of search keys.

        One ``POST entries/query`` with ``page_size: 0`` (no entries, only buckets). Useful to
        size and shard a large query first (by ``upload_id``, by element, by year).

        Args:
            query: which entries (checked like :meth:`entries` queries).
            terms: search keys to count values of (``"results.material.elements"``).
            histogram: ``{key: interval}`` or ``{key: {"interval": ..., "buckets": ...}}``.
            size: the most buckets per ``terms`` key (NOMAD's default is 10).
            owner: the owner scope.
            schema: metainfo to check the query and keys against (default :attr:`schema`).

        Returns:
            ``{key: [{"value": v, "count": n}, ...]}`` with the server's bucket order (histogram
            buckets also carry ``start``/``end`` when the server sends them).

        Raises:
            QueryError: an unknown query or aggregation key, or a histogram over a key that is
                no number or date (checked before the request).
            ValueError: neither ``terms`` nor ``histogram``.
        """
        names = [terms] if isinstance(terms, str) else list(terms)
        bins = dict(histogram or {})
        if not names and not bins:
            raise ValueError("aggregate needs terms=... or histogram=...")
        quantities = self.search_keys(schema)
        body_query = query_json(query, quantities)
        if quantities is not None:
            for key in [*names, *bins]:
                _check_key(key, quantities)
            for key in bins:
                found = quantities.lookup(key)
                if found is not None and not found.supports_range:
                    # NOMAD refuses it too (422 "cannot be used in a histogram aggregation")
                    raise QueryError(
                        f"a histogram needs a number or date key; {key!r} holds {found.kind} values",
                        key=key, location=("aggregations", key),
                    )
        aggregations: dict[str, Any] = {}
        for key in names:
            aggregations[f"terms:{key}"] = {"terms": {"quantity": key, "size": size}}
        for key, spec in bins.items():
            options = dict(spec) if isinstance(spec, Mapping) else {"interval": spec}
            aggregations[f"histogram:{key}"] = {"histogram": {"quantity": key, **options}}
        body = {"owner": owner, "query": body_query, "pagination": {"page_size": 0}, "aggregations": aggregations}
        answer = self.post_json("entries/query", body)
        found = answer.get("aggregations") if isinstance(answer, dict) else None
        result: dict[str, list[dict[str, Any]]] = {}
        for name, spec in aggregations.items():
            kind, key = name.split(":", 1)
            part = (found or {}).get(name) or {}
            buckets = (part.get(kind) or {}).get("data") if isinstance(part, dict) else None
            result[key] = [_bucket(item) for item in buckets or [] if isinstance(item, dict)]
        return result

    def shards(
        self,
        query: QueryLike = None,
        *,
        by: str = "upload_id",
        max_entries: int = 10_000,
        size: int = 1000,
        schema: Schema | SchemaSource | None = None,
    ) -> list[dict[str, Any]]:
        """Split a large query into sub-queries by the values of one key, from a terms aggregation.

        NOMAD serves at most 10,000 results of one query by page number, and a bulk download
        of 50,000 entries is best split into pieces that can run (and fail, and resume) apart.
        One ``page_size=0`` request counts the entries per value of ``by`` (an upload, by
        default); values are packed into shards of at most ``max_entries`` entries (a value
        larger than that is a shard alone). Entries without a value of ``by`` are not in any
        shard: use a key every entry has.

        Args:
            query: the whole query.
            by: the search key to split by (``upload_id``, ``results.material.chemical_formula_hill`` ...).
            max_entries: the most entries one shard should hold.
            size: the most distinct values asked for (NOMAD caps terms aggregations too).
            schema: metainfo to check the query and ``by`` against.

        Returns:
            One NOMAD query dict per shard: the query ``and`` ``{by:any: [values]}``.
        """
        buckets = self.aggregate(query, terms=by, size=size, schema=schema).get(by, [])
        base = query_json(query, self.search_keys(schema))
        shards: list[list[Any]] = []
        counts: list[int] = []
        for bucket in sorted(buckets, key=lambda b: -int(b.get("count", 0))):
            count = int(bucket.get("count", 0))
            for i, filled in enumerate(counts):  # first fit, largest values first
                if filled + count <= max_entries:
                    shards[i].append(bucket["value"])
                    counts[i] += count
                    break
            else:
                shards.append([bucket["value"]])
                counts.append(count)
        out = []
        for values in shards:
            selector = {f"{by}:any": values}
            out.append({"and": [base, selector]} if base else selector)
        return out

    def aggregate_frame(self, query: QueryLike = None, **options: Any) -> Any:
        """:meth:`aggregate` as one ``pandas.DataFrame`` with columns ``key``, ``value``, ``count``.

        Needs the optional pandas; typed ``Any`` so the library does not need pandas' stubs.
        """
        try:  # the optional extra, imported only here (``import archivemap`` stays light)
            pd = importlib.import_module("pandas")
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError("aggregate_frame needs pandas: pip install pandas") from error
        rows = [
            {"key": key, **bucket}
            for key, buckets in self.aggregate(query, **options).items()
            for bucket in buckets
        ]
        return pd.DataFrame(rows, columns=sorted({"key", "value", "count"}.union(*rows), key=_column_order))

    # ------------------------------------------------------------------ raw files

    def raw(
        self,
        entry_id: str,
        path: str | None = None,
        to: str | Path = ".",
        *,
        resume: bool = True,
        max_bytes: int | None = None,
        progress: bool | None = None,
    ) -> Path:
        """Download an entry's raw files as a zip, or one raw file of its upload.

        Without ``path``: ``GET entries/{entry_id}/raw`` → ``to/<entry_id>.zip``. With ``path``
        (a path inside the upload, as the entry's ``files`` metadata lists it): the entry's
        ``upload_id`` is looked up and ``GET uploads/{upload_id}/raw/{path}`` is saved as
        ``to/<file name>``.

        Args:
            entry_id: the entry.
            path: one file, relative to the upload's root.
            to: the folder to write into (created if missing).
            resume: continue a ``.part`` file left by an interrupted call with an HTTP range
                request, where the server allows ranges.
            max_bytes: refuse downloads larger than this (checked against ``Content-Length``
                before the body, and while it arrives).
            progress: show bytes received (default: when a human watches).

        Returns:
            The path of the written file.

        Raises:
            NotFoundError: unknown entry or file.
            DownloadLimitError: larger than ``max_bytes``.
            TransportError: no complete download after all retries.
        """
        if path is None:
            target = Path(to) / f"{_file_name(entry_id)}.zip"
            return self._download(
                "GET", f"entries/{quote(entry_id, safe='')}/raw", target,
                resume=resume, max_bytes=max_bytes, progress=progress,
            )
        answer = self.get_json(f"entries/{quote(entry_id, safe='')}", {"include": ["upload_id"]})
        data = answer.get("data") if isinstance(answer, dict) else None
        upload_id = data.get("upload_id") if isinstance(data, dict) else None
        if not isinstance(upload_id, str):
            raise ClientError(f"entry {entry_id} has no upload_id", self.url(f"entries/{entry_id}"))
        return self.upload_raw(upload_id, path, to, resume=resume, max_bytes=max_bytes, progress=progress)

    def upload_raw(
        self,
        upload_id: str,
        path: str,
        to: str | Path = ".",
        *,
        resume: bool = True,
        max_bytes: int | None = None,
        progress: bool | None = None,
    ) -> Path:
        """Download one raw file of an upload (``GET uploads/{upload_id}/raw/{path}``) to ``to``.

        See :meth:`raw` for the options.
        """
        target = Path(to) / _file_name(path)
        return self._download(
            "GET", f"uploads/{quote(upload_id, safe='')}/raw/{_quote_path(path)}", target,
            resume=resume, max_bytes=max_bytes, progress=progress,
        )

    def raw_query(
        self,
        query: QueryLike = None,
        to: str | Path = "raw.zip",
        *,
        owner: str = "visible",
        files: Mapping[str, Any] | None = None,
        max_bytes: int | None = None,
        progress: bool | None = None,
        schema: Schema | SchemaSource | None = None,
    ) -> Path:
        """A zip of the raw files of every entry matching a query (``POST entries/raw/query``).

        NOMAD streams the zip as it builds it, so it cannot be resumed; it refuses queries
        matching more than 50 000 entries (400): :meth:`aggregate` by ``upload_id`` to shard.

        Args:
            query: which entries (checked like :meth:`entries` queries).
            to: the zip file to write.
            owner: the owner scope.
            files: NOMAD's file options (``{"glob_pattern": "*.xml"}``, ``compress``...).
            max_bytes: refuse a larger zip.
            progress: show bytes received.
            schema: metainfo to check the query against (default :attr:`schema`).
        """
        body: dict[str, Any] = {"owner": owner, "query": self.query_json(query, schema)}
        if files is not None:
            body["files"] = dict(files)
        return self._download(
            "POST", "entries/raw/query", Path(to), json_body=body,
            resume=False, max_bytes=max_bytes, progress=progress,
        )

    def _download(
        self,
        method: str,
        path: str,
        target: Path,
        *,
        json_body: Any = None,
        resume: bool,
        max_bytes: int | None,
        progress: bool | None,
    ) -> Path:
        """Stream an answer body into ``target`` through ``target.part``, resuming where allowed."""
        client: Any = self  # the transport internals are Client's
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(target.name + ".part")
        if not resume:
            part.unlink(missing_ok=True)
        url = self.url(path)
        policy = client.retry_policy
        attempt = 0
        ranges = resume and method == "GET"
        meter = Progress(progress, unit="B", desc=target.name)
        try:
            while True:
                offset = part.stat().st_size if ranges and part.exists() else 0
                try:
                    done = self._stream_once(method, url, json_body, part, offset, max_bytes, meter)
                except _Retry as retry:
                    ranges = ranges and retry.ranges
                    if not ranges:
                        part.unlink(missing_ok=True)
                    log.info("%s %s: %s; %s", method, url, retry,
                             "resuming with a range" if ranges and part.exists() else "starting over")
                    if attempt >= policy.retries:
                        raise TransportError(
                            f"{method} download failed after {attempt + 1} attempts: {retry}", url
                        ) from None
                    client._back_off(attempt, retry.retry_after, method, url, str(retry))
                    attempt += 1
                    continue
                if done:
                    part.replace(target)
                    return target
        finally:
            meter.close()

    def _stream_once(
        self,
        method: str,
        url: str,
        json_body: Any,
        part: Path,
        offset: int,
        max_bytes: int | None,
        meter: Progress,
    ) -> bool:
        """One request; True when ``part`` holds the whole body, :class:`_Retry` when worth another."""
        client: Any = self
        headers = {"Accept": "*/*", "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        response = self._open(method, url, json_body, headers)
        with response:
            status = response.status_code
            accepts_ranges = response.headers.get("Accept-Ranges", "").strip().lower() == "bytes"
            if status == 416 and offset:
                raise _Retry("the partial file does not fit the server's file", ranges=False)
            if status >= 400:
                if status in client.retry_policy.statuses:
                    raise _Retry(str(status), ranges=accepts_ranges,
                                 retry_after=_retry_after(response.headers.get("Retry-After")))
                raise client._status_error(method, url, response, response.content)
            appending = status == 206 and offset > 0
            if appending and not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
                raise _Retry("the server answered another range", ranges=False)
            start = offset if appending else 0
            length_header = response.headers.get("Content-Length")
            expected = start + int(length_header) if length_header and length_header.isdigit() else None
            if max_bytes is not None and expected is not None and expected > max_bytes:
                raise DownloadLimitError(f"{expected} bytes is more than max_bytes={max_bytes}", url)
            if expected is not None:
                meter.total = expected
            if start and meter.count == 0:
                meter.advance(start)  # the resumed part counts as done
            written = start
            try:
                with part.open("ab" if appending else "wb") as out:
                    for chunk in response.iter_content(_CHUNK):
                        written += len(chunk)
                        if max_bytes is not None and written > max_bytes:
                            out.close()
                            part.unlink(missing_ok=True)
                            raise DownloadLimitError(f"more than max_bytes={max_bytes} bytes", url)
                        out.write(chunk)
                        meter.advance(len(chunk))
            except RETRYABLE_EXCEPTIONS as exc:
                raise _Retry(f"{type(exc).__name__} after {written} bytes", ranges=accepts_ranges) from None
            if expected is not None and written != expected:
                raise _Retry(f"body ended after {written} of {expected} bytes", ranges=accepts_ranges)
            with client._count_lock:
                client._bytes_received += written - start
            return True

    def _open(self, method: str, url: str, json_body: Any, headers: dict[str, str]) -> requests.Response:
        """A streamed response, redirects followed here so the token never leaves our host."""
        client: Any = self
        refreshed = False
        for _ in range(self.max_redirects + 1):
            sent = client._current_token()
            request_headers = dict(headers)
            if sent is not None and client._same_origin(url):
                request_headers["Authorization"] = f"Bearer {sent.reveal()}"
            try:
                with client._limiter.slot():
                    with client._count_lock:
                        client._requests_made += 1
                    response = client._session.request(
                        method, url, json=json_body, headers=request_headers, timeout=self.timeout,
                        allow_redirects=False, stream=True,
                    )
            except RETRYABLE_EXCEPTIONS as exc:
                raise _Retry(f"{type(exc).__name__}", ranges=True) from None
            if response.status_code == 401 and client._password is not None and not refreshed:
                response.close()
                client._refresh_token(sent)
                refreshed = True
                continue
            location = response.headers.get("Location")
            if response.status_code not in REDIRECTS or not location:
                return response
            response.close()
            url = urljoin(url, location)
            if response.status_code == 303:
                method, json_body = "GET", None
        raise TransportError(f"more than {self.max_redirects} redirects", url)


class _Retry(Exception):
    """A download attempt that may succeed when repeated; ``ranges``: the part may be resumed."""

    def __init__(self, why: str, *, ranges: bool, retry_after: float | None = None) -> None:
        super().__init__(why)
        self.ranges = ranges
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _check_key(key: str, quantities: SearchQuantities) -> None:
    """An aggregation key must be a search key of a value (not a section): else QueryError."""
    found = quantities.lookup(key)
    if found is None or found.is_section:
        nearest = quantities.nearest(key)
        hint = f"; did you mean {' or '.join(repr(n) for n in nearest)}?" if nearest else ""
        raise QueryError(f"unknown search key {key!r}{hint}", key=key,
                         location=("aggregations", key), suggestions=tuple(nearest))


def _bucket(item: Mapping[str, Any]) -> dict[str, Any]:
    bucket = {"value": item.get("value"), "count": item.get("count")}
    for extra in ("start", "end", "nested_count"):
        if extra in item:
            bucket[extra] = item[extra]
    return bucket


def _column_order(name: str) -> tuple[int, str]:
    order = {"key": 0, "value": 1, "count": 2}
    return (order.get(name, 3), name)


def bulk_requests(total: int, page_size: int, batch_size: int) -> int:
    """The requests ``Client.archives`` sends for ``total`` entries (``explain``'s count).

    The first request is a page of archives itself; up to two batches are paged, larger sets
    continue with listing pages of ``page_size`` ids and batches of ``batch_size`` archives.
    """
    if total <= 0:
        return 1
    if total <= 2 * batch_size:
        return -(-total // batch_size)
    rest = total - batch_size
    return 1 + -(-rest // page_size) + -(-rest // batch_size)
