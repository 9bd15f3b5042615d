"""NOMAD's ``required`` reader over plain archive dicts (spec §4).

This follows ``nomad.archive.required.RequiredReader`` of nomad-lab 2.0.0 step by step: the
same directives, index compaction and clamping quirks, reference following with placement at
the original path, ``m_ref_archives`` for other entries, and the same answers where NOMAD
fails (a 400/422 for bad specs; the same exception, hence the same 500, where NOMAD's code
raises one, e.g. a ``spec`` on a JSON quantity or ``include-resolved`` on a number).

NOMAD walks along definitions. With a :class:`~archivemap.server._schema.Schema` (read from a
metainfo export) this reader does too: keys the schema lacks are skipped, ``m_def`` switches
the definition (built-in Python names, ``#/definitions/...`` of the archive itself, other
entries' schemas by URL or ``entry_id:``), only reference quantities are resolved by
``include-resolved``, and generically typed references match nothing. Without a schema
("open" definitions) a pragmatic rule stands in:

* every key is a property, except keys starting with ``m_`` (NOMAD keeps ``m_def``);
* ``include-resolved`` resolves strings that look like references: ``#/...``, the archive
  URL forms of ``parse_path``, and legacy ``/a/b`` paths whose first segment is a key of the
  archive root (so a plain ``/home/...`` file path stays a string), except in metadata keys
  known to hold plain paths (``entry_references[].target_path`` ...);
* a ``spec`` meeting a plain value keeps the value.

Archives are shared between requests and never copied: ``"*"`` hands out the original
subtrees, and :func:`_place` copies a container before it writes into it.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
from collections.abc import Mapping
from typing import Any, Union

from archivemap.server._problems import ApiProblem, validation_problem
from archivemap.server._refs import ArchiveLookup, parse_reference_url
from archivemap.server._schema import (
    PLAIN,
    PackageDefinitions,
    QuantityDef,
    Schema,
    SectionDef,
    SubSectionDef,
)

__all__ = ["ArchiveLookup", "Definitions", "read_required", "split_required"]

_logger = logging.getLogger("archivemap.server")

# NOMAD's _query_archive_key_pattern: name, optional [i] or [a:b]
_KEY_PATTERN = re.compile(r"^([\s\w\-]+)(\[([-?0-9]*)(:([-?0-9]*))?])?$")
_ENTRY_ID_DEFINITION = re.compile(r"entry_id:(.+)(?:\.(.+))+")
_DIRECTIVES_INCLUDE = ("*", "include")
_INCLUDE_RESOLVED = "include-resolved"
# Without a schema: string quantities of NOMAD's metadata that hold paths, not references.
_PLAIN_PATH_KEYS = frozenset({"target_path", "source_path", "path_archive", "target_reference", "section_definition"})

Index = Union[int, tuple[int, Union[int, None]], None]
#: What the reader walks along: a section, a quantity, or None for "no schema knowledge".
Definition = Union[SectionDef, QuantityDef, None]


class _UnresolvableError(Exception):
    """A reference whose path does not exist; NOMAD logs it and omits the key."""


def _as_nomad(error: Exception, explanation: str) -> Exception:
    """Mark an exception NOMAD's reader raises too; the 500 answer carries the explanation."""
    setattr(error, "nomad_explanation", explanation)  # noqa: B010 - an attribute, not a slot
    return error


