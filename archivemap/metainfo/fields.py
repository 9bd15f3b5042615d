"""Field metadata: what a section class knows about each of its NOMAD properties.

Generated modules and run-time classes both declare their fields with :func:`quantity` and
:func:`sub_section`, so that one loader serves both and a generated class carries everything
the converter needs (unit, shape, dtype, NOMAD name, definition id) without the metainfo.
"""

from __future__ import annotations

import warnings
from typing import Any, Final

import attrs

from archivemap.errors import DefinitionError, SchemaMismatchWarning
from archivemap.metainfo.model import QuantityDef, SubSectionDef

__all__ = [
    "FieldMeta",
    "ITEMS",
    "META_KEY",
    "NUMPY_TYPES",
    "SECTION",
    "VALUE",
    "field_for",
    "field_meta",
    "property_meta",
    "fields_by_name",
    "quantity",
    "section_fields",
    "sub_section",
    "walk_steps",
]

#: The key under which attrs field metadata holds the :class:`FieldMeta`.
META_KEY = "nomad"

#: NOMAD's numpy ``type_data`` names → the numpy type's attribute name (``float`` is
#: ``numpy.float64``). Names, not types: the converter imports numpy only for the first numpy
#: value (and the code generator, which may import only the definition model, can share it).
NUMPY_TYPES: dict[str, str] = {
    "float64": "float64",
    "float32": "float32",
    "float": "float64",
    "int32": "int32",
    "int64": "int64",
    "int16": "int16",
    "int8": "int8",
    "uint8": "uint8",
    "int": "int64",
    "complex128": "complex128",
    "complex64": "complex64",
    "bool": "bool_",
    "bool_": "bool_",
    "str_": "str_",
    "str": "str_",
    "uint16": "uint16",
    "uint32": "uint32",
    "uint64": "uint64",
    "float16": "float16",
}


@attrs.frozen(slots=True, hash=False)
class FieldMeta:
    """Everything about one property that loading, dumping and resolving need.

    Attributes:
        name: the NOMAD name (used in JSON); the attribute name may differ (see naming).
        attribute: the Python attribute name.
        kind: ``"quantity"`` or ``"sub_section"``.
        type_kind: for quantities, the NOMAD type kind (``python``, ``numpy``, ``enum``,
            ``reference``, ``quantity_reference``, ``custom``, ``User``, ``Author``).
        dtype: the ``type_data`` string for python/numpy/custom kinds; enum values as a tuple;
            for references, the qualified name of the target section.
        shape: the exported shape; ``()`` is a scalar.
        unit: the pint unit of stored magnitudes, or ``None``.
        default: the definition's default (returned for unset quantities), or ``None``.
        section: for sub-sections, the qualified name of the declared section type.
        repeats: for sub-sections, whether it holds a list.
        definition_id: the 2.0 definition id, when the export had one.
        virtual: derived quantities are never read from data.
        key_quantity: for repeating sub-sections, the quantity that names items in reference
            paths (``more.label_quantity`` or ``key_quantity``).
        flexible_unit: NOMAD's ``flexible_unit`` flag (the unit may differ per section).
        is_reference: whether values are references (``type_kind`` reference or
            quantity_reference); derived, not an argument.
    """

    name: str
    attribute: str
    kind: str
    type_kind: str | None = None
    dtype: Any = None
    shape: tuple[Any, ...] = ()
    unit: str | None = None
    default: Any = None
    section: str | None = None
    repeats: bool = False
    definition_id: str | None = None
    virtual: bool = False
    key_quantity: str | None = None
    flexible_unit: bool = False
    is_reference: bool = attrs.field(init=False, repr=False, eq=False)

    @is_reference.default
    def _reference_kinds(self) -> bool:
        # stored, not a property: walks over every set field of every section ask it
        return self.type_kind in ("reference", "quantity_reference")


def quantity(name: str, attribute: str | None = None, **meta: Any) -> Any:
    """Declare a quantity field (an attrs field defaulting to ``None``).

    Returns ``Any`` so that ``energy: pint.Quantity | None = quantity(...)`` type-checks.
    """
    if "shape" in meta:
        meta["shape"] = tuple(meta["shape"])
    if isinstance(meta.get("dtype"), list):
        meta["dtype"] = tuple(meta["dtype"])
    return field_for(FieldMeta(name=name, attribute=attribute or name, kind="quantity", **meta))


def sub_section(name: str, attribute: str | None = None, **meta: Any) -> Any:
    """Declare a sub-section field: ``None`` when single, an empty list when repeating."""
    return field_for(FieldMeta(name=name, attribute=attribute or name, kind="sub_section", **meta))


def field_for(fm: FieldMeta) -> Any:
    """The attrs field that declares ``fm``: what generated modules write with
    :func:`quantity` and :func:`sub_section`, and what run-time classes are built from (a
    1,500-field class such as NOMAD 2.0's ``Run`` is built without re-making its metas)."""
    # alias: the __init__ argument is the attribute name itself; attrs would otherwise strip
    # a leading underscore ("_1abc" → "1abc", not an identifier; "_x" would clash with "x")
    if fm.kind == "sub_section" and fm.repeats:
        return attrs.field(factory=list, metadata={META_KEY: fm}, alias=fm.attribute)
    return attrs.field(default=None, metadata={META_KEY: fm}, alias=fm.attribute)


