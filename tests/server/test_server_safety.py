"""The server is safe to leave running (issue 12): loopback binding, Host checks against DNS
rebinding, an optional required token, slow clients cut off, a bounded request log, capped
bodies and nesting, and a folder of bad files that never stops it from starting.

Timeouts in these tests are upper bounds against hanging, never assertions on durations.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from archivemap.server import LocalServer


@pytest.fixture
def server(make_archive: Any) -> Iterator[LocalServer]:
    with LocalServer({"E": make_archive("E")}, request_timeout=0.5, max_body_bytes=20_000, max_log_records=5) as running:
        yield running


def raw_exchange(server: LocalServer, data: bytes, read_for: float = 10.0) -> bytes:
    """Send raw bytes, return everything the server answers until it closes (bounded)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=read_for) as sock:
        sock.sendall(data)
        chunks: list[bytes] = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def test_binds_loopback_by_default(make_archive: Any) -> None:
    local = LocalServer({"E": make_archive("E")})
    assert local.host == "127.0.0.1"
    with pytest.raises(ValueError, match="loopback"):
        LocalServer({}, host="192.0.2.1")


def test_host_header_is_checked(server: LocalServer) -> None:
    url = f"{server.url}/entries/E"
    assert requests.get(url, timeout=10).status_code == 200  # requests sends 127.0.0.1:<port>
    assert requests.get(url, headers={"Host": f"localhost:{server.port}"}, timeout=10).status_code == 200
    rebinding = requests.get(url, headers={"Host": "attacker.example"}, timeout=10)
    assert rebinding.status_code == 400 and rebinding.json() == {"detail": "Invalid host header"}
    assert requests.get(url, headers={"Host": f"attacker.example:{server.port}"}, timeout=10).status_code == 400
    no_host = raw_exchange(server, b"GET /api/v1/entries/E HTTP/1.0\r\n\r\n")
    assert no_host.startswith(b"HTTP/1.0 400") or no_host.startswith(b"HTTP/1.1 400")


def test_allowed_hosts_configures_the_check(make_archive: Any) -> None:
    with LocalServer({"E": make_archive("E")}, allowed_hosts=["nomad.test"]) as named:
        url = f"{named.url}/entries/E"
        assert requests.get(url, headers={"Host": "nomad.test:8000"}, timeout=10).status_code == 200
        assert requests.get(url, headers={"Host": "other.test"}, timeout=10).status_code == 400
    with LocalServer({"E": make_archive("E")}, allowed_hosts=["*"]) as anything:
        assert requests.get(f"{anything.url}/entries/E", headers={"Host": "x.test"}, timeout=10).status_code == 200


