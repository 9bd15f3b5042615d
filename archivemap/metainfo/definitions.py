"""The definition model: environment → packages → sections, quantities and sub-sections.

NOMAD describes its data with *metainfo* definitions, exported as JSON (spec §1). The code
generator and the runtime both read them through this model, so that a class generated ahead
of time and a class built on first use agree field by field.

The model is deliberately plain: it keeps what the export says (names, units, shapes, defaults,
descriptions, aliases, definition ids) and adds the three things every consumer needs and the
export leaves implicit: resolved references between definitions, inheritance over
``base_sections`` (several bases allowed), and ``extends_base_section`` extensions merged into
the section they extend.

Construction is cheap because most of a deployment is never looked at: an Environment builds
its packages and section objects (2,582 for NOMAD 2.0, needed for names, paths and
extensions), while the ~17,000 quantity and sub-section objects are built per section on
first use, and the ids of properties are indexed from the raw dicts on the first id lookup.
Built from a *packed* export instead (:meth:`Environment.pack`, what the disk cache keeps),
it holds each package as a ``marshal`` blob next to an index of names, ids and extensions,
and decodes and builds a package only when a lookup reaches into it: "schema ready" builds
none of NOMAD 2.0's 99 packages, loading a VASP archive 9, and reading its energy about 60
(the class of ``Run`` gathers every code's extension of it).
Garbage collection is paused while sections are built: thousands of new objects, none of
them garbage, would otherwise trigger repeated collector scans. Walks over nested
definitions stay iterative (hostile metainfo nests hundreds deep).
"""

from __future__ import annotations

import gc
import marshal
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Union

from archivemap.errors import CyclicDefinitionError, DefinitionError, UnknownDefinitionError

__all__ = [
    "Definition",
    "Environment",
    "PackageDef",
    "QuantityDef",
    "SectionDef",
    "SubSectionDef",
    "TypeDef",
    "MAX_BASE_SECTIONS",
    "MAX_INHERITED_PROPERTIES",
    "PACKED_FORMAT",
    "is_packed_export",
    "unpack_export",
]

_DEF_ID_SUFFIX = re.compile(r"@([0-9a-fA-F]{40})$")
_BARE_ID = re.compile(r"^[0-9a-fA-F]{40}$")
_QUALIFIED = re.compile(r"^(entry_id:[A-Za-z0-9_\-]+\.)?[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")

# Exports write references as absolute paths, single packages as package-relative paths and
# custom schemas as fragments into the archive; these keys name the lists along such a path.
_LIST_KEYS = (
    "packages",
    "section_definitions",
    "inner_section_definitions",
    "quantities",
    "sub_sections",
    "category_definitions",
    "attributes",
)

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

#: The layout of :meth:`Environment.pack`'s form; a packed export of another layout is refused.
PACKED_FORMAT = "archivemap-packed-export/1"

#: Resolves a definition reference that points into another archive or file
#: (``../upload/raw/x.archive.json#/definitions/section_definitions/0``) to a definition.
ExternalResolver = Callable[[str], "Definition"]


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


class QuantityDef(_Base):
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
        "section", "type", "shape", "unit", "default", "virtual", "flexible_unit", "search_annotations",
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
    def package(self) -> PackageDef:
        """The package the defining section belongs to."""
        return self.section.package

    @property
    def qualified_name(self) -> str:
        return f"{self.section.qualified_name}.{self.name}"

    @property
    def is_scalar(self) -> bool:
        """Rank 0: no shape, or an empty one."""
        return len(self.shape) == 0


class SubSectionDef(_Base):
    """A sub-section definition: a named slot for child sections of one section type."""

    __slots__ = ("section", "repeats", "_target_ref", "_target")

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
    def package(self) -> PackageDef:
        return self.section.package

    @property
    def qualified_name(self) -> str:
        return f"{self.section.qualified_name}.{self.name}"

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
            linked = self.package.environment._packed_extensions(self.path)
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
        self, raw: Mapping[str, Any], path: str, environment: Environment, index: int, packed: bytes | None = None
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
            self.environment._index(each, exported)

    def section(self, name: str) -> SectionDef:
        """The section of that (inner sections included) name in this package."""
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownDefinitionError(f"no section {name!r} in package {self.name}", self.path) from None

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