def property_meta(prop: QuantityDef | SubSectionDef, attribute: str) -> FieldMeta:
    """:func:`field_meta`, or an untyped quantity for a property whose definition is broken.

    A sub-section whose section cannot be found (a dangling ``sub_section`` reference) must not
    make the whole section unusable: its data is still read, kept and written back, as an
    untyped value. The generator and the runtime both do this, and both say so with a
    :class:`~archivemap.errors.SchemaMismatchWarning` naming the definition.
    """
    try:
        return field_meta(prop, attribute)
    except DefinitionError as exc:
        where = "" if exc.definition_path else f"{prop.path}: "
        warnings.warn(
            f"{where}{exc}; its values are read untyped",
            SchemaMismatchWarning,
            stacklevel=2,
        )
        return FieldMeta(name=prop.name, attribute=attribute, kind="quantity", type_kind="custom")


def field_meta(prop: QuantityDef | SubSectionDef, attribute: str) -> FieldMeta:
    """The :class:`FieldMeta` of a definition, shared by the generator and the runtime."""
    if isinstance(prop, SubSectionDef):
        return FieldMeta(
            name=prop.name,
            attribute=attribute,
            kind="sub_section",
            section=prop.sub_section.qualified_name,
            repeats=prop.repeats,
            definition_id=prop.definition_id,
            key_quantity=prop.key_quantity or prop.sub_section.key_quantity,
        )
    t = prop.type
    dtype: Any
    if t.kind == "enum":
        dtype = tuple(str(v) for v in t.data) if isinstance(t.data, list) else ()
    elif t.kind == "reference":
        target = t.target_section
        dtype = target.qualified_name if target is not None else None
    elif t.kind == "quantity_reference":
        dtype = None
        try:
            target_q = t.target
            dtype = target_q.qualified_name
        except Exception:  # an unresolvable target only matters when the value is read
            dtype = None
    else:
        dtype = str(t.data) if t.data is not None else None
    default = _freeze(prop.default)
    return FieldMeta(
        name=prop.name,
        attribute=attribute,
        kind="quantity",
        type_kind=t.kind,
        dtype=dtype,
        shape=tuple(prop.shape),
        unit=prop.unit,
        default=default,
        definition_id=prop.definition_id,
        virtual=prop.virtual,
        flexible_unit=prop.flexible_unit,
    )


def _freeze(value: Any) -> Any:
    """Lists become tuples, so that a list default is never shared and mutated."""
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def section_fields(cls: type) -> dict[str, FieldMeta]:
    """The :class:`FieldMeta` of every field of a section class, by attribute name.

    Cached on the class itself (a plain class attribute, set once): this is the hot path of
    every attribute read, and a dict lookup on the class beats walking ``attrs.fields``.
    """
    owned = getattr(cls, "_m_fields_owned", None)  # (owner, table): no mapping proxy per read
    if owned is not None and owned[0] is cls:
        return owned[1]  # type: ignore[no-any-return]
    cached = cls.__dict__.get("_m_fields_by_attr")
    if cached is None:
        cached = {}
        if attrs.has(cls):
            for f in attrs.fields(cls):
                fm = f.metadata.get(META_KEY)
                if fm is not None:
                    cached[f.name] = fm
        # by name first: a thread that sees the table by attribute skips this build and may
        # read the one by name at once (fields_by_name), which must then be there already
        type.__setattr__(cls, "_m_fields_by_name", {fm.name: fm for fm in cached.values()})
        type.__setattr__(cls, "_m_fields_by_attr", cached)
    type.__setattr__(cls, "_m_fields_owned", (cls, cached))
    return cached  # type: ignore[no-any-return]


def fields_by_name(cls: type) -> dict[str, FieldMeta]:
    """The :class:`FieldMeta` of every field of a section class, by NOMAD name."""
    owned = getattr(cls, "_m_names_owned", None)  # (owner, table), as in section_fields
    if owned is not None and owned[0] is cls:
        return owned[1]  # type: ignore[no-any-return]
    section_fields(cls)
    by_name = cls.__dict__["_m_fields_by_name"]
    type.__setattr__(cls, "_m_names_owned", (cls, by_name))
    return by_name  # type: ignore[no-any-return]


#: How a walk goes on after a property (the second element of a :func:`walk_steps` entry):
#: a quantity's value ends it, a single sub-section is the next node, and after a repeating
#: sub-section the next segment selects an item.
VALUE: Final = 0
SECTION: Final = 1
ITEMS: Final = 2


def walk_steps(cls: type) -> dict[str, tuple[str, int]]:
    """``segment -> (attribute, VALUE | SECTION | ITEMS)`` for every property of a class.

    A segment is the NOMAD name or, where no NOMAD name is spelled that way, the attribute
    name: the lookup order of every walk, folded into one dict. This is what a path walk
    needs per step, and nothing more.

    Cached on the class as ``(cls, table)`` so that the walker reads it with a plain
    attribute lookup (``cls.__dict__`` builds a mapping proxy on every read, a measurable
    part of a reference walk); the owner tells a subclass's inherited table from its own.
    """
    cached = getattr(cls, "_m_walk_steps", None)
    if cached is not None and cached[0] is cls:
        return cached[1]  # type: ignore[no-any-return]
    table: dict[str, tuple[str, int]] = {}
    for by in (section_fields(cls), fields_by_name(cls)):  # NOMAD names win: written last
        for segment, fm in by.items():
            step = VALUE if fm.kind != "sub_section" else ITEMS if fm.repeats else SECTION
            table[segment] = (fm.attribute, step)
    type.__setattr__(cls, "_m_walk_steps", (cls, table))
    return table
