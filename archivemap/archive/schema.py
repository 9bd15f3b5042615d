"""A schema: definitions plus the Python classes for them, generated or built on first use.

Codegen is optional. When a generated package for the same metainfo is given (or was
registered), its classes are used; every other section class is built at run time with
``attrs.make_class`` from the same :class:`~archivemap.metainfo.fields.FieldMeta` the generator
writes, one section type at a time, the first time data of that type is read.

Schemas pickle by their source (see :mod:`archivemap.archive.runtime` for the whole design):
a file as its path and sha256, a URL as the URL, anything else as its compressed JSON. Run-time
classes are named so that :mod:`archivemap.archive.runtime` can find them again.
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import json
import os
import pickle
import re
import secrets
import threading
import warnings
import weakref
import zlib
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, Final, Protocol, Union

import attrs
import orjson

from archivemap._locks import ForkSafeLock
from archivemap.archive.sections import Section
from archivemap.errors import (
    ArchivemapError,
    CyclicDefinitionError,
    DefinitionError,
    SchemaMismatchWarning,
    SchemaSourceChangedError,
)
from archivemap.metainfo.default import SOURCE_LABEL, default_environment
from archivemap.metainfo.environment import Environment
from archivemap.metainfo.exports import load_environment
from archivemap.metainfo.fields import FieldMeta, field_for, property_meta, section_fields
from archivemap.metainfo.model import DefinitionRegistry, SectionDef, SubSectionDef
from archivemap.naming import class_name, python_name

__all__ = [
    "ROOT_SECTION",
    "RUNTIME_MODULE",
    "DefinitionResolver",
    "RuntimeName",
    "Schema",
    "SchemaSource",
    "SchemaSourceChangedError",
    "as_schema",
    "find_classes",
    "find_schema",
    "parse_runtime_name",
    "register_classes",
]

#: Anything a :class:`Schema` can be made from: an Environment, a parsed export, a path or
#: URL of an export, or its bytes.
SchemaSource = Union[Environment, Mapping[str, Any], str, Path, bytes]

#: The qualified name of the archive root section.
ROOT_SECTION = "nomad.datamodel.datamodel.EntryArchive"

#: The module run-time classes claim to live in; its ``__getattr__`` finds them by name.
RUNTIME_MODULE: Final = "archivemap.archive.runtime"


class DefinitionResolver(Protocol):
    """Resolves an ``m_def`` string, including definitions an archive carries itself."""

    @property
    def definitions_final(self) -> bool:
        """Whether every definition the archive carries is here already, so that what an
        ``m_def`` resolves to may be remembered (not so for a partial download)."""
        ...

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
        self._lock = ForkSafeLock()  # a forked child gets it back unlocked (see archivemap._locks)
        self._root: type[Section] | None = None
        self._sub_classes: dict[tuple[type, str], type[Section]] = {}
        self._reference_classes: dict[str, type[Section] | None] = {}
        # classes of definitions that live in other environments (an archive's own
        # definitions): by environment (dropped with it), then by id of the definition
        self._foreign: weakref.WeakKeyDictionary[DefinitionRegistry, dict[int, type[Section]]] = (
            weakref.WeakKeyDictionary()
        )
        self._item_classes: weakref.WeakKeyDictionary[Any, dict[str, type[Section]]] = weakref.WeakKeyDictionary()
        self._digests: weakref.WeakKeyDictionary[DefinitionRegistry, str] = weakref.WeakKeyDictionary()
        self.classes_built = 0  # attrs.make_class calls: the test of the content cache counts them
        # -- pickling: where the metainfo came from, and who this schema is in this process
        self._origin = _origin_of(environment, self.source_sha256)
        self._identity: str | None = None
        self._packed: bytes | None = None
        self._serial = next(_serials)
        _live[self._serial] = self
        if self._origin[0] != "json":
            _ = self.identity  # known without work (the file's sha256, or the URL): registers it

    def __repr__(self) -> str:
        gen = f", classes={self.generated.__name__!r}" if self.generated else ""
        return f"Schema({self.environment.source!r}{gen})"

    # -- pickling ---------------------------------------------------------------------------
    @property
    def identity(self) -> str:
        """A sha256 naming this schema's metainfo across processes.

        The file's sha256 for a file; for a URL, that of the URL; otherwise that of the
        environment's JSON (computed once, on first use).
        """
        if self._identity is None:
            kind, value = self._origin
            if kind == "path":
                self._identity = self.source_sha256
            elif kind == "url":
                self._identity = hashlib.sha256(b"url:" + str(value).encode()).hexdigest()
            elif kind == "default":
                self._identity = hashlib.sha256(b"default:" + str(value).encode()).hexdigest()
            else:
                self._identity = hashlib.sha256(self._environment_json()).hexdigest()
            assert self._identity is not None
            with _registry_lock:
                _by_identity.setdefault((self._identity, _generated_name(self)), self)
        return self._identity

    def _environment_json(self) -> bytes:
        env = self.environment
        if env.parent is not None or env.external is not None:
            raise pickle.PicklingError(
                f"{self!r} is built on another environment (an archive's own definitions) and "
                "cannot be pickled; pickle the schema of the deployment instead"
            )
        try:
            return orjson.dumps(env.raw, default=_json_default)
        except TypeError:  # e.g. lone surrogates, which the stdlib escapes and reads back
            try:
                return json.dumps(env.raw, default=_json_default, separators=(",", ":")).encode()
            except (RecursionError, ValueError) as exc:  # nested deeper than any JSON writer goes
                raise pickle.PicklingError(f"{self!r} cannot be written as JSON: {exc}") from None

    def __reduce__(self) -> tuple[Any, ...]:
        kind, value = self._origin
        payload: Any
        if kind == "path":
            payload = (value, self.source_sha256)
        elif kind in ("url", "default"):
            payload = value
        else:
            if self._packed is None:
                self._packed = zlib.compress(self._environment_json(), 6)
            payload = self._packed
        generated = self.generated.__name__ if self.generated is not None else None
        return (_rebuild_schema, (_PROCESS, self._serial, self.identity, kind, payload, generated))

    def _runtime_name(self, sdef: SectionDef, name: str) -> str:
        """The ``__qualname__`` of a run-time class: findable in :data:`RUNTIME_MODULE`.

        ``<Class>__<serial>_<identity[:16]>_<definition path>``, the path written compactly
        (``/packages/3/section_definitions/12/inner_section_definitions/0`` → ``p3s12i0``).
        Definitions that the schema's environment cannot find again by their path (an
        archive's own definitions) keep their plain name: their classes do not pickle alone
        (their sections do, with their archive).
        """
        code = _path_code(sdef.path)
        if code is None or sdef.package.environment is not self.environment:
            return name
        try:
            found = self.environment.resolve(sdef.path)
            identity = self.identity
        except (ArchivemapError, pickle.PicklingError):
            return name
        if found is not sdef:
            return name
        return f"{name}__{self._serial}_{identity[:16]}_{code}"

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
        sdef = self._definition(cls)
        if sdef is None:
            sdef = self.environment.section(getattr(cls, "m_qualified_name", cls.__name__))
            self._def_by_class[cls] = sdef
        return sdef

    def class_for(self, sdef: SectionDef) -> type[Section]:
        """The class for a section definition: generated if available, else built now.

        Classes of the schema's own definitions are kept per definition. Those of an
        archive's own definitions (custom schemas, a new Environment on every load) are kept
        per environment, and built once per definition *content* (:data:`_CONTENT_CLASSES`):
        loading the same custom-schema entry again reuses its classes.
        """
        cls = self._by_def.get(id(sdef))
        if cls is not None:
            return cls
        env = sdef.package.environment
        if env is not self.environment:
            known = self._foreign.get(env)
            if known is not None:
                cls = known.get(id(sdef))
                if cls is not None:
                    return cls
        with self._lock:
            # The chain of Python bases that have no class yet, built from the top down:
            # iterative, so a chain of thousands of bases cannot exhaust the stack, and a
            # cycle is an error instead of endless recursion.
            chain: list[SectionDef] = []
            seen: set[int] = set()
            node: SectionDef | None = sdef
            while node is not None and self._known(node) is None:
                if id(node) in seen:
                    raise CyclicDefinitionError(f"base sections of {sdef.qualified_name} form a cycle", sdef.path)
                seen.add(id(node))
                generated = self._generated_class(node)
                if generated is not None:
                    self._remember(node, generated)
                    break
                chain.append(node)
                node = _python_base(node)
            for node in reversed(chain):
                self._remember(node, self._build(node))
            found = self._known(sdef)
            assert found is not None
            return found

    def _known(self, sdef: SectionDef) -> type[Section] | None:
        env = sdef.package.environment
        if env is self.environment:
            return self._by_def.get(id(sdef))
        known = self._foreign.get(env)
        return known.get(id(sdef)) if known is not None else None

    def _remember(self, sdef: SectionDef, cls: type[Section]) -> None:
        env = sdef.package.environment
        if env is self.environment:
            self._by_def[id(sdef)] = cls
            self._def_by_class.setdefault(cls, sdef)
            return
        known = self._foreign.get(env)
        if known is None:
            known = self._foreign[env] = {}
        known[id(sdef)] = cls

    def _definition(self, cls: type) -> SectionDef | None:
        found = self._def_by_class.get(cls)
        if found is None:
            found = cls.__dict__.get("_m_sdef")
        return found

    def sub_section_class(self, owner: type[Section], fm: FieldMeta) -> type[Section]:
        """The declared class of sub-section ``fm`` of class ``owner`` (cached: a hot path)."""
        key = (owner, fm.name)
        cls = self._sub_classes.get(key)
        if cls is None:
            cls = self._sub_section_class(owner, fm)
            if "_m_sdef" in owner.__dict__:  # a class of the content cache: forgotten with it
                subs = owner.__dict__.get("_m_subs")
                if subs is None:
                    subs = {}
                    type.__setattr__(owner, "_m_subs", subs)
                subs[fm.name] = cls
            else:
                self._sub_classes[key] = cls
        return cls

    def _sub_section_class(self, owner: type[Section], fm: FieldMeta) -> type[Section]:
        subs = owner.__dict__.get("_m_subs")
        if subs is not None and fm.name in subs:
            return subs[fm.name]  # type: ignore[no-any-return]
        sdef = self._definition(owner)
        if sdef is not None:
            prop = sdef.all_properties.get(fm.name)
            if isinstance(prop, SubSectionDef):
                return self.class_for(prop.sub_section)
        if fm.section is None:
            raise DefinitionError(f"sub-section {fm.name!r} has no section type")
        return self.class_for(self.environment.section(fm.section))

    def reference_class(self, fm: FieldMeta) -> type[Section] | None:
        """The class of a reference quantity's targets when the schema names a specific
        section with properties of its own; ``None`` for a generic target (``ArchiveSection``:
        NOMAD does not follow those in ``required``) or one this schema does not define."""
        target = fm.dtype
        if not isinstance(target, str):
            return None
        if target in self._reference_classes:
            return self._reference_classes[target]
        try:
            cls: type[Section] | None = self.class_for(self.environment.section(target))
        except (DefinitionError, KeyError):
            cls = None
        if cls is not None and not section_fields(cls):
            cls = None
        self._reference_classes[target] = cls
        return cls

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
        # one resolution per m_def string and archive (an archive's items repeat a few m_defs);
        # not for partial archives, whose own definitions may arrive later
        memo = None
        if resolver.definitions_final:
            try:
                memo = self._item_classes.get(resolver)
                if memo is None:
                    memo = self._item_classes[resolver] = {}
            except TypeError:  # a resolver that cannot be weakly referenced: no memo
                memo = None
            if memo is not None:
                found = memo.get(m_def)
                if found is not None:
                    return found
        try:
            cls = self.class_for(resolver.resolve_definition(m_def))
            if memo is not None:
                memo[m_def] = cls
            return cls
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

    def _package_digest(self, env: DefinitionRegistry) -> str | None:
        """The sha256 of an archive's own definitions (once per environment), or ``None``.

        ``None`` when they cannot be written as JSON or point into other archives (whose
        definitions may change while these stay the same): then classes are keyed by their
        fields instead.
        """
        digest = self._digests.get(env)
        if digest is None:
            try:
                blob = orjson.dumps(env.raw)
            except TypeError:
                blob = b""
            if not blob or b"../" in blob or b"/archive" in blob or blob.count(b"entry_id:") > 1:
                digest = ""
            else:
                digest = hashlib.sha256(blob).hexdigest()
            self._digests[env] = digest
        return digest or None

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
        foreign = sdef.package.environment is not self.environment
        key = ""
        if foreign:
            # Equal content, one class, whichever archive or load it came from. The key is
            # the content of the archive's definitions (everything a class of them is made
            # of, with this schema and this Python base); failing that, the fields themselves.
            digest = self._package_digest(sdef.package.environment)
            if digest is not None:
                key = f"{self._serial}:{id(base)}:{digest}:{sdef.path}"
                cached = _content_class(key)
                if cached is not None:
                    return cached
        inherited = section_fields(base)
        fields: dict[str, Any] = {}
        metas: list[FieldMeta] = []
        used = set(inherited)
        for name, prop in sdef.all_properties.items():
            attr = python_name(name)
            fm = property_meta(prop, attr)
            if inherited.get(attr) == fm:
                continue
            if attr in used and attr not in inherited:
                raise DefinitionError(
                    f"properties of {sdef.qualified_name} map to one attribute {attr!r}", sdef.path
                )
            used.add(attr)
            fields[attr] = field_for(fm)
            metas.append(fm)
        if foreign and not key:
            content = (self._serial, id(base), sdef.name, sdef.qualified_name, sdef.definition_id, sdef.description, metas)
            key = "fields:" + hashlib.sha256(repr(content).encode("utf-8", "surrogatepass")).hexdigest()
            cached = _content_class(key)
            if cached is not None:
                return cached
        self.classes_built += 1
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
        cls.__module__ = RUNTIME_MODULE
        cls.__qualname__ = self._runtime_name(sdef, cls.__name__)
        cls._m_schema = self  # a class held alone keeps its schema findable by its name
        if foreign:
            cls._m_sdef = sdef  # its definition (the first of that content): see definition_of
            with _content_lock:
                _CONTENT_CLASSES[key] = cls
                while len(_CONTENT_CLASSES) > CONTENT_CACHE_SIZE:
                    _CONTENT_CLASSES.popitem(last=False)
        return cls


def _content_class(key: str) -> type[Section] | None:
    with _content_lock:
        cached = _CONTENT_CLASSES.get(key)
        if cached is not None:
            _CONTENT_CLASSES.move_to_end(key)
        return cached


#: How many classes of archives' own definitions :data:`_CONTENT_CLASSES` keeps.
CONTENT_CACHE_SIZE = 4096
#: Run-time classes of definitions carried by archives (custom schemas), by their content
#: (least recently used dropped first). A class keeps its base, so a key's ``id(base)``
#: stays valid as long as the key does.
_CONTENT_CLASSES: OrderedDict[str, type[Section]] = OrderedDict()
_content_lock = threading.Lock()


def _python_base(sdef: SectionDef) -> SectionDef | None:
    """The definition whose class is the Python base of ``sdef``'s class (see ``_build``)."""
    if sdef.extends_base_section and sdef.base_sections:
        return sdef.base_sections[0]
    bases = [b for b in sdef.base_sections if not b.extends_base_section]
    return bases[0] if bases else None


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


