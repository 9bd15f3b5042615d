"""A malicious server facing ``Client`` (issue 12: wire limits, SSRF, failing entries, secrets).

Every server here is real HTTP on 127.0.0.1: :class:`HostileServer` (raw answers the test
writes) or the bundled :class:`~archivemap.server.LocalServer` with :class:`Faults`. What
could exhaust memory or hang (bombs, dripping bodies) runs in a child process under the
harness's memory and time budget, so a regression fails the test instead of the machine.
No test measures wall-clock time; timeouts are only upper bounds against hangs.
"""

from __future__ import annotations

import base64
import copy
import gzip
import hashlib
import json
import logging
import math
import time
import warnings
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

import archivemap
from archivemap._json import read_json
from archivemap.errors import (
    AuthenticationError,
    BadRequestError,
    ClientError,
    MalformedResponseError,
    ResponseTooLargeError,
    ServerError,
    UnsupportedReferenceError,
)
from archivemap.remote.client import Client, api_base_url
from archivemap.remote.stream import EntryFailure
from archivemap.server import Faults, LocalServer

from ..conftest import SAMPLES
from .harness import run_bounded
from .hostile_http import HostileServer, send_json

FAST: dict[str, Any] = {"backoff_base": 0.005, "backoff_max": 0.02, "rate": 0}


@pytest.fixture()
def hostile() -> Iterator[Callable[..., HostileServer]]:
    servers: list[HostileServer] = []

    def make(respond: Callable[[BaseHTTPRequestHandler, str, str, bytes], None]) -> HostileServer:
        servers.append(HostileServer(respond))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


