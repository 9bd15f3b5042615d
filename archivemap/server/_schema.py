"""Section definitions, as much of them as the server's ``required`` reader needs.

NOMAD's ``RequiredReader`` walks an archive along its definitions: a key that is no property
of the section's definition is skipped, only quantities typed as references are followed by
``include-resolved``, a reference typed with a generic base section matches nothing, and a
``spec`` on a plain quantity fails. This module derives from a metainfo JSON export
(``nomad dev metainfo``, i.e. ``all_metainfo_packages().m_to_dict()``) exactly that: per
section its properties by name (sub-section, plain quantity, reference, quantity reference)
and their targets, with inheritance (``base_sections``) and extensions
(``extends_base_section``) applied the way ``Section.all_properties`` does. Everything else
in the export (units, shapes, descriptions) is dropped after reading.

Custom schemas uploaded as archives (an archive's ``definitions``) become the same objects
through :class:`PackageDefinitions`; the reader resolves their references.

The server must not import :mod:`archivemap.metainfo` (an import contract), so this is a
small separate reading of the same export.
"""

from __future__ import annotations

import gzip
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Union

from archivemap._json import parse_json
from archivemap.errors import ArchiveDataError

__all__ = [
    "PLAIN",
    "QUANTITY_REFERENCE",
    "REFERENCE",
    "PackageDefinitions",
    "Property",
    "QuantityDef",
    "Schema",
    "SectionDef",
    "SubSectionDef",
    "load_schema",
]

_logger = logging.getLogger("archivemap.server")

#: Quantity kinds: a value, a reference to a section, a reference to a quantity's value.
PLAIN = "plain"
REFERENCE = "reference"
QUANTITY_REFERENCE = "quantity_reference"

# Type kinds of the export that NOMAD implements as ``Reference`` subclasses.
_REFERENCE_KINDS = {"reference": REFERENCE, "quantity_reference": QUANTITY_REFERENCE, "User": REFERENCE, "Author": REFERENCE}
_USER_SECTIONS = {"User": "nomad.datamodel.data.User", "Author": "nomad.datamodel.data.Author"}


class QuantityDef:
    """A quantity: its name, kind and, for references, the target definition.

    Attributes:
        name: the quantity name.
        kind: :data:`PLAIN`, :data:`REFERENCE` or :data:`QUANTITY_REFERENCE`.
        target: the referenced :class:`SectionDef` (or :class:`QuantityDef` for quantity
            references); None for plain quantities and unresolvable targets.
    """

    __slots__ = ("kind", "many", "name", "search_name", "target")

    def __init__(self, name: str, kind: str = PLAIN, target: SectionDef | QuantityDef | None = None) -> None:
        self.name = name
        self.kind = kind
        self.target = target
        #: the search-document field name (``a_elasticsearch``), or None when not indexed
        self.search_name: str | None = None
        #: whether values are lists (a non-scalar shape)
        self.many = False

    def __repr__(self) -> str:
        return f"QuantityDef({self.name!r}, {self.kind})"


class SubSectionDef:
    """A sub-section: its name and the section definition of its contents."""

    __slots__ = ("name", "repeats", "section")

    def __init__(self, name: str, section: SectionDef | None, repeats: bool = False) -> None:
        self.name = name
        self.section = section
        self.repeats = repeats

    def __repr__(self) -> str:
        return f"SubSectionDef({self.name!r})"


Property = Union[QuantityDef, SubSectionDef]

# Custom sections are filled on first use; one lock keeps two threads from seeing half of one.
_LOAD_LOCK = threading.RLock()


