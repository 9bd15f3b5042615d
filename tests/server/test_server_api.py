"""NOMAD's API details the server reproduces (issue 13): schema-driven ``required``, query
validation and echo, pagination limits, aggregations, GET forms and NOMAD's 500 answers.

Everything here runs on synthetic archives and a small synthetic metainfo export, so it
needs no ``../shared``; the conformance replay (test_conformance.py) checks the same against
NOMAD's own answers over real data.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from archivemap.server import LocalServer
from archivemap.server._schema import Schema


def _section(name: str, quantities: list[dict[str, Any]] = (), sub_sections: list[dict[str, Any]] = (), base: list[str] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    section: dict[str, Any] = {"name": name, "quantities": list(quantities), "sub_sections": list(sub_sections)}
    if base:
        section["base_sections"] = list(base)
    return section


def _quantity(name: str, kind: str = "python", data: Any = "str", shape: list[Any] | None = None, search: str | None = None) -> dict[str, Any]:
    quantity: dict[str, Any] = {"name": name, "type": {"type_kind": kind, "type_data": data}}
    if shape is not None:
        quantity["shape"] = shape
    if search is not None:
        quantity["m_annotations"] = {"elasticsearch": [search]}
    return quantity


def _sub(name: str, target: str, repeats: bool = False) -> dict[str, Any]:
    return {"name": name, "sub_section": target, "repeats": repeats}


# A tiny metainfo export in the layout of `nomad dev metainfo`: references are positions.
DATA, DATAMODEL, RUN, WORKFLOW = 0, 1, 2, 3
ARCHIVE_SECTION = f"/packages/{DATA}/section_definitions/0"
ENTRY_DATA = f"/packages/{DATA}/section_definitions/1"
ENTRY_METADATA = f"/packages/{DATAMODEL}/section_definitions/0"
RUN_SECTION = f"/packages/{RUN}/section_definitions/0"
SYSTEM = f"/packages/{RUN}/section_definitions/1"
CALCULATION = f"/packages/{RUN}/section_definitions/2"
LINK = f"/packages/{WORKFLOW}/section_definitions/0"
WORKFLOW_SECTION = f"/packages/{WORKFLOW}/section_definitions/1"
EXPORT: dict[str, Any] = {
    "packages": [
        {"name": "nomad.datamodel.data", "section_definitions": [_section("ArchiveSection"), _section("EntryData", base=[ARCHIVE_SECTION])]},
        {
            "name": "nomad.datamodel.datamodel",
            "section_definitions": [
                _section(
                    "EntryMetadata",
                    [
                        _quantity("entry_id", search="entry_id"),
                        _quantity("upload_id", search="upload_id"),
                        _quantity("mainfile", search="mainfile"),
                        _quantity("target_path"),
                    ],
                ),
                _section(
                    "EntryArchive",
                    [_quantity("processing_logs", "custom", "nomad.metainfo.data_type.Any", ["0..*"])],
                    [
                        _sub("run", RUN_SECTION, True),
                        _sub("data", ENTRY_DATA),
                        _sub("metadata", ENTRY_METADATA),
                        _sub("workflow2", WORKFLOW_SECTION),
                    ],
                    [ARCHIVE_SECTION],
                ),
            ],
        },
        {
            "name": "runschema.run",
            "section_definitions": [
                _section("Run", sub_sections=[_sub("system", SYSTEM, True), _sub("calculation", CALCULATION, True)]),
                _section("System", [_quantity("label"), _quantity("n_atoms", "python", "int")]),
                _section(
                    "Calculation",
                    [_quantity("energy", "numpy", "float64"), _quantity("system_ref", "reference", SYSTEM), _quantity("input_file")],
                ),
            ],
        },
        {
            "name": "nomad.datamodel.metainfo.workflow",
            "section_definitions": [
                _section("Link", [_quantity("name"), _quantity("section", "reference", ARCHIVE_SECTION)], base=[ARCHIVE_SECTION]),
                _section("Workflow", sub_sections=[_sub("inputs", LINK, True)], base=[ENTRY_DATA]),
            ],
        },
    ]
}


def schema_archive(entry_id: str = "S1", upload_id: str = "upS") -> dict[str, Any]:
    return {
        "metadata": {"entry_id": entry_id, "upload_id": upload_id, "mainfile": f"{entry_id}.json", "main_author": "u-1", "coauthors": ["u-2"]},
        "processing_logs": [{"event": "parsed", "step": "parser"}],
        "run": [
            {
                "bogus_key": "not in the schema",
                "system": [{"label": "bulk", "n_atoms": 2}],
                "calculation": [{"energy": -1.5, "system_ref": "#/run/0/system/0", "input_file": "/run/0/calculation/0"}],
            }
        ],
        "workflow2": {"inputs": [{"name": "in", "section": "#/run/0/system/0"}]},
    }


@pytest.fixture(scope="module")
def metainfo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("metainfo") / "tiny-metainfo.json.gz"
    path.write_bytes(gzip.compress(json.dumps(EXPORT).encode()))
    return path


@pytest.fixture(scope="module")
def schema_server(metainfo_file: Path, make_archive: Any) -> Iterator[LocalServer]:
    with LocalServer({"S1": schema_archive(), "entryA": make_archive("entryA")}, metainfo=metainfo_file) as server:
        yield server


def archive_of(server: LocalServer, required: Any, entry_id: str = "S1") -> requests.Response:
    return requests.post(f"{server.url}/entries/{entry_id}/archive/query", json={"required": required}, timeout=10)


# -- schema-driven required ------------------------------------------------------------------


def test_schema_reads_inheritance_and_targets() -> None:
    schema = Schema.from_export(EXPORT)
    run = schema.entry_archive.all_properties["run"]
    assert schema.section("runschema.run.Run") is getattr(run, "section")
    workflow = schema.section("nomad.datamodel.metainfo.workflow.Workflow")
    assert workflow is not None and "inputs" in workflow.all_properties
    assert schema.search_quantities == {"entry_id": False, "upload_id": False, "mainfile": False}


def test_keys_the_schema_lacks_are_dropped(schema_server: LocalServer) -> None:
    answer = archive_of(schema_server, {"run": {"*": "*"}}).json()["data"]["archive"]
    assert "bogus_key" not in answer["run"][0] and answer["run"][0]["system"] == [{"label": "bulk", "n_atoms": 2}]
    # "*" on the section itself hands out the stored data, unknown keys included (as NOMAD)
    assert archive_of(schema_server, {"run": "*"}).json()["data"]["archive"]["run"][0]["bogus_key"] == "not in the schema"


def test_include_resolved_follows_only_reference_quantities(schema_server: LocalServer) -> None:
    answer = archive_of(schema_server, {"run[0]": {"calculation": "include-resolved"}}).json()["data"]["archive"]
    calc = answer["run"][0]["calculation"][0]
    assert calc["system_ref"] == "/run/0/system/0"  # resolved and placed, string rewritten
    assert calc["input_file"] == "/run/0/calculation/0"  # a plain string quantity stays untouched


def test_generic_reference_matches_nothing(schema_server: LocalServer) -> None:
    answer = archive_of(schema_server, {"workflow2": {"inputs": {"section": {"label": "*"}}}}).json()["data"]["archive"]
    assert answer["run"] == [{"system": [{}]}]  # typed ArchiveSection: NOMAD answers {}
    assert answer["workflow2"]["inputs"] == [{"section": "/run/0/system/0"}]


def test_nomad_500s_carry_nomads_exception_and_an_explanation(schema_server: LocalServer) -> None:
    cases = {
        "AttributeError": {"processing_logs": {"step": "*"}},  # a spec on a JSON quantity
        "ValueError": {"run[1-2]": "*"},  # passes the key pattern, fails int()
        "AssertionError": {"run": 3},  # neither directive nor spec
        "TypeError": {"run": {"system": {"n_atoms": "include-resolved"}}},  # include-resolved on a number
    }
    for exception_class, required in cases.items():
        response = archive_of(schema_server, required)
        assert response.status_code == 500, required
        detail = response.json()["detail"]
        assert detail["reason"] == "Unexpected exception while handling your request"
        assert detail["exception_class"] == exception_class
        assert "NOMAD" in detail["exception_traceback"]
    assert requests.get(f"{schema_server.url}/entries/S1", timeout=10).status_code == 200  # alive


def test_required_union_errors_like_pydantic(schema_server: LocalServer) -> None:
    response = archive_of(schema_server, [1])
    assert response.status_code == 422
    assert [item["loc"] for item in response.json()["detail"]] == [["body", "required", "str"], ["body", "required", "dict[str,any]"]]


def test_raw_file_references_are_keyed_by_mainfile(make_archive: Any) -> None:
    target = make_archive("T", "up1")  # mainfile T/vasprun.xml
    source = {"metadata": {"entry_id": "S", "upload_id": "up1"}, "data": {"ref": "../upload/raw/T/vasprun.xml#/run/0/system/0"}}
    # no schema: "data.ref" is defined nowhere, and a string that looks like a reference resolves
    with LocalServer({"T": target, "S": source}, metainfo=None) as server:
        answer = archive_of(server, {"data": {"ref": {"type": "*"}}}, "S").json()["data"]["archive"]
    assert answer["data"]["ref"] == "../uploads/up1/archive/T/vasprun.xml#/run/0/system/0"
    assert answer["m_ref_archives"]["../uploads/up1/archive/T/vasprun.xml"]["run"] == [{"system": [{"type": "bulk"}]}]


# -- search documents --------------------------------------------------------------------------


def test_search_document_users_are_objects(schema_server: LocalServer) -> None:
    item = requests.get(f"{schema_server.url}/entries/S1", timeout=10).json()["data"]
    assert item["main_author"] == {"user_id": "u-1", "name": "u-1"}
    assert [user["user_id"] for user in item["authors"]] == ["u-1", "u-2"]
    assert [user["user_id"] for user in item["writers"]] == ["u-1", "u-2"]
    assert [user["user_id"] for user in item["viewers"]] == ["u-1", "u-2"]
    assert "coauthors" not in item  # NOMAD does not index coauthors
    found = requests.post(f"{schema_server.url}/entries/query", json={"query": {"authors.user_id": "u-2"}}, timeout=10)
    assert [d["entry_id"] for d in found.json()["data"]] == ["S1"]


# -- query validation and echo --------------------------------------------------------------


def post(server: LocalServer, body: Any, path: str = "entries/query") -> requests.Response:
    return requests.post(f"{server.url}/{path}", json=body, timeout=10)


@pytest.mark.parametrize(
    ("query", "echo"),
    [
        (None, {"and": []}),
        ({}, {"and": []}),
        ({"entry_id": "entryA"}, {"name": "entry_id", "value": "entryA"}),
        ({"results.material.elements": ["Si"]}, {"name": "results.material.elements", "value": {"all": ["Si"]}}),
        ({"results.material.elements:any": ["Si"]}, {"name": "results.material.elements", "value": {"any": ["Si"]}}),
        ({"entry_id": {"gte": "a", "lt": "z"}}, {"name": "entry_id", "value": {"lt": "z", "gte": "a"}}),
        (
            {"upload_id": "up1", "entry_id": "entryA"},
            {"and": [{"name": "upload_id", "value": "up1"}, {"name": "entry_id", "value": "entryA"}]},
        ),
        ({"results": {"material": {"elements": "Si"}}}, {"and": [{"and": [{"name": "results.material.elements", "value": "Si"}]}]}),
        ({"not": {"entry_id": "x"}}, {"not": {"name": "entry_id", "value": "x"}}),
        (
            {"entry_references.target_entry_id": "x"},
            {"prefix": "entry_references", "query": {"name": "target_entry_id", "value": "x"}},
        ),
    ],
)
def test_query_echo_is_normalised(small_server: LocalServer, query: Any, echo: Any) -> None:
    body = {} if query is None else {"query": query}
    response = post(small_server, body)
    assert response.status_code == 200, response.text
    assert response.json()["query"] == echo


def test_query_errors(small_server: LocalServer) -> None:
    duplicate = {"entry_id": "entryA", "entry_id:any": ["entryB"]}
    response = post(small_server, {"query": duplicate})
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"type": "duplicate_quantity", "loc": ["body", "query"], "msg": "A quantity can only appear once in a query", "input": duplicate}
    ]
    assert post(small_server, {"query": duplicate}, "entries/archive/query").status_code == 422
    unknown_op = post(small_server, {"query": {"entry_id:some": "x"}}).json()
    assert unknown_op["detail"] == [{"msg": "entry_id:some is not a doc quantity", "loc": [["entry_id:some"]]}]
    not_a_dict = post(small_server, {"query": "entry_id=x"})
    assert not_a_dict.status_code == 422 and len(not_a_dict.json()["detail"]) == 7


def test_body_must_be_json(small_server: LocalServer) -> None:
    url = f"{small_server.url}/entries/query"
    form = requests.post(url, data='{"query": {"entry_id": "entryA"}}', headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)
    assert form.status_code == 422  # NOMAD: never a silently ignored query
    assert form.json()["detail"][0]["type"] == "model_attributes_type"
    missing = requests.post(url, timeout=10)
    assert missing.status_code == 422 and missing.json()["detail"][0]["type"] == "missing"
    untyped = requests.post(url, data=b'{"query": {"entry_id": "entryA"}}', timeout=10)  # no content type: JSON
    assert [d["entry_id"] for d in untyped.json()["data"]] == ["entryA"]


# -- pagination --------------------------------------------------------------------------------


def test_result_window_and_page_size_cap(small_server: LocalServer) -> None:
    def detail(pagination: dict[str, Any]) -> Any:
        response = post(small_server, {"pagination": pagination})
        assert response.status_code == 422, pagination
        return response.json()["detail"][0]

    assert detail({"page_size": 10_001})["type"] == "invalid_page_size"
    assert detail({"page_size": 100, "page": 100})["msg"] == "Pagination by `page` is limited to 10.000 entries."
    assert detail({"page_size": 10, "page_offset": 9_990})["type"] == "bad_page_offset"
    assert detail({"page_size": -1}) == {
        "type": "invalid_page_size", "loc": ["body", "pagination", "page_size"], "msg": "page_size must be >= 0", "input": -1
    }
    assert post(small_server, {"pagination": {"page_size": 10_000}}).status_code == 200
    assert post(small_server, {"pagination": {"page_size": "2"}}).json()["pagination"]["page_size"] == 2  # lax int


def test_order_by_must_be_a_scalar_search_quantity(small_server: LocalServer) -> None:
    unknown = post(small_server, {"pagination": {"order_by": "nonsense"}})
    assert unknown.status_code == 422
    assert unknown.json()["detail"] == [{"msg": "nonsense is not a doc quantity", "loc": [["pagination", "order_by"]]}]
    listy = post(small_server, {"pagination": {"order_by": "results.material.elements"}})
    assert listy.json()["detail"] == [{"msg": "the order_by quantity must be a scalar", "loc": [["pagination", "order_by"]]}]


def test_full_last_page_has_a_cursor(small_server: LocalServer) -> None:
    first = post(small_server, {"pagination": {"page_size": 2, "page": 2}}).json()
    assert [d["entry_id"] for d in first["data"]] == ["entryC"] and "next_page_after_value" not in first["pagination"]
    full = post(small_server, {"pagination": {"page_size": 3}}).json()
    assert len(full["data"]) == 3 and "next_page_after_value" not in full["pagination"]  # nothing left in total
    page = post(small_server, {"pagination": {"page_size": 1, "page_after_value": "entryB"}}).json()
    assert page["pagination"]["next_page_after_value"] == "entryC"  # full page: NOMAD sets the cursor


# -- aggregations ------------------------------------------------------------------------------


def test_terms_aggregation(small_server: LocalServer) -> None:
    body = {"pagination": {"page_size": 0}, "aggregations": {"els": {"terms": {"quantity": "results.material.elements", "size": 2}}}}
    answer = post(small_server, body).json()
    assert answer["data"] == []
    assert answer["aggregations"] == {
        "els": {
            "terms": {  # NOMAD's TermsAggregationResponse: the request with its defaults, then data
                "quantity": "results.material.elements",
                "exclude_from_search": False,
                "metrics": [],
                "size": 2,
                "data": [{"count": 2, "nested_count": 2, "value": "Si"}, {"count": 1, "nested_count": 1, "value": "As"}],
            }
        }
    }
    filtered = post(small_server, {"query": {"upload_id": "up2"}, "aggregations": {"u": {"terms": {"quantity": "upload_id"}}}}).json()
    assert filtered["aggregations"]["u"]["terms"]["data"] == [{"count": 1, "nested_count": 1, "value": "up2"}]
    bad = post(small_server, {"aggregations": {"x": {"terms": {"quantity": "nonsense"}}}})
    assert bad.status_code == 422
    assert bad.json() == {"detail": [{"msg": "nonsense is not a doc quantity", "loc": [["aggregation", "quantity"]]}]}
    # the request model is checked with the rest of the body: one 422 naming both
    both = post(small_server, {"owner": "bogus", "aggregations": {"x": {"terms": {"size": 0}}}}).json()["detail"]
    assert [item["loc"] for item in both] == [
        ["body", "owner"], ["body", "aggregations", "x", "terms", "quantity"], ["body", "aggregations", "x", "terms", "size"],
    ]


# -- GET forms -------------------------------------------------------------------------------


def test_get_entries_with_query_parameters(small_server: LocalServer) -> None:
    url = f"{small_server.url}/entries"
    params: dict[str, Any] = {"results.material.elements": ["Si"], "page_size": 1}
    answer = requests.get(url, params=params, timeout=10).json()
    assert answer["query"] == {"name": "results.material.elements", "value": {"all": ["Si"]}}
    assert [d["entry_id"] for d in answer["data"]] == ["entryA"]
    pagination = answer["pagination"]
    assert pagination["total"] == 2 and pagination["next_page_after_value"] == "entryA"
    assert pagination["page_url"].endswith("/entries?results.material.elements=Si&page_size=1")
    next_page = requests.get(pagination["next_page_url"], timeout=10).json()
    assert [d["entry_id"] for d in next_page["data"]] == ["entryC"]
    assert requests.get(url, params={"upload_id": ["up1", "up2"]}, timeout=10).json()["pagination"]["total"] == 3  # any
    ranged = requests.get(url, params={"entry_id__gt": "entryA"}, timeout=10).json()
    assert [d["entry_id"] for d in ranged["data"]] == ["entryB", "entryC"]
    q_form = requests.get(url, params={"q": "upload_id__up2"}, timeout=10).json()
    assert [d["entry_id"] for d in q_form["data"]] == ["entryC"]
    json_query = requests.get(url, params={"json_query": json.dumps({"entry_id:any": ["entryB"]})}, timeout=10).json()
    assert [d["entry_id"] for d in json_query["data"]] == ["entryB"]
    included = requests.get(url, params={"entry_id": "entryB", "include": ["upload_id"]}, timeout=10).json()
    assert included["data"] == [{"entry_id": "entryB", "upload_id": "up1"}]
    assert requests.get(url, params={"owner": "nobody"}, timeout=10).status_code == 422


def test_get_archives(small_server: LocalServer) -> None:
    listing = requests.get(f"{small_server.url}/entries/archive", params={"upload_id": "up2"}, timeout=10).json()
    assert listing["required"] == "*" and [d["entry_id"] for d in listing["data"]] == ["entryC"]
    assert listing["data"][0]["archive"]["metadata"]["entry_id"] == "entryC"
    one = requests.get(f"{small_server.url}/entries/entryB/archive", timeout=10).json()
    assert one["required"] == "*" and one["data"]["archive"]["run"][0]["program"] == {"name": "VASP"}
    missing = requests.get(f"{small_server.url}/entries/nope", timeout=10)
    assert missing.json() == {"detail": "The entry with the given id does not exist or is not visible to you."}


def test_without_a_schema_plain_path_quantities_stay_strings(make_archive: Any) -> None:
    archive = make_archive("E")
    archive["metadata"]["entry_references"] = [{"target_entry_id": "X", "target_path": "/run/0"}]
    with LocalServer({"E": archive}) as server:  # no metainfo: the open reading
        answer = archive_of(server, {"metadata": "include-resolved"}, "E").json()["data"]["archive"]
    assert answer["metadata"]["entry_references"] == [{"target_entry_id": "X", "target_path": "/run/0"}]
    assert "run" not in answer
