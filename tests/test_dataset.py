"""Dataset lockfiles (archivemap.remote.dataset) against a real LocalServer, across processes.

Done when (issue 10): a lockfile written by one run, replayed in a fresh process with the
server stopped, gives identical results; with one entry changed on the server, the replay
names that entry; a bulk download killed halfway and restarted with the same lock fetches
only what is missing. Real disk, real HTTP on 127.0.0.1, real processes, no mocks.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from archivemap.remote.cache import ArchiveCache, payload_hash
from archivemap.remote.client import Client
from archivemap.remote.dataset import open_dataset
from archivemap.remote.lockfile import DatasetIntegrityError, dataset_raw, read_lock
from archivemap.server import LocalServer
from tests.conftest import REPO, SHARED
from tests.test_cache import archive_requests, synthesise

pytestmark = pytest.mark.shared

REQUIRED = {"metadata": "*", "results": {"material": "*"}}
SHARED_ARCHIVES = SHARED / "archives"


def _python(code: str, *args: str) -> str:
    """Run ``code`` in a fresh interpreter (its own imports, caches and connections)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _lock_and_digests(url: str, lock: Path, cache: Path) -> dict[str, str]:
    stream = dataset_raw(Client(url), None, REQUIRED, lock=lock, cache=ArchiveCache(cache))
    return {state.entry_id: payload_hash(archive) for state, archive in stream}


def test_lock_replays_offline_in_a_fresh_process(tmp_path: Path) -> None:
    folder, lock, cache = tmp_path / "archives", tmp_path / "dataset.lock", tmp_path / "cache"
    ids = synthesise(folder, 25)
    with LocalServer(folder) as server:
        first = _lock_and_digests(server.url, lock, cache)
    assert sorted(first) == ids
    data = read_lock(lock)
    assert data["complete"] and data["count"] == len(ids)
    assert data["required"] == REQUIRED and data["required_hash"].startswith("sha256:")
    assert {item["entry_id"]: item["payload_hash"] for item in data["entries"]} == first
    assert all(item["processing_time"] and item["upload_id"] and item["retrieved_at"] for item in data["entries"])
    # the server is stopped: a fresh process reproduces the dataset from the cache alone
    out = _python(
        """
        import json, sys
        from archivemap.remote.cache import payload_hash
        from archivemap import open_dataset
        ds = open_dataset(sys.argv[1], cache=sys.argv[2], offline=True)
        print(json.dumps({k: payload_hash(v) for k, v in ds.archives.items()}))
        """,
        str(lock),
        str(cache),
    )
    assert json.loads(out) == first


def test_replay_names_the_entry_changed_on_the_server(tmp_path: Path) -> None:
    folder, lock, cache = tmp_path / "archives", tmp_path / "dataset.lock", tmp_path / "cache"
    ids = synthesise(folder, 12)
    with LocalServer(folder) as server:
        port = server.port
        first = _lock_and_digests(server.url, lock, cache)
    path = folder / f"{ids[5]}.json"
    archive = json.loads(path.read_text())
    archive["metadata"]["last_processing_time"] = "2026-07-01T12:00:00+00:00"
    archive.setdefault("results", {}).setdefault("material", {})["chemical_formula_descriptive"] = "Changed"
    path.write_text(json.dumps(archive))
    with LocalServer(folder, port=port) as server:
        dataset = open_dataset(lock, cache=cache)
        assert list(dataset.changed) == [ids[5]]
        assert "reprocessed" in dataset.changed[ids[5]]
        # the locked version is still in the cache: the dataset is reproduced exactly
        assert {k: payload_hash(v) for k, v in dataset.archives.items()} == first
        # without that copy the entry cannot be reproduced, and is named as such
        dataset = open_dataset(lock, cache=tmp_path / "empty-cache")
        assert list(dataset.changed) == [ids[5]]
        assert list(dataset.unavailable) == [ids[5]]
        assert len(dataset) == len(ids) - 1
        assert archive_requests(server)


def test_tampered_payload_fails_verification(tmp_path: Path) -> None:
    folder, lock, cache = tmp_path / "archives", tmp_path / "dataset.lock", tmp_path / "cache"
    synthesise(folder, 4)
    with LocalServer(folder) as server:
        _lock_and_digests(server.url, lock, cache)
        data = read_lock(lock)
        data["entries"][1]["payload_hash"] = "sha256:" + "0" * 64
        lock.write_text(json.dumps(data))
        with pytest.raises(DatasetIntegrityError):
            open_dataset(lock, cache=cache)
        dataset = open_dataset(lock, cache=cache, strict=False)
        assert list(dataset.unavailable) == [data["entries"][1]["entry_id"]]


