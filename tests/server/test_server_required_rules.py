"""Quirks of the ``required`` reader on synthetic archives (no ../shared needed)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from archivemap.server._problems import ApiProblem
from archivemap.server._refs import generate_entry_id, parse_reference_url
from archivemap.server._required import read_required
from archivemap.server._store import EntryStore


def read(archive: dict[str, Any], required: Any, store: EntryStore | None = None) -> dict[str, Any]:
    return read_required(required, archive, entry_id=archive["metadata"]["entry_id"], upload_id="up1", lookup=store)


def test_entry_id_from_mainfile_matches_nomad() -> None:
    assert generate_entry_id("archive_browser_test", "examples_vasp/xml/Si.xml") == "1WGSYo1RrGFEIcM17Re4kjHC7k6p"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("../upload/archive/E1#/run/0", (None, "cur", "E1", None, "archive", "/run/0")),
        ("../uploads/U2/archive/E2#data/x", (None, "U2", "E2", None, "archive", "/data/x")),
        ("../entries/E3/archive#/run/0", (None, "cur", "E3", None, "archive", "/run/0")),
        ("/uploads/U4/archive/E4#/a", (None, "U4", "E4", None, "archive", "/a")),
        ("../upload/raw/s.archive.json#/definitions", (None, "cur", None, "s.archive.json", "raw", "/definitions")),
        ("https://h/api/v1/uploads/U/archive/E#/x", ("https://h/api/v1", "U", "E", None, "archive", "/x")),
        ("#/run/0", None),
        ("plain text", None),
    ],
)
def test_parse_reference_url(url: str, expected: Any) -> None:
    parsed = parse_reference_url(url, "cur")
    assert (None if parsed is None else tuple(parsed)) == expected


def test_mainfile_form_computes_entry_id() -> None:
    parsed = parse_reference_url("../upload/archive/mainfile/a/b.xml#/run/0", "up")
    assert parsed is not None and parsed.entry_id == generate_entry_id("up", "a/b.xml")


def test_index_quirks(make_archive: Any) -> None:
    archive = make_archive("E")
    calcs = archive["run"][0]["calculation"]
    run = lambda spec: read(archive, {"run[0]": spec})["run"][0]  # noqa: E731
    assert run({"calculation[1:1]": "*"})["calculation"] == [calcs[1]]  # [k:k] returns item k
    assert run({"calculation[-10]": "*"})["calculation"] == [calcs[0]]  # clamped to the first
    assert run({"calculation[-2:]": "*"})["calculation"] == calcs[-2:]
    assert "calculation" not in run({"calculation[3]": "*"})  # past the end: key absent
    assert "calculation" not in run({"calculation[7:7]": "*"})
    assert run({"calculation[7:]": "*"})["calculation"] == []
    # two keys for one property: the later wins
    assert run({"calculation[0:1]": "*", "calculation": {"energy": "*"}})["calculation"] == [
        {"energy": c["energy"]} for c in calcs
    ]


def test_unknown_names_are_ignored_and_spec_applies_to_each_item(make_archive: Any) -> None:
    archive = make_archive("E")
    out = read(archive, {"run": {"calculation": {"energy": {"total": "*"}}, "nonsense": "*"}})
    assert out == {
        "run": [{"calculation": [{"energy": {"total": {"value": v}}} for v in (-1.0, -2.0, -3.0)]}],
        "m_ref_archives": {},
    }


def test_placement_pads_lists_and_rewrites_same_entry_refs(make_archive: Any) -> None:
    archive = make_archive("E")
    out = read(archive, {"workflow": {"calculation_result_ref": {"system_ref": {"type": "*"}}}})
    assert out == {
        "run": [
            {
                "system": [None, {"type": "surface"}],
                "calculation": [None, {"system_ref": "/run/0/system/1"}],
            }
        ],
        "workflow": [{"calculation_result_ref": "/run/0/calculation/1"}],
        "m_ref_archives": {},
    }


def test_broken_reference_path_drops_the_key(make_archive: Any) -> None:
    archive = make_archive("E")
    out = read(archive, {"run": {"calculation[2]": {"system_ref": {"type": "*"}, "energy": "*"}}})
    assert out["run"][0]["calculation"] == [{"energy": {"total": {"value": -3.0}}}]


def test_collision_explicit_top_level_key_overwrites_placed_targets(make_archive: Any) -> None:
    archive = make_archive("E")
    out = read(archive, {"workflow": {"calculation_result_ref": {"energy": "*"}}, "run[0]": {"program": "*"}})
    assert out["run"] == [{"program": {"name": "VASP"}}]
    assert out["workflow"] == [{"calculation_result_ref": "/run/0/calculation/1"}]


def test_list_of_references_and_multiple_placements_do_not_mutate(make_archive: Any) -> None:
    archive = make_archive("E")
    before = copy.deepcopy(archive)
    out = read(
        archive,
        {
            "run[0]": {"calculation[0]": "*"},
            "workflow": {"calculations_ref": {"energy": "*", "system_ref": {"type": "*"}}},
        },
    )
    assert out["workflow"][0]["calculations_ref"] == ["/run/0/calculation/0", "/run/0/calculation/1"]
    assert archive == before


def test_include_resolved_resolves_recursively(make_archive: Any) -> None:
    archive = make_archive("E")
    out = read(archive, {"run[0]": {"calculation[1]": "include-resolved"}, "resolve-inplace": True})
    calc = out["run"][0]["calculation"][0]
    assert calc["system_ref"] == {"type": "surface"}
    assert calc["method_ref"] == {"label": "m0"}
    with pytest.raises(RecursionError):
        read(archive, {"workflow": {"task[0]": "include-resolved"}})


def test_cross_entry_missing_entry_and_mainfile_form(make_archive: Any) -> None:
    target = make_archive("T", "up1")
    mainfile_id = generate_entry_id("up1", "T/vasprun.xml")
    source = {
        "metadata": {"entry_id": "S", "upload_id": "up1"},
        "data": {
            "missing": "../upload/archive/nope#/run/0",
            "by_mainfile": "../upload/archive/mainfile/T/vasprun.xml#/run/0/system/0",
            "remote": "https://elsewhere/api/v1/uploads/U/archive/E#/run/0",
        },
    }
    store = EntryStore.from_mapping({"T": target, "S": source})
    spec = {"data": {"missing": {"x": "*"}, "by_mainfile": {"type": "*"}, "remote": {"x": "*"}}}
    out = read(source, spec, store)
    assert out["data"]["missing"] == "../upload/archive/nope#/run/0"
    assert out["data"]["remote"] == "https://elsewhere/api/v1/uploads/U/archive/E#/run/0"
    assert out["data"]["by_mainfile"] == "../uploads/up1/archive/T#/run/0/system/0"
    assert out["m_ref_archives"]["../uploads/up1/archive/T"]["run"] == [{"system": [{"type": "bulk"}]}]
    assert mainfile_id != "T"  # found by metadata.mainfile, not by the computed id
    with pytest.raises(ApiProblem) as raised:
        read(source, {"data": {"remote": {"x": "*"}}, "resolve-inplace": True}, store)
    assert raised.value.status == 400
    assert "resolvable reference to remote archive not implemented" in raised.value.detail


def test_m_def_is_kept_by_specs() -> None:
    archive = {"metadata": {"entry_id": "E"}, "data": {"m_def": "#/definitions/section_definitions/0", "a": 1, "b": 2}}
    assert read(archive, {"data": {"a": "*"}})["data"] == {"m_def": "#/definitions/section_definitions/0", "a": 1}