# ============================================================ pickling
#: Tells this process from others: a schema pickled and unpickled here is the same object.
_PROCESS: Final = secrets.token_hex(8)
_serials = itertools.count(1)
#: Every schema alive in this process, by serial number.
_live: weakref.WeakValueDictionary[int, Schema] = weakref.WeakValueDictionary()
#: Schemas by (identity, generated package name); the first alive one of each wins.
_by_identity: weakref.WeakValueDictionary[tuple[str, str | None], Schema] = weakref.WeakValueDictionary()
#: Schemas rebuilt by unpickling, kept alive (like ``as_schema``'s cache) so that many
#: sections unpickled one after another share one schema and its classes.
_unpickled: dict[tuple[str, str | None], Schema] = {}
_registry_lock = threading.RLock()

_PATH_CODES: Final = {"packages": "p", "section_definitions": "s", "inner_section_definitions": "i"}
_PATH_NAMES: Final = {v: k for k, v in _PATH_CODES.items()}
_RUNTIME_NAME = re.compile(r"^(?P<name>\w+?)__(?P<serial>\d+)_(?P<identity>[0-9a-f]{16})_(?P<code>(?:[psi]\d+)+)$")
_CODE_PART = re.compile(r"([psi])(\d+)")


@attrs.frozen
class RuntimeName:
    """The parts of a run-time class's ``__qualname__`` (see :meth:`Schema._runtime_name`)."""

    name: str
    serial: int
    identity_prefix: str
    definition_path: str


