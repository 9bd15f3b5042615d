"""Hostile archives and schemas against the reader: bounded work, nothing changed or lost.

Each case here failed before the hardening of issue 12 (a hang, a crash outside the error
tree, or a value silently changed). Cases that could hang or eat memory run in a child
process under hard limits (see harness.py); the rest run in process.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

import archivemap
from archivemap import ArchivemapError, CyclicDefinitionError, ReferenceCycleError, SchemaMismatchWarning
from archivemap._json import parse_json
from archivemap.archive.references import parse_reference
from archivemap.metainfo.exports import load_environment
from archivemap.naming import python_name
from archivemap.paths import Key, format_archive_path, parse_archive_path
from archivemap_codegen import generate_files

from ..conftest import SAMPLES
from .harness import run_bounded

SAMPLE_ARCHIVE = SAMPLES / "archives" / "si2-single-point.archive.json"


@pytest.fixture(scope="module")
def schema() -> archivemap.Schema:
    return archivemap.Schema(SAMPLES / "metainfo.json")


def _archive() -> dict[str, Any]:
    return json.loads(SAMPLE_ARCHIVE.read_text())


def _q(name: str, type_: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"m_def": "nomad.metainfo.metainfo.Quantity", "name": name, "type": type_, **extra}


def _schema_of(sections: list[dict[str, Any]], package: str = "p") -> dict[str, Any]:
    return {"packages": [{"name": package, "section_definitions": sections}]}


# -- hangs and memory ---------------------------------------------------------------------------
def test_a_unit_expression_in_data_is_never_evaluated() -> None:
    result = run_bounded(
        """
        import json, warnings, archivemap
        schema = archivemap.Schema("samples/metainfo.json")
        data = json.load(open("samples/archives/si2-single-point.archive.json"))
        energy = data["run"][0]["calculation"][0]["energy"]["total"]
        energy["value"] = {"m_value": 1.0, "m_unit": "10**10**10"}
        archive = archivemap.load(data, schema)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = archive.run[0].calculation[0].energy.total.value
        print(value == {"m_value": 1.0, "m_unit": "10**10**10"}, any("unit" in str(w.message) for w in caught))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]


