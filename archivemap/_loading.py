"""Machinery behind lazy sections: read one field, write one section back to JSON."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from archivemap.converter import dump_value, load_value
from archivemap.errors import (
    ArchiveDataError,
    DefinitionError,
    ReferenceResolutionError,
    SchemaMismatchWarning,
)
from archivemap.fields import FieldMeta
from archivemap.sections import Section, _fields_by_name, section_fields

if TYPE_CHECKING:
    from archivemap._context import ArchiveContext


class _LazyPath:
    """An archive path computed only when a message needs it (paths cost O(depth))."""

    __slots__ = ("section", "name", "index")

    def __init__(self, section: Section, name: str, index: int | None = None) -> None:
        self.section, self.name, self.index = section, name, index

    def __str__(self) -> str:
        text = f"{self.section.m_path().rstrip('/')}/{self.name}"
        return text if self.index is None else f"{text}/{self.index}"

    __format__ = lambda self, spec: format(str(self), spec)  # noqa: E731


def _child_path(section: Section, name: str) -> Any:
    return _LazyPath(section, name)


def load_field(section: Section, fm: FieldMeta) -> Any:
    """Convert property ``fm`` of a loaded section from its raw JSON (first access)."""
    data = section._m_data
    if data is None:  # constructed, not loaded: attrs __init__ filled every slot
        return None if not (fm.kind == "sub_section" and fm.repeats) else []
    ctx: ArchiveContext | None = section._m_ctx
    if fm.name not in data and ctx is not None and ctx.fetcher is not None:
        path = _path_tuple(section) + (fm.name,)
        fetcher = ctx.fetcher
        if not fetcher.is_downloaded(path):
            if fm.kind == "sub_section" and hasattr(fetcher, "probe"):
                # a section is learned, not downloaded whole: its properties come when read
                fetcher.probe(section, fm.name, fm.repeats, [fm.key_quantity or "", "name"])
            else:
                fetcher.fetch(section.m_root, path)
            data = section._m_data
    value = data.get(fm.name)
    if value is None:
        if fm.kind == "sub_section":
            return [] if fm.repeats else None
        if fm.default is not None and not fm.is_reference:
            return load_value(list(fm.default) if isinstance(fm.default, tuple) else fm.default, fm, _child_path(section, fm.name))
        return None
    if fm.kind == "sub_section":
        return _load_sub_section(section, fm, value)
    if fm.is_reference:
        return _load_reference(section, fm, value)
    return load_value(value, fm, _child_path(section, fm.name))


def _path_tuple(section: Section) -> tuple[Any, ...]:
    parts: list[Any] = []
    node: Section | None = section
    while node is not None and node._m_key is not None:
        name, index = node._m_key
        if index is not None:
            parts.append(index)
        parts.append(name)
        node = node._m_parent
    return tuple(reversed(parts))


def _warn(path: str, message: str) -> None:
    warnings.warn(f"{path}: {message}; kept as it was", SchemaMismatchWarning, stacklevel=5)


def _class_for_item(section: Section, fm: FieldMeta, declared: type[Section], item: dict[str, Any], path: Any) -> type[Section]:
    m_def = item.get("m_def")
    if not isinstance(m_def, str):
        m_def = item.get("m_def_id")  # 2.0 may write only the definition id
    if not isinstance(m_def, str) or section._m_ctx is None:
        return declared
    ctx = section._m_ctx
    try:
        sdef = ctx.resolve_definition(m_def)
        cls = ctx.schema.class_for(sdef)
    except (DefinitionError, ReferenceResolutionError, KeyError) as exc:
        if m_def.rpartition(".")[2] == declared.m_qualified_name.rpartition(".")[2]:
            # NOMAD resolves m_def by Python import, and modules re-export sections under
            # other module paths (nomad.datamodel.metainfo.system.Atoms is runschema's).
            return declared
        _warn(path, f"m_def {m_def!r} cannot be resolved ({exc}); read as {declared.m_qualified_name}")
        return declared
    return cls


def _load_sub_section(section: Section, fm: FieldMeta, value: Any) -> Any:
    ctx = section._m_ctx
    path = _child_path(section, fm.name)
    if ctx is None:
        raise DefinitionError(f"{path}: section was loaded without a schema")
    declared = ctx.schema.sub_section_class(type(section), fm)
    if fm.repeats:
        items: list[Any]
        if isinstance(value, dict):  # keyed form: {key: {..., m_parent_index}} (spec §2.1)
            if not all(isinstance(v, dict) for v in value.values()):
                _warn(path, "repeating sub-section is neither a list nor a dict of sections")
                return value
            items = sorted(value.values(), key=lambda v: v.get("m_parent_index", 0))
        elif isinstance(value, list):
            items = value
        else:
            _warn(path, f"repeating sub-section holds a {type(value).__name__}")
            return value
        out: list[Any] = []
        for i, item in enumerate(items):
            if item is None:
                out.append(None)
            elif isinstance(item, dict):
                cls = _class_for_item(section, fm, declared, item, _LazyPath(section, fm.name, i))
                out.append(cls.m_load(item, section, (fm.name, i), ctx))
            else:
                _warn(f"{path}/{i}", f"sub-section item is a {type(item).__name__}")
                out.append(item)
        if ctx.fetcher is not None:
            from archivemap.remote import RemoteSectionList

            return RemoteSectionList(out, section, fm.name)
        return out
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        value_dict = value[0]
        _warn(path, "single sub-section stored as a one-item list")
        return _class_for_item(section, fm, declared, value_dict, path).m_load(value_dict, section, (fm.name, None), ctx)
    if not isinstance(value, dict):
        _warn(path, f"sub-section holds a {type(value).__name__}")
        return value
    cls = _class_for_item(section, fm, declared, value, path)
    return cls.m_load(value, section, (fm.name, None), ctx)


def _load_reference(section: Section, fm: FieldMeta, value: Any) -> Any:
    from archivemap.references import parse_reference, resolve_reference

    path = _child_path(section, fm.name)
    if isinstance(value, list):
        return [
            v if not isinstance(v, str) or parse_reference(v) is None
            else resolve_reference(section, v, source_path=f"{path}/{i}")
            for i, v in enumerate(value)
        ]
    if isinstance(value, str):
        if parse_reference(value) is None:  # e.g. dataset ids in metadata.datasets
            return value
        return resolve_reference(section, value, source_path=str(path))
    if isinstance(value, dict):  # resolve-inplace answers put the target itself here
        return value
    _warn(path, f"reference holds a {type(value).__name__}")
    return value


def dump_field(section: Section, fm: FieldMeta, value: Any) -> Any:
    """The JSON of a field's current Python value."""
    if value is None:
        return None
    if fm.kind == "sub_section":
        if isinstance(value, list):
            return [v.to_dict() if isinstance(v, Section) else v for v in value]
        return value.to_dict() if isinstance(value, Section) else value
    if fm.is_reference:
        def ref(v: Any) -> Any:
            if isinstance(v, Section):
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


