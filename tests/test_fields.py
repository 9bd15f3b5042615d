"""Field metadata: the per-class walk table and the stored reference flag."""

from __future__ import annotations

import attrs

from archivemap.metainfo.fields import ITEMS, SECTION, VALUE, FieldMeta, quantity, sub_section, walk_steps


@attrs.define(slots=True)
class _Base:
    energy: object = quantity("energy_total", "energy")
    system: object = sub_section("system", repeats=True, section="System")
    method: object = sub_section("method", section="Method")
    # an attribute spelled like another property's NOMAD name: the NOMAD name must win
    energy_total: object = quantity("x_energy_total", "energy_total")


@attrs.define(slots=True)
class _Child(_Base):
    extra: object = quantity("extra")


def test_walk_steps_name_attribute_and_kind() -> None:
    steps = walk_steps(_Base)
    assert steps["system"] == ("system", ITEMS)
    assert steps["method"] == ("method", SECTION)
    assert steps["energy"] == ("energy", VALUE)  # attribute name, where no NOMAD name is spelled so
    assert steps["energy_total"] == ("energy", VALUE)  # the NOMAD name, not the attribute
    assert steps["x_energy_total"] == ("energy_total", VALUE)


def test_walk_steps_of_a_subclass_are_its_own() -> None:
    assert "extra" not in walk_steps(_Base)  # computed first for the base, inherited as an attribute
    assert walk_steps(_Child)["extra"] == ("extra", VALUE)
    assert walk_steps(_Child)["system"] == ("system", ITEMS)
    assert "extra" not in walk_steps(_Base)


def test_is_reference_is_derived_and_no_argument() -> None:
    assert FieldMeta("r", "r", "quantity", type_kind="reference").is_reference
    assert FieldMeta("q", "q", "quantity", type_kind="quantity_reference").is_reference
    assert not FieldMeta("v", "v", "quantity", type_kind="numpy").is_reference
    assert "is_reference" not in repr(FieldMeta("v", "v", "quantity"))
    assert attrs.fields(FieldMeta).is_reference.init is False
