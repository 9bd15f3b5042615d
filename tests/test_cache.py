"""The disk cache of archive data (archivemap.remote.cache), against a real LocalServer.

Done when (issue 10): a second run of the same bulk analysis makes no archive request, and a
partial cache plus a wider ``required`` downloads only the difference; both read off the
server's request log. Real disk (tmp folders), real HTTP on 127.0.0.1, no mocks.
"""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from archivemap.cli import main
from archivemap.errors import CacheDamagedError, NotDownloadedError
from archivemap.remote.cache import (
    ArchiveCache,
    cached_archives,
    list_entries,
    locked_hash,
    payload_hash,
    project,
    required_difference,
)
from archivemap.remote.client import Client
from archivemap.remote.dataset import open_dataset
from archivemap.server import LocalServer
from tests.conftest import SHARED

pytestmark = pytest.mark.shared

ARCHIVES = SHARED / "archives"
PROCESSED = "2025-01-01T00:00:00+00:00"


def synthesise(folder: Path, count: int, *, prefix: str = "synth") -> list[str]:
    """``count`` archives in ``folder``, copies of the shared real archives with new entry ids.

    The 2 MB LAMMPS trajectory is left out (it would dominate every download); each copy gets
    its own ``entry_id`` and a ``last_processing_time``, as NOMAD's metadata has.
    """
    sources = [p for p in sorted(ARCHIVES.glob("*.archive.json")) if "lammps" not in p.name]
    originals = [json.loads(p.read_text()) for p in sources]
    folder.mkdir(parents=True, exist_ok=True)
    ids = []
    for index in range(count):
        archive = dict(originals[index % len(originals)])
        entry_id = f"{prefix}{index:06d}"
        metadata = dict(archive.get("metadata") or {})
        metadata.update(entry_id=entry_id, last_processing_time=PROCESSED)
        metadata.setdefault("upload_id", "synth_upload")
        archive["metadata"] = metadata
        (folder / f"{entry_id}.json").write_text(json.dumps(archive))
        ids.append(entry_id)
    return ids


def archive_requests(server: LocalServer) -> list[Any]:
    """The archive downloads in the server's log (bulk and single-entry)."""
    return [r for r in server.requests if "archive" in r.path and r.path.startswith("entries")]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalServer, list[str]]]:
    folder = tmp_path_factory.mktemp("archives")
    ids = synthesise(folder, 60)
    with LocalServer(folder, max_log_records=100_000) as server:
        yield server, ids


REQUIRED = {"metadata": "*"}
WIDER = {"metadata": "*", "results": {"material": "*"}}


def run(client: Client, cache: ArchiveCache, required: Any) -> dict[str, str]:
    states = list_entries(client, None)
    return {state.entry_id: payload_hash(archive) for state, archive in cached_archives(client, cache, states, required)}


def test_second_run_makes_no_archive_request(served: tuple[LocalServer, list[str]], tmp_path: Path) -> None:
    server, ids = served
    cache = ArchiveCache(tmp_path / "cache")
    client = Client(server.url)
    server.clear_log()
    first = run(client, cache, REQUIRED)
    assert sorted(first) == ids
    assert archive_requests(server)
    server.clear_log()
    second = run(client, cache, REQUIRED)
    assert second == first
    assert archive_requests(server) == []
    assert cache.info()["entries"] == len(ids)


def test_wider_required_fetches_only_the_difference(served: tuple[LocalServer, list[str]], tmp_path: Path) -> None:
    server, ids = served
    cache = ArchiveCache(tmp_path / "cache")
    client = Client(server.url)
    run(client, cache, REQUIRED)
    server.clear_log()
    wider = run(client, cache, WIDER)
    asked = [r.body["required"] for r in archive_requests(server)]
    assert asked and all(spec == {"results": {"material": "*"}} for spec in asked)
    # the same data as a cold download of the wider spec
    cold = run(client, ArchiveCache(tmp_path / "cold"), WIDER)
    assert wider == cold
    server.clear_log()
    assert run(client, cache, WIDER) == wider
    assert archive_requests(server) == []


