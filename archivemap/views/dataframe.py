"""Tables of sections or search results as pandas DataFrames (the ``pandas`` extra).

Unit convention: a column holds plain magnitudes and names its unit in brackets, e.g.
``temperature [K]`` or ``energy.total.value [eV]``. Values are in the quantity's definition
unit (what NOMAD stores: joule, meter, pascal ...) unless a unit is asked for in ``columns``,
so a table never mixes units in a column and round-trips through CSV without losing them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from archivemap.archive.sections import Section
from archivemap.errors import MissingError
from archivemap.metainfo.fields import section_fields

__all__ = ["to_dataframe"]

_SCALARS = (str, int, float, bool, np.number, np.bool_)


def _import_pandas() -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("tables need pandas: pip install 'archivemap[pandas]'") from None
    return pd


def _unit_text(unit: Any) -> str:
    text = f"{unit:~P}"
    return "" if text in ("", "dimensionless") else text


def _cell(value: Any, unit: str | None = None) -> tuple[Any, str]:
    """A plain cell value and the unit text for the column name."""
    if hasattr(value, "magnitude") and hasattr(value, "units"):
        if unit:
            value = value.to(unit)
        magnitude = value.magnitude
        magnitude = magnitude.item() if isinstance(magnitude, np.ndarray) and magnitude.ndim == 0 else magnitude
        return magnitude, _unit_text(value.units)
    if isinstance(value, np.generic):
        return value.item(), ""
    return value, ""


def _scalar_quantities(section: Section) -> Iterable[tuple[str, Any]]:
    """(NOMAD name, value) of the set scalar quantities; references are left out (not data)."""
    for fm in section_fields(type(section)).values():
        if fm.kind != "quantity" or fm.virtual or fm.is_reference or fm.shape:
            continue
        if not section.m_is_set(fm.attribute):
            continue
        value = getattr(section, fm.attribute)
        magnitude = getattr(value, "magnitude", value)
        if isinstance(magnitude, _SCALARS) or (isinstance(magnitude, np.ndarray) and magnitude.ndim == 0):
            yield fm.name, value


def _section_row(section: Section, columns: Mapping[str, str | None] | None) -> dict[str, Any]:
    row: dict[str, Any] = {}
    if columns is None:
        for name, value in _scalar_quantities(section):
            cell, unit = _cell(value)
            row[f"{name} [{unit}]" if unit else name] = cell
        return row
    for path, target_unit in columns.items():
        try:
            value = section.m_get(path)
        except (MissingError, LookupError):
            continue
        cell, unit_text = _cell(value, target_unit)
        row[f"{path} [{unit_text}]" if unit_text else path] = cell
    return row


def _sections_frame(pd: Any, sections: Sequence[Section], columns: Mapping[str, str | None] | None) -> Any:
    rows = [_section_row(s, columns) for s in sections]
    index = pd.Index([s.m_path() for s in sections], name="path")
    frame = pd.DataFrame.from_records(rows, index=index)
    entries = {s.m_entry_id for s in sections}
    if len(entries) > 1:
        frame.insert(0, "entry_id", [s.m_entry_id for s in sections])
    if columns is not None:  # keep the asked order, whatever the unit suffixes became
        order = [c for path in columns for c in frame.columns if c == path or c.startswith(f"{path} [")]
        frame = frame[(["entry_id"] if "entry_id" in frame.columns else []) + order]
    return frame


def _records_frame(pd: Any, records: Sequence[Mapping[str, Any]], columns: Sequence[str] | None) -> Any:
    frame = pd.json_normalize(list(records), sep=".")
    if columns is not None:
        frame = frame.reindex(columns=list(columns))
    return frame


def to_dataframe(
    sections_or_query_results: Iterable[Section] | Iterable[Mapping[str, Any]] | Mapping[str, Any],
    columns: Sequence[str] | Mapping[str, str | None] | None = None,
) -> Any:
    """A table with one row per section, or per search result.

    Args:
        sections_or_query_results: sections (e.g. ``archive.run[0].calculation``), or entry
            metadata dicts from a search (``client.query(...)`` results, or a whole
            ``entries/query`` answer with its ``data`` list).
        columns: for sections, dotted paths read with ``m_get`` (``"energy.total.value"``),
            or a mapping of path to the unit to convert to (``{"energy.total.value": "eV"}``);
            by default every set scalar quantity of the section itself. For search results,
            the flattened dotted keys to keep, in order (missing ones become empty).

    Returns:
        A ``pandas.DataFrame``; for sections the index is the section path and columns
        carry their unit (``temperature [K]``), see the module docstring.

    Raises:
        ImportError: pandas is not installed.
        TypeError: the items are neither all sections nor all dicts.
    """
    pd = _import_pandas()
    data: Any = sections_or_query_results
    if isinstance(data, Mapping):
        data = data.get("data", [data])
    items = list(data)
    if all(isinstance(i, Section) for i in items) and items:
        wanted = None if columns is None else (dict(columns) if isinstance(columns, Mapping) else dict.fromkeys(columns))
        return _sections_frame(pd, items, wanted)
    if all(isinstance(i, Mapping) for i in items):
        if isinstance(columns, Mapping):
            raise TypeError("units in columns only apply to sections; pass a list of keys")
        return _records_frame(pd, items, columns)
    raise TypeError("expected sections or search-result dicts, not a mix")
