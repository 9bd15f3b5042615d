"""How sections look in a terminal (``pretty``) and in Jupyter (``html``).

Both show a section as a tree: its set quantities with values, units and shapes, and its
sub-sections below it, up to ``max_depth`` levels and ``max_items`` items per list, so showing
the root of a 500 MB archive reads only what is shown. Reference quantities are shown as the
reference string they hold; they are never resolved for display (that could load another
archive). Both walks are iterative.

Archive data is untrusted: ``html`` escapes every string that comes from it.

This module is what IPython's display hooks on sections load (the library's one deferred
import), so it must not import the archive layer: it reads sections through the
:class:`SectionView` protocol, and tells a sub-section from a value the way the metainfo layer
defines section classes (attrs classes whose fields carry ``FieldMeta``).
"""

from __future__ import annotations

import html as _html
from collections.abc import Iterator
from typing import Any, ClassVar, Protocol

import attrs
import numpy as np

from archivemap.metainfo.fields import FieldMeta, section_fields

__all__ = ["SectionView", "format_value", "html", "pretty"]


class SectionView(Protocol):
    """What showing a section reads of it (``archivemap.Section`` provides all of it)."""

    m_qualified_name: ClassVar[str]

    @property
    def m_extras(self) -> dict[str, Any]: ...

    def m_path(self) -> str: ...

    def m_is_set(self, name: str) -> bool: ...

    def m_set_fields(self) -> list[FieldMeta]: ...

    def m_reference(self, name: str) -> Any: ...


def _is_section(value: Any) -> bool:
    return attrs.has(type(value)) and bool(section_fields(type(value)))


Section = SectionView  # the annotations below read as what they are

MAX_DEPTH = 3
MAX_ITEMS = 5
MAX_STRING = 80


# -- values ------------------------------------------------------------------------------------
def _short_unit(unit: Any) -> str:
    try:
        return f"{unit:~P}"
    except (TypeError, ValueError):
        return str(unit)


def _shorten(text: str, limit: int = MAX_STRING) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_value(value: Any, max_items: int = MAX_ITEMS) -> str:
    """One line for a quantity value: numbers with units, arrays summarised like numpy does.

    Arrays longer than ``max_items`` elements show their first and last few items, then the
    shape; quantities with units end with the short unit symbol (``3.46e-20 J``).
    """
    unit = ""
    magnitude = value
    if hasattr(value, "magnitude") and hasattr(value, "units"):
        magnitude = value.magnitude
        unit = _short_unit(value.units)
        unit = "" if unit in ("", "dimensionless") else unit
    text = _format_magnitude(magnitude, max_items)
    return f"{text} {unit}" if unit else text


