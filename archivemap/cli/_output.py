"""Results as JSON text: what ``--json`` prints, whatever an archive's values are.

Quantities become ``{"magnitude", "unit"}``, arrays lists, dates ISO strings and sections their
dictionaries; anything else is its ``str``, so printing a result never fails on its type.
"""

from __future__ import annotations

import datetime
import json
from typing import TYPE_CHECKING, Any

from archivemap._lazy import deferred_import
from archivemap.archive.sections import Section

if TYPE_CHECKING:
    import numpy as np
    import pint
else:
    # numpy and pint (~0.3 s) are imported by the first value shown, not by `archivemap --help`
    np = deferred_import("numpy")
    pint = deferred_import("pint")

__all__ = ["json_text"]


def _json_default(value: Any) -> Any:
    if isinstance(value, pint.Quantity):
        return {"magnitude": _json_default(value.magnitude), "unit": str(value.units)}
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, Section):
        return value.to_dict()
    return str(value)


def json_text(value: Any, indent: int | None = 2) -> str:
    """``value`` as JSON text, indented unless ``indent`` is None (one line)."""
    return json.dumps(value, default=_json_default, indent=indent, sort_keys=False)
