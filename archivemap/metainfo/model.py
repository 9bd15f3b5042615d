"""The definition model: packages → sections, quantities and sub-sections, as NOMAD exports them.

NOMAD describes its data with *metainfo* definitions, exported as JSON (spec §1). The code
generator and the runtime both read them through this model, so that a class generated ahead
of time and a class built on first use agree field by field. It is the one part of the library
the code generator shares (an import-linter contract keeps it so).

The model is deliberately plain: it keeps what the export says (names, units, shapes, defaults,
descriptions, aliases, definition ids) and adds the three things every consumer needs and the
export leaves implicit: resolved references between definitions, inheritance over
``base_sections`` (several bases allowed), and ``extends_base_section`` extensions merged into
the section they extend.

A package belongs to an environment (:class:`~archivemap.metainfo.environment.Environment`),
which builds the packages, and which the model asks to resolve references and to index the
sections it builds. The model sees it only as a :class:`DefinitionRegistry`, so that this
module does not import the environment's.

Most of a deployment is never looked at, so the ~17,000 quantity and sub-section objects of
NOMAD 2.0 (85 % of its definition objects) are built per section on first use, and a package
of a packed export decodes its blob and builds its sections on first use. Garbage collection
is paused while a package's sections are built: thousands of new objects, none of them
garbage, would otherwise trigger repeated collector scans. Walks over nested definitions
stay iterative (hostile metainfo nests hundreds deep).
"""

from __future__ import annotations

import gc
import marshal
import threading
from collections.abc import Iterator, Mapping
from typing import Any, Protocol, Union

from archivemap.errors import CyclicDefinitionError, DefinitionError, UnknownDefinitionError

__all__ = [
    "Definition",
    "DefinitionRegistry",
    "PackageDef",
    "Property",
    "QuantityDef",
    "SectionDef",
    "SubSectionDef",
    "TypeDef",
    "MAX_BASE_SECTIONS",
    "MAX_ENVIRONMENT_PROPERTIES",
    "MAX_INHERITED_PROPERTIES",
]

#: Guards the publication of lazily built definition lists (see ``SectionDef.quantities``).
_BUILD_LOCK = threading.Lock()
#: Held while a packed package is unpacked and its sections built: built twice, a package
#: would hand out two objects for one definition. Reentrant: ``PackageDef.sections`` takes it
#: around ``PackageDef.full_raw``, which takes it too.
_PACKAGE_LOCK = threading.RLock()

#: The most ancestors a section may have. NOMAD 2.0's deepest has 8; a chain of thousands
#: (hostile metainfo) would build a class per ancestor, each with every inherited property.
MAX_BASE_SECTIONS = 64
#: The most properties a section and its ancestors may hold together, counting each
#: ancestor's own effective properties: what building its class (and its bases' classes)
#: costs, in fields. NOMAD 2.0's largest is 3,060 (quantum_espresso_xspectra's Run); a chain
#: of 1,000 sections of one quantity each holds 500,500, about 30 s and 600 MB of classes.
MAX_INHERITED_PROPERTIES = 60_000
#: The most effective properties (each section's own, inherited and extended, summed over the
#: sections whose properties were worked out) one environment may hold: what its classes cost
#: to build, generated or at run time. NOMAD 2.0's 2,582 sections hold 173,703; without this,
#: a thousand 70-byte sections naming one base of 29,000 quantities would cost a quarter of
#: an hour, each within the per-section limit.
MAX_ENVIRONMENT_PROPERTIES = 600_000