def _format_magnitude(value: Any, max_items: int) -> str:
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return _format_magnitude(value.item(), max_items)
        edge = max(1, max_items // 2)
        body = np.array2string(value, threshold=max_items, edgeitems=edge, precision=4, separator=", ")
        body = " ".join(body.split())  # one line, whatever numpy wrapped
        return f"{_shorten(body, 4 * MAX_STRING)} shape {value.shape}"
    if isinstance(value, str):
        return repr(_shorten(value))
    if isinstance(value, (list, tuple)):
        items = [_format_magnitude(v, max_items) for v in value[:max_items]]
        more = f", … {len(value) - max_items} more" if len(value) > max_items else ""
        return _shorten(f"[{', '.join(items)}", 4 * MAX_STRING) + f"{more}]"
    if isinstance(value, dict):
        keys = list(value)[:max_items]
        more = ", …" if len(value) > max_items else ""
        return "{" + ", ".join(f"{k!r}: …" for k in keys) + more + "}"
    if isinstance(value, float):
        return f"{value:.6g}"
    return _shorten(repr(value))


# -- what a section shows ------------------------------------------------------------------------
def _set_fields(section: Section) -> Iterator[FieldMeta]:
    """The fields of a section that hold something, cheaply for loaded sections."""
    fields = section_fields(type(section))
    for fm in fields.values():
        if not fm.virtual and section.m_is_set(fm.attribute):
            yield fm


def _quantity_text(section: Section, fm: FieldMeta, max_items: int) -> str:
    if fm.is_reference:
        ref = section.m_reference(fm.attribute)
        if isinstance(ref, list):
            shown = ", ".join(_shorten(str(r)) for r in ref[:max_items])
            more = f", … {len(ref) - max_items} more" if len(ref) > max_items else ""
            return f"-> [{shown}{more}]"
        return f"-> {_shorten(str(ref))}"
    try:
        value = getattr(section, fm.attribute)
    except Exception as exc:  # a display must not fail on bad data; say what happened
        return f"<{type(exc).__name__}: {_shorten(str(exc))}>"
    return f"= {format_value(value, max_items)}"


def _sub_sections(section: Section, fm: FieldMeta) -> list[Section]:
    value = getattr(section, fm.attribute)
    items = value if isinstance(value, list) else [value]
    return [item for item in items if _is_section(item)]


def _title(section: Section) -> str:
    return type(section).__name__


_Row = tuple[int, str, str, Section | None]  # depth, kind ("q", "s", "more"), text, section


def _rows(section: Section, max_depth: int, max_items: int) -> Iterator[_Row]:
    """Depth-first rows of the tree, iteratively: (depth, kind, text, section to open)."""
    stack: list[_Row] = [(0, "s", f"{_title(section)} {section.m_path()}", section)]
    while stack:
        depth, kind, text, node = stack.pop()
        yield depth, kind, text, node
        if node is None or depth >= max_depth:
            continue
        children: list[_Row] = []
        for fm in _set_fields(node):
            if fm.kind == "quantity":
                children.append((depth + 1, "q", f"{fm.name} {_quantity_text(node, fm, max_items)}", None))
                continue
            subs = _sub_sections(node, fm)
            for i, sub in enumerate(subs[:max_items]):
                name = f"{fm.name}[{i}]" if fm.repeats else fm.name
                children.append((depth + 1, "s", f"{name}: {_title(sub)}", sub))
            if len(subs) > max_items:
                children.append((depth + 1, "more", f"{fm.name}: … {len(subs) - max_items} more", None))
        extras = node.m_extras
        if extras:
            keys = ", ".join(list(extras)[:max_items]) + (", …" if len(extras) > max_items else "")
            children.append((depth + 1, "q", f"(not in the schema: {keys})", None))
        stack.extend(reversed(children))


def pretty(section: Section, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS) -> str:
    """An indented text tree of a section (what IPython shows for it).

    Args:
        section: any section.
        max_depth: how many levels of sub-sections to open; deeper ones show as one line.
        max_items: items shown per repeating sub-section and per array edge.

    Returns:
        The tree as text, one line per quantity or sub-section.
    """
    lines = []
    for depth, kind, text, node in _rows(section, max_depth, max_items):
        suffix = " …" if kind == "s" and depth >= max_depth and depth > 0 and _has_content(node) else ""
        lines.append("  " * depth + text + suffix)
    return "\n".join(lines)


def _has_content(section: Section | None) -> bool:
    if section is None:
        return False
    return bool(section.m_set_fields()) or bool(section.m_extras)


def html(section: Section, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS) -> str:
    """A collapsible HTML tree of a section (what Jupyter shows for it).

    Sub-sections are ``<details>`` elements, open for the first level. Every piece of text
    from the archive is HTML-escaped.

    Args:
        section: any section.
        max_depth: how many levels of sub-sections to include.
        max_items: items shown per repeating sub-section and per array edge.

    Returns:
        An HTML fragment.
    """
    esc = _html.escape
    out = ['<div class="archivemap-section" style="font-family: monospace; font-size: 90%">']
    open_depths: list[int] = []
    for depth, kind, text, node in _rows(section, max_depth, max_items):
        while open_depths and open_depths[-1] >= depth:
            open_depths.pop()
            out.append("</div></details>")
        if kind == "s" and depth < max_depth:
            opened = " open" if depth == 0 else ""
            qualified = esc(type(node).m_qualified_name) if node is not None else ""
            out.append(
                f'<details{opened}><summary title="{qualified}">{esc(text)}</summary>'
                '<div style="margin-left: 1.5em">'
            )
            open_depths.append(depth)
        else:
            out.append(f"<div>{esc(text)}</div>")
    out.extend("</div></details>" for _ in open_depths)
    out.append("</div>")
    return "".join(out)
