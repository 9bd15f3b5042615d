"""Dataset lockfiles (archivemap.remote.dataset) against a real LocalServer, across processes.

Done when (issue 10): a lockfile written by one run, replayed in a fresh process with the
server stopped, gives identical results; with one entry changed on the server, the replay
names that entry; a bulk download killed halfway and restarted with the same lock fetches
only what is missing. Real disk, real HTTP on 127.0.0.1, real processes, no mocks.
"""

from __future__ import annotations

import json
import pickle
import sqlite3
import subprocess
import sys
import textwrap
import warnings
import zlib
from pathlib import Path
from typing import Any

import pytest

from archivemap.cli import main
from archivemap.errors import (
    ArchiveDataError,
    DatasetIncompleteError,
    DatasetIntegrityError,
    DatasetWarning,
    LockfileConflictError,
)
from archivemap.remote.cache import ArchiveCache, EntryState, cached_archives, list_entries, payload_hash
from archivemap.remote.client import Client
from archivemap.remote.dataset import open_dataset
from archivemap.remote.lockfile import dataset_raw, read_lock
from archivemap.server import Faults, LocalServer
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
        # without that copy the entry cannot be reproduced: an error that names it and
        # keeps the rest, or (asked for) the partial dataset
        with pytest.raises(DatasetIncompleteError, match=ids[5]) as caught:
            open_dataset(lock, cache=tmp_path / "empty-cache")
        assert caught.value.unavailable.keys() == {ids[5]} and "reprocessed" in caught.value.unavailable[ids[5]]
        kept = caught.value.dataset
        assert kept is not None and len(kept) == len(ids) - 1 and list(kept.changed) == [ids[5]]
        dataset = open_dataset(lock, cache=tmp_path / "empty-cache", partial=True)
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
        # not strict: the entry is left out, which is an incomplete dataset unless partial
        with pytest.raises(DatasetIncompleteError):
            open_dataset(lock, cache=cache, strict=False)
        dataset = open_dataset(lock, cache=cache, strict=False, partial=True)
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
        # the killed run left its lock (the header at least), marked incomplete
        assert read_lock(lock)["complete"] is False
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
    # pickled, a dataset and its sections keep working; sections share their dataset's copy
    again = pickle.loads(pickle.dumps(dataset))
    assert again.archives == dataset.archives and again.archive(ids[0]).m_entry_id == ids[0]
    target_again = pickle.loads(pickle.dumps(mixture)).data.test_1
    assert (target_again.m_entry_id, target_again.m_path()) == ("AkeMNBjzHdEWJmv2w8GVaw9drWRu", "/data/contents/3")
    one, two = pickle.loads(pickle.dumps(mixture)), pickle.loads(pickle.dumps(substances))
    assert one.m_context.source is two.m_context.source


# --------------------------------------------------------------------------- what a lock promises


def _tamper(cache: Path, entry_id: str, change: Any) -> None:
    """Edit one cached payload in place: valid zlib JSON with other content (or raw bytes)."""
    db = sqlite3.connect(cache / "archives.sqlite3")
    try:
        (payload,) = db.execute("SELECT payload FROM archives WHERE entry_id=?", (entry_id,)).fetchone()
        if isinstance(change, bytes):
            blob = change
        else:
            archive = json.loads(zlib.decompress(payload))
            change(archive)
            blob = zlib.compress(json.dumps(archive).encode())
        db.execute("UPDATE archives SET payload=? WHERE entry_id=?", (blob, entry_id))
        db.commit()
    finally:
        db.close()


@pytest.fixture
def locked(tmp_path: Path) -> tuple[Path, Path, Path, list[str], dict[str, str]]:
    """A folder of 6 archives, its lock and a warm cache (the server stopped)."""
    folder, lock, cache = tmp_path / "archives", tmp_path / "dataset.lock", tmp_path / "cache"
    ids = synthesise(folder, 6)
    with LocalServer(folder) as server:
        digests = _lock_and_digests(server.url, lock, cache)
    return folder, lock, cache, ids, digests


