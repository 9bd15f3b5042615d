"""Downloading into a partial archive: one request, merged into the raw data and built sections.

The low half of on-demand fetching (the fetch seam): a :class:`~archivemap.archive.base.Fetcher`
answers in JSON; this module merges the answer into the archive's raw dict under the archive's
lock and gives sections that were already built (lists, empty single slots) their new items.
Deciding *what* to fetch, and when, is :mod:`archivemap.archive._fetch`'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from archivemap._json import merge_partial, pad_list, value_at
from archivemap.archive.base import Path, SectionBase, fetcher_of
from archivemap.metainfo.fields import fields_by_name

__all__ = ["download", "download_unless_present", "list_items", "present"]


def _present_prefix(raw: Any, path: Path) -> int:
    """How many leading segments of ``path`` the raw data already has."""
    node = raw
    for i, seg in enumerate(path):
        if isinstance(seg, int):
            node = node[seg] if isinstance(node, list) and 0 <= seg < len(node) else None
        else:
            node = node.get(seg) if isinstance(node, dict) else None
        if node is None:
            return i
    return len(path)


def present(raw: Any, path: Path) -> bool:
    """Whether the raw data holds something (not ``None``: "not loaded") at ``path``."""
    return value_at(raw, path) is not None


def download(root: SectionBase, paths: Sequence[Path], typed: bool = False, whole: bool = True) -> None:
    """Fetch ``paths`` of a partial archive in one request and merge the answer in.

    ``typed``: the sections along each path that the raw data does not have yet come with
    their ``m_def`` (paths planned from the classes, not walked through the data).
    """
    ctx = root._m_ctx
    fetcher = ctx.fetcher if ctx is not None else None
    if ctx is None or fetcher is None:
        return
    with ctx.lock:
        wanted = [
            tuple(p)
            for p in paths
            if not fetcher.is_downloaded(tuple(p)) and (whole or not fetcher.was_asked(tuple(p)))
        ]
        if not wanted:
            return
        known = [_present_prefix(root._m_data, p) for p in wanted] if typed else None
        partial = fetcher.download(wanted, known, whole)
        if partial is not None:
            merge_partial(root._m_data, partial)
        for path in wanted:
            _patch_built_sections(root, path)


def download_unless_present(root: SectionBase, path: Path) -> None:
    # A target the server already placed (e.g. from m_ref_archives) is used as it is; its
    # missing properties are fetched one by one when read.
    fetcher = fetcher_of(root)
    if fetcher is not None and not fetcher.is_downloaded(path) and not present(root._m_data, path):
        download(root, [path])


def list_items(root: SectionBase, list_path: Path, keys: Sequence[str]) -> list[Any]:
    """The items of a remote repeating sub-section (keys only); pads the raw list to length."""
    ctx = root._m_ctx
    fetcher = ctx.fetcher if ctx is not None else None
    if ctx is None or fetcher is None:
        return []
    with ctx.lock:
        items = fetcher.list_items(list_path, keys)
        _pad_raw_list(root, list_path, len(items))
        return items


def _pad_raw_list(root: SectionBase, list_path: Path, length: int) -> None:
    """Make the raw list at ``list_path`` at least ``length`` long (``None``: not loaded).

    A list with items proves its parents exist: those missing from the raw data are made
    (empty sections, whose properties come when read), so the length is learned once.
    """
    if length and value_at(root._m_data, list_path[:-1]) is None:
        merge_partial(root._m_data, _skeleton(list_path[:-1]))
    if not pad_list(root._m_data, list_path, length):
        return
    _patch_built_sections(root, list_path)


def _skeleton(path: Path) -> dict[str, Any]:
    """``("run", 0, "calculation", 2)`` -> ``{"run": [{"calculation": [None, None, {}]}]}``."""
    node: Any = {}
    for seg in reversed(path):
        node = [None] * seg + [node] if isinstance(seg, int) else {seg: node}
    return node  # type: ignore[no-any-return]


def _patch_built_sections(root: SectionBase, path: Path) -> None:
    """After a merge: give already-built lists and empty single slots their new items."""
    node: SectionBase = root
    i = 0
    while i < len(path):
        seg = path[i]
        fm = fields_by_name(type(node)).get(seg) if isinstance(seg, str) else None
        if fm is None or fm.kind != "sub_section":
            return
        raw = node._m_data.get(fm.name) if node._m_data is not None else None
        try:
            built = object.__getattribute__(node, fm.attribute)
        except AttributeError:
            return  # not built yet: it will be built from the merged raw data
        ctx = node._m_ctx
        if fm.repeats:
            if not isinstance(built, list) or not isinstance(raw, list):
                if isinstance(raw, list):
                    object.__delattr__(node, fm.attribute)
                return
            size = list.__len__(built)
            if size < len(raw):
                list.extend(built, [None] * (len(raw) - size))
            declared = ctx.sub_section_class(type(node), fm) if ctx is not None else None
            for j, item in enumerate(raw):
                if list.__getitem__(built, j) is None and isinstance(item, dict) and declared is not None:
                    cls = ctx.class_for_item(declared, item, f"{node.m_path()}/{fm.name}/{j}")  # type: ignore[union-attr]
                    list.__setitem__(built, j, cls.m_load(item, node, (fm.name, j), ctx))
            if i + 1 >= len(path) or not isinstance(path[i + 1], int):
                return
            nxt = list.__getitem__(built, path[i + 1]) if path[i + 1] < list.__len__(built) else None
            if not isinstance(nxt, SectionBase):
                return
            node = nxt
            i += 2
        else:
            if built is None and isinstance(raw, dict):
                object.__delattr__(node, fm.attribute)
                return
            if not isinstance(built, SectionBase):
                return
            node = built
            i += 1