def parse_runtime_name(qualname: str) -> RuntimeName | None:
    """The parts of a run-time class name, or ``None`` when ``qualname`` is not one."""
    m = _RUNTIME_NAME.match(qualname)
    if m is None:
        return None
    path = "".join(f"/{_PATH_NAMES[k]}/{i}" for k, i in _CODE_PART.findall(m["code"]))
    return RuntimeName(m["name"], int(m["serial"]), m["identity"], path)


def _path_code(path: str) -> str | None:
    parts = path.strip("/").split("/")
    if len(parts) % 2 or not parts:
        return None
    out = []
    for key, index in zip(parts[::2], parts[1::2]):
        code = _PATH_CODES.get(key)
        if code is None or not index.isdigit():
            return None
        out.append(f"{code}{index}")
    return "".join(out)


def _origin_of(source: Any, sha256: str | None) -> tuple[str, str | None]:
    """How a schema made from ``source`` pickles: ``("path", file)``, ``("url", url)``,
    ``("default", version)`` (the embedded metainfo: every process has it), ``("json", None)``."""
    if isinstance(source, Environment) and source.source == SOURCE_LABEL:
        return "default", SOURCE_LABEL
    if isinstance(source, (str, Path)):
        text = str(source)
        if text.startswith(("http://", "https://")):
            return "url", text
        if sha256 is not None:
            return "path", str(Path(source).resolve())
    return "json", None


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:  # what only the stdlib writes (lone surrogates)
        return json.loads(data)


