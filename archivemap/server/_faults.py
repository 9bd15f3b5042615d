"""Faults the local server injects on purpose, so clients can be tested against them.

What a real NOMAD (behind its reverse proxy) does under load (spec §5.8): 503 for rate and
concurrency limits, 502/503/504 storms, dropped connections, slow answers; plus truncated
bodies and a page-size limit. Every random choice comes from one seeded ``random.Random``,
so a failing test replays the same faults.
"""

from __future__ import annotations

import collections
import math
import dataclasses
import random
import threading
import time
from collections.abc import Iterable
from typing import Any

__all__ = ["FaultDecision", "FaultInjector", "Faults"]


@dataclasses.dataclass
class Faults:
    """Fault configuration of a :class:`~archivemap.server.LocalServer`.

    All faults are off by default. Counters (``*_next``) count down as requests use them;
    probabilities apply to every request that no counter caught.

    Attributes:
        rate_limit: at most this many requests per second (sliding 1 s window) are
            answered; the others get 503. None: no limit.
        max_concurrent: at most this many requests in flight; others get 503 at once.
        latency: seconds every request waits before it is handled.
        latency_jitter: extra random wait, uniform in ``[0, latency_jitter)`` seconds.
        fail_next: the next N requests answer ``fail_status`` (a "503 storm").
        fail_probability: each request answers ``fail_status`` with this probability.
        fail_status: the status of injected failures (503; 502/504 are realistic too).
        retry_after: seconds sent as ``Retry-After`` (rounded up to whole seconds) on every
            injected 503; None: no header.
        drop_next: the next N requests get their connection closed without an answer.
        drop_probability: probability of a dropped connection per request.
        truncate_next: the next N answers announce the full ``Content-Length`` but send
            only part of the body, then close the connection.
        truncate_probability: probability of a truncated answer per request.
        truncate_fraction: the part of the body that is sent, between 0 and 1.
        max_page_size: ``page_size`` above this answers 422 (like a server-side limit).
        fail_entries: entry ids whose archive the server cannot produce: any archive request
            that includes one (a batch of ``entries/archive/query`` or the entry alone) answers
            500 with NOMAD's exception layout, as NOMAD does for some ELN entries. Not a
            transient fault: it fails every time, so only splitting the batch helps.
        seed: seed of the random generator behind probabilities and jitter.
    """

    rate_limit: float | None = None
    max_concurrent: int | None = None
    latency: float = 0.0
    latency_jitter: float = 0.0
    fail_next: int = 0
    fail_probability: float = 0.0
    fail_status: int = 503
    retry_after: float | None = None
    drop_next: int = 0
    drop_probability: float = 0.0
    truncate_next: int = 0
    truncate_probability: float = 0.0
    truncate_fraction: float = 0.5
    max_page_size: int | None = None
    fail_entries: frozenset[str] = frozenset()
    seed: int = 0

    def __post_init__(self) -> None:
        self.fail_entries = frozenset(self.fail_entries)
        for name in ("fail_probability", "drop_probability", "truncate_probability", "truncate_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Faults.{name} must be between 0 and 1, not {value!r}")
        for name in ("fail_next", "drop_next", "truncate_next", "latency", "latency_jitter"):
            if getattr(self, name) < 0:
                raise ValueError(f"Faults.{name} must not be negative")


@dataclasses.dataclass(frozen=True)
class FaultDecision:
    """What to do with one request, decided when it arrives.

    Attributes:
        kind: None (answer normally), ``"drop"``, or the reason of an early error answer
            (``"rate_limit"``, ``"concurrency"``, ``"storm"``).
        status: the status of an early error answer.
        headers: headers of the early answer (``Retry-After``).
        delay: seconds to wait before handling.
        truncate: send only this fraction of the body, or None for the full body.
        admitted: True when the request holds an in-flight slot that must be released.
    """

    kind: str | None = None
    status: int = 200
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    delay: float = 0.0
    truncate: float | None = None
    admitted: bool = False


