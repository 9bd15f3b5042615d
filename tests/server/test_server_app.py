"""Server lifecycle, public API, robustness against bad input, and the request log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

import archivemap.server
from archivemap.server import LocalServer


def test_exported_members() -> None:
    assert archivemap.server.__all__ == ["Faults", "LocalServer", "RequestRecord", "serve"]


def test_url_and_lifecycle(make_archive: Any) -> None:
    server = LocalServer({"E": make_archive("E")})
    server.start()
    try:
        assert server.url == f"http://127.0.0.1:{server.port}/api/v1"
        assert requests.get(f"{server.url}/entries/E", timeout=10).json()["data"]["entry_id"] == "E"
    finally:
        server.stop()
    server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{server.port}/api/v1/entries/E", timeout=2)


def test_refuses_non_loopback_hosts() -> None:
    with pytest.raises(ValueError, match="loopback"):
        LocalServer({}, host="0.0.0.0")
    LocalServer({}, host="0.0.0.0", allow_remote=True)  # allowed, not started


def test_directory_skips_non_archives(tmp_path: Path, make_archive: Any, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "one.archive.json").write_text(json.dumps(make_archive("E1")))
    plain = make_archive("x")
    del plain["metadata"]
    (tmp_path / "plain.archive.json").write_text(json.dumps(plain))
    (tmp_path / "provenance.json").write_text(json.dumps([{"name": "x"}]))
    (tmp_path / "notes.json").write_text(json.dumps({"comment": "no archive"}))
    (tmp_path / "broken.json").write_text("{")
    with caplog.at_level("INFO", logger="archivemap.server"):
        server = LocalServer(tmp_path)
    assert [entry.entry_id for entry in server.store.entries] == ["E1", "plain"]
    assert "skipping provenance.json" in caplog.text and "skipping notes.json" in caplog.text
    assert "skipping broken.json" in caplog.text


def test_head_is_refused_as_fastapi_refuses_it(small_server: LocalServer) -> None:
    # NOMAD's GET routes take no HEAD: a JSON 405 (headers only), and the connection goes on
    with requests.Session() as session:
        head = session.head(f"{small_server.url}/entries/entryA", timeout=10)
        assert head.status_code == 405 and head.headers["Content-Type"] == "application/json"
        assert head.content == b""
        assert session.get(f"{small_server.url}/entries/entryA", timeout=10).status_code == 200


def test_bad_input_never_crashes(small_server: LocalServer) -> None:
    url = small_server.url
    response = requests.post(f"{url}/entries/query", data=b"{not json", timeout=10)
    assert response.status_code == 422 and response.json()["detail"][0]["type"] == "json_invalid"
    assert requests.post(f"{url}/entries/query", json=[1, 2], timeout=10).status_code == 422
    assert requests.post(f"{url}/entries/query", json={"query": "x"}, timeout=10).status_code == 422
    assert requests.post(f"{url}/entries/entryA/archive/query", json={"required": 5}, timeout=10).status_code == 422
    assert requests.get(f"{url}/no/such/path", timeout=10).status_code == 404
    assert requests.get(f"{url}/entries/query", timeout=10).status_code == 405
    assert requests.get(f"http://127.0.0.1:{small_server.port}/elsewhere", timeout=10).status_code == 404
    # a reference cycle under include-resolved: NOMAD's 500 layout, and the server lives on
    response = requests.post(
        f"{url}/entries/entryA/archive/query", json={"required": {"workflow": "include-resolved"}}, timeout=10
    )
    assert response.status_code == 500
    assert response.json()["detail"]["exception_class"] == "RecursionError"
    assert requests.get(f"{url}/entries/entryA", timeout=10).status_code == 200


def test_upload_archive_endpoints(small_server: LocalServer) -> None:
    url = small_server.url
    assert requests.get(f"{url}/uploads/up1/archive/entryA", timeout=10).status_code == 200
    assert requests.get(f"{url}/uploads/up2/archive/entryA", timeout=10).status_code == 404
    by_mainfile = requests.get(f"{url}/uploads/up1/archive/mainfile/entryB/vasprun.xml", timeout=10)
    assert by_mainfile.json()["data"]["entry_id"] == "entryB"
    download = requests.get(f"{url}/entries/entryA/archive/download", timeout=10).json()
    assert download["metadata"]["entry_id"] == "entryA"


def test_request_log(small_server: LocalServer) -> None:
    small_server.clear_log()
    body: dict[str, Any] = {"query": {"entry_id": "entryA"}, "pagination": {"page_size": 1}}
    response = requests.post(f"{small_server.url}/entries/query?x=1", json=body, timeout=10)
    requests.get(f"{small_server.url}/entries/entryA/archive", timeout=10)
    records = small_server.requests
    assert len(records) == 2
    first = records[0]
    assert (first.method, first.path, first.query, first.body, first.status) == ("POST", "entries/query", "x=1", body, 200)
    assert first.response_bytes == len(response.content)
    assert first.authorized is False and first.timestamp > 0 and first.duration >= 0
    assert small_server.count_requests("entries/*") == 2
    assert small_server.count_requests(method="GET") == 1
    small_server.clear_log()
    assert small_server.requests == []

