"""NOMAD's own spec forms, typed; classes from complete definitions only; m_def without probes.

The negative-index and ``resolve-inplace`` cases replay NOMAD's own answers from
``../shared/nomad-data/conformance`` (made by NOMAD's entries router) through the bundled
server, which answers them identically (tests/server/test_conformance.py).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

import archivemap
from archivemap.server import LocalServer

from .conftest import SHARED

pytestmark = pytest.mark.shared

METAINFO = SHARED / "metainfo" / "nomad-2.0.0-metainfo.json"


@pytest.fixture(scope="module")
def served():
    server = LocalServer(SHARED / "archives", metainfo=METAINFO).start()
    try:
        yield server
    finally:
        server.stop()


def _cases() -> list[dict[str, Any]]:
    path = SHARED / "conformance" / "required.jsonl.gz"
    if not path.is_file():
        return []
    out = []
    for line in gzip.open(path, "rt"):
        case = json.loads(line)
        text = json.dumps(case["request"])
        if case["endpoint"] != "entries/{id}/archive/query" or case["status"] != 200 or not case.get("response"):
            continue
        spec = case["request"]["required"]
        if not isinstance(spec, dict):
            continue
        keys = set(spec) - {"resolve-inplace"}
        # NOMAD's documented forms: the last calculation of (each) run, and resolve-inplace
        # answers; other negative selections (on reference lists, slices) are not anchored yet
        if keys in ({"run[0]"}, {"run"}) and "calculation[-1]" in json.dumps(spec) or (
            spec.get("resolve-inplace") is True and "-" not in text.replace("resolve-inplace", "")
        ):
            out.append(case)
    return out


def _is_subset(small: Any, big: Any) -> bool:
    if isinstance(small, dict):
        return isinstance(big, dict) and all(k in big and _is_subset(v, big[k]) for k, v in small.items())
    if isinstance(small, list):
        return isinstance(big, list) and len(small) <= len(big) and all(_is_subset(a, b) for a, b in zip(small, big))
    return small == big


def test_negative_indices_and_resolve_inplace_work_typed(served, schema_2_0) -> None:
    cases = _cases()
    assert len(cases) > 50
    client = archivemap.Client(served.url)
    checked = 0
    for case in cases:
        spec = case["request"]["required"]
        archive = client.archive(case["entry_id"], required=spec, schema=schema_2_0, fetch=False)
        answer = case["response"]["data"]["archive"]
        if spec.get("resolve-inplace") is not True and "run" in answer and "calculation[-1]" in json.dumps(spec):
            nomad_item = answer["run"][0]["calculation"][0]
            ours = archive.run[0].calculation[-1]
            assert _is_subset(nomad_item, ours.to_dict()), case["spec_index"]
            checked += 1
    assert checked > 0


def test_calculation_minus_one_is_placed_where_it_is(served, schema_2_0) -> None:
    client = archivemap.Client(served.url)
    lammps = json.loads((SHARED / "archives" / "lammps-methane-nvt-md.parsed.archive.json").read_text())
    entry_id = lammps["metadata"]["entry_id"]
    archive = client.archive(entry_id, required={"run[0]": {"calculation[-2]": {"energy": "*"}}}, schema=schema_2_0)
    before = client.requests_made
    calc = archive.run[0].calculation[-2]
    assert calc.m_path() == f"/run/0/calculation/{len(lammps['run'][0]['calculation']) - 2}"
    assert len(archive.run[0].calculation) == len(lammps["run"][0]["calculation"])
    assert calc.energy.total.value.magnitude == pytest.approx(lammps["run"][0]["calculation"][-2]["energy"]["total"]["value"])
    assert client.requests_made == before  # the list length was learned once, up front


def test_classes_come_from_complete_definitions_only(tmp_path: Path, schema_2_0) -> None:
    archive_data = {
        "metadata": {"entry_id": "customSchemaEntry0000000001", "upload_id": "up1", "mainfile": "c.archive.json"},
        "definitions": {"name": "custom", "section_definitions": [{
            "name": "MySection", "base_sections": ["nomad.datamodel.data.EntryData"],
            "quantities": [{"name": "my_quantity", "type": {"type_kind": "python", "type_data": "str"}, "shape": []}],
        }]},
        "data": {"m_def": "#/definitions/section_definitions/0", "my_quantity": "hello"},
    }
    (tmp_path / "c.archive.json").write_text(json.dumps(archive_data))
    server = LocalServer(tmp_path).start()
    try:
        archive = archivemap.Client(server.url).archive(
            "customSchemaEntry0000000001", required={"metadata": "*"}, schema=schema_2_0
        )
        assert len(archive.definitions.section_definitions) == 1  # learns names only
        assert archive.data.my_quantity == "hello"  # the class is built from whole definitions
        assert type(archive.data).__name__ == "MySection"
    finally:
        server.stop()


def test_qualified_m_def_needs_no_definitions_request(served, schema_2_0) -> None:
    vasp = json.loads((SHARED / "archives" / "fhiaims-alas-geometry-optimization.parsed.archive.json").read_text())
    client = archivemap.Client(served.url)
    seen = len(served.requests)
    archive = client.archive(vasp["metadata"]["entry_id"], required={"workflow2": "*"}, schema=schema_2_0)
    assert type(archive.workflow2).__name__ == "GeometryOptimization"  # its m_def, resolved
    assert archive.workflow2.tasks[0].m_def is not None
    bodies = [json.dumps(record.body or {}) for record in served.requests[seen:]]
    assert bodies and not any("definitions" in body for body in bodies)


def test_no_schema_argument_anywhere(served) -> None:
    # the bundled server serves no gui/artifacts.js: the embedded NOMAD 2.0 schema is used
    client = archivemap.Client(served.url)
    archive = client.archive("1WGSYo1RrGFEIcM17Re4kjHC7k6p", required={"workflow": "*"})
    before = client.requests_made
    energy = archive.workflow[0].calculation_result_ref.energy.total.value.to("eV")
    assert energy.magnitude == pytest.approx(-86.7194, abs=1e-3)
    assert client.requests_made == before + 1  # the seed path: exactly one request
    for _, root in client.archives({"entry_id": "1WGSYo1RrGFEIcM17Re4kjHC7k6p"}, {"workflow": "*"}):
        assert root.workflow[0].m_reference("calculation_result_ref") == "#/run/0/calculation/0"


SUBSTANCES, BASE_SCHEMA = "AkeMNBjzHdEWJmv2w8GVaw9drWRu", "RYcY1pQC7GkErLJaMQHaNhAxW_oN"


def test_a_definition_in_an_entry_of_the_same_download_is_not_asked_for(served, schema_2_0) -> None:
    # the substance list's m_def names a section of the base-sections schema entry, which the
    # same bulk download holds whole: resolving the class must not ask for its definitions
    golden = json.loads((SHARED / "golden" / "eln-refs-substance-list.recorded.json").read_text())
    paths = [check["path"] for check in golden["checks"] if check.get("kind") == "quantity"]
    client = archivemap.Client(served.url)
    seen = len(served.requests)
    for entry_id, root in client.archives(None, "*", schema=schema_2_0, batch_size=10):
        if entry_id == SUBSTANCES:
            values = [root.m_get(path) for path in paths]
            assert type(root.data.contents[0]).__name__ != "ArchiveSection" and all(v is not None for v in values)
    asked = [record.path for record in served.requests[seen:]]
    assert asked == ["entries/archive/query"] * 2  # 12 entries, two pages of ten
    assert client.requests_made == 2