def _generated_name(schema: Schema) -> str | None:
    return schema.generated.__name__ if schema.generated is not None else None


def find_schema(serial: int, identity_prefix: str) -> Schema | None:
    """A schema alive in this process, for a run-time class name (see :mod:`archivemap.archive.runtime`).

    The schema with that serial number when its identity matches (the very schema that made
    the class, in the process that made it), else any schema of that identity (the one an
    unpickled section or schema brought, in another process); ``None`` when none is known.
    """
    found = _live.get(serial)
    if found is not None and found.identity.startswith(identity_prefix):
        return found
    with _registry_lock:
        candidates = list(_by_identity.items())
    for (identity, generated), schema in sorted(candidates, key=lambda kv: kv[0][1] is not None):
        if identity.startswith(identity_prefix):
            return schema
    return None


def _rebuild_schema(
    process: str, serial: int, identity: str, kind: str, payload: Any, generated: str | None
) -> Schema:
    """Unpickle a schema: the same object in the same process, else one per identity."""
    if process == _PROCESS:
        found = _live.get(serial)
        if found is not None:
            return found
    key = (identity, generated)
    with _registry_lock:
        found = _by_identity.get(key)
        if found is not None:
            return found
        if kind == "path":
            path, sha = payload
            try:
                data = Path(path).read_bytes()
            except OSError as exc:
                raise SchemaSourceChangedError(
                    f"cannot read the metainfo file {path} a pickled schema was made from: {exc}"
                ) from None
            now = hashlib.sha256(data).hexdigest()
            if now != sha:
                raise SchemaSourceChangedError(
                    f"the metainfo file {path} changed since the schema was pickled "
                    f"(sha256 {sha[:12]}… then, {now[:12]}… now)"
                )
            schema = as_schema(path) if generated is None else Schema(path, classes=generated)
            if schema.source_sha256 != sha:  # as_schema remembered an older version of the file
                schema = Schema(path, classes=generated)
        elif kind == "url":
            schema = as_schema(payload) if generated is None else Schema(payload, classes=generated)
        elif kind == "default":
            if payload != SOURCE_LABEL:
                raise SchemaSourceChangedError(
                    f"a schema of the {payload} was pickled; this installation embeds the {SOURCE_LABEL}"
                )
            schema = as_schema(default_environment()) if generated is None else Schema(default_environment(), classes=generated)
        else:
            schema = Schema(_loads(zlib.decompress(payload)), classes=generated)
            schema._identity, schema._packed = identity, payload
        _unpickled[key] = schema
        _by_identity.setdefault(key, schema)
        return schema