class Definitions:
    """Resolves definition names (``m_def`` values, custom schema references) to sections.

    One per server: custom packages (an archive's ``definitions``) are built once and cached.

    Args:
        schema: the built-in definitions.
        lookup: finds other entries, for schemas that live in another entry.
    """

    def __init__(self, schema: Schema, lookup: ArchiveLookup | None = None) -> None:
        self.schema = schema
        self.lookup = lookup
        self._packages: dict[tuple[int, str | None], tuple[Mapping[str, Any], PackageDefinitions]] = {}
        self._lock = threading.Lock()

    def package(self, archive: Any, entry_id: str | None, upload_id: str | None) -> PackageDefinitions | None:
        """The custom package of an archive (its ``definitions``), or None."""
        raw = archive.get("definitions") if isinstance(archive, Mapping) else None
        if not isinstance(raw, Mapping):
            return None
        key = (id(raw), upload_id)
        with self._lock:
            cached = self._packages.get(key)
            if cached is None:
                package = PackageDefinitions(
                    raw,
                    f"entry_id:{entry_id}",
                    lambda ref: self.resolve(ref, archive, entry_id, upload_id, package),
                )
                cached = (raw, package)  # keeps `raw` alive, so its id stays unique
                self._packages[key] = cached
            return cached[1]

    def resolve(
        self,
        ref: str,
        archive: Any,
        entry_id: str | None,
        upload_id: str | None,
        package: PackageDefinitions | None = None,
    ) -> SectionDef | None:
        """The section a definition reference names, or None when it cannot be found.

        Args:
            ref: ``#/definitions/...``, an archive URL with a ``/definitions/...`` fragment,
                ``entry_id:<id>.<Section>``, a Python qualified name, or (inside a custom
                package) a short section name.
            archive: the archive the reference was found in.
            entry_id: that archive's entry id.
            upload_id: that archive's upload id.
            package: the custom package the reference was found in, if any.
        """
        ref = ref.split("@")[0]
        if ref.startswith(("#/", "/")):
            local = package or self.package(archive, entry_id, upload_id)
            segments = [part for part in ref.split("/") if part not in ("", "#", "definitions")]
            return None if local is None else local.section_at(segments)
        match = _ENTRY_ID_DEFINITION.match(ref)
        if match is not None:
            other = self.lookup.archive_for(match.group(1)) if self.lookup is not None else None
            if other is None:
                return None
            other_package = self.package(other[0], match.group(1), other[1])
            return None if other_package is None else other_package.section_named(match.group(2))
        parsed = parse_reference_url(ref, upload_id)
        if parsed is not None:
            if parsed.installation is not None or self.lookup is None:
                return None
            target = parsed.entry_id
            if target is None and parsed.mainfile is not None:
                target = self.lookup.entry_id_for_mainfile(parsed.upload_id, parsed.mainfile)
            found = None if target is None else self.lookup.archive_for(target)
            if found is None:
                return None
            other_package = self.package(found[0], target, found[1])
            segments = [part for part in parsed.fragment.split("/") if part not in ("", "definitions")]
            return None if other_package is None else other_package.section_at(segments)
        section = self.schema.section(ref)
        if section is None and package is not None and "." not in ref:
            section = package.section_named(ref)
        return section


def split_required(required: Any) -> tuple[Any, bool]:
    """Validate the top level of ``required`` and take ``resolve-inplace`` out of it.

    Args:
        required: the body's ``required`` value (a directive string or a spec dict).

    Returns:
        ``(spec, resolve_inplace)``; the caller's dict is not modified.

    Raises:
        ApiProblem: 422 for a ``required`` that is neither string nor object (pydantic's
            two union items), or a ``resolve-inplace`` that is not a boolean.
    """
    if isinstance(required, str):
        return required, False
    if not isinstance(required, dict):
        raise ApiProblem(
            422,
            [
                {"type": "string_type", "loc": ["body", "required", "str"], "msg": "Input should be a valid string", "input": required},
                {"type": "dict_type", "loc": ["body", "required", "dict[str,any]"], "msg": "Input should be a valid dictionary", "input": required},
            ],
        )
    spec = dict(required)
    inplace = spec.pop("resolve-inplace", None)
    if inplace is None:
        return spec, False
    if not isinstance(inplace, bool):
        raise validation_problem(["required", "resolve-inplace"], "resolve-inplace is not a bool")
    return spec, inplace


@dataclasses.dataclass(frozen=True)
class _Context:
    """Where the reader is: NOMAD's ``RequiredReferencedArchive``."""

    entry_id: str
    upload_id: str | None
    path_prefix: str
    result_root: dict[str, Any]
    ref_result_root: dict[str, dict[str, Any]]
    archive_root: Any
    visited: frozenset[str]
    definition: Definition