class DefinitionRegistry(Protocol):
    """What the definitions need of the environment their package belongs to.

    :class:`~archivemap.metainfo.environment.Environment` is the one implementation; this
    protocol keeps the model from importing it (the environment builds packages, so it imports
    the model). Readers of ``package.environment`` see it through this protocol too.
    """

    @property
    def is_packed(self) -> bool:
        """Whether the export's own extensions are read from a packed index on first use."""
        ...

    @property
    def raw(self) -> Mapping[str, Any]:
        """The export as given."""
        ...

    def resolve(self, ref: Any, context: PackageDef | None = None, origin: str | None = None) -> Definition:
        """The definition a reference names, in any of the forms of spec §1.8."""
        ...

    def by_qualified_name(self, name: str) -> SectionDef | None:
        """A section by qualified name, or ``None``."""
        ...

    def packed_extensions(self, path: str) -> list[SectionDef]:
        """The extensions of the export's section at ``path``, from the packed index."""
        ...

    def register_section(self, section: SectionDef, exported: bool = False) -> None:
        """Index a section its package has just built (by path, name and id)."""
        ...

    def charge_properties(self, section: SectionDef, count: int) -> None:
        """Count a section's effective properties against :data:`MAX_ENVIRONMENT_PROPERTIES`.

        Raises:
            DefinitionError: the environment's sections would hold more than that.
        """
        ...


class TypeDef:
    """A quantity's type: ``type_kind`` plus ``type_data`` and flags, as exported.

    Attributes:
        kind: ``python``, ``numpy``, ``enum``, ``reference``, ``quantity_reference``,
            ``custom``, ``User`` or ``Author``.
        data: the ``type_data``: a type name, the enum values, or a definition reference.
        flags: every other key next to ``type_kind`` (``disable_shape_check`` ...).
        descriptions: enum value descriptions (``type_descriptions``), if any.
    """

    __slots__ = ("kind", "data", "flags", "descriptions", "_owner", "_target")

    def __init__(self, raw: Mapping[str, Any] | None, owner: QuantityDef) -> None:
        raw = raw or {}
        self.kind: str = str(raw.get("type_kind", "python"))
        self.data: Any = raw.get("type_data", "str")
        self.descriptions: dict[str, str] = dict(raw.get("type_descriptions") or {})
        self.flags: dict[str, Any] = {
            k: v for k, v in raw.items() if k not in ("type_kind", "type_data", "type_descriptions")
        }
        self._owner = owner
        self._target: Definition | None = None

    @property
    def target(self) -> Definition:
        """The section (``reference``) or quantity (``quantity_reference``) referred to."""
        if self.kind not in ("reference", "quantity_reference"):
            raise DefinitionError(f"a {self.kind} type has no target", self._owner.path)
        if self._target is None:
            self._target = self._owner.package.environment.resolve(
                str(self.data), context=self._owner.package, origin=self._owner.path
            )
        return self._target

    @property
    def target_section(self) -> SectionDef | None:
        """The referenced section, or ``None`` when the target is not a section we know."""
        if self.kind != "reference":
            return None
        try:
            target = self.target
        except DefinitionError:
            return None
        return target if isinstance(target, SectionDef) else None

    def to_dict(self) -> dict[str, Any]:
        """The type as the export writes it."""
        out: dict[str, Any] = {"type_kind": self.kind, "type_data": self.data}
        if self.descriptions:
            out["type_descriptions"] = self.descriptions
        out.update(self.flags)
        return out


class _Base:
    """What every definition has: a name, where it sits, and its documentation."""

    __slots__ = ("raw", "name", "path", "description", "aliases", "definition_id", "more", "label")

    def __init__(self, raw: Mapping[str, Any], path: str) -> None:
        if not isinstance(raw, Mapping):
            raise DefinitionError(f"expected a definition object, got {type(raw).__name__}", path)
        name = raw.get("name")
        if not isinstance(name, str):
            raise DefinitionError("definition has no name (or a name that is not a string)", path)
        self.raw = raw
        self.name: str = name
        self.path = path
        desc = raw.get("description")
        self.description: str | None = desc if isinstance(desc, str) else None
        self.aliases: list[str] = [a for a in raw.get("aliases") or [] if isinstance(a, str)]
        did = raw.get("definition_id")
        self.definition_id: str | None = did if isinstance(did, str) else None
        more = raw.get("more")
        self.more: dict[str, Any] = dict(more) if isinstance(more, Mapping) else {}
        label = raw.get("label")
        self.label: str | None = label if isinstance(label, str) else None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.qualified_name}>"

    @property
    def qualified_name(self) -> str:
        raise NotImplementedError