def test_an_offline_client_keeps_open_dataset_offline(locked: Any) -> None:
    # the server is stopped: an offline client given to open_dataset must not be sent there
    _, lock, cache, ids, digests = locked
    url = read_lock(lock)["deployment"]["url"]
    dataset = open_dataset(lock, client=Client(url, cache=cache, offline=True, retries=0))
    assert not dataset.checked_server and list(dataset.archives) == ids


def test_an_offline_replay_that_loses_entries_is_an_error(locked: Any, tmp_path: Path) -> None:
    _, lock, cache, ids, digests = locked
    empty = tmp_path / "empty"
    with pytest.raises(DatasetIncompleteError, match="6 of 6 entries") as caught:
        open_dataset(lock, cache=empty, offline=True)
    assert isinstance(caught.value, DatasetIntegrityError)
    assert list(caught.value.unavailable) == ids and caught.value.dataset is not None
    assert len(caught.value.dataset) == 0
    # one entry short: the error keeps the other five
    ArchiveCache(cache).delete(read_lock(lock)["deployment"]["url"], ids[2])
    with pytest.raises(DatasetIncompleteError, match=ids[2]) as caught:
        open_dataset(lock, cache=cache, offline=True)
    assert list(caught.value.dataset.archives) == ids[:2] + ids[3:]
    dataset = open_dataset(lock, cache=cache, offline=True, partial=True)
    assert list(dataset.unavailable) == [ids[2]] and "offline" in dataset.unavailable[ids[2]]
    assert {k: payload_hash(v) for k, v in dataset.archives.items()} == {k: v for k, v in digests.items() if k != ids[2]}


