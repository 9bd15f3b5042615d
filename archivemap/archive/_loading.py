"""The first read of a property of a loaded section: its raw JSON converted, once.

A loaded section keeps its raw JSON dict and leaves its slots empty; reading an empty slot
reaches :func:`load_field` (through ``Section.__getattr__``), which converts that one property:
a quantity through the converter, a sub-section wrapped (items too, without converting them),
a reference resolved (:mod:`archivemap.archive._resolve`). In a partial archive a property the
raw data lacks is learned or fetched first (:mod:`archivemap.archive._fetch`). The whole archive
is loaded by :mod:`archivemap.archive.load`; this module loads one field.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain
from typing import TYPE_CHECKING, Any, Final

from archivemap._lazy import deferred_import
from archivemap.archive._fetch import PartialList, fetch_missing
from archivemap.archive._messages import LazyPath, warn_kept
from archivemap.archive._resolve import load_reference
from archivemap.archive.base import SectionBase, SectionContext, resolving, wrap
from archivemap.archive.converter import load_value
from archivemap.archive.standins import Absent
from archivemap.archive.walk import keyed_order
from archivemap.errors import DefinitionError
from archivemap.metainfo.fields import FieldMeta

if TYPE_CHECKING:
    import numpy as np
else:
    np = deferred_import("numpy")  # arrays only appear once numpy is imported (converter.py)

__all__ = ["load_field"]


def load_field(section: SectionBase, fm: FieldMeta) -> Any:
    """Convert property ``fm`` of a loaded section from its raw JSON (first access)."""
    data = section._m_data
    if data is None:  # constructed, not loaded: attrs __init__ filled every slot
        return None if not (fm.kind == "sub_section" and fm.repeats) else []
    ctx: SectionContext | None = section._m_ctx
    if ctx is not None and ctx.recorder is not None and not resolving():
        ctx.recorder.read(section, fm)  # what the analysis reads, not what a reference walks
    if fm.name not in data and ctx is not None and ctx.fetcher is not None:
        stand_in = fetch_missing(section, fm, ctx, ctx.fetcher)
        if stand_in is not None:
            return stand_in
        data = section._m_data
    value = data.get(fm.name)
    if value is None:
        if fm.kind == "sub_section":
            return [] if fm.repeats else Absent(section, fm.name)
        if fm.default is not None and not fm.is_reference:
            default = list(fm.default) if isinstance(fm.default, tuple) else fm.default
            return load_value(default, fm, LazyPath(section, fm.name))
        return None
    if fm.kind == "sub_section":
        return _load_sub_section(section, fm, value)
    if fm.is_reference:
        return load_reference(section, fm, value)
    out = load_value(value, fm, LazyPath(section, fm.name))
    if type(value) is list and ctx is not None and ctx.fetcher is None and ctx.owns_data:
        _keep_converted(data, fm.name, value, out)
    return out


def _keep_converted(data: dict[str, Any], name: str, raw: list[Any], value: Any) -> None:
    """Keep a float array once: the converted one stands in for its raw JSON list.

    A float64 array read from a list (of lists ...) of JSON floats writes back exactly that
    list (``tolist()``: same floats, same nesting), so the raw list is dropped and the array
    (the magnitude, in the definition's unit) takes its place in the raw dict: the lists of
    a 100 MB MD archive cost ~4x the array. Anything else (ints, ``null``, strings, other
    dtypes) keeps its raw JSON. :func:`~archivemap.archive._dump.copy_json` writes such an array back as its list.
    """
    array = getattr(value, "magnitude", value)
    if type(array) is not np.ndarray or array.dtype != np.float64 or array.ndim == 0 or not array.size:
        return
    flat: Iterable[Any] = raw
    for _ in range(array.ndim - 1):
        flat = chain.from_iterable(flat)
    if set(map(type, flat)) == _FLOATS:
        data[name] = array


_FLOATS: Final = {float}


def _load_sub_section(section: SectionBase, fm: FieldMeta, value: Any) -> Any:
    ctx = section._m_ctx
    path = LazyPath(section, fm.name)
    if ctx is None:
        raise DefinitionError(f"{path}: section was loaded without a schema")
    declared: type[SectionBase] = ctx.sub_section_class(type(section), fm)
    if fm.repeats:
        items: list[Any]
        if isinstance(value, dict):  # keyed form: {key: {..., m_parent_index}} (spec §2.1)
            if not all(isinstance(v, dict) for v in value.values()):
                warn_kept(path, "repeating sub-section is neither a list nor a dict of sections")
                return value
            items = [value[k] for k in keyed_order(value)]
        elif isinstance(value, list):
            items = value
        else:
            warn_kept(path, f"repeating sub-section holds a {type(value).__name__}")
            return value
        # the loop of every list of sections (a 100-step MD run: 100 calculations, systems,
        # tasks): an item without m_def is the declared class, asked of nobody, and each
        # section is made here as m_load makes it, without a call per item
        out: list[Any] = []
        append = out.append
        name = fm.name
        declared_new = declared.__new__
        for i, item in enumerate(items):
            if type(item) is dict and "m_def" not in item and "m_def_id" not in item:
                obj = declared_new(declared)
            elif isinstance(item, dict):
                cls: type[SectionBase] = ctx.class_for_item(declared, item, LazyPath(section, name, i))
                obj = cls.__new__(cls)
            else:
                if item is not None:
                    warn_kept(f"{path}/{i}", f"sub-section item is a {type(item).__name__}")
                append(item)
                continue
            wrap(obj, item, section, ctx, (name, i))
            append(obj)
        if ctx.fetcher is not None:
            return PartialList(out, section, fm.name)
        return out
    if type(value) is dict and "m_def" not in value and "m_def_id" not in value:  # the declared class
        obj = declared.__new__(declared)
        wrap(obj, value, section, ctx, (fm.name, None))
        return obj
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        value_dict = value[0]
        warn_kept(path, "single sub-section stored as a one-item list")
        return ctx.class_for_item(declared, value_dict, path).m_load(value_dict, section, (fm.name, None), ctx)
    if not isinstance(value, dict):
        warn_kept(path, f"sub-section holds a {type(value).__name__}")
        return value
    cls = ctx.class_for_item(declared, value, path)
    return cls.m_load(value, section, (fm.name, None), ctx)