class _Property(_Base):
    """What a quantity and a sub-section share: the section that defines them."""

    __slots__ = ("section",)

    section: SectionDef

    @property
    def package(self) -> PackageDef:
        """The package the defining section belongs to."""
        return self.section.package

    @property
    def qualified_name(self) -> str:
        return f"{self.section.qualified_name}.{self.name}"


class QuantityDef(_Property):
    """A quantity (leaf value) definition.

    Attributes:
        section: the section that defines it (not the one that inherits it).
        type: its :class:`TypeDef`.
        shape: the shape as exported (ints, ``'*'``, ranges, names, expressions); ``()``
            for scalars.
        unit: the pint unit string of stored values, or ``None``.
        default: the default value, or ``None``.
        virtual: derived quantities never appear in archive data.
        search_annotations: the search keys NOMAD indexes this quantity under (its
            ``m_annotations`` → ``elasticsearch`` strings, e.g.
            ``results.material.elements`` and ``results.material.elements__suggestion``);
            empty when it is not searchable. :mod:`archivemap.metainfo.search` builds the
            deployment's search quantities from them, so queries can be checked offline.
    """

    __slots__ = (
        "type", "shape", "unit", "default", "virtual", "flexible_unit", "search_annotations",
    )

    def __init__(self, raw: Mapping[str, Any], path: str, section: SectionDef) -> None:
        super().__init__(raw, path)
        self.section = section
        self.type = TypeDef(raw.get("type"), self)
        shape = raw.get("shape") or []
        if isinstance(shape, (str, int)):
            shape = [shape]
        if not isinstance(shape, list):
            raise DefinitionError(f"shape must be a list, got {shape!r}", path)
        self.shape: tuple[int | str, ...] = tuple(shape)
        unit = raw.get("unit")
        self.unit: str | None = unit if isinstance(unit, str) and unit else None
        self.default: Any = raw.get("default")
        self.virtual = bool(raw.get("virtual", False))
        self.flexible_unit = bool(raw.get("flexible_unit", False))
        self.search_annotations: tuple[str, ...] = _search_annotations(raw)

    @property
    def is_scalar(self) -> bool:
        """Rank 0: no shape, or an empty one."""
        return len(self.shape) == 0


class SubSectionDef(_Property):
    """A sub-section definition: a named slot for child sections of one section type."""

    __slots__ = ("repeats", "_target_ref", "_target")

    def __init__(self, raw: Mapping[str, Any], path: str, section: SectionDef) -> None:
        super().__init__(raw, path)
        self.section = section
        self.repeats = bool(raw.get("repeats", False))
        ref = raw.get("sub_section")
        if not isinstance(ref, (str, Mapping)):
            raise DefinitionError("sub-section has no 'sub_section' reference", path)
        self._target_ref = ref
        self._target: SectionDef | None = None

    @property
    def sub_section(self) -> SectionDef:
        """The (declared) section type of the children."""
        if self._target is None:
            ref = self._target_ref
            if isinstance(ref, Mapping):  # an inline section definition
                self._target = SectionDef(ref, f"{self.path}/sub_section", self.package, None)
                self.package._register(self._target)
            else:
                target = self.package.environment.resolve(ref, context=self.package, origin=self.path)
                if not isinstance(target, SectionDef):
                    raise DefinitionError(f"sub_section {ref!r} is not a section", self.path)
                self._target = target
        return self._target

    @property
    def key_quantity(self) -> str | None:
        """The quantity whose value names items in reference paths (spec §3.1)."""
        key = self.raw.get("key_quantity") or self.more.get("label_quantity")
        return key if isinstance(key, str) else None


Property = Union[QuantityDef, SubSectionDef]


