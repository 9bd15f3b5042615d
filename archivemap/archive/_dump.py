"""Sections back to archive JSON: the loaded data, with assignments applied.

``to_dict`` writes back the raw JSON of everything that was not assigned since loading, so
that ``to_dict(load(d)) == d`` holds exactly, unknown keys and mistyped values included.
Sub-sections that were read are written from their objects (edits deeper down show); a
reference to a section becomes its path (``#/run/0/system/1``) or, into another archive, its
URL. Iterative, so deep archives cannot exhaust the stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from archivemap._lazy import deferred_import
from archivemap.archive.base import SectionBase, adopt, adopt_built
from archivemap.archive.converter import dump_value
from archivemap.archive.walk import keyed_order
from archivemap.errors import ArchiveDataError
from archivemap.metainfo.fields import FieldMeta, fields_by_name, section_fields

if TYPE_CHECKING:
    import numpy as np
else:
    np = deferred_import("numpy")  # arrays only appear once numpy is imported (converter.py)

__all__ = ["copy_json", "dump_field", "section_to_dict"]


def dump_field(section: SectionBase, fm: FieldMeta, value: Any) -> Any:
    """The JSON of a field's current Python value."""
    if value is None:
        return None
    if fm.kind == "sub_section":
        if isinstance(value, list):
            return [v.to_dict() if isinstance(v, SectionBase) else v for v in value]
        return value.to_dict() if isinstance(value, SectionBase) else value
    if fm.is_reference:
        def ref(v: Any) -> Any:
            if isinstance(v, SectionBase):
                if v.m_root is section.m_root and (v._m_key is not None or v is section.m_root):
                    return "#" + v.m_path()
                entry = v.m_entry_id
                upload = v._m_ctx.upload_id if v._m_ctx else None
                if v._m_key is None and v._m_parent is None and not entry:
                    raise ArchiveDataError(
                        f"{fm.name!r} refers to a {type(v).__name__} that is not part of an archive "
                        "yet; assign it to a sub-section first"
                    )
                if entry is None or upload is None:
                    raise ArchiveDataError(
                        f"{fm.name!r} refers to a section of another archive whose entry or "
                        "upload id is unknown; load that archive with its metadata"
                    )
                return f"../uploads/{upload}/archive/{entry}#{v.m_path()}"
            return v
        return [ref(v) for v in value] if isinstance(value, list) else ref(value)
    return dump_value(value, fm)


def section_to_dict(section: SectionBase) -> dict[str, Any]:
    """The section's JSON: raw data for untouched properties, dumped values for the rest.

    Sub-sections that were read are written from their objects (so edits deeper down show);
    the rest is the raw JSON, copied. Key order follows the raw data, new keys come last.
    Iterative: a child section is written into a placeholder dict taken from a work list.
    """
    adopt_built(section.m_root)  # sections appended to lists since loading get their place
    root_out: dict[str, Any] = {}
    work: list[tuple[SectionBase, dict[str, Any]]] = [(section, root_out)]
    while work:
        current, out = work.pop()
        _fill_dict(current, out, work)
    return root_out


def _child_out(
    value: Any, work: list[tuple[SectionBase, dict[str, Any]]], parent: SectionBase | None = None, name: str | None = None
) -> Any:
    if isinstance(value, SectionBase):
        if parent is not None and value._m_parent is None and name is not None:
            adopt(value, parent, name, None)  # e.g. appended to a list after loading
        placeholder: dict[str, Any] = {}
        work.append((value, placeholder))
        return placeholder
    if isinstance(value, list):
        out = []
        for i, v in enumerate(list.__iter__(value)):
            if isinstance(v, SectionBase) and parent is not None and name is not None and v._m_key != (name, i):
                adopt(v, parent, name, i)
            out.append(_child_out(v, work))
        return out
    return value


def _fill_dict(section: SectionBase, out: dict[str, Any], work: list[tuple[SectionBase, dict[str, Any]]]) -> None:
    fields = section_fields(type(section))
    data = section._m_data
    dirty = section._m_dirty or set()
    by_name = fields_by_name(type(section))
    if data is not None:
        for key, raw_value in data.items():
            fm = by_name.get(key)
            if fm is None or (fm.kind == "quantity" and fm.attribute not in dirty):
                out[key] = copy_json(raw_value)
                continue
            try:
                current = object.__getattribute__(section, fm.attribute)
            except AttributeError:  # never read: raw is current
                out[key] = copy_json(raw_value)
                continue
            if fm.kind == "sub_section":
                out[key] = (
                    _sub_sections_like(raw_value, current, work, section, fm.name)
                    if fm.attribute not in dirty
                    else _child_out(current, work, section, fm.name)
                )
            else:
                dumped = dump_field(section, fm, current)
                if dumped is not None:
                    out[key] = dumped
    for attr, fm in fields.items():
        if fm.name in out or (data is not None and attr not in dirty):
            continue
        try:
            current = object.__getattribute__(section, attr)
        except AttributeError:
            continue
        if current is None or (fm.kind == "sub_section" and isinstance(current, list) and not current):
            continue
        out[fm.name] = _child_out(current, work, section, fm.name) if fm.kind == "sub_section" else dump_field(section, fm, current)


def _sub_sections_like(
    raw: Any, current: Any, work: list[tuple[SectionBase, dict[str, Any]]], parent: SectionBase, name: str
) -> Any:
    """Write read sub-sections back in the form the raw data used (list or keyed dict)."""
    if raw is None and (current is None or (isinstance(current, list) and not list.__len__(current))):
        return None  # an explicit null stays null; an empty list would be a change
    if isinstance(raw, dict) and isinstance(current, list) and all(isinstance(v, dict) for v in raw.values()):
        keys = keyed_order(raw)
        items = list(list.__iter__(current))
        if len(keys) == len(items):
            return {k: _child_out(v, work) if isinstance(v, SectionBase) else copy_json(raw[k]) for k, v in zip(keys, items)}
    if isinstance(current, SectionBase) and isinstance(raw, list):  # single stored as [one]
        return [_child_out(current, work, parent, name)]
    if isinstance(current, (list, SectionBase)):
        return _child_out(current, work, parent, name)
    return copy_json(raw)


def copy_json(value: Any) -> Any:
    """A deep copy of JSON data, iterative so that deep nesting cannot overflow the stack.

    A float array that stands in for its raw list (``_keep_converted`` in
    :mod:`archivemap.archive._loading`) is written as that list.
    """
    if not isinstance(value, (dict, list)):
        return value.tolist() if type(value) is np.ndarray else value
    root: Any = {} if isinstance(value, dict) else []
    stack: list[tuple[Any, Any]] = [(value, root)]
    while stack:
        src, dst = stack.pop()
        if isinstance(src, dict):
            for k, v in src.items():
                if isinstance(v, (dict, list)):
                    new: Any = {} if isinstance(v, dict) else []
                    dst[k] = new
                    stack.append((v, new))
                else:
                    dst[k] = v.tolist() if type(v) is np.ndarray else v
        else:
            for v in src:
                if isinstance(v, (dict, list)):
                    new = {} if isinstance(v, dict) else []
                    dst.append(new)
                    stack.append((v, new))
                else:
                    dst.append(v)
    return root

