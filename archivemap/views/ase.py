"""Structures as ASE ``Atoms``: ``to_atoms(archive.run[0].system[-1])``, and whole runs as
trajectories: ``to_trajectory(archive)`` → a list of ``Atoms`` with energy, forces and stress
attached (ASE's ``SinglePointCalculator``), ``write_extxyz(images, "traj.xyz")``.

ASE works in eV, Å and eV/Å³; the archive's SI values are converted on the way. ASE is an
optional dependency (the ``ase`` extra), imported only when a structure is converted, so
``import archivemap`` stays fast without it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from archivemap.archive.sections import Section
from archivemap.errors import AbsentError, MissingError

__all__ = ["to_atoms", "to_trajectory", "write_extxyz"]


def _import_ase() -> Any:
    try:
        import ase
    except ImportError:
        raise ImportError("converting to ASE needs ase: pip install 'archivemap[ase]'") from None
    return ase


def _atoms_section(system: Section) -> Section:
    """The section holding labels and positions: ``System.atoms``, or the Atoms section itself."""
    if system.m_is_set("labels") or system.m_is_set("positions"):
        return system
    if system.m_is_set("atoms"):
        return system.atoms  # type: ignore[no-any-return]
    raise AbsentError(
        f"{type(system).__name__} has no atoms (labels and positions)", path=system.m_path(), entry_id=system.m_entry_id
    )


def _angstrom(section: Section, name: str) -> np.ndarray | None:
    if not section.m_is_set(name):
        return None
    value = getattr(section, name)
    if hasattr(value, "to"):  # a pint quantity in the definition's unit (meter)
        value = value.to("angstrom").magnitude
    return np.asarray(value, dtype=float)


def to_atoms(system: Section) -> Any:
    """Convert a runschema ``System`` (or its ``Atoms`` section) to an ``ase.Atoms``.

    Positions and lattice vectors are converted from the archive's unit (meter) to Å, which
    is what ASE works in; ``periodic`` becomes ``pbc``. Labels that are not chemical symbols
    fall back to the atomic numbers in ``species`` when those are set.

    Args:
        system: a ``System`` section (``archive.run[0].system[0]``) or its ``atoms``.

    Returns:
        An ``ase.Atoms``; ``info`` holds the section path and entry id it came from.

    Raises:
        ImportError: ASE is not installed.
        AbsentError: the section has no labels or no positions.
    """
    ase = _import_ase()
    atoms = _atoms_section(system)
    where = {"path": atoms.m_path(), "entry_id": atoms.m_entry_id}
    if not atoms.m_is_set("labels"):
        raise AbsentError("the structure has no atom labels", **where)
    positions = _angstrom(atoms, "positions")
    if positions is None:
        raise AbsentError("the structure has no positions", **where)
    cell = _angstrom(atoms, "lattice_vectors")
    pbc = atoms.periodic if atoms.m_is_set("periodic") else False
    kwargs = {"positions": positions, "cell": cell, "pbc": np.asarray(pbc, dtype=bool) if pbc is not False else False}
    labels = [str(label) for label in atoms.labels]
    try:
        result = ase.Atoms(symbols=labels, **kwargs)
    except (KeyError, ValueError):
        if not atoms.m_is_set("species"):
            raise ValueError(f"labels {labels[:5]} are not chemical symbols (at {where['path']})") from None
        result = ase.Atoms(numbers=np.asarray(atoms.species, dtype=int), **kwargs)
        result.info["labels"] = labels
    result.info["nomad_path"] = system.m_path()
    if system.m_entry_id:
        result.info["entry_id"] = system.m_entry_id
    return result


def _get(section: Section, path: str) -> Any:
    try:
        return section.m_get(path)
    except (MissingError, LookupError, AttributeError):
        return None


def _in(value: Any, unit: str) -> np.ndarray | None:
    if value is None:
        return None
    return np.asarray(value.to(unit).magnitude, dtype=float)


def _calculations(section: Section | Sequence[Section]) -> list[Section]:
    """The calculations of an archive, a run, a workflow, or a list of them."""
    if isinstance(section, Sequence) and not isinstance(section, Section):
        return list(section)
    for path in ("results.calculations_ref", "calculations_ref"):  # a workflow: its own order
        found = _get(section, path)
        if found:
            return list(found)
    for path in ("run[0].calculation", "calculation"):
        found = _get(section, path)
        if found:
            return list(found)
    for path in ("workflow2.results.calculations_ref",):
        found = _get(section, path)
        if found:
            return list(found)
    return []


def _systems(section: Section) -> list[Section]:
    for path in ("run[0].system", "system"):
        found = _get(section, path)
        if found:
            return list(found)
    return []


def _with_results(single_point: Any, calc: Section) -> Any:
    """The calculation's structure as ``Atoms`` with its energy, forces and stress attached."""
    system = _get(calc, "system_ref")
    if system is None:
        raise AbsentError("the calculation has no system_ref (no structure)", path=calc.m_path(), entry_id=calc.m_entry_id)
    atoms = to_atoms(system)
    results: dict[str, Any] = {}
    energy = _in(_get(calc, "energy.total.value"), "eV")
    if energy is not None:
        results["energy"] = float(energy)
    free = _in(_get(calc, "energy.free.value"), "eV")
    if free is not None:
        results["free_energy"] = float(free)
    forces = _in(_get(calc, "forces.total.value"), "eV / angstrom")
    if forces is None:
        forces = _in(_get(calc, "forces.free.value"), "eV / angstrom")
    if forces is not None and forces.shape == (len(atoms), 3):
        results["forces"] = forces
    stress = _in(_get(calc, "stress.total.value"), "eV / angstrom ** 3")
    if stress is not None and stress.shape == (3, 3):
        results["stress"] = stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]  # ASE's Voigt order
    if results:
        atoms.calc = single_point(atoms, **results)
    step = _get(calc, "step")
    if step is not None:
        atoms.info["step"] = int(step)
    for name, unit in (("time", "ps"), ("temperature", "K")):
        value = _in(_get(calc, name), unit)
        if value is not None:
            atoms.info[f"{name}_{unit}"] = float(value)
    atoms.info["nomad_calculation"] = calc.m_path()
    return atoms