class SectionDef:
    """A section definition: own properties, base sections and extending sections.

    Custom sections are filled lazily by a loader on first use, so building a package never
    resolves references into other entries before they are needed.
    """

    __slots__ = ("_all", "_base_sections", "_extensions", "_loader", "_own", "name", "qualified_name")

    def __init__(self, name: str, qualified_name: str, loader: Callable[[SectionDef], None] | None = None) -> None:
        self.name = name
        self.qualified_name = qualified_name
        self._own: dict[str, Property] = {}
        self._base_sections: list[SectionDef] = []
        self._extensions: list[SectionDef] = []
        self._loader = loader
        self._all: dict[str, Property] | None = None

    def __repr__(self) -> str:
        return f"SectionDef({self.qualified_name!r})"

    def _load(self) -> None:
        if self._loader is not None:
            with _LOAD_LOCK:
                loader, self._loader = self._loader, None
                if loader is not None:
                    loader(self)

    @property
    def own_properties(self) -> dict[str, Property]:
        """Properties defined on this section itself (and by sections extending it)."""
        self._load()
        return self._own

    @property
    def base_sections(self) -> list[SectionDef]:
        """The direct base sections."""
        self._load()
        return self._base_sections

    def add_property(self, prop: Property) -> None:
        """Define a property on this section (later definitions of a name win)."""
        self._own[prop.name] = prop
        self._all = None

    def add_base_section(self, base: SectionDef) -> None:
        """Add a direct base section."""
        self._base_sections.append(base)
        self._all = None

    def add_extension(self, extension: SectionDef) -> None:
        """Register a section whose properties extend this one (``extends_base_section``)."""
        self._extensions.append(extension)
        self._all = None

    def all_base_sections(self) -> list[SectionDef]:
        """Every base section, transitively, bases before the sections deriving from them."""
        ordered: list[SectionDef] = []
        seen: set[int] = {id(self)}

        def visit(section: SectionDef) -> None:
            for base in section.base_sections:
                if id(base) in seen:
                    continue  # a cyclic custom schema: each section once
                seen.add(id(base))
                visit(base)
                ordered.append(base)

        visit(self)
        return ordered

    @property
    def all_properties(self) -> dict[str, Property]:
        """Properties by name, inherited ones included (NOMAD's ``all_properties``)."""
        found = self._all
        if found is None:
            found = {}
            for section in [*self.all_base_sections(), self]:
                found.update(section.own_properties)
                for extension in section._extensions:
                    found.update(extension.own_properties)
            self._all = found
        return found


