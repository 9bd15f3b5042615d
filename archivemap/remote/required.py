"""Build NOMAD ``required`` specs from archive paths, merge them, and graft partial answers.

Everything here is a pure function over plain JSON-like dicts; nothing talks HTTP.

The server side of this is NOMAD's ``RequiredReader`` (spec §4). Three of its habits shape
this module:

* Index selections are *compacted*: ``{"run[0]": {"calculation[3]": "*"}}`` comes back as
  ``{"run": [{"calculation": [<calc 3>]}]}``. :func:`graft` puts every item back at its
  original index, padding lists with ``None`` (``None`` always means "not loaded").
* Only one key per property and level counts (the later one wins, §4.3), so two paths into
  ``run[0]`` and ``run[1]`` cannot be sent as two keys. :func:`merge_required` merges them to
  the smallest covering slice ``run[0:2]``; the slice start is the re-anchoring offset and
  it travels inside the spec, so :func:`graft` needs nothing but the spec that was sent.
* Negative indices and key-name segments fail silently on the server (§3.3, §7.4):
  :func:`required_for_path` refuses them and the caller resolves them first.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final, Union

from archivemap._json import MISSING, merge_partial, merged, value_at
from archivemap.archive.references import parse_reference
from archivemap.paths import INT_RE as _INT_RE
from archivemap.paths import Key, Segment, format_archive_path, parse_archive_path

__all__ = [
    "DIRECTIVES",
    "RESOLVE_INPLACE",
    "asks_for",
    "Key",
    "Required",
    "Segment",
    "covers",
    "followed_references",
    "format_archive_path",
    "format_required_key",
    "graft",
    "merge_required",
    "parse_archive_path",
    "parse_required_key",
    "placed_targets",
    "required_for_path",
    "typed_path_spec",
]

#: A ``required`` value: a directive string or a nested spec dict (spec §4.1).
Required = Union[str, dict[str, Any]]

#: The directives ``archive/query`` understands. ``"*"`` and ``"include"`` are synonyms.
DIRECTIVES: Final = frozenset({"*", "include", "include-resolved", "exclude"})

_INCLUDING: Final = frozenset({"*", "include", "include-resolved"})
#: The directive key that makes the server put reference targets in place of references.
RESOLVE_INPLACE: Final = "resolve-inplace"
_RESOLVE_INPLACE: Final = RESOLVE_INPLACE


# --------------------------------------------------------------------------- required keys

_REQUIRED_KEY_RE: Final = re.compile(r"(?P<prop>[^\[\]]+?)(?:\[(?P<sel>[^\[\]]*)\])?\Z")

#: What a key selects of a list: everything (``None``), one index, or a slice.
Selection = Union[None, int, slice]


def parse_required_key(key: str) -> tuple[str, Selection]:
    """Split a ``required`` key into property name and index selection.

    Args:
        key: ``"calculation"``, ``"calculation[3]"``, ``"calculation[-1]"``,
            ``"scf_iteration[1:3]"`` or ``"x[:2]"``.

    Returns:
        ``(name, selection)`` with selection ``None``, an ``int`` or a ``slice``.

    Raises:
        ValueError: the key is not valid ``required`` syntax (the server answers 422).
    """
    match = _REQUIRED_KEY_RE.match(key)
    if match is None:
        raise ValueError(f"invalid required key {key!r}")
    prop, sel = match.group("prop"), match.group("sel")
    if sel is None:
        return prop, None
    if _INT_RE.match(sel.strip()):
        return prop, int(sel)
    parts = sel.split(":")
    if len(parts) != 2 or not all(p.strip() == "" or _INT_RE.match(p.strip()) for p in parts):
        raise ValueError(f"invalid required key {key!r}")
    start, stop = (int(p) if p.strip() else None for p in parts)
    return prop, slice(start, stop)


def format_required_key(prop: str, selection: Selection) -> str:
    """The ``required`` key for a property and a selection (inverse of :func:`parse_required_key`)."""
    if selection is None:
        return prop
    if isinstance(selection, int):
        return f"{prop}[{selection}]"
    start = "" if selection.start is None else str(selection.start)
    stop = "" if selection.stop is None else str(selection.stop)
    return f"{prop}[{start}:{stop}]"


# --------------------------------------------------------------------------- path -> spec


def typed_path_spec(path: Sequence[Segment], typed_from: int, leaf: Required = "*") -> Required:
    """:func:`required_for_path`, with ``m_def`` asked for in every section from position
    ``typed_from`` of ``path`` on.

    An answer omits ``m_def`` unless asked, and a section first learned from an answer needs
    it to get its real class. ``("run", 0, "calculation", 5, "energy")`` from 2 becomes
    ``{"run[0]": {"calculation[5]": {"m_def": "*", "energy": "*"}}}``.
    """
    spec = required_for_path(path, leaf=leaf)
    node: Any = spec
    position = 0
    segments = list(path)
    while position < len(segments) and isinstance(node, dict):
        index = segments[position + 1] if position + 1 < len(segments) else None
        selection = index if isinstance(index, int) else None
        key = format_required_key(str(segments[position]), selection)
        position += 1 if selection is None else 2
        child = node.get(key)
        if isinstance(child, dict) and position < len(segments) and position > typed_from:
            child.setdefault("m_def", "*")
        node = child
    return spec


def required_for_path(path: str | Sequence[Segment], leaf: Required = "*") -> Required:
    """Build the ``required`` spec that downloads exactly one archive path (spec §4.4).

    ``/run/0/calculation/3/energy/total`` becomes
    ``{"run[0]": {"calculation[3]": {"energy": {"total": "*"}}}}``: an index is folded
    into the name before it.

    Args:
        path: an archive path in any form :func:`parse_archive_path` accepts. Every index
            must follow a name (quantity-value indices such as ``labels/3`` are not
            selectable by ``required``; strip them and fetch the whole quantity).
        leaf: what to ask for at the end of the path; ``"*"`` for the whole subtree, or a
            spec such as ``{"name": "*"}`` to list the keys of a repeating sub-section.

    Returns:
        The spec; ``leaf`` itself for the root path.

    Raises:
        ValueError: a negative index or a key-name segment (the server cannot resolve them,
            spec §7.4: resolve them client-side first), or an index not after a name.
    """
    segments = parse_archive_path(path)
    keys: list[str] = []
    position = 0
    while position < len(segments):
        segment = segments[position]
        if isinstance(segment, Key):
            raise ValueError(
                f"key segment [{segment}] in {format_archive_path(segments)!r} cannot be sent "
                "to the server; resolve it to an index first"
            )
        if isinstance(segment, int):
            raise ValueError(f"index {segment} does not follow a name in path {path!r}")
        following = segments[position + 1] if position + 1 < len(segments) else None
        if isinstance(following, int) and not isinstance(following, bool):
            if following < 0:
                raise ValueError(
                    f"negative index {following} in {format_archive_path(segments)!r} cannot "
                    "be sent to the server; resolve it to len + index first"
                )
            keys.append(f"{segment}[{following}]")
            position += 2
        else:
            keys.append(segment)
            position += 1
    spec: Required = copy.deepcopy(leaf)
    for key in reversed(keys):
        spec = {key: spec}
    return spec


# --------------------------------------------------------------------------- merging


def _plan(spec: dict[str, Any]) -> tuple[dict[str, tuple[Selection, Any]], Any]:
    """What a dict spec selects: ``{prop: (selection, sub-spec)}`` plus the ``"*"`` value.

    Later keys for the same property replace earlier ones, as on the server (§4.3).
    """
    props: dict[str, tuple[Selection, Any]] = {}
    wildcard: Any = None
    for key, value in spec.items():
        if key == _RESOLVE_INPLACE:
            continue
        if key == "*":
            wildcard = value
            continue
        prop, selection = parse_required_key(key)
        props.pop(prop, None)  # keep insertion order of the winning key
        props[prop] = (selection, value)
    return props, wildcard


def _rank(spec: Any) -> int:
    """Order directives by how much they download: exclude < spec < * < include-resolved."""
    if spec == "exclude":
        return 0
    if isinstance(spec, dict):
        return 1
    if spec in ("*", "include"):
        return 2
    if spec == "include-resolved":
        return 3
    raise ValueError(f"unknown required directive {spec!r}")


def merge_required(specs: Iterable[Required]) -> Required:
    """Union several ``required`` specs into one, so k paths into one entry cost one request.

    Rules, chosen so the result always downloads *at least* what every input does:

    * ``"exclude"`` adds nothing; ``"*"`` absorbs any dict spec below it;
      ``"include-resolved"`` absorbs everything. (A dict spec that *follows a reference*,
      §4.5, also fetches the target, which ``"*"`` does not; merge such specs separately.)
    * The same property selected with different indices (``run[0]`` and ``run[1]``) cannot be
      two keys on the server — the later one would win. They become the smallest covering
      slice ``run[0:2]`` whose sub-spec is the union of both. The slice start is the offset
      :func:`graft` uses to re-anchor the compacted answer. A sparse pair (``[0]`` and
      ``[900]``) fetches everything in between: split such paths into separate requests.
    * Negative indices cannot be covered by a slice without knowing the list's length, so a
      property selected with a negative index and anything else falls back to the
      unindexed name (all items).
    * ``"*"`` keys (wildcards) are kept; a named key that equals the wildcard is dropped.

    Args:
        specs: the specs to merge (at least one).

    Returns:
        One spec covering all of them.

    Raises:
        ValueError: no specs, an unknown directive, invalid keys, or conflicting
            ``resolve-inplace`` values (they change the answer's shape, not its size).
    """
    result: Any = _NOTHING
    for spec in specs:
        result = copy.deepcopy(spec) if result is _NOTHING else _union(result, spec)
        _rank(result)
    if result is _NOTHING:
        raise ValueError("merge_required needs at least one spec")
    merged: Required = result
    return merged


_NOTHING: Final = object()


def _union(a: Any, b: Any) -> Any:
    rank_a, rank_b = _rank(a), _rank(b)
    if rank_a != 1 or rank_b != 1:
        winner = a if rank_a >= rank_b else b
        return copy.deepcopy(winner)
    return _union_dicts(a, b)


def _union_dicts(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    inplace_a, inplace_b = a.get(_RESOLVE_INPLACE, False), b.get(_RESOLVE_INPLACE, False)
    if inplace_a != inplace_b:
        raise ValueError("cannot merge specs with different resolve-inplace values")
    plan_a, wild_a = _plan(a)
    plan_b, wild_b = _plan(b)
    wildcard: Any = None
    if wild_a is not None and wild_b is not None:
        wildcard = _union(wild_a, wild_b)
    else:
        wildcard = copy.deepcopy(wild_a if wild_a is not None else wild_b)

    merged: dict[str, Any] = {}
    if _RESOLVE_INPLACE in a or _RESOLVE_INPLACE in b:
        merged[_RESOLVE_INPLACE] = inplace_a
    if wildcard is not None:
        merged["*"] = wildcard
    for prop in dict.fromkeys([*plan_a, *plan_b]):
        contributions = [
            c
            for c in (_contribution(plan_a, wild_a, prop), _contribution(plan_b, wild_b, prop))
            if c is not None and c[1] != "exclude"
        ]
        if not contributions:
            if wildcard is not None and wildcard != "exclude":
                merged[prop] = "exclude"
            continue
        selection = _covering_selection([sel for sel, _ in contributions])
        sub: Any = _NOTHING
        for _, value in contributions:
            sub = copy.deepcopy(value) if sub is _NOTHING else _union(sub, value)
        if selection is None and wildcard is not None and sub == wildcard:
            continue
        merged[format_required_key(prop, selection)] = sub
    return merged


def _contribution(
    plan: dict[str, tuple[Selection, Any]], wildcard: Any, prop: str
) -> tuple[Selection, Any] | None:
    if prop in plan:
        return plan[prop]
    if wildcard is not None:
        return None, wildcard
    return None


def _covering_selection(selections: list[Selection]) -> Selection:
    if any(sel is None for sel in selections):
        return None
    first = selections[0]
    if all(sel == first for sel in selections):
        return first
    bounds = [_bounds(sel) for sel in selections]
    if any(b is None for b in bounds):
        return None
    starts = [b[0] for b in bounds if b is not None]
    stops = [b[1] for b in bounds if b is not None]
    stop = None if any(s is None for s in stops) else max(s for s in stops if s is not None)
    return slice(min(starts), stop)


def _bounds(selection: Selection) -> tuple[int, int | None] | None:
    """Non-negative ``[start, stop)`` of a selection, or ``None`` if negative indices occur."""
    if isinstance(selection, int):
        return (selection, selection + 1) if selection >= 0 else None
    assert isinstance(selection, slice)
    start = 0 if selection.start is None else selection.start
    stop = selection.stop
    if start < 0 or (stop is not None and stop < 0):
        return None
    if stop is not None and stop == start:
        return (start, start + 1)  # the server's [k:k] quirk returns item k
    if stop is not None and stop < start:
        return (start, start)  # empty, as in Python
    return (start, stop)


# --------------------------------------------------------------------------- grafting


def graft(target: dict[str, Any], answer: dict[str, Any], spec: Required) -> dict[str, Any]:
    """Merge a server answer into a local partial archive, re-anchoring compacted lists.

    Every ``name[i]`` selection comes back as a one-item list and every ``name[a:b]`` as
    items ``0..n``; they are put back at ``i`` and ``a..a+n``. Lists are padded with
    ``None`` (not loaded), and ``None`` never overwrites loaded data, so grafting answers in
    any order gives the same result. Parts of the answer the spec did not select — reference
    targets the server placed at their original paths (§4.5), ``m_ref_archives`` — are
    already at their original positions and are merged as they are.

    Args:
        target: the local partial archive; modified in place.
        answer: the ``data.archive`` dict of the ``archive/query`` answer.
        spec: the ``required`` spec that produced ``answer``.

    Returns:
        ``target``.

    Raises:
        ValueError: the spec uses negative indices (the original position is unknowable
            from the answer) or ``resolve-inplace: true`` (references were replaced by
            their targets, so the answer is not archive-shaped).
    """
    if not isinstance(answer, dict):
        raise ValueError(f"an archive answer must be a dict, not {type(answer).__name__}")
    if isinstance(spec, dict) and spec.get(_RESOLVE_INPLACE) is True:
        raise ValueError("answers to resolve-inplace specs cannot be grafted")
    _graft_section(target, answer, spec)
    return target


def _graft_section(target: dict[str, Any], answer: dict[str, Any], spec: Any) -> None:
    if not isinstance(spec, dict):
        merge_partial(target, answer)
        return
    plan, wildcard = _plan(spec)
    for name, value in answer.items():
        entry = plan.get(name)
        if entry is None and wildcard is not None:
            entry = (None, wildcard)
        if entry is None or entry[1] == "exclude":
            target[name] = merged(target.get(name, MISSING), value)
        else:
            target[name] = _graft_value(target.get(name, MISSING), value, *entry)


def _graft_value(existing: Any, value: Any, selection: Selection, sub: Any) -> Any:
    if selection is not None and isinstance(value, list):
        offset = _offset(selection)
        items: list[Any] = existing if isinstance(existing, list) else []
        for position, item in enumerate(value, start=offset):
            _pad(items, position + 1)
            items[position] = _graft_value(items[position], item, None, sub)
        return items
    if isinstance(sub, dict) and isinstance(value, dict):
        section: dict[str, Any] = existing if isinstance(existing, dict) else {}
        _graft_section(section, value, sub)
        return section
    if isinstance(sub, dict) and isinstance(value, list):
        items = existing if isinstance(existing, list) else []
        _pad(items, len(value))
        for position, item in enumerate(value):
            items[position] = _graft_value(items[position], item, None, sub)
        return items
    return merged(existing, value)


def _offset(selection: Selection) -> int:
    start = selection if isinstance(selection, int) else getattr(selection, "start", None)
    start = 0 if start is None else start
    if start < 0:
        raise ValueError(
            "cannot re-anchor an answer to a negative index selection; resolve the index first"
        )
    return start


def _pad(items: list[Any], length: int) -> None:
    if len(items) < length:
        items.extend([None] * (length - len(items)))


# --------------------------------------------------------------------------- coverage


def covers(required: Required, path: str | Sequence[Segment]) -> bool:
    """Whether an answer to ``required`` contains everything at ``path``.

    The lazy resolver asks this to tell "not downloaded" (fetch it) from "absent" (the
    archive does not have it): if the spec covered the path and the value is not in the
    local dict, the archive does not have it.

    A section that was fetched with a dict spec is only partly downloaded, so the path of
    that section itself is *not* covered, only the paths the spec selects in full.
    Negative indices and keys are covered only by unindexed selections (all items), as the
    list length is not known here.

    Args:
        required: the spec that was sent.
        path: an archive path in any form :func:`parse_archive_path` accepts.

    Returns:
        True when the whole subtree at ``path`` was part of the answer.
    """
    return _selects(required, parse_archive_path(path), 0, whole=True)


def asks_for(required: Required, path: str | Sequence[Segment]) -> bool:
    """Whether ``required`` names the last key of ``path`` (so an answer would hold it).

    NOMAD answers a ``required`` with every key it asked for that exists (spec §4): when a
    spec asked for ``workflow2.results`` and the answer has no ``workflow2``, the archive has
    none, and reading it needs no further request. Unlike :func:`covers`, the subtree below
    the key need not have been selected in full.

    Args:
        required: the spec that was sent.
        path: names and absolute indices, e.g. ``("workflow2",)`` or ``("run", 0, "system")``.
    """
    return _selects(required, parse_archive_path(path), 0, whole=False)


def _selects(spec: Any, segments: tuple[Segment, ...], position: int, whole: bool) -> bool:
    """Walk ``segments`` through ``spec``: is the subtree selected in full (``whole``, for
    :func:`covers`), or is its last key named at all (for :func:`asks_for`)?"""
    if isinstance(spec, str):
        return spec in _INCLUDING
    if not isinstance(spec, dict) or position >= len(segments):
        return False
    name = segments[position]
    if not isinstance(name, str) or isinstance(name, Key):
        return False
    plan, wildcard = _plan(spec)
    selection, sub = plan.get(name, (None, wildcard))
    if sub is None or sub == "exclude":
        return False
    if position + 1 == len(segments) and not whole:
        return True  # the key itself was asked for
    following = segments[position + 1] if position + 1 < len(segments) else None
    is_int = isinstance(following, int) and not isinstance(following, bool)
    if not whole:
        if not is_int:
            return _selects(sub, segments, position + 1, whole)
        if selection is not None and not _selection_contains(selection, following):  # type: ignore[arg-type]
            return False
        return position + 2 == len(segments) or _selects(sub, segments, position + 2, whole)
    if selection is None:
        is_index = is_int or isinstance(following, Key)
        return _selects(sub, segments, position + 2 if is_index else position + 1, whole)
    if not is_int:
        return False  # the whole list, or an item by key: only part of the list was selected
    return _selection_contains(selection, following) and _selects(sub, segments, position + 2, whole)  # type: ignore[arg-type]


def _selection_contains(selection: Selection, index: int) -> bool:
    if isinstance(selection, int):
        return selection == index
    if selection is None:
        return True
    bounds = _bounds(selection)
    if bounds is None or index < 0:
        return False
    start, stop = bounds
    return index >= start and (stop is None or index < stop)


# --------------------------------------------------------------------------- references a spec follows
def followed_references(data: Any, spec: Required) -> list[tuple[tuple[str | int, ...], Required]]:
    """``(target path, sub-spec)`` of every local reference a dict spec followed in ``data``.

    ``data`` is an anchored partial archive (items at their original indices). NOMAD places
    the targets at their own paths in its answer; a cache keeps them there
    (:func:`~archivemap.remote.cache.project`) and a fetcher remembers them as downloaded.
    """
    found: list[tuple[tuple[str | int, ...], Required]] = []
    stack: list[tuple[Any, Any]] = [(data, spec)]
    while stack:
        node, sub = stack.pop()
        if not isinstance(node, dict) or not isinstance(sub, dict):
            continue
        for key, child_spec in sub.items():
            if key in ("*", RESOLVE_INPLACE) or not isinstance(child_spec, dict):
                continue
            prop, selection = parse_required_key(key)
            value = node.get(prop)
            if isinstance(value, list):
                if isinstance(selection, int):
                    picked = [value[selection]] if 0 <= selection < len(value) else []
                elif isinstance(selection, slice):
                    picked = value[selection]
                else:
                    picked = value
            else:
                picked = [value]
            for item in picked:
                if isinstance(item, str):
                    target = _local_target(item)
                    if target is not None:
                        found.append((target, child_spec))
                elif isinstance(item, dict):
                    stack.append((item, child_spec))
    return found


def _local_target(reference: str) -> tuple[str | int, ...] | None:
    """The path (names and indices) of a reference into the same archive, else ``None``."""
    parsed = parse_reference(reference)
    if parsed is None or not parsed.is_local or not parsed.fragment:
        return None
    return tuple(int(s) if s.isdigit() else s for s in parsed.fragment)


def placed_targets(data: Any, spec: Required) -> Iterator[tuple[tuple[str | int, ...], Required, Any]]:
    """``(target path, sub-spec, value)`` of every target ``data`` holds for the references
    ``spec`` follows, and for the references those targets lead on to (chains), each once.

    What NOMAD placed for a spec (or what a cache row holds of it): a target missing from
    ``data`` is not given, nor what it would lead to. Cycles of references end.
    """
    todo = followed_references(data, spec)
    seen: set[tuple[tuple[str | int, ...], str]] = set()
    while todo:
        target, sub = todo.pop()
        key = (target, repr(sub))
        if key in seen:  # a cycle of references, or two paths to one target
            continue
        seen.add(key)
        value = value_at(data, target)
        if value is None:
            continue
        yield target, sub, value
        if isinstance(value, dict) and isinstance(sub, dict):
            todo.extend(followed_references(value, sub))  # a chain: target -> its reference
