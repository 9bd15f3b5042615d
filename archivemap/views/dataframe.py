"""Tables of sections, archives or search results as pandas DataFrames (the ``pandas`` extra).

Tables never drop data silently:

- a column that names nothing in the schema is an error that names the nearest valid paths
  (``no column 'temprature' ...: did you mean 'temperature'?``);
- a value absent in some rows (FHI-aims' last geometry step has no total energy) is ``NaN``
  there, and the column is kept;
- the index is something to plot against: ``time [ps]`` when every row has a time, else
  ``step`` when every row has a step, else the row number; the section path is kept in the
  ``path`` column (and ``entry_id`` when the rows come from several entries).

Units: a column holds plain magnitudes and names its unit in its header, ``temperature [K]``,
``energy.total.value [eV]``. The unit is the display unit in force
(:mod:`archivemap.views.units`: eV, Å, GPa, ps by default; a time column whose values are
up to a second or more, such as run times, in s), or the one asked for in
``columns`` (``{"energy.total.value": "kJ/mol"}``, molar through the documented ``"molar"``
context), or the stored one with ``units="stored"``. Headers rather than pint-pandas dtypes:
a float column works with every pandas and matplotlib operation and survives CSV, Excel and
parquet with its unit in the name, while pint-pandas is another dependency whose extension
dtype is lost on export and lags pandas releases. Columns are fixed by the schema, not the
data, so a column's unit never depends on which rows happen to be set.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from archivemap._warnings import warn_at_caller
from archivemap.archive.base import partly_downloaded
from archivemap.archive.sections import Section
from archivemap.errors import MissingError, NotInSchemaError
from archivemap.metainfo.fields import FieldMeta, fields_by_name
from archivemap.paths import parse_path
from archivemap.units import check_unit_text
from archivemap.views.units import convert, display_unit, molar_registry, unit_text

__all__ = ["to_dataframe"]

_SCALARS = (str, int, float, bool, np.number, np.bool_)
#: how deep the schema is searched for suggestions when a column names nothing
_SUGGEST_DEPTH = 3
_SUGGEST_LIMIT = 20000


def _import_pandas() -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("tables need pandas: pip install 'archivemap[pandas]'") from None
    return pd


# -- columns, checked against the schema ----------------------------------------------------------
class _Column:
    """One column: the path read with ``m_get``, and the unit its header names."""

    def __init__(self, path: str, unit: Any, fm: FieldMeta | None, chosen: bool = False) -> None:
        self.path = path
        self.unit = unit  # a pint unit or None
        self.fm = fm
        self.chosen = chosen  # asked for in ``columns``, never adapted

    @property
    def header(self) -> str:
        text = unit_text(self.unit) if self.unit is not None else ""
        return f"{self.path} [{text}]" if text else self.path


def _names(path: str) -> list[str]:
    return [seg for seg in parse_path(path) if isinstance(seg, str) and not seg.lstrip("-").isdigit()]


def _sub_class(section_cls: type, fm: FieldMeta, ctx: Any) -> type | None:
    if ctx is None:
        return None
    try:
        return ctx.sub_section_class(section_cls, fm)  # type: ignore[no-any-return]
    except Exception:  # a schema that cannot build the class: no suggestion from there
        return None


def _schema_field(cls: type, path: str, ctx: Any) -> tuple[FieldMeta | None, str | None, type]:
    """The field a path ends at, or (None, the failing name, the class it was looked up in)."""
    current: type | None = cls
    owner: type = cls
    fm: FieldMeta | None = None
    names = _names(path)
    for i, name in enumerate(names):
        if current is None:
            return fm, None, cls
        fm = fields_by_name(current).get(name)
        if fm is None:
            return None, name, current
        owner = current
        if fm.is_reference:  # past a reference the target section decides; m_get follows it
            return fm, None, owner
        if fm.kind == "sub_section":
            current = _sub_class(current, fm, ctx) if i < len(names) - 1 else current
    return fm, None, owner


def _valid_paths(cls: type, ctx: Any) -> list[str]:
    """Dotted quantity paths below a class, breadth first, for suggestions."""
    out: list[str] = []
    queue: list[tuple[type, str, int]] = [(cls, "", 0)]
    while queue and len(out) < _SUGGEST_LIMIT:
        current, prefix, depth = queue.pop(0)
        for fm in fields_by_name(current).values():
            path = f"{prefix}{fm.name}"
            if fm.kind == "quantity":
                out.append(path)
            elif depth < _SUGGEST_DEPTH:
                sub = _sub_class(current, fm, ctx)
                if sub is not None:
                    queue.append((sub, f"{path}.", depth + 1))
    return out


def _suggestions(path: str, failed: str, owner: type, cls: type, ctx: Any) -> list[str]:
    """The nearest valid paths: the failing name's siblings, then whole paths."""
    names = _names(path)
    prefix = ".".join(names[: names.index(failed)]) if failed in names else ""
    siblings = [fm.name for fm in fields_by_name(owner).values()]
    near = [f"{prefix}.{s}" if prefix else s for s in difflib.get_close_matches(failed, siblings, n=3, cutoff=0.6)]
    whole = difflib.get_close_matches(".".join(names), _valid_paths(cls, ctx), n=5, cutoff=0.6)
    return list(dict.fromkeys(near + whole))[:5]