class SectionDef(_Base):
    """A section definition with its own and its effective (inherited, extended) properties."""

    __slots__ = (
        "package",
        "outer",
        "_quantities",
        "_sub_sections",
        "inner_sections",
        "extends_base_section",
        "_base_refs",
        "_bases",
        "_mro",
        "_all",
        "_extensions",
        "_qualified",
    )

    def __init__(
        self, raw: Mapping[str, Any], path: str, package: PackageDef, outer: SectionDef | None
    ) -> None:
        super().__init__(raw, path)
        self.package = package
        self.outer = outer
        # Quantities and sub-sections are 85 % of a deployment's definition objects, and most
        # are never looked at: they are built on first use (see ``quantities``).
        self._quantities: list[QuantityDef] | None = None
        self._sub_sections: list[SubSectionDef] | None = None
        self.inner_sections: list[SectionDef] = []
        self._qualified: str | None = None
        if outer is None:  # the top of a tree of inner sections builds the tree, iteratively
            _build_inner_sections(self)
        self.extends_base_section = bool(raw.get("extends_base_section", False))
        bases = raw.get("base_sections") or []
        if isinstance(bases, (str, Mapping)):
            bases = [bases]
        self._base_refs: list[Any] = list(bases)
        self._bases: list[SectionDef] | None = None
        self._mro: list[SectionDef] | None = None
        self._all: dict[str, Property] | None = None
        # an environment built from a packed export knows the extensions from its index, and
        # reads them on first use (they live in other packages, which are built then)
        self._extensions: list[SectionDef] | None = None if package.environment.is_packed else []

    @property
    def quantities(self) -> list[QuantityDef]:
        """The section's own quantities, in exported order (built on first use)."""
        if self._quantities is None:
            where = f"{self.path}/quantities"
            built = [QuantityDef(q, f"{where}/{i}", self) for i, q in enumerate(_as_list(self.raw.get("quantities"), where))]
            with _BUILD_LOCK:  # two threads may build at once: both must get the same objects
                if self._quantities is None:
                    self._quantities = built
        return self._quantities

    @property
    def sub_sections(self) -> list[SubSectionDef]:
        """The section's own sub-sections, in exported order (built on first use)."""
        if self._sub_sections is None:
            where = f"{self.path}/sub_sections"
            built = [
                SubSectionDef(s, f"{where}/{i}", self) for i, s in enumerate(_as_list(self.raw.get("sub_sections"), where))
            ]
            with _BUILD_LOCK:
                if self._sub_sections is None:
                    self._sub_sections = built
        return self._sub_sections

    @property
    def extensions(self) -> list[SectionDef]:
        """The sections that extend this one (``extends_base_section``), in export order."""
        found = self._extensions
        if found is None:
            linked = self.package.environment.packed_extensions(self.path)
            with _BUILD_LOCK:
                if self._extensions is None:
                    self._extensions = linked
                found = self._extensions
        return found

    @property
    def qualified_name(self) -> str:
        if self._qualified is None:
            names = [self.name]
            outer = self.outer
            while outer is not None:  # iterative: hostile metainfo nests hundreds deep
                names.append(outer.name)
                outer = outer.outer
            names.append(self.package.name)
            self._qualified = ".".join(reversed(names))
        return self._qualified

    @property
    def base_sections(self) -> list[SectionDef]:
        """The direct bases, resolved, in the exported order."""
        if self._bases is None:
            env = self.package.environment
            bases: list[SectionDef] = []
            for i, ref in enumerate(self._base_refs):
                if isinstance(ref, Mapping):
                    target: Definition = SectionDef(ref, f"{self.path}/base_sections/{i}", self.package, None)
                else:
                    target = env.resolve(ref, context=self.package, origin=self.path)
                if not isinstance(target, SectionDef):
                    raise DefinitionError(f"base section {ref!r} is not a section", self.path)
                bases.append(target)
            self._bases = bases
        return self._bases

    @property
    def all_base_sections(self) -> list[SectionDef]:
        """Every ancestor, nearest first, each once (depth-first over the bases).

        Iterative, so a chain of thousands of bases cannot exhaust the stack.

        Raises:
            CyclicDefinitionError: the bases lead back to this section, or to another
                section on the way.
            DefinitionError: more than :data:`MAX_BASE_SECTIONS` ancestors.
        """
        if self._mro is None:
            _check_base_cycles(self)
            order: list[SectionDef] = []
            seen: set[int] = set()
            stack = list(reversed(self.base_sections))
            while stack:
                base = stack.pop()
                if id(base) in seen:
                    continue
                seen.add(id(base))
                order.append(base)
                stack.extend(reversed(base.base_sections))
                if len(order) > MAX_BASE_SECTIONS:
                    raise DefinitionError(
                        f"section {self.qualified_name} has more than {MAX_BASE_SECTIONS} base "
                        "sections in its ancestry (NOMAD's deepest has 8); refused as hostile",
                        self.path,
                    )
            self._mro = order
        return self._mro

    @property
    def all_properties(self) -> dict[str, Property]:
        """Effective properties by name: bases first, then own, then extensions.

        Own definitions override inherited ones of the same name (spec §1.9).

        Raises:
            DefinitionError: more than :data:`MAX_INHERITED_PROPERTIES` with the bases'.
        """
        if self._all is None:
            props: dict[str, Property] = {}
            for base in reversed(self.all_base_sections):
                for prop in base._own_and_extended():
                    props[prop.name] = prop
            for prop in self._own_and_extended():
                props[prop.name] = prop
            held = len(props) + sum(len(base.all_properties) for base in self.all_base_sections)
            if held > MAX_INHERITED_PROPERTIES:
                raise DefinitionError(
                    f"section {self.qualified_name} and its base sections hold {held} properties "
                    f"together, more than {MAX_INHERITED_PROPERTIES} (NOMAD's largest holds 3,060); "
                    "refused as hostile",
                    self.path,
                )
            self.package.environment.charge_properties(self, len(props))
            self._all = props
        return self._all

    def _own_and_extended(self) -> Iterator[Property]:
        yield from self.quantities
        yield from self.sub_sections
        for ext in self.extensions:
            yield from ext.quantities
            yield from ext.sub_sections

    @property
    def all_quantities(self) -> dict[str, QuantityDef]:
        return {k: v for k, v in self.all_properties.items() if isinstance(v, QuantityDef)}

    @property
    def all_sub_sections(self) -> dict[str, SubSectionDef]:
        return {k: v for k, v in self.all_properties.items() if isinstance(v, SubSectionDef)}

    def is_a(self, other: SectionDef) -> bool:
        """Whether this section is ``other`` or inherits from it."""
        return other is self or other in self.all_base_sections

    @property
    def key_quantity(self) -> str | None:
        key = self.more.get("label_quantity")
        return key if isinstance(key, str) else None


