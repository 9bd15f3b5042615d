"""ASE conversion against ASE itself and nomad-lab's golden values (in Å)."""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
import pytest

from archivemap.archive.load import load
from tests.conftest import SHARED, needs_shared

ase = pytest.importorskip("ase", reason="the ase extra is not installed (pip install 'archivemap[ase]')")

from archivemap.views.ase import to_atoms  # noqa: E402

CASES = [
    "vasp-si16-singlepoint.recorded",
    "fhiaims-alas-geometry-optimization.parsed",
    "exciting-ag-singlepoint.parsed",
    "lammps-methane-nvt-md.parsed",
]


def _golden_checks(name: str) -> dict[str, Any]:
    golden = json.loads((SHARED / "golden" / f"{name}.json").read_text())
    return {c["path"]: c for c in golden["checks"] if c["kind"] == "quantity"}


@needs_shared
@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("index", [0, -1])
def test_to_atoms_matches_golden(schema_2_0: Any, name: str, index: int) -> None:
    archive = load(SHARED / "archives" / f"{name}.archive.json", schema_2_0)
    system = archive.run[0].system[index]
    atoms = to_atoms(system)
    assert isinstance(atoms, ase.Atoms)
    checks = _golden_checks(name)
    prefix = f"run[0].system[{index}].atoms"
    golden_pos = checks.get(f"{prefix}.positions")
    if golden_pos is not None:
        assert golden_pos["unit"] == "angstrom"
        np.testing.assert_allclose(atoms.positions, golden_pos["value"], rtol=1e-9, atol=1e-12)
    shape = [c for c in json.loads((SHARED / "golden" / f"{name}.json").read_text())["checks"]
             if c["kind"] == "shape" and c["path"] == f"{prefix}.positions"]
    if shape:
        assert list(atoms.positions.shape) == shape[0]["value"]
    for row in (0, -1):
        check = checks.get(f"{prefix}.positions[{row}]")
        if check is not None:
            np.testing.assert_allclose(atoms.positions[row], check["value"], rtol=1e-9, atol=1e-12)
    cell = checks.get(f"{prefix}.lattice_vectors")
    if cell is not None:
        np.testing.assert_allclose(atoms.cell[:], cell["value"], rtol=1e-9, atol=1e-12)
    labels = checks.get(f"{prefix}.labels")
    if labels is not None:
        assert atoms.get_chemical_symbols() == labels["value"]
    # independent of the golden file: the raw data in meters, converted by hand
    raw = system.atoms._m_data
    np.testing.assert_allclose(atoms.positions, np.asarray(raw["positions"]) * 1e10, rtol=1e-12)
    np.testing.assert_allclose(atoms.cell[:], np.asarray(raw["lattice_vectors"]) * 1e10, rtol=1e-12)
    assert list(atoms.pbc) == raw["periodic"]
    assert atoms.get_chemical_symbols() == raw["labels"]
    assert atoms.info["nomad_path"] == system.m_path()


@needs_shared
def test_atoms_section_and_volume(schema_2_0: Any) -> None:
    archive = load(SHARED / "archives" / "vasp-si16-singlepoint.recorded.archive.json", schema_2_0)
    atoms = to_atoms(archive.run[0].system[0].atoms)
    assert atoms.get_chemical_formula() == "Si16"
    # ASE computes the volume from the converted cell: fcc cell of a=2*5.46619884 Å
    assert atoms.get_volume() == pytest.approx(2 * 5.46619884**3, rel=1e-9)


def test_labels_that_are_not_symbols_use_species(schema_2_0: Any) -> None:
    archive = load(
        {"run": [{"system": [{"atoms": {"labels": ["Si1", "O2"], "species": [14, 8], "positions": [[0, 0, 0], [1e-10, 0, 0]]}}]}]},
        schema_2_0,
    )
    atoms = to_atoms(archive.run[0].system[0])
    assert atoms.get_chemical_symbols() == ["Si", "O"] and atoms.info["labels"] == ["Si1", "O2"]
    assert atoms.positions[1][0] == pytest.approx(1.0)
    assert not atoms.pbc.any()


def test_missing_atoms(schema_2_0: Any) -> None:
    from archivemap.errors import AbsentError

    archive = load({"run": [{"system": [{"atoms": {"labels": ["H"]}}, {}]}]}, schema_2_0)
    with pytest.raises(AbsentError, match="no positions"):
        to_atoms(archive.run[0].system[0])
    with pytest.raises(KeyError):
        to_atoms(archive.run[0].system[1])


def test_friendly_error_without_ase(schema_2_0: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ase", None)
    archive = load({"run": [{"system": [{"atoms": {"labels": ["H"], "positions": [[0, 0, 0]]}}]}]}, schema_2_0)
    with pytest.raises(ImportError, match=r"pip install 'archivemap\[ase\]'"):
        to_atoms(archive.run[0].system[0])
