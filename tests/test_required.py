"""Tests of archivemap.remote.required: paths, specs, merging, grafting, coverage.

The property tests use a small model of the server's ``RequiredReader`` (``serve`` below,
after spec §4.2/§4.3) to produce compacted answers; tests/test_client.py checks the same
round trip against the local server over HTTP.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import archivemap
from archivemap.remote.required import (
    Key,
    covers,
    format_archive_path,
    graft,
    merge_required,
    parse_archive_path,
    parse_required_key,
    required_for_path,
)

# --------------------------------------------------------------------------- a server model

_MISSING = object()


def serve(archive: Any, spec: Any) -> Any:
    """What RequiredReader answers for ``spec`` (no references): compacted selections."""
    if isinstance(spec, str):
        return copy.deepcopy(archive) if spec in ("*", "include", "include-resolved") else _MISSING
    if isinstance(archive, list):
        return [serve(item, spec) for item in archive]
    if not isinstance(archive, dict):
        return _MISSING
    winners: dict[str, tuple[Any, Any]] = {}
    wildcard = None
    for key, sub in spec.items():
        if key == "*":
            wildcard = sub
            continue
        prop, selection = parse_required_key(key)
        winners[prop] = (selection, sub)
    out: dict[str, Any] = {}
    for prop, value in archive.items():
        selection, sub = winners.get(prop, (None, wildcard))
        if sub is None or sub == "exclude":
            continue
        if selection is not None:
            if not isinstance(value, list):
                raise AssertionError("index on non-list")
            if isinstance(selection, int):
                if not -len(value) <= selection < len(value):
                    continue
                value = [value[selection]]
            else:
                if selection.start is not None and selection.start >= len(value):
                    continue
                if selection.start is not None and selection.start == selection.stop:
                    value = [value[selection.start]]
                else:
                    value = value[selection]
        result = serve(value, sub)
        if result is not _MISSING:
            out[prop] = result
    return out


def read(archive: Any, segments: tuple[Any, ...]) -> Any:
    for segment in segments:
        archive = archive[segment]
    return archive


# --------------------------------------------------------------------------- strategies

names = st.sampled_from(["run", "calculation", "system", "energy", "total", "value", "x_a"])
scalars = st.one_of(st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=4), st.booleans())


# As in a real schema, a name is always of one kind: repeating sub-sections, single
# sub-sections, or quantities. (Data where ``run`` is a list in one item and a number in its
# sibling cannot come from NOMAD, and a merged slice spec would rightly fail on it.)
REPEATING = ("run", "calculation", "system")
SINGLE = ("energy", "total")


def sections(depth: int = 3) -> st.SearchStrategy[dict[str, Any]]:
    if depth == 0:
        return st.dictionaries(st.sampled_from(["value", "x_a"]), scalars, max_size=3)
    child = sections(depth - 1)

    def value_for(name: str) -> st.SearchStrategy[Any]:
        if name in REPEATING:
            return st.lists(child, min_size=1, max_size=4)
        if name in SINGLE:
            return child
        return scalars

    keys = st.lists(names, min_size=1, max_size=4, unique=True)
    return keys.flatmap(lambda ks: st.fixed_dictionaries({k: value_for(k) for k in ks}))


@st.composite
def archive_and_paths(draw: st.DrawFn, max_paths: int = 1) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    archive = draw(sections())
    paths = []
    for _ in range(draw(st.integers(1, max_paths))):
        node: Any = archive
        path: list[Any] = []
        while True:
            if not isinstance(node, dict) or not node:
                break
            name = draw(st.sampled_from(sorted(node)))
            path.append(name)
            node = node[name]
            if isinstance(node, list):
                index = draw(st.integers(0, len(node) - 1))
                path.append(index)
                node = node[index]
            if draw(st.booleans()):
                break
        paths.append(tuple(path))
    return archive, paths


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/run/0/calculation/3/energy/total", ("run", 0, "calculation", 3, "energy", "total")),
        ("#/run/0/system/-1", ("run", 0, "system", -1)),
        ("run/0", ("run", 0)),
        ("run[0].calculation[-1].energy", ("run", 0, "calculation", -1, "energy")),
        ("data.processes['pvd evaporation'].x", ("data", "processes", "pvd evaporation", "x")),
        ("data.processes[pvd_evaporation]", ("data", "processes", "pvd_evaporation")),
        ("", ()),
        ("/", ()),
        ("#data", ("data",)),
        (("run", 0), ("run", 0)),
    ],
)
def test_parse_archive_path(path: Any, expected: tuple[Any, ...]) -> None:
    assert parse_archive_path(path) == expected


def test_key_segments_are_marked() -> None:
    segments = parse_archive_path("data.processes[pvd_evaporation]")
    assert isinstance(segments[2], Key)
    assert not isinstance(parse_archive_path("/data/processes/pvd_evaporation")[2], Key)


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("run[0", "not closed with ']'"),
        ("run]0", "without its '['"),
        ("run['x]", "whose ' is not closed"),
        ("a..b", "empty segment"),
        ("[0].run", "an index must follow a name"),
        ("run.", "ends with '.'"),
        ("run[0]x", "missing '.' before 'x'"),
        (".run", "empty segment"),
    ],
)
def test_parse_archive_path_refuses_malformed(bad: str, says: str) -> None:
    # a typed error that says what is wrong and where: still a ValueError for old callers
    with pytest.raises(archivemap.PathSyntaxError, match=re.escape(says)) as info:
        parse_archive_path(bad)
    assert isinstance(info.value, ValueError) and info.value.path == bad


def test_format_archive_path() -> None:
    assert format_archive_path("/run/0/calculation/3/energy") == "run[0].calculation[3].energy"
    assert format_archive_path("") == ""
    assert format_archive_path(("data", "p", Key("a b"))) == "data.p[a b]"


@given(archive_and_paths())
def test_format_parse_round_trip(case: tuple[dict[str, Any], list[tuple[Any, ...]]]) -> None:
    _, (path,) = case
    assert parse_archive_path(format_archive_path(path)) == path


# --------------------------------------------------------------------------- required_for_path


def test_required_for_path_spec_example() -> None:
    assert required_for_path("/run/0/calculation/3/energy/total") == {
        "run[0]": {"calculation[3]": {"energy": {"total": "*"}}}
    }
    assert required_for_path("run[0].calculation[3]") == {"run[0]": {"calculation[3]": "*"}}
    assert required_for_path("workflow2") == {"workflow2": "*"}
    assert required_for_path("") == "*"
    assert required_for_path("run/0/calculation", leaf={"name": "*"}) == {
        "run[0]": {"calculation": {"name": "*"}}
    }


@pytest.mark.parametrize(
    "path", ["/run/0/calculation/-1", "run[-1]", "data.processes[pvd]", "/0/run", "run/0/1"]
)
def test_required_for_path_refuses_what_the_server_cannot_do(path: str) -> None:
    with pytest.raises(ValueError):
        required_for_path(path)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("calculation", ("calculation", None)),
        ("calculation[3]", ("calculation", 3)),
        ("calculation[-1]", ("calculation", -1)),
        ("scf[1:3]", ("scf", slice(1, 3))),
        ("scf[:2]", ("scf", slice(None, 2))),
        ("scf[-2:]", ("scf", slice(-2, None))),
    ],
)
def test_parse_required_key(key: str, expected: tuple[str, Any]) -> None:
    assert parse_required_key(key) == expected


@pytest.mark.parametrize("bad", ["calculation[x]", "a[1:2:3]", "a[]", "[0]"])
def test_parse_required_key_refuses_bad_syntax(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_required_key(bad)


# --------------------------------------------------------------------------- merging


def test_merge_same_property_different_indices_covers_with_slice() -> None:
    merged = merge_required(
        [required_for_path("run/0/calculation/3"), required_for_path("run/2/system/0")]
    )
    assert merged == {"run[0:3]": {"calculation[3]": "*", "system[0]": "*"}}


def test_merge_directives() -> None:
    assert merge_required([{"a": "*"}, "*"]) == "*"
    assert merge_required(["exclude", {"a": "*"}]) == {"a": "*"}
    assert merge_required(["*", "include-resolved"]) == "include-resolved"
    assert merge_required([{"a": {"b": "*"}}, {"a": "*"}]) == {"a": "*"}


def test_merge_negative_index_falls_back_to_all_items() -> None:
    merged = merge_required([{"run[0]": {"calculation[-1]": "*"}}, {"run[0]": {"calculation[2]": "*"}}])
    assert merged == {"run[0]": {"calculation": "*"}}


def test_merge_wildcards_and_exclude() -> None:
    merged = merge_required([{"*": "*", "material": "exclude"}, {"material": {"x": "*"}}])
    assert merged == {"*": "*", "material": {"x": "*"}}
    merged = merge_required([{"*": "*", "material": "exclude"}, {"method": "*"}])
    assert merged == {"*": "*", "material": "exclude"}


def test_merge_refuses_conflicting_resolve_inplace() -> None:
    with pytest.raises(ValueError):
        merge_required([{"a": "*", "resolve-inplace": True}, {"b": "*"}])
    with pytest.raises(ValueError):
        merge_required([])


def test_merge_unsorted_single_indices_and_quirky_slices() -> None:
    assert merge_required([{"a[5]": "*"}, {"a[1:3]": "*"}]) == {"a[1:6]": "*"}
    assert merge_required([{"a[4:4]": "*"}, {"a[1]": "*"}]) == {"a[1:5]": "*"}
    assert merge_required([{"a[2:]": "*"}, {"a[0]": "*"}]) == {"a[0:]": "*"}


# --------------------------------------------------------------------------- grafting


def test_graft_reanchors_compacted_answers() -> None:
    spec = required_for_path("/run/0/calculation/3/energy/total")
    answer = {"run": [{"calculation": [{"energy": {"total": {"value": -1.0}}}]}], "m_ref_archives": {}}
    target: dict[str, Any] = {}
    graft(target, answer, spec)
    assert target["run"][0]["calculation"] == [None, None, None, {"energy": {"total": {"value": -1.0}}}]


def test_graft_never_overwrites_loaded_data_with_none() -> None:
    target: dict[str, Any] = {"run": [{"calculation": [{"a": 1}, None, {"c": 3}]}]}
    answer = {"run": [{"calculation": [{"b": 2}]}]}
    graft(target, answer, {"run[0]": {"calculation[1]": "*"}})
    assert target["run"][0]["calculation"] == [{"a": 1}, {"b": 2}, {"c": 3}]
    # reference targets placed at their original paths, padded with null (spec §4.5)
    placed = {"run": [{"system": [None, {"label": "s1"}]}], "workflow": [{"ref": "/run/0/system/1"}]}
    graft(target, placed, {"workflow": {"ref": {"label": "*"}}})
    assert target["run"][0]["calculation"][0] == {"a": 1}
    assert target["run"][0]["system"] == [None, {"label": "s1"}]
    assert target["workflow"] == [{"ref": "/run/0/system/1"}]


def test_graft_slices_use_the_slice_start_as_offset() -> None:
    target: dict[str, Any] = {}
    graft(target, {"scf": [{"e": 1}, {"e": 2}]}, {"scf[1:3]": {"e": "*"}})
    assert target == {"scf": [None, {"e": 1}, {"e": 2}]}
    graft(target, {"scf": [{"e": 4}]}, {"scf[4:4]": "*"})  # [k:k] returns item k
    assert target["scf"][4] == {"e": 4}


def test_graft_refuses_unanchorable_answers() -> None:
    with pytest.raises(ValueError):
        graft({}, {"run": [{}]}, {"run[-1]": "*"})
    with pytest.raises(ValueError):
        graft({}, {"run": [{}]}, {"run": "*", "resolve-inplace": True})


@given(archive_and_paths())
def test_graft_round_trip_single_path(case: tuple[dict[str, Any], list[tuple[Any, ...]]]) -> None:
    archive, (path,) = case
    spec = required_for_path(path)
    target: dict[str, Any] = {}
    graft(target, serve(archive, spec), spec)
    assert read(target, path) == read(archive, path)
    assert covers(spec, path)


@given(archive_and_paths(max_paths=4))
def test_graft_round_trip_merged_paths(case: tuple[dict[str, Any], list[tuple[Any, ...]]]) -> None:
    archive, paths = case
    spec = merge_required(required_for_path(p) for p in paths)
    target: dict[str, Any] = {}
    graft(target, serve(archive, spec), spec)
    for path in paths:
        assert read(target, path) == read(archive, path)
        assert covers(spec, path)


@given(archive_and_paths(max_paths=4))
def test_graft_in_any_order_gives_the_same_result(case: tuple[dict[str, Any], list[tuple[Any, ...]]]) -> None:
    archive, paths = case
    forward: dict[str, Any] = {}
    backward: dict[str, Any] = {}
    for path in paths:
        spec = required_for_path(path)
        graft(forward, serve(archive, spec), spec)
    for path in reversed(paths):
        spec = required_for_path(path)
        graft(backward, serve(archive, spec), spec)
    assert forward == backward
    for path in paths:
        assert read(forward, path) == read(archive, path)


@given(archive_and_paths())
def test_full_archive_graft_is_identity(case: tuple[dict[str, Any], list[tuple[Any, ...]]]) -> None:
    archive, _ = case
    assert graft({}, serve(archive, "*"), "*") == archive


# --------------------------------------------------------------------------- coverage


@pytest.mark.parametrize(
    ("spec", "path", "expected"),
    [
        ("*", "run/0/calculation/3", True),
        ("exclude", "run", False),
        ({"workflow": "*"}, "workflow/0/task/1", True),
        ({"workflow": "*"}, "run/0", False),
        ({"run[0]": {"calculation[3]": "*"}}, "run/0/calculation/3/energy", True),
        ({"run[0]": {"calculation[3]": "*"}}, "run/0/calculation/2", False),
        ({"run[0]": {"calculation[3]": "*"}}, "run/0/calculation", False),
        ({"run[0]": {"calculation[3]": "*"}}, "run/0", False),
        ({"run[0]": {"calculation[3]": "*"}}, "run[0].calculation[-1]", False),
        ({"run": {"calculation": "*"}}, "run[0].calculation[-1]", True),
        ({"run": {"calculation[1:3]": "*"}}, "run/5/calculation/2/x", True),
        ({"run": {"calculation[1:3]": "*"}}, "run/5/calculation/3", False),
        ({"results": {"*": "*", "material": "exclude"}}, "results/method/x", True),
        ({"results": {"*": "*", "material": "exclude"}}, "results/material", False),
        ({"run[0]": {"system[0]": {"atoms": {"labels": "*"}}}}, "/run/0/system/0/atoms/labels/3", True),
        ({"data": {"processes": "*"}}, "data.processes[pvd]", True),
        ({"a[0:1]": "*", "a": {"b": "*"}}, "a/0/c", False),  # the later key wins
        ({"a": {"b": "*"}, "resolve-inplace": False}, "a/b", True),
    ],
)
def test_covers(spec: Any, path: str, expected: bool) -> None:
    assert covers(spec, path) is expected
