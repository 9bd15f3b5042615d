"""Lazy remote resolution over real HTTP against the local NOMAD-compatible server."""

from __future__ import annotations

import copy
import json

import pytest

import archivemap
from archivemap.remote.client import Client
from archivemap._json import read_json
from archivemap.remote.fetch import open_archive
from archivemap.server import LocalServer

from .conftest import SAMPLES

FILES = sorted((SAMPLES / "archives").glob("*.archive.json"))


@pytest.fixture(scope="module")
def schema() -> archivemap.Schema:
    return archivemap.Schema(SAMPLES / "metainfo.json")


@pytest.fixture(scope="module")
def raw_archives() -> dict[str, dict]:
    return {read_json(p)["metadata"]["entry_id"]: read_json(p) for p in FILES}


@pytest.fixture()
def server(raw_archives):
    with LocalServer(raw_archives) as srv:
        yield srv


def _entry_with_workflow(raw_archives: dict[str, dict]) -> str:
    return next(eid for eid, a in raw_archives.items() if a.get("workflow"))


def test_seed_path_costs_exactly_one_extra_request(server, schema, raw_archives):
    entry_id = _entry_with_workflow(raw_archives)
    archive = open_archive(Client(server.url), entry_id, {"workflow": "*"}, schema=schema)
    server.clear_log()
    energy = archive.workflow[0].calculation_result_ref.energy.total.value.to("eV")
    assert len(server.requests) == 1
    ref = raw_archives[entry_id]["workflow"][0]["calculation_result_ref"]
    index = int(ref.rsplit("/", 1)[1])
    expected = raw_archives[entry_id]["run"][0]["calculation"][index]["energy"]["total"]["value"]
    assert energy.to("J").magnitude == pytest.approx(expected)
    # exactly the path that was read, each section first learned on the way with its m_def
    typed = {"m_def": "*"}
    assert server.requests[0].body == {
        "required": {
            "run[0]": {**typed, f"calculation[{index}]": {**typed, "energy": {**typed, "total": {**typed, "value": "*"}}}}
        }
    }
    # the fetched section is merged at its original index and is the same object later
    assert archive.run[0].calculation[index] is archive.workflow[0].calculation_result_ref
    assert len(server.requests) == 1


def test_prefetch_k_paths_costs_one_request(server, schema, raw_archives):
    entry_id = _entry_with_workflow(raw_archives)
    archive = open_archive(Client(server.url), entry_id, {"metadata": "*"}, schema=schema)
    n_calc = len(raw_archives[entry_id]["run"][0]["calculation"])
    paths = [f"run[0].calculation[{i}].energy" for i in range(n_calc)] + ["results.material", "run[0].system[0]"]
    server.clear_log()
    assert archive.prefetch(paths) == 1
    assert len(server.requests) == 1
    for i in range(n_calc):
        assert archive.run[0].calculation[i].energy.total.value is not None
    assert archive.results.material.elements == raw_archives[entry_id]["results"]["material"]["elements"]
    assert len(server.requests) == 1


def test_prefetch_of_every_item_is_refused_before_a_request(server, schema, raw_archives):
    # "[*]" was sent as an item named "*": a wasted request, then AbsentError
    from archivemap.errors import PathSyntaxError

    entry_id = _entry_with_workflow(raw_archives)
    archive = open_archive(Client(server.url), entry_id, {"metadata": "*"}, schema=schema)
    server.clear_log()
    with pytest.raises(PathSyntaxError, match=r"one item of a list.*batch"):
        archive.prefetch(iter(["run[0].system[0]", "run[0].calculation[*].temperature"]))
    assert server.requests == []
    assert archive.prefetch(iter(["run[0].system[0]"])) == 1  # a generator of paths is read once


def test_negative_index_is_resolved_on_the_client(server, schema, raw_archives):
    entry_id = _entry_with_workflow(raw_archives)
    archive = open_archive(Client(server.url), entry_id, {"workflow": "*"}, schema=schema)
    last = archive.m_resolve("#/run/0/system/-1")
    assert last.m_path() == f"/run/0/system/{len(raw_archives[entry_id]['run'][0]['system']) - 1}"
    for record in server.requests:
        assert "-1" not in json.dumps(record.body)


def test_cross_entry_reference_fetches_the_path_read(schema, raw_archives):
    archives = copy.deepcopy(raw_archives)
    (a_id, a), (b_id, b) = list(archives.items())[:2]
    b["metadata"]["upload_id"] = a["metadata"]["upload_id"]
    a["workflow"] = [{"calculation_result_ref": f"../upload/archive/{b_id}#/run/0/calculation/0"}]
    with LocalServer(archives) as srv:
        client = Client(srv.url)
        archive = open_archive(client, a_id, {"workflow": "*"}, schema=schema)
        srv.clear_log()
        target = archive.workflow[0].calculation_result_ref
        assert target.m_entry_id == b_id
        assert target.energy.total.value is not None
        assert len(srv.requests) == 1
        subtree_bytes = srv.requests[0].response_bytes
        srv.clear_log()
        client.archive_raw(b_id, "*")
        whole_bytes = srv.requests[0].response_bytes
    assert subtree_bytes < whole_bytes / 2


