"""ASE conversion against ASE itself and nomad-lab's golden values (in Å)."""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
import pytest

from archivemap.archive.load import load
from tests.conftest import SHARED

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


@pytest.mark.shared
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


@pytest.mark.shared
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


# -- trajectories ---------------------------------------------------------------------------------
from archivemap.views.ase import to_trajectory, write_extxyz  # noqa: E402

EV = 1.602176634e-19


@pytest.mark.shared
def test_geometry_optimisation_trajectory_round_trips_through_extxyz(schema_2_0: Any, tmp_path: Any) -> None:
    import ase.io

    archive = load(SHARED / "archives" / "fhiaims-alas-geometry-optimization.parsed.archive.json", schema_2_0)
    images = to_trajectory(archive.workflow2)  # the workflow's calculations, in its order
    assert len(images) == 6 and [a.info["nomad_calculation"] for a in images][-1] == "/run/0/calculation/5"
    raw = archive._m_data["run"][0]["calculation"]
    assert images[0].get_potential_energy() == pytest.approx(raw[0]["energy"]["total"]["value"] / EV, rel=1e-12)
    forces = np.asarray(raw[0]["forces"]["free"]["value"]) / EV * 1e-10  # N → eV/Å
    np.testing.assert_allclose(images[0].get_forces(), forces, rtol=1e-12, atol=0)
    assert images[-1].calc is None  # the last step has no energy: nothing invented
    path = tmp_path / "aims.extxyz"
    write_extxyz(images, path)
    back = ase.io.read(path, ":")
    assert len(back) == 6
    for mine, theirs in zip(images, back):
        np.testing.assert_allclose(theirs.positions, mine.positions, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(theirs.cell[:], mine.cell[:], rtol=1e-9, atol=1e-9)
        assert theirs.get_chemical_symbols() == mine.get_chemical_symbols()
        if mine.calc is not None:
            assert theirs.get_potential_energy() == pytest.approx(mine.get_potential_energy(), rel=1e-9)
            np.testing.assert_allclose(theirs.get_forces(), mine.get_forces(), rtol=1e-9, atol=1e-8)  # extxyz: 8 decimals


@pytest.mark.shared
def test_single_point_with_stress(schema_2_0: Any, tmp_path: Any) -> None:
    import ase.io

    archive = load(SHARED / "archives" / "vasp-si16-singlepoint.recorded.archive.json", schema_2_0)
    (atoms,) = to_trajectory(archive)
    assert atoms.get_potential_energy() == pytest.approx(-86.71940396, rel=1e-9)
    sigma = np.asarray(archive._m_data["run"][0]["calculation"][0]["stress"]["total"]["value"]) / EV * 1e-30
    voigt = [sigma[0, 0], sigma[1, 1], sigma[2, 2], sigma[1, 2], sigma[0, 2], sigma[0, 1]]
    np.testing.assert_allclose(atoms.get_stress(), voigt, rtol=1e-12)
    write_extxyz(atoms, tmp_path / "si.xyz")
    back = ase.io.read(tmp_path / "si.xyz")
    np.testing.assert_allclose(back.get_stress(), voigt, rtol=1e-9)
    assert back.get_chemical_formula() == "Si16"


@pytest.mark.shared
def test_md_run_trajectory_keeps_time_and_temperature(schema_2_0: Any, tmp_path: Any) -> None:
    import ase.io

    archive = load(SHARED / "archives" / "lammps-methane-nvt-md.parsed.archive.json", schema_2_0)
    images = to_trajectory(archive.run[0])
    assert len(images) == 101
    assert images[3].info["step"] == 1200 and images[3].info["time_ps"] == pytest.approx(0.3)
    assert images[3].info["temperature_K"] == pytest.approx(archive._m_data["run"][0]["calculation"][3]["temperature"])
    write_extxyz(images[:5], tmp_path / "md.extxyz")
    back = ase.io.read(tmp_path / "md.extxyz", ":")
    assert [a.info["step"] for a in back] == [0, 400, 800, 1200, 1600]
    assert back[2].get_potential_energy() == pytest.approx(images[2].get_potential_energy(), rel=1e-9)


def test_systems_without_calculations(schema_2_0: Any) -> None:
    from archivemap.errors import AbsentError

    archive = load({"run": [{"system": [{"atoms": {"labels": ["H"], "positions": [[0, 0, 0]]}}] * 2}]}, schema_2_0)
    images = to_trajectory(archive)
    assert len(images) == 2 and images[0].calc is None
    with pytest.raises(AbsentError, match="no calculations and no systems"):
        to_trajectory(load({"metadata": {"entry_id": "E"}}, schema_2_0))
    with pytest.raises(AbsentError, match="no system_ref"):
        to_trajectory(load({"run": [{"calculation": [{"energy": {"total": {"value": 1e-19}}}]}]}, schema_2_0))
