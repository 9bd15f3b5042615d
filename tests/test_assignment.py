"""Assignments are checked against the definition; warnings point at the user's line."""

from __future__ import annotations

import json
import warnings

import pytest

import archivemap
from archivemap.errors import AssignmentError, SchemaMismatchWarning
from archivemap.units import Quantity

from .conftest import SAMPLES


@pytest.fixture()
def archive() -> archivemap.Section:
    schema = archivemap.Schema(SAMPLES / "metainfo.json")
    return archivemap.load(SAMPLES / "archives" / "si2-single-point.archive.json", schema)


@pytest.mark.parametrize("value", [-1.0, "hot", Quantity(3.0, "meter"), Quantity([1.0, 2.0], "eV")])
def test_a_dimensional_quantity_refuses_what_does_not_fit(archive, value) -> None:
    total = archive.run[0].calculation[0].energy.total
    with pytest.raises(AssignmentError, match="energy/total/value") as info:
        total.value = value
    assert isinstance(info.value, TypeError)
    assert total.value.to("eV").magnitude == pytest.approx(-10.8463, abs=1e-3)  # unchanged


def test_a_fitting_quantity_is_stored_in_the_definition_unit(archive) -> None:
    total = archive.run[0].calculation[0].energy.total
    total.value = Quantity(-1.0, "eV")
    assert archive.to_dict()["run"][0]["calculation"][0]["energy"]["total"]["value"] == pytest.approx(
        -1.602176634e-19
    )


def test_types_and_shapes_are_checked(archive) -> None:
    atoms = archive.run[0].system[0].atoms
    with pytest.raises(AssignmentError, match="rank 2"):
        atoms.positions = Quantity([0.0, 0.0, 0.0], "angstrom")
    with pytest.raises(AssignmentError, match="str"):
        atoms.labels = [1, 2]
    with pytest.raises(AssignmentError, match="not one of"):
        archive.run[0].method[0].basis_set_type = "carrier pigeons"
    with pytest.raises(AssignmentError, match="reference"):
        archive.run[0].calculation[0].system_ref = 3.5
    atoms.labels = ["Si", "Ge"]
    atoms.positions = Quantity([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]], "angstrom")
    archive.run[0].calculation[0].system_ref = archive.run[0].system[0]
    assert archive.to_dict()["run"][0]["system"][0]["atoms"]["labels"] == ["Si", "Ge"]


def test_tab_completion_lists_schema_properties(archive) -> None:
    names = dir(archive.run[0].calculation[0])
    assert {"energy", "forces", "system_ref", "m_get"} <= set(names)


def test_warnings_point_at_the_users_line(tmp_path) -> None:
    data = json.loads((SAMPLES / "archives" / "si2-single-point.archive.json").read_text())
    data["run"][0]["method"][0]["atom_parameters"][0]["atom_number"] = "fourteen"
    archive = archivemap.load(data, archivemap.Schema(SAMPLES / "metainfo.json"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        archive.run[0].method[0].atom_parameters[0].atom_number  # noqa: B018
    mismatches = [w for w in caught if issubclass(w.category, SchemaMismatchWarning)]
    assert mismatches and mismatches[0].filename == __file__
