"""How sections look in a terminal (``pretty``) and in Jupyter (``html``).

Both show a section as a tree: its set quantities with values in *display units* (eV, Å,
GPa ... see :mod:`archivemap.views.units`; the stored values never change), and its
sub-sections below it, up to ``max_depth`` levels and ``max_items`` items per list, so showing
the root of a 500 MB archive reads only what is shown. Where the tree stops (depth, items, a
row budget) a line says how to go on (``archive.run[0].calculation[5]``): there are no dead
ends. The root of an archive opens with a summary (entry, formula, program, method,
workflow, number of calculations). Values read as a person writes them: ``0``, ``True``,
``2022-12-14 10:59:19 UTC``, never ``np.int32(0)`` or ``datetime.datetime(...)``.

Reference quantities are shown as the reference string they hold; they are never resolved for
display (that could load another archive). The summary reads only what the archive already
holds (it never downloads). Both walks are iterative.

Archive data is untrusted: ``html`` escapes every string that comes from it.

This module is what IPython's display hooks on sections load (the library's one deferred
import), so it must not import the archive layer: it reads sections through the
:class:`SectionView` protocol, and tells a sub-section from a value the way the metainfo layer
defines section classes (attrs classes whose fields carry ``FieldMeta``).
"""

from __future__ import annotations

import datetime
import html as _html
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol

import attrs

from archivemap._lazy import deferred_import
from archivemap.metainfo.fields import FieldMeta, section_fields
from archivemap.views.units import to_display, unit_text

if TYPE_CHECKING:
    import numpy as np
else:
    # numpy is imported by the first array shown, not by importing the views
    np = deferred_import("numpy")

__all__ = ["SectionView", "format_value", "html", "pretty", "python_path", "summary"]


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
#: the HTML tree opens deeper (closed ``<details>`` cost nothing to look at) within a budget
HTML_MAX_DEPTH = 6
HTML_MAX_ROWS = 2500
#: below an archive's summary, the sections a scientist opens first
_OPEN_AT_ROOT = ("run", "workflow2", "data")


