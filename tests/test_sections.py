"""Lazy sections on the samples: navigation, units, references, errors, round trips."""

from __future__ import annotations

import copy
import json
import re
import warnings

import numpy as np
import pint
import pytest

import archivemap
from archivemap.errors import (
    AbsentError,
    DanglingReferenceError,
    NotInSchemaError,
    ReferenceCycleError,
    SchemaMismatchWarning,
    UnsupportedReferenceError,
)
from archivemap._json import read_json

from .conftest import SAMPLES

SINGLE = SAMPLES / "archives" / "si2-single-point.archive.json"
OPT = SAMPLES / "archives" / "si2-geometry-optimization.archive.json"


@pytest.fixture(scope="module")
def schema() -> archivemap.Schema:
    return archivemap.Schema(SAMPLES / "metainfo.json")


def test_seed_path_gives_energy_in_ev(schema):
    archive = archivemap.load(SINGLE, schema)
    calc = archive.workflow[0].calculation_result_ref
    raw = read_json(SINGLE)
    index = int(raw["workflow"][0]["calculation_result_ref"].rsplit("/", 1)[1])
    assert calc is archive.run[0].calculation[index]  # the section itself, not a proxy
    energy = calc.energy.total.value
    assert isinstance(energy, pint.Quantity)
    assert energy._REGISTRY is pint.get_application_registry().get()
    expected = raw["run"][0]["calculation"][index]["energy"]["total"]["value"] / 1.602176634e-19
    assert energy.to("eV").magnitude == pytest.approx(expected, rel=1e-12)


def test_arrays_are_one_quantity_around_one_array(schema):
    archive = archivemap.load(SINGLE, schema)
    positions = archive.run[0].system[0].atoms.positions
    assert isinstance(positions, pint.Quantity)
    assert isinstance(positions.magnitude, np.ndarray)
    assert positions.magnitude.shape == (len(archive.run[0].system[0].atoms.labels), 3)


def test_laziness_builds_only_what_is_read(schema):
    archive = archivemap.load(OPT, schema)
    run = archive.run[0]
    # nothing below run was converted yet: the calculation slot is still empty
    with pytest.raises(AttributeError):
        object.__getattribute__(run, "calculation")
    run.calculation[-1].energy  # noqa: B018
    calc0 = run.calculation[0]
    with pytest.raises(AttributeError):
        object.__getattribute__(calc0, "energy")


def test_round_trip_exact_for_every_sample(schema):
    for path in sorted((SAMPLES / "archives").glob("*.json")):
        raw = read_json(path)
        archive = archivemap.load(copy.deepcopy(raw), schema)
        assert archive.to_dict() == raw
        for section in archive.m_contents():  # read everything, then write back
            list(section.m_quantities())
        assert archive.to_dict() == raw


def test_assignment_is_written_back_in_definition_units(schema):
    archive = archivemap.load(SINGLE, schema)
    ureg = pint.get_application_registry()
    archive.run[0].calculation[0].energy.total.value = ureg.Quantity(-1.0, "eV")
    out = archive.to_dict()
    assert out["run"][0]["calculation"][0]["energy"]["total"]["value"] == pytest.approx(-1.602176634e-19)


def test_navigation_api(schema):
    archive = archivemap.load(OPT, schema)
    calc = archive.m_get("run[0].calculation[-1]")
    n = len(archive.run[0].calculation)
    assert calc.m_path() == f"/run/0/calculation/{n - 1}"
    assert calc.m_parent is archive.run[0]
    assert calc.m_root is archive
    assert calc.m_parent_index == n - 1 and calc.m_parent_sub_section == "calculation"
    assert calc.m_def.qualified_name == "runschema.calculation.Calculation"
    assert archive.m_resolve(calc.m_path()) is calc
    names = [name for name, _ in calc.m_quantities()]
    assert "system_ref" in names or "method_ref" in names
    assert all(s.m_root is archive for s in archive.m_contents())