class FaultInjector:
    """The runtime state behind :class:`Faults`: counters, the rate window, in-flight count.

    Thread-safe; the handler threads call :meth:`admit` and :meth:`release`, tests change the
    configuration at any time with :meth:`configure` or :meth:`update`.
    """

    def __init__(self, faults: Faults | None = None) -> None:
        self._lock = threading.Lock()
        self._faults = dataclasses.replace(faults) if faults is not None else Faults()
        self._random = random.Random(self._faults.seed)
        self._window: collections.deque[float] = collections.deque()
        self._in_flight = 0

    @property
    def faults(self) -> Faults:
        """A copy of the current configuration (counters show what is left)."""
        with self._lock:
            return dataclasses.replace(self._faults)

    @property
    def in_flight(self) -> int:
        """Requests currently being handled."""
        with self._lock:
            return self._in_flight

    def configure(self, faults: Faults) -> None:
        """Replace the whole configuration and re-seed the random generator."""
        with self._lock:
            self._faults = dataclasses.replace(faults)
            self._random = random.Random(faults.seed)
            self._window.clear()

    def update(self, **changes: Any) -> Faults:
        """Change some fields (e.g. ``fail_next=3``); returns the new configuration.

        Raises:
            TypeError: for an unknown field name.
            ValueError: for an out-of-range value.
        """
        with self._lock:
            self._faults = dataclasses.replace(self._faults, **changes)
            if "seed" in changes:
                self._random = random.Random(self._faults.seed)
            if "rate_limit" in changes:
                self._window.clear()
            return dataclasses.replace(self._faults)

    def max_page_size(self) -> int | None:
        """The injected page-size limit, or None."""
        with self._lock:
            return self._faults.max_page_size

    def failing_entries(self, entry_ids: Iterable[str]) -> list[str]:
        """Those of ``entry_ids`` whose archive answers 500 (:attr:`Faults.fail_entries`)."""
        with self._lock:
            failing = self._faults.fail_entries
        return [entry_id for entry_id in entry_ids if entry_id in failing]

    def admit(self) -> FaultDecision:
        """Decide the fate of a request that just arrived (and take an in-flight slot)."""
        with self._lock:
            f = self._faults
            if f.drop_next > 0:
                f.drop_next -= 1
                return FaultDecision(kind="drop")
            if f.drop_probability and self._random.random() < f.drop_probability:
                return FaultDecision(kind="drop")
            retry = {} if f.retry_after is None else {"Retry-After": _seconds(f.retry_after)}
            if f.max_concurrent is not None and self._in_flight >= f.max_concurrent:
                return FaultDecision(kind="concurrency", status=503, headers=retry)
            if f.rate_limit is not None:
                now = time.monotonic()
                while self._window and now - self._window[0] >= 1.0:
                    self._window.popleft()
                if len(self._window) >= f.rate_limit:
                    return FaultDecision(kind="rate_limit", status=503, headers=retry)
                self._window.append(now)
            if f.fail_next > 0:
                f.fail_next -= 1
                return FaultDecision(kind="storm", status=f.fail_status, headers=retry)
            if f.fail_probability and self._random.random() < f.fail_probability:
                return FaultDecision(kind="storm", status=f.fail_status, headers=retry)
            truncate: float | None = None
            if f.truncate_next > 0:
                f.truncate_next -= 1
                truncate = f.truncate_fraction
            elif f.truncate_probability and self._random.random() < f.truncate_probability:
                truncate = f.truncate_fraction
            delay = f.latency + (self._random.random() * f.latency_jitter if f.latency_jitter else 0.0)
            self._in_flight += 1
            return FaultDecision(delay=delay, truncate=truncate, admitted=True)

    def release(self, decision: FaultDecision) -> None:
        """Give back the in-flight slot of an admitted request."""
        if decision.admitted:
            with self._lock:
                self._in_flight -= 1


def _seconds(value: float) -> str:
    # HTTP's Retry-After takes whole seconds; round up so a client never retries too early.
    return str(math.ceil(value))
