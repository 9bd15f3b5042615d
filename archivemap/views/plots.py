"""The plots a NOMAD user draws daily, each from a section (the ``plot`` extra: matplotlib).

=====================================  ==================================================
``plot_dos(section)``                  density of states: a ``Dos`` section
                                       (``calc.dos_electronic[0]``), or eigenvalues
                                       (``calc.eigenvalues[0]``) broadened with Gaussians
``plot_band_structure(section)``       bands along the k-path of a ``BandStructure``
                                       (``calc.band_structure_electronic[0]``)
``plot_md(section)``                   temperature, pressure and energies over time of a
                                       molecular-dynamics run (an archive, ``run[0]``, or
                                       a list of calculations)
``plot_convergence(section)``          a geometry optimisation step by step: energy above
                                       the final one, largest force, cell volume
=====================================  ==================================================

Every axis names its quantity and its unit, in the display units in force
(:mod:`archivemap.views.units`: eV, Å, GPa, ps by default). Each function returns the
matplotlib ``Figure`` (``fig.savefig("dos.png", dpi=150)``); pass ``ax`` to draw into an
existing axes (for the one-panel plots). matplotlib is imported only when a plot is made.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from archivemap.archive.sections import Section
from archivemap.errors import AbsentError, MissingError
from archivemap.views.units import convert, display_unit, molar_registry, unit_text

__all__ = ["plot_band_structure", "plot_convergence", "plot_dos", "plot_md"]

_COLORS = ("#1f6feb", "#d1242f", "#1a7f37", "#8250df", "#bf8700")


def _import_pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'archivemap[plot]'") from None
    return plt


def _unit_for(stored: str) -> Any:
    """The display unit for a stored unit (a pint unit)."""
    return display_unit(stored) or molar_registry().Unit(stored)


def _magnitude(value: Any, unit: Any) -> np.ndarray:
    return np.asarray(convert(value, unit).magnitude, dtype=float)


def _label(name: str, unit: Any) -> str:
    text = unit_text(unit)
    return f"{name} [{text}]" if text else name


def _get(section: Section, path: str) -> Any:
    try:
        return section.m_get(path)
    except (MissingError, LookupError, AttributeError):
        return None


def _where(section: Section) -> dict[str, Any]:
    return {"path": section.m_path(), "entry_id": section.m_entry_id}


def _new_axes(ax: Any, size: tuple[float, float] = (6.4, 4.2)) -> tuple[Any, Any]:
    plt = _import_pyplot()
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=size, constrained_layout=True)
    return fig, ax


def _title(section: Section, what: str) -> str:
    root = section.m_root
    formula = _get(root, "results.material.chemical_formula_hill") if root is not section else None
    program = _get(root, "run[0].program.name") if root is not section else None
    parts = [str(p) for p in (formula, program) if p]
    return f"{what} — {', '.join(parts)}" if parts else what


def _reference_energy(section: Section) -> tuple[Any, str] | None:
    """The energy to put at zero: the section's Fermi level, else the calculation's."""
    for path, name in (("energy_fermi", "E_F"), ("energy_ref", "E_ref")):
        value = _get(section, path)
        if value is not None:
            return value, name
    node = section.m_parent
    for _ in range(3):
        if node is None:
            break
        for path, name in (("energy.fermi", "E_F"), ("energy.highest_occupied", "E_VBM")):
            value = _get(node, path)
            if value is not None:
                return value, name
        node = node.m_parent
    return None


# -- density of states ---------------------------------------------------------------------------
def plot_dos(section: Section, ax: Any = None, *, sigma: float = 0.1, points: int = 1500) -> Any:
    """The density of states of a ``Dos`` section, or of eigenvalues broadened by Gaussians.

    Energies are shifted so that the Fermi level (or, for eigenvalues of a gapped system,
    the valence-band maximum) sits at zero when the archive gives one, and drawn as a
    dashed line.

    Args:
        section: ``calc.dos_electronic[0]`` (a ``Dos``), or ``calc.eigenvalues[0]``.
        ax: an axes to draw into; a new figure when ``None``.
        sigma: for eigenvalues, the Gaussian width in the display energy unit (eV).
        points: for eigenvalues, the number of energies sampled.

    Returns:
        The matplotlib ``Figure``.

    Raises:
        AbsentError: the section has neither DOS values nor eigenvalues.
        ImportError: matplotlib is not installed.
    """
    energy_unit = _unit_for("joule")
    fig, ax = _new_axes(ax)
    reference = _reference_energy(section)
    shift = _magnitude(reference[0], energy_unit).item() if reference else 0.0
    if section.m_is_set("total") and section.m_is_set("energies"):
        energies = _magnitude(section.energies, energy_unit) - shift
        totals = section.total
        for i, values in enumerate(totals):
            if not values.m_is_set("value"):
                continue
            dos_unit = _unit_for("1 / joule")
            y = _magnitude(values.value, dos_unit)
            spin = values.spin if values.m_is_set("spin") else None
            label = f"spin {'↑' if spin == 0 else '↓'}" if spin is not None and len(totals) > 1 else None
            ax.plot(energies, y if spin != 1 or len(totals) == 1 else -y, color=_COLORS[i % 5], lw=1.3, label=label)
        ylabel = _label("DOS", dos_unit)
    elif section.m_is_set("energies"):
        eig = _magnitude(section.energies, energy_unit) - shift
        eig = eig.reshape(eig.shape[0], -1, eig.shape[-1]) if eig.ndim == 3 else eig.reshape(1, 1, -1)
        n_k = eig.shape[1]
        weights = np.asarray(section.kpoints_weights, dtype=float) if section.m_is_set("kpoints_weights") else np.ones(n_k)
        weights = weights / weights.sum()
        grid = np.linspace(eig.min() - 5 * sigma, eig.max() + 5 * sigma, points)
        for s in range(eig.shape[0]):
            dos = np.zeros_like(grid)
            for k in range(n_k):
                diff = grid[:, None] - eig[s, k][None, :]
                dos += weights[k] * np.exp(-0.5 * (diff / sigma) ** 2).sum(axis=1)
            dos /= sigma * math.sqrt(2 * math.pi)
            label = f"spin {'↑' if s == 0 else '↓'}" if eig.shape[0] > 1 else None
            ax.plot(grid, dos if s == 0 else -dos, color=_COLORS[s % 5], lw=1.3, label=label)
            ax.fill_between(grid, 0, dos if s == 0 else -dos, where=grid <= 0 if reference else None,
                            color=_COLORS[s % 5], alpha=0.15, lw=0)
        ylabel = f"DOS [states/{unit_text(energy_unit)}/cell/spin]"
        ax.text(0.01, 0.97, f"from {n_k} k-points × {eig.shape[-1]} bands\nGaussian σ = {sigma:g} {unit_text(energy_unit)}",
                transform=ax.transAxes, ha="left", va="top", fontsize=8, color="#57606a")
        energies = grid
    else:
        raise AbsentError("no DOS values and no eigenvalues to plot", **_where(section))
    zero = reference[1] if reference else None
    ax.set_xlabel(_label(f"E − {zero}" if zero else "E", energy_unit))
    ax.set_ylabel(ylabel)
    if zero:
        ax.axvline(0.0, color="#57606a", ls="--", lw=0.9)
    ax.axhline(0.0, color="#8c959f", lw=0.6)
    ax.set_xlim(float(np.min(energies)), float(np.max(energies)))
    ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(frameon=False)
    ax.set_title(_title(section, "Density of states"), fontsize=10)
    return fig


# -- band structure -------------------------------------------------------------------------------
def _greek(label: str | None) -> str:
    if label is None:
        return ""
    text = str(label)
    return "Γ" if text.upper() in ("G", "GAMMA", "Γ", "\\GAMMA") else text


def plot_band_structure(section: Section, ax: Any = None, *, window: tuple[float, float] | None = None) -> Any:
    """Bands along the k-path of a ``BandStructure`` section, with the segment end labels.

    The horizontal axis is the distance along the path in the display unit of reciprocal
    length (1/Å) when the section has its ``reciprocal_cell``, else the k-point index.
    Energies are shifted to the Fermi level when the section gives one.

    Args:
        section: ``calc.band_structure_electronic[0]``.
        ax: an axes to draw into; a new figure when ``None``.
        window: the energy range shown, in the display unit (default: all bands).

    Returns:
        The matplotlib ``Figure``.

    Raises:
        AbsentError: the section has no segments with energies.
    """
    energy_unit = _unit_for("joule")
    fig, ax = _new_axes(ax, (6.4, 4.8))
    segments = [s for s in (section.segment or []) if s.m_is_set("energies")]
    if not segments:
        raise AbsentError("no band segments with energies to plot", **_where(section))
    reference = _reference_energy(section)
    shift = _magnitude(reference[0], energy_unit).item() if reference else 0.0
    cell = None
    if section.m_is_set("reciprocal_cell"):
        k_unit = _unit_for("1 / meter")
        cell = _magnitude(section.reciprocal_cell, k_unit)
    start = 0.0
    ticks: list[float] = []
    tick_labels: list[str] = []
    for segment in segments:
        energies = _magnitude(segment.energies, energy_unit) - shift
        energies = energies.reshape(energies.shape[0], energies.shape[-2], energies.shape[-1]) if energies.ndim == 3 else energies[None]
        n_k = energies.shape[1]
        if segment.m_is_set("kpoints") and cell is not None:
            kpoints = np.asarray(segment.kpoints, dtype=float) @ cell
            steps = np.linalg.norm(np.diff(kpoints, axis=0), axis=1)
            x = start + np.concatenate([[0.0], np.cumsum(steps)])
        else:
            x = start + np.arange(n_k, dtype=float)
        for s in range(energies.shape[0]):
            ax.plot(x, energies[s], color=_COLORS[s % 5], lw=1.1, ls="-" if s == 0 else "--")
        labels = list(segment.endpoints_labels) if segment.m_is_set("endpoints_labels") else [None, None]
        first, last = _greek(labels[0]), _greek(labels[-1])
        if ticks and math.isclose(ticks[-1], x[0]):
            if tick_labels[-1] != first and first:
                tick_labels[-1] = f"{tick_labels[-1]}|{first}"
        else:
            ticks.append(float(x[0]))
            tick_labels.append(first)
        ticks.append(float(x[-1]))
        tick_labels.append(last)
        start = float(x[-1])
    for t in ticks:
        ax.axvline(t, color="#d0d7de", lw=0.8, zorder=0)
    ax.set_xticks(ticks, tick_labels)
    ax.set_xlim(ticks[0], ticks[-1])
    zero = reference[1] if reference else None
    if zero:
        ax.axhline(0.0, color="#57606a", ls="--", lw=0.9)
    ax.set_ylabel(_label(f"E − {zero}" if zero else "E", energy_unit))
    ax.set_xlabel("wave vector along the path" + (f" [{unit_text(_unit_for('1 / meter'))}]" if cell is not None else " (k-point index)"))
    if window is not None:
        ax.set_ylim(*window)
    ax.set_title(_title(section, "Band structure"), fontsize=10)
    return fig


# -- molecular dynamics -------------------------------------------------------------------------------
def _calculations(section: Section | Sequence[Section]) -> list[Section]:
    if isinstance(section, Sequence) and not isinstance(section, Section):
        return list(section)
    for path in ("run[0].calculation", "calculation"):
        calcs = _get(section, path)
        if calcs:
            return list(calcs)
    for path in ("results.calculations_ref", "calculations_ref"):
        calcs = _get(section, path)
        if calcs:
            return list(calcs)
    raise AbsentError("no calculations to plot", **_where(section))


_MD_SERIES = (
    ("temperature", "temperature", "kelvin"),
    ("pressure", "pressure", "pascal"),
    ("energy.total.value", "total energy", "joule"),
    ("energy.potential.value", "potential energy", "joule"),
    ("energy.kinetic.value", "kinetic energy", "joule"),
)


def plot_md(section: Section | Sequence[Section], *, per_atom: bool = False) -> Any:
    """Thermodynamics of a molecular-dynamics run over time: one panel per quantity.

    Panels for temperature, pressure and the energies the calculations hold (total,
    potential, kinetic), against the simulation time (in ps) when the calculations have
    it, else the step number; each panel's mean is a dotted line.

    Args:
        section: an archive, its ``run[0]``, the MD workflow, or a list of calculations.
        per_atom: divide energies by the number of atoms of each calculation's system.

    Returns:
        The matplotlib ``Figure``.

    Raises:
        AbsentError: no calculation holds any of these quantities.
    """
    plt = _import_pyplot()
    calcs = _calculations(section)
    times = [_get(c, "time") for c in calcs]
    time_unit = _unit_for("second")
    if all(t is not None for t in times):
        x = np.array([_magnitude(t, time_unit).item() for t in times])
        xlabel = _label("time", time_unit)
    else:
        steps = [_get(c, "step") for c in calcs]
        x = np.array([float(s) if s is not None else float(i) for i, s in enumerate(steps)])
        xlabel = "step"
    panels = []
    for path, name, stored in _MD_SERIES:
        values = [_get(c, path) for c in calcs]
        if not any(v is not None for v in values):
            continue
        unit = _unit_for(stored)
        y = np.array([_magnitude(v, unit).item() if v is not None else np.nan for v in values])
        if per_atom and stored == "joule":
            n = np.array([len(_get(c, "system_ref.atoms.labels") or []) or np.nan for c in calcs], dtype=float)
            y = y / n
            name += " per atom"
        panels.append((name, unit, y))
    if not panels:
        where = calcs[0] if calcs else section
        raise AbsentError("no temperature, pressure or energies to plot", **_where(where))  # type: ignore[arg-type]
    fig, axes = plt.subplots(len(panels), 1, sharex=True, figsize=(7.0, 1.9 * len(panels) + 0.8), constrained_layout=True)
    axes = np.atleast_1d(axes)
    for i, (ax, (name, unit, y)) in enumerate(zip(axes, panels)):
        ax.plot(x, y, color=_COLORS[i % 5], lw=1.2)
        mean = float(np.nanmean(y))
        ax.axhline(mean, color=_COLORS[i % 5], ls=":", lw=1.0)
        ax.set_title(f"mean {mean:.4g} {unit_text(unit)} (dotted)", loc="right", fontsize=8, color="#57606a", pad=3)
        ax.set_ylabel(_label(name, unit), fontsize=9)
        ax.grid(alpha=0.25)
    axes[-1].set_xlabel(xlabel)
    axes[0].set_xlim(float(x.min()), float(x.max()))
    first = calcs[0] if calcs else None
    axes[0].set_title(_title(first, "Molecular dynamics") if first is not None else "Molecular dynamics",
                      fontsize=10, loc="left")
    return fig


# -- geometry optimisation -------------------------------------------------------------------------------
def _max_force(calc: Section, unit: Any) -> float | None:
    for path in ("forces.total.value", "forces.free.value"):
        value = _get(calc, path)
        if value is not None:
            array = _magnitude(value, unit)
            if array.size:
                return float(np.linalg.norm(array.reshape(-1, 3), axis=1).max())
    return None


def _volume(calc: Section, unit: Any) -> float | None:
    cell = _get(calc, "system_ref.atoms.lattice_vectors")
    if cell is None:
        return None
    return float(abs(np.linalg.det(_magnitude(cell, unit))))


def plot_convergence(section: Section | Sequence[Section]) -> Any:
    """A geometry optimisation step by step: how the energy, forces and cell converge.

    Panels: the energy above the lowest one (meV; on a log axis when it spans more than
    three decades, the lowest step then drawn at the axis floor); the largest
    atomic force (when forces are set); the cell volume (when the cell changes). Steps
    without an energy (FHI-aims' last one) are left out of that panel, not dropped.

    Args:
        section: an archive, its ``run[0]``, the optimisation workflow, or a list of
            calculations.

    Returns:
        The matplotlib ``Figure``.

    Raises:
        AbsentError: no calculation has a total energy.
    """
    plt = _import_pyplot()
    calcs = _calculations(section)
    steps = np.arange(len(calcs))
    energy_unit = _unit_for("joule")
    milli = molar_registry().Unit(f"milli{energy_unit}") if str(energy_unit) in ("electron_volt", "hartree") else energy_unit
    energies = np.array([
        _magnitude(e, milli).item() if (e := _get(c, "energy.total.value")) is not None else np.nan for c in calcs
    ])
    if np.all(np.isnan(energies)):
        raise AbsentError("no total energies to plot", **_where(calcs[0] if calcs else section))  # type: ignore[arg-type]
    force_unit = _unit_for("newton")
    forces = np.array([f if (f := _max_force(c, force_unit)) is not None else np.nan for c in calcs])
    length_unit = _unit_for("meter")
    volume_unit = molar_registry().Unit(f"({length_unit}) ** 3")
    volumes = np.array([v if (v := _volume(c, length_unit)) is not None else np.nan for c in calcs])
    panels: list[tuple[str, Any, np.ndarray, bool]] = []
    delta = energies - np.nanmin(energies)
    positive = delta[delta > 0]
    # a log axis once the approach spans three decades; the lowest step then sits at its floor
    log = bool(positive.size) and float(positive.max()) > 1e3 * float(positive.min())
    if log:
        delta = np.where(np.isnan(delta), np.nan, np.maximum(delta, float(positive.min()) / 10))
    panels.append(("E − E_min", milli, delta, log))
    note = ""
    if not np.all(np.isnan(forces)):
        largest = float(np.nanmax(forces))
        if largest > 1e-6:
            panels.append(("max |F|", force_unit, forces, largest > 1e3 * float(np.nanmin(forces[forces > 0]))))
        else:  # forces that vanish by symmetry are noise on a log axis; say so instead
            note = f"all forces ≈ 0 (largest {largest:.1g} {unit_text(force_unit)})"
    finite = volumes[~np.isnan(volumes)]
    if finite.size and np.ptp(finite) > 1e-9 * float(np.abs(finite).max()):
        panels.append(("cell volume", volume_unit, volumes, False))
    fig, axes = plt.subplots(len(panels), 1, sharex=True, figsize=(6.4, 1.9 * len(panels) + 0.9), constrained_layout=True)
    axes = np.atleast_1d(axes)
    for i, (ax, (name, unit, y, log)) in enumerate(zip(axes, panels)):
        ok = ~np.isnan(y)
        ax.plot(steps[ok], y[ok], "o-", color=_COLORS[i % 5], lw=1.2, ms=4)
        if log:
            ax.set_yscale("log")
        missing = steps[~ok]
        if missing.size:
            ax.text(0.99, 0.95, f"not set at step {', '.join(map(str, missing))}", transform=ax.transAxes,
                    ha="right", va="top", fontsize=8, color="#57606a")
        ax.set_ylabel(_label(name, unit), fontsize=9)
        ax.grid(alpha=0.25, which="both")
    if note:
        axes[0].text(0.99, 0.80, note, transform=axes[0].transAxes, ha="right", va="top", fontsize=8, color="#57606a")
    axes[-1].set_xlabel("optimisation step")
    axes[-1].set_xticks(steps)
    first = calcs[0] if calcs else None
    axes[0].set_title(_title(first, "Geometry optimisation") if first is not None else "Geometry optimisation", fontsize=10)
    return fig