def test_reference_forms(schema):
    archive = archivemap.load(OPT, schema)
    system = archive.run[0].system[0]
    assert archive.m_resolve("#/run/0/system/0") is system
    assert archive.m_resolve("/run/0/system/0") is system
    assert archive.m_resolve("#run/0/system/0") is system
    assert archive.m_resolve("#/run/0/system/-1") is archive.run[0].system[-1]
    assert archive.m_resolve("#/run/0/system/0@" + "a" * 40) is system
    labels = archive.m_resolve("#/run/0/system/0/atoms/labels/1")
    assert labels == system.atoms.labels[1]
    method = archive.run[0].method[0]
    if method.atom_parameters:
        label = method.atom_parameters[0].label
        assert archive.m_resolve(f"#/run/0/method/0/atom_parameters/{label}") is method.atom_parameters[0]
    refs = archive.workflow[0].calculations_ref
    assert isinstance(refs, list) and all(r.m_def.name == "Calculation" for r in refs)
    assert archive.workflow[0].m_reference("calculation_result_ref").startswith(("#", "/"))


def test_dangling_reference_names_source_reference_and_segment(schema):
    raw = read_json(SINGLE)
    raw["workflow"][0]["calculation_result_ref"] = "#/run/0/calculation/7"
    archive = archivemap.load(raw, schema)
    with pytest.raises(DanglingReferenceError) as info:
        archive.workflow[0].calculation_result_ref  # noqa: B018
    err = info.value
    assert err.source_path == "/workflow/0/calculation_result_ref"
    assert err.reference == "#/run/0/calculation/7"
    assert err.segment == "7"
    assert isinstance(err, KeyError)


def test_list_of_references_with_a_dangling_item_names_the_item(schema):
    raw = read_json(OPT)
    n = len(raw["run"][0]["calculation"])
    raw["workflow"][0]["calculations_ref"] = ["#/run/0/calculation/0", f"#/run/0/calculation/{n}"]
    archive = archivemap.load(raw, schema)
    with pytest.raises(DanglingReferenceError) as info:
        archive.workflow[0].calculations_ref  # noqa: B018
    assert info.value.source_path == "/workflow/0/calculations_ref/1"
    assert info.value.segment == str(n)


def test_list_of_references_with_one_into_another_entry_needs_a_source(schema):
    raw = read_json(OPT)
    raw["workflow"][0]["calculations_ref"] = [
        "#/run/0/calculation/0", "../upload/archive/abcdefabcdefabcdefabcdefabcd#/run/0/calculation/0"]
    archive = archivemap.load(raw, schema)
    with pytest.raises(UnsupportedReferenceError, match="source"):
        archive.workflow[0].calculations_ref  # noqa: B018


def test_a_reference_to_itself_is_a_cycle_not_a_recursion(schema):
    raw = read_json(SINGLE)
    raw["workflow"][0]["calculation_result_ref"] = "#/workflow/0/calculation_result_ref"
    archive = archivemap.load(raw, schema)
    with pytest.raises(ReferenceCycleError):
        archive.workflow[0].calculation_result_ref  # noqa: B018


def test_references_read_are_the_targets_the_general_resolver_finds(schema):
    # reading a reference takes a shortcut for references into the same archive; the
    # general resolver (m_resolve, which every other form goes through) must agree
    archive = archivemap.load(OPT, schema)
    seen = 0
    for section in archive.m_contents():
        for fm in section.m_set_fields():
            if fm.kind != "quantity" or not fm.is_reference:
                continue
            raw = section.m_reference(fm.name)
            value = getattr(section, fm.attribute)
            if isinstance(raw, list):
                assert [archive.m_resolve(r) for r in raw] == value
                assert all(a is b for a, b in zip([archive.m_resolve(r) for r in raw], value))
            else:
                assert archive.m_resolve(raw) is value
            seen += 1
    assert seen > 10


def test_other_entry_without_source_is_a_clear_error(schema):
    raw = read_json(SINGLE)
    raw["workflow"][0]["calculation_result_ref"] = "../upload/archive/abcdefabcdefabcdefabcdefabcd#/run/0/calculation/0"
    archive = archivemap.load(raw, schema)
    with pytest.raises(UnsupportedReferenceError, match="source"):
        archive.workflow[0].calculation_result_ref  # noqa: B018


def test_cross_entry_reference_with_a_folder(schema, tmp_path):
    one, two = read_json(SINGLE), read_json(OPT)
    upload = two["metadata"]["upload_id"]
    one["metadata"]["upload_id"] = upload
    mainfile = two["metadata"]["mainfile"]
    one["workflow"][0]["calculation_result_ref"] = f"../upload/archive/mainfile/{mainfile}#/run/0/calculation/-1"
    (tmp_path / "one.json").write_text(json.dumps(one))
    (tmp_path / "two.json").write_text(json.dumps(two))
    archive = archivemap.load(tmp_path / "one.json", schema, archives=tmp_path)
    target = archive.workflow[0].calculation_result_ref
    assert target.m_entry_id == two["metadata"]["entry_id"]
    assert target.m_path() == f"/run/0/calculation/{len(two['run'][0]['calculation']) - 1}"


