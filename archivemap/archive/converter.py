"""The cattrs converter and its hooks: archive JSON values ⇄ Python values.

Loading is per field: a section keeps its raw JSON dict and converts one property the first
time it is read (see sections.py). What a value becomes depends on its :class:`FieldMeta`
(unit, dtype, shape), not only on its Python type, so the hooks here are keyed by the field's
NOMAD type kind and registered on one cattrs ``Converter``; user code can register its own
hooks on :data:`converter` (for example to turn ``Datetime`` into pandas timestamps).

A value that does not fit its declared type is never an error: NOMAD's schemas change between
versions, and an old archive must still load. Such a value is returned as it was, and a
:class:`SchemaMismatchWarning` names the path.
"""

from __future__ import annotations

import base64
import datetime as _dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import cattrs

from archivemap._lazy import deferred_import
from archivemap._warnings import warn_at_caller
from archivemap.errors import ArchiveDataError, SchemaMismatchWarning
from archivemap.metainfo.fields import NUMPY_TYPES, FieldMeta
from archivemap.units import check_unit_text, registry, to_quantity, unit

if TYPE_CHECKING:
    import numpy as np
    import pint
else:
    # imported by the first value that needs them (an array, a unit, a numpy scalar): the
    # schema, a load and navigation to sections pay for neither (see units.py)
    np = deferred_import("numpy")
    pint = deferred_import("pint")

__all__ = ["Mismatch", "assignment_problem", "converter", "dump_value", "load_value"]

#: The converter archivemap uses for leaf values; register hooks on it to change them.
converter = cattrs.Converter()


class Mismatch(Exception):
    """Raised inside a hook when a value does not fit; the caller keeps the raw value.

    A hook may pass ``salvaged``: a lossless reading of the value in another shape (an array
    where the definition says scalar). It is returned instead of the raw value, still with
    the warning.
    """

    def __init__(self, message: str, salvaged: Any = None) -> None:
        super().__init__(message)
        self.salvaged = salvaged


_numpy_types: dict[str, Any] = {}


def _numpy_type(dtype_name: str) -> Any:
    """The numpy type of a dtype name, or ``None`` for names not in the table (untrusted)."""
    found = _numpy_types.get(dtype_name)
    if found is None:
        attribute = NUMPY_TYPES.get(dtype_name)
        if attribute is None:
            return None
        found = _numpy_types[dtype_name] = getattr(np, attribute)
    return found


_PYTHON_TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}


def _rank(fm: FieldMeta) -> int:
    return len(fm.shape)


def _check_python(value: Any, typ: type) -> Any:
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typ is int and isinstance(value, bool):
        raise Mismatch(f"expected int, got {value!r}")
    if not isinstance(value, typ):
        raise Mismatch(f"expected {typ.__name__}, got {type(value).__name__}")
    return value


def _python_hook(value: Any, fm: FieldMeta) -> Any:
    typ = _PYTHON_TYPES.get(str(fm.dtype))
    if typ is None:
        return value
    if _rank(fm) == 0:
        if isinstance(value, list):
            raise Mismatch(f"expected a scalar {typ.__name__}, got a list")
        return _check_python(value, typ)
    if not isinstance(value, list):
        raise Mismatch(f"expected a list of {typ.__name__}, got {type(value).__name__}")
    if all(type(v) is typ for v in value):  # the common case, without a call per item
        return list(value)  # a copy: editing it must not edit the loaded JSON behind it
    return [v if v is None else _check_python(v, typ) for v in value]


def _complex(value: Any, rank: int) -> Any:
    if isinstance(value, dict) and "re" in value and "im" in value:
        try:
            re = np.asarray(value["re"], dtype=np.float64)
            im = np.asarray(value["im"], dtype=np.float64)
        except (TypeError, ValueError, OverflowError) as exc:
            raise Mismatch(f"complex parts are not numbers: {exc}") from None
        if re.shape != im.shape:
            raise Mismatch("complex value with 're' and 'im' of different shapes")
        out = re + 1j * im
        return out if rank else np.complex128(out)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return np.complex128(value)
    raise Mismatch("complex values are stored as {'re': ..., 'im': ...}")