def test_cli_replay_that_loses_entries_exits_1_unless_partial(
    locked: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, lock, cache, ids, _ = locked
    out = tmp_path / "out.jsonl"
    ArchiveCache(cache).delete(read_lock(lock)["deployment"]["url"], ids[4])
    capsys.readouterr()
    assert main(["fetch", "--lock", str(lock), "--offline", "--cache-dir", str(cache), "-o", str(out)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"{ids[4]}: not in the cache (offline)"
    assert err[-1].startswith("archivemap fetch: 1 of 6 locked entries cannot be reproduced") and len(err) == 2
    assert not out.exists()  # exactly the dataset, or nothing
    assert main(["fetch", "--lock", str(lock), "--offline", "--cache-dir", str(cache), "-o", str(out), "--partial"]) == 0
    assert [json.loads(line)["entry_id"] for line in out.read_text().splitlines()] == ids[:4] + ids[5:]
    assert "5 entries, 1 not reproduced" in capsys.readouterr().err
    assert main(["fetch", "--lock", str(lock), "--offline", "--cache-dir", str(tmp_path / "empty"), "-o", str(out)]) == 1


def test_an_edited_required_is_detected(locked: Any) -> None:
    _, lock, cache, _, _ = locked
    data = json.loads(lock.read_text())
    data["required"] = {"metadata": "*"}  # required_hash left as it was
    lock.write_text(json.dumps(data))
    with pytest.raises(DatasetIntegrityError, match="required_hash"):
        read_lock(lock)
    with pytest.raises(DatasetIntegrityError, match=str(lock)):
        open_dataset(lock, cache=cache, offline=True)


def test_a_tampered_cached_payload_is_a_hash_mismatch(locked: Any) -> None:
    folder, lock, cache, ids, digests = locked
    _tamper(cache, ids[1], lambda archive: archive["metadata"].update(comment="edited"))
    with pytest.raises(DatasetIntegrityError, match=ids[1]) as caught:
        open_dataset(lock, cache=cache, offline=True)
    assert not isinstance(caught.value, DatasetIncompleteError)
    dataset = open_dataset(lock, cache=cache, offline=True, strict=False, partial=True)
    assert list(dataset.unavailable) == [ids[1]] and "payload hash" in dataset.unavailable[ids[1]]
    # online the server's copy decides: downloaded again, and the cache is repaired
    port = int(read_lock(lock)["deployment"]["url"].split(":")[2].split("/")[0])
    with LocalServer(folder, port=port) as server:
        dataset = open_dataset(lock, cache=cache)
        fetched = [r.body["query"]["entry_id:any"] for r in server.requests if r.path == "entries/archive/query"]
    assert fetched == [[ids[1]]]
    assert {k: payload_hash(v) for k, v in dataset.archives.items()} == digests
    assert len(open_dataset(lock, cache=cache, offline=True)) == len(ids)


def test_a_locked_replay_online_repairs_a_tampered_cached_copy(locked: Any) -> None:
    # Client.archives(lock=) / fetch --lock replay through dataset_raw: the server's copy decides
    folder, lock, cache, ids, digests = locked
    _tamper(cache, ids[2], lambda archive: archive["metadata"].update(comment="edited"))
    url = read_lock(lock)["deployment"]["url"]
    with pytest.raises(DatasetIntegrityError, match=r"changed in the cache \(offline\)"):
        list(dataset_raw(Client(url, offline=True), None, REQUIRED, lock=lock, cache=ArchiveCache(cache), offline=True))
    port = int(url.split(":")[2].split("/")[0])
    with LocalServer(folder, port=port):
        got = {state.entry_id: payload_hash(archive)
               for state, archive in dataset_raw(Client(url), None, REQUIRED, lock=lock, cache=ArchiveCache(cache))}
    assert got == digests
    assert len(open_dataset(lock, cache=cache, offline=True)) == len(ids)  # the cache was repaired


def test_a_wrong_payload_hash_in_the_lock_fails_offline_and_online(locked: Any) -> None:
    folder, lock, cache, ids, _ = locked
    data = json.loads(lock.read_text())
    data["entries"][3]["payload_hash"] = "sha256:" + "1" * 64
    lock.write_text(json.dumps(data))
    with pytest.raises(DatasetIntegrityError, match=ids[3]):
        open_dataset(lock, cache=cache, offline=True)
    port = int(data["deployment"]["url"].split(":")[2].split("/")[0])
    with LocalServer(folder, port=port):
        with pytest.raises(DatasetIntegrityError, match="server's payload hash"):
            open_dataset(lock, cache=cache)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d["entries"][0].pop("entry_id"), "entries[0].entry_id is missing"),
        (lambda d: d.pop("required"), "required is missing"),
        (lambda d: d.__setitem__("entries", None), "entries must be a list"),
        (lambda d: d.__setitem__("entries", [1, 2]), "entries[0] must be an object"),
        (lambda d: d.__setitem__("deployment", "x"), "deployment must be an object"),
        (lambda d: d["deployment"].pop("url"), "deployment.url"),
        (lambda d: d["entries"][1].pop("payload_hash"), "entries[1].payload_hash is missing"),
        (lambda d: d["entries"].append(dict(d["entries"][0])), "listed twice"),
        (lambda d: d.__setitem__("complete", "yes"), "complete must be"),
    ],
)
def test_a_malformed_lockfile_names_the_file_and_the_field(locked: Any, edit: Any, field: str) -> None:
    _, lock, cache, _, _ = locked
    data = json.loads(lock.read_text())
    edit(data)
    lock.write_text(json.dumps(data))
    with pytest.raises(ArchiveDataError) as caught:
        open_dataset(lock, cache=cache, offline=True)
    assert field in str(caught.value) and str(lock) in str(caught.value)


def test_a_lockfile_of_another_dataset_is_not_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, lock, cache = tmp_path / "archives", tmp_path / "dataset.lock", tmp_path / "cache"
    ids = synthesise(folder, 4)
    with LocalServer(folder) as server:
        _lock_and_digests(server.url, lock, cache)
        before = lock.read_bytes()
        others: list[tuple[str, Any, Any]] = [
            (server.url, {"entry_id": ids[0]}, REQUIRED),  # another query
            (server.url, None, {"metadata": "*"}),  # another required
        ]
        with LocalServer(folder) as elsewhere:
            others.append((elsewhere.url, None, REQUIRED))  # another deployment
            for url, query, required in others:
                with pytest.raises(LockfileConflictError, match="another dataset") as caught:
                    list(dataset_raw(Client(url), query, required, lock=lock, cache=ArchiveCache(cache)))
                assert str(lock) in str(caught.value) and "delete" in str(caught.value)
                assert lock.read_bytes() == before
        with pytest.raises(LockfileConflictError):
            list(Client(server.url, cache=cache).archives({"entry_id": ids[1]}, REQUIRED, lock=lock))
        capsys.readouterr()
        args = ["fetch", "--url", server.url, "--query", json.dumps({"entry_id": ids[0]}), "--lock", str(lock)]
        assert main([*args, "--cache-dir", str(cache), "-o", str(tmp_path / "x.jsonl")]) == 1
        assert "another dataset" in capsys.readouterr().err
        assert lock.read_bytes() == before
        # the same dataset still replays
        assert sorted(_lock_and_digests(server.url, lock, cache)) == ids


