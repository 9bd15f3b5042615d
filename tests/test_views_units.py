"""Display units: presets, overrides, pint's preferred units as fallback, the molar context."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pint
import pytest

from archivemap.units import registry
from archivemap.views.units import (
    MOLAR_CONTEXT,
    PRESETS,
    convert,
    current,
    display_unit,
    display_units,
    molar_registry,
    to_display,
    unit_text,
)
from archivemap.archive.load import load
from tests.conftest import SHARED

ureg = registry()


@pytest.mark.parametrize(
    "stored, shown",
    [
        ("joule", "eV"), ("meter", "Å"), ("newton", "eV/Å"), ("pascal", "GPa"), ("joule / meter ** 3", "GPa"),
        ("kelvin", "K"), ("second", "ps"), ("kilogram", "Da"), ("meter / second", "Å/ps"), ("1 / meter", "1/Å"),
        ("hartree", "eV"), ("bohr", "Å"), ("joule / kelvin", "eV/K"), ("meter ** 3", "Å³"), ("coulomb", "e"),
    ],
)
def test_materials_preset(stored: str, shown: str) -> None:
    assert unit_text(display_unit(stored)) == shown


def test_what_has_no_simple_display_unit_stays_as_stored() -> None:
    # pint's preferred units find at most two factors, or nothing is changed
    for stored in ("kilogram * meter ** 2", "joule * second", "kilogram / second", "ampere", "volt", "tesla"):
        found = display_unit(stored)
        assert found is None or len(found._units) <= 2, (stored, found)
    assert display_unit("ampere") is None and display_unit("volt") is None
    assert display_unit("dimensionless") is None
    value = ureg.Quantity(2.0, "ampere")
    assert to_display(value) is value
    assert to_display(3) == 3 and to_display("text") == "text"


def test_fallback_through_pints_preferred_units() -> None:
    # these have no entry of their own in the atomic preset: pint combines the preset's units
    with display_units("atomic"):
        assert unit_text(display_unit("meter / second")) == "a_0/(ħ/E_h)"
        assert unit_text(display_unit("joule / meter ** 2")) == "E_h/a_0²"
        # pint's "a_u_time" is written as physicists write the atomic unit of time
        assert unit_text(display_unit("second")) == "ħ/E_h"


def test_stored_values_never_change() -> None:
    value = ureg.Quantity(-1.0e-18, "joule")
    shown = to_display(value)
    assert str(value.units) == "joule" and value.magnitude == -1.0e-18
    assert shown.to("joule").magnitude == pytest.approx(-1.0e-18)


def test_presets_overrides_and_restoring() -> None:
    before = current()
    with display_units("si"):
        assert display_unit("joule") is None and current().name == "si"
        with display_units("atomic", time="fs"):
            assert unit_text(display_unit("second")) == "fs"
            assert unit_text(display_unit("joule")) == "E_h"
        assert current().name == "si"
    assert current() is before
    with pytest.raises(ValueError, match="unknown display-unit preset"):
        display_units("nonsense")
    with pytest.raises(ValueError, match="unknown dimension"):
        display_units(energie="eV")
    with pytest.raises(ValueError, match="not a unit of energy"):
        display_units(energy="angstrom")
    assert set(PRESETS) >= {"materials", "atomic", "si"}


def test_molar_conversion_through_the_named_context() -> None:
    per_particle = ureg.Quantity(1.0, "eV")
    molar = convert(per_particle, "kJ/mol")
    assert molar.magnitude == pytest.approx(96.48533212, rel=1e-9)
    assert convert(ureg.Quantity(1.0, "kcal/mol"), "eV").magnitude == pytest.approx(0.0433641043, rel=1e-8)
    # pint itself refuses unless the context is named, and the context is what we use
    with pytest.raises(pint.DimensionalityError):
        per_particle.to("kJ/mol")
    assert per_particle.to("kJ/mol", MOLAR_CONTEXT).magnitude == pytest.approx(molar.magnitude)
    with pytest.raises(pint.DimensionalityError):
        convert(ureg.Quantity(1.0, "eV"), "angstrom")
    assert molar_registry() is registry()


def test_molar_display_preset() -> None:
    with display_units("materials", energy="kJ/mol"):
        shown = to_display(ureg.Quantity(1.602176634e-19, "joule"))
        assert unit_text(shown.units) == "kJ/mol" and shown.magnitude == pytest.approx(96.48533212, rel=1e-9)


@pytest.mark.shared
def test_archive_energies_in_ev_and_kj_per_mol(schema_2_0: Any) -> None:
    archive = load(SHARED / "archives" / "vasp-si16-singlepoint.recorded.archive.json", schema_2_0)
    energy = archive.run[0].calculation[-1].energy.total.value
    assert to_display(energy).magnitude == pytest.approx(-86.71940396, rel=1e-9)
    assert convert(energy, "kJ/mol").magnitude == pytest.approx(-8367.1504926, rel=1e-9)
    assert str(energy.units) == "joule"  # still what the archive stores


@pytest.mark.parametrize("hostile", ["10**1000", "eV ** 1000000", "(" * 20 + "eV" + ")" * 20, "eV; import os"])
def test_units_a_user_types_are_checked_before_pint_evaluates_them(hostile: str) -> None:
    """pint parses a unit by evaluating it: ``10**10**10`` computed for ever (the CLI's
    ``--unit`` and ``convert`` hung with growing memory). The archive's own unit grammar
    now applies to what a user types too, and legitimate units still pass."""
    energy = registry().Quantity(1.0, "eV")
    with pytest.raises(ValueError, match="not a unit expression"):
        convert(energy, hostile)
    with pytest.raises(ValueError, match="not a unit expression"):
        display_units(energy=hostile)
    assert convert(energy, "kJ/mol").magnitude == pytest.approx(96.485, rel=1e-4)
    assert convert(registry().Quantity(1.0, "angstrom"), "µm").magnitude == pytest.approx(1e-4)
    with display_units(energy="meV"):
        pass


def test_the_cli_refuses_a_unit_pint_would_compute_for_ever() -> None:
    sample = Path(__file__).resolve().parents[1] / "samples" / "archives" / "si2-single-point.archive.json"
    path = "workflow[0].calculation_result_ref.energy.total.value"
    out = subprocess.run([sys.executable, "-m", "archivemap.cli", "show", str(sample), path, "--unit", "10**10**10"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "not a unit expression" in out.stderr


def test_display_units_follow_a_new_application_registry(schema_2_0: Any) -> None:
    """units.py lets a user replace pint's application registry; the display-unit tables,
    built once on the old one, answered 'Cannot operate with Unit and Unit of different
    registries' to every display afterwards."""
    path = SHARED / "archives" / "vasp-si16-singlepoint.recorded.archive.json"
    if not path.exists():
        pytest.skip(f"{path} not found (../shared is absent)")
    before = load(path, schema_2_0).run[0].calculation[-1].energy.total.value
    assert str(to_display(before).units) == "electron_volt"
    original = pint.get_application_registry().get()
    try:
        pint.set_application_registry(pint.UnitRegistry())
        energy = load(path, schema_2_0).run[0].calculation[-1].energy.total.value
        shown = to_display(energy)
        assert str(shown.units) == "electron_volt" and shown.magnitude == pytest.approx(energy.to("eV").magnitude)
        assert convert(energy, "kJ/mol").magnitude == pytest.approx(energy.to("eV").magnitude * 96.485, rel=1e-4)
    finally:
        pint.set_application_registry(original)
    assert str(to_display(before).units) == "electron_volt"