class PackageDef(_Base):
    """A package: the unit the generator turns into one Python module.

    A package of a packed export (:meth:`Environment.pack`) starts as its head (name, aliases,
    categories: everything but the sections) and a ``marshal`` blob of the whole package;
    the blob is decoded and the sections built the first time anything asks for them, once,
    under a lock. Most of a deployment's packages are code-specific and never asked.
    """

    __slots__ = ("environment", "index", "categories", "_sections", "_names", "_packed")

    def __init__(
        self, raw: Mapping[str, Any], path: str, environment: DefinitionRegistry, index: int, packed: bytes | None = None
    ) -> None:
        super().__init__(raw, path)
        self.environment = environment
        self.index = index
        self._names: dict[str, SectionDef] = {}
        self._packed = packed
        self._sections: list[SectionDef] | None = None
        if packed is None:
            self._sections = self._build_sections()
        self.categories: list[dict[str, Any]] = list(raw.get("category_definitions") or [])

    @property
    def qualified_name(self) -> str:
        return self.name

    @property
    def sections(self) -> list[SectionDef]:
        """The top-level sections, in definition order (a packed package is built here)."""
        found = self._sections
        if found is None:
            with _PACKAGE_LOCK:
                if self._sections is None:
                    self.full_raw()
                    # thousands of new objects for a large package, none of them garbage
                    paused = gc.isenabled()
                    gc.disable()
                    try:
                        self._sections = self._build_sections()
                    finally:
                        if paused:
                            gc.enable()
                found = self._sections
        return found

    @property
    def is_built(self) -> bool:
        """Whether the section objects exist (always, unless the package came packed)."""
        return self._sections is not None

    def full_raw(self) -> Mapping[str, Any]:
        """The package as exported, sections included (decoded from its blob when packed)."""
        if self._packed is not None:
            with _PACKAGE_LOCK:
                if self._packed is not None:
                    raw = marshal.loads(self._packed)
                    if not isinstance(raw, dict):  # the cache is checked, so only a bug gets here
                        raise DefinitionError("a packed package is not an object", self.path)
                    self.raw = raw
                    self._packed = None
        return self.raw

    def _build_sections(self) -> list[SectionDef]:
        where = f"{self.path}/section_definitions"
        sections = [SectionDef(s, f"{where}/{i}", self, None) for i, s in enumerate(_as_list(self.raw.get("section_definitions"), where))]
        for section in sections:
            self._register(section, exported=True)
        return sections

    @property
    def _by_name(self) -> dict[str, SectionDef]:
        """Sections (inner ones included) by name, the first of a name winning."""
        _ = self.sections
        return self._names

    def _register(self, section: SectionDef, exported: bool = False) -> None:
        """Index ``section`` and its inner sections; ``exported``: they are the export's own,
        not inline definitions met later (which a packed index cannot know)."""
        for each in _tree(section):
            self._names.setdefault(each.name, each)
            self.environment.register_section(each, exported)

    def section(self, name: str) -> SectionDef:
        """The section of that (inner sections included) name in this package."""
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownDefinitionError(f"no section {name!r} in package {self.name}", self.path) from None

    def find_section(self, name: str) -> SectionDef | None:
        """The section of that (inner sections included) name in this package, or ``None``."""
        return self._by_name.get(name)

    def all_sections(self) -> Iterator[SectionDef]:
        """Top-level and inner sections, in definition order."""
        for s in self.sections:
            yield from _tree(s)