def test_killed_download_resumes_with_only_the_missing_entries(tmp_path: Path) -> None:
    folder, lock, cache = tmp_path / "archives", tmp_path / "dataset.lock", tmp_path / "cache"
    ids = synthesise(folder, 40)
    with LocalServer(folder, max_log_records=100_000) as server:
        # a run killed (os._exit: no cleanup) after 15 entries, downloading in chunks of 10
        _python(
            """
            import os, sys
            from archivemap.remote.cache import ArchiveCache
            from archivemap.remote.client import Client
            from archivemap.remote.lockfile import dataset_raw
            stream = dataset_raw(Client(sys.argv[1]), None, json_required := __import__("json").loads(sys.argv[4]),
                                 lock=sys.argv[2], cache=ArchiveCache(sys.argv[3]), chunk=10)
            for count, _ in enumerate(stream, 1):
                if count == 15:
                    os._exit(0)
            """,
            server.url,
            str(lock),
            str(cache),
            json.dumps(REQUIRED),
        )
        kept = ArchiveCache(cache)
        stored = {entry_id for entry_id in ids if kept.get(server.url, entry_id) is not None}
        assert 0 < len(stored) < len(ids)
        server.clear_log()
        resumed = _lock_and_digests(server.url, lock, cache)
        requested = {
            entry_id
            for record in server.requests
            if record.path == "entries/archive/query"
            for entry_id in record.body["query"]["entry_id:any"]
        }
    assert sorted(resumed) == ids
    assert requested == set(ids) - stored
    assert read_lock(lock)["complete"]


def test_cli_fetch_lock_and_cache_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from archivemap.cli import main

    folder, lock, cache = tmp_path / "archives", tmp_path / "dataset.lock", tmp_path / "cache"
    ids = synthesise(folder, 6)
    out = tmp_path / "data.jsonl"
    required = json.dumps(REQUIRED)
    with LocalServer(folder) as server:
        args = ["fetch", "--url", server.url, "--required", required, "--lock", str(lock), "--cache-dir", str(cache)]
        assert main([*args, "-o", str(out)]) == 0
        first = [json.loads(line) for line in out.read_text().splitlines()]
        assert [item["entry_id"] for item in first] == ids
        server.clear_log()
        assert main([*args, "-o", str(out)]) == 0
        assert archive_requests(server) == []
    # the server is gone: replay the lock offline
    assert main(["fetch", "--lock", str(lock), "--offline", "--cache-dir", str(cache), "-o", str(out)]) == 0
    assert [json.loads(line) for line in out.read_text().splitlines()] == first
    capsys.readouterr()
    assert main(["cache", "info", "--cache-dir", str(cache), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == len(ids)
    assert main(["cache", "clear", "--cache-dir", str(cache)]) == 0
    assert ArchiveCache(cache).info()["entries"] == 0


def test_a_datasets_entries_are_typed_and_reference_each_other(tmp_path: Path) -> None:
    # the references upload of NOMAD's GUI tests: a powder mixture whose data points into
    # another entry's substance list, and data whose sections are defined by schema entries
    folder, lock, cache = tmp_path / "archives", tmp_path / "dataset.lock", tmp_path / "cache"
    folder.mkdir()
    for name in ("eln-refs-powder-mixture.recorded", "eln-refs-substance-list.recorded",
                 "eln-refs-base-sections-schema.recorded", "eln-refs-extended-sections-schema.processed"):
        source = SHARED_ARCHIVES / f"{name}.archive.json"
        (folder / source.name).write_bytes(source.read_bytes())
    with LocalServer(folder) as server:
        stream = dataset_raw(Client(server.url), {"upload_id": "references_upload_id1"}, "*", lock=lock,
                             cache=ArchiveCache(cache))
        ids = [state.entry_id for state, _ in stream]
    assert "4WgzB6xcTzWB_Xk9UNUH4HB3IRKJ" in ids and "AkeMNBjzHdEWJmv2w8GVaw9drWRu" in ids
    dataset = open_dataset(lock, cache=cache, offline=True)  # the server is gone
    mixture = dataset.archive("4WgzB6xcTzWB_Xk9UNUH4HB3IRKJ")
    substances = dataset.archive("AkeMNBjzHdEWJmv2w8GVaw9drWRu")
    assert dataset.archive("AkeMNBjzHdEWJmv2w8GVaw9drWRu") is substances  # one root per entry
    target = mixture.data.test_1  # "../uploads/references_upload_id1/archive/AkeM…#data/contents/3"
    assert target is substances.data.contents[3]
    assert target.m_root is substances and target.m_path() == "/data/contents/3"
    assert [entry_id for entry_id, _ in dataset.items()] == list(dataset.archives)
    assert all(root.m_entry_id == entry_id for entry_id, root in dataset.items())
    # the dicts are read, not changed: the payload hashes still match the lock
    assert {k: payload_hash(v) for k, v in dataset.archives.items()} == {
        item["entry_id"]: item["payload_hash"] for item in read_lock(lock)["entries"]}
    with pytest.raises(KeyError, match="not in the lockfile"):
        dataset.archive("no-such-entry")
