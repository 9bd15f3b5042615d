"""Fetch at the leaf, batches, and absent sub-sections that say where they are (issues 9, 11).

Against the bundled server answering ``required`` as NOMAD's own code does, over the shared
real archives: attribute chains through sections that were not downloaded send nothing until a
quantity is read, then one request for exactly that path; ``with archive.batch():`` turns a
block's reads into one request; a chain through a sub-section the archive does not have ends
in an :class:`~archivemap.errors.AbsentSectionError` naming the path, the entry and what is
there instead of ``'NoneType' object has no attribute``.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import archivemap
from archivemap import Absent, AbsentSectionError, Pending
from archivemap.metainfo.fields import fields_by_name
from archivemap.paths import Key, parse_path
from archivemap.server import LocalServer

from .conftest import SHARED

pytestmark = pytest.mark.shared

METAINFO = SHARED / "metainfo" / "nomad-2.0.0-metainfo.json"
VASP, FHI_AIMS = "1WGSYo1RrGFEIcM17Re4kjHC7k6p", "Ev7IoH2IX5SXLGn8il__qfm3OyEq"

# Ten leaf values of the VASP entry, each read by an attribute chain from one calculation that
# was not downloaded (single sub-sections, items at an index, and a list of another branch).
LEAVES: list[tuple[str, Callable[[Any, Any], Any]]] = [
    ("energy.highest_occupied", lambda a, c: c.energy.highest_occupied),
    ("energy.lowest_unoccupied", lambda a, c: c.energy.lowest_unoccupied),
    ("energy.total.value", lambda a, c: c.energy.total.value),
    ("energy.free.value", lambda a, c: c.energy.free.value),
    ("energy.total_t0.value", lambda a, c: c.energy.total_t0.value),
    ("forces.total.value", lambda a, c: c.forces.total.value),
    ("stress.total.value", lambda a, c: c.stress.total.value),
    ("scf_iteration[0].energy.total.value", lambda a, c: c.scf_iteration[0].energy.total.value),
    ("scf_iteration[16].energy.total.value", lambda a, c: c.scf_iteration[16].energy.total.value),
    ("run[0].system[0].atoms.labels", lambda a, c: a.run[0].system[0].atoms.labels),
]


@pytest.fixture(scope="module")
def served() -> Iterator[LocalServer]:
    server = LocalServer(SHARED / "archives", metainfo=METAINFO).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def whole(schema_2_0: archivemap.Schema) -> archivemap.Section:
    return archivemap.load(SHARED / "archives" / "vasp-si16-singlepoint.recorded.archive.json", schema_2_0)


def _same(a: Any, b: Any) -> bool:
    return str(a) == str(b)


def test_ten_leaves_by_attribute_chains_cost_one_request_each(served, schema_2_0, whole) -> None:
    client = archivemap.Client(served.url)
    archive = client.archive(VASP, {"metadata": "*"}, schema=schema_2_0)
    served.clear_log()
    calc = archive.run[0].calculation[0]
    assert isinstance(calc, Pending) and served.requests == []  # nothing asked on the way
    for path, read in LEAVES:
        before = len(served.requests)
        value = read(archive, calc)
        expected = read(whole, whole.run[0].calculation[0])
        assert _same(value, expected), path
        assert len(served.requests) == before + 1, path
    # each request asked for exactly one path: no section's subtree came along
    assert all(json.dumps(r.body["required"]).count('"*"') - json.dumps(r.body["required"]).count('"m_def"') == 1
               for r in served.requests)


def test_a_batch_reads_ten_leaves_in_one_request(served, schema_2_0, whole) -> None:
    client = archivemap.Client(served.url)
    archive = client.archive(VASP, {"metadata": "*"}, schema=schema_2_0)
    served.clear_log()
    calc = archive.run[0].calculation[0]
    with archive.batch():
        values = [read(archive, calc) for _, read in LEAVES]
        assert served.requests == []  # placeholders only, until the block ends
    assert len(served.requests) == 1
    for (path, read), value in zip(LEAVES, values):
        assert _same(value, read(whole, whole.run[0].calculation[0])), path
    assert values[2].to("eV").magnitude == pytest.approx(-86.7194, abs=1e-3)  # a pint quantity
    # the data is in the archive now: reading again costs nothing
    assert _same(calc.energy.total.value, values[2]) and len(served.requests) == 1


def test_using_a_placeholder_inside_the_batch_fetches_what_was_collected(served, schema_2_0) -> None:
    archive = archivemap.Client(served.url).archive(VASP, {"metadata": "*"}, schema=schema_2_0)
    served.clear_log()
    calc = archive.run[0].calculation[0]
    with archive.batch():
        total = calc.energy.total.value
        fermi_free = calc.energy.free.value
        assert total.to("eV").magnitude < 0  # used here: one request for both
        assert len(served.requests) == 1
        forces = calc.forces.total.value
    assert len(served.requests) == 2 and forces.shape == (16, 3) and fermi_free == total


def test_seed_path_after_workflow_is_one_small_request(served, schema_2_0) -> None:
    client = archivemap.Client(served.url)
    archive = client.archive(VASP, {"workflow": "*"}, schema=schema_2_0)
    before = (client.requests_made, client.bytes_received)
    energy = archive.workflow[0].calculation_result_ref.energy.total.value.to("eV")
    assert energy.magnitude == pytest.approx(-86.7194, abs=1e-3)
    assert client.requests_made - before[0] == 1
    assert client.bytes_received - before[1] <= 4096


def test_pending_sections_get_their_real_class_from_the_one_request(served, schema_2_0) -> None:
    # workflow2 of the FHI-aims entry is a GeometryOptimization, declared as a Workflow
    archive = archivemap.Client(served.url).archive(FHI_AIMS, {"metadata": "*"}, schema=schema_2_0)
    served.clear_log()
    workflow = archive.workflow2
    assert isinstance(workflow, Pending) and served.requests == []
    assert workflow.m_entry_id == FHI_AIMS and workflow.m_path() == "/workflow2"  # no request
    settled = workflow.m_settle()
    assert type(settled).__name__ == "GeometryOptimization" and len(served.requests) == 1
    assert served.requests[0].body["required"] == {"workflow2": {"m_def": "*"}}


def test_a_path_the_server_lacks_is_absent_after_one_request(served, schema_2_0) -> None:
    archive = archivemap.Client(served.url).archive(FHI_AIMS, {"metadata": "*"}, schema=schema_2_0)
    served.clear_log()
    calc = archive.workflow2.results.calculation_result_ref
    with pytest.raises(AbsentSectionError) as info:
        calc.energy.total.value  # noqa: B018
    error = info.value
    assert error.entry_id == FHI_AIMS and error.path.endswith("/energy/total")
    # a partial archive only knows what was downloaded of the section next to it
    assert "'total' is not set in /run/0/calculation/5/energy" in str(error)
    assert "what was downloaded of it" in str(error)
    asked = len(served.requests)
    assert not calc.energy.total and calc.energy.total == None  # noqa: E711  now known: no request
    assert len(served.requests) == asked


def test_fetching_off_refuses_at_the_first_missing_step(served, schema_2_0) -> None:
    archive = archivemap.Client(served.url).archive(VASP, {"metadata": "*"}, schema=schema_2_0, fetch=False)
    served.clear_log()
    with pytest.raises(archivemap.NotDownloadedError):
        archive.run  # noqa: B018
    assert served.requests == []


# ------------------------------------------------------------------ local archives (issue 11)
@pytest.fixture(scope="module")
def aims(schema_2_0: archivemap.Schema) -> archivemap.Section:
    return archivemap.load(SHARED / "archives" / "fhiaims-alas-geometry-optimization.parsed.archive.json", schema_2_0)


def test_reading_through_an_absent_sub_section_names_path_entry_and_siblings(aims) -> None:
    calc = aims.workflow2.results.calculation_result_ref
    with pytest.raises(AbsentSectionError) as info:
        calc.energy.total.value  # noqa: B018
    text = str(info.value)
    assert "/run/0/calculation/5/energy/total" in text and FHI_AIMS in text
    assert "what it has: fermi" in text  # the present sibling
    assert isinstance(info.value, AttributeError) and isinstance(info.value, archivemap.AbsentError)


def test_absent_reads_like_none_where_it_can(aims) -> None:
    total = aims.workflow2.results.calculation_result_ref.energy.total
    assert isinstance(total, Absent)
    assert not total and total == None and not (total != None)  # noqa: E711
    assert getattr(total, "value", "default") == "default" and not hasattr(total, "value")
    assert total.m_path() == "/run/0/calculation/5/energy/total"
    assert repr(total) == "Absent('/run/0/calculation/5/energy/total')"
    again = pickle.loads(pickle.dumps(total))
    assert isinstance(again, Absent) and again.m_path() == total.m_path()
    with pytest.raises(AbsentSectionError, match="assign a new section"):
        total.value = 1.0
    # what is set is never shadowed: the sibling reads as before, and to_dict is unchanged
    assert aims.workflow2.results.calculation_result_ref.energy.fermi is not None
    assert "total" not in aims.to_dict()["run"][0]["calculation"][5]["energy"]


# ------------------------------------------------------------------ what a new user tried
LAMMPS = "W8WtgZtrEbJuCUCl76SN0Pp2Topu"


def test_items_by_index_are_planned_not_downloaded_whole(served, schema_2_0) -> None:
    client = archivemap.Client(served.url)
    archive = client.archive(LAMMPS, {"metadata": "*"}, schema=schema_2_0)
    served.clear_log()
    labels = [len(archive.run[0].system[i].atoms.labels) for i in range(5)]
    assert labels == [320] * 5 and len(served.requests) == 5  # one exact path each
    assert all(r.response_bytes < 10_000 for r in served.requests)  # no whole system came along
    served.clear_log()
    walked = archive.run[0].calculation[4].forces.total  # walking alone sends nothing
    assert isinstance(walked, Pending) and served.requests == []


def test_the_function_form_of_batch_returns_plain_values_after_one_request(served, schema_2_0, whole) -> None:
    archive = archivemap.Client(served.url).archive(VASP, {"metadata": "*"}, schema=schema_2_0)
    calc = archive.run[0].calculation[0]
    served.clear_log()
    total, fermi, labels = archive.batch(
        lambda: (calc.energy.total.value, calc.energy.fermi, archive.run[0].system[0].atoms.labels)
    )
    assert len(served.requests) == 1
    assert fermi is None and type(labels) is list and json.dumps(labels)  # plain values
    assert _same(total, whole.run[0].calculation[0].energy.total.value)


def test_placeholders_show_and_convert_as_their_values(served, schema_2_0) -> None:
    import numpy as np

    archive = archivemap.Client(served.url).archive(VASP, {"metadata": "*"}, schema=schema_2_0)
    with archive.batch():
        labels = archive.run[0].system[0].atoms.labels
        total = archive.run[0].calculation[0].energy.total.value
    assert isinstance(labels, archivemap.Placeholder)
    assert repr(labels).startswith("['Si'") and np.asarray(labels).shape == (16,)
    assert repr(total).startswith("<Quantity(") and total.to("eV").magnitude < 0


def test_to_dict_of_a_pending_section_downloads_it_whole(served, schema_2_0, whole) -> None:
    archive = archivemap.Client(served.url).archive(VASP, {"metadata": "*"}, schema=schema_2_0)
    served.clear_log()
    out = archive.run[0].calculation[0].energy.to_dict()
    assert out == whole.run[0].calculation[0].energy.to_dict() and len(served.requests) == 1


def test_a_typo_below_an_absent_section_is_still_a_typo(aims) -> None:
    total = aims.workflow2.results.calculation_result_ref.energy.total
    with pytest.raises(archivemap.NotInSchemaError):
        total.valu  # noqa: B018
    assert getattr(total, "value", None) is None
    with pytest.raises(AbsentSectionError, match=r"\.to_dict\(\) cannot be called"):
        total.to_dict()


def test_sections_of_the_embedded_schema_pickle_small(aims) -> None:
    # the embedded metainfo is in every installation: pickled by name, not by content
    data = pickle.dumps(aims.run[0].calculation[0].energy)
    assert len(data) < 200_000
    again = pickle.loads(data)
    assert again.fermi == aims.run[0].calculation[0].energy.fermi


def test_paths_the_declared_classes_cannot_plan_are_planned_by_names(served, schema_2_0) -> None:
    # workflow2 is declared a Workflow; its results' calculation_result_ref exists only on the
    # real class (GeometryOptimization): the server reads the names, and follows the reference
    archive = archivemap.Client(served.url).archive(FHI_AIMS, {"metadata": "*"}, schema=schema_2_0)
    served.clear_log()
    fermi = archive.m_get("workflow2.results.calculation_result_ref.energy.fermi")
    assert fermi.magnitude == 0.0 and len(served.requests) == 1
    assert type(archive.workflow2).__name__ == "GeometryOptimization"  # its m_def came along
    # a path by names the server refuses (a spec below a plain quantity: NOMAD answers 500)
    # is walked step by step instead, to the error a file would give
    served.clear_log()
    with pytest.raises(archivemap.AbsentError, match="cannot index into the value"):
        archive.m_get("workflow2.results.calculation_result_ref.energy.fermi.x")


# ------------------------------------------------------------------ lazily read = read from the file
def _golden_paths() -> list[tuple[str, str, list[str]]]:
    if not SHARED.is_dir():
        return []
    out = []
    for golden in sorted((SHARED / "golden").glob("*.json")):
        data = json.loads(golden.read_text())
        archive = json.loads((SHARED / "archives" / data["archive"]).read_text())
        paths = [c["path"] for c in data["checks"] if c.get("kind") == "quantity"]
        out.append((data["archive"], archive["metadata"]["entry_id"], paths))
    return out


def _shown(read: Callable[[], Any]) -> str:
    try:
        return repr(read())
    except LookupError as error:  # absent here and there alike
        return type(error).__name__


@pytest.mark.parametrize("name, entry_id, paths", _golden_paths(), ids=lambda v: v if isinstance(v, str) else "")
def test_lazy_and_batched_reads_equal_the_file(served, schema_2_0, name, entry_id, paths) -> None:
    """Every golden value of every shared archive, read from ``{"metadata": "*"}`` one at a
    time and in one batch, is what the same read of the whole file gives."""
    source = archivemap.DirectorySource(SHARED / "archives", schema_2_0)
    local = archivemap.load(SHARED / "archives" / name, schema_2_0, archives=source)
    expected = [_shown(lambda p=p: local.m_get(p)) for p in paths]
    client = archivemap.Client(served.url)
    lazy = client.archive(entry_id, {"metadata": "*"}, schema=schema_2_0)
    assert [_shown(lambda p=p: lazy.m_get(p)) for p in paths] == expected
    batched = client.archive(entry_id, {"metadata": "*"}, schema=schema_2_0)
    values = batched.batch(lambda: [_shown(lambda p=p: batched.m_get(p)) for p in paths])
    assert values == expected
    # and by attribute chains (Pending paths, lists learned for negative indices)
    chained = client.archive(entry_id, {"metadata": "*"}, schema=schema_2_0)
    local_chains = [_shown(lambda p=p: _chain(local, p)) for p in paths]
    assert [_shown(lambda p=p: _chain(chained, p)) for p in paths] == local_chains


def _chain(root: Any, path: str) -> Any:
    """``run[0].calculation[-1].energy`` read with attributes and ``[i]``, as a user writes it."""
    node = root
    for seg in parse_path(path):
        if isinstance(seg, Key):
            return root.m_get(path)  # a key selector: what m_get is for
        if isinstance(seg, int):
            node = node[seg]
            continue
        fm = fields_by_name(type(node)).get(seg) if isinstance(node, archivemap.Section) else None
        node = getattr(node, fm.attribute if fm is not None else seg)  # pending: names are attributes
    if isinstance(node, Absent):
        raise KeyError(node.m_path())
    return node


# ------------------------------------------------------------------ what a code review found
def test_a_batch_through_a_reference_into_another_entry_ends(schema_2_0) -> None:
    # A's calculation refers into entry B, which lacks the target: the follow-up goes to B,
    # once, and the block ends; the read says what is missing
    vasp = json.loads((SHARED / "archives" / "vasp-si16-singlepoint.recorded.archive.json").read_text())
    a, b = json.loads(json.dumps(vasp)), json.loads(json.dumps(vasp))
    a["metadata"].update(entry_id="A" * 28, mainfile="a.json")
    b["metadata"].update(entry_id="B" * 28, mainfile="b.json", upload_id=a["metadata"]["upload_id"])
    a["run"][0]["calculation"][0]["system_ref"] = f"../upload/archive/{'B' * 28}#/workflow2"
    with LocalServer({"A" * 28: a, "B" * 28: b}, metainfo=METAINFO) as server:
        archive = archivemap.Client(server.url).archive("A" * 28, {"metadata": "*"}, schema=schema_2_0)
        with archive.batch():
            labels = archive.run[0].calculation[0].system_ref.atoms.labels
        asked = [r.path for r in server.requests]
        assert len(asked) <= 6 and any("B" * 28 in path for path in asked)
        with pytest.raises(archivemap.AbsentError):
            str(labels)


def test_a_list_of_references_to_targets_not_here_is_not_kept(served, schema_2_0) -> None:
    archive = archivemap.Client(served.url).archive(FHI_AIMS, {"metadata": "*"}, schema=schema_2_0)
    results = archive.workflow2.results
    first = results.calculations_ref[0]
    assert isinstance(first, Pending)
    first.energy.fermi  # noqa: B018  now here
    assert isinstance(results.calculations_ref[0], archivemap.Section)  # resolved again, now real
    # derived through the list of references, not as every calculation's energy
    spec = archivemap.required_for(
        lambda a: [c.energy.total.value for c in a.workflow2.results.calculations_ref[:2]],
        archivemap.Client(served.url), FHI_AIMS, schema=schema_2_0,
    )
    assert spec == {"workflow2": {"results": {"calculations_ref": {"energy": {"total": {"value": "*"}}}}}}


def test_reading_through_an_unset_reference_is_a_typed_error(served, schema_2_0) -> None:
    archive = archivemap.Client(served.url).archive(LAMMPS, {"metadata": "*"}, schema=schema_2_0)
    method = archive.run[0].calculation[0].method_ref  # LAMMPS sets none
    assert not method
    with pytest.raises(AbsentSectionError):
        method.electronic.method  # noqa: B018
    with pytest.raises(archivemap.NotInSchemaError):
        method.no_such_property  # noqa: B018


def test_a_batch_read_that_fails_raises_when_used_not_at_the_block_end(served, schema_2_0) -> None:
    archive = archivemap.Client(served.url).archive(VASP, {"metadata": "*"}, schema=schema_2_0)
    calc = archive.run[0].calculation
    with archive.batch():
        here = calc[0].energy.total.value
        missing = calc[3].energy.total.value  # VASP has one calculation
    assert here.to("eV").magnitude < 0
    with pytest.raises(archivemap.AbsentItemError) as info:
        str(missing)
    assert isinstance(info.value, IndexError)


def test_far_apart_items_are_grouped_by_list_name_not_by_the_indices_above() -> None:
    from archivemap.remote.fetch import dense_groups

    paths = [("run", 0, "calculation", 0, "energy"), ("run", 1, "calculation", 4199, "energy"),
             ("run", 0, "calculation", 1, "energy")]
    assert dense_groups(paths) == [[0, 2], [1]]