class Environment:
    """All packages of one NOMAD deployment (or one custom schema on top of another).

    Args:
        data: the exported Environment dict (``{"packages": [...]}``).
        parent: an environment to fall back on for qualified names and ids, used for custom
            schemas carried in an archive's ``definitions`` that build on built-in sections.
        root_prefix: the prefix of absolute definition paths in ``data``: ``""`` for an
            environment export, ``"#/definitions"`` for an archive's custom package.
        source: a label for error messages (file name or URL).
        external: resolves references into other archives; without it they raise.

    An environment built by :meth:`from_packed` answers every lookup exactly as the one it
    was packed from, but builds a package's sections only when a lookup reaches into it.
    """

    def __init__(
        self,
        data: Mapping[str, Any],
        *,
        parent: Environment | None = None,
        source: str | None = None,
        external: ExternalResolver | None = None,
        package_path: str | None = None,
    ) -> None:
        if not isinstance(data, Mapping) or not isinstance(data.get("packages", []), list):
            raise DefinitionError("a metainfo environment needs a 'packages' list", source)
        self._setup(data, parent, source, external, package_path, None)
        # Thousands of small objects, none of them garbage: without the pause, the collector
        # runs dozens of generation scans over them (a third of the construction time).
        paused = gc.isenabled()
        gc.disable()
        try:
            for i, p in enumerate(data.get("packages", [])):
                pkg = PackageDef(p, package_path or f"/packages/{i}", self, i)
                self._add_package(pkg)
                if pkg.definition_id:
                    self._by_id[pkg.definition_id] = pkg
            self._link_extensions()
        finally:
            if paused:
                gc.enable()
        self._exported = len(self._indexed)

    def _setup(
        self,
        raw: Mapping[str, Any] | None,
        parent: Environment | None,
        source: str | None,
        external: ExternalResolver | None,
        package_path: str | None,
        packed: Mapping[str, Any] | None,
    ) -> None:
        self._raw = raw
        self.parent = parent
        self.source = source
        self.external = external
        self._package_path = package_path
        self._by_qualified: dict[str, SectionDef] = {}
        self._by_id: dict[str, Definition] = {}
        self._by_path: dict[str, Definition] = {}
        # Every indexed section, in order; the ids of their quantities and sub-sections are
        # indexed from the raw dicts on the first id lookup (``_property_ids``). Built from a
        # packed export, only sections defined inline later are indexed here: the packed
        # index (``_packed``) answers for the export's own.
        self._indexed: list[SectionDef] = []
        self._exported = 0
        self._prop_ids: dict[str, tuple[SectionDef, bool, int]] | None = None
        self._packed = packed
        self._packed_prop_ids: dict[str, tuple[str, bool, int]] | None = None
        self.packages: list[PackageDef] = []
        self._package_by_name: dict[str, PackageDef] = {}

    def _add_package(self, pkg: PackageDef) -> None:
        self.packages.append(pkg)
        self._package_by_name.setdefault(pkg.name, pkg)
        for alias in pkg.aliases:
            self._package_by_name.setdefault(alias, pkg)

    # -- the packed form --------------------------------------------------------------------
    @property
    def is_packed(self) -> bool:
        """Whether this environment was built from a packed export (its packages on demand)."""
        return self._packed is not None

    @property
    def raw(self) -> Mapping[str, Any]:
        """The export as given (from a packed export: rebuilt, every package decoded, once)."""
        if self._raw is None:
            assert self._packed is not None
            head: Mapping[str, Any] = self._packed["head"]
            packages = [pkg.full_raw() for pkg in self.packages]
            rebuilt = {key: packages if key == "packages" else value for key, value in head.items()}
            with _BUILD_LOCK:
                if self._raw is None:
                    self._raw = rebuilt
        return self._raw

    def pack(self) -> dict[str, Any] | None:
        """This export in packed form: what the disk cache keeps, builtins only.

        Each package becomes a ``marshal`` blob, next to its head (everything but its
        sections) and an index of what lookups need without building a package: qualified
        names, definition ids (of properties too, as a blob of its own) and extensions, each
        pointing at a definition path. :meth:`from_packed` reads it back.

        Call it on an environment fresh from ``Environment(data)``: the index is read off its
        lookups, and must hold the export's own definitions only.

        Returns:
            The packed form, or ``None`` when this environment cannot be packed faithfully: a
            custom schema (parent, external resolver, package path), sections defined inline
            already met, an extension of an inline base section, or a value ``marshal``
            refuses.
        """
        raw = self._raw
        if raw is None or self.parent is not None or self.external is not None or self._package_path is not None:
            return None
        if len(self._indexed) != self._exported:
            return None
        # ~20,000 new tuples and dicts over the ~300,000 containers of the parsed export:
        # with the collector on, they trigger full collections that rescan the export
        paused = gc.isenabled()
        gc.disable()
        try:
            return self._packed_form(raw)
        finally:
            if paused:
                gc.enable()

    def _packed_form(self, raw: Mapping[str, Any]) -> dict[str, Any] | None:
        """:meth:`pack`, with the collector paused; ``None`` where :meth:`pack` says."""
        extensions: dict[str, list[str]] = {}
        for section in self._indexed:
            if section._extensions:
                extensions[section.path] = [ext.path for ext in section._extensions]
            if section.extends_base_section:
                base = section.base_sections[0]
                if self._by_path.get(base.path) is not base:  # an inline base: no path to it
                    return None
        ids: dict[str, str] = {}
        for did, found in self._by_id.items():
            if isinstance(found, PackageDef) and self.packages[found.index] is not found:
                return None
            ids[did] = found.path
        properties: dict[str, tuple[SectionDef, bool, int]] = {}
        for section in self._indexed:
            _index_property_ids(section, properties)
        try:
            blobs = [marshal.dumps(p) for p in raw["packages"]]
            index = {
                "qualified": {name: section.path for name, section in self._by_qualified.items()},
                "ids": ids,
                "extensions": extensions,
                "properties": marshal.dumps({did: (s.path, q, i) for did, (s, q, i) in properties.items()}),
            }
            heads = [{k: v for k, v in p.items() if k != "section_definitions"} for p in raw["packages"]]
            head = {key: None if key == "packages" else value for key, value in raw.items()}
            marshal.dumps((head, heads))  # refused here rather than by the cache
        except (ValueError, TypeError):
            return None
        return {"format": PACKED_FORMAT, "head": head, "package_heads": heads, "packages": blobs, "index": index}

    @classmethod
    def from_packed(cls, packed: Mapping[str, Any], *, source: str | None = None) -> Environment:
        """The environment of a packed export (:meth:`pack`), its packages built on first use.

        Raises:
            DefinitionError: ``packed`` is not a packed export of this layout.
        """
        if not is_packed_export(packed):
            raise DefinitionError(f"not a packed metainfo export ({PACKED_FORMAT})", source)
        env = cls.__new__(cls)
        # the environment keeps the index and the head; each package keeps its own blob, and
        # drops it once decoded (kept here too, every blob would outlive its package's dicts)
        env._setup(None, None, source, None, None, {"head": packed["head"], "index": packed["index"]})
        for i, (head, blob) in enumerate(zip(packed["package_heads"], packed["packages"])):
            env._add_package(PackageDef(head, f"/packages/{i}", env, i, packed=blob))
        return env

    def _packed_find(self, table: str, key: str) -> Definition | None:
        """The export's definition under ``key`` in a table of the packed index, if any."""
        if self._packed is None:
            return None
        path = self._packed["index"][table].get(key)
        return None if path is None else self._resolve_path(path, None)

    def _packed_extensions(self, path: str) -> list[SectionDef]:
        """The extensions of the export's section at ``path``, from the packed index."""
        paths = self._packed["index"]["extensions"].get(path, ()) if self._packed is not None else ()
        return [ext for ext in (self._resolve_path(p, None) for p in paths) if isinstance(ext, SectionDef)]

    def _packed_property(self, definition_id: str) -> Property | None:
        """The export's quantity or sub-section of that id, from the packed index."""
        if self._packed is None:
            return None
        if self._packed_prop_ids is None:
            ids = marshal.loads(self._packed["index"]["properties"])
            with _BUILD_LOCK:
                if self._packed_prop_ids is None:
                    self._packed_prop_ids = ids
        where = self._packed_prop_ids.get(definition_id)
        if where is None:
            return None
        path, is_quantity, index = where
        section = self._resolve_path(path, None)
        if not isinstance(section, SectionDef):
            return None
        return section.quantities[index] if is_quantity else section.sub_sections[index]

    # -- indexing -------------------------------------------------------------------------
    def _index(self, section: SectionDef, exported: bool = False) -> None:
        self._by_path[section.path] = section
        if exported and self._packed is not None:
            return  # names and ids of the export's own sections: the packed index has them
        self._by_qualified.setdefault(section.qualified_name, section)
        if section.definition_id:
            self._by_id[section.definition_id] = section
        self._indexed.append(section)
        if self._prop_ids is not None:  # registered after the first id lookup
            _index_property_ids(section, self._prop_ids)

    def _property_ids(self) -> dict[str, tuple[SectionDef, bool, int]]:
        """Definition id → (section, is a quantity, position) of every quantity and sub-section.

        Read from the raw dicts, so that an id lookup does not build the ~17,000 property
        objects of a deployment; the one found is built by its section on return.
        """
        if self._prop_ids is None:
            ids: dict[str, tuple[SectionDef, bool, int]] = {}
            for section in self._indexed:
                _index_property_ids(section, ids)
            self._prop_ids = ids
        return self._prop_ids

    def _link_extensions(self) -> None:
        for section in self.all_sections():
            if section.extends_base_section:
                bases = section.base_sections
                if len(bases) != 1:
                    raise DefinitionError(
                        f"{section.qualified_name} extends a base section but has "
                        f"{len(bases)} base sections",
                        section.path,
                    )
                if section not in bases[0].extensions:
                    bases[0].extensions.append(section)

    # -- lookups ----------------------------------------------------------------------------
    def all_sections(self) -> Iterator[SectionDef]:
        """Every section definition of every package, in export order."""
        for pkg in self.packages:
            yield from pkg.all_sections()

    def package(self, name: str) -> PackageDef:
        """A package by name or alias."""
        try:
            return self._package_by_name[name]
        except KeyError:
            if self.parent is not None:
                return self.parent.package(name)
            raise UnknownDefinitionError(f"no package named {name!r}", self.source) from None

    def section(self, name: str) -> SectionDef:
        """A section by qualified name (``runschema.run.Run``), alias-aware, or definition id."""
        target = self.resolve(name)
        if not isinstance(target, SectionDef):
            raise UnknownDefinitionError(f"{name!r} is not a section definition", self.source)
        return target

    def by_definition_id(self, definition_id: str) -> Definition | None:
        # sections defined inline later win over the export's own, as they overwrite them in
        # ``_by_id`` of an environment that is not packed
        found = self._by_id.get(definition_id) or self._packed_find("ids", definition_id)
        if found is None:
            where = self._property_ids().get(definition_id)
            if where is not None:
                section, is_quantity, index = where
                found = section.quantities[index] if is_quantity else section.sub_sections[index]
            else:
                found = self._packed_property(definition_id)
        if found is None and self.parent is not None:
            return self.parent.by_definition_id(definition_id)
        return found

    def by_qualified_name(self, name: str) -> SectionDef | None:
        # the export's own sections first: they come first in ``_by_qualified`` too
        packed = self._packed_find("qualified", name)
        found = packed if isinstance(packed, SectionDef) else self._by_qualified.get(name)
        if found is None:
            # package aliases, and inner sections written Package.Outer.Inner
            parts = name.split(".")
            for cut in range(len(parts) - 1, 0, -1):
                pkg = self._package_by_name.get(".".join(parts[:cut]))
                if pkg is None:
                    continue
                section: SectionDef | None = pkg._by_name.get(parts[cut])
                for inner_name in parts[cut + 1 :]:
                    if section is None:
                        break
                    section = next((s for s in section.inner_sections if s.name == inner_name), None)
                if section is not None:
                    return section
        if found is None and self.parent is not None:
            return self.parent.by_qualified_name(name)
        return found

    def resolve(self, ref: Any, context: PackageDef | None = None, origin: str | None = None) -> Definition:
        """Resolve a definition reference in any of the forms of spec §1.8.

        Args:
            ref: ``/packages/i/section_definitions/j[...]``, a package-relative
                ``/section_definitions/j``, a fragment ``#/definitions/...``, a qualified
                name, a bare section name, any of these with an ``@<definition_id>``
                suffix, or a URL into another archive (needs ``external``).
            context: the package the reference was written in, for relative forms.
            origin: the definition path of the referrer, for error messages.

        Returns:
            The definition.

        Raises:
            UnknownDefinitionError: nothing of that name, path or id exists.
        """
        if not isinstance(ref, str) or not ref:
            raise UnknownDefinitionError(f"invalid definition reference {ref!r}", origin)
        text = ref
        def_id = None
        m = _DEF_ID_SUFFIX.search(text)
        if m:
            def_id = m.group(1)
            text = text[: m.start()]
            found = self.by_definition_id(def_id)
            if found is not None:
                return found
        if _BARE_ID.match(text):
            found = self.by_definition_id(text.lower())
            if found is not None:
                return found
        if text.startswith("/packages/"):
            return self._resolve_path(text, origin)
        url, hash_, fragment = text.partition("#")
        if hash_ and url:
            return self._resolve_external(ref, origin)
        if hash_:
            return self._resolve_fragment(fragment, context, ref, origin)
        if text.startswith("/"):
            return self._resolve_fragment(text, context, ref, origin)
        if "/" in text:
            return self._resolve_external(ref, origin)
        if _QUALIFIED.match(text):
            if text.startswith("entry_id:") and context is not None:
                local = context._by_name.get(text.rpartition(".")[2])
                if local is not None and context.name == text.rpartition(".")[0]:
                    return local
            found_q = self.by_qualified_name(text)
            if found_q is not None:
                return found_q
            if "." not in text and context is not None:
                local = context._by_name.get(text)
                if local is not None:
                    return local
        raise UnknownDefinitionError(f"unknown definition {ref!r}", origin)

    @classmethod
    def for_archive(
        cls,
        definitions: Mapping[str, Any],
        entry_id: str | None,
        parent: Environment | None,
        external: ExternalResolver | None = None,
    ) -> Environment:
        """The environment of a custom schema carried in an archive's ``definitions``.

        NOMAD names such sections ``entry_id:<entry_id>.<Section>`` and refers to them by
        fragments into the archive (``#/definitions/section_definitions/1``), so the package
        is renamed accordingly and its paths start at ``/definitions``.
        """
        raw = dict(definitions)
        if entry_id:
            raw["name"] = f"entry_id:{entry_id}"
        elif not isinstance(raw.get("name"), str):
            raw["name"] = "definitions"
        return cls(
            {"packages": [raw]},
            parent=parent,
            source=f"entry {entry_id}" if entry_id else "archive definitions",
            external=external,
            package_path="/definitions",
        )

    def _resolve_path(self, path: str, origin: str | None) -> Definition:
        found = self._by_path.get(path)
        if found is not None:
            return found
        target = self._walk(path, origin)
        if isinstance(target, (SectionDef, QuantityDef, SubSectionDef, PackageDef)):
            return target
        raise UnknownDefinitionError(f"unknown definition path {path!r}", origin)

    def _walk(self, path: str, origin: str | None) -> Definition:
        """Walk ``/packages/i/...`` through the model objects (indices or names)."""
        segments = [s for s in path.strip("/").split("/") if s]
        node: Any = self
        i = 0
        while i < len(segments):
            key = segments[i]
            if key not in _LIST_KEYS or i + 1 >= len(segments):
                raise UnknownDefinitionError(f"unknown definition path {path!r}", origin)
            items = _children(node, key)
            sel = segments[i + 1]
            node = _select(items, sel)
            if node is None:
                raise UnknownDefinitionError(
                    f"unknown definition path {path!r} (no {key} {sel!r})", origin
                )
            i += 2
        if node is self:
            raise UnknownDefinitionError(f"unknown definition path {path!r}", origin)
        return node  # type: ignore[no-any-return]

    def _resolve_fragment(
        self, fragment: str, context: PackageDef | None, ref: str, origin: str | None
    ) -> Definition:
        frag = fragment.strip("/")
        if frag.startswith("packages/"):
            return self._resolve_path("/" + frag, origin)
        if frag.startswith("definitions"):
            frag = frag[len("definitions") :].strip("/")
        pkg = context if context is not None else (self.packages[0] if self.packages else None)
        if pkg is None:
            raise UnknownDefinitionError(f"unknown definition {ref!r}", origin)
        if "/" not in frag:  # "#/Substance", "#SubstanceExtended": a name in this package
            found = pkg._by_name.get(frag)
            if found is None:
                raise UnknownDefinitionError(f"unknown definition {ref!r}", origin)
            return found
        segments = frag.split("/")
        node: Any = pkg
        for j in range(0, len(segments) - 1, 2):
            key, sel = segments[j], segments[j + 1]
            if key not in _LIST_KEYS:
                raise UnknownDefinitionError(f"unknown definition {ref!r} (segment {key!r})", origin)
            node = _select(_children(node, key), sel)
            if node is None:
                raise UnknownDefinitionError(f"unknown definition {ref!r} (no {key} {sel!r})", origin)
        if len(segments) % 2:
            raise UnknownDefinitionError(f"unknown definition {ref!r}", origin)
        return node  # type: ignore[no-any-return]

    def _resolve_external(self, ref: str, origin: str | None) -> Definition:
        if self.external is not None:
            return self.external(ref)
        if self.parent is not None and self.parent.external is not None:
            return self.parent.external(ref)
        raise UnknownDefinitionError(
            f"definition {ref!r} lives in another archive and no source can load it", origin
        )