def test_a_locked_download_streams_and_leaves_a_lock_when_stopped(tmp_path: Path) -> None:
    folder, lock, cache = tmp_path / "archives", tmp_path / "dataset.lock", tmp_path / "cache"
    ids = synthesise(folder, 30)
    with LocalServer(folder, max_log_records=100_000) as server:
        client = Client(server.url)
        stream = dataset_raw(client, None, REQUIRED, lock=lock, cache=ArchiveCache(cache), batch_size=5)
        first, _ = next(stream)
        # the first entry comes with the first batch, not after the whole chunk of 30
        assert first.entry_id == ids[0] and len(archive_requests(server)) == 1
        assert read_lock(lock)["complete"] is False
        rest = [next(stream)[0].entry_id for _ in range(6)]
        stream.close()  # the caller stops early: the lock keeps what came
        data = read_lock(lock)
        assert data["complete"] is False and [item["entry_id"] for item in data["entries"]] == ids[:7] == [first.entry_id, *rest]
        server.clear_log()
        assert sorted(_lock_and_digests(server.url, lock, cache)) == ids
        # resumed: no entry that came before is asked for again (the count of requests
        # depends on how the stopped run's threads had split their batches)
        asked = {entry_id for r in archive_requests(server) for entry_id in r.body["query"].get("entry_id:any", [])}
        assert asked and not asked & set(ids[:7])
        assert read_lock(lock)["complete"]


def test_entries_gone_between_listing_and_download_are_said(tmp_path: Path) -> None:
    # listed, then deleted before their archives came (here: two ids the server never had,
    # which is what it answers for deleted ones): left out, and said (it was silent)
    folder = tmp_path / "archives"
    ids = synthesise(folder, 6)
    with LocalServer(folder) as server:
        client = Client(server.url)
        entries = list_entries(client, None)
        gone = [EntryState(f"deleted{k}", "synth_upload", entries[0].processing_time, None) for k in range(2)]
        listing = entries[:3] + gone + entries[3:]
        with pytest.warns(DatasetWarning, match=r"2 of 8 listed entries .* deleted0: .*deleted or hidden.*; deleted1"):
            got = [state.entry_id for state, _ in cached_archives(client, ArchiveCache(tmp_path / "c"), listing, REQUIRED)]
        missing: dict[str, str] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # asked for: told through the dict, not warned
            list(cached_archives(client, None, listing, REQUIRED, missing=missing))
    assert got == ids
    assert sorted(missing) == ["deleted0", "deleted1"]


def test_entries_the_server_fails_are_said_as_such_and_leave_the_lock_open(tmp_path: Path) -> None:
    # a 500 for one archive was reported as "deleted or hidden", and the lock said complete
    folder, lock, cache = tmp_path / "archives", tmp_path / "dataset.lock", tmp_path / "cache"
    ids = synthesise(folder, 6)
    with LocalServer(folder, faults=Faults(fail_entries={ids[2]})) as server:
        with pytest.warns(DatasetWarning, match=rf"{ids[2]}: the server could not produce its archive \(500"):
            got = [s.entry_id for s, _ in dataset_raw(Client(server.url, retries=0), None, REQUIRED,
                                                       lock=lock, cache=ArchiveCache(cache))]
        assert got == ids[:2] + ids[3:]
        data = read_lock(lock)
        assert data["complete"] is False and data["count"] == 5  # another run may get it
        server.update_faults(fail_entries=frozenset())
        assert [s.entry_id for s, _ in dataset_raw(Client(server.url), None, REQUIRED, lock=lock,
                                                     cache=ArchiveCache(cache))] == ids
    assert read_lock(lock)["complete"] is True