def test_three_kinds_of_missing(schema):
    archive = archivemap.load(SINGLE, schema)
    with pytest.raises(NotInSchemaError) as not_in_schema:
        archive.run[0].no_such_thing  # noqa: B018
    assert isinstance(not_in_schema.value, AttributeError)
    assert "/run/0" in str(not_in_schema.value)
    with pytest.raises(AbsentError) as absent:
        archive.m_get("run[0].calculation[99]")
    assert isinstance(absent.value, KeyError)
    assert archive.run[0].calculation[0].energy.m_is_set("total")
    with pytest.raises(NotInSchemaError):
        archive.m_get("run[0].nonsense")


def test_unknown_and_mistyped_data_is_kept_with_a_warning(schema):
    raw = read_json(SINGLE)
    raw["run"][0]["program"]["name"] = ["VASP", "extra"]  # a list where a string is defined
    raw["run"][0]["legacy_key"] = {"kept": True}
    raw["run"][0]["calculation"][0]["m_def"] = "no.such.Section"
    original = copy.deepcopy(raw)
    archive = archivemap.load(raw, schema)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert archive.run[0].program.name == ["VASP", "extra"]
        assert archive.run[0].calculation[0].m_def.name == "Calculation"
    messages = [str(w.message) for w in caught if issubclass(w.category, SchemaMismatchWarning)]
    assert any("/run/0/program/name" in m for m in messages)
    assert any("no.such.Section" in m for m in messages)
    assert archive.run[0].m_extras == {"legacy_key": {"kept": True}}
    assert archive.to_dict() == original


def test_constructed_sections_serialise(schema):
    archive = archivemap.load(SINGLE, schema)
    energy_cls = type(archive.run[0].calculation[0].energy)
    entry_cls = type(archive.run[0].calculation[0].energy.total)
    ureg = pint.get_application_registry()
    energy = energy_cls(total=entry_cls(value=ureg.Quantity(2.0, "eV")))
    assert energy.total.m_parent is energy
    out = energy.to_dict()
    assert out["total"]["value"] == pytest.approx(2.0 * 1.602176634e-19)


def test_m_def_polymorphism_by_name_id_and_fragment(schema):
    raw = read_json(SINGLE)
    env = schema.environment
    sp = env.section("simulationworkflowschema.single_point.SinglePoint") if env.by_qualified_name(
        "simulationworkflowschema.single_point.SinglePoint") else None
    if sp is None:
        pytest.skip("samples have no SinglePoint")
    for m_def in (sp.qualified_name, sp.definition_id, f"{sp.qualified_name}@{sp.definition_id}"):
        data = copy.deepcopy(raw)
        data["workflow2"] = {"m_def": m_def}
        archive = archivemap.load(data, schema)
        assert archive.workflow2.m_def is sp, m_def
        assert archive.to_dict() == data
    data = copy.deepcopy(raw)
    data["workflow2"] = {"m_def_id": sp.definition_id}
    assert archivemap.load(data, schema).workflow2.m_def is sp


def test_full_storage_quantities_carry_their_own_unit(schema):
    raw = read_json(SINGLE)
    raw["run"][0]["calculation"][0]["energy"]["total"]["value"] = {
        "value": {"m_value": 2.0, "m_unit": "electron_volt", "m_original_unit": "eV"}
    }
    original = copy.deepcopy(raw)
    archive = archivemap.load(raw, schema)
    value = archive.run[0].calculation[0].energy.total.value
    assert value.to("eV").magnitude == pytest.approx(2.0)
    assert archive.to_dict() == original