def section_to_dict(section: Section) -> dict[str, Any]:
    """The section's JSON: raw data for untouched properties, dumped values for the rest.

    Sub-sections that were read are written from their objects (so edits deeper down show);
    the rest is the raw JSON, copied. Key order follows the raw data, new keys come last.
    Iterative: a child section is written into a placeholder dict taken from a work list.
    """
    _adopt_built(section.m_root)  # sections appended to lists since loading get their place
    root_out: dict[str, Any] = {}
    work: list[tuple[Section, dict[str, Any]]] = [(section, root_out)]
    while work:
        current, out = work.pop()
        _fill_dict(current, out, work)
    return root_out


def _child_out(
    value: Any, work: list[tuple[Section, dict[str, Any]]], parent: Section | None = None, name: str | None = None
) -> Any:
    if isinstance(value, Section):
        if parent is not None and value._m_parent is None and name is not None:
            _adopt(value, parent, name, None)  # e.g. appended to a list after loading
        placeholder: dict[str, Any] = {}
        work.append((value, placeholder))
        return placeholder
    if isinstance(value, list):
        out = []
        for i, v in enumerate(list.__iter__(value)):
            if isinstance(v, Section) and parent is not None and name is not None and v._m_key != (name, i):
                _adopt(v, parent, name, i)
            out.append(_child_out(v, work))
        return out
    return value


def _adopt_built(root: Section) -> None:
    """Give every built sub-section its parent and position (iterative, built slots only)."""
    stack = [root]
    while stack:
        node = stack.pop()
        for fm in section_fields(type(node)).values():
            if fm.kind != "sub_section":
                continue
            try:
                value = object.__getattribute__(node, fm.attribute)
            except AttributeError:
                continue
            if isinstance(value, Section):
                if value._m_parent is not node:
                    _adopt(value, node, fm.name, None)
                stack.append(value)
            elif isinstance(value, list):
                for i, item in enumerate(list.__iter__(value)):
                    if isinstance(item, Section):
                        if item._m_key != (fm.name, i) or item._m_parent is not node:
                            _adopt(item, node, fm.name, i)
                        stack.append(item)


def _adopt(child: Section, parent: Section, name: str, index: int | None) -> None:
    object.__setattr__(child, "_m_parent", parent)
    object.__setattr__(child, "_m_key", (name, index))
    if child._m_ctx is None:
        object.__setattr__(child, "_m_ctx", parent._m_ctx)


def _fill_dict(section: Section, out: dict[str, Any], work: list[tuple[Section, dict[str, Any]]]) -> None:
    fields = section_fields(type(section))
    data = section._m_data
    dirty = section._m_dirty or set()
    by_name = _fields_by_name(type(section))
    if data is not None:
        for key, raw_value in data.items():
            fm = by_name.get(key)
            if fm is None or (fm.kind == "quantity" and fm.attribute not in dirty):
                out[key] = _copy_json(raw_value)
                continue
            try:
                current = object.__getattribute__(section, fm.attribute)
            except AttributeError:  # never read: raw is current
                out[key] = _copy_json(raw_value)
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
    raw: Any, current: Any, work: list[tuple[Section, dict[str, Any]]], parent: Section, name: str
) -> Any:
    """Write read sub-sections back in the form the raw data used (list or keyed dict)."""
    if isinstance(raw, dict) and isinstance(current, list) and all(isinstance(v, dict) for v in raw.values()):
        keys = sorted(raw, key=lambda k: raw[k].get("m_parent_index", 0))
        items = list(list.__iter__(current))
        if len(keys) == len(items):
            return {k: _child_out(v, work) if isinstance(v, Section) else _copy_json(raw[k]) for k, v in zip(keys, items)}
    if isinstance(current, Section) and isinstance(raw, list):  # single stored as [one]
        return [_child_out(current, work, parent, name)]
    if isinstance(current, (list, Section)):
        return _child_out(current, work, parent, name)
    return _copy_json(raw)


def _copy_json(value: Any) -> Any:
    """A deep copy of JSON data, iterative so that deep nesting cannot overflow the stack."""
    if not isinstance(value, (dict, list)):
        return value
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
                    dst[k] = v
        else:
            for v in src:
                if isinstance(v, (dict, list)):
                    new = {} if isinstance(v, dict) else []
                    dst.append(new)
                    stack.append((v, new))
                else:
                    dst.append(v)
    return root
