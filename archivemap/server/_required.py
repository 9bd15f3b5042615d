"""NOMAD's ``required`` reader over plain archive dicts (spec §4).

This reproduces ``nomad.archive.required.RequiredReader`` (2.0.0) without the metainfo: the
same directives, index compaction and clamping quirks, reference following with placement at
the original path, ``m_ref_archives`` for other entries and the same error answers. Where
NOMAD consults definitions, a pragmatic rule stands in:

* a ``spec`` (dict) that meets a string treats it as a reference, exactly like NOMAD does
  (strings that are no reference come back unchanged);
* ``include-resolved`` resolves strings that look like references: ``#/...``, the archive
  URL forms of ``parse_path``, and legacy ``/a/b`` paths whose first segment is a key of the
  archive root (so a plain ``/home/...`` file path stays a string);
* keys starting with ``m_`` are never properties (NOMAD keeps ``m_def`` and drops the rest
  when it walks a section).

Archives are shared between requests and never copied: ``"*"`` hands out the original
subtrees, and :func:`_place` copies a container before it writes into it.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping
from typing import Any, Protocol

from archivemap.server._problems import ApiProblem, validation_problem
from archivemap.server._refs import parse_reference_url

__all__ = ["ArchiveLookup", "read_required", "split_required"]

_logger = logging.getLogger("archivemap.server")

# NOMAD's _query_archive_key_pattern: name, optional [i] or [a:b]
_KEY_PATTERN = re.compile(r"^([\s\w\-]+)(\[([-?0-9]*)(:([-?0-9]*))?])?$")
_DIRECTIVES_INCLUDE = ("*", "include")
_INCLUDE_RESOLVED = "include-resolved"

Index = int | tuple[int, int | None] | None


class ArchiveLookup(Protocol):
    """Where the reader finds the archives that cross-entry references point to."""

    def archive_for(self, entry_id: str) -> tuple[Mapping[str, Any], str | None] | None:
        """Return ``(archive, upload_id)`` of an entry, or None when it does not exist."""

    def entry_id_for_mainfile(self, upload_id: str | None, mainfile: str) -> str | None:
        """Return the id of the entry with that mainfile in that upload, or None."""


class _UnresolvableError(Exception):
    """A reference whose path does not exist; NOMAD logs it and omits the key."""


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


def split_required(required: Any) -> tuple[Any, bool]:
    """Validate the top level of ``required`` and take ``resolve-inplace`` out of it.

    Args:
        required: the body's ``required`` value (a directive string or a spec dict).

    Returns:
        ``(spec, resolve_inplace)``; the caller's dict is not modified.

    Raises:
        ApiProblem: 422 for a ``required`` that is neither string nor object, or a
            ``resolve-inplace`` that is not a boolean.
    """
    if isinstance(required, str):
        return required, False
    if not isinstance(required, dict):
        raise validation_problem(
            ["body", "required"],
            "Input should be a valid string or a valid dictionary",
            "union_type",
            required,
        )
    spec = dict(required)
    inplace = spec.pop("resolve-inplace", None)
    if inplace is None:
        return spec, False
    if not isinstance(inplace, bool):
        raise validation_problem(["required", "resolve-inplace"], "resolve-inplace is not a bool")
    return spec, inplace


def read_required(
    required: Any,
    archive: Mapping[str, Any],
    *,
    entry_id: str,
    upload_id: str | None,
    lookup: ArchiveLookup | None = None,
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

    Returns:
        The partial archive with ``m_ref_archives`` (always present, ``{}`` when no other
        entry was visited). Parts of it are shared with ``archive``: serialise, don't mutate.

    Raises:
        ApiProblem: 400 for an unknown directive, a list index on a non-list or a remote
            reference with ``resolve-inplace``; 422 for bad key syntax or a non-boolean
            ``resolve-inplace``.
        RecursionError: ``include-resolved`` over a reference cycle inside one entry (NOMAD
            answers this with a 500, and so does the server).
    """
    spec, inplace = split_required(required)
    result_root: dict[str, Any] = {}
    ref_result_root: dict[str, dict[str, Any]] = {}
    context = _Context(entry_id, upload_id, "", result_root, ref_result_root, archive, frozenset())
    result = _Reader(inplace, lookup).apply(spec, archive, context)
    if isinstance(result, Mapping):
        # Collision rule (§4.5): explicitly requested top-level keys overwrite placed targets.
        result_root.update(result)
    refs = {url: part for url, part in ref_result_root.items() if part}
    for part in refs.values():
        part.setdefault("m_def", "nomad.datamodel.EntryArchive")
    result_root["m_ref_archives"] = refs
    return result_root


def _parse_key(key: str) -> tuple[str, Index]:
    """Split ``name``, ``name[i]`` or ``name[a:b]``; bad syntax is NOMAD's 422."""
    stripped = key.strip()
    match = _KEY_PATTERN.match(stripped)
    if match is None:
        raise validation_problem([key], "invalid required key")
    name = match.group(1)
    if match.group(2) is None:
        return name, None
    try:
        first = None if match.group(3) == "" else int(match.group(3))
        if match.group(4) is None:
            return name, first
        last = None if match.group(5) == "" else int(match.group(5))
    except ValueError:
        # e.g. "name[1-2]": the pattern lets it through, int() does not (NOMAD: a 500).
        raise validation_problem([key], "invalid required key") from None
    return name, (0 if first is None else first, last)