def test_complex_datetime_and_enum_values():
    metainfo = {"packages": [{"name": "nomad.datamodel.datamodel", "section_definitions": [{
        "name": "EntryArchive",
        "quantities": [
            {"name": "z", "type": {"type_kind": "numpy", "type_data": "complex128"}, "shape": [2]},
            {"name": "when", "type": {"type_kind": "custom", "type_data": "nomad.metainfo.data_type.Datetime"}},
            {"name": "kind", "type": {"type_kind": "enum", "type_data": ["bulk", "surface"]}},
            {"name": "blob", "type": {"type_kind": "custom", "type_data": "nomad.metainfo.data_type.Bytes"}},
        ],
    }]}]}
    data = {"z": {"re": [1.0, 3.0], "im": [2.0, -1.0]}, "when": "2024-01-02T03:04:05+00:00",
            "kind": "SystemType.surface", "blob": "AAFoaQ=="}
    archive = archivemap.load(copy.deepcopy(data), archivemap.Schema(metainfo))
    assert list(archive.z) == [1 + 2j, 3 - 1j]
    assert archive.when.year == 2024 and archive.when.utcoffset().total_seconds() == 0
    assert archive.kind == "surface"  # legacy Class.value spelling
    assert archive.blob == b"\x00\x01hi"
    assert archive.to_dict() == data
    archive.z = archive.z * 2
    assert archive.to_dict()["z"] == {"re": [2.0, 6.0], "im": [4.0, -2.0]}


def test_appended_sections_are_adopted_and_referenced(schema):
    archive = archivemap.load(read_json(OPT), schema)
    calc_cls = type(archive.run[0].calculation[0])
    new = calc_cls()
    archive.run[0].calculation.append(new)
    archive.workflow[0].calculation_result_ref = new
    out = archive.to_dict()
    n = len(out["run"][0]["calculation"])
    assert out["workflow"][0]["calculation_result_ref"] == f"#/run/0/calculation/{n - 1}"
    stray = calc_cls()
    archive.workflow[0].calculation_result_ref = stray
    with pytest.raises(archivemap.errors.ArchiveDataError, match="not part of an archive"):
        archive.to_dict()


