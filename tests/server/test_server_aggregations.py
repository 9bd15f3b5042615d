"""Aggregations beyond terms (issue 13): histogram, date_histogram, min_max, statistics.

Answers are compared with NOMAD 2.0.0's response models (the request echoed with defaults,
``None`` dropped, then ``data``) and with bucket counts computed here straight from the archive
dicts, not from the server's search documents. The rules are in the docstring of
``archivemap/server/_aggregations.py``.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from archivemap.server import LocalServer

#: entry id -> (n_quantities, n_elements, upload_create_time, elemental masses, elements)
ROWS: dict[str, tuple[int, int, str, list[float], list[str]]] = {
    "a1": (3, 1, "2020-01-15T10:00:00+00:00", [28.08], ["Si"]),
    "a2": (14, 2, "2020-01-31T23:59:59+00:00", [47.87, 16.0], ["Ti", "O"]),
    "a3": (17, 2, "2020-04-02T00:00:00+00:00", [69.72, 74.92], ["Ga", "As"]),
    "a4": (42, 3, "2021-02-10T08:30:00+00:00", [26.98, 74.92, 16.0], ["Al", "As", "O"]),
    "a5": (45, 1, "2021-02-11T08:30:00+00:00", [28.08, 28.09], ["Si"]),
}


def _archive(entry_id: str) -> dict[str, Any]:
    n_quantities, n_elements, created, masses, elements = ROWS[entry_id]
    return {
        "metadata": {
            "entry_id": entry_id,
            "upload_id": "up1" if entry_id in ("a1", "a2") else "up2",
            "mainfile": f"{entry_id}/vasprun.xml",
            "n_quantities": n_quantities,
            "upload_create_time": created,
            "main_author": {"user_id": f"u-{entry_id[-1]}", "name": entry_id},
        },
        "results": {
            "material": {
                "material_id": "m-" + "".join(sorted(elements)),
                "elements": elements,
                "n_elements": n_elements,
                "elemental_composition": [{"element": e, "mass": m} for e, m in zip(elements, masses)],
            }
        },
    }


@pytest.fixture(scope="module")
def archives() -> dict[str, dict[str, Any]]:
    return {entry_id: _archive(entry_id) for entry_id in ROWS}


@pytest.fixture(scope="module")
def server(archives: dict[str, dict[str, Any]]) -> Iterator[LocalServer]:
    with LocalServer(archives) as running:
        yield running


def aggregate(server: LocalServer, spec: dict[str, Any], query: dict[str, Any] | None = None) -> requests.Response:
    body: dict[str, Any] = {"pagination": {"page_size": 0}, "aggregations": {"a": spec}}
    if query is not None:
        body["query"] = query
    return requests.post(f"{server.url}/entries/query", json=body, timeout=10)


def answer(server: LocalServer, spec: dict[str, Any], query: dict[str, Any] | None = None) -> dict[str, Any]:
    response = aggregate(server, spec, query)
    assert response.status_code == 200, response.text
    (kind,) = spec
    found: dict[str, Any] = response.json()["aggregations"]["a"][kind]
    return found


def reference_histogram(values_per_entry: list[list[float]], interval: float, offset: float = 0.0) -> dict[float, int]:
    """Entries per bin, each entry once per bin, bins from the lowest to the highest filled one."""
    bins = [{math.floor((v - offset) / interval) for v in values} for values in values_per_entry]
    filled = set().union(*bins)
    if not filled:
        return {}
    return {
        index * interval + offset: sum(index in entry_bins for entry_bins in bins)
        for index in range(min(filled), max(filled) + 1)
    }


def _counts(data: list[dict[str, Any]]) -> dict[Any, int]:
    assert all(bucket["count"] == bucket["nested_count"] for bucket in data)
    return {bucket["value"]: bucket["count"] for bucket in data}


# -- histogram --------------------------------------------------------------------------------------


def test_histogram_by_interval_is_nomads_answer(server: LocalServer) -> None:
    found = answer(server, {"histogram": {"quantity": "n_quantities", "interval": 10}})
    assert found == {
        "quantity": "n_quantities",
        "exclude_from_search": False,
        "metrics": [],
        "interval": 10.0,
        "data": [
            {"count": 1, "nested_count": 1, "value": 0.0},
            {"count": 2, "nested_count": 2, "value": 10.0},
            {"count": 0, "nested_count": 0, "value": 20.0},  # empty buckets between are answered
            {"count": 0, "nested_count": 0, "value": 30.0},
            {"count": 2, "nested_count": 2, "value": 40.0},
        ],
    }


@pytest.mark.parametrize(("interval", "offset"), [(1, 0), (4, 0), (7.5, 0), (10, 3), (0.5, 0.25), (100, 0)])
def test_histogram_counts_match_the_archives(server: LocalServer, archives: dict[str, Any], interval: float, offset: float) -> None:
    spec: dict[str, Any] = {"quantity": "n_quantities", "interval": interval}
    if offset:
        spec["offset"] = offset
    found = answer(server, {"histogram": spec})
    expected = reference_histogram([[a["metadata"]["n_quantities"]] for a in archives.values()], interval, offset)
    assert _counts(found["data"]) == pytest.approx(expected)
    assert [b["value"] for b in found["data"]] == sorted(b["value"] for b in found["data"])


def test_an_entry_counts_once_per_bucket_of_a_list(server: LocalServer, archives: dict[str, Any]) -> None:
    key = "results.material.elemental_composition.mass"
    found = answer(server, {"histogram": {"quantity": key, "interval": 10}})
    masses = [[item["mass"] for item in a["results"]["material"]["elemental_composition"]] for a in archives.values()]
    assert _counts(found["data"]) == reference_histogram(masses, 10)
    assert _counts(found["data"])[20.0] == 3  # a1, a4 and a5, whose two masses share the bin


def test_histogram_of_a_query_and_extended_bounds(server: LocalServer) -> None:
    found = answer(
        server,
        {"histogram": {"quantity": "n_quantities", "interval": 10, "extended_bounds": {"min": -5, "max": 35}}},
        {"upload_id": "up1"},
    )
    assert found["extended_bounds"] == {"min": -5.0, "max": 35.0}
    assert _counts(found["data"]) == {-10.0: 0, 0.0: 1, 10.0: 1, 20.0: 0, 30.0: 0}
    none = answer(server, {"histogram": {"quantity": "n_quantities", "interval": 10}}, {"upload_id": "nowhere"})
    assert none["data"] == []


def test_histogram_by_number_of_buckets(server: LocalServer, archives: dict[str, Any]) -> None:
    # integer fields: NOMAD's interval is ceil((max - min) / buckets), offset 0
    found = answer(server, {"histogram": {"quantity": "n_quantities", "buckets": 4}})
    assert {k: found[k] for k in ("quantity", "interval", "buckets", "offset")} == {
        "quantity": "n_quantities", "interval": 11.0, "buckets": 4, "offset": 0.0,
    }
    values = [[a["metadata"]["n_quantities"]] for a in archives.values()]
    assert _counts(found["data"]) == reference_histogram(values, math.ceil((45 - 3) / 4))
    # floats: (1 + 1e-12) * range / buckets, so that the maximum falls in the last bucket
    key = "results.material.elemental_composition.mass"
    floats = answer(server, {"histogram": {"quantity": key, "buckets": 3}})
    interval = (1 + 1e-12) * (74.92 - 16.0) / 3
    assert floats["interval"] == pytest.approx(interval, rel=1e-15)
    masses = [[item["mass"] for item in a["results"]["material"]["elemental_composition"]] for a in archives.values()]
    assert _counts(floats["data"]) == reference_histogram(masses, interval)
    # bins start at multiples of the interval (offset 0), so 3 buckets asked can be 4 answered
    assert [b["value"] for b in floats["data"]] == [pytest.approx(i * interval) for i in range(4)]


def test_one_value_is_one_bucket_holding_it(server: LocalServer) -> None:
    found = answer(server, {"histogram": {"quantity": "n_quantities", "buckets": 5}}, {"entry_id": "a3"})
    assert "interval" not in found  # NOMAD cannot define one: it answers the value itself
    assert found["data"] == [{"count": 1, "nested_count": 1, "value": 17.0}]


def test_histogram_of_dates_in_epoch_milliseconds(server: LocalServer, archives: dict[str, Any]) -> None:
    day = 86_400_000
    found = answer(server, {"histogram": {"quantity": "upload_create_time", "interval": 100 * day}})
    millis = [
        [datetime.datetime.fromisoformat(a["metadata"]["upload_create_time"]).timestamp() * 1000] for a in archives.values()
    ]
    assert _counts(found["data"]) == reference_histogram(millis, 100 * day)


# -- date_histogram ---------------------------------------------------------------------------------


def test_date_histogram_by_month_fills_empty_months(server: LocalServer, archives: dict[str, Any]) -> None:
    found = answer(server, {"date_histogram": {"quantity": "upload_create_time"}})
    assert found["calendar_interval"] == "1M" and "interval" not in found
    months: dict[str, int] = {}
    for archive in archives.values():
        created = archive["metadata"]["upload_create_time"]
        months[created[:7] + "-01"] = months.get(created[:7] + "-01", 0) + 1
    counts = _counts(found["data"])
    assert {k: v for k, v in counts.items() if v} == months
    assert len(counts) == 14  # 2020-01 ... 2021-02
    assert counts["2020-02-01"] == 0


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"interval": "1y"}, {"2020-01-01": 3, "2021-01-01": 2}),
        ({"interval": "quarter"}, {"2020-01-01": 2, "2020-04-01": 1, "2020-07-01": 0, "2020-10-01": 0, "2021-01-01": 2}),
        ({"fixed_interval": "30d"}, None),
        ({"calendar_interval": "1w"}, None),
    ],
)
def test_date_histogram_intervals(server: LocalServer, archives: dict[str, Any], spec: dict[str, Any], expected: Any) -> None:
    found = answer(server, {"date_histogram": {"quantity": "upload_create_time", **spec}})
    counts = _counts(found["data"])
    if expected is not None:
        assert counts == expected
    assert sum(counts.values()) == len(archives)  # each entry has one date: one bucket each
    if "fixed_interval" in spec:
        assert found["fixed_interval"] == "30d"
    else:
        assert found["calendar_interval"] == spec.get("calendar_interval", spec.get("interval"))


# -- min_max and statistics ---------------------------------------------------------------------------


def test_min_max(server: LocalServer, archives: dict[str, Any]) -> None:
    found = answer(server, {"min_max": {"quantity": "n_quantities"}})
    values = [a["metadata"]["n_quantities"] for a in archives.values()]
    assert found == {"quantity": "n_quantities", "exclude_from_search": False, "data": [float(min(values)), float(max(values))]}
    assert answer(server, {"min_max": {"quantity": "n_quantities"}}, {"upload_id": "nowhere"})["data"] == [None, None]


def test_statistics_and_bucket_metrics(server: LocalServer, archives: dict[str, Any]) -> None:
    metrics = ["n_entries", "n_uploads", "n_materials", "n_quantities", "n_authors"]
    found = answer(server, {"statistics": {"metrics": metrics}})
    materials = {a["results"]["material"]["material_id"] for a in archives.values()}
    assert found == {
        "metrics": metrics,
        "data": {
            "n_entries": 5, "n_uploads": 2, "n_materials": len(materials),
            "n_quantities": sum(a["metadata"]["n_quantities"] for a in archives.values()), "n_authors": 5,
        },
    }
    buckets = answer(server, {"histogram": {"quantity": "n_quantities", "interval": 20, "metrics": ["n_uploads"]}})["data"]
    assert [(b["value"], b["count"], b["metrics"]) for b in buckets] == [
        (0.0, 3, {"n_uploads": 2}), (20.0, 0, {"n_uploads": 0}), (40.0, 2, {"n_uploads": 1}),
    ]
    terms = answer(server, {"terms": {"quantity": "upload_id", "metrics": ["n_quantities"]}})
    assert terms["data"] == [
        {"count": 3, "nested_count": 3, "metrics": {"n_quantities": 104}, "value": "up2"},
        {"count": 2, "nested_count": 2, "metrics": {"n_quantities": 17}, "value": "up1"},
    ]


def test_exclude_from_search_ignores_the_criteria_on_its_own_quantity(server: LocalServer) -> None:
    query = {"upload_id": "up1", "n_quantities:gte": 10}
    body = {
        "query": query,
        "pagination": {"page_size": 10},
        "aggregations": {
            "mine": {"terms": {"quantity": "upload_id", "exclude_from_search": True}},
            "plain": {"terms": {"quantity": "upload_id"}},
        },
    }
    found = requests.post(f"{server.url}/entries/query", json=body, timeout=10).json()
    assert [e["entry_id"] for e in found["data"]] == ["a2"]  # the entries still match everything
    # without upload_id's criterion: the entries with n_quantities >= 10, a2 of up1 and a3-a5 of up2
    assert _counts(found["aggregations"]["mine"]["terms"]["data"]) == {"up1": 1, "up2": 3}
    assert _counts(found["aggregations"]["plain"]["terms"]["data"]) == {"up1": 1}


# -- NOMAD's refusals ---------------------------------------------------------------------------------


def test_a_histogram_needs_an_interval_or_buckets(server: LocalServer) -> None:
    spec = {"quantity": "n_quantities"}
    response = aggregate(server, {"histogram": spec})
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "value_error",
                "loc": ["body", "aggregations", "a", "histogram"],
                "msg": "Value error, Provide either interval or the number of buckets.",
                "input": spec,
                "ctx": {"error": {}},
            }
        ]
    }
    zero = aggregate(server, {"histogram": {"quantity": "n_quantities", "interval": 0}}).json()["detail"]
    assert [(d["type"], d["loc"][-1], d["ctx"]) for d in zero] == [("greater_than", "interval", {"gt": 0})]
    bounds = aggregate(server, {"histogram": {"quantity": "n_quantities", "interval": 1, "extended_bounds": {"min": 3, "max": 1}}})
    assert bounds.json()["detail"][0]["msg"] == "Value error, The maximum value should be greater than the minimum value."


@pytest.mark.parametrize(
    ("spec", "detail"),
    [
        ({"histogram": {"quantity": "no_such", "interval": 1}}, {"msg": "no_such is not a doc quantity", "loc": [["aggregation", "quantity"]]}),
        (
            {"histogram": {"quantity": "upload_id", "interval": 1}},
            {"msg": "The quantity SearchQuantity(upload_id) cannot be used in a histogram aggregation", "loc": [["aggregations", "a", "histogram", "quantity"]]},
        ),
        (  # by buckets, NOMAD fails in its min/max step first, with that message
            {"histogram": {"quantity": "upload_id", "buckets": 3}},
            {"msg": "The quantity SearchQuantity(upload_id) cannot be used in a mix-max aggregation", "loc": [["aggregations", "a", "min_max", "quantity"]]},
        ),
        (
            {"min_max": {"quantity": "results.material.elements"}},
            {"msg": "The quantity SearchQuantity(results.material.elements) cannot be used in a mix-max aggregation", "loc": [["aggregations", "a", "min_max", "quantity"]]},
        ),
        (
            {"date_histogram": {"quantity": "n_quantities"}},
            {"msg": "The quantity SearchQuantity(n_quantities) cannot be used in a date histogram aggregation", "loc": [["aggregations", "a", "histogram", "quantity"]]},
        ),
        (
            {"terms": {"quantity": "n_quantities"}},
            {"msg": "The aggregation quantity cannot be used in a terms aggregation.", "loc": [["aggregation", "a", "terms", "quantity"]]},
        ),
        (
            {"statistics": {"metrics": ["n_bananas"]}},
            {"msg": "metric must be the qualified name of a suitable search quantity", "loc": [["statistic", "metrics"]]},
        ),
    ],
)
def test_nomads_search_time_refusals(server: LocalServer, spec: dict[str, Any], detail: dict[str, Any]) -> None:
    response = aggregate(server, spec)
    assert (response.status_code, response.json()) == (422, {"detail": [detail]})


def test_what_this_server_does_not_serve_says_so(server: LocalServer) -> None:
    response = aggregate(server, {"percentiles": {"quantity": "n_quantities"}})
    assert response.status_code == 422 and "not served by the archivemap local server" in response.text
    bad = aggregate(server, {"date_histogram": {"quantity": "upload_create_time", "fixed_interval": "1xy"}})
    assert bad.status_code == 400 and bad.json()["detail"].startswith("Elasticsearch could not process your query")
    nothing = aggregate(server, {})  # NOMAD's _specific_agg raises NotImplementedError
    assert nothing.status_code == 500 and nothing.json()["detail"]["exception_class"] == "_NoKind"


# -- the shared corpus ---------------------------------------------------------------------------------


@pytest.mark.shared
def test_histogram_and_min_max_over_the_shared_archives(shared_archives: Path) -> None:
    """Counts from the archive files themselves against the server's answer over them."""
    files = [path for path in sorted(shared_archives.glob("*.json")) if path.name != "provenance.json"]
    metadata = [json.loads(path.read_text()).get("metadata", {}) for path in files]
    n_quantities = [[m["n_quantities"]] for m in metadata if "n_quantities" in m]
    assert len(n_quantities) == 12
    with LocalServer(shared_archives) as running:
        found = answer(running, {"histogram": {"quantity": "n_quantities", "interval": 500}})
        assert _counts(found["data"]) == reference_histogram(n_quantities, 500)
        assert sum(b["count"] for b in found["data"]) == 12
        by_buckets = answer(running, {"histogram": {"quantity": "n_quantities", "buckets": 6}})
        flat = [v for (v,) in n_quantities]
        interval = math.ceil((max(flat) - min(flat)) / 6)
        assert by_buckets["interval"] == interval
        assert _counts(by_buckets["data"]) == reference_histogram(n_quantities, interval)
        assert answer(running, {"min_max": {"quantity": "n_quantities"}})["data"] == [min(flat), max(flat)]
        months = answer(running, {"date_histogram": {"quantity": "upload_create_time", "calendar_interval": "1y"}})
        years: dict[str, int] = {}
        for m in metadata:
            if "upload_create_time" in m:
                years[m["upload_create_time"][:4] + "-01-01"] = years.get(m["upload_create_time"][:4] + "-01-01", 0) + 1
        assert _counts(months["data"]) == years


def test_numbers_are_read_like_pydantic_reads_them(server: LocalServer) -> None:
    as_text = answer(server, {"histogram": {"quantity": "n_quantities", "interval": "10"}})
    assert as_text["interval"] == 10.0
    assert as_text["data"] == answer(server, {"histogram": {"quantity": "n_quantities", "interval": 10}})["data"]
    refused = aggregate(server, {"histogram": {"quantity": "n_quantities", "buckets": 2.5, "interval": "ten"}}).json()["detail"]
    assert [(d["type"], d["loc"][-1]) for d in refused] == [("float_parsing", "interval"), ("int_from_float", "buckets")]


def test_too_many_buckets_is_a_400_not_a_hang(server: LocalServer) -> None:
    tiny = aggregate(server, {"histogram": {"quantity": "n_quantities", "interval": 1e-9}})
    assert tiny.status_code == 400 and "max_buckets" in tiny.json()["detail"]
    seconds = aggregate(server, {"date_histogram": {"quantity": "upload_create_time", "calendar_interval": "1s"}})
    assert seconds.status_code == 400
    bounded = aggregate(server, {"histogram": {"quantity": "n_quantities", "interval": 1, "extended_bounds": {"min": 0, "max": 1e12}}})
    assert bounded.status_code == 400