def test_partial_archive_round_trips_what_was_downloaded(server, schema, raw_archives):
    entry_id = _entry_with_workflow(raw_archives)
    archive = open_archive(Client(server.url), entry_id, {"workflow": "*", "metadata": "*"}, schema=schema)
    out = archive.to_dict()
    assert out["workflow"] == raw_archives[entry_id]["workflow"]
    assert "run" not in out


def test_graph_of_a_partial_archive_marks_unfetched_targets_remote(server, schema, raw_archives):
    from archivemap.graph import dangling_references, reference_graph

    entry_id = _entry_with_workflow(raw_archives)
    archive = open_archive(Client(server.url), entry_id, {"workflow": "*"}, schema=schema)
    archive.workflow[0].calculation_result_ref.m_settle()  # learns one calculation
    with pytest.warns(UserWarning, match="partly downloaded"):
        g = reference_graph(archive)
    assert dangling_references(g) == []
    assert any(d.get("remote") and d.get("error") == "not downloaded" for _, d in g.nodes(data=True))
    with pytest.warns(UserWarning, match="partly downloaded"):
        resolved = reference_graph(archive, resolve=True)
    assert not any(d.get("remote") for _, d in resolved.nodes(data=True))


def test_m_ref_archives_from_the_server_are_used_without_a_request(schema, raw_archives):
    archives = copy.deepcopy(raw_archives)
    (a_id, a), (b_id, b) = list(archives.items())[:2]
    b["metadata"]["upload_id"] = a["metadata"]["upload_id"]
    a["workflow"] = [{"calculation_result_ref": f"../upload/archive/{b_id}#/run/0/calculation/0"}]
    with LocalServer(archives) as srv:
        required = {"workflow": {"calculation_result_ref": {"energy": "*"}}}
        archive = open_archive(Client(srv.url), a_id, required, schema=schema)
        srv.clear_log()
        target = archive.workflow[0].calculation_result_ref
        assert target.m_entry_id == b_id
        assert target.energy.total.value is not None
        assert srv.requests == []  # the subset came with the first answer, in m_ref_archives


def test_first_answer_with_index_selection_is_re_anchored(server, schema, raw_archives):
    entry_id = next(eid for eid, a in raw_archives.items() if len(a["run"][0]["calculation"]) > 2)
    client = Client(server.url)
    archive = client.archive(entry_id, {"run[0]": {"calculation[2]": "*"}}, schema=schema)
    truth = raw_archives[entry_id]["run"][0]["calculation"][2]
    calc = archive.run[0].calculation[2]
    assert calc.m_reference("system_ref") == truth["system_ref"]
    assert calc.energy.total.value.to("J").magnitude == pytest.approx(truth["energy"]["total"]["value"])
    # NOMAD's own form, calculation[-1] (issue 9): placed where it is, after one listing
    last = client.archive(entry_id, {"run[0]": {"calculation[-1]": "*"}}, schema=schema).run[0].calculation[-1]
    n = len(raw_archives[entry_id]["run"][0]["calculation"])
    assert last.m_path() == f"/run/0/calculation/{n - 1}"
    assert last.m_reference("system_ref") == raw_archives[entry_id]["run"][0]["calculation"][-1]["system_ref"]
    for eid, root in client.archives({"entry_id": entry_id}, {"run[0]": {"calculation[2]": "*"}}, schema=schema):
        assert root.run[0].calculation[2].m_reference("system_ref") == truth["system_ref"]


@pytest.mark.shared
def test_custom_schema_of_another_entry_is_fetched_through_the_client():
    from .conftest import SHARED

    schema = archivemap.Schema(SHARED / "metainfo" / "nomad-2.0.0-metainfo.json")
    with LocalServer(SHARED / "archives") as srv:
        client = Client(srv.url)
        entry_id = read_json(SHARED / "archives" / "eln-refs-substance-list.recorded.archive.json")["metadata"]["entry_id"]
        archive = client.archive(entry_id, {"data": "*", "metadata": "*"}, schema=schema)
        local = archivemap.load(SHARED / "archives" / "eln-refs-substance-list.recorded.archive.json", schema,
                                archives=SHARED / "archives")
        assert type(archive.data).m_qualified_name == type(local.data).m_qualified_name
        assert [type(c).__name__ for c in archive.data.contents] == [type(c).__name__ for c in local.data.contents]


