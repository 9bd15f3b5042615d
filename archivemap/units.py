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
import re
from typing import TYPE_CHECKING, Any, Final


from archivemap._lazy import deferred_import
from archivemap._locks import ForkSafeLock
from archivemap.errors import ArchiveDataError

if TYPE_CHECKING:
    import pint
else:
    # imported when the first unit is needed, not with archivemap: pint and the numpy it
    # brings (and dask, when installed) are most of "import + schema ready" otherwise
    pint = deferred_import("pint")

__all__ = ["Quantity", "check_unit_text", "registry", "registry_key", "to_quantity", "unit"]

# NOMAD's names that pint's defaults lack, as "name = definition" lines (spec §6.1).
_EXTRA_DEFINITIONS = (
    "a_u_energy = hartree",
    "a_u_length = bohr",
    "atomic_unit_of_electric_field_gradient = hartree / elementary_charge / bohr ** 2 = a_u_efg",
    "permille = 0.001 = ‰",
    "ppm = 1e-6",
)

_lock = ForkSafeLock(reentrant=False)  # a forked child gets it back unlocked
_prepared: set[int] = set()


def registry() -> Any:
    """The application registry, with NOMAD's extra units defined in it (once).

    Returns:
        What ``pint.get_application_registry()`` returns.
    """
    ureg = pint.get_application_registry()
    key = id(_current(ureg))
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


def registry_key() -> int:
    """Which registry quantities are made on now: it changes with ``pint.set_application_registry``.

    What is built from units once (display-unit tables) is rebuilt when it changes, since
    pint refuses to combine units of two registries.
    """
    return id(_current(registry()))


def _current(ureg: Any) -> Any:
    """The registry behind the application registry (the object quantities belong to)."""
    return ureg.get() if hasattr(ureg, "get") else ureg


@functools.lru_cache(maxsize=1024)
def _unit_cached(text: str, registry_id: int) -> Any:
    # checked here, once per text and registry: a unit in the cache has passed the check
    check_unit_text(text)
    return registry().Unit(text)


# A unit expression, as NOMAD writes them ("joule", "1 / meter", "meter ** 2", "kJ/mol"):
# names, numbers, * / ( ) and ** or ^ with a small number. pint parses unit strings by
# evaluating an expression tree, so "10**10**10" in archive data would compute a number with
# ten billion digits: strings are checked against this grammar before pint sees them.
_UNIT_TOKEN: Final = re.compile(
    r"\s*(?:(?P<name>[^\W\d]\w*|%)|(?P<num>[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|(?P<op>\*\*|\^|[*/()]))\s*"
)
_EXPONENT: Final = re.compile(r"[+-]?\d{1,3}(?:\.\d{1,3})?\Z")
_MAX_UNIT_TEXT: Final = 256
_MAX_DEPTH: Final = 8
_POWER: Final = ("**", "^")


def check_unit_text(text: str) -> str:
    """Return ``text`` if it is a plain unit expression pint can parse in bounded time.

    Accepted: unit names, numeric factors, ``*``, ``/``, parentheses (8 deep), and ``**``
    or ``^`` after a name or a parenthesis, followed by a number of at most three digits
    (signed or decimal, at most 100) that is not itself raised to a power. Linear in the
    length of ``text``.

    Raises:
        ArchiveDataError: anything else (the message quotes the start of the text).
    """

    def bad(why: str) -> ArchiveDataError:
        return ArchiveDataError(f"unit {str(text)[:60]!r} is not a unit expression: {why}")

    if not isinstance(text, str) or len(text) > _MAX_UNIT_TEXT:
        raise bad(f"a string of at most {_MAX_UNIT_TEXT} characters")
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        match = _UNIT_TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise bad(f"unexpected character at position {position}")
        if match.group("name") is not None:
            tokens.append(("name", match.group("name")))
        elif match.group("num") is not None:
            tokens.append(("num", match.group("num")))
        else:
            tokens.append((match.group("op"), match.group("op")))
        position = match.end()
    depth = 0
    for i, (kind, value) in enumerate(tokens):
        before = tokens[i - 1][0] if i else ""
        after = tokens[i + 1][0] if i + 1 < len(tokens) else ""
        if kind in _POWER:
            if before not in ("name", ")"):
                raise bad("only a unit name or a parenthesis can be raised to a power")
            if after != "num":
                raise bad("an exponent must be a number")
        elif kind == "num" and before in _POWER:
            if not _EXPONENT.match(value) or abs(float(value)) > 100:
                raise bad("an exponent must be a number of at most 100")
            if i + 2 < len(tokens) and tokens[i + 2][0] in _POWER:
                raise bad("a power cannot be raised to a power")
        elif kind == "num" and value[0] in "+-":
            raise bad("a sign belongs to an exponent only")
        elif kind == "(":
            depth += 1
            if depth > _MAX_DEPTH:
                raise bad("parentheses nested too deeply")
        elif kind == ")":
            depth -= 1
            if depth < 0:
                raise bad("unbalanced parentheses")
    if depth:
        raise bad("unbalanced parentheses")
    return text


def unit(text: str) -> Any:
    """The pint unit for a unit string, parsed once per registry.

    Raises:
        ArchiveDataError: the string is not a plain unit expression (see
            :func:`check_unit_text`); pint's own errors for unknown names.
    """
    return _unit_cached(text, id(_current(registry())))


def to_quantity(magnitude: Any, unit_text: str) -> Any:
    """A quantity of ``magnitude`` (a number or one numpy array) in ``unit_text``.

    The hot path of every value with a unit: the unit is parsed and checked once per text
    (cached), and the quantity is made by the current registry's own class rather than
    through the application registry's delegation.

    Raises:
        ArchiveDataError: ``unit_text`` is not a plain unit expression (see
            :func:`check_unit_text`); pint's own errors for unknown names.
    """
    current = _current(registry())
    return current.Quantity(magnitude, _unit_cached(unit_text, id(current)))


def Quantity(magnitude: Any, unit_text: str | None = None) -> Any:  # noqa: N802 - mirrors pint
    """Shorthand for a quantity on the application registry."""
    ureg = registry()
    return ureg.Quantity(magnitude, unit_text) if unit_text else ureg.Quantity(magnitude)
