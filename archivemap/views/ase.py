"""Structures as ASE ``Atoms``: ``to_atoms(archive.run[0].system[-1])``.

ASE is an optional dependency (the ``ase`` extra), imported only when a structure is
converted, so ``import archivemap`` stays fast without it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from archivemap.archive.sections import Section
from archivemap.errors import AbsentError

__all__ = ["to_atoms"]


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