def test_required_token(make_archive: Any, caplog: pytest.LogCaptureFixture) -> None:
    secret = "tok-3f9a1c7e-never-logged"
    with caplog.at_level(logging.DEBUG, logger="archivemap.server"):
        with LocalServer({"E": make_archive("E")}, token=secret) as guarded:
            url = f"{guarded.url}/entries/E/archive"
            missing = requests.get(url, timeout=10)
            assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
            assert requests.get(url, headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401
            assert requests.get(url, headers={"Authorization": f"Bearer {secret}"}, timeout=10).status_code == 200
            body = {"query": {"entry_id": "E"}}
            answer = requests.post(f"{guarded.url}/entries/query", json=body, headers={"Authorization": f"Bearer {secret}"}, timeout=10)
            assert answer.status_code == 200
            assert requests.post(f"{guarded.url}/auth/token", data={"username": "x"}, timeout=10).status_code == 401
            records = guarded.requests
            assert [record.status for record in records] == [401, 401, 200, 200, 401]
            assert secret not in repr(records) and secret not in repr(guarded)
    assert secret not in caplog.text
    with pytest.raises(ValueError):
        LocalServer({}, token=" ")


def test_slow_client_is_cut_off(server: LocalServer) -> None:
    # Headers that never complete: the connection is closed, the server is not held.
    assert raw_exchange(server, b"GET /api/v1/entries/E HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ") == b""
    # A client trickling its headers byte by byte is cut off as well.
    closed = False
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.settimeout(0.05)
        trickle = b"GET /api/v1/entries/E HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Pad: " + b"a" * 400
        for byte in trickle:
            try:
                sock.send(bytes([byte]))
                if sock.recv(1) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except OSError:  # reset by the server
                closed = True
                break
    assert closed
    # A body that never arrives is cut off too, and the server answers others meanwhile.
    partial = b"POST /api/v1/entries/query HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{"
    assert raw_exchange(server, partial) == b""
    assert requests.get(f"{server.url}/entries/E", timeout=10).status_code == 200


def test_request_log_is_bounded(server: LocalServer) -> None:
    for index in range(8):
        requests.get(f"{server.url}/entries/E?n={index}", timeout=10)
    records = server.requests
    assert [record.query for record in records] == [f"n={index}" for index in range(3, 8)]
    server.clear_log()
    big: dict[str, Any] = {"query": {"entry_id:any": [f"id-{i:05d}" for i in range(1000)]}, "password": "pw"}
    assert requests.post(f"{server.url}/entries/query", json=big, timeout=10).status_code == 200
    (record,) = server.requests
    assert isinstance(record.body, str) and len(record.body) < 4200
    assert record.body.startswith('{"query"') and "truncated" in record.body
    small: dict[str, Any] = {"query": {"entry_id": "E"}, "password": "pw"}
    requests.post(f"{server.url}/entries/query", json=small, timeout=10)
    assert server.requests[-1].body == {"query": {"entry_id": "E"}, "password": "<redacted>"}


def test_body_size_is_capped(server: LocalServer) -> None:
    too_big = {"query": {"entry_id:any": ["x" * 100] * 300}}
    response = requests.post(f"{server.url}/entries/query", json=too_big, timeout=10)
    assert response.status_code == 413 and "limit is 20000 bytes" in response.json()["detail"]
    # announced but never sent: answered at once from the headers, without reading
    answer = raw_exchange(
        server, b"POST /api/v1/entries/query HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 999999999999\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 413")
    assert requests.get(f"{server.url}/entries/E", timeout=10).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 3000 + b"]" * 3000,  # beyond the JSON parser's own limit
        json.dumps({"required": json.loads("{" + '"a": {' * 100 + "}" * 100 + "}")}).encode(),  # parses, too deep
        b'{"query": ' + b'{"not": ' * 200 + b"{}" + b"}" * 200 + b"}",
    ],
)
def test_deeply_nested_bodies_are_refused(server: LocalServer, body: bytes) -> None:
    response = requests.post(f"{server.url}/entries/E/archive/query", data=body, headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 422
    assert "nested too deeply" in response.json()["detail"][0]["msg"]


# A server whose threads have small stacks (musl's default is 128 kB): a parser recursing on
# the C stack through a deep body would take the whole process down (exit code 139).
_SMALL_STACKS = """
import threading
threading.stack_size(131072)
import requests
from archivemap.server import LocalServer
with LocalServer({}) as server:
    for depth in (600, 5000):
        body = b'{"query": ' + b'[' * depth + b']' * depth + b'}'
        answer = requests.post(f"{server.url}/entries/query", data=body, timeout=30)
        print(answer.status_code, "nested too deeply" in answer.text)
"""


def test_deep_bodies_are_refused_before_parsing_even_on_small_stacks() -> None:
    out = subprocess.run([sys.executable, "-c", _SMALL_STACKS], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["422", "True", "422", "True"]


def test_moderate_nesting_is_fine(server: LocalServer) -> None:
    required: Any = "*"
    for _ in range(40):
        required = {"run": required}
    response = requests.post(f"{server.url}/entries/E/archive/query", json={"required": required}, timeout=10)
    assert response.status_code == 200


def test_bad_files_never_stop_the_server(tmp_path: Path, make_archive: Any, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "good.json").write_text(json.dumps(make_archive("GOOD")))
    (tmp_path / "truncated.json").write_text('{"metadata": {"entry_id": "x"')
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "deep.json").write_text("[" * 5000 + "]" * 5000)
    (tmp_path / "folder.json").mkdir()
    os.symlink(tmp_path / "missing-target.json", tmp_path / "dangling.json")
    (tmp_path / "odd.json").write_text(json.dumps({"metadata": {"entry_id": ["not", "a", "string"]}, "run": 5}))
    with caplog.at_level(logging.WARNING, logger="archivemap.server"):
        with LocalServer(tmp_path) as started:
            assert requests.get(f"{started.url}/entries/GOOD", timeout=10).status_code == 200
            ids = [entry.entry_id for entry in started.store.entries]
    assert "GOOD" in ids
    for name in ("truncated.json", "binary.json", "deep.json", "folder.json", "dangling.json"):
        assert f"skipping {name}" in caplog.text, name