# --------------------------------------------------------------------------- 1. memory and time


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compression_bomb_is_abandoned_while_streaming(encoding: str) -> None:
    """4 MiB on the wire that inflate to 4 GiB: refused at the limit, within the memory budget."""
    result = run_bounded(
        f"""
        from tests.adversarial.hostile_http import HostileServer, bomb_blocks
        from archivemap.remote.client import Client
        from archivemap.errors import ResponseTooLargeError

        def respond(handler, method, path, body):
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Encoding", "{encoding}")
            handler.send_header("Connection", "close")
            handler.end_headers()
            for block in bomb_blocks("{encoding}", 4096):
                handler.wfile.write(block)

        with HostileServer(respond) as server:
            client = Client(server.url, max_response_bytes=64 * 1024 * 1024, retries=0, rate=0)
            try:
                client.post_json("entries/query", {{}})
            except ResponseTooLargeError as exc:
                print("REFUSED", exc.limit, exc.url == server.url + "/entries/query", "decompressed" in str(exc))
        """,
        seconds=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["REFUSED", str(64 * 1024 * 1024), "True", "True"], result.stderr[-3000:]


def test_body_larger_than_the_limit_is_refused_naming_the_url(hostile: Callable[..., HostileServer]) -> None:
    big = json.dumps({"data": ["x" * 1000] * 3000}).encode()  # 3 MB of valid JSON
    server = hostile(lambda h, m, p, b: send_json(h, 200, None, raw=big))
    client = Client(server.url, max_response_bytes=1024 * 1024, retries=0, **FAST)
    with pytest.raises(ResponseTooLargeError) as info:
        client.get_json("entries")
    assert isinstance(info.value, ClientError)
    assert info.value.url == f"{server.url}/entries" and info.value.url in str(info.value)
    assert info.value.limit == 1024 * 1024
    assert len(server.requests) == 1  # not retried: it would be just as large again
    assert Client(server.url).max_response_bytes == 1024**3  # the generous default: 1 GiB


@pytest.mark.parametrize("phase", ["body", "headers"])
def test_answer_dripping_byte_by_byte_fails_at_the_deadline(phase: str) -> None:
    """Socket timeouts never fire on an answer that drips; the per-request deadline does."""
    result = run_bounded(
        f"""
        import time
        from tests.adversarial.hostile_http import HostileServer
        from archivemap.remote.client import Client
        from archivemap.errors import TransportError

        def drip(handler, data):
            for byte in data:
                handler.wfile.write(bytes([byte]))
                time.sleep(0.5)

        def respond(handler, method, path, body):
            head = b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\nContent-Length: 100000\\r\\n"
            if "{phase}" == "headers":
                drip(handler, head + b"X-Slow: " + b"x" * 100000)
            else:
                handler.wfile.write(head + b"\\r\\n")
                drip(handler, b" " * 100000)

        with HostileServer(respond) as server:
            client = Client(server.url, deadline=3, timeout=(10, 30), retries=3, rate=0, backoff_base=0.01)
            try:
                client.get_json("entries")
            except TransportError as exc:
                print("GAVE_UP", exc.url == server.url + "/entries", "deadline" in str(exc), len(server.requests))
        """,
        seconds=90,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["GAVE_UP", "True", "True", "1"], result.stderr[-3000:]


@pytest.mark.parametrize(
    "header", ["nan", "-5", "inf", "1e999", "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 0001 00:00:00 GMT", "soon"]
)
def test_hostile_retry_after_is_read_safely_and_capped(
    hostile: Callable[..., HostileServer], monkeypatch: pytest.MonkeyPatch, header: str
) -> None:
    slept: list[float] = []  # what the client asked to wait, not a clock reading
    spy = SimpleNamespace(monotonic=time.monotonic, sleep=lambda s: slept.append(s) or time.sleep(min(s, 0.05)))
    monkeypatch.setattr("archivemap.remote.client.time", spy)

    def respond(h: BaseHTTPRequestHandler, method: str, path: str, body: bytes) -> None:
        if len(server.requests) == 1:
            send_json(h, 503, {"detail": "slow down"}, {"Retry-After": header})
        else:
            send_json(h, 200, {"ok": True})

    server = hostile(respond)
    client = Client(server.url, retry_after_max=0.05, **FAST)
    assert client.get_json("x") == {"ok": True}
    assert len(slept) == 1 and math.isfinite(slept[0]) and 0 <= slept[0] <= 0.05


def test_retry_after_longer_than_the_deadline_is_not_waited_for(
    hostile: Callable[..., HostileServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    spy = SimpleNamespace(monotonic=time.monotonic, sleep=lambda s: slept.append(s) or time.sleep(min(s, 0.05)))
    monkeypatch.setattr("archivemap.remote.client.time", spy)
    server = hostile(lambda h, m, p, b: send_json(h, 503, {"detail": "busy"}, {"Retry-After": "86400"}))
    client = Client(server.url, deadline=5, retries=5, rate=0)  # default cap: 60 s > the deadline
    with pytest.raises(ServerError) as info:
        client.get_json("x")
    assert info.value.status_code == 503 and info.value.url == f"{server.url}/x"
    assert slept == [] and len(server.requests) == 1  # gave up at once instead of stalling
    assert Client(server.url).retry_policy.retry_after_max == 60


def test_paging_cursor_that_cycles_is_detected(hostile: Callable[..., HostileServer]) -> None:
    following = {None: "c1", "c1": "c2", "c2": "c1"}

    def respond(h: BaseHTTPRequestHandler, method: str, path: str, body: bytes) -> None:
        after = json.loads(body)["pagination"].get("page_after_value")
        stop = len(server.requests) > 30  # bounds the test if cycles went undetected
        page = {"total": 3, "next_page_after_value": None if stop else following[after]}
        send_json(h, 200, {"data": [{"entry_id": f"e-{after}"}], "pagination": page})

    server = hostile(respond)
    client = Client(server.url, **FAST)
    with pytest.raises(MalformedResponseError, match="cycles") as info:
        list(client.entries())
    assert info.value.url == f"{server.url}/entries/query"
    assert len(server.requests) == 3


LISTING_OK = {"data": [{"entry_id": "e1"}], "pagination": {"total": 1}}

MALFORMED = [
    ("entries", b"<html>proxy error</html>"),
    ("entries", json.dumps({"data": 5, "pagination": {}}).encode()),
    ("entries", json.dumps({"data": [1, "two"], "pagination": {}}).encode()),
    ("entries", json.dumps({"data": [{"entry_id": "e1"}]}).encode()),  # pagination missing
    ("entries", json.dumps([{"entry_id": "e1"}]).encode()),
    ("entries", json.dumps({"data": [{"entry_id": "e1"}], "pagination": {"next_page_after_value": {"a": 1}}}).encode()),
    ("archive", json.dumps({"data": {"archive": [1, 2]}}).encode()),
    ("archive", json.dumps({"data": []}).encode()),
    ("archive", b"\x00\xff not json"),
    ("bulk", json.dumps({"data": "not a list", "pagination": {}}).encode()),
    ("bulk", b"{\"data\": [}"),
]


@pytest.mark.parametrize("call, body", MALFORMED)
def test_malformed_200_answers_raise_a_typed_error_naming_the_url(
    hostile: Callable[..., HostileServer], call: str, body: bytes
) -> None:
    def respond(h: BaseHTTPRequestHandler, method: str, path: str, request: bytes) -> None:
        if call == "bulk" and path == "entries/query":
            send_json(h, 200, LISTING_OK)
        else:
            send_json(h, 200, None, raw=body)

    server = hostile(respond)
    client = Client(server.url, retries=1, **FAST)
    run: Callable[[], Any] = {
        "entries": lambda: list(client.entries()),
        "archive": lambda: client.archive_raw("e1"),
        "bulk": lambda: list(client.archives_raw({}, "*")),
    }[call]
    with pytest.raises(MalformedResponseError) as info:
        run()
    assert isinstance(info.value, ClientError)
    assert info.value.url is not None and info.value.url.startswith(server.url)
    assert info.value.url in str(info.value)


@pytest.mark.parametrize(
    "encoding, body",
    [
        ("br", b"\x8b\x02\x80{}\x03"),
        ("gzip, gzip", gzip.compress(gzip.compress(b"{}"))),
        ("gzip", b"this is not gzip at all"),
        ("deflate", b"neither zlib nor raw deflate \xff\xff\xff"),
    ],
)
def test_unsupported_or_corrupt_content_encoding_is_a_typed_error(
    hostile: Callable[..., HostileServer], encoding: str, body: bytes
) -> None:
    server = hostile(lambda h, m, p, b: send_json(h, 200, None, {"Content-Encoding": encoding}, raw=body))
    with pytest.raises(MalformedResponseError) as info:
        Client(server.url, retries=1, **FAST).get_json("entries")
    assert info.value.url == f"{server.url}/entries"


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_answers_decode(hostile: Callable[..., HostileServer], encoding: str) -> None:
    payload = json.dumps({"data": list(range(50_000))}).encode()
    packed = gzip.compress(payload) + b"trailing junk" if encoding == "gzip" else zlib.compress(payload)
    server = hostile(lambda h, m, p, b: send_json(h, 200, None, {"Content-Encoding": encoding}, raw=packed))
    client = Client(server.url, **FAST)
    assert client.get_json("entries") == {"data": list(range(50_000))}
    assert client.bytes_received == len(payload)


# --------------------------------------------------------------------------- 2. SSRF


@pytest.fixture(scope="module")
def schema() -> archivemap.Schema:
    return archivemap.Schema(SAMPLES / "metainfo.json")


@pytest.fixture(scope="module")
def sample_archives() -> dict[str, dict[str, Any]]:
    archives = (read_json(p) for p in sorted((SAMPLES / "archives").glob("*.archive.json")))
    return {a["metadata"]["entry_id"]: a for a in archives}


def _referring(sample_archives: dict[str, dict[str, Any]], target: str, m_def: str | None = None) -> tuple[str, dict[str, Any]]:
    """One sample archive whose workflow refers to ``target`` (and whose calculation is ``m_def``)."""
    entry_id, archive = next((k, copy.deepcopy(v)) for k, v in sample_archives.items() if v.get("workflow"))
    archive["workflow"] = [{"calculation_result_ref": target}]
    if m_def is not None:
        archive["run"][0]["calculation"][0]["m_def"] = m_def
    return entry_id, {**sample_archives, entry_id: archive}


@pytest.mark.parametrize(
    "installation",
    ["OTHER", "http://169.254.169.254", "http://169.254.169.254/latest/meta-data", "http://127.0.0.1:1", "http://[::1]:22"],
)
def test_reference_to_another_installation_sends_no_request(
    hostile: Callable[..., HostileServer],
    schema: archivemap.Schema,
    sample_archives: dict[str, dict[str, Any]],
    installation: str,
) -> None:
    other = hostile(lambda h, m, p, b: send_json(h, 200, {"data": {"archive": {}}}))
    base = other.url if installation == "OTHER" else installation
    target = f"{base}/entries/abcdefghijklmnopqrstuvwxyz01/archive#/run/0/calculation/0"
    entry_id, archives = _referring(sample_archives, target)
    with LocalServer(archives) as home:
        client = Client(home.url, **FAST)
        archive = client.archive(entry_id, {"workflow": "*", "metadata": "*"}, schema=schema)
        home.clear_log()
        with pytest.raises(UnsupportedReferenceError) as info:
            archive.workflow[0].calculation_result_ref  # noqa: B018
        assert home.requests == []
    message = str(info.value)
    assert "follow_hosts" in message and "nothing was requested" in message
    assert target in message  # the reference, as written
    assert api_base_url(base) in message  # the installation
    assert other.requests == []


def test_m_def_naming_another_installation_sends_no_request(
    hostile: Callable[..., HostileServer], schema: archivemap.Schema, sample_archives: dict[str, dict[str, Any]]
) -> None:
    other = hostile(lambda h, m, p, b: send_json(h, 200, {"data": {"archive": {}}}))
    m_def = f"{other.url}/entries/abcdefghijklmnopqrstuvwxyz01/archive#/definitions/section_definitions/0"
    entry_id, archives = _referring(sample_archives, "#/run/0/calculation/0", m_def=m_def)
    with LocalServer(archives) as home:
        archive = Client(home.url, **FAST).archive(entry_id, "*", schema=schema)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            calculation = archive.run[0].calculation[0]
        assert calculation.energy is not None  # read with its declared class
    assert any("follow_hosts" in str(w.message) for w in caught)
    assert other.requests == []


def test_follow_hosts_allows_a_named_installation_without_credentials(
    hostile: Callable[..., HostileServer], schema: archivemap.Schema, sample_archives: dict[str, dict[str, Any]]
) -> None:
    other = hostile(lambda h, m, p, b: send_json(h, 404, {"detail": "no such entry"}))
    target = f"{other.url}/entries/abcdefghijklmnopqrstuvwxyz01/archive#/run/0/calculation/0"
    entry_id, archives = _referring(sample_archives, target)
    with LocalServer(archives, users={"ada": "pw-home-secret"}) as home:
        allowed = [other.url.rsplit("/api/v1", 1)[0]]  # any URL of the installation will do
        client = Client(home.url, username="ada", password="pw-home-secret", follow_hosts=allowed, **FAST)
        archive = client.archive(entry_id, {"workflow": "*", "metadata": "*"}, schema=schema)
        with pytest.raises(ClientError):  # the target is asked for when it is first used
            archive.workflow[0].calculation_result_ref.m_settle()
    assert len(other.requests) >= 1
    assert all("Authorization" not in headers for _, _, headers, _ in other.requests)


# --------------------------------------------------------------------------- 3. failing entries


def _entry_id(seed: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha512(seed.encode()).digest()).decode()[:28]


@pytest.fixture(scope="module")
def twelve(sample_archives: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    templates = list(sample_archives.values())
    out = {}
    for index in range(12):
        template = copy.deepcopy(templates[index % len(templates)])
        entry_id = _entry_id(f"hostile-bulk-{index}")
        template["metadata"] = {**template["metadata"], "entry_id": entry_id, "mainfile": f"bulk/{index}.json"}
        out[entry_id] = template
    return out


def test_bulk_download_isolates_entries_the_server_answers_500(twelve: dict[str, dict[str, Any]]) -> None:
    ids = sorted(twelve)
    bad = {ids[3], ids[8]}
    with LocalServer(twelve, faults=Faults(fail_entries=frozenset(bad))) as server:
        client = Client(server.url, **FAST)
        with pytest.raises(ServerError):
            client.archive_raw(ids[3])  # the fault: this entry's archive answers 500
        stream = client.archives_raw({}, {"metadata": "*"}, batch_size=5)
        delivered = dict(stream)
        assert set(delivered) == set(ids) - bad  # every other entry, each once
        assert all(delivered[i]["metadata"]["entry_id"] == i for i in delivered)
        assert set(stream.failed) == bad
        for entry_id, failure in stream.failed.items():
            assert isinstance(failure, EntryFailure)
            assert failure.entry_id == entry_id and failure.status == 500
            assert failure.detail and failure.url.startswith(server.url)
        assert stream.missing == {}
        # once the server is fixed, the failures can be retried on their own
        server.update_faults(fail_entries=frozenset())
        retried = stream.retry_failed()
        assert set(dict(retried)) == bad and retried.failed == {}


# --------------------------------------------------------------------------- 4. secrets

PASSWORD = "pw s3cr!t/+&=%ü-42"
TOKEN = "tok.eyJhbGciOi+/=XYZ!secret"


def _spellings(secret: str) -> list[str]:
    once = [quote(secret, safe=""), quote_plus(secret)]
    return [
        secret,
        *once,
        *(o.lower() for o in once),
        *(quote(o, safe="") for o in once),
        json.dumps(secret)[1:-1],
        base64.b64encode(secret.encode()).decode(),
        *([base64.b64encode(f"ada:{secret}".encode()).decode()] if secret == PASSWORD else []),  # Basic
    ]


def _echo(request_body: bytes, headers: dict[str, str], secrets: tuple[str, ...] = (PASSWORD, TOKEN)) -> dict[str, Any]:
    """Everything a careless server could reflect: the request and every encoding of the secrets."""
    variants = [v for secret in secrets for v in _spellings(secret)]
    return {
        "detail": {
            "reason": f"bad credentials {request_body.decode('utf-8', 'replace')} {headers.get('Authorization')}",
            "echo": variants,
            "keyed": {v: v for v in variants},
        }
    }


def test_credentials_echoed_in_every_encoding_never_reach_errors_or_logs(
    hostile: Callable[..., HostileServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    state = {"login": "refuse"}

    def respond(h: BaseHTTPRequestHandler, method: str, path: str, body: bytes) -> None:
        headers = dict(h.headers)
        reason = f"Bad {quote_plus(PASSWORD)} {quote(TOKEN, safe='')}"
        echo_headers = {"X-Echo": quote(PASSWORD, safe=""), "WWW-Authenticate": f"Bearer {quote_plus(TOKEN)}"}
        if path == "auth/token" and state["login"] == "refuse":
            # the client has not got the token yet: only the password is its secret here
            send_json(h, 401, _echo(body, headers, (PASSWORD,)), echo_headers, f"Bad {quote_plus(PASSWORD)}")
        elif path == "auth/token":
            send_json(h, 200, {"access_token": TOKEN, "token_type": "bearer"})
        elif path == "text":  # not JSON, and a secret right where the detail is cut
            text = "x" * 490 + PASSWORD + " " + " ".join(_spellings(PASSWORD) + _spellings(TOKEN))
            send_json(h, 400, None, echo_headers, reason, raw=text.encode())
        elif path == "busy":
            send_json(h, 503, _echo(body, headers), {**echo_headers, "Retry-After": quote(PASSWORD)}, reason)
        else:
            send_json(h, 500, _echo(body, headers), echo_headers, reason)

    server = hostile(respond)
    errors: list[ClientError] = []
    calls: list[Callable[[Client], Any]] = [
        lambda c: c.login(),  # refused: the form body and every spelling echoed back
        lambda c: c.get_json("boom"),
        lambda c: c.get_json("text"),
        lambda c: c.get_json("busy"),
        lambda c: list(c.archives_raw({"q": 1})),
    ]
    for call in calls:
        client = Client(server.url, username="ada", password=PASSWORD, retries=1, **FAST)
        with pytest.raises(ClientError) as info:
            call(client)
        errors.append(info.value)
        state["login"] = "accept"
    assert [type(e) for e in errors] == [AuthenticationError, ServerError, BadRequestError, ServerError, ServerError]
    texts = [record.getMessage() for record in caplog.records]
    for error in errors:
        texts += [str(error), repr(error), repr(error.args), str(error.args), json.dumps(getattr(error, "detail", None))]
    assert any("<redacted>" in text for text in texts)  # the echoes were there, and scrubbed
    for secret in (PASSWORD, TOKEN):
        for spelling in _spellings(secret):
            leaked = [text for text in texts if spelling in text]
            assert not leaked, (spelling, leaked[:1])
    # the scrubbed texts still say what happened
    assert all(server.url in str(error) for error in errors)
