"""The one walker: dotted paths and reference fragments, down through sections and values.

:func:`get_path` reads a dotted path (``run[0].calculation[-1].energy``) and :func:`walk` takes
reference fragments too (:func:`archivemap.archive._resolve.resolve_fragment`); both choose an
item of a repeating sub-section by the one rule of :func:`select_item` (an index, negative
from the end, or a key; keyed lists are ordered by :func:`keyed_order`). :func:`walk_fast`
is the common case without closures or path strings: every resolved reference comes through
it, and anything unusual goes back to :func:`walk` (:data:`MISS`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any, Final

from archivemap.archive._messages import no_property
from archivemap.archive.base import SectionBase, fetcher_of
from archivemap.archive.standins import Absent, Pending, PendingList, what_is_there
from archivemap.errors import AbsentError, NotDownloadedError, NotInSchemaError
from archivemap.metainfo.fields import ITEMS, VALUE, FieldMeta, fields_by_name, section_fields, walk_steps
from archivemap.paths import Key, Segment, format_path, parse_path

__all__ = [
    "MISS",
    "get_path",
    "get_segments",
    "is_int",
    "keyed_order",
    "parse_path_cached",
    "select_item",
    "walk",
    "walk_fast",
]

_lru_parse_path = functools.lru_cache(maxsize=4096)(parse_path)


def parse_path_cached(path: str) -> tuple[Segment, ...]:
    """:func:`~archivemap.paths.parse_path`, cached for strings (paths repeat; tuples are immutable)."""
    return _lru_parse_path(path) if type(path) is str else parse_path(path)


def keyed_order(items: dict[str, Any]) -> list[str]:
    """The keys of a keyed repeating sub-section (spec §2.1) in ``m_parent_index`` order.

    A missing or malformed index (a string, a float, ``true``) sorts after the well-formed
    ones, in the order written: data must not decide whether sorting crashes.
    """

    def position(key: str) -> tuple[int, int]:
        index = items[key].get("m_parent_index") if isinstance(items[key], dict) else None
        return (0, index) if type(index) is int else (1, 0)

    return sorted(items, key=position)


def _item_key_values(item: Any, names: Sequence[str]) -> Iterator[Any]:
    """The values of the key quantities of one item (a section, a raw dict or ``None``)."""
    if isinstance(item, dict):
        data: Any = item
    elif isinstance(item, SectionBase):
        data = item._m_data
        if data is None:  # built by the user: read the attributes
            by_name = fields_by_name(type(item))
            for name in names:
                fm = by_name.get(name)
                yield getattr(item, fm.attribute) if fm is not None else None
            return
    else:
        return
    for name in names:
        yield data.get(name)


def select_item(items: Any, selector: int | str, key_quantity: str | None) -> tuple[int, Any] | None:
    """The item of a repeating sub-section that ``selector`` names, with its position.

    The one rule for every walk (paths, reference fragments, the graph, remote planning): an
    ``int`` (or a string of digits, as in fragments) is an index, negative from the end; any
    other string is a key, matched against the sub-section's ``key_quantity`` (or the
    section's ``label_quantity``, both in ``FieldMeta.key_quantity``) and then ``name``
    (spec §3.1). Items may be sections, raw dicts or ``None`` (not downloaded).

    Returns:
        ``(position, item)``, or ``None`` when no item matches.
    """
    if isinstance(selector, str) and not isinstance(selector, Key) and is_int(selector):
        selector = int(selector)
    if isinstance(selector, int):
        try:
            item = items[selector]  # no len() first: a partial list learns its length lazily
        except IndexError:
            return None
        return (selector if selector >= 0 else len(items) + selector), item
    names = [k for k in (key_quantity, "name") if k]
    for position, item in enumerate(items):
        if any(value == selector for value in _item_key_values(item, names)):
            return position, item
    return None


def is_int(text: str) -> bool:
    """Whether ``text`` spells an index (digits, perhaps after a minus)."""
    body = text[1:] if text.startswith("-") else text
    return body.isdigit()


def get_path(section: SectionBase, path: str) -> Any:
    """Read ``path`` below ``section`` (see :meth:`Section.m_get`), without fetching ahead.

    Raises:
        NotInSchemaError: a name that is no property of its section.
        AbsentError: an unset property or an index out of range.
        NotDownloadedError: data that exists on the server but was not downloaded.
    """
    return get_segments(section, parse_path_cached(path))


def get_segments(section: SectionBase, segments: tuple[Segment, ...]) -> Any:
    """:func:`get_path` for a path already parsed."""
    if fetcher_of(section) is None:
        found = walk_fast(section, segments)
        if found is not MISS:
            return found

    def fail(kind: str, segment: Segment, done: Sequence[Segment], why: str) -> Exception:
        where = format_path(tuple(done)) or "<root>"
        error = {_NOT_IN_SCHEMA: NotInSchemaError, _NOT_DOWNLOADED: NotDownloadedError}.get(kind, AbsentError)
        return error(why, path=where, entry_id=section.m_entry_id)

    return walk(section, segments, fail)


# The kinds of missing the walker tells apart; each caller maps them to its own errors.
_NOT_IN_SCHEMA: Final = "not in schema"
_ABSENT: Final = "absent"
_NOT_DOWNLOADED: Final = "not downloaded"


def walk(start: SectionBase, segments: Sequence[Segment], fail: Any) -> Any:
    """The one walker: names through sections, selectors through repeating sub-sections,
    indices and keys into values.

    Segments are names (NOMAD or attribute names), ``int`` indices, :class:`Key` item keys,
    or, as in reference fragments, strings of digits (indices) and other strings after a
    repeating sub-section (keys). Iterative, so deep paths cannot exhaust the stack; path
    strings are only built when ``fail(kind, segment, done, why)`` makes an error.
    """
    node: Any = start
    items_of: FieldMeta | None = None  # set while node is the item list of a repeating field
    for i, seg in enumerate(segments):
        if items_of is not None:
            found = select_item(node, seg, items_of.key_quantity) if isinstance(node, list) else None
            if found is None:
                if isinstance(seg, int) or (not isinstance(seg, Key) and is_int(seg)):
                    size = len(node) if isinstance(node, list) else 0
                    raise fail(_ABSENT, seg, segments[:i], f"index {int(seg)} out of range ({size} items)")
                keys = "/".join(k for k in (items_of.key_quantity, "name") if k)
                raise fail(_ABSENT, seg, segments[:i], f"no item with {keys} {seg!r}")
            if found[1] is None:
                if fetcher_of(start) is not None:
                    raise fail(_NOT_DOWNLOADED, seg, segments[:i], f"item [{seg}] was not downloaded")
                raise fail(_ABSENT, seg, segments[:i], f"item [{seg}] is empty")
            node, items_of = found[1], None
            continue
        if isinstance(node, SectionBase):
            if not isinstance(seg, str) or isinstance(seg, Key):
                raise fail(_ABSENT, seg, segments[:i], f"cannot index a section with [{seg}]")
            cls = type(node)
            fm = fields_by_name(cls).get(seg) or section_fields(cls).get(seg)
            if fm is None:
                extras = node.m_extras
                if seg not in extras:
                    raise fail(_NOT_IN_SCHEMA, seg, segments[:i], no_property(cls, seg))
                node = extras[seg]
                continue
            value = getattr(node, fm.attribute)
            if type(value) is Pending or type(value) is PendingList:
                value = value.m_settle()
            if value is None or type(value) is Absent:
                there = f"; {node.m_path()}: {what_is_there(node, fm.name)}" if fm.kind == "sub_section" else ""
                raise fail(_ABSENT, seg, segments[: i + 1], f"{seg!r} is not set{there}")
            node = value
            items_of = fm if fm.kind == "sub_section" and fm.repeats and isinstance(value, list) else None
            continue
        # inside a quantity value (array, list) or raw JSON: an index or a key
        try:
            if isinstance(node, dict):
                node = node[seg]
            elif isinstance(seg, int) or (isinstance(seg, str) and not isinstance(seg, Key) and is_int(seg)):
                node = node[int(seg)]
            else:
                raise KeyError(seg)
        except (KeyError, IndexError, TypeError):
            raise fail(_ABSENT, seg, segments[:i], f"cannot index into the value with [{seg}]") from None
    return node


MISS: Final = object()


def walk_fast(start: SectionBase, segments: Sequence[Segment], into_values: bool = True) -> Any:
    """The common walk (names, then indices into repeating sub-sections, down to a set
    value), or :data:`MISS`.

    No closures, no path strings: :data:`MISS` hands anything unusual (keys, extras, values
    indexed into, unset properties, partial lists, errors) to :func:`walk`, which gives the
    same answer or the error. Indices are ``int`` (dotted paths) or digit strings (fragments).
    One dict lookup per property (:func:`walk_steps`): every resolved reference comes here.
    """
    node: Any = start
    rest = iter(segments)
    for seg in rest:
        if type(seg) is not str or not isinstance(node, SectionBase):
            return MISS
        cls = type(node)
        cached = getattr(cls, "_m_walk_steps", None)
        steps = cached[1] if cached is not None and cached[0] is cls else walk_steps(cls)
        step = steps.get(seg)
        if step is None:
            return MISS
        attribute, then = step
        if then == VALUE and not into_values:
            return MISS
        value = getattr(node, attribute)  # an empty slot is converted now (__getattr__)
        if value is None or type(value) is Absent:  # (the other stand-ins need a fetcher:
            return MISS  # they stop below, at a Pending node or a list that is not a list)
        if then == VALUE:
            return value if next(rest, MISS) is MISS else MISS
        if then == ITEMS:
            if type(value) is not list:
                return MISS
            selector = next(rest, MISS)
            if selector is MISS:
                return value
            if type(selector) is int:
                index = selector
            elif type(selector) is str and selector.isdigit():
                index = int(selector)
            else:
                return MISS
            try:
                value = value[index]
            except IndexError:
                return MISS
            if value is None:
                return MISS
        node = value
    return node