def read_required(
    required: Any,
    archive: Mapping[str, Any],
    *,
    entry_id: str,
    upload_id: str | None,
    lookup: ArchiveLookup | None = None,
    definitions: Definitions | None = None,
) -> dict[str, Any]:
    """Apply a ``required`` specification to one archive, as NOMAD's server does.

    Args:
        required: ``"*"``, another directive, or a spec dict (may contain
            ``"resolve-inplace"``).
        archive: the full archive dict; it is read, never modified.
        entry_id: the archive's entry id (decides which references are same-entry).
        upload_id: the archive's upload id (relative ``../upload/...`` references use it).
        lookup: finds other entries' archives for cross-entry references; without it such
            references stay unchanged strings, as for a missing entry.
        definitions: the schema to walk along; None reads "open" (no schema knowledge).

    Returns:
        The partial archive with ``m_ref_archives`` (always present, ``{}`` when no other
        entry was visited). Parts of it are shared with ``archive``: serialise, don't mutate.

    Raises:
        ApiProblem: 400 for an unknown directive, a list index on a non-list or a remote
            reference with ``resolve-inplace``; 422 for bad key syntax or a non-boolean
            ``resolve-inplace``.
        Exception: where NOMAD's reader raises (the server answers 500 like NOMAD), e.g.
            ``ValueError`` for ``name[1-2]``, ``AttributeError`` for a spec on a JSON
            quantity, ``RecursionError`` for ``include-resolved`` over a reference cycle.
    """
    spec, inplace = split_required(required)
    result_root: dict[str, Any] = {}
    ref_result_root: dict[str, dict[str, Any]] = {}
    root: Definition = None if definitions is None else definitions.schema.entry_archive
    context = _Context(entry_id, upload_id, "", result_root, ref_result_root, archive, frozenset(), root)
    result = _Reader(inplace, lookup, definitions).apply(spec, archive, context)
    if isinstance(result, Mapping):
        # Collision rule (§4.5): explicitly requested top-level keys overwrite placed targets.
        result_root.update(result)
    refs = {url: part for url, part in ref_result_root.items() if part}
    for part in refs.values():
        part.setdefault("m_def", "nomad.datamodel.EntryArchive")
    result_root["m_ref_archives"] = refs
    return result_root


def _parse_key(key: str) -> tuple[str, Index]:
    """Split ``name``, ``name[i]`` or ``name[a:b]``; bad syntax is NOMAD's 422.

    Index text the pattern lets through but ``int()`` rejects (``name[1-2]``) raises
    ``ValueError``, as in NOMAD (a 500).
    """
    stripped = key.strip()
    match = _KEY_PATTERN.match(stripped)
    if match is None:
        raise ApiProblem(422, [{"msg": "invalid required key", "loc": [stripped]}])
    name = match.group(1)
    if match.group(2) is None:
        return name, None
    try:
        first = None if match.group(3) == "" else int(match.group(3))
        if match.group(4) is None:
            return name, first
        last = None if match.group(5) == "" else int(match.group(5))
    except ValueError as error:
        raise _as_nomad(
            error,
            f"The index of the required key {key!r} passes NOMAD's key pattern but is no integer "
            "(NOMAD's _extract_key_and_index calls int() on it).",
        ) from None
    return name, (0 if first is None else first, last)


def _fix_index(index: int | None, length: int) -> int | None:
    if index is None:
        return None
    return max(-length, index) if index < 0 else min(length, index)


def _extract_child(item: Any, prop: str, index: Index) -> Any:
    """NOMAD's ``_extract_child``: select by index, compacting the result into a list."""
    child = item[prop]
    is_list = isinstance(child, list)
    if index is None:
        return child
    if not is_list:
        raise ApiProblem(400, f"cannot use list key on none list {prop}")
    length = len(child)
    if isinstance(index, tuple):
        start, stop = _fix_index(index[0], length), _fix_index(index[1], length)
        if start == stop:  # the [k:k] quirk: one item, IndexError when k is past the end
            return [child[start]]
        return child[start:stop]
    return [child[_fix_index(index, length)]]


def _unwrap(prop: Any) -> Definition:
    """NOMAD's ``_unwrap_reference``: the definition a property's values are read with."""
    if isinstance(prop, SubSectionDef):
        return prop.section
    if isinstance(prop, QuantityDef) and prop.kind != PLAIN:
        return prop.target
    return prop  # type: ignore[no-any-return]