def _resolve_columns(
    sections: Sequence[Section], wanted: Sequence[tuple[str, str | None]], units: str
) -> list[_Column]:
    ureg = molar_registry()
    classes: dict[type, Section] = {}
    for section in sections:
        classes.setdefault(type(section), section)
    columns = []
    for path, target in wanted:
        found: FieldMeta | None = None
        failure: tuple[str, type, type, Any] | None = None
        for cls, example in classes.items():
            fm, failed, owner = _schema_field(cls, path, example.m_context)
            if failed is None:
                found = fm if found is None else found
                break
            failure = (failed, owner, cls, example.m_context)
        if found is None and failure is not None and not _read_anywhere(sections, path):
            failed, owner, cls, ctx = failure
            near = _suggestions(path, failed, owner, cls, ctx)
            hint = f": did you mean {', '.join(repr(n) for n in near)}?" if near else ""
            raise NotInSchemaError(
                f"no column {path!r}: {owner.m_qualified_name} has no property {failed!r}{hint}"  # type: ignore[attr-defined]
            )
        if target:
            unit = ureg.Unit(check_unit_text(target))  # pint evaluates what it parses
        elif found is not None and found.unit and units == "display":
            unit = display_unit(found.unit) or ureg.Unit(found.unit)
        elif found is not None and found.unit:
            unit = ureg.Unit(found.unit)
        else:
            unit = None
        columns.append(_Column(path, unit, found, chosen=bool(target)))
    return columns


def _read_anywhere(sections: Sequence[Section], path: str) -> bool:
    """Whether any row has the path (keys outside the schema, kept in ``m_extras``, count)."""
    for section in sections:
        try:
            section.m_get(path)
            return True
        except (MissingError, LookupError, AttributeError):
            continue
    return False


def _default_columns(sections: Sequence[Section], units: str) -> list[_Column]:
    """Every scalar quantity set in any row, in order of first appearance; references left out."""
    seen: dict[str, FieldMeta] = {}
    for section in sections:
        for fm in section.m_set_fields():
            if fm.kind != "quantity" or fm.virtual or fm.is_reference or fm.shape or fm.name in seen:
                continue
            value = getattr(section, fm.attribute)
            magnitude = getattr(value, "magnitude", value)
            if isinstance(magnitude, _SCALARS) or (isinstance(magnitude, np.ndarray) and magnitude.ndim == 0):
                seen[fm.name] = fm
    return _resolve_columns(sections, [(name, None) for name in seen], units)


# -- cells ------------------------------------------------------------------------------------------
def _cell(value: Any, unit: Any) -> Any:
    """A plain cell: magnitudes in the column's unit, numpy scalars as Python numbers."""
    if hasattr(value, "magnitude") and hasattr(value, "units"):
        if unit is not None:
            value = convert(value, unit)
        value = value.magnitude
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    return value


