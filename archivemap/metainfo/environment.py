"""The Environment: every package of a deployment, the lookups over them, and their packed form.

An :class:`Environment` holds the packages of one NOMAD deployment (or of one custom schema on
top of another) and answers what the definition model (:mod:`archivemap.metainfo.model`) and
its readers ask across packages: a package by name, a section by qualified name, any definition
by definition id or by path, and the resolution of a reference in any of the forms of spec §1.8.

Construction is cheap because most of a deployment is never looked at: an Environment builds
its packages and section objects (2,582 for NOMAD 2.0, needed for names, paths and
extensions), while the ~17,000 quantity and sub-section objects are built per section on
first use, and the ids of properties are indexed from the raw dicts on the first id lookup.
Built from a *packed* export instead (:meth:`Environment.pack`, what the disk cache keeps),
it holds each package as a ``marshal`` blob next to an index of names, ids and extensions,
and decodes and builds a package only when a lookup reaches into it: "schema ready" builds
none of NOMAD 2.0's 99 packages, loading a VASP archive 9, and reading its energy about 60
(the class of ``Run`` gathers every code's extension of it). The packed layout
(:data:`PACKED_FORMAT`, :func:`is_packed_export`, :func:`unpack_export`) lives here with
:meth:`Environment.pack` and :meth:`Environment.from_packed`, the one writer and reader of it.
Garbage collection is paused while packages are built and packed: thousands of new objects,
none of them garbage, would otherwise trigger repeated collector scans.

Reading an export from a file or URL is :mod:`archivemap.metainfo.exports`' job; this module
takes the parsed dict.
"""

from __future__ import annotations

import gc
import marshal
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from archivemap.errors import DefinitionError, UnknownDefinitionError
from archivemap.metainfo.model import (
    MAX_ENVIRONMENT_PROPERTIES,
    Definition,
    PackageDef,
    Property,
    QuantityDef,
    SectionDef,
    SubSectionDef,
)

__all__ = [
    "Environment",
    "ExternalResolver",
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

#: Guards the publication of what the environment builds lazily (its raw export, its index of
#: property ids): two threads may build at once, and both must get the same objects.
_BUILD_LOCK = threading.Lock()
#: Guards the count of properties against the budget (one for all environments: a lock held
#: by an environment would make it unpicklable, and the count is a few additions).
_CHARGE_LOCK = threading.Lock()

#: The layout of :meth:`Environment.pack`'s form; a packed export of another layout is refused.
PACKED_FORMAT = "archivemap-packed-export/1"

#: Resolves a definition reference that points into another archive or file
#: (``../upload/raw/x.archive.json#/definitions/section_definitions/0``) to a definition.
ExternalResolver = Callable[[str], Definition]


class Environment:
    """All packages of one NOMAD deployment (or one custom schema on top of another).

    Args:
        data: the exported Environment dict (``{"packages": [...]}``).
        parent: an environment to fall back on for qualified names and ids, used for custom
            schemas carried in an archive's ``definitions`` that build on built-in sections.
        source: a label for error messages (file name or URL).
        external: resolves references into other archives; without it they raise.
        package_path: the definition path of every package in ``data`` (``"/definitions"``
            for an archive's custom package); ``/packages/<i>`` when not given.

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
        self._properties_held = 0  # see charge_properties

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
            if section.extensions:  # not packed: a list from the start, never read from an index
                extensions[section.path] = [ext.path for ext in section.extensions]
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

    def packed_extensions(self, path: str) -> list[SectionDef]:
        """The extensions of the export's section at ``path``, from the packed index.

        Called by :attr:`SectionDef.extensions` on first use, in an environment built by
        :meth:`from_packed`; empty in any other.
        """
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
    def charge_properties(self, section: SectionDef, count: int) -> None:
        """Count a section's effective properties against the environment's budget
        (:data:`~archivemap.metainfo.model.MAX_ENVIRONMENT_PROPERTIES`): called once per
        section, when its properties are first worked out.

        Raises:
            DefinitionError: this section would take the environment past the budget.
        """
        with _CHARGE_LOCK:
            held = self._properties_held + count
            if held > MAX_ENVIRONMENT_PROPERTIES:
                raise DefinitionError(
                    f"the sections of this metainfo hold more than {MAX_ENVIRONMENT_PROPERTIES} "
                    f"properties together, counting inherited ones (at {section.qualified_name}; "
                    "NOMAD 2.0's hold 173,703); refused as hostile",
                    section.path,
                )
            self._properties_held = held

    def register_section(self, section: SectionDef, exported: bool = False) -> None:
        """Index a section its package has just built: called by :class:`PackageDef` only.

        ``exported``: one of the export's own sections (which a packed index already knows),
        not one defined inline and met later.
        """
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
                section: SectionDef | None = pkg.find_section(parts[cut])
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
                local = context.find_section(text.rpartition(".")[2])
                if local is not None and context.name == text.rpartition(".")[0]:
                    return local
            found_q = self.by_qualified_name(text)
            if found_q is not None:
                return found_q
            if "." not in text and context is not None:
                local = context.find_section(text)
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
            found = pkg.find_section(frag)
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


