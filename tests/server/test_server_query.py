"""``entries/query`` and ``entries/archive/query``: filters, cursors, metadata ``required``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from archivemap.server import LocalServer


def query(server: LocalServer, body: dict[str, Any], path: str = "entries/query") -> requests.Response:
    return requests.post(f"{server.url}/{path}", json=body, timeout=10)


def ids(server: LocalServer, q: Any) -> list[str]:
    response = query(server, {"query": q})
    assert response.status_code == 200, response.text
    return [item["entry_id"] for item in response.json()["data"]]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (None, ["entryA", "entryB", "entryC"]),
        ({"entry_id": "entryB"}, ["entryB"]),
        ({"upload_id": "up1"}, ["entryA", "entryB"]),
        ({"results.material.elements": ["Si", "O"]}, ["entryC"]),  # a list means all
        ({"results.material.elements": "Si"}, ["entryA", "entryC"]),
        ({"results.material.elements": {"any": ["O", "Ga"]}}, ["entryB", "entryC"]),
        ({"results.material.elements": {"all": ["Ga", "As"]}}, ["entryB"]),
        ({"results.material.elements:any": ["As", "O"]}, ["entryB", "entryC"]),
        ({"results.material.elements:none": ["O"]}, ["entryA", "entryB"]),
        ({"results": {"material": {"elements": "Ga"}}}, ["entryB"]),  # nested dicts flatten
        ({"or": [{"entry_id": "entryA"}, {"entry_id": "entryC"}]}, ["entryA", "entryC"]),
        ({"and": [{"upload_id": "up1"}, {"not": {"entry_id": "entryA"}}]}, ["entryB"]),
        ({"entry_id:any": ["entryA", "nope"]}, ["entryA"]),
        ({"entry_id": {"gt": "entryA", "lte": "entryC"}}, ["entryB", "entryC"]),
        ({"mainfile": "entryA/vasprun.xml"}, ["entryA"]),
    ],
)
def test_filters(small_server: LocalServer, q: Any, expected: list[str]) -> None:
    assert ids(small_server, q) == expected


def test_unknown_quantity_is_422(small_server: LocalServer) -> None:
    response = query(small_server, {"query": {"results.material.nonsense": "x"}})
    assert response.status_code == 422
    assert response.json() == {
        "detail": [{"msg": "results.material.nonsense is not a doc quantity", "loc": [["results.material.nonsense"]]}]
    }


def test_metadata_answer_and_required(small_server: LocalServer) -> None:
    body = query(small_server, {"query": {"entry_id": "entryB"}}).json()
    item = body["data"][0]
    assert item["upload_id"] == "up1" and item["parser_name"] == "parsers/vasp"
    assert item["results"]["material"]["elements"] == ["Ga", "As"]
    assert body["owner"] == "public"
    included = query(small_server, {"required": {"include": ["results.material.elements"]}}).json()["data"][0]
    assert included == {"entry_id": "entryA", "results": {"material": {"elements": ["Si"]}}}
    excluded = query(small_server, {"required": {"exclude": ["results", "mainfile"]}}).json()["data"][0]
    assert "results" not in excluded and "mainfile" not in excluded and excluded["entry_id"] == "entryA"


@pytest.fixture(scope="module")
def many_server(make_archive: Any) -> Iterator[LocalServer]:
    shared = make_archive("base")
    with LocalServer({f"id{i:04d}": shared for i in range(1200)}) as server:
        yield server


def test_cursor_pagination_over_many_entries(many_server: LocalServer) -> None:
    seen: list[str] = []
    after = None
    pages = 0
    with requests.Session() as http:
        while True:
            pagination: dict[str, Any] = {"page_size": 250}
            if after is not None:
                pagination["page_after_value"] = after
            body = http.post(f"{many_server.url}/entries/query", json={"pagination": pagination}, timeout=10).json()
            pages += 1
            assert body["pagination"]["total"] == 1200
            seen += [item["entry_id"] for item in body["data"]]
            after = body["pagination"].get("next_page_after_value")
            if after is None:
                break
    assert pages == 5
    assert seen == [f"id{i:04d}" for i in range(1200)]


def test_pagination_options(many_server: LocalServer) -> None:
    body = query(many_server, {"pagination": {"page_size": 3, "order": "desc"}}).json()
    assert [item["entry_id"] for item in body["data"]] == ["id1199", "id1198", "id1197"]
    assert body["pagination"]["next_page_after_value"] == "id1197"
    body = query(many_server, {"pagination": {"page_size": 2, "page": 3}}).json()
    assert [item["entry_id"] for item in body["data"]] == ["id0004", "id0005"]
    body = query(many_server, {"pagination": {"page_size": 0}}).json()
    assert body["data"] == [] and body["pagination"]["total"] == 1200
    assert "next_page_after_value" not in body["pagination"]
    body = query(many_server, {"pagination": {"page_size": 5}}).json()
    assert body["pagination"]["page_size"] == 5 and len(body["data"]) == 5
    assert query(many_server, {"pagination": {"page": 2, "page_after_value": "x"}}).status_code == 422
    assert query(many_server, {"pagination": {"page_size": -1}}).status_code == 422
    assert query(many_server, {"pagination": {"order": "up"}}).status_code == 422
    # the last page has no cursor
    last = query(many_server, {"pagination": {"page_size": 10, "page_after_value": "id1195"}}).json()
    assert [i["entry_id"] for i in last["data"]] == ["id1196", "id1197", "id1198", "id1199"]
    assert "next_page_after_value" not in last["pagination"]


def test_synthesised_entries_report_their_own_ids(many_server: LocalServer) -> None:
    response = requests.get(f"{many_server.url}/entries/id0042/archive", timeout=10)
    assert response.json()["data"]["archive"]["metadata"]["entry_id"] == "id0042"


def test_multi_entry_archive_query(small_server: LocalServer) -> None:
    body: dict[str, Any] = {
        "owner": "visible",
        "query": {"upload_id": "up1"},
        "pagination": {"page_size": 1},
        "required": {"run[0]": {"calculation[-1]": {"energy": "*"}}},
    }
    first = query(small_server, body, "entries/archive/query").json()
    assert first["owner"] == "visible" and first["required"] == body["required"]
    assert first["pagination"]["total"] == 2
    assert [d["entry_id"] for d in first["data"]] == ["entryA"]
    assert first["data"][0]["archive"] == {
        "run": [{"calculation": [{"energy": {"total": {"value": -3.0}}}]}],
        "m_ref_archives": {},
    }
    body["pagination"]["page_after_value"] = first["pagination"]["next_page_after_value"]
    second = query(small_server, body, "entries/archive/query").json()
    assert [d["entry_id"] for d in second["data"]] == ["entryB"]
    # NOMAD sets a cursor on every full page, so the chain ends with an empty page
    assert second["pagination"]["next_page_after_value"] == "entryB"
    body["pagination"]["page_after_value"] = "entryB"
    third = query(small_server, body, "entries/archive/query").json()
    assert third["data"] == [] and "next_page_after_value" not in third["pagination"]


def test_owner_rules(small_server: LocalServer) -> None:
    assert query(small_server, {"owner": "nobody"}).status_code == 422
    assert query(small_server, {"owner": "user"}).status_code == 401
    assert query(small_server, {"owner": "all"}, "entries/archive/query").status_code == 403


def test_corpus_directory_is_indexed(corpus_server: LocalServer) -> None:
    body = query(corpus_server, {"query": {"results.material.elements": ["Si"]}, "pagination": {"page_size": 20}}).json()
    assert "1WGSYo1RrGFEIcM17Re4kjHC7k6p" in [item["entry_id"] for item in body["data"]]
    everything = query(corpus_server, {"pagination": {"page_size": 100}}).json()
    assert everything["pagination"]["total"] == 12  # provenance.json is skipped