def test_first_read_from_many_threads_gives_one_object(schema):
    import threading

    for _ in range(20):
        archive = archivemap.load(read_json(OPT), schema)
        run = archive.run[0]
        seen = []
        barrier = threading.Barrier(8)

        def read() -> None:
            barrier.wait()
            seen.append(run.calculation)

        threads = [threading.Thread(target=read) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(s is seen[0] for s in seen)


def test_list_values_do_not_alias_the_input(schema):
    raw = read_json(SINGLE)
    archive = archivemap.load(raw, schema)
    labels = archive.run[0].system[0].atoms.labels
    labels.append("X")
    assert raw["run"][0]["system"][0]["atoms"]["labels"][-1] != "X"


def test_load_accepts_bytes_file_objects_and_environments(schema):
    raw = read_json(SINGLE)
    data = SINGLE.read_bytes()
    with open(SINGLE, "rb") as handle:
        from_file = archivemap.load(handle, schema)
    from_bytes = archivemap.load(data, schema)
    from_env = archivemap.load(SINGLE, archivemap.load_environment(SAMPLES / "metainfo.json"))
    for archive in (from_file, from_bytes, from_env):
        assert archive.to_dict() == raw
    with pytest.raises(archivemap.errors.ArchiveDataError, match="not valid JSON"):
        archivemap.load(b"{not json", schema)
    with pytest.raises(archivemap.errors.ArchiveDataError, match="JSON object"):
        archivemap.load(b"[1, 2]", schema)


def test_classes_are_built_only_for_the_sections_read():
    fresh = archivemap.Schema(SAMPLES / "metainfo.json", classes=None)
    fresh.generated = None  # run-time classes only, even if a generated package is registered
    archive = archivemap.load(SINGLE, fresh)
    archive.run[0].calculation[0].energy.total.value  # noqa: B018
    built = {cls.m_qualified_name for cls in fresh._def_by_class}
    assert built <= {
        "nomad.datamodel.datamodel.EntryArchive", "nomad.datamodel.data.ArchiveSection", "runschema.run.Run",
        "runschema.calculation.Calculation", "runschema.calculation.BaseCalculation",
        "runschema.calculation.Energy", "runschema.calculation.EnergyEntry",
    }
    assert len(built) < len(list(fresh.environment.all_sections())) / 3


def test_nomad_unit_names_are_in_the_application_registry():
    from archivemap.units import registry

    ureg = registry()
    assert ureg.Quantity(1, "a_u_energy").to("hartree").magnitude == pytest.approx(1.0)
    assert ureg.Quantity(1, "ppm").to("").magnitude == pytest.approx(1e-6)
    assert ureg.Quantity(1, "atomic_unit_of_electric_field_gradient").check("[electric_field] / [length]")
    assert ureg.Quantity(-1.3893980273911905e-17, "joule").to("eV").magnitude == pytest.approx(-86.71940396, rel=1e-9)


def test_works_inside_a_running_event_loop():
    """Jupyter runs an event loop; the synchronous API must not need one of its own."""
    import asyncio

    from archivemap.remote.client import Client
    from archivemap.server import LocalServer

    async def notebook_cell() -> int:
        with LocalServer(SAMPLES / "archives") as srv:
            return len(list(Client(srv.url).entries()))

    assert asyncio.run(notebook_cell()) == 3


def test_samples_are_what_make_samples_writes():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, str(SAMPLES / "make_samples.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_misspelt_name_is_answered_with_the_names_it_may_mean() -> None:
    archive = archivemap.load(SAMPLES / "archives" / "si2-single-point.archive.json")
    for read, expected in (
        (lambda: archive.runn, "did you mean 'run'?"),
        (lambda: archive.run[0].sytem, "did you mean 'system'?"),
        (lambda: archive.m_get("run[0].calculaton.energy"), "did you mean 'calculation'?"),
    ):
        with pytest.raises(NotInSchemaError, match=re.escape(expected)):
            read()
    with pytest.raises(NotInSchemaError) as probe:  # a probe, not a typo: no guesses
        archive.run[0]._repr_latex_  # noqa: B018
    assert "did you mean" not in str(probe.value)
    assert getattr(archive.run[0], "shape", None) is None


def test_json_text_given_as_a_path_says_how_to_pass_it(schema) -> None:
    with pytest.raises(archivemap.ArchiveDataError, match=r"JSON text where it reads a path.*text\.encode\(\)"):
        archivemap.load('{"run": []}', schema)
    assert archivemap.load(b'{"run": []}', schema).run == []
    with pytest.raises(FileNotFoundError):  # a missing file whose name starts with a bracket
        archivemap.load("[2024-05] si16/vasp.archive.json", schema)


def test_loading_a_folder_says_what_reads_folders() -> None:
    with pytest.raises(IsADirectoryError, match="DirectorySource"):
        archivemap.load(SAMPLES / "archives")


def test_repr_says_which_entry_a_root_is_and_where_a_section_sits(schema) -> None:
    archive = archivemap.load(SINGLE, schema)
    meta = read_json(SINGLE)["metadata"]
    assert repr(archive) == f"EntryArchive(entry_id={meta['entry_id']!r}, mainfile={meta['mainfile']!r})"
    assert repr(archive.run[0]) == "Run(/run/0)"
    assert repr(archivemap.load({}, schema)) == "EntryArchive()"


def test_an_assignment_made_while_a_reference_is_first_read_wins(schema, monkeypatch) -> None:
    # the first read of a reference walks to its target without a lock; an assignment made
    # by another thread meanwhile must not be overwritten with the old target
    import threading

    from archivemap.archive import sections as sections_module

    archive = archivemap.load(OPT, schema)
    holder = archive.workflow[0]
    other = archive.run[0].calculation[0]
    walk = sections_module.local_reference

    def walk_while_another_thread_assigns(section, fm):
        target = walk(section, fm)
        assigner = threading.Thread(target=setattr, args=(holder, "calculation_result_ref", other))
        assigner.start()
        assigner.join()
        return target

    monkeypatch.setattr(sections_module, "local_reference", walk_while_another_thread_assigns)
    first = holder.calculation_result_ref
    assert holder.calculation_result_ref is other and first is other
    assert holder.to_dict()["calculation_result_ref"] == "#/run/0/calculation/0"


@pytest.mark.shared
def test_a_property_of_an_unresolved_m_def_says_where_it_is_kept() -> None:
    # without its schema entry, the powder mixture's data is read as EntryData; its test_1
    # is kept in m_extras, and the error said only "has no property"
    from .conftest import SHARED

    archive = archivemap.load(SHARED / "archives" / "eln-refs-powder-mixture.recorded.archive.json")
    with pytest.warns(SchemaMismatchWarning, match="cannot be resolved"):
        data = archive.data
    with pytest.raises(NotInSchemaError, match=r"kept in \.m_extras\['test_1'\] \(its m_def '\.\./upload/raw/"):
        data.test_1  # noqa: B018
    assert "test_1" in data.m_extras
