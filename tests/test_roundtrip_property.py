"""Property test: whatever JSON an archive holds, ``to_dict(load(d)) == d``.

Archives are generated from the sample schema's shape, with random values of random types in
every slot (so most values do not fit their definitions), unknown keys, ``None`` list holes and
both list and keyed-dict forms of repeating sub-sections.
"""

from __future__ import annotations

import copy
import warnings

from hypothesis import given, settings
from hypothesis import strategies as st

import archivemap

from .conftest import SAMPLES

SCHEMA = archivemap.Schema(SAMPLES / "metainfo.json")

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False), st.text(max_size=8)
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
        "calculation": st.lists(st.one_of(st.none(), calculation), max_size=3),
        "system": st.one_of(
            st.lists(system, max_size=2),
            st.dictionaries(st.text("abc", min_size=1, max_size=3), system.map(lambda d: {**d, "m_parent_index": 0}), max_size=2),
        ),
        "program": st.one_of(json_values, st.fixed_dictionaries({}, optional={"name": json_values})),
    },
)
archives = st.fixed_dictionaries({}, optional={"run": st.lists(run, max_size=2), "extra_root_key": json_values})


@settings(max_examples=200)
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
                except archivemap.ReferenceResolutionError:
                    pass  # dangling references raise on access, by design
    assert archive.to_dict() == original
    assert data == original  # loading never modifies the input