def test_attribute_access_fetches_exact_paths_not_subtrees(schema, raw_archives):
    archive_raw = copy.deepcopy(next(iter(raw_archives.values())))
    run = archive_raw["run"][0]
    run["calculation"] = [copy.deepcopy(run["calculation"][0]) for _ in range(50)]
    entry_id = archive_raw["metadata"]["entry_id"]
    with LocalServer({entry_id: archive_raw}) as server:
        archive = open_archive(Client(server.url), entry_id, {"metadata": "*"}, schema=schema)
        server.clear_log()
        value = archive.run[0].calculation[1].energy.total.value
        expected = run["calculation"][1]["energy"]["total"]["value"]
        assert value.to("J").magnitude == pytest.approx(expected)
        bodies = [r.body["required"] for r in server.requests]
        # nothing is asked about on the way: the value's path is fetched exactly, in one
        # request, every section first seen on the way with its m_def (its real class)
        typed = {"m_def": "*"}
        assert bodies == [
            {"run[0]": {**typed, "calculation[1]": {**typed, "energy": {**typed, "total": {**typed, "value": "*"}}}}}
        ]
        fetched = sum(r.response_bytes for r in server.requests)
        server.clear_log()
        Client(server.url).archive_raw(entry_id, {"run": "*"})  # what fetching the subtree costs
        assert fetched < server.requests[0].response_bytes / 5


def test_m_get_of_a_deep_path_costs_one_request(server, schema, raw_archives):
    entry_id = _entry_with_workflow(raw_archives)
    archive = open_archive(Client(server.url), entry_id, {"metadata": "*"}, schema=schema)
    server.clear_log()
    value = archive.m_get("run[0].calculation[0].energy.total.value")
    assert value is not None and len(server.requests) == 1


def test_iterating_a_partial_list_costs_one_request(schema, raw_archives):
    base = next(iter(raw_archives.values()))
    archive_raw = copy.deepcopy(base)
    calc = archive_raw["run"][0]["calculation"][0]
    archive_raw["run"][0]["calculation"] = [copy.deepcopy(calc) for _ in range(120)]
    entry_id = archive_raw["metadata"]["entry_id"]
    with LocalServer({entry_id: archive_raw}) as srv:
        archive = open_archive(Client(srv.url), entry_id, {"run[0]": {"calculation[5]": "*"}}, schema=schema)
        srv.clear_log()
        calcs = list(archive.run[0].calculation)
        assert len(calcs) == 120 and all(c is not None for c in calcs)
        assert len(srv.requests) <= 2  # the length, then every missing item at once


def test_with_fetching_off_missing_data_is_not_downloaded_error(server, schema, raw_archives):
    from archivemap.errors import AbsentError, NotDownloadedError

    entry_id = _entry_with_workflow(raw_archives)
    archive = Client(server.url).archive(entry_id, {"workflow": "*"}, schema=schema, fetch=False)
    server.clear_log()
    with pytest.raises(NotDownloadedError) as info:
        archive.workflow[0].calculation_result_ref  # noqa: B018
    assert isinstance(info.value, AttributeError)
    assert "required" in str(info.value) and "prefetch" in str(info.value)
    with pytest.raises(NotDownloadedError):
        archive.run  # noqa: B018
    with pytest.raises(AbsentError):  # downloaded, and not set: another error
        archive.m_get("workflow[7]")
    assert server.requests == []


@pytest.mark.parametrize("form", ["entries", "mainfile", "uploads", "url"])
def test_cross_entry_reference_forms_through_the_client(schema, raw_archives, form):
    archives = copy.deepcopy(raw_archives)
    (a_id, a), (b_id, b) = list(archives.items())[:2]
    upload = a["metadata"]["upload_id"]
    b["metadata"]["upload_id"] = upload
    if form == "mainfile":  # NOMAD's entry ids are the hash of upload id and mainfile
        from archivemap.archive.references import entry_id_from_mainfile

        del archives[b_id]
        b_id = b["metadata"]["entry_id"] = entry_id_from_mainfile(upload, b["metadata"]["mainfile"])
        archives[b_id] = b
    with LocalServer(archives) as srv:
        target = {
            "entries": f"../entries/{b_id}/archive",
            "mainfile": f"../upload/archive/mainfile/{b['metadata']['mainfile']}",
            "uploads": f"/uploads/{upload}/archive/{b_id}",
            "url": f"{srv.url}/uploads/{upload}/archive/{b_id}",
        }[form]
        a["workflow"] = [{"calculation_result_ref": f"{target}#/run/0/calculation/0"}]
        archive = Client(srv.url).archive(a_id, {"workflow": "*", "metadata": "*"}, schema=schema)
        ref = archive.workflow[0].calculation_result_ref
        assert ref.m_entry_id == b_id and ref.m_path() == "/run/0/calculation/0"
        assert ref.energy.total.value is not None
