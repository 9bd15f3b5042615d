"""Every injected fault kind, over real HTTP."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from archivemap.server import Faults, LocalServer


@pytest.fixture
def server(make_archive: Any) -> Iterator[LocalServer]:
    with LocalServer({"E": make_archive("E"), "F": make_archive("F")}) as srv:
        yield srv


def get(srv: LocalServer, http: requests.Session | None = None) -> requests.Response:
    return (http or requests).get(f"{srv.url}/entries/E/archive", timeout=10)


def test_503_storm_next_n_with_retry_after(server: LocalServer) -> None:
    server.update_faults(fail_next=2, retry_after=1.5)
    first, second, third = get(server), get(server), get(server)
    assert (first.status_code, second.status_code, third.status_code) == (503, 503, 200)
    assert first.headers["Retry-After"] == "2"
    assert "detail" in first.json()
    assert server.faults.fail_next == 0
    assert server.count_requests(status=503) == 2


def test_probability_is_reproducible(make_archive: Any) -> None:
    def statuses() -> list[int]:
        with LocalServer({"E": make_archive("E")}, faults=Faults(fail_probability=0.5, seed=7)) as srv:
            return [get(srv).status_code for _ in range(20)]

    first = statuses()
    assert first == statuses()
    assert 503 in first and 200 in first


def test_rate_limit(server: LocalServer) -> None:
    server.update_faults(rate_limit=3)
    with requests.Session() as http:
        codes = [get(server, http).status_code for _ in range(6)]
    assert codes[:3] == [200, 200, 200] and set(codes[3:]) == {503}
    assert all(r.fault == "rate_limit" for r in server.requests if r.status == 503)


def test_concurrency_limit(server: LocalServer) -> None:
    server.update_faults(max_concurrent=1, latency=0.3)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        codes = sorted(pool.map(lambda _: get(server).status_code, range(3)))
    assert codes[0] == 200 and 503 in codes
    assert server.in_flight == 0


def test_latency(server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    slept: list[float] = []  # what the server waited, not a clock reading (load-proof)
    spy = SimpleNamespace(time=time.time, monotonic=time.monotonic, sleep=lambda s: slept.append(s) or time.sleep(s))
    monkeypatch.setattr("archivemap.server._http.time", spy)
    server.update_faults(latency=0.2, latency_jitter=0.05)
    assert get(server).status_code == 200
    assert len(slept) == 1 and 0.2 <= slept[0] < 0.25


def test_dropped_connection(server: LocalServer) -> None:
    server.update_faults(drop_next=1)
    with pytest.raises(requests.ConnectionError):
        get(server)
    assert get(server).status_code == 200
    assert [r.status for r in server.requests] == [0, 200]
    assert server.requests[0].fault == "drop"


def test_truncated_body(server: LocalServer) -> None:
    server.update_faults(truncate_next=1, truncate_fraction=0.3)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(server)
    record = server.requests[-1]
    assert record.fault == "truncate" and 0 < record.response_bytes
    assert get(server).status_code == 200


def test_page_size_limit(server: LocalServer) -> None:
    server.faults = Faults(max_page_size=1)
    response = requests.post(f"{server.url}/entries/query", json={"pagination": {"page_size": 2}}, timeout=10)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "pagination", "page_size"]
    assert server.requests[-1].fault == "page_size"
    ok = requests.post(f"{server.url}/entries/query", json={"pagination": {"page_size": 1}}, timeout=10)
    assert ok.status_code == 200
    server.clear_faults()
    assert server.faults.max_page_size is None


def test_bad_fault_values_are_refused(server: LocalServer) -> None:
    with pytest.raises(ValueError):
        Faults(fail_probability=2)
    with pytest.raises(TypeError):
        server.update_faults(no_such_fault=1)