def _read(section: Section, column: _Column) -> Any:
    """The stored value of a cell (``None`` when absent), not yet a cell: in a batch's first
    pass it is a placeholder, which must not be used before the batch is sent."""
    try:
        return section.m_get(column.path)
    except (MissingError, LookupError, AttributeError):
        return None


def _finish(value: Any, column: _Column) -> Any:
    return math.nan if value is None else _cell(value, column.unit)


def _cells(sections: Sequence[Section], columns: Sequence[_Column]) -> list[list[Any]]:
    """Every cell, column by column. The rows of one partially downloaded archive are read in
    one batch (:meth:`Section.batch`): a table knows all it will read before it reads, and
    reading row by row cost two requests a row (203 for a 101-step trajectory, against 2)."""
    table: list[list[Any]] = [[math.nan] * len(sections) for _ in columns]
    by_root: dict[int, list[int]] = {}
    for position, section in enumerate(sections):
        by_root.setdefault(id(section.m_root), []).append(position)
    for positions in by_root.values():
        root = sections[positions[0]].m_root

        def reads(rows: list[int] = positions) -> list[list[Any]]:
            return [[_read(sections[k], column) for k in rows] for column in columns]

        # a batch runs the reads twice (collect, then read): only worth it where they fetch
        values = root.batch(reads) if partly_downloaded(root) else reads()
        for column, column_cells, got in zip(columns, table, values):
            for k, value in zip(positions, got):
                column_cells[k] = _finish(value, column)
    return table


def _wall_clock(column: _Column, cells: list[Any]) -> list[Any]:
    """A display-unit time column that reaches a second (run times, not simulation times,
    which stay far below) is shown in seconds: ``time_calculation [s]``, not 3.6e13 ps."""
    if column.chosen or column.unit is None or column.unit.dimensionality != {"[time]": 1}:
        return cells
    numbers = [c for c in cells if isinstance(c, (int, float)) and not math.isnan(c)]
    ureg = molar_registry()
    factor = float(ureg.Quantity(1.0, column.unit).to("second").magnitude)
    if not numbers or factor >= 1.0 or max(abs(c) for c in numbers) * factor < 1.0:
        return cells
    column.unit = ureg.Unit("second")
    return [c * factor if isinstance(c, (int, float)) else c for c in cells]


# -- frames -----------------------------------------------------------------------------------------
def _choose_index(pd: Any, frame: Any, index: str | None, columns: list[_Column]) -> Any:
    if index is None:
        return frame
    if index != "auto":
        header = next((c.header for c in columns if c.path == index or c.header == index), index)
        if header not in frame.columns:
            raise KeyError(f"no column {index!r} to index by; columns: {', '.join(map(str, frame.columns))}")
        return frame.set_index(header)
    for name in ("time", "step"):
        found = next((c.header for c in columns if c.path == name), None)
        if found is not None and len(frame) and frame[found].notna().all() and frame[found].is_unique:
            return frame.set_index(found)
    return frame


def _sections_frame(
    pd: Any,
    sections: Sequence[Section],
    wanted: Sequence[tuple[str, str | None]] | None,
    index: str | None,
    units: str,
    entry_ids: Sequence[str | None] | None = None,
) -> Any:
    if wanted is None:
        if any(partly_downloaded(s.m_root) for s in sections[:1]):
            warn_at_caller(
                "these sections are partly downloaded: the default columns are the quantities "
                "downloaded so far; name the columns (columns=[...]) to read others, in one batch",
                UserWarning,
            )
        columns = _default_columns(sections, units)
    else:
        columns = _resolve_columns(sections, wanted, units)
    data: dict[str, list[Any]] = {}
    ids = list(entry_ids) if entry_ids is not None else [s.m_entry_id for s in sections]
    if len(set(ids)) > 1:
        data["entry_id"] = ids
    data["path"] = [s.m_path() for s in sections]
    for column, cells in zip(columns, _cells(sections, columns)):
        data[column.header] = _wall_clock(column, cells)
    frame = pd.DataFrame(data)
    return _choose_index(pd, frame, index, columns)


