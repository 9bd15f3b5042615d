"""Token auth: ``auth/token``, ``auth/app_token``, ``require_auth`` and expiring tokens."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from archivemap.server import LocalServer

PASSWORD = "s3cret-pw"


@pytest.fixture
def auth_server(make_archive: Any) -> Iterator[LocalServer]:
    with LocalServer({"E": make_archive("E")}, users={"alice": PASSWORD}, require_auth=True) as server:
        yield server


def login(server: LocalServer, **form: str) -> requests.Response:
    data = {"username": "alice", "password": PASSWORD, "grant_type": "password", **form}
    return requests.post(f"{server.url}/auth/token", data=data, timeout=10)


def test_token_layout_and_use(auth_server: LocalServer) -> None:
    response = login(auth_server)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    token = response.json()
    assert token["token_type"] == "Bearer"
    assert set(token) >= {"access_token", "expires_in", "refresh_token"}
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    assert requests.post(f"{auth_server.url}/entries/query", json={}, headers=headers, timeout=10).status_code == 200


def test_require_auth_answers_401(auth_server: LocalServer) -> None:
    response = requests.post(f"{auth_server.url}/entries/query", json={}, timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json() == {"detail": "Authentication required."}
    bad = {"Authorization": "Bearer not-a-token"}
    assert requests.get(f"{auth_server.url}/entries/E/archive", headers=bad, timeout=10).status_code == 401


def test_wrong_credentials_and_missing_fields(auth_server: LocalServer) -> None:
    response = login(auth_server, password="wrong")
    assert response.status_code == 401
    assert response.json() == {"detail": "Incorrect username or password"}
    response = requests.post(f"{auth_server.url}/auth/token", data={"username": "alice"}, timeout=10)
    assert response.status_code == 422
    assert {tuple(item["loc"]) for item in response.json()["detail"]} == {("body", "grant_type"), ("body", "password")}


def test_expire_tokens_then_refresh(auth_server: LocalServer) -> None:
    token = login(auth_server).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    url = f"{auth_server.url}/entries/E/archive"
    assert requests.get(url, headers=headers, timeout=10).status_code == 200
    auth_server.expire_tokens()
    assert requests.get(url, headers=headers, timeout=10).status_code == 401
    refreshed = requests.post(
        f"{auth_server.url}/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
        timeout=10,
    ).json()
    headers = {"Authorization": f"Bearer {refreshed['access_token']}"}
    assert requests.get(url, headers=headers, timeout=10).status_code == 200


def test_app_token(auth_server: LocalServer) -> None:
    access = login(auth_server).json()["access_token"]
    headers = {"Authorization": f"Bearer {access}"}
    url = f"{auth_server.url}/auth/app_token"
    response = requests.get(url, params={"expires_in": 60}, headers=headers, timeout=10)
    assert response.status_code == 200
    app_headers = {"Authorization": f"Bearer {response.json()['app_token']}"}
    assert requests.get(f"{auth_server.url}/entries/E", headers=app_headers, timeout=10).status_code == 200
    assert requests.get(url, params={"expires_in": 10**9}, headers=headers, timeout=10).status_code == 422
    assert requests.get(url, headers=headers, timeout=10).status_code == 422
    assert requests.get(url, params={"expires_in": 60}, timeout=10).status_code == 401


def test_no_secret_in_log_or_repr(auth_server: LocalServer) -> None:
    token = login(auth_server).json()["access_token"]
    requests.post(
        f"{auth_server.url}/entries/query", json={}, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    text = repr(auth_server.requests) + repr(auth_server) + repr(auth_server._tokens)
    assert token not in text and PASSWORD not in text
    login_record = next(r for r in auth_server.requests if r.path == "auth/token")
    assert login_record.body["password"] == "<redacted>" and login_record.body["username"] == "alice"
    assert auth_server.requests[-1].authorized is True


def test_invalid_token_is_rejected_even_without_require_auth(small_server: LocalServer) -> None:
    response = requests.post(
        f"{small_server.url}/entries/query", json={}, headers={"Authorization": "Bearer stale"}, timeout=10
    )
    assert response.status_code == 401


ENTRIES_SCOPE_DETAIL = {"detail": "Missing scopes: [<Scope.ENTRIES_READ: 'entries:read'>]"}


@pytest.fixture
def pat_server(make_archive: Any) -> Iterator[LocalServer]:
    pats = {"nomad_pat_uploads": ["uploads:read"], "nomad_pat_entries": ["entries:read"]}
    with LocalServer({"E": make_archive("E")}, pats=pats) as server:
        yield server


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "entries/query", {}),
        ("GET", "entries", None),
        ("GET", "entries/E", None),
        ("POST", "entries/archive/query", {"required": "*"}),
        ("GET", "entries/archive", None),
        ("GET", "entries/E/archive", None),
        ("POST", "entries/E/archive/query", {"required": {"metadata": "*"}}),
        ("GET", "entries/E/archive/download", None),
        ("GET", "entries/E/raw", None),
        ("POST", "entries/raw/query", {}),
        # NOMAD resolves the user and its scopes before the body: a bad body still gets the 403
        ("POST", "entries/E/archive/query", {"required": {"run": "no such directive"}}),
    ],
)
def test_a_pat_without_entries_read_gets_nomads_403(pat_server: LocalServer, method: str, path: str, body: Any) -> None:
    """NOMAD 2.0.0 (``routers/auth.py``): ``f"Missing scopes: {sorted(missing)}"`` over its Scope enum."""
    headers = {"Authorization": "Bearer nomad_pat_uploads"}
    refused = requests.request(method, f"{pat_server.url}/{path}", json=body, headers=headers, timeout=10)
    assert refused.status_code == 403
    assert refused.json() == ENTRIES_SCOPE_DETAIL
    allowed = requests.request(method, f"{pat_server.url}/{path}", json=body, headers={"Authorization": "Bearer nomad_pat_entries"}, timeout=10)
    assert allowed.status_code != 403


def test_scopes_are_checked_on_matched_routes_only(pat_server: LocalServer) -> None:
    headers = {"Authorization": "Bearer nomad_pat_uploads"}
    # FastAPI answers an unknown route 404 and a wrong method 405 before any dependency runs
    assert requests.get(f"{pat_server.url}/entries/E/no/such/route", headers=headers, timeout=10).status_code == 404
    assert requests.post(f"{pat_server.url}/entries/E/archive", headers=headers, timeout=10).status_code == 405
    others = {
        "datasets": "Missing scopes: [<Scope.DATASETS_READ: 'datasets:read'>]",
        "users/me": "Missing scopes: [<Scope.USERS_READ: 'users:read'>]",
        "auth/app_token?expires_in=60": "Missing scopes: [<Scope.TOKENS_CREATE: 'tokens:create'>]",
    }
    for path, detail in others.items():
        refused = requests.get(f"{pat_server.url}/{path}", headers=headers, timeout=10)
        assert (refused.status_code, refused.json()) == (403, {"detail": detail})
    entries_only = {"Authorization": "Bearer nomad_pat_entries"}
    refused = requests.get(f"{pat_server.url}/uploads", headers=entries_only, timeout=10)
    assert refused.json() == {"detail": "Missing scopes: [<Scope.UPLOADS_READ: 'uploads:read'>]"}