def _numpy_hook(value: Any, fm: FieldMeta) -> Any:
    dtype_name = str(fm.dtype)
    np_type = _numpy_type(dtype_name)
    if np_type is None:  # only known names: a dtype string from metainfo is untrusted input
        raise Mismatch(f"unknown numpy dtype {dtype_name[:40]!r}")
    rank = _rank(fm)
    if np_type is np.complex128 or np_type is np.complex64:
        return _complex(value, rank)
    if isinstance(value, dict):
        raise Mismatch(f"expected {dtype_name} data, got an object")
    if rank == 0:
        if isinstance(value, list):
            salvaged: Any
            try:
                salvaged = np.asarray(value, dtype=np_type)
            except (TypeError, ValueError, OverflowError):
                salvaged = None
            raise Mismatch(f"expected a scalar {dtype_name}, got a list", salvaged)
        if value is None:
            return None
        if isinstance(value, str) and np_type is not np.str_:
            raise Mismatch(f"expected {dtype_name}, got a string")
        if _is_integer_type(np_type) and not _is_json_int(value):
            raise Mismatch(f"expected {dtype_name}, got {value!r}")  # 1.5 must not read as 1
        try:
            return np_type(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise Mismatch(str(exc)) from None
    try:
        # None inside numeric arrays is NaN: the API (orjson) writes NaN as null (spec §2.2).
        # Integer arrays are read without a dtype first, so that 1.5 or true cannot be cast.
        wanted = np.float64 if np_type in (np.float64, np.float32) else None if _is_integer_type(np_type) else np_type
        array: Any = np.asarray(value, dtype=wanted)
    except (TypeError, ValueError, OverflowError) as exc:
        raise Mismatch(f"cannot read as {dtype_name} array: {exc}") from None
    if _is_integer_type(np_type) and array.dtype.kind not in "iu" and array.size:
        raise Mismatch(f"expected {dtype_name} values, got {array.dtype.name} ones")
    if array.dtype != np_type and np_type is not np.str_:
        array = array.astype(np_type)
    if array.ndim != rank and not (array.size == 0 and array.ndim == 1):
        raise Mismatch(f"expected rank {rank} (shape {list(fm.shape)}), got rank {array.ndim}", array)
    return array


def _is_integer_type(np_type: Any) -> bool:
    return isinstance(np_type, type) and issubclass(np_type, np.integer)


def _is_json_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _enum_hook(value: Any, fm: FieldMeta) -> Any:
    values = fm.dtype or ()
    def one(v: Any) -> Any:
        if not isinstance(v, str):
            raise Mismatch(f"enum value must be a string, got {type(v).__name__}")
        if values and v not in values:
            short = v.rpartition(".")[2]  # legacy "Class.value" spelling
            if short in values:
                return short
            raise Mismatch(f"{v!r} is not one of the {len(values)} allowed values")
        return v
    if _rank(fm):
        if not isinstance(value, list):
            raise Mismatch("expected a list of enum values")
        return [one(v) for v in value]
    return one(value)


def _parse_datetime(v: Any) -> _dt.datetime:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        try:
            return _dt.datetime.fromtimestamp(v, tz=_dt.timezone.utc)
        except (OverflowError, ValueError, OSError) as exc:
            raise Mismatch(f"{v!r} is not a timestamp ({exc})") from None
    if not isinstance(v, str):
        raise Mismatch(f"expected an ISO 8601 string, got {type(v).__name__}")
    text = v.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        return _dt.datetime.fromisoformat(text)
    except ValueError:
        raise Mismatch(f"{v!r} is not an ISO 8601 datetime") from None


def _custom_hook(value: Any, fm: FieldMeta) -> Any:
    kind = str(fm.dtype or "").rpartition(".")[2]
    if kind == "Datetime":
        if _rank(fm):
            if not isinstance(value, list):
                raise Mismatch("expected a list of datetimes")
            return [None if v is None else converter.structure(v, _dt.datetime) for v in value]
        return converter.structure(value, _dt.datetime)
    if kind == "JSON":
        if not isinstance(value, (dict, list)):
            raise Mismatch(f"JSON quantities hold objects, got {type(value).__name__}")
        return value
    if kind == "Bytes":
        return converter.structure(value, bytes)
    return value


def _identity(value: Any, fm: FieldMeta) -> Any:
    return value


#: Hooks by NOMAD type kind. Each takes the raw JSON value and the field, returns the Python
#: value or raises :class:`Mismatch`. References are resolved by the section, not here.
HOOKS: dict[str, Callable[[Any, FieldMeta], Any]] = {
    "python": _python_hook,
    "numpy": _numpy_hook,
    "enum": _enum_hook,
    "custom": _custom_hook,
    "User": _identity,
    "Author": _identity,
    "reference": _identity,
    "quantity_reference": _identity,
}


def _unwrap_full_storage(value: Any, fm: FieldMeta) -> tuple[Any, str | None]:
    """Unwrap ``{name: {"m_value": v, "m_unit": u}}`` (spec §2.3) into (v, u)."""
    if isinstance(value, dict) and len(value) == 1:
        inner = next(iter(value.values()))
        if isinstance(inner, dict) and "m_value" in inner:
            u = inner.get("m_unit")
            return inner["m_value"], u if isinstance(u, str) else None
    if isinstance(value, dict) and "m_value" in value:
        u = value.get("m_unit")
        return value["m_value"], u if isinstance(u, str) else None
    return value, None


def load_value(value: Any, fm: FieldMeta, path: Any) -> Any:
    """Convert one raw JSON value of quantity ``fm`` into its Python value.

    Args:
        value: the JSON value (never ``None``; the caller handles unset values).
        fm: the field's metadata.
        path: the archive path, for the warning when the value does not fit.

    Returns:
        The converted value: pint quantities for values with a unit (one Quantity around
        one numpy array for arrays), numpy arrays/scalars for numpy types, datetimes, ...
        A value that does not fit is returned unchanged, with a :class:`SchemaMismatchWarning`.
    """
    unit_text = fm.unit
    written = value
    if isinstance(value, dict) and fm.type_kind not in ("custom", "User", "Author") or (
        isinstance(value, dict) and "m_value" in value
    ):
        value, stored_unit = _unwrap_full_storage(value, fm)
        if stored_unit is not None:
            try:  # a unit written in the data is untrusted: never hand pint an expression
                check_unit_text(stored_unit)
            except ArchiveDataError as exc:
                warn_at_caller(f"{path}: {exc}; kept as it was", SchemaMismatchWarning)
                return written
        unit_text = stored_unit or unit_text
    hook = HOOKS.get(fm.type_kind or "python", _identity)
    try:
        try:
            out = hook(value, fm)
        except (TypeError, ValueError, OverflowError, ArithmeticError, OSError) as exc:
            # a JSON value no hook foresaw: it does not fit, it must not crash the reader
            raise Mismatch(f"{type(exc).__name__}: {exc}") from None
    except Mismatch as exc:
        kept = "read as an array" if exc.salvaged is not None else "kept as it was"
        warn_at_caller(
            f"{path}: value does not fit its definition ({exc}); {kept}",
            SchemaMismatchWarning,
        )
        if exc.salvaged is None:
            return value
        out = exc.salvaged
    if unit_text and out is not None and fm.type_kind in ("numpy", "python"):
        if isinstance(out, list):
            out = np.asarray(out, dtype=np.float64)
        try:
            return to_quantity(out, unit_text)
        except Exception as exc:  # an unknown unit in a definition must not lose the value
            warn_at_caller(
                f"{path}: unit {unit_text!r} is unknown to the registry ({exc}); "
                "value returned without unit",
                SchemaMismatchWarning,
            )
    return out


def dump_value(value: Any, fm: FieldMeta) -> Any:
    """The JSON form of a Python value assigned to quantity ``fm`` (inverse of load_value).

    A quantity with a unit is first converted to the definition's unit (archives store
    magnitudes in it, spec §6.3); everything else goes through :data:`converter`.
    """
    if value is None:
        return None
    if fm.unit and hasattr(value, "to") and hasattr(value, "magnitude"):
        value = value.to(unit(fm.unit)).magnitude
    return converter.unstructure(value)


# -- hooks on the converter ---------------------------------------------------------------------
def _structure_bytes(value: Any, _: type) -> bytes:
    if not isinstance(value, str):
        raise Mismatch("Bytes are stored as base64 strings")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise Mismatch("invalid base64") from None


def _unstructure_datetime(value: _dt.datetime) -> str:
    if value.tzinfo is None:  # NOMAD writes UTC with an explicit offset
        value = value.replace(tzinfo=_dt.timezone.utc)
    return value.isoformat()


def _unstructure_array(value: np.ndarray) -> Any:
    if np.iscomplexobj(value):
        return {"re": value.real.tolist(), "im": value.imag.tolist()}
    return value.tolist()


def _unstructure_scalar(value: np.generic) -> Any:
    if np.iscomplexobj(value):
        return {"re": float(value.real), "im": float(value.imag)}  # type: ignore[attr-defined]
    return value.item()


def _is_quantity(cls: type) -> bool:
    return hasattr(cls, "magnitude") and hasattr(cls, "units") and isinstance(cls, type)


# numpy classes are matched by predicates, asked only when a value is written back: a hook
# keyed by np.ndarray would import numpy with this module
def _is_array(cls: type) -> bool:
    return isinstance(cls, type) and issubclass(cls, np.ndarray)


def _is_numpy_scalar(cls: type) -> bool:
    return isinstance(cls, type) and issubclass(cls, np.generic)


converter.register_structure_hook(_dt.datetime, lambda v, _: _parse_datetime(v))
converter.register_structure_hook(bytes, _structure_bytes)
converter.register_unstructure_hook(_dt.datetime, _unstructure_datetime)
converter.register_unstructure_hook(bytes, lambda v: base64.b64encode(v).decode("ascii"))
converter.register_unstructure_hook(complex, lambda v: {"re": v.real, "im": v.imag})
converter.register_unstructure_hook_func(_is_array, _unstructure_array)
converter.register_unstructure_hook_func(_is_numpy_scalar, _unstructure_scalar)
converter.register_unstructure_hook_func(_is_quantity, lambda q: converter.unstructure(q.magnitude))
converter.register_unstructure_hook(list, lambda items: [converter.unstructure(v) for v in items])


# -- assignments -------------------------------------------------------------------------------
_KINDS_FOR: dict[str, str] = {"f": "fiu", "i": "iu", "u": "iu", "b": "b", "c": "fiuc", "U": "U"}


def assignment_problem(value: Any, fm: FieldMeta) -> str | None:
    """Why ``value`` cannot be assigned to quantity ``fm``, or ``None`` when it fits.

    What loading tolerates (old data is kept as written), assignment refuses: a value a user
    assigns is new, and storing ``-1.0`` where joules are meant, or ``"hot"`` in a
    temperature, would be written back wrong without a word.
    """
    if value is None or fm.kind != "quantity" or fm.is_reference:  # references: the section's job
        return None
    magnitude = value
    if fm.unit and fm.type_kind in ("numpy", "python"):
        if not isinstance(value, pint.Quantity):
            dimensionless = registry().Quantity(1, unit(fm.unit)).dimensionless
            if not dimensionless:
                return f"needs a quantity with a unit of {unit(fm.unit).dimensionality}, e.g. Quantity(1.0, {fm.unit!r})"
        else:
            try:
                value.to(unit(fm.unit))
            except pint.errors.DimensionalityError:
                return f"needs a unit of {unit(fm.unit).dimensionality}, not {value.units}"
            magnitude = value.magnitude
    elif isinstance(value, pint.Quantity) and fm.type_kind in ("numpy", "python"):
        if not value.dimensionless:
            return f"takes no unit, got {value.units}"
        magnitude = value.magnitude
    if fm.type_kind == "python":
        return _python_problem(magnitude, fm)
    if fm.type_kind == "numpy":
        return _numpy_problem(magnitude, fm)
    if fm.type_kind == "enum":
        allowed = fm.dtype or ()
        items = magnitude if _rank(fm) and isinstance(magnitude, list) else [magnitude]
        bad = [v for v in items if not isinstance(v, str) or (allowed and v not in allowed)]
        return f"{bad[0]!r} is not one of {list(allowed)[:8]}" if bad else None
    return None


def _python_problem(value: Any, fm: FieldMeta) -> str | None:
    typ = _PYTHON_TYPES.get(str(fm.dtype))
    if typ is None:
        return None
    items = value if _rank(fm) else [value]
    if _rank(fm) and not isinstance(items, (list, tuple, np.ndarray)):
        return f"needs a list of {typ.__name__}"
    for item in items:
        if item is None:
            continue
        if typ is float and isinstance(item, (int, float, np.integer, np.floating)) and not isinstance(item, bool):
            continue
        if typ is int and isinstance(item, (int, np.integer)) and not isinstance(item, (bool, np.bool_)):
            continue
        if typ is bool and isinstance(item, (bool, np.bool_)):
            continue
        if typ is str and isinstance(item, str):
            continue
        return f"needs {typ.__name__} values, got {type(item).__name__}"
    return None


def _numpy_problem(value: Any, fm: FieldMeta) -> str | None:
    np_type = _numpy_type(str(fm.dtype))
    if np_type is None:
        return None
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        return f"is not an array of {fm.dtype}: {exc}"
    allowed = _KINDS_FOR.get(np.dtype(np_type).kind, "")
    if array.size and array.dtype.kind not in allowed:
        return f"needs {fm.dtype} values, got {array.dtype.name}"
    rank = _rank(fm)
    if array.ndim != rank:
        return f"needs rank {rank} (shape {list(fm.shape)}), got shape {list(array.shape)}"
    for want, got in zip(fm.shape, array.shape):
        if isinstance(want, int) and not isinstance(want, bool) and want != got:
            return f"needs shape {list(fm.shape)}, got {list(array.shape)}"
    return None
