"""The bundled server's uploads, datasets, users and raw-file endpoints, over plain HTTP.

Raw files must never be read from outside their upload's folder, whatever the path says
(``..``, encoded slashes, absolute paths, symbolic links); ranges follow RFC 9110 for one range.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from archivemap.server import LocalServer

from tests.server.conftest import small_archive

CONTENT = bytes(range(256)) * 40  # 10 240 bytes


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("uploads_site")
    archives = root / "archives"
    archives.mkdir()
    for entry_id, upload_id in (("a1", "up1"), ("a2", "up1"), ("b1", "up2")):
        archive = small_archive(entry_id, upload_id)
        archive["metadata"].update({"main_author": {"user_id": "u1", "name": "Ada"}, "datasets": ["d1"] if upload_id == "up1" else []})
        (archives / f"{entry_id}.json").write_text(json.dumps(archive))
        folder = root / "raw" / upload_id / entry_id
        folder.mkdir(parents=True)
        (folder / "vasprun.xml").write_bytes(CONTENT)
    (root / "raw" / "outside.txt").write_text("secret")
    (root / "elsewhere").mkdir()
    (root / "elsewhere" / "secret.txt").write_text("secret")
    try:
        os.symlink(root / "elsewhere", root / "raw" / "up1" / "link")
        os.symlink(root / "elsewhere" / "secret.txt", root / "raw" / "up1" / "a1" / "leak.txt")
    except OSError:  # pragma: no cover - file systems without links
        pass
    return root


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[LocalServer]:
    with LocalServer(site / "archives", users={"ada": "pw"}) as running:
        yield running


@pytest.fixture(scope="module")
def token(server: LocalServer) -> str:
    answer = requests.post(f"{server.url}/auth/token", data={"username": "ada", "password": "pw", "grant_type": "password"}, timeout=10)
    return str(answer.json()["access_token"])


def test_raw_folder_beside_the_archives_is_found(server: LocalServer, site: Path) -> None:
    assert server.raw == site / "raw"


@pytest.mark.parametrize(
    "path",
    [
        "uploads/up1/raw/../outside.txt",
        "uploads/up1/raw/..%2Foutside.txt",
        "uploads/up1/raw/a1/..%2F..%2Foutside.txt",
        "uploads/up1/raw/%2Fetc%2Fpasswd",
        "uploads/..%2Fraw/raw/outside.txt",
        "uploads/up1/raw/link/secret.txt",
        "uploads/up1/raw/a1/leak.txt",
        "entries/a1/raw/..%2F..%2Foutside.txt",
        "uploads/up1/raw/a1/vasprun.xml%00.txt",
    ],
)
def test_nothing_outside_an_upload_is_served(server: LocalServer, path: str) -> None:
    answer = requests.get(f"{server.url}/{path}", timeout=10)
    assert answer.status_code == 404
    assert b"secret" not in answer.content


def test_a_raw_file_with_ranges(server: LocalServer) -> None:
    url = f"{server.url}/uploads/up1/raw/a1/vasprun.xml"
    whole = requests.get(url, timeout=10)
    assert whole.status_code == 200 and whole.content == CONTENT
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Content-Type"] == "application/octet-stream"
    part = requests.get(url, headers={"Range": "bytes=100-199"}, timeout=10)
    assert part.status_code == 206 and part.content == CONTENT[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(CONTENT)}"
    tail = requests.get(url, headers={"Range": "bytes=-10"}, timeout=10)
    assert tail.status_code == 206 and tail.content == CONTENT[-10:]
    rest = requests.get(url, headers={"Range": "bytes=10000-"}, timeout=10)
    assert rest.content == CONTENT[10000:]
    beyond = requests.get(url, headers={"Range": f"bytes={len(CONTENT)}-"}, timeout=10)
    assert beyond.status_code == 416 and beyond.headers["Content-Range"] == f"bytes */{len(CONTENT)}"
    several = requests.get(url, headers={"Range": "bytes=0-1,5-6"}, timeout=10)
    assert several.status_code == 200 and several.content == CONTENT  # one range only, else whole
    sliced = requests.get(url, params={"offset": 5, "length": 3}, timeout=10)
    assert sliced.content == CONTENT[5:8]


def test_entry_raw_zip_and_one_file_relative_to_the_mainfile(server: LocalServer) -> None:
    answer = requests.get(f"{server.url}/entries/a2/raw", timeout=10)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        assert archive.namelist() == ["a2/vasprun.xml"]
    one = requests.get(f"{server.url}/entries/a2/raw/vasprun.xml", timeout=10)
    assert one.content == CONTENT
    assert requests.get(f"{server.url}/entries/nope/raw", timeout=10).status_code == 404


def test_a_folder_as_zip_only_when_asked(server: LocalServer) -> None:
    url = f"{server.url}/uploads/up1/raw/a1"
    assert requests.get(url, timeout=10).status_code == 404
    answer = requests.get(url, params={"compress": "true"}, timeout=10)
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        assert archive.namelist() == ["a1/vasprun.xml"]  # the link leading out is left out


def test_raw_zip_of_a_query_post_and_get(server: LocalServer) -> None:
    posted = requests.post(f"{server.url}/entries/raw/query", json={"query": {"upload_id": "up2"}}, timeout=10)
    with zipfile.ZipFile(io.BytesIO(posted.content)) as archive:
        assert archive.namelist() == ["up2/b1/vasprun.xml"]
    got = requests.get(f"{server.url}/entries/raw", params={"upload_id": "up1"}, timeout=10)
    with zipfile.ZipFile(io.BytesIO(got.content)) as archive:
        assert sorted(archive.namelist()) == ["up1/a1/vasprun.xml", "up1/a2/vasprun.xml"]
    bad = requests.post(f"{server.url}/entries/raw/query", json={"query": {"no_such_key": 1}}, timeout=10)
    assert bad.status_code in (400, 422)


def test_uploads_need_a_token_to_list(server: LocalServer, token: str) -> None:
    assert requests.get(f"{server.url}/uploads", timeout=10).status_code == 401
    answer = requests.get(f"{server.url}/uploads", headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
    assert [u["upload_id"] for u in answer["data"]] == ["up1", "up2"]
    assert answer["pagination"]["total"] == 2
    one = requests.get(f"{server.url}/uploads/up1", timeout=10).json()
    assert one["upload_id"] == "up1" and one["data"]["entries"] == 2 and one["data"]["main_author"] == "u1"
    missing = requests.get(f"{server.url}/uploads/nope", timeout=10)
    assert missing.status_code == 404 and missing.json() == {"detail": "The specified upload_id was not found."}


def test_upload_entries_pages_with_index_cursors(server: LocalServer) -> None:
    first = requests.get(f"{server.url}/uploads/up1/entries", params={"page": 1, "page_size": 1}, timeout=10).json()
    assert [e["entry_id"] for e in first["data"]] == ["a1"]
    assert first["pagination"]["next_page_after_value"] == "0"
    assert "page_after_value=0" in first["pagination"]["next_page_url"]
    second = requests.get(f"{server.url}/uploads/up1/entries", params={"page": 2, "page_size": 1}, timeout=10).json()
    assert [e["entry_id"] for e in second["data"]] == ["a2"]
    assert second["pagination"]["page_after_value"] == "0" and "next_page_after_value" not in second["pagination"]
    assert second["upload"]["upload_id"] == "up1" and second["processing_successful"] == 2
    bad = requests.get(f"{server.url}/uploads/up1/entries", params={"page_size": "x"}, timeout=10)
    assert bad.status_code == 422


def test_datasets_and_users(server: LocalServer, token: str) -> None:
    datasets = requests.get(f"{server.url}/datasets/", timeout=10).json()
    assert [d["dataset_id"] for d in datasets["data"]] == ["d1"]
    assert requests.get(f"{server.url}/datasets/d1", timeout=10).json()["data"]["user_id"] == "u1"
    assert requests.get(f"{server.url}/datasets/nope", timeout=10).status_code == 404
    found = requests.post(f"{server.url}/entries/query", json={"query": {"datasets.dataset_id": "d1"}}, timeout=10).json()
    assert sorted(e["entry_id"] for e in found["data"]) == ["a1", "a2"]
    users = requests.get(f"{server.url}/users", params={"user_id": ["u1", "zz"]}, timeout=10).json()
    assert users == {"data": [{"user_id": "u1", "name": "Ada"}]}
    assert requests.get(f"{server.url}/users/u1", timeout=10).json()["name"] == "Ada"
    assert requests.get(f"{server.url}/users/me", timeout=10).status_code == 401
    me = requests.get(f"{server.url}/users/me", headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
    assert me["user_id"] == "ada"


def test_personal_access_tokens_are_scoped(site: Path) -> None:
    with LocalServer(site / "archives", pats={"nomad_pat_x": ["uploads:read"]}) as running:
        headers = {"Authorization": "Bearer nomad_pat_x"}
        assert requests.get(f"{running.url}/uploads/up1", headers=headers, timeout=10).status_code == 200
        refused = requests.post(f"{running.url}/entries/query", json={}, headers=headers, timeout=10)
        assert refused.status_code == 403
        assert refused.json() == {"detail": "Missing scopes: [<Scope.ENTRIES_READ: 'entries:read'>]"}


def test_a_server_without_raw_files_answers_404(site: Path) -> None:
    with LocalServer({"x1": small_archive("x1")}) as running:
        assert running.raw is None
        assert requests.get(f"{running.url}/uploads/up1/raw/x1/vasprun.xml", timeout=10).status_code == 404
        answer = requests.get(f"{running.url}/entries/x1/raw", timeout=10)
        assert zipfile.ZipFile(io.BytesIO(answer.content)).namelist() == []


@pytest.mark.shared
def test_uploads_of_the_real_archives(shared_data: Path) -> None:
    with LocalServer(shared_data / "archives") as running:
        upload = requests.get(f"{running.url}/uploads/archive_browser_test", timeout=10).json()["data"]
        assert upload["main_author"] == "68878af7-6845-46c0-b2c1-250d4d8eb470"
        assert upload["upload_create_time"].startswith("2022-12-14")
        entries = requests.get(f"{running.url}/uploads/archive_browser_test/entries", params={"page_size": 100}, timeout=10).json()
        assert entries["pagination"]["total"] == upload["entries"] >= 5
        user = requests.get(f"{running.url}/users/68878af7-6845-46c0-b2c1-250d4d8eb470", timeout=10)
        assert user.status_code == 200