class _Reader:
    """One ``required`` application; holds the flags and the include-resolved stack."""

    def __init__(self, resolve_inplace: bool, lookup: ArchiveLookup | None, definitions: Definitions | None) -> None:
        self.resolve_inplace = resolve_inplace
        self.lookup = lookup
        self.definitions = definitions
        self._resolving: set[tuple[str, str, int]] = set()

    # -- definitions ---------------------------------------------------------------------

    def _switch(self, m_def: Any, context: _Context) -> _Context:
        """NOMAD's ``_resolve_definition``: the definition named by an ``m_def`` value."""
        if self.definitions is None:
            return context
        name = str(m_def).split("@")[0]
        if name.startswith(("#/", "/")) and not (
            isinstance(context.archive_root, Mapping) and "definitions" in context.archive_root
        ):
            raise KeyError("definitions")  # NOMAD reads archive_root['definitions']
        section = self.definitions.resolve(name, context.archive_root, context.entry_id, context.upload_id)
        if section is None:
            declared = context.definition
            # A Python name that moved (NOMAD imports the module; the export keys sections by
            # package): keep the declared definition when it has the same class name.
            if isinstance(declared, SectionDef) and declared.name == name.rsplit(".", 1)[-1]:
                return context
            raise _as_nomad(
                AttributeError("'NoneType' object has no attribute 'm_root'"),
                f"The archive names a section definition that cannot be found: m_def {name!r} "
                "(NOMAD's _resolve_definition fails on it before applying the spec).",
            )
        return dataclasses.replace(context, definition=section)

    # -- NOMAD's _apply_required ---------------------------------------------------------

    def apply(self, required: Any, item: Any, context: _Context) -> Any:
        """NOMAD's ``_apply_required`` for one archive item."""
        if item is None:
            return None
        result: dict[str, Any] = {}
        if isinstance(item, Mapping) and "m_def" in item:
            context = self._switch(item["m_def"], context)
            result["m_def"] = item["m_def"]
        if isinstance(required, str):
            if required == _INCLUDE_RESOLVED:
                if isinstance(item, str):
                    return self.resolve_ref(required, item, context)
                return self.resolve_all(context.definition, item, context)
            if required in _DIRECTIVES_INCLUDE:
                return item
            raise ApiProblem(400, f"unknown directive {required}")
        if isinstance(item, str):
            return self.resolve_ref(required, item, context)
        if not isinstance(required, dict):
            raise _as_nomad(
                AssertionError(),
                f"The spec {required!r} is neither a directive string nor an object "
                "(NOMAD's _apply_required asserts a dict once it meets data).",
            )
        if context.definition is None and not isinstance(item, Mapping):
            return item  # open reading: a spec on a plain value keeps it

        if "*" not in required:
            for key, value in required.items():
                if value != "exclude":
                    prop, index = _parse_key(key)
                    self._child(result, item, prop, index, value, context)
            return result

        overrides: dict[str, tuple[Index, Any]] = {}
        for key, value in required.items():
            if key != "*":
                prop, index = _parse_key(key)
                overrides[prop] = (index, value)
        default = required["*"]
        for prop in item:
            index, value = overrides.get(prop, (None, default))
            if value != "exclude" or prop not in overrides:
                # A "*": "exclude" default reaches apply() and fails like NOMAD's (§4.8 E8).
                self._child(result, item, prop, index, value, context)
        return result

    def _child(
        self,
        result: dict[str, Any],
        item: Any,
        prop: str,
        index: Index,
        value: Any,
        context: _Context,
    ) -> None:
        definition = context.definition
        if definition is None:
            if prop.startswith("m_"):
                return
            child_definition: Definition = None
        elif isinstance(definition, QuantityDef):
            raise _as_nomad(
                AttributeError("all_properties"),
                f"The spec asks for {prop!r} inside the quantity {definition.name!r}, which is "
                "not a section or reference (NOMAD looks up all_properties on its definition).",
            )
        else:
            prop_def = definition.all_properties.get(prop)
            if prop_def is None:
                return
            child_definition = _unwrap(prop_def)
        child_context = dataclasses.replace(context, definition=child_definition)
        try:
            child = _extract_child(item, prop, index)
            if isinstance(child, list):
                result[prop] = [self.apply(value, element, child_context) for element in child]
            else:
                result[prop] = self.apply(value, child, child_context)
        except _UnresolvableError as error:
            _logger.debug("required: %s at %s in entry %s", error, prop, context.entry_id)
        except (KeyError, IndexError):
            pass

    # -- NOMAD's _resolve_refs -----------------------------------------------------------

    def resolve_all(self, definition: Definition, item: Any, context: _Context) -> Any:
        """NOMAD's ``_resolve_refs``: a subtree with every reference resolved recursively."""
        if isinstance(definition, QuantityDef):
            # NOMAD reads the quantity's value out of the item (a quirk: it is the value
            # already), so dicts lose the key (KeyError) and numbers fail (TypeError).
            try:
                return item[definition.name]
            except (TypeError, IndexError) as error:
                raise _as_nomad(
                    error,
                    f"'include-resolved' was applied to the plain quantity {definition.name!r} "
                    "(NOMAD's _resolve_refs subscripts its value with the quantity name).",
                ) from None
        if definition is None:
            return self._resolve_all_open(item, context)
        section = definition
        result: dict[str, Any] = {}
        if "m_def" in item:
            switched = self._switch(item["m_def"], dataclasses.replace(context, definition=definition)).definition
            section = switched if isinstance(switched, SectionDef) else definition
            result["m_def"] = item["m_def"]
        properties = section.all_properties
        for prop, value in item.items():
            prop_def = properties.get(prop)
            if prop_def is None:
                continue
            try:
                if isinstance(prop_def, SubSectionDef):
                    target = prop_def.section
                    result[prop] = (
                        [self.resolve_all(target, element, context) for element in value]
                        if isinstance(value, list)
                        else self.resolve_all(target, value, context)
                    )
                elif prop_def.kind != PLAIN:
                    ref_context = dataclasses.replace(context, definition=prop_def.target)
                    result[prop] = (
                        [self.resolve_ref(_INCLUDE_RESOLVED, element, ref_context) for element in value]
                        if isinstance(value, list)
                        else self.resolve_ref(_INCLUDE_RESOLVED, value, ref_context)
                    )
                else:
                    result[prop] = value
            except _UnresolvableError as error:
                _logger.debug("required: %s at %s in entry %s", error, prop, context.entry_id)
        return result

    def _resolve_all_open(self, item: Any, context: _Context) -> Any:
        if not isinstance(item, Mapping):
            return item
        result: dict[str, Any] = {}
        if "m_def" in item:
            result["m_def"] = item["m_def"]
        for prop, value in item.items():
            if prop.startswith("m_"):
                continue
            try:
                if isinstance(value, Mapping):
                    result[prop] = self._resolve_all_open(value, context)
                elif isinstance(value, str):
                    result[prop] = (
                        self.resolve_ref(_INCLUDE_RESOLVED, value, context)
                        if prop not in _PLAIN_PATH_KEYS and self._looks_like_reference(value, context)
                        else value
                    )
                elif isinstance(value, list) and value:
                    result[prop] = self._resolve_list_open(value, context)
                else:
                    result[prop] = value
            except _UnresolvableError as error:
                _logger.debug("required: %s at %s in entry %s", error, prop, context.entry_id)
        return result

    def _resolve_list_open(self, value: list[Any], context: _Context) -> list[Any]:
        if any(isinstance(element, Mapping) for element in value):
            return [
                self._resolve_all_open(element, context) if isinstance(element, Mapping) else element
                for element in value
            ]
        if all(isinstance(element, str) for element in value) and any(
            self._looks_like_reference(element, context) for element in value
        ):
            return [self.resolve_ref(_INCLUDE_RESOLVED, element, context) for element in value]
        return value

    @staticmethod
    def _looks_like_reference(value: str, context: _Context) -> bool:
        if value.startswith("#/"):
            return True
        if value.startswith("/") and not value.startswith(("/entries", "/uploads")):
            first = value[1:].split("/", 1)[0]
            return isinstance(context.archive_root, Mapping) and first in context.archive_root
        return parse_reference_url(value, context.upload_id) is not None

    # -- NOMAD's _resolve_ref and _resolve_ref_local -------------------------------------

    def resolve_ref(self, required: Any, path: str, context: _Context) -> Any:
        """NOMAD's ``_resolve_ref``: follow one reference string under ``required``."""
        if not path.startswith(("/entries", "/uploads")):
            if path.startswith("/"):
                return self._resolve_local(required, path, context, same_entry=True)
            if path.startswith("#/"):
                return self._resolve_local(required, path[1:], context, same_entry=True)
        parsed = parse_reference_url(path, context.upload_id)
        if parsed is None:
            return path
        # NOMAD's `entry_id` of a raw-file reference is the mainfile: it keys the visit and
        # m_ref_archives with it, and never takes it for the current entry.
        target = parsed.entry_id if parsed.kind == "archive" else parsed.mainfile
        if target is not None and target == context.entry_id:
            return self._resolve_local(required, parsed.fragment, context, same_entry=True)
        if parsed.installation is not None:
            if self.resolve_inplace:
                raise ApiProblem(400, f"resolvable reference to remote archive not implemented: {path}")
            return path
        if target is None or self.lookup is None:
            return path
        visit = f"{target}{parsed.fragment}"
        if visit in context.visited:
            return path
        found = self._retrieve(parsed.kind, target, parsed.upload_id, parsed.mainfile)
        if found is None:
            return path  # §3.5: a missing entry leaves the string unchanged
        other_archive, target = found
        other_url = f"../uploads/{parsed.upload_id}/archive/{target}"
        result_root = (
            context.result_root if self.resolve_inplace else context.ref_result_root.setdefault(other_url, {})
        )
        other = dataclasses.replace(
            context,
            entry_id=target,
            upload_id=parsed.upload_id,
            path_prefix=f"{other_url}#",
            visited=context.visited | {visit},
            archive_root=other_archive,
            result_root=result_root,
        )
        return self._resolve_local(required, parsed.fragment, other, same_entry=False)

    def _retrieve(
        self, kind: str, target: str, upload_id: str | None, mainfile: str | None
    ) -> tuple[Mapping[str, Any], str] | None:
        """NOMAD's ``_retrieve_archive``: ``(archive, key)`` of another entry, or None."""
        assert self.lookup is not None
        if kind == "raw":
            entry_id = self.lookup.entry_id_for_mainfile(upload_id, target)
            found = None if entry_id is None else self.lookup.archive_for(entry_id)
            return None if found is None else (found[0], target)
        found = self.lookup.archive_for(target)
        if found is None and mainfile is not None:
            # ``archive/mainfile/<path>``: NOMAD computes the id; entries served under other
            # ids (synthetic test stores) are found by their mainfile instead.
            entry_id = self.lookup.entry_id_for_mainfile(upload_id, mainfile)
            found = None if entry_id is None else self.lookup.archive_for(entry_id)
            if found is not None and entry_id is not None:
                return found[0], entry_id
        return None if found is None else (found[0], target)

    def _resolve_local(self, required: Any, path: str, context: _Context, same_entry: bool) -> Any:
        """NOMAD's ``_resolve_ref_local``: walk the path, apply, place or return in place."""
        segments = path.strip("/").split("/")
        resolved = context.archive_root
        try:
            for segment in segments:
                # Like NOMAD: only isdigit() segments are indices, so "-1" and key names fail.
                resolved = resolved[int(segment) if segment.isdigit() else segment]
        except Exception:
            raise _UnresolvableError(f"could not resolve reference {path}") from None

        if isinstance(required, str) and isinstance(context.definition, QuantityDef):
            resolved_result = resolved
        elif required == _INCLUDE_RESOLVED:
            frame = (context.entry_id, path, len(context.visited))
            if frame in self._resolving:
                # NOMAD recurses until Python gives up; fail the same way, only sooner.
                raise RecursionError(
                    f"maximum recursion depth exceeded while resolving {path} "
                    f"in entry {context.entry_id} (reference cycle)"
                )
            self._resolving.add(frame)
            try:
                resolved_result = self.apply(required, resolved, context)
            finally:
                self._resolving.discard(frame)
        else:
            resolved_result = self.apply(required, resolved, context)

        if self.resolve_inplace:
            return resolved_result
        _place(context.result_root, segments, resolved_result)
        return path if same_entry else f"{context.path_prefix}{path}"


def _place(root: dict[str, Any], segments: list[str], value: Any) -> None:
    """Write ``value`` at its original archive path, padding lists with None (§4.5).

    Every container on the way is copied before it is written to, because it may be a
    subtree of the shared archive that an earlier ``"*"`` put into the result.
    """
    container: Any = root
    key: Any = None
    position = 0
    while position < len(segments):
        if key is not None:
            container = _writable_child(container, key, dict)
        key = segments[position]
        position += 1
        if position < len(segments) and segments[position].isdigit():
            container = _writable_child(container, key, list)
            key = int(segments[position])
            position += 1
            if len(container) <= key:
                container.extend([None] * (key + 1 - len(container)))
    container[key] = value


def _writable_child(container: Any, key: Any, kind: type) -> Any:
    existing = container[key] if isinstance(container, list) else container.get(key)
    fresh = kind(existing) if isinstance(existing, kind) else kind()
    container[key] = fresh
    return fresh