class Schema:
    """The built-in definitions: sections by qualified name and the archive root.

    Attributes:
        sections: every section definition by qualified name (first definition wins).
        entry_archive: the root section, ``nomad.datamodel.datamodel.EntryArchive``.
        source: where the definitions were read from.
    """

    def __init__(self, sections: dict[str, SectionDef], entry_archive: SectionDef, source: str) -> None:
        self.sections = sections
        self.entry_archive = entry_archive
        self.source = source
        self._by_name: dict[str, list[SectionDef]] = {}
        for section in sections.values():
            self._by_name.setdefault(section.name, []).append(section)
        self._search: dict[str, bool] | None = None

    @property
    def search_quantities(self) -> dict[str, bool]:
        """The search document's quantities (``a_elasticsearch``) -> whether list-valued.

        Walks ``metadata`` and ``results`` of the archive root; a quantity is list-valued
        when its shape is not scalar or a repeating sub-section lies on its path.
        """
        if self._search is None:
            found: dict[str, bool] = {}

            def walk(section: SectionDef | None, many: bool, path: tuple[int, ...]) -> None:
                if section is None or id(section) in path or len(path) > 16:
                    return
                for prop in section.all_properties.values():
                    if isinstance(prop, QuantityDef):
                        if prop.search_name is not None:
                            found[prop.search_name] = found.get(prop.search_name, False) or many or prop.many
                    else:
                        walk(prop.section, many or prop.repeats, (*path, id(section)))

            root = self.entry_archive.all_properties
            for name in ("metadata", "results"):
                prop = root.get(name)
                if isinstance(prop, SubSectionDef):
                    walk(prop.section, False, ())
            self._search = found
        return self._search

    def __repr__(self) -> str:
        return f"Schema({self.source!r}, sections={len(self.sections)})"

    def section(self, qualified_name: str) -> SectionDef | None:
        """The section with that qualified (Python) name, or None."""
        return self.sections.get(qualified_name)

    def sections_named(self, name: str) -> list[SectionDef]:
        """Every section with that short name."""
        return list(self._by_name.get(name, ()))

    @classmethod
    def from_export(cls, export: Mapping[str, Any], source: str = "<memory>") -> Schema:
        """Build from a parsed metainfo export (``{"packages": [...]}``).

        Raises:
            ArchiveDataError: when the export has no ``EntryArchive`` section or is malformed.
        """
        packages = export.get("packages")
        if not isinstance(packages, list):
            raise ArchiveDataError("metainfo export without a 'packages' list", source)
        by_path: dict[str, SectionDef] = {}
        raw: list[tuple[SectionDef, Mapping[str, Any], str]] = []

        def collect(section: Any, path: str, prefix: str) -> None:
            if not isinstance(section, Mapping) or not isinstance(section.get("name"), str):
                return
            definition = SectionDef(section["name"], f"{prefix}.{section['name']}")
            by_path[path] = definition
            raw.append((definition, section, path))
            for index, inner in enumerate(_list(section.get("inner_section_definitions"))):
                collect(inner, f"{path}/inner_section_definitions/{index}", definition.qualified_name)

        for p_index, package in enumerate(packages):
            if not isinstance(package, Mapping):
                continue
            name = str(package.get("name", ""))
            for s_index, section in enumerate(_list(package.get("section_definitions"))):
                collect(section, f"/packages/{p_index}/section_definitions/{s_index}", name)

        quantities: dict[str, QuantityDef] = {}
        pending: list[tuple[QuantityDef, str]] = []
        for definition, section, path in raw:
            for index, quantity in enumerate(_list(section.get("quantities"))):
                found = _quantity(quantity)
                if found is None:
                    continue
                qdef, target = found
                if qdef.kind != PLAIN:
                    pending.append((qdef, str(target)))
                annotations = quantity.get("m_annotations")
                search = annotations.get("elasticsearch") if isinstance(annotations, Mapping) else None
                if isinstance(search, list) and search and isinstance(search[0], str):
                    qdef.search_name = search[0]
                qdef.many = bool(quantity.get("shape"))
                quantities[f"{path}/quantities/{index}"] = qdef
                definition.add_property(qdef)
            for sub in _list(section.get("sub_sections")):
                if isinstance(sub, Mapping) and isinstance(sub.get("name"), str):
                    target_section = by_path.get(str(sub.get("sub_section")))
                    definition.add_property(SubSectionDef(sub["name"], target_section, bool(sub.get("repeats"))))
            for base_path in _list(section.get("base_sections")):
                base = by_path.get(str(base_path))
                if base is not None:
                    definition.add_base_section(base)
            if section.get("extends_base_section") and definition.base_sections:
                definition.base_sections[0].add_extension(definition)

        by_name: dict[str, SectionDef] = {}
        for definition, _, _ in raw:
            by_name.setdefault(definition.qualified_name, definition)
        for qdef, target in pending:
            if target.startswith("/packages/"):
                qdef.target = quantities.get(target) if "/quantities/" in target else by_path.get(target)
            else:
                qdef.target = by_name.get(target)
        root = by_name.get("nomad.datamodel.datamodel.EntryArchive")
        if root is None:
            raise ArchiveDataError("metainfo export without nomad.datamodel.datamodel.EntryArchive", source)
        return cls(by_name, root, source)