def _records_frame(pd: Any, records: Sequence[Mapping[str, Any]], columns: Sequence[str] | None) -> Any:
    frame = pd.json_normalize(list(records), sep=".")
    if columns is not None:
        frame = frame.reindex(columns=list(columns))
    return frame


def _wanted(
    columns: Sequence[str] | Sequence[tuple[str, str | None]] | Mapping[str, str | None] | None,
) -> list[tuple[str, str | None]] | None:
    """Columns as (path, unit) pairs, in order; a path may come twice with two units."""
    if columns is None:
        return None
    if isinstance(columns, Mapping):
        return list(columns.items())
    if isinstance(columns, str):
        raise TypeError("columns is a list of paths, a list of (path, unit) pairs, or a mapping")
    return [(c, None) if isinstance(c, str) else (str(c[0]), c[1]) for c in columns]


def to_dataframe(
    sections_or_query_results: Iterable[Section]
    | Iterable[tuple[str, Section]]
    | Iterable[Mapping[str, Any]]
    | Mapping[str, Any],
    columns: Sequence[str] | Sequence[tuple[str, str | None]] | Mapping[str, str | None] | None = None,
    *,
    index: str | None = "auto",
    units: str = "display",
) -> Any:
    """A table with one row per section, per archive, or per search result.

    Args:
        sections_or_query_results: sections (``archive.run[0].calculation``), sections of
            several entries, ``(entry_id, archive)`` pairs (what ``client.archives(query)``
            yields: one row per entry), or entry metadata dicts from a search
            (``client.entries(...)`` results, or a whole ``entries/query`` answer with its
            ``data`` list).
        columns: for sections, dotted paths read with ``m_get`` (``"energy.total.value"``,
            ``"run[0].calculation[-1].energy.total.value"`` from an archive root), or a
            mapping of path to the unit to convert to (``{"energy.total.value": "kJ/mol"}``),
            or a list of ``(path, unit)`` pairs (one path in two units: ``[(p, "eV"),
            (p, "kJ/mol")]``); by default every scalar quantity set in any row. For search results, the
            flattened dotted keys to keep, in order (missing ones become empty).
        index: ``"auto"`` (time, else step, else the row number), ``None`` (the row
            number), or a column path to index by.
        units: ``"display"`` (the display units in force, see
            :mod:`archivemap.views.units`) or ``"stored"`` (the definition's units).

    Returns:
        A ``pandas.DataFrame``; for sections, columns carry their unit in the header
        (``temperature [K]``), a ``path`` column says where each row came from, and absent
        values are ``NaN``.

    Raises:
        ImportError: pandas is not installed.
        NotInSchemaError: a column names nothing in the schema (the message suggests the
            nearest valid paths).
        TypeError: the items are neither all sections nor all dicts.
    """
    pd = _import_pandas()
    if units not in ("display", "stored"):
        raise ValueError(f"units must be 'display' or 'stored', not {units!r}")
    data: Any = sections_or_query_results
    if isinstance(data, Mapping):
        data = data.get("data", [data])
    items = list(data)
    wanted = _wanted(columns)
    if items and all(isinstance(i, tuple) and len(i) == 2 and isinstance(i[1], Section) for i in items):
        return _sections_frame(pd, [i[1] for i in items], wanted, index, units, [str(i[0]) for i in items])
    if items and all(isinstance(i, Section) for i in items):
        return _sections_frame(pd, items, wanted, index, units)
    if all(isinstance(i, Mapping) for i in items):
        if wanted is not None and any(unit for _, unit in wanted):
            raise TypeError("units in columns only apply to sections; pass a list of keys")
        return _records_frame(pd, items, None if wanted is None else [path for path, _ in wanted])
    raise TypeError("expected sections, (entry_id, section) pairs or search-result dicts, not a mix")
