"""Display units: the units a person reads, while stored values never change.

Archives store every value in its definition's SI unit (joule, meter, pascal, second); a
materials scientist thinks in eV, Å, eV/Å, GPa, K and ps. A *display-unit preference* says
which unit to show for each physical dimension; reprs (text and HTML), DataFrames and the
command line convert to it when they show a value. Nothing else does: ``calc.energy.total.value``
is still the quantity in the unit the archive stores, and ``to_dict()`` writes it back as it was.

>>> from archivemap.views.units import display_units
>>> display_units("materials")              # the default: eV, Å, eV/Å, GPa, K, ps
>>> display_units("materials", energy="kJ/mol")   # molar energies in tables and reprs
>>> with display_units("si"):               # show what the archive stores, for a while
...     ...

Presets (:data:`PRESETS`): ``"materials"`` (the default), ``"atomic"`` (hartree, bohr, ...),
``"si"`` (the stored definition units, no conversion). A preset is a table from dimension to
unit; a dimension the table lacks is tried with pint's preferred-units machinery
(``Quantity.to_preferred``) over the preset's energy, length, time and temperature units
(J/m² → eV/Å² where the table had no entry), and kept as stored when that gives nothing
simple (at most two unit factors): mass never becomes ``Å·GPa·ps²``, a current never e·THz.

**Molar conversions.** NOMAD energies are per particle (per atom, per cell, per molecule:
whatever the code computed). Converting them to ``kJ/mol`` or ``kcal/mol`` multiplies by
Avogadro's constant, which is not a unit conversion, so pint refuses it unless asked. This
module defines the pint context :data:`MOLAR_CONTEXT` (``"molar"``) on the application registry:
``[energy] ↔ [energy]/[substance]`` by ``N_A``. :func:`convert` uses it only when the target
is molar and the value is not (``convert(e, "kJ/mol")``); by hand it is
``e.to("kJ/mol", "molar")``. "Per mole of *what*" is the archive's business: the energy of a
16-atom cell in kJ/mol is per mole of cells.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from archivemap._lazy import deferred_import
from archivemap._locks import ForkSafeLock
from archivemap.units import check_unit_text, registry, registry_key

if TYPE_CHECKING:
    import pint
else:
    # pint (~0.12 s) is imported by the first unit needed, not by importing the views
    pint = deferred_import("pint")

__all__ = [
    "DIMENSIONS",
    "MOLAR_CONTEXT",
    "PRESETS",
    "DisplayUnits",
    "convert",
    "current",
    "display_unit",
    "display_units",
    "molar_registry",
    "to_display",
    "unit_text",
]

#: The name of the pint context that turns per-particle energies into molar ones (× N_A).
MOLAR_CONTEXT = "molar"

#: Dimension names accepted as keyword overrides, and the pint dimension they stand for.
DIMENSIONS: dict[str, str] = {
    "energy": "[energy]",
    "length": "[length]",
    "force": "[force]",
    "pressure": "[pressure]",
    "temperature": "[temperature]",
    "time": "[time]",
    "mass": "[mass]",
    "velocity": "[velocity]",
    "frequency": "[frequency]",
    "wavenumber": "[wavenumber]",
    "area": "[area]",
    "volume": "[volume]",
    "charge": "[charge]",
    "density": "[density]",
    "energy_per_area": "[energy] / [area]",
    "energy_per_temperature": "[energy] / [temperature]",
    "force_constant": "[energy] / [area]",
    "energy_density": "[energy] / [volume]",
}

#: The built-in presets: dimension name → unit. ``"si"`` is empty: the stored units.
PRESETS: dict[str, dict[str, str]] = {
    "materials": {
        "energy": "eV",
        "length": "angstrom",
        "force": "eV / angstrom",
        "pressure": "GPa",
        "temperature": "K",
        "time": "ps",
        "mass": "dalton",
        "velocity": "angstrom / ps",
        "frequency": "THz",
        "wavenumber": "1 / angstrom",
        "area": "angstrom ** 2",
        "volume": "angstrom ** 3",
        "charge": "elementary_charge",
        "density": "g / cm ** 3",
        "energy_per_area": "eV / angstrom ** 2",
        "energy_per_temperature": "eV / K",
    },
    "atomic": {
        "energy": "hartree",
        "length": "bohr",
        "force": "hartree / bohr",
        "pressure": "hartree / bohr ** 3",
        "temperature": "K",
        "time": "atomic_unit_of_time",
        "mass": "electron_mass",
        "wavenumber": "1 / bohr",
        "area": "bohr ** 2",
        "volume": "bohr ** 3",
        "charge": "elementary_charge",
    },
    "si": {},
}

_lock = ForkSafeLock(reentrant=False)  # a forked child gets it back unlocked
_molar_ready: set[int] = set()


def _per_mole(ureg: Any, value: Any, **kwargs: Any) -> Any:
    return value * ureg.avogadro_constant


def _per_particle(ureg: Any, value: Any, **kwargs: Any) -> Any:
    return value / ureg.avogadro_constant


def molar_registry() -> Any:
    """The application registry with the ``"molar"`` context defined in it (once)."""
    ureg = registry()
    key = id(ureg.get()) if hasattr(ureg, "get") else id(ureg)
    if key in _molar_ready:
        return ureg
    with _lock:
        if key not in _molar_ready:
            try:
                ctx = pint.Context(MOLAR_CONTEXT)
                ctx.add_transformation("[energy]", "[energy] / [substance]", _per_mole)
                ctx.add_transformation("[energy] / [substance]", "[energy]", _per_particle)
                ureg.add_context(ctx)
            except (ValueError, KeyError):  # already there (another import of this module)
                pass
            _molar_ready.add(key)
    return ureg


def _dimensionality(text: str) -> Any:
    ureg = registry()
    return ureg.get_dimensionality(text)


def _is_molar(unit: Any) -> bool:
    return bool(getattr(unit, "dimensionality", {}).get("[substance]", 0))


def convert(value: Any, unit: str | Any) -> Any:
    """``value.to(unit)``, through the ``"molar"`` context when only that makes it possible.

    ``convert(energy, "kJ/mol")`` multiplies a per-particle energy by Avogadro's constant;
    ``convert(molar, "eV")`` divides. Everything else is a plain pint conversion.

    Raises:
        pint.DimensionalityError: the units do not fit, even through the molar context.
    """
    ureg = molar_registry()
    target = ureg.Unit(check_unit_text(unit)) if isinstance(unit, str) else unit
    try:
        return value.to(target)
    except pint.DimensionalityError:
        if _is_molar(target) == _is_molar(value.units):
            raise
        return value.to(target, MOLAR_CONTEXT)


def unit_text(unit: Any) -> str:
    """The short symbol of a unit (``eV``, ``Å``, ``eV/Å``), ``""`` for dimensionless."""
    try:
        text = f"{unit:~P}"
    except (TypeError, ValueError):
        text = str(unit)
    if text in ("", "dimensionless"):
        return ""
    for pint_symbol, symbol in _SYMBOLS.items():
        if pint_symbol in text:  # "(ħ/E_h)" inside a compound unit, bare on its own
            text = symbol if text == pint_symbol else text.replace(pint_symbol, f"({symbol})")
    return text


#: pint's short symbols that no paper writes, and what physicists write instead.
_SYMBOLS: Final = {"a_u_time": "ħ/E_h"}


class DisplayUnits:
    """One display-unit preference: a table from pint dimensionality to unit.

    Made by :func:`display_units`; also a context manager that restores the previous
    preference on exit.
    """

    def __init__(self, name: str, table: Mapping[str, str]) -> None:
        self.name = name
        self.table = dict(table)
        self._previous: DisplayUnits | None = None
        self._build()  # checks the table now: a unit of the wrong dimension is refused here

    def _build(self) -> None:
        """The tables of pint units, on the registry quantities are made on now."""
        ureg = molar_registry()
        by_dim: dict[Any, Any] = {}
        for key, unit in self.table.items():
            dim = _dimensionality(DIMENSIONS.get(key, key))
            target = ureg.Unit(check_unit_text(unit))
            if dim == target.dimensionality or (
                _is_molar(target) and dim == (target * ureg.mole).dimensionality
            ):
                by_dim[dim] = target
            else:
                raise ValueError(f"display unit {unit!r} is not a unit of {key}")
        # pint's preferred units combine only the base display units (energy, length, time,
        # temperature): THz, e or Da in the mix would turn an ampere into e·THz
        base = {_dimensionality(DIMENSIONS[k]) for k in ("energy", "length", "time", "temperature")}
        self._by_dim = by_dim
        self._preferred = [u for d, u in by_dim.items() if d in base and not _is_molar(u)]
        self._cache: dict[str, Any] = {}
        self._registry = registry_key()

    def __repr__(self) -> str:
        return f"DisplayUnits({self.name!r}, {self.table!r})"

    def unit_for(self, unit: Any) -> Any:
        """The display unit for values stored in ``unit`` (a pint unit or text), or ``None``."""
        if not self.table or unit is None:
            return None
        if self._registry != registry_key():  # pint.set_application_registry since: its units
            self._build()
        key = str(unit)
        if key in self._cache:
            return self._cache[key]
        ureg = molar_registry()
        source = ureg.Unit(unit) if isinstance(unit, str) else unit
        found = self._by_dim.get(source.dimensionality)
        if found is None and not source.dimensionless and self._preferred:
            try:
                guess = ureg.Quantity(1.0, source).to_preferred(self._preferred).units
            except (pint.DimensionalityError, AttributeError, TypeError, ValueError, KeyError):
                guess = None
            if guess is not None and guess != source and 0 < len(guess._units) <= 2:
                found = guess
        self._cache[key] = found
        return found

    def show(self, value: Any) -> Any:
        """``value`` in its display unit (a new quantity); anything else unchanged."""
        units = getattr(value, "units", None)
        if units is None or not hasattr(value, "magnitude"):
            return value
        target = self.unit_for(units)
        if target is None or target == units:
            return value
        try:
            return convert(value, target)
        except (pint.DimensionalityError, TypeError, ValueError):
            return value

    # -- a context manager restoring the preference it replaced ----------------------------
    def __enter__(self) -> DisplayUnits:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        global _current
        if self._previous is not None:
            _current = self._previous


# The preference in force; the default ("materials") is made by its first use, because making
# it builds pint's registry (0.1-0.3 s), which importing the views (as the CLI does for every
# command) should not cost.
_current: DisplayUnits | None = None


def display_units(preset: str | Mapping[str, str] | None = "materials", **by_dimension: str) -> DisplayUnits:
    """Choose the units reprs, DataFrames and the CLI show (stored values never change).

    Args:
        preset: ``"materials"`` (default: eV, Å, eV/Å, GPa, K, ps), ``"atomic"``, ``"si"``
            (the stored units), a mapping of dimension name to unit, or ``None`` (= ``"si"``).
        **by_dimension: overrides by dimension name (see :data:`DIMENSIONS`), e.g.
            ``energy="kJ/mol"`` (per-particle energies become molar through the
            ``"molar"`` context) or ``time="fs"``.

    Returns:
        The new preference, now in force; used as a context manager it restores the
        previous one on exit.

    Raises:
        ValueError: an unknown preset or dimension name, or a unit of another dimension.
    """
    global _current
    if preset is None:
        preset = "si"
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"unknown display-unit preset {preset!r}; one of {', '.join(PRESETS)}")
        name, table = preset, dict(PRESETS[preset])
    else:
        name, table = "custom", dict(preset)
    unknown = [key for key in by_dimension if key not in DIMENSIONS]
    if unknown:
        raise ValueError(f"unknown dimension {unknown[0]!r}; one of {', '.join(DIMENSIONS)}")
    table.update(by_dimension)
    if by_dimension:
        name = f"{name}+" + ",".join(f"{k}={v}" for k, v in by_dimension.items())
    chosen = DisplayUnits(name, table)
    chosen._previous = current()  # (made first if nothing was chosen yet: current() locks)
    with _lock:
        _current = chosen
    return chosen


def current() -> DisplayUnits:
    """The display-unit preference in force."""
    global _current
    found = _current
    if found is None:
        made = DisplayUnits("materials", PRESETS["materials"])  # takes _lock itself (the registry)
        with _lock:
            if _current is None:
                _current = made
            found = _current
    return found


def to_display(value: Any) -> Any:
    """A quantity in the display unit in force; anything else unchanged."""
    return current().show(value)


def display_unit(stored_unit: str | None) -> Any:
    """The display unit for a definition's stored unit (``None``: show it as stored)."""
    return current().unit_for(stored_unit) if stored_unit else None