# -- values ------------------------------------------------------------------------------------
def _shorten(text: str, limit: int = MAX_STRING) -> str:
    text = _printable(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _printable(text: str) -> str:
    """Text from an archive, with what would steer the terminal written as escapes.

    Everything Python does not call printable: controls (escape sequences recolour or clear
    the screen), format characters (U+202E turns the rest of a line around; zero-width
    and soft hyphens hide), line and paragraph separators, unassigned code points. The
    common case, printable text, costs one C-level check.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}" for c in text)


def format_value(value: Any, max_items: int = MAX_ITEMS) -> str:
    """One line for a quantity value: numbers with units, arrays summarised like numpy does.

    Quantities are shown in the display unit in force (eV, Å, GPa ...), with the short unit
    symbol at the end (``-86.6 eV``); arrays longer than ``max_items`` elements show their
    first and last few items, then the shape.
    """
    unit = ""
    magnitude = value
    if hasattr(value, "magnitude") and hasattr(value, "units"):
        stamp = _timestamp(value)
        if stamp is not None:
            return stamp
        value = to_display(value)
        magnitude = value.magnitude
        unit = unit_text(value.units)
    text = _format_magnitude(magnitude, max_items)
    return f"{text} {unit}" if unit else text


#: a scalar time beyond ~3 years is a wall-clock time stored in seconds since 1970
_UNIX_TIME_FROM = 1e8


def _timestamp(value: Any) -> str | None:
    """A scalar time of a second or more in seconds (run times; ps are for simulation
    times), and of more than ~3 years as the date it stands for (Unix time, UTC)."""
    try:
        if value.dimensionality != {"[time]": 1} or np.ndim(value.magnitude) != 0:
            return None
        seconds = float(value.to("s").magnitude)
    except (AttributeError, TypeError, ValueError):
        return None
    if 1.0 <= abs(seconds) < _UNIX_TIME_FROM:  # a run time, not a simulation time: in s
        return f"{seconds:.6g} s"
    if not _UNIX_TIME_FROM <= seconds < 1e11:
        return None
    date = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return f"{date:%Y-%m-%d %H:%M:%S} UTC ({seconds:.10g} s)"


def _format_number(value: float) -> str:
    # ten significant digits: an all-electron total energy (-144690.2132 eV) must show the
    # meV steps of its SCF iterations; beyond that are the digits a unit conversion adds
    return f"{value:.10g}"


def _format_magnitude(value: Any, max_items: int) -> str:
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return _format_magnitude(value[()], max_items)  # its numpy scalar: float32 stays one
        edge = max(1, max_items // 2)
        body = np.array2string(value, threshold=max_items, edgeitems=edge, precision=4, separator=", ")
        body = " ".join(body.split())  # one line, whatever numpy wrapped
        return f"{_shorten(body, 4 * MAX_STRING)} shape {value.shape}"
    if isinstance(value, np.float32):  # seven digits are all a float32 has; more are noise
        return f"{float(value):.7g}"
    if isinstance(value, np.generic):  # np.int32(0), np.True_, np.float64(...) read as numbers
        return _format_magnitude(value.item(), max_items)
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None and value.utcoffset() == datetime.timedelta(0):
            return value.strftime("%Y-%m-%d %H:%M:%S UTC")
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, str):
        return repr(_shorten(value))
    if isinstance(value, (list, tuple)) and len(value) > 1 and all(isinstance(v, dict) for v in value):
        keys = list(dict.fromkeys(k for v in value[:max_items] for k in v))  # JSON records: say what they hold
        shown = ", ".join(map(str, keys[:max_items])) + (", …" if len(keys) > max_items else "")
        return f"[{len(value)} objects with {shown}]"
    if isinstance(value, (list, tuple)):
        items = [_format_magnitude(v, max_items) for v in value[:max_items]]
        more = f", … {len(value) - max_items} more" if len(value) > max_items else ""
        return _shorten(f"[{', '.join(items)}", 4 * MAX_STRING) + f"{more}]"
    if isinstance(value, dict):
        keys = list(value)[:max_items]
        more = ", …" if len(value) > max_items else ""
        return "{" + ", ".join(f"{k!r}: …" for k in keys) + more + "}"
    if isinstance(value, float):
        return _format_number(value)
    if isinstance(value, int):
        return str(value)
    if hasattr(value, "magnitude") and hasattr(value, "units"):  # a quantity inside a list
        return format_value(value, max_items)
    return _shorten(str(value))


# -- where things are ------------------------------------------------------------------------------
def python_path(section: Section, root_name: str = "archive") -> str:
    """The Python expression that reaches a section: ``/run/0/calculation/5`` →
    ``archive.run[0].calculation[5]``."""
    out = root_name
    for part in section.m_path().strip("/").split("/"):
        if not part:
            continue
        out += f"[{part}]" if part.lstrip("-").isdigit() else f".{part}"
    return out


# -- the summary of an archive root -----------------------------------------------------------------
def _peek(section: Any, path: str) -> Any:
    """A value along a dotted path, read only where it is set (never downloads, never raises)."""
    node = section
    for segment in path.split("."):
        match = re.fullmatch(r"(\w+)(?:\[(-?\d+)\])?", segment)
        if match is None or node is None:
            return None
        name, index = match.group(1), match.group(2)
        try:
            if not node.m_is_set(name):
                return None
            node = getattr(node, name)
            if index is not None:
                node = node[int(index)] if isinstance(node, list) and node else None
        except Exception:  # a display must not fail on bad data
            return None
    return node


def _text(value: Any) -> str | None:
    if value is None or value == [] or value == "":
        return None
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return format_value(value).strip("'") if not isinstance(value, str) else _printable(value)


def summary(archive: Section) -> list[tuple[str, str]]:
    """What an archive is, as (label, text) rows: entry, formula, program, method, workflow,
    calculations, final energy. Only what the archive holds; empty for other sections."""
    fields = section_fields(type(archive))
    if "metadata" not in fields and "run" not in fields:
        return []
    rows: list[tuple[str, str | None]] = []
    name = _peek(archive, "metadata.entry_name") or _peek(archive, "metadata.mainfile")
    rows.append(("entry", _text(name)))
    rows.append(("entry id", _text(_peek(archive, "metadata.entry_id"))))
    formula = (
        _peek(archive, "results.material.chemical_formula_hill")
        or _peek(archive, "results.material.chemical_formula_descriptive")
        or _peek(archive, "run[0].system[-1].chemical_composition_hill")
    )
    rows.append(("formula", _text(formula)))
    program = _peek(archive, "run[0].program.name") or _peek(archive, "results.method.simulation.program_name")
    if program:
        version = _peek(archive, "run[0].program.version") or _peek(archive, "results.method.simulation.program_version")
        program = f"{program} {version}" if version else program
    rows.append(("program", _text(program)))
    method = _text(_peek(archive, "results.method.method_name"))
    xc = _text(_peek(archive, "results.method.simulation.dft.xc_functional_names"))
    basis = _text(_peek(archive, "results.method.simulation.dft.basis_set_type"))
    rows.append(("method", ", ".join(t for t in (method, xc, basis) if t) or None))
    workflow = _peek(archive, "results.method.workflow_name")
    if workflow is None and _peek(archive, "workflow2") is not None:
        workflow = type(_peek(archive, "workflow2")).__name__
    if workflow is None:
        workflow = _peek(archive, "workflow[0].type")
    ensemble = _text(_peek(archive, "workflow2.method.thermodynamic_ensemble"))
    workflow_text = _text(workflow)
    if workflow_text and ensemble:
        workflow_text += f" ({ensemble})"
    rows.append(("workflow", workflow_text))
    calculations = _peek(archive, "run[0].calculation")
    if isinstance(calculations, list) and calculations:
        rows.append(("calculations", str(len(calculations))))
        energy = _peek(calculations[-1], "energy.total.value")
        if energy is not None:
            rows.append(("final energy", f"{format_value(energy)}  (run[0].calculation[-1])"))
    data = _peek(archive, "data")
    if data is not None:
        rows.append(("data", type(data).__name__))
    return [(label, text) for label, text in rows if text]


# -- what a section shows ------------------------------------------------------------------------
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


class _Row(NamedTuple):
    depth: int
    kind: str  # "s" section, "q" quantity, "more" items left out, "extras"
    name: str  # property name with index ("calculation[3]"), or the root's title
    text: str  # what follows the name
    node: Section | None  # the section of an "s" row; for "more", the owner
    hint: str = ""  # how to go on where the tree stops


def _rows(section: Section, max_depth: int, max_items: int, max_rows: int | None = None) -> Iterator[_Row]:
    """Depth-first rows of the tree, iteratively."""
    stack: list[_Row] = [_Row(0, "s", _title(section), section.m_path(), section)]
    emitted = 0
    while stack:
        row = stack.pop()
        emitted += 1
        over_budget = max_rows is not None and emitted >= max_rows
        yield row
        if row.kind != "s" or row.node is None or row.depth >= max_depth or over_budget:
            continue
        node, depth = row.node, row.depth
        children: list[_Row] = []
        for fm in node.m_set_fields():
            if fm.virtual:
                continue
            if fm.kind == "quantity":
                children.append(_Row(depth + 1, "q", fm.name, _quantity_text(node, fm, max_items), None))
                continue
            try:
                subs = _sub_sections(node, fm)
            except Exception as exc:  # a display must not fail on bad data
                children.append(_Row(depth + 1, "q", fm.name, f"<{type(exc).__name__}: {_shorten(str(exc))}>", None))
                continue
            for i, sub in enumerate(subs[:max_items]):
                name = f"{fm.name}[{i}]" if fm.repeats else fm.name
                children.append(_Row(depth + 1, "s", name, _title(sub), sub))
            if len(subs) > max_items:
                first = subs[max_items]
                hint = python_path(first)
                children.append(
                    _Row(depth + 1, "more", fm.name, f"… {len(subs) - max_items} more", node, f"{hint[: hint.rfind('[')]}[{max_items}:]")
                )
        extras = node.m_extras
        if extras:
            keys = ", ".join(_printable(str(key)) for key in list(extras)[:max_items]) + (", …" if len(extras) > max_items else "")
            children.append(_Row(depth + 1, "extras", "", f"(not in the schema: {keys})", None))
        stack.extend(reversed(children))


def _has_content(section: Section | None) -> bool:
    if section is None:
        return False
    return bool(section.m_set_fields()) or bool(section.m_extras)


def pretty(section: Section, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS) -> str:
    """An indented text tree of a section (what IPython shows for it).

    Args:
        section: any section.
        max_depth: how many levels of sub-sections to open; deeper ones show as one line
            ending in ``…``.
        max_items: items shown per repeating sub-section and per array edge.

    Returns:
        The tree as text, one line per quantity or sub-section; an archive root starts with
        its summary. Anything else (an absent sub-section, a value) is one line.
    """
    if not _is_section(section):
        return _not_a_section(section)
    lines = []
    for row in _rows(section, max_depth, max_items):
        indent = "  " * row.depth
        if row.depth == 0:
            lines.append(f"{row.name} {row.text}")
            lines.extend(f"  # {label}: {text}" for label, text in summary(section))
        elif row.kind == "s":
            suffix = " …" if row.depth >= max_depth and _has_content(row.node) else ""
            lines.append(f"{indent}{row.name}: {row.text}{suffix}")
        elif row.kind == "q":
            lines.append(f"{indent}{row.name} {row.text}")
        elif row.kind == "more":
            lines.append(f"{indent}{row.name}: {row.text}")
        else:
            lines.append(f"{indent}{row.text}")
    return "\n".join(lines)


def _not_a_section(value: Any) -> str:
    """One line for what ``pretty``/``html`` were given instead of a section: an absent
    sub-section (``calc.energy`` of a calculation without energy) says so, with its path."""
    if value is None:
        return "not set (None)"
    path = _absent_path(value)
    if path is not None:
        return f"not set: {_printable(path)}"
    return f"not a section: {_shorten(format_value(value))}"


def _absent_path(value: Any) -> str | None:
    """The path of an absent sub-section (``Absent``: equal to ``None``, with an ``m_path``),
    else ``None``; asked without importing the archive layer, which this module may not."""
    try:
        if (value == None) is not True:  # noqa: E711 - Absent defines == None; arrays compare elementwise
            return None
        path = value.m_path()
    except Exception:  # anything else, or without a path
        return None
    return path if isinstance(path, str) else None


_STYLE = """<style>
.archivemap-section{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;
 font-size:12.5px;line-height:1.5;color:#1f2328;max-width:100%}
.archivemap-section details>div{margin-left:.45em;padding-left:1em;border-left:1px solid #d8dee4}
.archivemap-section summary{cursor:pointer;padding:1px 0}
.archivemap-section summary:hover{background:#f3f6f9}
.archivemap-section .am-n{color:#0550ae}
.archivemap-section .am-t{color:#6e7781}
.archivemap-section .am-ref{color:#116329}
.archivemap-section .am-hint{color:#6e7781;font-style:italic}
.archivemap-section .am-q{padding-left:1.05em;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.archivemap-section table.am-summary{border-collapse:collapse;margin:4px 0 8px 0;font-family:inherit;font-size:inherit}
.archivemap-section table.am-summary td{padding:1px 14px 1px 0;border:none;text-align:left;vertical-align:top}
.archivemap-section table.am-summary td:first-child{color:#6e7781}
.archivemap-section .am-root{font-weight:600}
</style>"""


def html(
    section: Section,
    max_depth: int = HTML_MAX_DEPTH,
    max_items: int = MAX_ITEMS,
    max_rows: int | None = HTML_MAX_ROWS,
) -> str:
    """A collapsible HTML tree of a section (what Jupyter shows for it).

    Sub-sections are ``<details>`` elements, open for the first level; an archive root starts
    with a summary table. Where the tree stops (``max_depth``, ``max_items``, ``max_rows``) a
    line gives the expression that shows the rest (``archive.run[0].calculation[5]``). Every
    piece of text from the archive is HTML-escaped.

    Args:
        section: any section.
        max_depth: how many levels of sub-sections to include.
        max_items: items shown per repeating sub-section and per array edge.
        max_rows: rows rendered at most (``None``: no limit); past it, sections show how to
            open them.

    Returns:
        An HTML fragment.
    """
    esc = _html.escape
    if not _is_section(section):
        return f'<div class="archivemap-section">{_STYLE}<span class="am-hint">{esc(_not_a_section(section))}</span></div>'
    out = ['<div class="archivemap-section">', _STYLE]
    open_depths: list[int] = []
    rows = list(_rows(section, max_depth, max_items, max_rows))
    facts = summary(section)
    expanded = {id(rows[i].node) for i in range(len(rows) - 1) if rows[i + 1].depth > rows[i].depth}
    for row in rows:
        while open_depths and open_depths[-1] >= row.depth:
            open_depths.pop()
            out.append("</div></details>")
        if row.depth == 0:
            qualified = esc(type(row.node).m_qualified_name) if row.node is not None else ""
            out.append(
                f'<details open><summary title="{qualified}"><span class="am-root">{esc(row.name)}</span> '
                f'<span class="am-t">{esc(row.text)}</span></summary><div>'
            )
            if facts:
                out.append('<table class="am-summary">')
                out.extend(f"<tr><td>{esc(label)}</td><td>{esc(text)}</td></tr>" for label, text in facts)
                out.append("</table>")
            open_depths.append(0)
        elif row.kind == "s":
            qualified = esc(type(row.node).m_qualified_name) if row.node is not None else ""
            head = f'<span class="am-n">{esc(row.name)}</span> <span class="am-t">{esc(row.text)}</span>'
            if id(row.node) in expanded:
                opened = " open" if row.depth == 1 and (not facts or row.name.split("[")[0] in _OPEN_AT_ROOT) else ""
                out.append(f'<details{opened}><summary title="{qualified}">{head}</summary><div>')
                open_depths.append(row.depth)
            elif _has_content(row.node):
                where = esc(python_path(row.node)) if row.node is not None else ""
                out.append(
                    f'<details><summary title="{qualified}">{head}</summary><div>'
                    f'<div class="am-q am-hint">display <code>{where}</code> to open it</div></div></details>'
                )
            else:
                out.append(f'<div class="am-q">{head} <span class="am-t">(empty)</span></div>')
        elif row.kind == "q":
            css = "am-ref" if row.text.startswith("->") else ""
            out.append(
                f'<div class="am-q" title="{esc(row.text)}"><span class="am-n">{esc(row.name)}</span> '
                f'<span class="{css}">{esc(row.text)}</span></div>'
            )
        elif row.kind == "more":
            out.append(
                f'<div class="am-q"><span class="am-n">{esc(row.name)}</span> {esc(row.text)} '
                f'<span class="am-hint">(<code>{esc(row.hint)}</code>)</span></div>'
            )
        else:
            out.append(f'<div class="am-q am-t">{esc(row.text)}</div>')
    out.extend("</div></details>" for _ in open_depths)
    out.append("</div>")
    return "".join(out)