def _fix_index(index: int | None, length: int) -> int | None:
    if index is None:
        return None
    return max(-length, index) if index < 0 else min(length, index)


def _extract_child(item: Mapping[str, Any], prop: str, index: Index) -> Any:
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


class _Reader:
    """One ``required`` application; holds the flags and the include-resolved stack."""

    def __init__(self, resolve_inplace: bool, lookup: ArchiveLookup | None) -> None:
        self.resolve_inplace = resolve_inplace
        self.lookup = lookup
        self._resolving: set[tuple[str, str, int]] = set()

    def apply(self, required: Any, item: Any, context: _Context) -> Any:
        """NOMAD's ``_apply_required`` for one archive item."""
        if item is None:
            return None
        if isinstance(required, str):
            if required == _INCLUDE_RESOLVED:
                if isinstance(item, str):
                    return self.resolve_ref(required, item, context)
                if isinstance(item, Mapping):
                    return self.resolve_all(item, context)
                return item
            if required in _DIRECTIVES_INCLUDE:
                return item
            raise ApiProblem(400, f"unknown directive {required}")
        if not isinstance(required, dict):
            raise ApiProblem(400, f"unknown directive {required}")
        if isinstance(item, str):
            return self.resolve_ref(required, item, context)
        if not isinstance(item, Mapping):
            # A spec on a plain value: NOMAD would fail on its definitions; keep the value.
            return item

        result: dict[str, Any] = {}
        if "m_def" in item:
            result["m_def"] = item["m_def"]
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
        item: Mapping[str, Any],
        prop: str,
        index: Index,
        value: Any,
        context: _Context,
    ) -> None:
        if prop.startswith("m_"):
            return
        try:
            child = _extract_child(item, prop, index)
            if isinstance(child, list):
                result[prop] = [self.apply(value, element, context) for element in child]
            else:
                result[prop] = self.apply(value, child, context)
        except _UnresolvableError as error:
            _logger.debug("required: %s at %s in entry %s", error, prop, context.entry_id)
        except (KeyError, IndexError):
            pass

    def resolve_all(self, item: Mapping[str, Any], context: _Context) -> dict[str, Any]:
        """NOMAD's ``_resolve_refs``: a subtree with every reference resolved recursively."""
        result: dict[str, Any] = {}
        if "m_def" in item:
            result["m_def"] = item["m_def"]
        for prop, value in item.items():
            if prop.startswith("m_"):
                continue
            try:
                if isinstance(value, Mapping):
                    result[prop] = self.resolve_all(value, context)
                elif isinstance(value, str):
                    result[prop] = (
                        self.resolve_ref(_INCLUDE_RESOLVED, value, context)
                        if self._looks_like_reference(value, context)
                        else value
                    )
                elif isinstance(value, list) and value:
                    result[prop] = self._resolve_list(value, context)
                else:
                    result[prop] = value
            except _UnresolvableError as error:
                _logger.debug("required: %s at %s in entry %s", error, prop, context.entry_id)
        return result

    def _resolve_list(self, value: list[Any], context: _Context) -> list[Any]:
        if any(isinstance(element, Mapping) for element in value):
            return [
                self.resolve_all(element, context) if isinstance(element, Mapping) else element
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
        entry_id = parsed.entry_id
        if parsed.installation is None and self.lookup is not None:
            if entry_id is None or (
                parsed.mainfile is not None and self.lookup.archive_for(entry_id) is None
            ):
                entry_id = self.lookup.entry_id_for_mainfile(parsed.upload_id, parsed.mainfile or "")
        if entry_id is not None and entry_id == context.entry_id:
            return self._resolve_local(required, parsed.fragment, context, same_entry=True)
        if parsed.installation is not None:
            if self.resolve_inplace:
                raise ApiProblem(
                    400, f"resolvable reference to remote archive not implemented: {path}"
                )
            return path

        visit = f"{entry_id}{parsed.fragment}"
        if entry_id is None or visit in context.visited or self.lookup is None:
            return path
        found = self.lookup.archive_for(entry_id)
        if found is None:
            return path  # §3.5: a missing entry leaves the string unchanged
        other_archive, other_upload_id = found
        upload_id = other_upload_id or parsed.upload_id
        other_url = f"../uploads/{upload_id}/archive/{entry_id}"
        if self.resolve_inplace:
            result_root = context.result_root
        else:
            result_root = context.ref_result_root.setdefault(other_url, {})
        other = dataclasses.replace(
            context,
            entry_id=entry_id,
            upload_id=upload_id,
            path_prefix=f"{other_url}#",
            visited=context.visited | {visit},
            archive_root=other_archive,
            result_root=result_root,
        )
        return self._resolve_local(required, parsed.fragment, other, same_entry=False)

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

        if required == _INCLUDE_RESOLVED:
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
