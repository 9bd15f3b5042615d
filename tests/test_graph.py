"""The reference graph against nomad-lab's own resolution (golden files) and hand-made cases."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

from archivemap.graph import (
    dangling_references,
    draw,
    node_id,
    reference_cycles,
    reference_graph,
    referrers,
    subgraph_of,
    to_dot,
    to_graphml,
    to_text,
)
from archivemap.archive.load import load
from tests.conftest import SHARED, shared_archives

GOLDEN = SHARED / "golden"


# -- the real archives ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def source(schema_2_0: Any) -> Any:
    from archivemap.archive.sources import DirectorySource

    return DirectorySource(SHARED / "archives", schema_2_0)


@pytest.fixture(scope="module")
def all_graph(source: Any) -> nx.MultiDiGraph:
    """One graph of all twelve archives, loaded through one DirectorySource."""
    return reference_graph([source.archive(e) for e in source.entry_ids()])


def _golden_edges(golden: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    """(source node, target node, quantity name, raw reference) of every resolved quantity ref."""
    entry = golden["source_metadata"]["entry_id"]
    out = set()
    for ref in golden["references"]:
        if ref.get("kind") != "quantity" or ref.get("status") != "resolved":
            continue
        target_entry = ref.get("resolved_entry_id") or entry
        quantity = ref["quantity"].rpartition(".")[2]
        out.add((f"{entry}#{ref['owner_path']}", f"{target_entry}#{ref['resolved_path']}", quantity, ref["reference"]))
    return out


def _graph_edges(g: nx.MultiDiGraph, entry: str | None = None) -> set[tuple[str, str, str, str]]:
    return {
        (u, v, d["quantity"], d["reference"])
        for u, v, d in g.edges(data=True)
        if d["kind"] == "reference" and (entry is None or u.startswith(entry + "#"))
    }


@pytest.mark.shared
@pytest.mark.parametrize("golden_path", sorted(GOLDEN.glob("*.json")) if GOLDEN.is_dir() else [], ids=lambda p: p.stem)
def test_edges_equal_golden_references(all_graph: nx.MultiDiGraph, golden_path: Path) -> None:
    golden = json.loads(golden_path.read_text())
    entry = golden["source_metadata"]["entry_id"]
    assert _graph_edges(all_graph, entry) == _golden_edges(golden)
    # every golden row is one edge (list references give one edge per item)
    n_rows = sum(1 for r in golden["references"] if r.get("kind") == "quantity" and r.get("status") == "resolved")
    n_edges = sum(1 for u, _, k in all_graph.edges(data="kind") if k == "reference" and u.startswith(entry + "#"))
    assert n_edges == n_rows


@pytest.mark.shared
def test_target_sections_match_golden(all_graph: nx.MultiDiGraph) -> None:
    for golden_path in GOLDEN.glob("*.json"):
        golden = json.loads(golden_path.read_text())
        entry = golden["source_metadata"]["entry_id"]
        for ref in golden["references"]:
            if ref.get("kind") != "quantity" or ref.get("status") != "resolved":
                continue
            node = all_graph.nodes[f"{ref.get('resolved_entry_id') or entry}#{ref['resolved_path']}"]
            assert not node["remote"] and not node["dangling"]
            if ref.get("quantity_reference"):
                section, _, quantity = ref["resolved_section"].rpartition(".")
                assert (node["section"], node["quantity"]) == (section, quantity)
            else:
                assert node["section"] == ref["resolved_section"]


@pytest.mark.shared
def test_cross_entry_edges(all_graph: nx.MultiDiGraph) -> None:
    cross = {(u.partition("#")[0], v.partition("#")[0]) for u, v, _ in all_graph.edges(data=True) if u.partition("#")[0] != v.partition("#")[0]}
    assert cross == {
        ("4WgzB6xcTzWB_Xk9UNUH4HB3IRKJ", "AkeMNBjzHdEWJmv2w8GVaw9drWRu"),  # powder mixture -> substance list
        ("-ld_4ohLePE2oOcfX_CYa9oiu_1l", "RYcY1pQC7GkErLJaMQHaNhAxW_oN"),  # ../upload/raw/<mainfile> -> entry id
    }
    assert not dangling_references(all_graph)


@pytest.mark.shared
def test_single_archive_marks_other_entries_remote(schema_2_0: Any) -> None:
    # The folder is needed anyway: data.test_1 is a reference only by the other entry's schema.
    path = SHARED / "archives" / "eln-refs-powder-mixture.recorded.archive.json"
    archive = load(path, schema_2_0, archives=SHARED / "archives")
    g = reference_graph(archive)
    target = "AkeMNBjzHdEWJmv2w8GVaw9drWRu#/data/contents/3"
    assert g.nodes[target]["remote"] is True and "section" not in g.nodes[target]
    # resolve=True loads the target through the archive's source: an ordinary node then
    g2 = reference_graph(archive, resolve=True)
    assert g2.nodes[target]["remote"] is False
    assert g2.nodes[target]["section"] == "entry_id:-ld_4ohLePE2oOcfX_CYa9oiu_1l.SubstanceExtended"


@pytest.mark.shared
def test_graph_of_a_source_and_laziness(schema_2_0: Any) -> None:
    path = SHARED / "archives" / "vasp-si16-singlepoint.recorded.archive.json"
    archive = load(path, schema_2_0)
    g = reference_graph(archive)
    # building the graph neither resolved references nor materialised sub-sections
    with pytest.raises(AttributeError):
        object.__getattribute__(archive, "workflow")
    wf = archive.workflow[0]
    assert node_id(wf) == "1WGSYo1RrGFEIcM17Re4kjHC7k6p#/workflow/0"
    assert referrers(g, wf) == [
        "1WGSYo1RrGFEIcM17Re4kjHC7k6p#/workflow/0/task/0",
        "1WGSYo1RrGFEIcM17Re4kjHC7k6p#/workflow/0/task/1",
    ]
    assert g.nodes[node_id(wf)]["label"] == "workflow/0"
    # the legacy task -> #/workflow/0 shape is a cycle only through containment
    assert reference_cycles(g) == []
    cycles = reference_cycles(g, through_containment=True)
    assert sorted(sorted(c) for c in cycles) == [
        ["1WGSYo1RrGFEIcM17Re4kjHC7k6p#/workflow/0", "1WGSYo1RrGFEIcM17Re4kjHC7k6p#/workflow/0/task/0"],
        ["1WGSYo1RrGFEIcM17Re4kjHC7k6p#/workflow/0", "1WGSYo1RrGFEIcM17Re4kjHC7k6p#/workflow/0/task/1"],
    ]


@pytest.mark.shared
def test_assignments_after_loading_are_seen(schema_2_0: Any) -> None:
    archive = load(SHARED / "archives" / "vasp-si16-singlepoint.recorded.archive.json", schema_2_0)
    calc = archive.run[0].calculation[0]
    calc.system_ref = archive.run[0].system[0]  # same target, written back as a reference
    calc.method_ref = None
    g = reference_graph(archive)
    out = {d["quantity"] for _, _, d in g.out_edges(node_id(calc), data=True)}
    assert out == {"system_ref"}


@pytest.mark.shared
def test_containment_and_subgraph(schema_2_0: Any) -> None:
    archive = load(SHARED / "archives" / "fhiaims-alas-geometry-optimization.parsed.archive.json", schema_2_0)
    g = reference_graph(archive, containment=True)
    entry = archive.m_entry_id
    contains = [(u, v) for u, v, k in g.edges(data="kind") if k == "contains"]
    assert len(contains) == g.number_of_nodes() - 1 - sum(1 for _, q in g.nodes(data="quantity") if q)
    assert (f"{entry}#/run/0", f"{entry}#/run/0/calculation/5") in contains
    calc5 = f"{entry}#/run/0/calculation/5"
    sub = subgraph_of(g, calc5, depth=1, direction="in")
    assert set(sub) == {calc5, f"{entry}#/run/0", *referrers(g, calc5)}
    assert set(subgraph_of(g, calc5, depth=0)) == {calc5}
    # the quantity reference #/workflow2/results/energies targets the quantity
    energies = g.nodes[f"{entry}#/workflow2/results/energies"]
    assert energies["quantity"] == "energies"
    with pytest.raises(KeyError):
        subgraph_of(g, "nope#/")
    with pytest.raises(ValueError):
        subgraph_of(g, calc5, direction="up")


# -- hand-made archives ----------------------------------------------------------------------------
def _archive(schema: Any, workflow: list[dict[str, Any]], **more: Any) -> Any:
    data = {"metadata": {"entry_id": "E1", "upload_id": "U1"}, "run": [{"calculation": [{}], "system": [{}]}], "workflow": workflow}
    data.update(more)
    return load(data, schema)


def test_dangling_references(schema_2_0: Any) -> None:
    archive = _archive(
        schema_2_0,
        [
            {
                "calculation_result_ref": "#/run/0/calculation/7",
                "calculations_ref": ["#/run/0/calculation/0", "#/run/0/calculation/-1", "/run/0/nothing/0"],
                "run_ref": "#/run/1",
                "initial_structure": "#/run/0/system/0/atoms",
            }
        ],
    )
    g = reference_graph(archive)
    dangling = {(d["quantity"], d.get("index"), v) for _, v, d in dangling_references(g)}
    assert dangling == {
        ("calculation_result_ref", None, "E1#/run/0/calculation/7"),
        ("calculations_ref", 2, "E1#/run/0/nothing/0"),
        ("run_ref", None, "E1#/run/1"),
        ("initial_structure", None, "E1#/run/0/system/0/atoms"),
    }
    assert "out of range" in g.nodes["E1#/run/0/calculation/7"]["error"]
    assert "nothing" in g.nodes["E1#/run/0/nothing/0"]["error"]
    # -1 is normalised to the position it selects, and both items point at one node
    assert [v for _, v, k in g.out_edges("E1#/workflow/0", keys=False, data="quantity") if k == "calculations_ref"][:2] == [
        "E1#/run/0/calculation/0",
        "E1#/run/0/calculation/0",
    ]
    assert "dangling" in to_text(g)


def test_remote_targets(schema_2_0: Any) -> None:
    archive = _archive(
        schema_2_0,
        [
            {
                "calculation_result_ref": "../upload/archive/OTHER#/run/0/calculation/0",
                "run_ref": "https://nomad.example.org/api/v1/uploads/U2/archive/E9#/run/0",
                "initial_structure": "<unavailable url>/#/run/0",
            }
        ],
    )
    g = reference_graph(archive)
    assert g.nodes["OTHER#/run/0/calculation/0"]["remote"] is True
    inst = "https://nomad.example.org/api/v1/entries/E9#/run/0"
    assert g.nodes[inst]["remote"] is True and g.nodes[inst]["entry_id"] == "E9"
    # "<unavailable url>/#..." is not an archive reference (spec §3.2 L): no edge at all
    assert {d["quantity"] for _, _, d in g.edges(data=True)} == {"calculation_result_ref", "run_ref"}
    # resolve=True without a source keeps them remote and does not raise
    assert reference_graph(archive, resolve=True).nodes["OTHER#/run/0/calculation/0"]["remote"] is True


def test_reference_cycles(schema_2_0: Any) -> None:
    archive = _archive(
        schema_2_0,
        [
            {"workflows_ref": ["#/workflow/1"], "task": [{"input_workflow": "#/workflow/0"}]},
            {"workflows_ref": ["#/workflow/0", "#/workflow/2"]},
            {"workflows_ref": ["#/workflow/2"]},  # self reference
        ],
    )
    g = reference_graph(archive)
    cycles = sorted(sorted(c) for c in reference_cycles(g))
    assert cycles == [["E1#/workflow/0", "E1#/workflow/1"], ["E1#/workflow/2"]]
    with_containment = sorted(sorted(c) for c in reference_cycles(g, through_containment=True))
    assert ["E1#/workflow/0", "E1#/workflow/0/task/0"] in with_containment


def test_definition_edges(schema_2_0: Any) -> None:
    archive = load(
        {
            "metadata": {"entry_id": "E1", "upload_id": "U1"},
            "definitions": {"section_definitions": [{"name": "A", "base_sections": ["nomad.datamodel.data.EntryData"]}]},
            "data": {"m_def": "#/definitions/section_definitions/0"},
        },
        schema_2_0,
    )
    assert reference_graph(archive).number_of_edges() == 0
    g = reference_graph(archive, definitions=True)
    (u, v, d), = g.edges(data=True)
    assert (u, v, d["kind"], d["quantity"]) == ("E1#/data", "E1#/definitions/section_definitions/0", "definition", "m_def")


def test_deep_nesting_is_iterative(schema_2_0: Any) -> None:
    depth = 10_000
    leaf: dict[str, Any] = {"name": "leaf", "base_sections": ["#/definitions/section_definitions/0"]}
    node = leaf
    for i in range(depth):
        node = {"name": f"s{i}", "inner_section_definitions": [node]}
    archive = load({"metadata": {"entry_id": "D"}, "definitions": {"section_definitions": [node]}}, schema_2_0)
    g = reference_graph(archive)
    ((u, v),) = g.edges()
    assert u.count("inner_section_definitions") == depth and v == "D#/definitions/section_definitions/0"
    # and a reference down to the deepest section
    leaf["base_sections"] = ["#/definitions/section_definitions/0" + "/inner_section_definitions/0" * depth]
    archive = load({"metadata": {"entry_id": "D"}, "definitions": {"section_definitions": [node]}}, schema_2_0)
    g = reference_graph(archive, containment=False)
    ((u, v),) = g.edges()
    assert u == v and reference_cycles(g) == [[u]]


# -- output ------------------------------------------------------------------------------------
def _hostile(schema: Any) -> Any:
    return _archive(
        schema,
        [{"task": [{"name": 'a "quoted" <b>\\ name\nnew line', "input_workflow": "#/workflow/0"}], "calculations_ref": ["#/run/0/calculation/0", "#/run/0/calculation/5"]}],
    )


def test_graphml_round_trip(schema_2_0: Any, tmp_path: Path) -> None:
    g = reference_graph(_hostile(schema_2_0), containment=True)
    to_graphml(g, tmp_path / "g.graphml")
    back = nx.read_graphml(tmp_path / "g.graphml", force_multigraph=True)
    assert set(back.nodes) == set(g.nodes)
    assert back.number_of_edges() == g.number_of_edges()
    for node, data in g.nodes(data=True):
        assert back.nodes[node] == data
    assert sorted((u, v, d.get("quantity"), d.get("index")) for u, v, d in back.edges(data=True)) == sorted(
        (u, v, d.get("quantity"), d.get("index")) for u, v, d in g.edges(data=True)
    )


_DOT_STRING = r'"(?:[^"\\]|\\.)*"'


def _unquote(s: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), s[1:-1])


def test_dot_output_parses(schema_2_0: Any) -> None:
    g = reference_graph(_hostile(schema_2_0))
    dot = to_dot(g)
    lines = dot.strip().splitlines()
    assert lines[0].startswith("digraph ") and lines[-1] == "}"
    nodes, edges = {}, []
    for line in lines[3:-1]:
        m = re.fullmatch(rf"  ({_DOT_STRING}) -> ({_DOT_STRING}) \[(.*)\];", line)
        if m:
            edges.append((_unquote(m.group(1)), _unquote(m.group(2))))
            continue
        m = re.fullmatch(rf"  ({_DOT_STRING}) \[label=({_DOT_STRING}), (.*)\];", line)
        assert m, f"not a DOT statement: {line!r}"
        nodes[_unquote(m.group(1))] = _unquote(m.group(2))
    assert set(nodes) == set(g.nodes)
    assert sorted(edges) == sorted((u, v) for u, v in g.edges())
    assert nodes["E1#/workflow/0/task/0"] == 'task/0 (a "quoted" <b>\\ name\nnew line)'
    assert 'color="red"' in dot  # the dangling calculation/5


def test_draw(schema_2_0: Any) -> None:
    matplotlib = pytest.importorskip("matplotlib", reason="the plot extra is not installed")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    assert draw(reference_graph(_hostile(schema_2_0)), ax=ax) is ax
    plt.close(fig)


def test_draw_without_matplotlib(schema_2_0: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install 'archivemap\[plot\]'"):
        draw(nx.MultiDiGraph())


def test_not_a_section() -> None:
    with pytest.raises(TypeError):
        reference_graph([object()])


@pytest.mark.shared
def test_every_archive_alone_builds(schema_2_0: Any) -> None:
    for path in shared_archives():
        g = reference_graph(load(path, schema_2_0), containment=True)
        assert g.number_of_nodes() > 0
        assert to_text(g)


def test_progress_goes_to_stderr_and_can_be_off(capsys) -> None:
    import archivemap
    from archivemap.graph import reference_graph

    from .conftest import SAMPLES

    schema = archivemap.Schema(SAMPLES / "metainfo.json")
    roots = [archivemap.load(p, schema) for p in sorted((SAMPLES / "archives").glob("*.json"))]
    quiet = reference_graph(roots)
    assert capsys.readouterr().err == ""
    loud = reference_graph(roots, progress=True)
    assert "graph" in capsys.readouterr().err
    assert nx_equal(quiet, loud)


def nx_equal(a, b) -> bool:
    return sorted(a.nodes) == sorted(b.nodes) and sorted(a.edges) == sorted(b.edges)


def test_a_partly_downloaded_archive_says_its_graph_is_partial() -> None:
    # a lazily downloaded archive gave an empty graph and no dangling references, silently
    from archivemap.remote.client import Client
    from archivemap.server import LocalServer

    from .conftest import SAMPLES

    with LocalServer(SAMPLES / "archives") as server:
        client = Client(server.url)
        entry_id = next(client.entries({}, page_size=1))["entry_id"]
        partial = client.archive(entry_id, required={"metadata": {"entry_id": "*"}}, schema=str(SAMPLES / "metainfo.json"))
        with pytest.warns(UserWarning, match="partly downloaded.*resolve=True.*required='\\*'"):
            reference_graph(partial)
        whole = client.archive(entry_id, required="*", schema=str(SAMPLES / "metainfo.json"))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert reference_graph(whole).number_of_edges() > 0  # all of it here: nothing to say
