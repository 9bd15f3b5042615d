"""The application's pint registry, with the units NOMAD uses that pint lacks.

archivemap never creates a registry of its own: quantities of two registries cannot be
combined, so every quantity it returns lives on ``pint.get_application_registry()`` — the one
the user may have replaced with ``pint.set_application_registry``. NOMAD's unit names that
pint's default definitions do not know (its atomic-unit aliases and a few 2.0 additions,
spec §6.1) are defined into that registry once, the first time a unit is needed.

Unit strings are only ever parsed from definitions (canonical long names), never from data
(spec §6.4: short symbols like ``Eh`` or ``au`` mean different things in different registries).

Known difference: pint ships CODATA 2022 constants, NOMAD 2.0 uses CODATA 2018. Magnitudes are
exactly what the archive stores (in the definition's unit), and SI conversions of SI-stored
values agree with NOMAD; converting between units built on different constants differs by up to
1.4e-9 relative (dalton, bohr_magneton), 6.8e-10 (bohr), 3e-13 (hartree). archivemap does not
redefine constants in the application registry: pint refuses redefinition there, and silently
changing a user's registry would be worse than a documented nanoscale difference.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import pint

__all__ = ["Quantity", "registry", "to_quantity", "unit"]

# NOMAD's names that pint's defaults lack, as "name = definition" lines (spec §6.1).
_EXTRA_DEFINITIONS = (
    "a_u_energy = hartree",
    "a_u_length = bohr",
    "atomic_unit_of_electric_field_gradient = hartree / elementary_charge / bohr ** 2 = a_u_efg",
    "permille = 0.001 = ‰",
    "ppm = 1e-6",
)

_lock = threading.Lock()
_prepared: set[int] = set()


def registry() -> Any:
    """The application registry, with NOMAD's extra units defined in it (once).

    Returns:
        What ``pint.get_application_registry()`` returns.
    """
    ureg = pint.get_application_registry()
    key = id(ureg.get()) if hasattr(ureg, "get") else id(ureg)
    if key not in _prepared:
        with _lock:
            if key not in _prepared:
                for line in _EXTRA_DEFINITIONS:
                    name = line.split("=", 1)[0].strip()
                    try:
                        ureg.Unit(name)
                    except (pint.errors.UndefinedUnitError, AttributeError, ValueError):
                        try:
                            ureg.define(line)
                        except (pint.errors.DefinitionSyntaxError, pint.errors.RedefinitionError, ValueError):
                            pass
                _prepared.add(key)
                _unit_cached.cache_clear()
    return ureg


@functools.lru_cache(maxsize=1024)
def _unit_cached(text: str, registry_id: int) -> Any:
    return registry().Unit(text)


def unit(text: str) -> Any:
    """The pint unit for a definition's unit string, parsed once per registry."""
    ureg = registry()
    return _unit_cached(text, id(ureg.get()) if hasattr(ureg, "get") else id(ureg))


def to_quantity(magnitude: Any, unit_text: str) -> Any:
    """A quantity of ``magnitude`` (a number or one numpy array) in ``unit_text``."""
    return registry().Quantity(magnitude, unit(unit_text))


def Quantity(magnitude: Any, unit_text: str | None = None) -> Any:  # noqa: N802 - mirrors pint
    """Shorthand for a quantity on the application registry."""
    ureg = registry()
    return ureg.Quantity(magnitude, unit_text) if unit_text else ureg.Quantity(magnitude)