Definition = Union[PackageDef, SectionDef, QuantityDef, SubSectionDef]


def _build_inner_sections(top: SectionDef) -> None:
    """Create the inner section definitions below ``top``, level by level (no recursion)."""
    stack = [top]
    while stack:
        section = stack.pop()
        where = f"{section.path}/inner_section_definitions"
        section.inner_sections = [
            SectionDef(raw, f"{where}/{i}", section.package, section)
            for i, raw in enumerate(_as_list(section.raw.get("inner_section_definitions"), where))
        ]
        stack.extend(section.inner_sections)


def _tree(top: SectionDef) -> Iterator[SectionDef]:
    """``top`` and every inner section below it, depth first in definition order."""
    stack = [top]
    while stack:
        section = stack.pop()
        yield section
        stack.extend(reversed(section.inner_sections))


def _check_base_cycles(start: SectionDef) -> None:
    """Raise when the bases reachable from ``start`` contain a cycle (iterative DFS)."""
    on_path: set[int] = set()
    done: set[int] = set()
    stack: list[tuple[SectionDef, bool]] = [(start, False)]
    while stack:
        section, leaving = stack.pop()
        if leaving:
            on_path.discard(id(section))
            done.add(id(section))
            continue
        if id(section) in done:
            continue
        on_path.add(id(section))
        stack.append((section, True))
        for base in section.base_sections:
            if id(base) in on_path:
                what = "inherits from itself" if base is start else "has bases that form a cycle"
                raise CyclicDefinitionError(f"section {start.qualified_name} {what}", start.path)
            if id(base) not in done:
                stack.append((base, False))




def _search_annotations(raw: Mapping[str, Any]) -> tuple[str, ...]:
    """The ``elasticsearch`` annotation strings of a definition (anything else is ignored)."""
    annotations = raw.get("m_annotations")
    found = annotations.get("elasticsearch") if isinstance(annotations, Mapping) else None
    if isinstance(found, str):
        found = [found]
    return tuple(a for a in found if isinstance(a, str) and a) if isinstance(found, list) else ()


def _as_list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise DefinitionError(f"expected a list, got {type(value).__name__}", path)
    return value