def is_packed_export(data: Any) -> bool:
    """Whether ``data`` is a packed export (:meth:`Environment.pack`) of this layout, by shape.

    Checks the kinds of the parts only: the cache that keeps packed exports checks their bytes.
    """
    if not isinstance(data, Mapping) or data.get("format") != PACKED_FORMAT:
        return False
    heads, blobs, index = data.get("package_heads"), data.get("packages"), data.get("index")
    return (
        isinstance(data.get("head"), dict)
        and isinstance(heads, list)
        and isinstance(blobs, list)
        and len(heads) == len(blobs)
        and all(isinstance(h, dict) for h in heads)
        and all(isinstance(b, bytes) for b in blobs)
        and isinstance(index, dict)
        and all(isinstance(index.get(k), dict) for k in ("qualified", "ids", "extensions"))
        and isinstance(index.get("properties"), bytes)
    )


def unpack_export(packed: Mapping[str, Any]) -> dict[str, Any]:
    """The plain export (as parsed from JSON) of a packed one, every package decoded.

    Raises:
        DefinitionError: ``packed`` is not a packed export of this layout.
    """
    if not is_packed_export(packed):
        raise DefinitionError(f"not a packed metainfo export ({PACKED_FORMAT})")
    packages = [marshal.loads(blob) for blob in packed["packages"]]
    return {key: packages if key == "packages" else value for key, value in packed["head"].items()}


def _index_property_ids(section: SectionDef, ids: dict[str, tuple[SectionDef, bool, int]]) -> None:
    """Add the definition ids of a section's quantities and sub-sections, from its raw dict."""
    for key, is_quantity in (("quantities", True), ("sub_sections", False)):
        items = section.raw.get(key)
        if not isinstance(items, list):
            continue
        for i, item in enumerate(items):
            did = item.get("definition_id") if isinstance(item, Mapping) else None
            if isinstance(did, str):
                ids[did] = (section, is_quantity, i)


def _children(node: Any, key: str) -> list[Any]:
    if isinstance(node, Environment):
        return node.packages if key == "packages" else []
    if isinstance(node, PackageDef):
        return node.sections if key == "section_definitions" else []
    if isinstance(node, SectionDef):
        children: dict[str, list[Any]] = {
            "quantities": node.quantities,
            "sub_sections": node.sub_sections,
            "inner_section_definitions": node.inner_sections,
        }
        return children.get(key, [])
    return []


def _select(items: list[Any], sel: str) -> Any:
    if sel.lstrip("-").isdigit():
        idx = int(sel)
        return items[idx] if -len(items) <= idx < len(items) else None
    return next((x for x in items if getattr(x, "name", None) == sel), None)


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
