"""Type hints: the annotation of a field, from its :class:`~archivemap.metainfo.fields.FieldMeta`.

The hints describe what reading the attribute returns (see ``archivemap.archive.converter``):

========================================  ==============================================
quantity                                  annotation
========================================  ==============================================
any unit (python or numpy type)           ``pint.Quantity | None``
python scalar ``str/int/float/bool``      ``str | None`` ...
python non-scalar                         ``list[str] | None`` ...
numpy scalar                              ``np.float64 | None``, ``np.int32 | None`` ...
                                          (``bool``/``bool_`` → ``np.bool_``)
numpy non-scalar                          ``np.ndarray | None``
enum                                      ``str | None`` (``list[str] | None``)
``Datetime``                              ``datetime.datetime | None``
``JSON``                                  ``dict[str, Any] | None``
``Bytes``                                 ``bytes | None``
reference, rank 0 / rank 1                ``Target | None`` / ``list[Target] | None``
Any, User, Author, quantity_reference,    ``Any``
other custom types, higher-rank refs
========================================  ==============================================

Sub-sections are ``Target | None``, or ``list[Target]`` when repeating. ``Target`` is the
class generated for the target section; a target without a class (unknown definition) is
``Any``.
"""

from __future__ import annotations

from collections.abc import Callable

from archivemap.metainfo.fields import NUMPY_TYPES, FieldMeta

__all__ = ["Names", "annotation", "NUMPY_SCALARS"]

#: numpy type_data → numpy scalar type name: the definition model's table.
NUMPY_SCALARS = NUMPY_TYPES

_PYTHON = ("str", "int", "float", "bool")


class Names:
    """The names a module's annotations use, each spelled the way that module imports it.

    Args:
        spelling: canonical name (``str``, ``np``, ``pint``, ``datetime``, ``Any``...) →
            how to write it in this module (``builtins_.str`` when a field named ``str``
            would shadow the builtin inside a class body).
    """

    def __init__(self, spelling: dict[str, str] | None = None) -> None:
        self.spelling = dict(spelling or {})
        self.used: set[str] = set()

    def __call__(self, name: str) -> str:
        self.used.add(name)
        return self.spelling.get(name, name)


def _custom_kind(dtype: object) -> str:
    # the converter keys custom types by the last dotted part, so do we
    return str(dtype or "").rpartition(".")[2]


def annotation(fm: FieldMeta, target: Callable[[str], str | None], names: Names) -> str:
    """The annotation of one field.

    Args:
        fm: the field's metadata.
        target: qualified section name → the expression naming its class in this module, or
            ``None`` when there is no class for it.
        names: spells (and records the use of) builtins and imported names.

    Returns:
        The annotation, as source text.
    """
    if fm.kind == "sub_section":
        cls = target(fm.section) if fm.section else None
        inner = cls if cls is not None else names("Any")
        if fm.repeats:
            return f"{names('list')}[{inner}]"
        return inner if cls is None else f"{inner} | None"

    rank = len(fm.shape)
    kind = fm.type_kind
    if kind in ("python", "numpy") and fm.unit:
        return f"{names('pint')}.Quantity | None"
    if kind == "python":
        py = str(fm.dtype)
        if py not in _PYTHON:
            return names("Any")
        if rank == 0:
            return f"{names(py)} | None"
        if rank == 1:
            return f"{names('list')}[{names(py)}] | None"
        return f"{names('list')}[{names('Any')}] | None"
    if kind == "numpy":
        if rank > 0:
            return f"{names('np')}.ndarray | None"
        scalar = NUMPY_SCALARS.get(str(fm.dtype))
        if scalar is None:
            return names("Any")
        return f"{names('np')}.{scalar} | None"
    if kind == "enum":
        if rank == 0:
            return f"{names('str')} | None"
        if rank == 1:
            return f"{names('list')}[{names('str')}] | None"
        return f"{names('list')}[{names('Any')}] | None"
    if kind == "reference":
        cls = target(fm.dtype) if isinstance(fm.dtype, str) else None
        if cls is None or rank > 1:
            return names("Any")
        if rank == 1:
            return f"{names('list')}[{cls}] | None"
        return f"{cls} | None"
    if kind == "custom":
        custom = _custom_kind(fm.dtype)
        if custom == "Datetime":
            inner = f"{names('datetime')}.datetime"
        elif custom == "JSON":
            inner = f"{names('dict')}[{names('str')}, {names('Any')}]"
        elif custom == "Bytes":
            inner = names("bytes")
        else:
            return names("Any")
        if rank == 0:
            return f"{inner} | None"
        if rank == 1:
            return f"{names('list')}[{inner}] | None"
        return f"{names('list')}[{names('Any')}] | None"
    return names("Any")