def test_reference_parsing_is_linear() -> None:
    result = run_bounded(
        """
        from archivemap.archive.references import parse_reference
        from archivemap.server._refs import parse_reference_url  # the server's parser too
        for n in (4000, 16000):  # 64 kB and 256 kB of '/upload/archive/' before a '?'
            assert parse_reference("/upload/archive/" * n + "?#/x") is None
            parse_reference("../upload/archive/" * n + "#/x")
            assert parse_reference_url("/upload/archive/" * n + "?#/x", "u") is None
            assert parse_reference_url("/upload/archive/" * n + "#", "u") is None
        print("ok")
        """,
        seconds=20,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_cyclic_bases_and_deep_definitions_are_errors_or_fine_never_recursion() -> None:
    result = run_bounded(
        """
        import archivemap
        from archivemap.errors import CyclicDefinitionError
        cyclic = {"packages": [{"name": "p", "section_definitions": [
            {"name": "A", "base_sections": ["/packages/0/section_definitions/1"]},
            {"name": "B", "base_sections": ["/packages/0/section_definitions/0"]}]}]}
        try:
            schema = archivemap.Schema(cyclic)
            schema.class_for(schema.section_def("p.A"))
        except CyclicDefinitionError:
            print("cyclic")
        inner = {"name": "S0"}
        node = inner
        for i in range(1, 1500):
            child = {"name": f"S{i}"}
            node["inner_section_definitions"] = [child]
            node = child
        schema = archivemap.Schema({"packages": [{"name": "p", "section_definitions": [inner]}]})
        for sdef in schema.environment.all_sections():
            schema.class_for(sdef)
        print("deep")
        chain = [{"name": f"B{i}", "base_sections": [f"/packages/0/section_definitions/{i + 1}"]}
                 for i in range(1499)] + [{"name": "B1499"}]
        schema = archivemap.Schema({"packages": [{"name": "p", "section_definitions": chain}]})
        try:  # a chain of 1,500 bases: refused (more than 64), without walking it recursively
            schema.class_for(schema.section_def("p.B0"))
        except archivemap.DefinitionError as error:
            assert "more than 64 base sections" in str(error), error
            print("chain")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["cyclic", "deep", "chain"]


def test_reference_cycle_enumeration_is_bounded() -> None:
    result = run_bounded(
        """
        import networkx as nx
        from archivemap.graph import reference_cycle_groups, reference_cycles
        g = nx.MultiDiGraph()
        for i in range(12):  # every section references every other: >10^8 simple cycles
            for j in range(12):
                if i != j:
                    g.add_edge(f"e#/{i}", f"e#/{j}", kind="reference")
        print(len(reference_cycles(g, limit=500)), len(reference_cycle_groups(g)[0]))
        """,
        seconds=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["500", "12"]


def test_a_quantity_reference_to_itself_is_a_reference_cycle_error() -> None:
    env = {"packages": [{"name": "nomad.datamodel.datamodel", "section_definitions": [
        {"name": "EntryArchive", "quantities": [
            _q("loop", {"type_kind": "quantity_reference", "type_data": "/packages/0/section_definitions/0/quantities/0"}),
        ]},
    ]}]}
    archive = archivemap.load({"loop": "#/loop"}, archivemap.Schema(env))
    with pytest.raises(ReferenceCycleError, match="/loop"):
        archive.loop  # noqa: B018
    with pytest.raises(ReferenceCycleError):
        archive.m_resolve("#/loop")


# -- values never changed or lost ---------------------------------------------------------------
def test_integers_of_any_size_round_trip(schema: archivemap.Schema) -> None:
    data = _archive()
    data["metadata"]["big"] = 2**70 + 1
    data["metadata"]["negative_big"] = -(2**80) - 3
    text = json.dumps(data).encode()
    assert parse_json(text)["metadata"]["big"] == 2**70 + 1
    out = archivemap.load(text, schema).to_dict()
    assert out["metadata"]["big"] == 2**70 + 1 and isinstance(out["metadata"]["big"], int)
    assert out["metadata"]["negative_big"] == -(2**80) - 3


def test_null_stays_null(schema: archivemap.Schema) -> None:
    data = _archive()
    data["run"][0]["calculation"] = None
    data["run"][0]["program"] = None
    archive = archivemap.load(data, schema)
    # an unset single sub-section reads as Absent: falsy and equal to None
    assert archive.run[0].calculation == [] and archive.run[0].program == None  # noqa: E711
    assert not archive.run[0].program
    out = archive.to_dict()
    assert out["run"][0]["calculation"] is None and out["run"][0]["program"] is None
    assert out == data


def test_an_int32_holding_a_fraction_is_kept_as_written(schema: archivemap.Schema) -> None:
    data = _archive()
    data["run"][0]["method"][0]["atom_parameters"][0]["atom_number"] = 1.5
    archive = archivemap.load(data, schema)
    with pytest.warns(SchemaMismatchWarning, match="atom_number"):
        value = archive.run[0].method[0].atom_parameters[0].atom_number
    assert value == 1.5 and isinstance(value, float)
    assert archive.to_dict() == data


def test_names_that_collide_with_internals_or_each_other_map_apart_and_round_trip() -> None:
    env = _schema_of([
        {"name": "EntryArchive", "quantities": [
            _q("_m_data", {"type_kind": "python", "type_data": "str"}),
            _q("match", {"type_kind": "python", "type_data": "str"}),
            _q("match_", {"type_kind": "python", "type_data": "str"}),
            _q("to_dict", {"type_kind": "python", "type_data": "str"}),
        ]},
    ], package="nomad.datamodel.datamodel")
    schema = archivemap.Schema(env)
    data = {"_m_data": "a", "match": "b", "match_": "c", "to_dict": "d"}
    archive = archivemap.load(data, schema)
    names = {n: python_name(n) for n in data}
    assert len(set(names.values())) == 4 and not names["_m_data"].startswith("_")
    assert [getattr(archive, names[n]) for n in data] == ["a", "b", "c", "d"]
    assert archive.to_dict() == data


@pytest.mark.parametrize(
    "path",
    [("#weird", 0, "x"), ("data", "#tag"), ("a.b", 1), ("run", 0, "energy")],
)
def test_paths_with_unusual_names_round_trip(path: tuple[Any, ...]) -> None:
    assert parse_archive_path(format_archive_path(path)) == path


def test_paths_no_spelling_can_hold_are_refused() -> None:
    with pytest.raises(ValueError):
        format_archive_path(("a/b.c",))
    with pytest.raises(ValueError):
        format_archive_path(("#x", Key("k")))
    with pytest.raises(ValueError):
        format_archive_path((" padded.",))


def test_only_an_exact_api_envelope_is_unwrapped(schema: archivemap.Schema) -> None:
    data = _archive()
    data["entry_id"] = data["metadata"]["entry_id"]
    data["data"] = {"archive": {"looks": "like an answer"}}
    assert archivemap.load(data, schema).to_dict() == data  # an archive: nothing dropped
    answer = {"entry_id": "x", "required": "*", "data": {"entry_id": "x", "archive": _archive()}}
    assert archivemap.load(answer, schema).to_dict() == _archive()


@pytest.mark.parametrize(
    "where, value",
    [
        (("metadata", "upload_create_time"), 1e300),  # a numeric datetime out of range
        (("metadata", "upload_create_time"), float("nan")),
        (("metadata", "upload_create_time"), [1, 2]),
        (("run", 0, "calculation", 0, "dielectric_tensor"), {"re": "a", "im": [1]}),
        (("run", 0, "calculation", 0, "dielectric_tensor"), {"re": [[1]], "im": {"x": 1}}),
        (("run", 0, "system", 0, "atoms", "positions"), [[1, "x", None]]),
        (("run", 0, "method", 0, "atom_parameters", 0, "atom_number"), 2**70),
        (("run", 0, "method", 0, "atom_parameters", 0, "atom_number"), True),
        (("run", 0, "calculation", 0, "energy", "total", "value"), {"m_value": [1, 2], "m_unit": "meter ** 1000"}),
    ],
)
def test_every_json_value_loads_or_raises_inside_the_error_tree(
    schema: archivemap.Schema, where: tuple[Any, ...], value: Any
) -> None:
    data = _archive()
    node: Any = data
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    archive = archivemap.load(data, schema)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SchemaMismatchWarning)
        try:
            archive.m_get(".".join(str(k) if isinstance(k, str) else f"[{k}]" for k in where).replace(".[", "["))
        except ArchivemapError:
            pass
        assert archive.to_dict() == json.loads(json.dumps(data)) or value != value  # NaN != NaN


def test_keyed_sub_sections_with_malformed_indices_load(schema: archivemap.Schema) -> None:
    data = _archive()
    calcs = data["run"][0]["calculation"]
    data["run"][0]["calculation"] = {
        "b": {**calcs[0], "m_parent_index": "one"},
        "a": {**calcs[0], "m_parent_index": True},
        "c": {**calcs[0], "m_parent_index": 0},
    }
    archive = archivemap.load(data, schema)
    assert len(archive.run[0].calculation) == 3
    assert archive.to_dict() == data


def test_references_into_malformed_lists_never_crash(schema: archivemap.Schema) -> None:
    data = _archive()
    data["run"][0]["system"] = [1, "x", None]
    archive = archivemap.load(data, schema)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SchemaMismatchWarning)
        assert archive.m_resolve("#/run/0/system/0") == 1  # what is there, as written
        for ref in ("#/run/0/system/1/atoms", "#/run/0/system/2", "#/run/0/system/--1", "#/run/0/system/9"):
            with pytest.raises(ArchivemapError):
                archive.m_resolve(ref)
        assert archive.run[0].calculation[0].system_ref == 1
    assert archive.to_dict() == data


# -- codegen ------------------------------------------------------------------------------------
def test_a_name_ending_in_a_newline_is_no_identifier() -> None:
    assert python_name("energy\n") != "energy\n" and python_name("energy\n").isidentifier()
    env = _schema_of([{"name": "S\n", "quantities": [_q("x\n", {"type_kind": "python", "type_data": "str"})]}])
    files = generate_files(env)
    for name, text in files.items():
        if name.endswith(".py"):
            compile(text, name, "exec")


def test_unparseable_references_are_not_references() -> None:
    for text in ("", "#", "?#x", "../upload/archive/?x#/a", "http://h/uploads/u/raw/#x?y"):
        parsed = parse_reference(text)
        assert parsed is None or isinstance(parsed.fragment, tuple)


def test_hostile_definitions_load_or_raise_definition_errors(tmp_path: Path) -> None:
    for env in (
        {"packages": "x"},
        _schema_of([{"name": 3}]),
        _schema_of([{"name": "A", "base_sections": ["/packages/9/section_definitions/0"]}]),
        _schema_of([{"name": "A", "quantities": [{"name": "q", "type": {"type_kind": "numpy", "type_data": "object"}}]}]),
    ):
        try:
            schema = archivemap.Schema(env)
            for sdef in schema.environment.all_sections():
                schema.class_for(sdef)
        except ArchivemapError:
            pass
    with pytest.raises(CyclicDefinitionError):
        load_environment(_schema_of([
            {"name": "A", "base_sections": ["/packages/0/section_definitions/0"]},
        ])).section("p.A").all_base_sections


# -- sources ------------------------------------------------------------------------------------
def test_a_file_that_is_not_a_zip_is_an_archive_data_error(tmp_path: Path, schema: archivemap.Schema) -> None:
    fake = tmp_path / "archives.zip"
    fake.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(archivemap.ArchiveDataError, match="zip"):
        archivemap.ZipSource(fake, schema)


def test_a_zip_bomb_member_is_skipped_not_inflated(tmp_path: Path) -> None:
    result = run_bounded(
        f"""
        import io, json, warnings, zipfile, archivemap
        path = {str(tmp_path / "bomb.zip")!r}
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("good.json", open("samples/archives/si2-single-point.archive.json").read())
            with zf.open("bomb.json", "w") as member:  # 512 MB of zeros, 0.5 MB compressed
                chunk = b"0" * (1 << 24)
                for _ in range(32):
                    member.write(chunk)
        schema = archivemap.Schema("samples/metainfo.json")
        source = archivemap.ZipSource(path, schema, max_member_bytes=16 << 20)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ids = source.entry_ids()
        print(len(ids), any("bomb.json" in str(w.message) for w in caught))
        """,
        seconds=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "True"]


def test_a_fifo_in_an_archives_folder_is_skipped(tmp_path: Path, schema: archivemap.Schema) -> None:
    import os

    (tmp_path / "a.archive.json").write_text(SAMPLE_ARCHIVE.read_text())
    os.mkfifo(tmp_path / "pipe.archive.json")
    result = run_bounded(
        f"""
        import archivemap
        schema = archivemap.Schema("samples/metainfo.json")
        archive = archivemap.load({str(SAMPLE_ARCHIVE)!r}, schema, archives={str(tmp_path)!r})
        print(archive.m_context.source.entry_ids())
        """,
        seconds=30,
    )
    assert result.returncode == 0, result.stderr
    assert "133Gj4_SgWS0a0dp1Cv0h1JjOfB8" in result.stdout


# -- Schema(url) ----------------------------------------------------------------------------------
def test_schema_from_a_url_fails_typed_and_bounded(tmp_path: Path) -> None:
    result = run_bounded(
        """
        import gzip, threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        import archivemap
        from archivemap.errors import DefinitionError
        from archivemap.metainfo import exports
        exports.MAX_METAINFO_BYTES = 8 << 20
        bomb = gzip.compress(b" " * (512 << 20), compresslevel=9)  # 512 MB of blanks, ~0.5 MB

        class Bomb(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(bomb)))
                self.end_headers()
                self.wfile.write(bomb)
            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Bomb)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        for url in (f"http://127.0.0.1:{server.server_port}/gui/artifacts.js", "http://127.0.0.1:1/api/v1"):
            try:
                archivemap.Schema(url)
            except DefinitionError as error:
                print(type(error).__name__, "larger than" in str(error) or "cannot download" in str(error))
        server.shutdown()
        """,
        seconds=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["DefinitionError", "True", "DefinitionError", "True"]
