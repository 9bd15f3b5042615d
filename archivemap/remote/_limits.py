"""Client-side politeness: concurrency cap, request-rate budget, retry and backoff policy.

NOMAD rate-limits at its reverse proxy (spec §5.8: 503 at roughly 30 requests/s or 10
concurrent requests per IP). Staying under those limits is cheaper than being refused, so
every request of a client passes through one :class:`Limiter` shared by all its threads:
first a concurrency slot (a semaphore), then a token from a token bucket. When the server
says "come back in N seconds" (``Retry-After``) the limiter pauses *all* threads, not just
the one that got the 503, because the whole client is being throttled, not one request.
"""

from __future__ import annotations

import email.utils
import math
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Final

import attrs

__all__ = ["HARD_MAX_CONCURRENCY", "Limiter", "RetryPolicy", "TokenBucket", "parse_retry_after"]

#: NOMAD's proxy refuses more than about 10 concurrent requests per IP (spec §5.8).
HARD_MAX_CONCURRENCY: Final = 10

#: Statuses that mean "try again later": proxy rate limits and gateway trouble (spec §5.8).
RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})


class TokenBucket:
    """A thread-safe token bucket: on average ``rate`` acquisitions per second.

    ``burst`` tokens may be taken at once after an idle period; the default of one token
    spaces requests evenly, which is what a per-second proxy limit wants.
    """

    def __init__(self, rate: float, burst: float = 1.0) -> None:
        """Create a bucket.

        Args:
            rate: tokens per second; ``0`` or ``inf`` means unlimited.
            burst: the bucket size (at least 1).

        Raises:
            ValueError: a negative rate or a burst below 1.
        """
        if rate < 0:
            raise ValueError(f"rate must be >= 0, not {rate}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, not {burst}")
        self.rate = float(rate)
        self.burst = float(burst)
        self._tokens = self.burst
        self._updated = time.monotonic()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    @property
    def unlimited(self) -> bool:
        """Whether the bucket never makes anyone wait (pauses still apply)."""
        return self.rate == 0 or self.rate == float("inf")

    def pause_until(self, deadline: float) -> None:
        """Hold back every acquisition until ``deadline`` (a ``time.monotonic()`` value)."""
        with self._lock:
            self._paused_until = max(self._paused_until, deadline)

    def acquire(self) -> None:
        """Block until a token is available and take it."""
        while True:
            wait = self._try_take()
            if wait <= 0:
                return
            time.sleep(wait)

    def _try_take(self) -> float:
        """Take a token and return 0, or return how long to wait before trying again."""
        with self._lock:
            now = time.monotonic()
            if now < self._paused_until:
                return self._paused_until - now
            if self.unlimited:
                return 0.0
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate


class Limiter:
    """The concurrency cap and rate budget every request of one client goes through."""

    def __init__(self, max_concurrency: int, rate: float) -> None:
        """Create a limiter.

        Args:
            max_concurrency: simultaneous requests, 1 to :data:`HARD_MAX_CONCURRENCY`.
            rate: requests per second (``0`` or ``inf``: unlimited).

        Raises:
            ValueError: ``max_concurrency`` out of range or a negative rate.
        """
        if not 1 <= max_concurrency <= HARD_MAX_CONCURRENCY:
            raise ValueError(
                f"max_concurrency must be between 1 and {HARD_MAX_CONCURRENCY}, "
                f"not {max_concurrency}"
            )
        self.max_concurrency = max_concurrency
        self.bucket = TokenBucket(rate)
        self._slots = threading.BoundedSemaphore(max_concurrency)

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a concurrency slot and one rate token for the duration of a request.

        The slot is taken first so that threads waiting for a slot do not burn rate tokens.
        """
        with self._slots:
            self.bucket.acquire()
            yield

    def pause(self, seconds: float) -> None:
        """Make every thread wait ``seconds`` before its next request (after a Retry-After)."""
        if seconds > 0:
            self.bucket.pause_until(time.monotonic() + seconds)


@attrs.frozen
class RetryPolicy:
    """When and how long to wait before retrying a failed request.

    Exponential backoff with "equal jitter" (half fixed, half random) so that threads that
    failed together do not come back together. A ``Retry-After`` from the server wins over
    the computed delay, capped at ``retry_after_max`` so a confused proxy cannot stall a
    client for hours.

    Attributes:
        retries: how many times to retry after the first attempt.
        backoff_base: delay before the first retry, in seconds.
        backoff_max: cap of the exponential delay.
        retry_after_max: cap of a server-requested delay.
        statuses: HTTP statuses worth retrying.
    """

    retries: int = attrs.field(default=5, validator=attrs.validators.ge(0))
    backoff_base: float = attrs.field(default=0.5, validator=attrs.validators.ge(0))
    backoff_max: float = attrs.field(default=30.0, validator=attrs.validators.ge(0))
    retry_after_max: float = attrs.field(default=60.0, validator=attrs.validators.ge(0))
    statuses: frozenset[int] = RETRY_STATUSES

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0 for the first retry).

        Args:
            attempt: how many retries happened before this one.
            retry_after: the server's ``Retry-After`` in seconds, if it sent one.

        Returns:
            The delay in seconds.
        """
        if retry_after is not None and not math.isnan(retry_after):
            # min/max order matters: inf becomes the cap, negatives become 0
            return float(min(max(retry_after, 0.0), self.retry_after_max))
        ceiling = float(min(self.backoff_max, self.backoff_base * (2**attempt)))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def parse_retry_after(value: str | None) -> float | None:
    """Read a ``Retry-After`` header: delay seconds or an HTTP date.

    The header comes from the server, so anything is possible: ``nan`` (which would crash
    ``time.sleep``), ``inf`` or ``1e999``, negative numbers, dates far in the future or past,
    garbage. Numbers that are not finite and unreadable values count as absent (the normal
    backoff applies); negatives and past dates mean "now". The caller caps the result
    (:attr:`RetryPolicy.retry_after_max`), so a huge value cannot stall the client.

    Args:
        value: the header value, or None.

    Returns:
        Seconds to wait (finite, never negative), or None when absent or unreadable.
    """
    if not value:
        return None
    value = value.strip()[:200]
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if math.isnan(seconds):
            return None
        return min(max(seconds, 0.0), _MAX_SECONDS)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    try:
        delta = (when - datetime.now(timezone.utc)).total_seconds()
    except OverflowError:
        return None
    return min(max(delta, 0.0), _MAX_SECONDS)


#: Any delay beyond this is "very long": a finite stand-in for ``inf`` and huge dates.
_MAX_SECONDS: Final = 365.0 * 24 * 3600
