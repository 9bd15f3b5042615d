"""HTTP client for the NOMAD API v1: auth, limits, retries, pagination, bulk archives.

Synchronous on purpose: bulk downloads use a thread pool, never an event loop, so the client
works the same in scripts and inside Jupyter (whose loop is already running).

Compared with NOMAD's own ``ArchiveQuery`` (spec §5.9) this client

* matches bulk answers to entries by ``entry_id``, never by position, and re-requests
  entries an answer silently dropped (spec §4.7, §7.20);
* retries 429/502/503/504, dropped connections and truncated bodies with jittered
  exponential backoff that honours ``Retry-After`` and pauses all threads together;
* does not narrow the user's query with a ``quantities`` filter derived from ``required``;
* yields every entry exactly once, in listing order, with a cursor to resume from;
* isolates entries the server cannot render (a batch answered 500 is split until the failing
  entries are known; they are reported in :attr:`ArchiveStream.failed`, the rest delivered);
* never sends credentials to a host other than its own, not even through redirects;
* never sends a request to another installation because archive data names it (references,
  ``m_def``), unless the user listed it in ``follow_hosts``.

Every answer is read as a stream under a size limit (counted on the wire and after gzip or
deflate decoding, so a compression bomb is abandoned early) and every call has a total
deadline, retries and backoff included, so a hostile or broken server can neither exhaust
memory nor hold a thread forever.

This module is the :class:`Client` itself: its options, requests with retries and back-off,
redirects that never carry credentials off the host, login, and the entries and archives
API. Its machinery lives in modules of its own, which do not import the client:

* :mod:`~archivemap.remote._transport`: connections that end at the call's deadline;
* :mod:`~archivemap.remote._body`: bodies read under the size limit and the deadline;
* :mod:`~archivemap.remote._secrets`: credentials kept out of sight, echoes scrubbed;
* :mod:`~archivemap.remote._urls`: API base URLs, origins and installations;
* :mod:`~archivemap.remote._failures`: error answers and failed connections in words;
* :mod:`~archivemap.remote._paging`: cursor pages and the page sizes a deployment accepts;
* :mod:`~archivemap.remote._cursors`: the ``am1:`` resume cursor;
* :mod:`~archivemap.remote.stream`: the bulk download (:class:`ArchiveStream`);
* :mod:`~archivemap.remote._sampling`: the sampling behind :meth:`Client.analyze`.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final
from urllib.parse import quote, urljoin, urlsplit

import requests

from archivemap.archive.load import default_schema
from archivemap.archive.schema import Schema, SchemaSource, as_schema
from archivemap.archive.sections import Section
from archivemap.errors import (
    ArchivemapError,
    AuthenticationError,
    HTTPStatusError,
    MalformedResponseError,
    NotDownloadedError,
    ResponseTooLargeError,
    TransportError,
    UnsupportedReferenceError,
)
from archivemap.metainfo.deployment import deployment_environment
from archivemap.remote._body import ERROR_BODY_MAX, Dropped, TruncatedBody, parse_body, read_body
from archivemap.remote._failures import status_error, transport_reason
from archivemap.remote._limits import HARD_MAX_CONCURRENCY, Limiter, RetryPolicy, parse_retry_after
from archivemap.remote._paging import Pager
from archivemap.remote._sampling import SAMPLE_PAGE_BYTES, analyze
from archivemap.remote._secrets import Secret, scrub_with, secret_pattern
from archivemap.remote._transport import (
    REDIRECTS,
    RETRYABLE_EXCEPTIONS,
    DeadlineExceeded,
    call_deadline,
    new_session,
)
from archivemap.remote._urls import api_base_url, installation_key, origin
# the disk cache and the locked, cached bulk download
from archivemap.remote.cache import ArchiveCache, as_cache, cached_answer, fill
from archivemap.remote.derive import Analysis
from archivemap.remote.endpoints import ApiMethods, scope_error
from archivemap.remote.fetch import open_archive
from archivemap.remote.lockfile import dataset_archives
from archivemap.remote.query import Query
from archivemap.remote.required import Required
from archivemap.remote.stream import ArchiveStream, BulkSource, EntryFailure

# ArchiveStream and EntryFailure live in remote/stream.py, api_base_url in _urls and
# transport_reason in _failures; named here too, where they were imported from before the split
__all__ = ["ArchiveStream", "Client", "EntryFailure", "api_base_url", "transport_reason"]

log = logging.getLogger("archivemap.remote.client")

#: Default of ``Client(max_response_bytes=...)``: generous for real archives, finite.
DEFAULT_MAX_RESPONSE_BYTES: Final = 1024 * 1024 * 1024
#: Retries after which a failure to reach a host that has never answered this client ends
#: the call: a mistyped host name or a server that is not running should be said in a
#: second, not after the full back-off (~15 s). Once the host has answered, the same
#: failures are a restart or a hiccup, and get every retry.
_FAIL_FAST: Final = {"host name not found": 0, "connection refused": 1}

#: Default of ``Client(deadline=...)``: seconds one API call may take, retries included.
DEFAULT_DEADLINE: Final = 600.0


class Client(ApiMethods):
    """A synchronous, thread-safe client for one NOMAD installation's API v1.

    Every request goes through one concurrency cap and one rate budget shared by all
    threads (NOMAD's proxy answers 503 above ~10 concurrent requests or ~30/s), and through
    one retry policy. Credentials are kept out of ``repr``, logs and exceptions and are
    sent only to the client's own scheme, host and port.

    Attributes:
        base_url: the API v1 URL, without trailing slash.
        timeout: ``(connect, read)`` seconds, applied to every request.
        retry_policy: when and how long to back off.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        *,
        max_concurrency: int = 8,
        rate: float = 20.0,
        retries: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        retry_after_max: float = 60.0,
        timeout: tuple[float, float] = (10.0, 120.0),
        session: requests.Session | None = None,
        max_redirects: int = 5,
        pickle_credentials: bool = False,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        deadline: float | None = DEFAULT_DEADLINE,
        follow_hosts: Iterable[str] = (),
        cache: ArchiveCache | str | os.PathLike[str] | bool | None = None,
        offline: bool = False,
    ) -> None:
        """Create a client.

        Args:
            base_url: the API v1 URL, e.g. ``https://nomad-lab.eu/prod/v1/api/v1``.
            token: a bearer token (access token, app token or PAT).
            username: with ``password``, log in via ``POST auth/token`` on first use, and
                again once whenever the server answers 401.
            password: see ``username``.
            max_concurrency: simultaneous requests; values above 10 are lowered to 10,
                the most NOMAD's proxy tolerates.
            rate: requests per second across all threads (``0``: unlimited).
            retries: retries after the first attempt for retryable failures.
            backoff_base: first backoff delay in seconds (doubles per retry, jittered).
            backoff_max: cap of the backoff delay.
            retry_after_max: cap of a server-requested ``Retry-After`` delay (``nan``,
                negative, huge values and HTTP dates are all read safely, then capped).
            timeout: ``(connect, read)`` timeouts in seconds, for each socket operation.
            session: a ``requests.Session`` to use (not closed by :meth:`close`).
            max_redirects: redirects followed per request.
            pickle_credentials: whether pickling this client (or an archive it opened)
                writes its credentials (token, username and password) into the pickle, so
                that the unpickled client is authenticated too. Off by default: an unpickled
                client then has no auth, and no secret is ever in the pickle bytes. Turn it on
                only for pickles that stay as private as the credentials (e.g. sent to your
                own workers); settable later as :attr:`pickle_credentials`.
            max_response_bytes: the largest answer body accepted, counted on the wire and
                again after gzip/deflate decoding; a larger one (or a compression bomb) is
                abandoned while streaming with :class:`~archivemap.errors.ResponseTooLargeError`.
            deadline: seconds one API call may take in total, every attempt, backoff and
                ``Retry-After`` wait included (``None``: no deadline). Socket timeouts alone
                do not bound a server that sends one byte per second; this does (for the
                status line and headers only with the client's own session: a ``session``
                passed in keeps its own transport adapters).
            follow_hosts: other installations (any of their URLs; their API base is used)
                whose archives references and ``m_def`` values in archive data may lead to.
                Archive data is input: without this list, a reference to any other host
                (``http://169.254.169.254/...`` included) is an unresolved reference
                (:class:`~archivemap.errors.UnsupportedReferenceError`), never a request.
                Credentials are never sent to those hosts either way.
            cache: the disk cache of archive data: ``True`` for the default folder
                (``$ARCHIVEMAP_CACHE_DIR`` or the user cache), a folder, or an
                :class:`~archivemap.remote.cache.ArchiveCache`; opt-in (see that module).
                :meth:`archives` then reads and fills it; lazy follow-ups fill it.
            offline: answer archives from ``cache`` only; anything else raises
                :class:`~archivemap.errors.NotDownloadedError`.

        Raises:
            ValueError: a bad URL (``base_url`` or in ``follow_hosts``), ``password``
                without ``username`` (or the reverse), a non-positive ``max_concurrency``,
                ``max_response_bytes`` or ``deadline``.
        """
        if bool(username) != bool(password):
            raise ValueError("username and password must be given together")
        if max_concurrency > HARD_MAX_CONCURRENCY:
            log.warning(
                "max_concurrency %d lowered to %d (NOMAD refuses more concurrent requests)",
                max_concurrency,
                HARD_MAX_CONCURRENCY,
            )
            max_concurrency = HARD_MAX_CONCURRENCY
        parts = urlsplit(base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
        if max_response_bytes < 1:
            raise ValueError(f"max_response_bytes must be positive, not {max_response_bytes}")
        if deadline is not None and not deadline > 0:
            raise ValueError(f"deadline must be positive or None, not {deadline}")
        self.base_url = base_url.strip().rstrip("/")
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.max_response_bytes = int(max_response_bytes)
        self.deadline = None if deadline is None else float(deadline)
        if isinstance(follow_hosts, str):
            follow_hosts = [follow_hosts]
        self.follow_hosts: tuple[str, ...] = tuple(dict.fromkeys(api_base_url(u) for u in follow_hosts))
        self.retry_policy = RetryPolicy(
            retries=retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            retry_after_max=retry_after_max,
        )
        self._limiter = Limiter(max_concurrency, rate)
        self._rate = rate
        self._origin = origin(self.base_url)
        self._token = Secret(token) if token else None
        self._username = username
        self._password = Secret(password) if password else None
        self._owns_session = session is None
        self._deployment_schema: Schema | None = None
        self._session = session if session is not None else new_session(max_concurrency)
        self._auth_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._requests_made = 0
        self._bytes_received = 0
        self._answered = False  # has the host ever answered? (see _FAIL_FAST)
        self._other_hosts: dict[str, Client] = {}
        # the page sizes this deployment accepts, learned from its 422s (archivemap/remote/_paging.py)
        self._pager = Pager(self)
        self.pickle_credentials = pickle_credentials
        # the disk cache and offline mode (archivemap/remote/cache.py)
        self.cache: ArchiveCache | None = as_cache(cache)
        self.offline = offline

    # ------------------------------------------------------------------ plumbing

    def __repr__(self) -> str:
        return f"Client({self.base_url!r}, auth={self.has_auth})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as base URL and options; a new session on the other side.

        Credentials only with :attr:`pickle_credentials` (see the constructor).
        """
        policy = self.retry_policy
        options: dict[str, Any] = {
            "max_concurrency": self.max_concurrency,
            "rate": self._rate,
            "retries": policy.retries,
            "backoff_base": policy.backoff_base,
            "backoff_max": policy.backoff_max,
            "retry_after_max": policy.retry_after_max,
            "timeout": tuple(self.timeout),
            "max_redirects": self.max_redirects,
            "pickle_credentials": self.pickle_credentials,
            "max_response_bytes": self.max_response_bytes,
            "deadline": self.deadline,
            "follow_hosts": list(self.follow_hosts),
            "cache": self.cache,  # pickles as its folder
            "offline": self.offline,
        }
        if self.pickle_credentials:
            options["token"] = self._token.reveal() if self._token is not None else None
            options["username"] = self._username
            options["password"] = self._password.reveal() if self._password is not None else None
        return (_rebuild_client, (self.base_url, options))

    def __copy__(self) -> Client:
        return self  # a client is a shared, thread-safe handle: copies would only lose auth

    def __deepcopy__(self, memo: dict[int, Any]) -> Client:
        return self

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._owns_session:
            self._session.close()

    @property
    def has_auth(self) -> bool:
        """Whether requests are (or will be) authenticated."""
        return self._token is not None or self._password is not None

    @property
    def max_concurrency(self) -> int:
        """The concurrency cap in effect."""
        return self._limiter.max_concurrency

    @property
    def rate(self) -> float:
        """The request rate this client keeps to (requests per second, ``0``: unlimited)."""
        return self._limiter.bucket.rate

    @property
    def requests_made(self) -> int:
        """HTTP requests sent so far, counting every retry and redirect hop."""
        return self._requests_made

    @property
    def bytes_received(self) -> int:
        """Response body bytes received so far (after content decoding)."""
        return self._bytes_received

    def url(self, path: str) -> str:
        """The absolute URL of an API path (``entries/query``); absolute URLs pass through."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def _same_origin(self, url: str) -> bool:
        return origin(url) == self._origin

    def _secrets(self) -> list[str]:
        return [s.reveal() for s in (self._token, self._password) if s is not None]

    def _secret_pattern(self) -> re.Pattern[str] | None:
        """One regex for every spelling in which a server may echo a credential back
        (:func:`~archivemap.remote._secrets.secret_pattern`)."""
        basic = None
        if self._username and self._password is not None:
            basic = (self._username, self._password.reveal())
        return secret_pattern(self._secrets(), basic)

    def _scrub(self, value: Any) -> Any:
        """Replace every credential inside ``value`` (a server may echo request input).

        Strings, dict keys and values, and list items are scrubbed, in every spelling of
        :meth:`_secret_pattern`.
        """
        pattern = self._secret_pattern()
        return value if pattern is None else scrub_with(value, pattern)

    # ------------------------------------------------------------------ requests

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """``GET`` an API path and return the decoded JSON answer.

        Args:
            path: an API path relative to :attr:`base_url`, or an absolute URL.
            params: URL query parameters.

        Returns:
            The decoded JSON.

        Raises:
            HTTPStatusError: (a subclass per status) the server refused the request.
            TransportError: no complete answer after all retries.
        """
        return self._request("GET", path, params=params)

    def post_json(
        self,
        path: str,
        body: Any = None,
        *,
        form: Mapping[str, str] | None = None,
        authenticate: bool = True,
        max_bytes: int | None = None,
    ) -> Any:
        """``POST`` JSON (or a form) to an API path and return the decoded JSON answer.

        Args:
            path: an API path relative to :attr:`base_url`, or an absolute URL.
            body: the JSON body.
            form: form fields instead of a JSON body.
            authenticate: whether to send the Authorization header (same host only).
            max_bytes: a smaller size limit than ``max_response_bytes`` for this answer
                (a request that is worth making only while its answer stays small).

        Returns:
            The decoded JSON.

        Raises:
            HTTPStatusError: (a subclass per status) the server refused the request.
            TransportError: no complete answer after all retries.
        """
        return self._request("POST", path, json_body=body, form=form, authenticate=authenticate, max_bytes=max_bytes)

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        authenticate: bool = True,
        max_bytes: int | None = None,
    ) -> Any:
        url = self.url(path)
        limit = self.max_response_bytes if max_bytes is None else min(max_bytes, self.max_response_bytes)
        deadline = None if self.deadline is None else time.monotonic() + self.deadline
        attempt = 0
        refreshed = False
        while True:
            sent_token = self._current_token() if authenticate else None
            try:
                response, content, final_url = self._send(
                    method, url, params, json_body, form, sent_token, deadline, limit
                )
                self._answered = True
                if 200 <= response.status_code < 300:
                    return self._decode_answer(method, final_url, response, content)
            except DeadlineExceeded:
                raise TransportError(
                    f"{method} did not finish within its deadline of {self.deadline:g} s "
                    "(Client(deadline=...))",
                    self._scrub(url),
                ) from None
            except (*RETRYABLE_EXCEPTIONS, TruncatedBody, Dropped) as exc:
                if deadline is not None and time.monotonic() >= deadline:
                    # the watchdog cut the connection (or a timeout ran into the deadline)
                    raise TransportError(
                        f"{method} did not finish within its deadline of {self.deadline:g} s "
                        "(Client(deadline=...))",
                        self._scrub(url),
                    ) from None
                reason = transport_reason(str(exc))
                why = f"{reason} ({type(exc).__name__})" if reason else f"{type(exc).__name__}: {self._scrub(str(exc))[:300]}"
                fail_fast = not self._answered and attempt >= _FAIL_FAST.get(reason or "", attempt + 1)
                if fail_fast or attempt >= self.retry_policy.retries or not self._back_off(
                    attempt, None, method, url, type(exc).__name__, deadline
                ):
                    cls = MalformedResponseError if isinstance(exc, TruncatedBody) else TransportError
                    what = "answered with a body that is not JSON" if cls is MalformedResponseError else "failed"
                    tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
                    raise cls(f"{method} {what} after {tries}: {why}", self._scrub(url)) from None
                attempt += 1
                continue
            status = response.status_code
            if status == 401 and authenticate and self._password is not None and not refreshed:
                log.info("%s %s -> 401; logging in again", method, self._scrub(url))
                self._refresh_token(sent_token)
                refreshed = True
                continue
            if status in self.retry_policy.statuses and attempt < self.retry_policy.retries:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if self._back_off(attempt, retry_after, method, url, str(status), deadline):
                    attempt += 1
                    continue
            raise self._status_error(method, final_url, response, content)

    def _decode_answer(self, method: str, url: str, response: requests.Response, content: bytearray) -> Any:
        """The JSON of a 2xx answer; :class:`TruncatedBody` only where a cut is possible.

        A body with a ``Content-Length`` or chunked framing that arrived complete and still
        is not JSON will not become JSON on a retry: that is a malformed answer at once.
        Only a body delimited by the connection closing may have been cut short unseen.
        """
        try:
            return parse_body(content)
        except TruncatedBody as exc:
            framed = "Content-Length" in response.headers or "chunked" in response.headers.get(
                "Transfer-Encoding", ""
            ).lower()
            if not framed:
                raise
            raise MalformedResponseError(
                f"{method} answered {response.status_code} with a body that is not JSON: "
                f"{self._scrub(str(exc))[:300]}",
                self._scrub(url),
            ) from None

    def _timeout(self, deadline: float | None) -> tuple[float, float]:
        """Socket timeouts, never longer than what is left of the deadline."""
        connect, read = self.timeout
        if deadline is None:
            return connect, read
        left = deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded
        return min(connect, left), min(read, left)

    def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        json_body: Any,
        form: Mapping[str, str] | None,
        token: Secret | None,
        deadline: float | None = None,
        limit: int | None = None,
    ) -> tuple[requests.Response, bytearray, str]:
        """One request, following redirects ourselves so auth never leaves our host.

        The body is streamed (``stream=True``) and read by :func:`~archivemap.remote._body.read_body` under the size
        limit and the deadline; a redirect's body is never read.
        """
        for _ in range(self.max_redirects + 1):
            headers = {"Accept": "application/json", "Accept-Encoding": "gzip, deflate"}
            if token is not None and self._same_origin(url):
                headers["Authorization"] = f"Bearer {token.reveal()}"
            started = time.monotonic()
            with self._limiter.slot():
                with self._count_lock:
                    self._requests_made += 1
                with call_deadline(deadline):
                    response = self._session.request(
                        method,
                        url,
                        params=params,
                        json=json_body,
                        data=form,
                        headers=headers,
                        timeout=self._timeout(deadline),
                        allow_redirects=False,
                        stream=True,
                    )
                location = response.headers.get("Location")
                redirect = response.status_code in REDIRECTS and bool(location)
                complete = False
                content = bytearray()
                try:
                    if redirect:
                        pass
                    elif 200 <= response.status_code < 300:
                        # inside the slot: the body is part of the load
                        body_limit = self.max_response_bytes if limit is None else limit
                        try:
                            content, complete = read_body(response, deadline, body_limit, method, self._scrub)
                        except ResponseTooLargeError:
                            with self._count_lock:  # abandoned at the limit: it was received
                                self._bytes_received += body_limit
                            raise
                    else:  # only read for its detail: cut, never refused
                        content, complete = read_body(
                            response,
                            deadline,
                            min(ERROR_BODY_MAX, self.max_response_bytes),
                            method,
                            self._scrub,
                            cut=True,
                        )
                finally:
                    # a connection goes back to the pool only with its answer read to the end
                    if complete:
                        response.raw.release_conn()
                    else:
                        response.close()
            with self._count_lock:
                self._bytes_received += len(content)
            log.debug(
                "%s %s -> %d (%d bytes, %.3f s)",
                method,
                self._scrub(response.url),
                response.status_code,
                len(content),
                time.monotonic() - started,
            )
            if not redirect or location is None:
                return response, content, response.url or url
            url = urljoin(response.url or url, location)
            params = None  # the Location carries its own query
            if form is not None and not self._same_origin(url):
                # a login form holds the password: it never follows a redirect to another host
                raise TransportError(
                    f"refusing to send credentials to another host after a {response.status_code} "
                    "redirect", self._scrub(url.split("?", 1)[0]),
                )
            if response.status_code == 303 or (
                response.status_code in (301, 302) and method == "POST"
            ):
                method, json_body, form = "GET", None, None
        raise TransportError(f"more than {self.max_redirects} redirects", self._scrub(url))

    def _back_off(
        self,
        attempt: int,
        retry_after: float | None,
        method: str,
        url: str,
        why: str,
        deadline: float | None = None,
    ) -> bool:
        """Wait before the next attempt; False (without waiting) if that would pass the deadline."""
        delay = self.retry_policy.delay(attempt, retry_after)
        if deadline is not None and time.monotonic() + delay >= deadline:
            log.info("%s %s: %s; no retry, the deadline would pass first", method, self._scrub(url), why)
            return False
        if retry_after is not None:
            # The server throttles the client, not this request: hold back every thread.
            self._limiter.pause(delay)
        log.info(
            "%s %s: %s; retry %d/%d in %.2f s",
            method,
            self._scrub(url),
            why,
            attempt + 1,
            self.retry_policy.retries,
            delay,
        )
        time.sleep(delay)
        return True

    def _status_error(
        self, method: str, url: str, response: requests.Response, content: bytes | bytearray
    ) -> HTTPStatusError:
        # a 403 naming scopes becomes MissingScopeError here, the one place every endpoint passes
        return scope_error(status_error(method, url, response, content, self._scrub))

    # ------------------------------------------------------------------ auth

    def _current_token(self) -> Secret | None:
        if self._token is None and self._password is not None:
            self._refresh_token(None)
        return self._token

    def _refresh_token(self, stale: Secret | None) -> None:
        """Log in unless another thread already replaced the ``stale`` token."""
        with self._auth_lock:
            if self._token is not stale and self._token is not None:
                return
            self._token = Secret(self._login())

    def _login(self) -> str:
        assert self._username is not None and self._password is not None
        answer = self.post_json(
            "auth/token",
            form={
                "username": self._username,
                "password": self._password.reveal(),
                "grant_type": "password",
            },
            authenticate=False,
        )
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthenticationError(
                "auth/token answered without an access_token", self.url("auth/token"), 200
            )
        return token

    def login(self) -> None:
        """Log in now with username and password (normally done on first use).

        Raises:
            ValueError: the client has no username and password.
            AuthenticationError: the server refused the credentials.
        """
        if self._password is None:
            raise ValueError("this client has no username and password")
        self._refresh_token(self._token)

    def app_token(self, expires_in: int) -> str:
        """Ask the server for a long-lived app token for the logged-in user.

        Args:
            expires_in: validity in seconds (NOMAD allows up to 30 days by default).

        Returns:
            The token; store it like a password.

        Raises:
            ValueError: ``expires_in`` is not positive.
            AuthenticationError: the client is not authenticated.
            ValidationError: ``expires_in`` exceeds the server's maximum.
        """
        if expires_in <= 0:
            raise ValueError(f"expires_in must be positive, not {expires_in}")
        answer = self.get_json("auth/app_token", params={"expires_in": int(expires_in)})
        token = answer.get("app_token") if isinstance(answer, dict) else None
        if not isinstance(token, str):
            raise MalformedResponseError("auth/app_token answered without an app_token", self.url("auth/app_token"))
        return token

    def for_host(self, url: str) -> Client:
        """A client for the installation serving ``url``, without this client's credentials.

        For cross-installation references (spec §3.2 form I). The same installation gives
        this client back; an installation listed in ``follow_hosts`` gets one cached,
        anonymous client that shares the HTTP session and this client's limit settings.
        Any other installation is refused *before* a request is made: the URL comes from
        archive data, and data must not steer requests to hosts nobody named (a cloud
        metadata address, a service on a local port).

        Args:
            url: any URL of the installation (an archive URL, an API base...).

        Returns:
            A client.

        Raises:
            UnsupportedReferenceError: ``url`` is not an http(s) URL, or names an
                installation that is neither this one nor in ``follow_hosts``.
        """
        try:
            base = api_base_url(url)
            key = installation_key(base)  # a bad port raises here too
        except ValueError:
            raise UnsupportedReferenceError(
                f"{url[:200]!r} is not the URL of a NOMAD installation; nothing was requested"
            ) from None
        if key == installation_key(api_base_url(self.base_url)):
            return self
        if key not in {installation_key(allowed) for allowed in self.follow_hosts}:
            raise UnsupportedReferenceError(
                f"reference into another NOMAD installation, {base}, which this client does not "
                f"follow (nothing was requested); to allow it, create the client with "
                f"Client(..., follow_hosts=[{base!r}])"
            )
        with self._auth_lock:
            client = self._other_hosts.get(base)
            if client is None:
                client = Client(
                    base,
                    max_concurrency=self.max_concurrency,
                    rate=self._rate,
                    retries=self.retry_policy.retries,
                    backoff_base=self.retry_policy.backoff_base,
                    backoff_max=self.retry_policy.backoff_max,
                    retry_after_max=self.retry_policy.retry_after_max,
                    timeout=self.timeout,
                    session=self._session,
                    max_redirects=self.max_redirects,
                    max_response_bytes=self.max_response_bytes,
                    deadline=self.deadline,
                    # the same set of installations, seen from there
                    follow_hosts=[*self.follow_hosts, api_base_url(self.base_url)],
                )
                self._other_hosts[base] = client
            return client

    # ------------------------------------------------------------------ entries

    def entries(
        self,
        query: Query | Mapping[str, Any] | None = None,
        required: Mapping[str, Any] | None = None,
        *,
        page_size: int = 100,
        owner: str = "visible",
        order_by: str | None = None,
        order: str | None = None,
        after: str | None = None,
        schema: Schema | SchemaSource | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Iterate over the metadata of all entries matching a query (``POST entries/query``).

        Pages with ``page_after_value`` until a page has no ``next_page_after_value`` or no
        data, so it is not limited by the search backend's 10 000-hit window.

        Args:
            query: the NOMAD query (spec §5.4) or a :class:`~archivemap.remote.query.Query`;
                ``None`` for all entries. Checked before any request against ``schema`` (or
                :attr:`schema`) when one is known; see :meth:`query_json`.
            required: metadata selection, e.g. ``{"include": ["entry_id", "results.material"]}``.
            page_size: entries per request.
            owner: ``visible``, ``public``, ``user``, ``shared``, ``staging``...
            order_by: sort key (server default: ``entry_id``).
            order: ``asc`` or ``desc``.
            after: a ``next_page_after_value`` to start after.
            schema: the deployment's metainfo to check the query and ``order_by`` against.

        Yields:
            Entry metadata dicts.

        Raises:
            QueryError: the query does not fit the deployment's search keys (no request sent).
            HTTPStatusError: (a subclass per status) the server refused the query.
            TransportError: no answer after all retries, or the deadline passed.
            MalformedResponseError: an answer not shaped like NOMAD's, or a cursor cycle.
            ResponseTooLargeError: an answer past ``max_response_bytes``.
        """
        return self._entries(self.query_json(query, schema, order_by), required, page_size, owner, order_by, order, after)

    def _entries(
        self,
        query: dict[str, Any],
        required: Mapping[str, Any] | None,
        page_size: int,
        owner: str,
        order_by: str | None,
        order: str | None,
        after: str | None,
    ) -> Iterator[dict[str, Any]]:
        """The listing itself: a generator, so the query is checked when ``entries`` is called."""
        body: dict[str, Any] = {"owner": owner, "query": query}
        if required is not None:
            body["required"] = dict(required)
        pagination = {k: v for k, v in (("order_by", order_by), ("order", order)) if v}
        for data, _, _ in self._pager.pages("entries/query", body, page_size, after, **pagination):
            yield from data

    def archive_answer_raw(self, entry_id: str, required: Required = "*") -> dict[str, Any]:
        """The ``data`` part of ``POST entries/{id}/archive/query``.

        Args:
            entry_id: the entry.
            required: what to download (spec §4).

        Returns:
            ``{"entry_id", "upload_id", "parser_name", "archive"}`` as the server sent it;
            ``upload_id`` is what relative references (``../upload/...``) resolve against.

        Raises:
            NotFoundError: unknown or invisible entry, or an entry without archive.
            BadRequestError: the server cannot apply ``required``.
            ValidationError: ``required`` has invalid syntax.
            MalformedResponseError: the answer has no archive object.
        """
        path = f"entries/{quote(entry_id, safe='')}/archive/query"
        # offline: answers from the disk cache or not at all
        if self.offline:
            cached = None if self.cache is None else cached_answer(self.cache, self.base_url, entry_id, required)
            if cached is None:
                raise NotDownloadedError("offline, and not in the disk cache", entry_id=entry_id)
            return cached
        answer = self.post_json(path, {"required": required})
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("archive"), dict):
            raise MalformedResponseError(f"answer for entry {entry_id} has no data.archive object", self.url(path))
        if self.cache is not None:  # a lazy follow-up grows the entry's cached row
            fill(self.cache, self.base_url, entry_id, required, data["archive"])
        return data

    def archive_raw(self, entry_id: str, required: Required = "*") -> dict[str, Any]:
        """The raw (partial) archive of one entry.

        Args:
            entry_id: the entry.
            required: what to download (spec §4); note that index selections come back
                compacted (use :func:`archivemap.remote.required.graft` to re-anchor them).

        Returns:
            The archive dict (``data.archive`` of the answer).

        Raises:
            NotFoundError: unknown or invisible entry, or an entry without archive.
            BadRequestError: the server cannot apply ``required``.
            ValidationError: ``required`` has invalid syntax.
        """
        archive: dict[str, Any] = self.archive_answer_raw(entry_id, required)["archive"]
        return archive

    def archives_raw(
        self,
        query: Query | Mapping[str, Any] | None = None,
        required: Required = "*",
        *,
        page_size: int = 1000,
        batch_size: int = 10,
        after: str | None = None,
        owner: str = "visible",
        progress: bool | None = None,
        max_attempts: int = 3,
        schema: Schema | SchemaSource | None = None,
    ) -> ArchiveStream:
        """Download the archives of all entries matching a query, concurrently.

        The first request is a page of ``batch_size`` archives of the query itself
        (``POST entries/archive/query`` ordered by ``entry_id``), which also gives the total
        and the cursor: up to one batch costs one request, up to two batches two. Beyond that,
        entry ids are listed from that cursor with ``POST entries/query`` and the archives
        fetched in batches (``entry_id:any``) by up to ``max_concurrency`` threads, never more
        requests than listing everything first would take. Answers are matched to entries by
        ``entry_id``; entries an answer left out are requested again, and after
        ``max_attempts`` on their own (reported in :attr:`ArchiveStream.missing`).

        Args:
            query: the NOMAD query or a :class:`~archivemap.remote.query.Query`; ``None`` for
                all visible entries. Checked before any request when a schema is known.
            required: what to download of each archive.
            page_size: ids per listing request.
            batch_size: archives per ``archive/query`` request (NOMAD: keep it small).
            after: :attr:`ArchiveStream.cursor` of an earlier, interrupted download (or a
                NOMAD ``page_after_value``) to resume from.
            owner: the owner scope of the listing and the downloads.
            progress: show progress on stderr (tqdm's bar if tqdm is installed); by default
                (``None``) only where a human watches: a terminal or a notebook.
            max_attempts: batch attempts for an entry before it is fetched on its own.
            schema: the deployment's metainfo to check the query against (default
                :attr:`schema`).

        Returns:
            An iterator of ``(entry_id, archive_raw)``, each entry exactly once, in listing
            order, with ``cursor``, ``total``, ``missing`` and ``failed`` attributes (entries the
            server answers 500 are isolated by splitting their batch; see
            :attr:`ArchiveStream.failed` and :meth:`ArchiveStream.retry_failed`).
        """
        if batch_size < 1 or page_size < 1:
            raise ValueError("page_size and batch_size must be positive")
        return ArchiveStream(
            self,
            self._pager,
            query=self.query_json(query, schema),
            required=required,
            page_size=page_size,
            batch_size=batch_size,
            after=after,
            owner=owner,
            progress=progress,
            max_attempts=max_attempts,
        )


    def archive(
        self, entry_id: str, required: Required = "*", *, schema: Schema | SchemaSource | None = None, fetch: bool = True
    ) -> Section:
        """One entry's archive as a lazy typed root; what is not downloaded is fetched on access.

        Args:
            entry_id: the entry.
            required: what to download now (spec §4); ``"*"`` for everything. Navigating past
                it fetches exactly the missing path (see :mod:`archivemap.remote.fetch`).
            schema: the metainfo to map with (a :class:`~archivemap.archive.schema.Schema`, or a
                path or URL of an export); by default the deployment's own (see
                :meth:`deployment_schema`).
            fetch: fetch what was not downloaded when it is read; with ``False``, reading it
                raises :class:`~archivemap.errors.NotDownloadedError` instead.

        Returns:
            The root section (EntryArchive).
        """
        return open_archive(self, entry_id, required, schema=self._schema_or_default(schema), fetch=fetch)

    def deployment_schema(self) -> Schema:
        """The schema archives of this deployment are mapped with when no ``schema=`` is given.

        :attr:`schema` when set; else the deployment's own metainfo (its ``gui/artifacts.js``,
        downloaded once, kept in the user's cache directory, revalidated with one conditional
        request per process and usable offline); else, for a server that does not serve it
        (the bundled test server, an unreachable GUI), the NOMAD 2.0 metainfo embedded in the
        package. Chosen once per client.
        """
        if self.schema is not None:
            return self.schema
        if self._deployment_schema is None:
            try:
                env = deployment_environment(self.base_url, session_get=self._session.get)
                self._deployment_schema = as_schema(env)
            except (ArchivemapError, OSError) as exc:
                log.info("no metainfo from %s (%s); using the embedded NOMAD schema", self.base_url, exc)
                self._deployment_schema = default_schema()
        return self._deployment_schema

    def analyze(
        self,
        query: Query | Mapping[str, Any] | None,
        analysis: Callable[[Section], Any],
        *,
        sample: int = 3,
        schema: Schema | SchemaSource | None = None,
        sample_bytes: int = SAMPLE_PAGE_BYTES,
        **options: Any,
    ) -> Analysis:
        """Run ``analysis`` on every entry of ``query``, downloading only what it reads.

        The first entries of the query are downloaded whole (``"*"``), one page of ``sample``
        entries, then, while fewer than ``sample`` of them gave a result that is not
        ``None``, one page of the rest of up to ``4 * sample`` candidates. The analysis runs on
        each with what it reads recorded, and the ``required`` spec is derived from that
        (:func:`~archivemap.remote.derive.required_from_access`, the rules of
        :func:`~archivemap.remote.derive.required_for`). The other entries are then
        downloaded in bulk with the spec, from where the samples ended, so no entry is
        downloaded twice. A sample page larger than ``sample_bytes`` (large MD archives) is
        abandoned, and its entries are sampled lazily instead: a request per value read,
        bytes for those values only. What the samples did not touch is still answered, by
        lazy follow-ups, and counted in the result.

        Args:
            query: the entries (a dict or :class:`~archivemap.remote.query.Query`).
            analysis: a function of an archive root; its return value is the entry's result.
            sample: how many informative entries to derive the spec from.
            schema: the metainfo (default: :meth:`deployment_schema`).
            sample_bytes: the most bytes one page of whole sample archives may have.
            **options: passed on to :meth:`archives` (``batch_size``, ``page_size`` ...).

        Returns:
            The results with the spec used and the requests and bytes it all cost.

        An entry on which ``analysis`` raises gets ``None`` and its error in
        :attr:`Analysis.errors`; when it raises on every sample, the error is raised (the
        analysis is broken, not the data).

        Raises:
            ValueError: ``sample`` is below 1.
            NotDownloadedError: the client is offline (samples come from the server).
        """
        if sample < 1:
            raise ValueError(f"sample must be at least 1, not {sample}")
        if self.offline:
            raise NotDownloadedError("analyze samples entries on the server; this client is offline")
        sch = self._schema_or_default(schema)
        return analyze(
            self, self._pager, query, analysis, sample=sample, schema=sch, sample_bytes=sample_bytes, options=options
        )

    def _schema_or_default(self, schema: Schema | SchemaSource | None) -> Schema:
        return as_schema(schema) if schema is not None else self.deployment_schema()

    def archives(
        self,
        query: Query | Mapping[str, Any] | None = None,
        required: Required = "*",
        *,
        schema: Schema | SchemaSource | None = None,
        lock: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> Iterator[tuple[str, Section]]:
        """:meth:`archives_raw` mapped to lazy roots: ``(entry_id, root)``, each once.

        The query is checked against ``schema`` (by default :meth:`deployment_schema`) before
        any request (see :meth:`query_json`).
        With a disk cache (``Client(cache=...)``), offline, or ``lock`` (a dataset lockfile to
        write, resume or replay; see :mod:`archivemap.remote.lockfile`), entries are listed
        with their processing state and only what the cache lacks is downloaded (issue 10).

        Raises:
            LockfileConflictError: ``lock`` names a lockfile of another dataset (another
                deployment, query or ``required``); it is never overwritten.
            DatasetIncompleteError: replaying a complete lock, some locked entries could not
                be reproduced (raised once the others were given).
        """
        sch = self._schema_or_default(schema)
        if lock is not None or self.cache is not None or self.offline:
            return dataset_archives(self, query, required, sch, lock=lock, **options)
        stream = self.archives_raw(query, required, schema=sch, **options)
        return self._mapped(stream, required, sch)

    def _mapped(self, stream: ArchiveStream, required: Required, sch: Schema) -> Iterator[tuple[str, Section]]:
        source = BulkSource(self, sch, stream, required)
        for entry_id, answer in stream:
            yield entry_id, source.root(entry_id, answer)


def _rebuild_client(base_url: str, options: dict[str, Any]) -> Client:
    return Client(base_url, **options)
