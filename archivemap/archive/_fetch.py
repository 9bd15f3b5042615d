"""On-demand fetching for partial archives: what to fetch, and when.

An archive from a client holds only what was downloaded. This module decides what a read
needs: it plans a path as names and absolute indices for one request (:func:`plan_path`,
walking the classes, not the data), fetches a whole dotted path before it is walked
(:func:`fetch_planned`), learns or fetches a property the raw data lacks on its first read
(:func:`fetch_missing`), and keeps the items of a repeating sub-section that were not
downloaded yet (:class:`PartialList`). The request itself and the merge are
:mod:`archivemap.archive._download`'s.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from archivemap._json import value_at
from archivemap.archive._download import download, download_unless_present, list_items, present
from archivemap.archive.base import (
    Fetcher,
    Path,
    SectionBase,
    SectionContext,
    fetcher_of,
    path_segments,
    resolving,
)
from archivemap.archive.standins import Pending, PendingList, batch_of, through_reference
from archivemap.archive.walk import is_int, select_item
from archivemap.errors import AbsentError, AbsentItemError, HTTPStatusError
from archivemap.metainfo.fields import FieldMeta, fields_by_name
from archivemap.paths import Key, Segment

__all__ = ["PartialList", "class_at", "fetch_missing", "fetch_planned", "plan_below", "plan_path"]


def plan_path(root: SectionBase, segments: Sequence[str]) -> Path | None:
    """Plan a fragment as a path of names and absolute indices, for one fetch.

    Walks the *classes* (not the data) to know which names are repeating sub-sections; a
    negative index or a key segment is turned into an absolute index with one listing
    request. Returns ``None`` when the fragment leaves what the classes describe (then the
    caller walks step by step).

    Raises:
        AbsentError: a negative index or key that selects no item.
    """
    ctx = root._m_ctx
    fetcher = ctx.fetcher if ctx is not None else None
    if ctx is None or fetcher is None:
        return None
    cls: type[SectionBase] = type(root)
    out: list[Any] = []
    i = 0
    while i < len(segments):
        seg = segments[i]
        fm = fields_by_name(cls).get(seg)
        if fm is None:
            return None
        out.append(fm.name)
        if fm.kind == "quantity":
            return tuple(out)  # further segments index into the value
        if fm.repeats:
            if i + 1 >= len(segments):
                return tuple(out)
            selector = segments[i + 1]
            if selector.isdigit():
                out.append(int(selector))
            else:
                keys = [k for k in (fm.key_quantity, "name") if k]
                by_index = is_int(selector)
                list_path = tuple(out)
                known = value_at(root._m_data, list_path)
                if isinstance(known, list) and (
                    fetcher.is_downloaded(list_path) or (by_index and fetcher.is_complete_list(list_path))
                ):
                    # the list is here in full (a covering answer): its length, and the keys
                    # of downloaded items, need no request
                    items = known
                else:
                    items = list_items(root, list_path, [] if by_index else keys)
                    if by_index:
                        fetcher.mark_complete_list(list_path)
                found = select_item(items, selector, fm.key_quantity)
                if found is None:
                    raise AbsentError(
                        f"no item [{selector}] in {len(items)} items", path="/" + "/".join(map(str, out)),
                        entry_id=ctx.entry_id,
                    )
                out.append(found[0])
            i += 2
        else:
            i += 1
        cls = ctx.sub_section_class(cls, fm)
    return tuple(out)


def class_at(root: SectionBase, path: Path) -> type[SectionBase] | None:
    """The class the schema declares for the section at ``path``; ``None`` for a quantity."""
    ctx = root._m_ctx
    cls: type[SectionBase] = type(root)
    for seg in path:
        if isinstance(seg, int):
            continue
        fm = fields_by_name(cls).get(seg)
        if fm is None or fm.kind != "sub_section" or ctx is None:
            return None
        cls = ctx.sub_section_class(cls, fm)
    return cls


def plan_below(section: SectionBase, segments: tuple[Segment, ...]) -> tuple[Path | None, bool]:
    """A path below ``section`` planned for one request (absolute indices), and whether it
    was planned by names alone; ``(None, False)`` when it cannot be (the walk then reports
    why, one step at a time)."""
    full = tuple(str(s) for s in path_segments(section)) + tuple(str(s) for s in segments)
    try:
        planned = plan_path(section.m_root, full)
    except AbsentError:
        return None, False
    if planned is not None:
        return planned, False
    blind = _by_names(path_segments(section) + tuple(segments))
    return blind, blind is not None


def _by_names(segments: Sequence[Any]) -> Path | None:
    """A path as ``required`` reads it, without the classes: names, and digits as indices.

    When the declared classes cannot plan a path (a ``workflow2`` declared as ``Workflow`` is
    a ``GeometryOptimization``; a reference leads on), the server can: it reads names against
    each section's real definition and follows references. ``None`` for negative indices and
    keys, which need the list first.
    """
    out: list[Any] = []
    for seg in segments:
        if isinstance(seg, Key):
            return None
        text = str(seg)
        if text.isdigit() and out and isinstance(out[-1], str):
            out.append(int(text))
        elif text.isidentifier():
            out.append(text)
        else:
            return None
    return tuple(out)


def fetch_planned(section: SectionBase, segments: tuple[Segment, ...]) -> None:
    """Fetch a whole path below ``section`` in one request before walking it."""
    planned, blind = plan_below(section, segments)
    if not planned:
        return
    root = section.m_root
    try:
        if blind:  # the classes on the way are not known: each section comes with its m_def
            if not present(root._m_data, planned):
                download(root, [planned], typed=True)
        else:
            download_unless_present(root, planned)
    except HTTPStatusError:
        if not blind:
            raise  # a path planned by names the server refuses: walked step by step instead


def fetch_missing(section: SectionBase, fm: FieldMeta, ctx: SectionContext, fetcher: Fetcher) -> Any:
    """A property absent from a partial archive's raw data: learn or fetch it.

    Returns what to hand out instead of reading the raw data: a :class:`Pending` for a
    single sub-section (nothing is fetched until a quantity below it is read), a
    placeholder inside a batch; ``None`` when the raw data is now the answer.
    """
    path = path_segments(section) + (fm.name,)
    if fetcher.is_downloaded(path) or fetcher.was_asked(path):
        return None  # the answer that asked for it had none: absent
    if fm.kind != "sub_section":
        through = through_reference(section, fm) if fetcher.auto else None
        if through is not None:  # the reference and what is read below it: one request
            return Pending(section, (fm.name,), through)
        root = section.m_root
        batch = batch_of(root)
        if batch is not None:
            return batch.defer(path, functools.partial(getattr, section, fm.attribute))
        download(root, [path])
        return None
    if fetcher.auto:
        declared = ctx.sub_section_class(type(section), fm)
        return PendingList(section, fm, declared) if fm.repeats else Pending(section, (fm.name,), declared)
    download(section.m_root, [path])  # fetching is off: NotDownloadedError, naming the path
    return None


class PartialList(list):  # type: ignore[type-arg]
    """The items of a repeating sub-section of a partially downloaded archive.

    ``None`` items were not downloaded; reading one fetches it. ``len()``, negative indices
    and iteration first learn the real length (one small request) when the list itself was
    never downloaded whole.
    """

    __slots__ = ("_owner", "_name")

    def __init__(self, items: Iterable[Any], owner: SectionBase, name: str) -> None:
        super().__init__(items)
        self._owner = owner
        self._name = name

    def __reduce__(self) -> Any:
        # pickled as its owner and name: the list of the owner in the unpickled archive
        return (_rebuild_partial_list, (self._owner, self._name))

    def _path(self) -> Path:
        return path_segments(self._owner) + (self._name,)

    def _ensure_complete(self) -> None:
        fetcher = fetcher_of(self._owner)
        if fetcher is None:
            return
        path = self._path()
        if fetcher.is_downloaded(path) or fetcher.is_complete_list(path):
            return
        list_items(self._owner.m_root, path, [])
        fetcher.mark_complete_list(path)

    def _known_length(self, fetcher: Fetcher) -> bool:
        path = self._path()
        return fetcher.is_downloaded(path) or fetcher.is_complete_list(path)

    def _record(self, index: int | None = None) -> None:
        ctx = self._owner._m_ctx
        if ctx is not None and ctx.recorder is not None and not resolving():
            if index is None:
                ctx.recorder.iterated(self._owner, self._name)
            else:
                ctx.recorder.indexed(self._owner, self._name, index)

    def __len__(self) -> int:
        self._record()
        self._ensure_complete()
        return super().__len__()

    def __iter__(self) -> Iterator[Any]:
        self._record()
        self._ensure_complete()
        missing = [i for i in range(list.__len__(self)) if list.__getitem__(self, i) is None]
        if missing:  # one request for what the items not loaded yet are (their m_def)
            base = self._path()
            download(self._owner.m_root, [base + (i,) for i in missing], typed=True, whole=False)
        for i in range(super().__len__()):
            yield super().__getitem__(i)

    def __getitem__(self, index: Any) -> Any:
        self._record(index if isinstance(index, int) else None)
        if isinstance(index, slice):
            self._ensure_complete()
            wanted = range(*index.indices(super().__len__()))
            missing = [i for i in wanted if list.__getitem__(self, i) is None]
            if missing:
                download(self._owner.m_root, [self._path() + (i,) for i in missing], typed=True, whole=False)
            return [list.__getitem__(self, i) for i in wanted]
        fetcher = fetcher_of(self._owner)
        if index >= super().__len__() and fetcher is not None and fetcher.auto and not self._known_length(fetcher):
            item = None  # past what is here: planned like any item not loaded (its read tells)
        else:
            if index < 0 or index >= super().__len__():
                self._ensure_complete()
            if not -super().__len__() <= index < super().__len__():
                raise AbsentItemError(
                    f"no item [{index}] in {super().__len__()} items",
                    path=f"{self._owner.m_path().rstrip('/')}/{self._name}", entry_id=self._owner.m_entry_id,
                )
            item = super().__getitem__(index)
        if item is None and fetcher is not None:
            absolute = index if index >= 0 else super().__len__() + index
            ctx = self._owner._m_ctx
            fm = fields_by_name(type(self._owner)).get(self._name)
            if fetcher.auto and ctx is not None and fm is not None:  # planned, not fetched
                return Pending(self._owner, (self._name, absolute), ctx.sub_section_class(type(self._owner), fm))
            download(self._owner.m_root, [self._path() + (absolute,)])
            item = super().__getitem__(index)
        return item


def _rebuild_partial_list(owner: SectionBase, name: str) -> Any:
    return getattr(owner, fields_by_name(type(owner))[name].attribute)
