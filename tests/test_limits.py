"""Tests of archivemap.remote._limits: token bucket, concurrency cap, backoff policy."""

from __future__ import annotations

import math
import threading
import time
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone

import pytest

from archivemap.remote._limits import HARD_MAX_CONCURRENCY, Limiter, RetryPolicy, TokenBucket, parse_retry_after


class VirtualClock:
    """``time.monotonic``/``time.sleep`` for the limiter: sleeping advances the clock at once,
    so the bucket's timing is checked exactly, without measuring (or waiting for) real time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0.0  # the total the limiter asked to wait: what the tests assert on
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += max(seconds, 1e-6)  # a real sleep always takes some time
            self.slept += max(seconds, 0.0)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> VirtualClock:
    fake = VirtualClock()
    monkeypatch.setattr("archivemap.remote._limits.time", fake)
    return fake


def test_token_bucket_spaces_requests_at_the_rate(clock: VirtualClock) -> None:
    bucket = TokenBucket(rate=50.0)
    for _ in range(11):
        bucket.acquire()
    assert 0.18 <= clock.slept < 0.6  # 10 waits of 20 ms after the first token


def test_token_bucket_is_shared_by_threads(clock: VirtualClock) -> None:
    bucket = TokenBucket(rate=100.0)

    def take_five() -> None:
        for _ in range(5):
            bucket.acquire()

    threads = [threading.Thread(target=take_five) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert clock.slept >= 0.18  # 20 tokens at 100/s, whatever the thread count


def test_unlimited_bucket_and_pause(clock: VirtualClock) -> None:
    bucket = TokenBucket(rate=0)
    assert bucket.unlimited
    for _ in range(1000):
        bucket.acquire()
    assert clock.slept == 0.0  # no rate: never waits
    bucket.pause_until(clock.monotonic() + 0.1)
    bucket.acquire()
    assert clock.slept >= 0.1  # a pause is waited out


@pytest.mark.parametrize(("rate", "burst"), [(-1, 1), (1, 0.5)])
def test_token_bucket_validates(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)


def test_limiter_caps_concurrency() -> None:
    limiter = Limiter(max_concurrency=3, rate=0)
    lock = threading.Lock()
    current = peak = 0

    def work() -> None:
        nonlocal current, peak
        with limiter.slot():
            with lock:
                current += 1
                peak = max(peak, current)
            time.sleep(0.02)
            with lock:
                current -= 1

    threads = [threading.Thread(target=work) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == 3


@pytest.mark.parametrize("bad", [0, HARD_MAX_CONCURRENCY + 1])
def test_limiter_refuses_out_of_range_concurrency(bad: int) -> None:
    with pytest.raises(ValueError):
        Limiter(max_concurrency=bad, rate=1)


def test_retry_policy_backs_off_exponentially_with_jitter() -> None:
    policy = RetryPolicy(retries=5, backoff_base=0.1, backoff_max=0.5)
    for attempt, ceiling in enumerate([0.1, 0.2, 0.4, 0.5, 0.5]):
        delays = [policy.delay(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered


def test_retry_policy_honours_and_caps_retry_after() -> None:
    policy = RetryPolicy(retry_after_max=10)
    assert policy.delay(0, retry_after=3) == 3
    assert policy.delay(4, retry_after=3) == 3
    assert policy.delay(0, retry_after=3600) == 10


def test_parse_retry_after() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (parse_retry_after(later) or 0) <= 30
    earlier = format_datetime(datetime.now(timezone.utc) - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(earlier) == 0.0


@pytest.mark.parametrize(
    "header, expected",
    [
        ("nan", None),  # float("nan") used to reach time.sleep and crash it
        ("NaN", None),
        ("-5", 0.0),
        ("-inf", 0.0),
        ("inf", 365.0 * 24 * 3600),
        ("1e999", 365.0 * 24 * 3600),
        ("Fri, 31 Dec 9999 23:59:59 GMT", 365.0 * 24 * 3600),
        ("Mon, 01 Jan 0001 00:00:00 GMT", 0.0),
        ("Mon, 99 Foo 2020 99:99:99 GMT", None),
        ("\x00\xff" * 1000, None),
    ],
)
def test_parse_retry_after_reads_hostile_values_safely(header: str, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


@pytest.mark.parametrize("header", ["nan", "inf", "1e999", "-3", "Fri, 31 Dec 9999 23:59:59 GMT", "x"])
def test_retry_policy_delay_is_finite_and_capped_for_any_header(header: str) -> None:
    policy = RetryPolicy(retry_after_max=60, backoff_max=2)
    delay = policy.delay(0, parse_retry_after(header))
    assert math.isfinite(delay) and 0 <= delay <= 60
    assert policy.delay(0, float("nan")) <= 2  # a NaN that slips through falls back to backoff


def test_retry_after_cap_defaults_to_one_minute() -> None:
    assert RetryPolicy().retry_after_max == 60