def _quantity(raw: Any) -> tuple[QuantityDef, Any] | None:
    """A quantity of an export or a custom schema, and the target it refers to (its
    ``type_data``; ``None`` for a plain quantity). ``None`` when it has no name."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
        return None
    qdef = QuantityDef(raw["name"])
    type_ = _mapping(raw.get("type"))
    kind = _REFERENCE_KINDS.get(str(type_.get("type_kind")))
    if kind is None:
        return qdef, None
    qdef.kind = kind
    return qdef, _USER_SECTIONS.get(str(type_.get("type_kind")), type_.get("type_data"))


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


_CACHE: dict[tuple[str, int, int], Schema] = {}
_CACHE_LOCK = threading.Lock()


def load_schema(path: str | Path) -> Schema:
    """Read a metainfo export (``.json`` or ``.json.gz``); cached per file and version.

    Raises:
        FileNotFoundError: when the file does not exist.
        ArchiveDataError: when it is not a metainfo export.
    """
    file = Path(path).resolve()
    stat = file.stat()
    key = (str(file), stat.st_mtime_ns, stat.st_size)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
        data = file.read_bytes()
        if file.suffix == ".gz":
            data = gzip.decompress(data)
        export = parse_json(data, str(file))
        if not isinstance(export, Mapping):
            raise ArchiveDataError("metainfo export is not a JSON object", str(file))
        schema = Schema.from_export(export, str(file))
        _CACHE.clear()  # one export at a time is plenty; the parsed form is large
        _CACHE[key] = schema
        _logger.info("read %d section definitions from %s", len(schema.sections), file.name)
        return schema


#: Resolves a definition reference string found inside a custom package.
Resolve = Callable[[str], "SectionDef | None"]


class PackageDefinitions:
    """The sections of one custom package (an archive's ``definitions``), built lazily.

    Args:
        package: the ``definitions`` dict of an archive.
        label: a prefix for qualified names (e.g. ``entry_id:<id>``).
        resolve: turns a reference string met in the package (``base_sections``,
            ``sub_section``, reference ``type_data``) into a section, or None.
    """

    def __init__(self, package: Mapping[str, Any], label: str, resolve: Resolve) -> None:
        self.package = package
        self.label = label
        self._resolve = resolve
        self._sections: dict[tuple[int, ...], SectionDef] = {}
        self._lock = threading.RLock()

    def section_at(self, segments: list[str]) -> SectionDef | None:
        """The section at a path inside the package, e.g. ``["section_definitions", "4"]``.

        Also accepts inner sections (``.../inner_section_definitions/1``) and a single
        section name (``["Substance"]``).
        """
        if len(segments) == 1:
            return self.section_named(segments[0])
        if not segments or len(segments) % 2:
            return None
        node: Any = self.package
        indices: list[int] = []
        for position in range(0, len(segments), 2):
            name, index = segments[position], segments[position + 1]
            expected = "section_definitions" if position == 0 else "inner_section_definitions"
            items = node.get(name) if isinstance(node, Mapping) and name == expected else None
            if not isinstance(items, list) or not index.isdigit() or int(index) >= len(items):
                return None
            node = items[int(index)]
            if not isinstance(node, Mapping):
                return None
            indices.append(int(index))
        return self._section(tuple(indices), node)

    def section_named(self, name: str) -> SectionDef | None:
        """The top-level section of that name, or None."""
        for index, section in enumerate(_list(self.package.get("section_definitions"))):
            if isinstance(section, Mapping) and section.get("name") == name:
                return self._section((index,), section)
        return None

    def _section(self, key: tuple[int, ...], raw: Mapping[str, Any]) -> SectionDef:
        with self._lock:
            found = self._sections.get(key)
            if found is None:
                name = str(raw.get("name", ""))
                found = SectionDef(name, f"{self.label}.{name}", lambda section: self._fill(section, raw))
                self._sections[key] = found
            return found

    def _fill(self, section: SectionDef, raw: Mapping[str, Any]) -> None:
        for base_ref in _list(raw.get("base_sections")):
            base = self._resolve(str(base_ref)) if isinstance(base_ref, str) else None
            if base is not None and base is not section:
                section.add_base_section(base)
        for quantity in _list(raw.get("quantities")):
            found = _quantity(quantity)
            if found is None:
                continue
            qdef, target = found
            if qdef.kind != PLAIN:
                qdef.kind = REFERENCE  # custom quantity references are rare; treat as section refs
                qdef.target = self._resolve(str(target)) if isinstance(target, str) else None
            section.add_property(qdef)
        for sub in _list(raw.get("sub_sections")):
            if isinstance(sub, Mapping) and isinstance(sub.get("name"), str):
                target = sub.get("sub_section")
                section.add_property(SubSectionDef(sub["name"], self._resolve(target) if isinstance(target, str) else None))
