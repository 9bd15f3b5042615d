"""Performance invariants that hold on any machine: counts and traced memory, never wall-clock time.

* Classes of an archive's own definitions (custom schemas) are built once per definition
  content, however often the entry is loaded, and loading it again and again keeps memory flat.
* Parsed reference strings are cached in a bounded cache.
* Reading every quantity of an archive keeps no more than the parsed dict (plus a margin).
"""

from __future__ import annotations

import gc
import tracemalloc
import warnings

import pytest

from archivemap._json import read_json
from archivemap.archive import references
from archivemap.archive.load import load
from archivemap.archive.schema import CONTENT_CACHE_SIZE, Schema
from archivemap.archive.sections import Section
from archivemap.errors import SchemaMismatchWarning

from .conftest import SHARED

ELN = SHARED / "archives" / "eln-inheriting-sections.recorded.archive.json"


def _read_all(root: Section) -> int:
    """Read every property of every section (builds every class the archive needs)."""
    n = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SchemaMismatchWarning)
        for section in root.m_contents():
            for fm in section.m_set_fields():
                try:
                    getattr(section, fm.attribute)
                except LookupError:
                    pass
                n += 1
    return n


def _custom_classes(root: Section) -> set[type]:
    return {type(s) for s in root.m_contents() if type(s).m_qualified_name.startswith("entry_id:")}


@pytest.mark.shared
def test_custom_schema_classes_are_built_once_and_memory_stays_flat(schema_2_0: Schema) -> None:
    data = ELN.read_bytes()
    first = load(data, schema_2_0)
    _read_all(first)
    classes = _custom_classes(first)
    assert classes, "the entry's data uses its own section definitions"
    built = schema_2_0.classes_built
    del first

    def one_load() -> None:
        root = load(data, schema_2_0)
        _read_all(root)
        assert _custom_classes(root) == classes  # the very same class objects

    for _ in range(100):  # warm: caches of units, paths, references fill up
        one_load()
    gc.collect()
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(900):
            one_load()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert schema_2_0.classes_built == built  # 1,000 loads, classes built once
    # flat: 900 loads may not keep more than a few hundred bytes each (one entry's classes
    # alone are ~100 kB; rebuilding them per load kept ~120 kB per load)
    assert after - before < 200_000, f"{(after - before) / 900:.0f} bytes kept per load"


@pytest.mark.shared
def test_equal_definitions_share_classes_across_archives(schema_2_0: Schema) -> None:
    raw = read_json(ELN)
    a = load(raw, schema_2_0)
    b = load(read_json(ELN), schema_2_0)  # another dict, another Environment, same content
    assert type(a.data) is type(b.data)
    assert a.data.m_def is not None and a.data.m_def.qualified_name == type(b.data).m_qualified_name
    assert a.to_dict() == raw and b.to_dict() == raw


@pytest.mark.shared
def test_changed_definitions_get_their_own_class(schema_2_0: Schema) -> None:
    raw = read_json(ELN)
    changed = read_json(ELN)
    root_def = changed["definitions"]["section_definitions"][4]
    quantities = root_def.setdefault("quantities", [])
    quantities.append({"name": "extra_value", "type": {"type_kind": "python", "type_data": "float"}})
    changed["data"]["extra_value"] = 2.5
    a = load(raw, schema_2_0)
    b = load(changed, schema_2_0)
    assert type(a.data) is not type(b.data)
    assert b.data.extra_value == 2.5
    assert not hasattr(type(a.data), "extra_value") or a.data.extra_value is None


def test_content_cache_is_bounded() -> None:
    assert 1000 <= CONTENT_CACHE_SIZE <= 100_000


def test_parsed_references_are_cached_and_bounded() -> None:
    references.parse_reference.cache_clear()
    first = references.parse_reference("#/run/0/system/1")
    again = references.parse_reference("#/run/0/system/1")
    assert first is again and first is not None and first.fragment == ("run", "0", "system", "1")
    info = references.parse_reference.cache_info()
    assert info.hits >= 1 and info.maxsize is not None and info.maxsize <= 1 << 16
    assert references.parse_reference("not a reference") is None
    assert references.parse_reference(None) is None  # type: ignore[arg-type]


@pytest.mark.shared
def test_memory_after_reading_everything_is_about_the_parsed_dict(schema_2_0: Schema) -> None:
    import orjson  # noqa: PLC0415

    data = (SHARED / "archives" / "lammps-methane-nvt-md.parsed.archive.json").read_bytes()
    _read_all(load(data, schema_2_0))  # warm: classes, units, caches are built once, not per archive
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        parsed = orjson.loads(data)
        dict_kept = tracemalloc.get_traced_memory()[0] - base
        del parsed
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        root = load(data, schema_2_0)
        _read_all(root)
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert kept <= 1.1 * dict_kept, f"kept {kept / dict_kept:.2f}x the parsed dict"
    assert root.to_dict() == orjson.loads(data)


@pytest.mark.shared
def test_arrays_standing_in_for_raw_lists_write_back_exactly(schema_2_0: Schema) -> None:
    import numpy as np  # noqa: PLC0415
    import orjson  # noqa: PLC0415

    from archivemap.archive.base import raw_data  # noqa: PLC0415

    archive = {
        "run": [{"system": [
            {"atoms": {"positions": [[0.0, 1.5, 2.25], [3.0, -0.0, 1e-300]], "velocities": [[0.0, 1, 2.0]]}},
            {"atoms": {"positions": [[0.5, None, 2.0]], "lattice_vectors": [[1.0, 0.0], [0.0, 1.0]]}},
        ]}],
    }
    data = orjson.dumps(archive)
    root = load(data, schema_2_0)
    _read_all(root)
    first, second = root.run[0].system
    assert isinstance(raw_data(first.atoms)["positions"], np.ndarray)  # floats only: the array stands in
    assert raw_data(first.atoms)["velocities"] == [[0.0, 1, 2.0]]  # an int: the raw list is kept
    assert raw_data(second.atoms)["positions"] == [[0.5, None, 2.0]]  # null (NaN): kept
    assert orjson.dumps(root.to_dict()) == data  # exact, types included
    assert first.atoms.m_reference("positions") == archive["run"][0]["system"][0]["atoms"]["positions"]
    # a dict given by the caller is never changed
    given = orjson.loads(data)
    root = load(given, schema_2_0)
    _read_all(root)
    assert orjson.dumps(given) == data and not isinstance(raw_data(root.run[0].system[0].atoms)["positions"], np.ndarray)