def to_trajectory(section: Section | Sequence[Section]) -> list[Any]:
    """The structures of a run or workflow as ASE ``Atoms``, one per calculation.

    Each ``Atoms`` carries the calculation's results through ASE's
    ``SinglePointCalculator`` (``atoms.get_potential_energy()`` in eV, ``get_forces()`` in
    eV/Å, ``get_stress()`` in eV/Å³, Voigt order), and in ``info`` the calculation path and,
    when set, ``step``, ``time_ps`` and ``temperature_K``. Forces are the total ones, else
    the ``free`` ones (FHI-aims).

    Args:
        section: an archive (its first run, or its workflow's calculations), a run, a
            workflow (``archive.workflow2``: its ``calculations_ref`` in order), or a list
            of calculations. A run without calculations gives its systems, without results.

    Returns:
        A list of ``ase.Atoms`` (ASE's name for a trajectory in memory).

    Raises:
        ImportError: ASE is not installed.
        AbsentError: nothing to convert: no calculations and no systems.
    """
    _import_ase()
    single_point = importlib.import_module("ase.calculators.singlepoint").SinglePointCalculator
    calcs = _calculations(section)
    if calcs:
        return [_with_results(single_point, calc) for calc in calcs]
    if isinstance(section, Section):
        systems = _systems(section)
        if systems:
            return [to_atoms(system) for system in systems]
        raise AbsentError("no calculations and no systems to convert", path=section.m_path(), entry_id=section.m_entry_id)
    raise AbsentError("no calculations to convert")


def write_extxyz(images: Any, path: str | os.PathLike[str]) -> None:
    """Write ``Atoms`` (one or a list, e.g. from :func:`to_trajectory`) to an extended XYZ file.

    Energies, forces and stress attached by :func:`to_trajectory` are written too (ASE's own
    extxyz writer), so ``ase.io.read(path, ":")`` gives them back.

    Raises:
        ImportError: ASE is not installed.
    """
    _import_ase()
    ase_io = importlib.import_module("ase.io")
    ase_io.write(os.fspath(path), images, format="extxyz")