def test_reprocessed_entry_is_downloaded_again(tmp_path: Path) -> None:
    folder = tmp_path / "archives"
    ids = synthesise(folder, 5)
    cache = ArchiveCache(tmp_path / "cache")
    with LocalServer(folder) as server:
        port = server.port
        run(Client(server.url), cache, REQUIRED)
    changed = json.loads((folder / f"{ids[2]}.json").read_text())
    changed["metadata"]["last_processing_time"] = "2026-06-01T00:00:00+00:00"
    (folder / f"{ids[2]}.json").write_text(json.dumps(changed))
    with LocalServer(folder, port=port) as server:  # the same deployment URL
        url = server.url
        run(Client(url), cache, REQUIRED)
        fetched = [r.body["query"]["entry_id:any"] for r in server.requests if r.path == "entries/archive/query"]
    assert fetched == [[ids[2]]]
    row = cache.get(url, ids[2])
    assert row is not None and row.state == "2026-06-01T00:00:00+00:00"


def test_offline_answers_from_the_cache_or_raises(served: tuple[LocalServer, list[str]], tmp_path: Path) -> None:
    server, _ = served
    cache = ArchiveCache(tmp_path / "cache")
    client = Client(server.url)
    states = list_entries(client, None)
    list(cached_archives(client, cache, states[:10], REQUIRED))
    server.clear_log()
    got = list(cached_archives(client, cache, states[:10], REQUIRED, offline=True))
    assert len(got) == 10 and server.requests == []
    with pytest.raises(NotDownloadedError):
        list(cached_archives(client, cache, states[:11], REQUIRED, offline=True))
    with pytest.raises(NotDownloadedError):
        list(cached_archives(client, cache, states[:10], WIDER, offline=True))
    assert server.requests == []


def test_size_bound_evicts_least_recently_used(tmp_path: Path) -> None:
    cache = ArchiveCache(tmp_path / "cache", size_limit=40_000)  # about three rows
    blob = {"data": [f"{i}-{i * 7919 % 104729}" for i in range(2000)]}
    for index in range(10):
        cache.put("http://x/api/v1", f"e{index}", "t", None, "*", {**blob, "i": index})
        cache.get("http://x/api/v1", "e0")  # keep e0 recently used
    info = cache.info()
    assert info["bytes"] <= 40_000 and info["entries"] < 10
    assert cache.get("http://x/api/v1", "e0") is not None
    assert cache.get("http://x/api/v1", "e1") is None
    assert cache.get("http://x/api/v1", "e9") is not None


def _writer(directory: str, worker: int, count: int) -> None:
    cache = ArchiveCache(directory)
    for index in range(count):
        cache.add("http://x/api/v1", f"e{index}", "t", None, {f"w{worker}": "*"}, {f"w{worker}": {"n": index}})


def test_several_processes_write_at_once(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(str(tmp_path), worker, 40)) for worker in range(3)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
        assert process.exitcode == 0
    cache = ArchiveCache(tmp_path)
    for index in range(40):
        row = cache.get("http://x/api/v1", f"e{index}")
        assert row is not None
        # every process's part was grafted in: no lost update under concurrent writers
        assert row.archive == {f"w{w}": {"n": index} for w in range(3)}
        assert required_difference({"w0": "*", "w1": "*", "w2": "*"}, row.required) is None


def _opener(directory: str, barrier: Any, worker: int) -> None:
    barrier.wait()  # all at once, on a cache nobody has made yet
    ArchiveCache(directory).put("http://x/api/v1", f"e{worker}", "t", None, "*", {"w": worker})


def test_processes_opening_a_new_cache_at_once(tmp_path: Path) -> None:
    """Dask workers opening one new cache together: switching the file to WAL was answered
    "database is locked" at once (no busy wait) in 3 rounds of 10 before."""
    context = multiprocessing.get_context("fork")
    for round_ in range(10):
        directory = tmp_path / f"cache{round_}"
        barrier = context.Barrier(8)
        workers = [context.Process(target=_opener, args=(str(directory), barrier, w)) for w in range(8)]
        for process in workers:
            process.start()
        for process in workers:
            process.join(120)
        assert [process.exitcode for process in workers] == [0] * 8
        cache = ArchiveCache(directory)
        assert all(cache.get("http://x/api/v1", f"e{w}") is not None for w in range(8))


