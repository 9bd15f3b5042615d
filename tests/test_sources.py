"""Archives from folders, zips and other installations; paths and credentials stay put."""

from __future__ import annotations

import copy
import json
import zipfile

import pytest

import archivemap
from archivemap.remote.client import Client
from archivemap.errors import UnsafePathError
from archivemap._json import read_json
from archivemap.server import LocalServer
from archivemap.archive.sources import DirectorySource, ZipSource

from .conftest import SAMPLES

FILES = sorted((SAMPLES / "archives").glob("*.archive.json"))


@pytest.fixture(scope="module")
def schema() -> archivemap.Schema:
    return archivemap.Schema(SAMPLES / "metainfo.json")


def _linked_pair() -> tuple[dict, dict]:
    one, two = copy.deepcopy(read_json(FILES[0])), copy.deepcopy(read_json(FILES[1]))
    two["metadata"]["upload_id"] = one["metadata"]["upload_id"]
    one["workflow"] = [{"calculation_result_ref": f"../upload/archive/mainfile/{two['metadata']['mainfile']}#/run/0/calculation/0"}]
    return one, two


def test_zip_source_resolves_cross_entry_references(schema, tmp_path) -> None:
    one, two = _linked_pair()
    path = tmp_path / "download.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("upload/one.archive.json", json.dumps(one))
        zf.writestr("upload/two.archive.json", json.dumps(two))
    source = ZipSource(path, schema)
    root = source.archive(one["metadata"]["entry_id"])
    target = root.workflow[0].calculation_result_ref
    assert target.m_entry_id == two["metadata"]["entry_id"]
    assert target.energy.total.value is not None


def test_zip_member_that_escapes_is_refused(schema, tmp_path) -> None:
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../outside.json", "{}")
    with pytest.raises(UnsafePathError):
        ZipSource(path, schema)


def test_directory_paths_that_escape_are_refused(schema, tmp_path) -> None:
    source = DirectorySource(SAMPLES / "archives", schema)
    assert source.path(FILES[0].name) == FILES[0].resolve()
    for bad in ("../metainfo.json", "/etc/passwd", "a/../../x"):
        with pytest.raises(UnsafePathError):
            source.path(bad)


def test_other_installation_gets_no_credentials(schema) -> None:
    one, two = _linked_pair()
    with LocalServer({two["metadata"]["entry_id"]: two}) as other:
        one["workflow"] = [{"calculation_result_ref": f"{other.url}/uploads/{two['metadata']['upload_id']}/archive/{two['metadata']['entry_id']}#/run/0/calculation/0"}]
        with LocalServer({one["metadata"]["entry_id"]: one}, users={"alice": "secret-pw"}) as home:
            # another installation is reached only when the user allows it (issue 12), and
            # then without the credentials given for this one
            client = Client(home.url, username="alice", password="secret-pw", follow_hosts=[other.url])
            archive = client.archive(one["metadata"]["entry_id"], {"workflow": "*"}, schema=schema)
            target = archive.workflow[0].calculation_result_ref
            assert target.energy.total.value is not None
            assert target.m_entry_id == two["metadata"]["entry_id"]
            assert any(r.authorized for r in home.requests)
            assert other.requests and not any(r.authorized for r in other.requests)


def test_raw_file_references_resolve_inside_the_folder_only(schema, tmp_path) -> None:
    one, two = _linked_pair()
    del two["metadata"]["mainfile"]  # found by its file name, not by metadata
    one["workflow"] = [{"calculation_result_ref": "../upload/raw/sub/two.json#/run/0/calculation/0"}]
    (tmp_path / "sub").mkdir()
    (tmp_path / "one.json").write_text(json.dumps(one))
    (tmp_path / "sub" / "two.json").write_text(json.dumps(two))
    archive = archivemap.load(tmp_path / "one.json", schema, archives=tmp_path)
    assert archive.workflow[0].calculation_result_ref.m_path() == "/run/0/calculation/0"
    outside = tmp_path.parent / "outside.json"
    outside.write_text(json.dumps(two))
    one["workflow"] = [{"calculation_result_ref": "../upload/raw/../outside.json#/run/0/calculation/0"}]
    (tmp_path / "one.json").write_text(json.dumps(one))
    archive = archivemap.load(tmp_path / "one.json", schema, archives=tmp_path)
    with pytest.raises(UnsafePathError):
        archive.workflow[0].calculation_result_ref  # noqa: B018
    stranger = copy.deepcopy(two)
    stranger["metadata"]["entry_id"] = "outsideoutsideoutsideoutside"
    outside.write_text(json.dumps(stranger))
    (tmp_path / "link.json").symlink_to(outside)
    assert "outsideoutsideoutsideoutside" not in DirectorySource(tmp_path, schema).entry_ids()
