"""A schema: definitions plus the Python classes for them, generated or built on first use.

Codegen is optional. When a generated package for the same metainfo is given (or was
registered), its classes are used; every other section class is built at run time with
``attrs.make_class`` from the same :class:`~archivemap.metainfo.fields.FieldMeta` the generator
writes, one section type at a time, the first time data of that type is read.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, Union

import attrs

from archivemap.archive.sections import Section
from archivemap.errors import ArchivemapError, DefinitionError, SchemaMismatchWarning
from archivemap.metainfo.definitions import Environment, SectionDef, SubSectionDef, load_environment
from archivemap.metainfo.fields import FieldMeta, field_meta, quantity, section_fields, sub_section
from archivemap.naming import class_name, python_name

__all__ = [
    "ROOT_SECTION",
    "DefinitionResolver",
    "Schema",
    "SchemaSource",
    "as_schema",
    "find_classes",
    "register_classes",
]

#: Anything a :class:`Schema` can be made from: an Environment, a parsed export, a path or
#: URL of an export, or its bytes.
SchemaSource = Union[Environment, Mapping[str, Any], str, Path, bytes]

#: The qualified name of the archive root section.
ROOT_SECTION = "nomad.datamodel.datamodel.EntryArchive"


class DefinitionResolver(Protocol):
    """Resolves an ``m_def`` string, including definitions an archive carries itself."""

    def resolve_definition(self, m_def: str) -> SectionDef:
        """The section definition ``m_def`` names.

        Raises:
            DefinitionError: it names no section definition.
            ReferenceResolutionError: it lives in an archive that cannot be reached.
        """
        ...


class Schema:
    """Definitions and their classes.

    Args:
        environment: the metainfo (an :class:`Environment`, a path, URL, dict or bytes).
        classes: a generated package (module or its import name) for the same metainfo;
            optional. Classes it lacks are built at run time.
    """

    def __init__(
        self,
        environment: Environment | Mapping[str, Any] | str | Path | bytes,
        classes: ModuleType | str | None = None,
    ) -> None:
        self.environment = load_environment(environment)
        self.source_sha256 = _sha256_of(environment)
        if isinstance(classes, str):
            classes = importlib.import_module(classes)
        if classes is None and self.source_sha256 is not None:
            classes = find_classes(self.source_sha256)
        self.generated = classes
        self._by_def: dict[int, type[Section]] = {}
        self._def_by_class: dict[type, SectionDef] = {}
        self._lock = threading.RLock()
        self._root: type[Section] | None = None
        self._sub_classes: dict[tuple[type, str], type[Section]] = {}

    def __repr__(self) -> str:
        gen = f", classes={self.generated.__name__!r}" if self.generated else ""
        return f"Schema({self.environment.source!r}{gen})"

    # -- lookups ----------------------------------------------------------------------------
    def section_def(self, name: str) -> SectionDef:
        """A section definition by qualified name, alias or definition id."""
        return self.environment.section(name)

    def root_class(self) -> type[Section]:
        """The class of the archive root (EntryArchive); looked up once per schema."""
        cls = self._root
        if cls is None:
            cls = self._root = self.class_for(self.section_def(ROOT_SECTION))
        return cls

    def class_for_name(self, name: str, environment: Environment | None = None) -> type[Section]:
        """The class of the section with this qualified name (or definition id)."""
        env = environment or self.environment
        return self.class_for(env.section(name))

    def definition_of(self, cls: type) -> SectionDef:
        """The section definition a class was made for."""
        sdef = self._def_by_class.get(cls)
        if sdef is None:
            sdef = self.environment.section(getattr(cls, "m_qualified_name", cls.__name__))
            self._def_by_class[cls] = sdef
        return sdef

    def class_for(self, sdef: SectionDef) -> type[Section]:
        """The class for a section definition: generated if available, else built now."""
        cls = self._by_def.get(id(sdef))
        if cls is not None:
            return cls
        with self._lock:
            cls = self._by_def.get(id(sdef))
            if cls is None:
                cls = self._generated_class(sdef) or self._build(sdef)
                self._by_def[id(sdef)] = cls
                self._def_by_class.setdefault(cls, sdef)
            return cls

    def sub_section_class(self, owner: type[Section], fm: FieldMeta) -> type[Section]:
        """The declared class of sub-section ``fm`` of class ``owner`` (cached: a hot path)."""
        key = (owner, fm.name)
        cls = self._sub_classes.get(key)
        if cls is None:
            cls = self._sub_classes[key] = self._sub_section_class(owner, fm)
        return cls

    def _sub_section_class(self, owner: type[Section], fm: FieldMeta) -> type[Section]:
        sdef = self._def_by_class.get(owner)
        if sdef is not None:
            prop = sdef.all_properties.get(fm.name)
            if isinstance(prop, SubSectionDef):
                return self.class_for(prop.sub_section)
        if fm.section is None:
            raise DefinitionError(f"sub-section {fm.name!r} has no section type")
        return self.class_for(self.environment.section(fm.section))

    def class_for_item(
        self,
        declared: type[Section],
        item: dict[str, Any],
        resolver: DefinitionResolver | None = None,
        path: object = None,
    ) -> type[Section]:
        """The class of one raw sub-section item: the one ``m_def`` resolver of the library.

        NOMAD writes ``m_def`` (a qualified name, a definition id, a fragment into the
        archive's own ``definitions`` or into another archive) where an item's class differs
        from the declared one; 2.0 may write only ``m_def_id``. The loader, remote patching
        and the reference graph all choose classes here.

        Args:
            declared: the sub-section's declared class, used when there is no ``m_def`` or it
                cannot be resolved.
            item: the raw item dict.
            resolver: resolves ``m_def`` strings with the archive's own definitions (an
                archive context); without one, ``declared`` is used.
            path: where the item sits; when given, an unresolvable ``m_def`` is reported with
                a :class:`SchemaMismatchWarning` naming it.
        """
        m_def = item.get("m_def")
        if not isinstance(m_def, str):
            m_def = item.get("m_def_id")  # 2.0 may write only the definition id
        if not isinstance(m_def, str) or resolver is None:
            return declared
        try:
            return self.class_for(resolver.resolve_definition(m_def))
        except (ArchivemapError, KeyError, LookupError, ValueError) as exc:
            if m_def.rpartition(".")[2] == declared.m_qualified_name.rpartition(".")[2]:
                # NOMAD resolves m_def by Python import, and modules re-export sections under
                # other module paths (nomad.datamodel.metainfo.system.Atoms is runschema's).
                return declared
            if path is not None:
                warnings.warn(
                    f"{path}: m_def {m_def!r} cannot be resolved ({exc}); read as "
                    f"{declared.m_qualified_name}; kept as it was",
                    SchemaMismatchWarning,
                    stacklevel=6,
                )
            return declared

    # -- generated classes ------------------------------------------------------------------
    def _generated_class(self, sdef: SectionDef) -> type[Section] | None:
        gen = self.generated
        if gen is None or sdef.package.environment is not self.environment:
            return None
        get_class = getattr(gen, "get_class", None)
        if get_class is None:
            return None
        for key in filter(None, (sdef.qualified_name, sdef.definition_id)):
            try:
                cls = get_class(key)
            except (KeyError, LookupError, ImportError, AttributeError):
                continue
            if isinstance(cls, type) and issubclass(cls, Section):
                return cls
        return None

    # -- run-time classes -------------------------------------------------------------------
    def _build(self, sdef: SectionDef) -> type[Section]:
        """Build the attrs class of a section definition (its first base is the Python base)."""
        if sdef.extends_base_section and sdef.base_sections:
            return self.class_for(sdef.base_sections[0])
        base: type[Section] = Section
        bases = [b for b in sdef.base_sections if not b.extends_base_section]
        if bases:
            base = self.class_for(bases[0])
        inherited = section_fields(base)
        fields: dict[str, Any] = {}
        used = set(inherited)
        for name, prop in sdef.all_properties.items():
            attr = python_name(name)
            try:
                fm = field_meta(prop, attr)
            except DefinitionError:
                fm = FieldMeta(name=name, attribute=attr, kind="quantity", type_kind="custom")
            if inherited.get(attr) == fm:
                continue
            if attr in used and attr not in inherited:
                raise DefinitionError(
                    f"properties of {sdef.qualified_name} map to one attribute {attr!r}", sdef.path
                )
            used.add(attr)
            kwargs = {k: v for k, v in attrs.asdict(fm, recurse=False).items() if k not in ("name", "attribute", "kind")}
            fields[attr] = (sub_section if fm.kind == "sub_section" else quantity)(name, attr, **kwargs)
        cls: Any = attrs.make_class(
            class_name(sdef.name),
            fields,
            bases=(base,),
            slots=True,
            kw_only=True,
            eq=False,
            repr=False,
        )
        cls.m_qualified_name = sdef.qualified_name
        cls.m_definition_id = sdef.definition_id
        cls.__doc__ = sdef.description or f"NOMAD section {sdef.qualified_name}."
        cls.__module__ = "archivemap.runtime"
        return cls


_registered: dict[str, ModuleType] = {}


def register_classes(module: ModuleType | str) -> None:
    """Make a generated package known, so that schemas of the same metainfo file use it.

    Generated packages call this when imported; packages named in the environment variable
    ``ARCHIVEMAP_CLASSES`` (comma-separated import names) are imported and registered when a
    schema looks for classes.
    """
    if isinstance(module, str):
        module = importlib.import_module(module)
    sha = getattr(module, "SOURCE_SHA256", None)
    if isinstance(sha, str):
        _registered[sha] = module


def find_classes(sha256: str) -> ModuleType | None:
    """The generated package made from the metainfo file with this sha256, if one is known."""
    found = _registered.get(sha256)
    if found is None:
        for name in filter(None, (n.strip() for n in os.environ.get("ARCHIVEMAP_CLASSES", "").split(","))):
            try:
                register_classes(name)
            except ImportError:
                continue
        found = _registered.get(sha256)
    return found


def _sha256_of(source: Any) -> str | None:
    """The sha256 the generator records for a metainfo source (file bytes or given bytes)."""
    if isinstance(source, bytes):
        return hashlib.sha256(source).hexdigest()
    if isinstance(source, (str, Path)) and not str(source).startswith(("http://", "https://")):
        try:
            return hashlib.sha256(Path(source).read_bytes()).hexdigest()
        except OSError:
            return None
    return None


_cache: dict[Any, Schema] = {}
_cache_lock = threading.Lock()


def as_schema(schema: Schema | SchemaSource) -> Schema:
    """A :class:`Schema` for any accepted metainfo source; file paths are loaded once."""
    if isinstance(schema, Schema):
        return schema
    if isinstance(schema, (str, Path)):
        key = str(Path(schema).resolve()) if not str(schema).startswith("http") else str(schema)
        with _cache_lock:
            found = _cache.get(key)
            if found is None:
                found = _cache[key] = Schema(schema)
            return found
    if isinstance(schema, Environment):
        with _cache_lock:
            found = _cache.get(id(schema))
            if found is None or found.environment is not schema:
                found = _cache[id(schema)] = Schema(schema)
            return found
    return Schema(schema)
