"""Pickling sections (the design is in :mod:`archivemap.archive.runtime`).

A section of a loaded archive pickles as its archive context plus its path from the root, so
several sections pickled together share one archive and what was not read stays lazy; a
section built in Python (no archive) pickles as its class and slots.
"""

from __future__ import annotations

from typing import Any, Final

from archivemap.archive.base import Path, SectionBase, adopt_built, path_segments
from archivemap.metainfo.fields import fields_by_name, section_fields

__all__ = ["reduce_section"]


_PRIVATE_SLOTS: Final = ("_m_data", "_m_parent", "_m_key", "_m_ctx", "_m_dirty")


def reduce_section(section: SectionBase) -> tuple[Any, ...]:
    """A section of a loaded archive pickles as (its context, its path); others as slots.

    The context pickles as the whole archive (``ArchiveContext.__reduce__``), once per pickle
    however many of its sections are in it.
    """
    ctx = section._m_ctx
    root = getattr(ctx, "root", None)
    if isinstance(root, SectionBase):
        adopt_built(root)  # items inserted since loading get their current index
        path = path_segments(section)
        if _walk_built(root, path) is section:
            return (_rebuild_section, (ctx, path))
    # built in Python, or detached from its archive: the class by name, the slots as state
    cls = type(section)
    state: dict[str, Any] = {}
    for attr in section_fields(cls):
        try:
            state[attr] = object.__getattribute__(section, attr)
        except AttributeError:
            continue  # not read yet: it stays lazy (the raw data comes along)
    private = tuple(getattr(section, name, None) for name in _PRIVATE_SLOTS)
    # attrs classes restore their fields with their own __setstate__; others by setattr
    return (_rebuild_built_section, (cls, *private), state if hasattr(cls, "__setstate__") else (None, state))


def _walk_built(root: SectionBase, path: Path) -> SectionBase | None:
    """The section at ``path`` among the sections already built, without loading anything."""
    node: Any = root
    i = 0
    while i < len(path):
        fm = fields_by_name(type(node)).get(path[i]) if isinstance(node, SectionBase) else None
        if fm is None:
            return None
        try:
            node = object.__getattribute__(node, fm.attribute)
        except AttributeError:
            return None
        i += 1
        if isinstance(node, list):
            if i >= len(path) or not isinstance(path[i], int) or not 0 <= path[i] < list.__len__(node):
                return None
            node = list.__getitem__(node, path[i])
            i += 1
    return node if isinstance(node, SectionBase) else None


def _rebuild_section(ctx: Any, path: Path) -> SectionBase:
    """Unpickle a section: walk ``path`` in the archive its unpickled context loaded."""
    node: Any = ctx.root
    i = 0
    while i < len(path):
        fm = fields_by_name(type(node))[path[i]]
        node = getattr(node, fm.attribute)  # present in the raw data: nothing is fetched
        i += 1
        if isinstance(node, list) and i < len(path) and isinstance(path[i], int):
            node = list.__getitem__(node, path[i])
            i += 1
    return node  # type: ignore[no-any-return]


def _rebuild_built_section(cls: type[SectionBase], *private: Any) -> SectionBase:
    obj = cls.__new__(cls)
    for name, value in zip(_PRIVATE_SLOTS, private):
        object.__setattr__(obj, name, value)
    return obj