def test_cache_pickles_as_its_folder(tmp_path: Path) -> None:
    import pickle

    cache = ArchiveCache(tmp_path, size_limit=12345)
    copy = pickle.loads(pickle.dumps(cache))
    assert copy.directory == cache.directory and copy.size_limit == 12345


def test_required_difference_and_projection() -> None:
    assert required_difference({"a": "*"}, {"a": "*", "b": "*"}) is None
    assert required_difference({"a": "*", "b": {"c": "*"}}, {"a": "*"}) == {"b": {"c": "*"}}
    assert required_difference({"b": {"c": "*", "d": "*"}}, {"b": {"c": "*"}}) == {"b": {"d": "*"}}
    assert required_difference("*", {"a": "*"}) == "*"
    assert required_difference({"a": "*"}, "*") is None
    assert project({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": "*"}}) == {"b": {"c": 2}}


# --------------------------------------------------------------------------- Client hooks


@pytest.fixture(scope="module")
def schema() -> Any:
    from archivemap.archive.load import default_schema

    return default_schema()


def test_client_archives_through_the_cache(served: tuple[LocalServer, list[str]], tmp_path: Path, schema: Any) -> None:
    server, ids = served
    client = Client(server.url, cache=tmp_path / "cache")
    server.clear_log()
    first = {entry_id: root.metadata.entry_id for entry_id, root in client.archives(None, REQUIRED, schema=schema)}
    assert sorted(first) == ids and all(k == v for k, v in first.items())
    assert archive_requests(server)
    server.clear_log()
    again = [entry_id for entry_id, _ in Client(server.url, cache=tmp_path / "cache").archives(None, REQUIRED, schema=schema)]
    assert again == ids
    assert archive_requests(server) == []


def test_offline_client(served: tuple[LocalServer, list[str]], tmp_path: Path, schema: Any) -> None:
    server, ids = served
    online = Client(server.url, cache=tmp_path / "cache")
    list(online.archives(None, REQUIRED, schema=schema))
    server.clear_log()
    offline = Client(server.url, cache=tmp_path / "cache", offline=True)
    root = offline.archive(ids[0], REQUIRED, schema=schema)
    assert root.metadata.entry_id == ids[0]
    with pytest.raises(NotDownloadedError):
        offline.archive(ids[0], WIDER, schema=schema)
    assert server.requests == []


def test_client_with_cache_pickles_with_it(tmp_path: Path) -> None:
    import pickle

    client = Client("http://127.0.0.1:9/api/v1", cache=tmp_path / "cache", offline=True)
    copy = pickle.loads(pickle.dumps(client))
    assert copy.cache is not None and copy.cache.directory == tmp_path / "cache" and copy.offline


def test_client_archives_with_lock(served: tuple[LocalServer, list[str]], tmp_path: Path, schema: Any) -> None:
    from archivemap.remote.lockfile import read_lock

    server, ids = served
    lock = tmp_path / "dataset.lock"
    client = Client(server.url, cache=tmp_path / "cache")
    got = [entry_id for entry_id, _ in client.archives(None, REQUIRED, schema=schema, lock=lock)]
    assert got == ids
    data = read_lock(lock)
    assert data["complete"] and [item["entry_id"] for item in data["entries"]] == ids
    assert data["schema_hash"] == schema.identity
    dataset = open_dataset(lock, cache=tmp_path / "cache", offline=True)
    assert list(dataset.archives) == ids and not dataset.unavailable


def test_a_projection_keeps_the_class_of_the_sections_it_selects() -> None:
    # NOMAD answers {"workflow2": {"results": ...}} with workflow2's m_def: the class is data
    row = {
        "workflow2": {"m_def": "simulationworkflowschema.single_point.SinglePoint", "results": {"n_scf_steps": 3},
                      "method": {"m_def": "x.Method"}},
        "run": [{"program": {"name": "exciting"}}],
    }
    assert project(row, {"workflow2": {"results": "*"}}) == {
        "workflow2": {"m_def": "simulationworkflowschema.single_point.SinglePoint", "results": {"n_scf_steps": 3}}
    }
    assert project(row, {"metadata": "*"}) == {}


def test_integers_beyond_64_bits_survive_the_cache_and_its_hashes(tmp_path: Path) -> None:
    """A big integer is stored and read back exact (orjson alone refused to write it)."""
    cache = ArchiveCache(tmp_path / "cache")
    archive = {"metadata": {"entry_id": "e0", "big": 2**70 + 1, "negative_big": -(2**80) - 3}, "x": [0.1, 1e300]}
    cache.put("http://x/api/v1", "e0", "t", None, "*", archive)
    again = ArchiveCache(tmp_path / "cache").get("http://x/api/v1", "e0")
    assert again is not None and again.archive == archive
    assert type(again.archive["metadata"]["big"]) is int
    assert payload_hash(archive) != payload_hash({**archive, "metadata": {**archive["metadata"], "big": 2**70}})
    assert payload_hash(archive) == payload_hash(json.loads(json.dumps(archive)))


# --------------------------------------------------------------------------- damage


def test_a_damaged_cache_file_is_a_typed_error_and_can_be_cleared(
    served: tuple[LocalServer, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, ids = served
    folder = tmp_path / "cache"
    filled = ArchiveCache(folder)
    run(Client(server.url), filled, REQUIRED)
    filled.close()  # no process holds the file when it is damaged (a closing one would checkpoint)
    (folder / "archives.sqlite3").write_text("garbage\n")
    for journal in folder.glob("archives.sqlite3-*"):
        journal.unlink()
    cache = ArchiveCache(folder)  # made, so that clear() can reach the file
    with pytest.raises(CacheDamagedError, match="cache clear") as caught:
        cache.info()
    assert caught.value.path == str(folder / "archives.sqlite3") and str(folder) in str(caught.value)
    with pytest.raises(CacheDamagedError):
        run(Client(server.url, cache=folder), ArchiveCache(folder), REQUIRED)
    capsys.readouterr()
    assert main(["cache", "info", "--cache-dir", str(folder)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "CacheDamagedError" in err[0] and "archivemap cache clear" in err[0]
    assert main(["cache", "clear", "--cache-dir", str(folder), "--url", server.url]) == 1
    assert main(["cache", "clear", "--cache-dir", str(folder)]) == 0
    assert "damaged" in capsys.readouterr().out
    assert ArchiveCache(folder).info()["entries"] == 0
    # the Python clear does the same
    run(Client(server.url), cache, REQUIRED)
    cache.close()
    (folder / "archives.sqlite3").write_bytes(b"\0" * 4096)
    for journal in folder.glob("archives.sqlite3-*"):
        journal.unlink()
    assert ArchiveCache(folder).clear() == 0
    assert sorted(run(Client(server.url), ArchiveCache(folder), REQUIRED)) == ids


def test_a_corrupt_payload_is_a_cache_miss(served: tuple[LocalServer, list[str]], tmp_path: Path) -> None:
    server, ids = served
    folder = tmp_path / "cache"
    cache = ArchiveCache(folder)
    client = Client(server.url)
    first = run(client, cache, REQUIRED)
    db = sqlite3.connect(folder / "archives.sqlite3")
    db.execute("UPDATE archives SET payload=? WHERE entry_id=?", (b"garbage", ids[7]))
    db.execute("UPDATE archives SET payload=? WHERE entry_id=?", (b"x\x9c" + b"\0" * 8, ids[8]))
    db.commit()
    db.close()
    states = list_entries(client, None)
    with pytest.raises(NotDownloadedError):  # offline: a miss, not a zlib.error
        list(cached_archives(client, cache, states, REQUIRED, offline=True))
    # the first bad row met was dropped (and the offline run stopped there)
    assert cache.info()["entries"] == len(ids) - 1
    server.clear_log()
    assert run(client, cache, REQUIRED) == first  # online: both downloaded again, nothing else
    fetched = {i for r in server.requests if r.path == "entries/archive/query" for i in r.body["query"]["entry_id:any"]}
    assert fetched == {ids[7], ids[8]}
    assert cache.info()["entries"] == len(ids)


def test_cached_archives_stream_per_entry(served: tuple[LocalServer, list[str]], tmp_path: Path, schema: Any) -> None:
    server, ids = served
    cache = ArchiveCache(tmp_path / "cache")
    client = Client(server.url, cache=tmp_path / "cache")
    server.clear_log()
    stream = iter(client.archives(None, REQUIRED, schema=schema, batch_size=5))
    assert next(stream)[0] == ids[0]
    # one batch, not the whole chunk of 60 entries (12 batches)
    assert len(archive_requests(server)) == 1
    assert [entry_id for entry_id, _ in stream] == ids[1:]
    total = len(archive_requests(server))
    cold = tmp_path / "cold"
    server.clear_log()
    list(cached_archives(client, ArchiveCache(cold), list_entries(client, None), REQUIRED, batch_size=5))
    assert total == len(archive_requests(server))  # the same requests as whole chunks
    # cached and downloaded entries mixed: still in order
    for entry_id in ids[::3]:
        cache.delete(server.url, entry_id)
    got = [state.entry_id for state, _ in cached_archives(client, cache, list_entries(client, None), REQUIRED)]
    assert got == ids
    # an id listed twice is given twice, and the entries after it are not lost
    states = list_entries(client, None)[:6]
    twice = states[:2] + states[1:]
    got = [state.entry_id for state, _ in cached_archives(client, cache, twice, REQUIRED)]
    assert got == [state.entry_id for state in twice]


THROUGH_REFERENCES = {
    "workflow2": {"results": {"calculation_result_ref": {"energy": {"total": {"value": "*"}},
                                                         "system_ref": {"atoms": {"labels": "*"}}}}},
    "results": {"material": {"chemical_formula_hill": "*"}},
}


def _energies(pairs: Any) -> dict[str, Any]:
    out = {}
    for entry_id, root in pairs:
        calc = root.workflow2.results.calculation_result_ref if root.workflow2 else None
        out[entry_id] = (None if not calc or not calc.energy or not calc.energy.total
                         else calc.energy.total.value.to("eV").magnitude)
    return out


def test_what_a_spec_reaches_through_references_is_cached_and_locked(
    served: tuple[LocalServer, list[str]], tmp_path: Path, schema: Any
) -> None:
    # the targets NOMAD places for a spec's references (run[0].calculation[k].energy) were
    # cut from what the cache gave back: every hop became a request, warm cache or not
    server, ids = served
    server.clear_log()
    expected = _energies(Client(server.url).archives(None, THROUGH_REFERENCES, schema=schema))
    assert sum(value is not None for value in expected.values()) >= 5  # the DFT entries
    cold = len(archive_requests(server))
    client = Client(server.url, cache=tmp_path / "cache")
    lock = tmp_path / "energies.lock"
    server.clear_log()
    assert _energies(client.archives(None, THROUGH_REFERENCES, schema=schema, lock=lock)) == expected
    assert len(archive_requests(server)) <= cold  # the bulk downloads only: no follow-ups
    server.clear_log()
    assert _energies(client.archives(None, THROUGH_REFERENCES, schema=schema)) == expected
    assert archive_requests(server) == []  # warm: answered by the cache, hops included
    dataset = open_dataset(lock, cache=tmp_path / "cache", offline=True)
    assert _energies(dataset.items(schema)) == expected  # the pinned dataset holds them too


def test_a_lock_verifies_whatever_else_the_cache_row_holds(tmp_path: Path, schema: Any) -> None:
    # whether a row holds a reference's target depends on other specs (the server does not
    # place a target inside a list the spec selects): the lock's hash must not
    folder = tmp_path / "archives"
    folder.mkdir()
    source = ARCHIVES / "exciting-ag-singlepoint.parsed.archive.json"
    (folder / source.name).write_bytes(source.read_bytes())
    spec = {"run": {"calculation": {"system_ref": {"atoms": {"labels": "*"}}}}}
    lock, cache = tmp_path / "x.lock", tmp_path / "cache"
    with LocalServer(folder) as server:
        client = Client(server.url, cache=cache)
        first = {e: a.to_dict() for e, a in client.archives(None, spec, schema=schema, lock=lock)}
        list(client.archives(None, {"run": {"system": {"atoms": "*"}}}, schema=schema))  # widens the row
        again = {e: a.to_dict() for e, a in client.archives(None, spec, schema=schema, lock=lock)}
    dataset = open_dataset(lock, cache=cache, offline=True)  # was: "widened by another required"
    assert list(dataset.archives) == list(first) == list(again)
    entry = next(iter(first))
    labels = dataset.archive(entry, schema).run[0].calculation[0].system_ref.atoms.labels
    assert list(labels) == ["Ag"]


def test_targets_are_placed_at_their_own_paths_without_touching_the_row() -> None:
    calcs = [{"system_ref": f"#/run/0/system/{k}", "x": k} for k in range(2000)]
    systems = [{"m_def": "S", "atoms": {"labels": ["H"], "positions": [[0.0, 0.0, 0.0]]}} for _ in range(2000)]
    row = {"run": [{"calculation": calcs, "system": systems}]}
    out = project(row, {"run": {"calculation": {"system_ref": {"atoms": {"labels": "*"}}}}})
    assert out["run"][0]["system"] == [{"m_def": "S", "atoms": {"labels": ["H"]}}] * 2000
    assert out["run"][0]["calculation"][7] == {"system_ref": "#/run/0/system/7"}
    assert row["run"][0]["system"][0]["atoms"]["positions"] == [[0.0, 0.0, 0.0]]  # the row as it was
    # the hash is over the names (references spelled as paths, as NOMAD answers them)
    assert locked_hash(out, {"run": {"calculation": {"system_ref": {"atoms": {"labels": "*"}}}}}) == payload_hash(
        {"run": [{"calculation": [{"system_ref": c["system_ref"][1:]} for c in calcs]}]})


def test_a_warm_run_answers_chained_references_without_requests(tmp_path: Path, schema: Any) -> None:
    # calculation_result_ref -> system_ref -> atoms: a key asked for and absent at the end of
    # the chain is absent, not a reason to ask the server again
    spec = {"workflow2": {"results": {"calculation_result_ref": {
        "energy": {"total": "*"}, "system_ref": {"atoms": {"labels": "*", "velocities": "*"}}}}}}
    with LocalServer(ARCHIVES, max_log_records=10_000) as server:
        client = Client(server.url, cache=tmp_path / "cache")
        query = {"entry_id": "CmquSFEUFC5rJgArbVMISSiR8_yz"}  # exciting: a single point
        list(client.archives(query, spec, schema=schema))
        server.clear_log()
        for _, root in client.archives(query, spec, schema=schema):
            atoms = root.workflow2.results.calculation_result_ref.system_ref.atoms
            assert list(atoms.labels) == ["Ag"] and atoms.velocities is None
        assert archive_requests(server) == []


@pytest.mark.parametrize("spec", [
    {"workflow2": {"results": {"calculation_result_ref": {"energy": {"total": "*"}}}}},  # spelled /run/0/...
    {"run[0]": {"calculation[0]": {"energy": "*"}}},  # a row filled by "*" holds the other items
    {"run": {"calculation": {"system_ref": {"atoms": {"labels": "*"}}}}},  # targets not placed
])
def test_a_locked_hash_is_the_same_fresh_or_from_a_row_filled_by_star(tmp_path: Path, spec: Any) -> None:
    with LocalServer(ARCHIVES) as server:
        client = Client(server.url)
        entries = [e for e in list_entries(client, None) if e.entry_id == "CmquSFEUFC5rJgArbVMISSiR8_yz"]
        fresh = [locked_hash(a, spec) for _, a in cached_archives(client, None, entries, spec)]
        cache = ArchiveCache(tmp_path / "cache")
        list(cached_archives(client, cache, entries, "*"))  # the whole archive first
        warm = [locked_hash(a, spec) for _, a in cached_archives(client, cache, entries, spec)]
    assert fresh == warm and len(fresh) == 1
