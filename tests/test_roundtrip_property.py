"""Property test: whatever JSON an archive holds, ``to_dict(load(d)) == d``.

Archives are generated from the sample schema's shape, with random values of random types in
every slot (so most values do not fit their definitions), unknown keys, ``None`` list holes and
both list and keyed-dict forms of repeating sub-sections.
"""

from __future__ import annotations

import copy
import json
import warnings

from hypothesis import given
from hypothesis import strategies as st

import archivemap

from .conftest import SAMPLES

SCHEMA = archivemap.Schema(SAMPLES / "metainfo.json")

scalars = st.one_of(  # integers of any size: beyond 64 bits they must stay exact (issue 12)
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8
)
numbers = st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=3)
energy_entry = st.fixed_dictionaries({}, optional={"value": st.one_of(st.floats(allow_nan=False), json_values)})
calculation = st.fixed_dictionaries(
    {},
    optional={
        "energy": st.fixed_dictionaries({}, optional={"total": energy_entry, "junk": json_values}),
        "system_ref": st.sampled_from(["#/run/0/system/0", "/run/0/system/0", "not a ref", "#/nowhere/9"]),
        "forces": st.fixed_dictionaries({}, optional={"total": st.fixed_dictionaries({}, optional={"value": st.lists(numbers, max_size=3)})}),
        "unknown": json_values,
    },
)
system = st.fixed_dictionaries({}, optional={"atoms": st.fixed_dictionaries({}, optional={"labels": json_values, "positions": json_values})})
run = st.fixed_dictionaries(
    {},
    optional={
        "calculation": st.one_of(st.none(), st.lists(st.one_of(st.none(), calculation), max_size=3)),
        "system": st.one_of(
            st.lists(system, max_size=2),
            st.dictionaries(st.text("abc", min_size=1, max_size=3), system.map(lambda d: {**d, "m_parent_index": 0}), max_size=2),
        ),
        "program": st.one_of(st.none(), json_values, st.fixed_dictionaries({}, optional={"name": json_values})),
    },
)
archives = st.fixed_dictionaries({}, optional={"run": st.lists(run, max_size=2), "extra_root_key": json_values})


@given(archives)
def test_round_trip_of_arbitrary_data(data: dict) -> None:
    original = copy.deepcopy(data)
    archive = archivemap.load(data, SCHEMA)
    assert archive.to_dict() == original
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for section in archive.m_contents():
            for fm in section.m_set_fields():
                try:
                    getattr(section, fm.attribute)
                except archivemap.ArchivemapError:
                    pass  # dangling references raise on access, by design; nothing else escapes
    assert archive.to_dict() == original
    assert data == original  # loading never modifies the input


# Names that collide with the section's internals or with each other, and names that start
# with "#" (issue 12): each maps to its own attribute, and every value round-trips.
CLASHING = ["match", "match_", "_m_data", "_m_key", "to_dict", "#tag", "class", "class_"]
CLASH_SCHEMA = archivemap.Schema({"packages": [{"name": "nomad.datamodel.datamodel", "section_definitions": [
    {"name": "EntryArchive", "quantities": [
        {"name": name, "type": {"type_kind": "python", "type_data": "str"}} for name in CLASHING
    ] + [{"name": "n", "type": {"type_kind": "numpy", "type_data": "int64"}}]},
]}]})
clash_archives = st.dictionaries(
    st.one_of(st.sampled_from(CLASHING + ["n"]), st.text(max_size=4).map(lambda t: "#" + t)),
    json_values,
    max_size=6,
)


@given(clash_archives)
def test_round_trip_with_colliding_and_hash_names(data: dict) -> None:
    original = copy.deepcopy(data)
    text = json.dumps(data).encode()  # through bytes: big integers must survive parsing too
    archive = archivemap.load(text, CLASH_SCHEMA)
    assert archive.to_dict() == original
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fm in archive.m_set_fields():
            value = getattr(archive, fm.attribute)
            if isinstance(original.get(fm.name), str) and fm.type_kind == "python":
                assert value == original[fm.name]  # each name reads its own value
    assert archive.to_dict() == original
