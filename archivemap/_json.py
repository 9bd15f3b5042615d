"""JSON in and out: NOMAD's dialect of it (``NaN``/``Infinity`` as Python writes them).

A leaf: every layer that reads JSON (the loader, sources, the client, the server) uses these,
so one archive parses the same way everywhere.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Final

import orjson

from archivemap.errors import ArchiveDataError

__all__ = ["MISSING", "merge_partial", "merged", "parse_json", "read_json"]

#: "No value here at all", as opposed to ``None`` ("a value not loaded yet").
MISSING: Final = object()


def parse_json(data: bytes | str, label: str | None = None) -> Any:
    """Parse JSON text; NOMAD's Python-dumped ``NaN``/``Infinity`` are accepted (spec §2.2)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        if "NaN" in text or "Infinity" in text:
            try:
                return json.loads(text)
            except (ValueError, RecursionError):
                pass
        raise ArchiveDataError(f"not valid JSON: {exc}", label) from None


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read and parse one JSON file."""
    p = Path(path)
    return parse_json(p.read_bytes(), str(p))  # a missing file stays FileNotFoundError


def merged(existing: Any, new: Any) -> Any:
    """``new`` merged over ``existing``: new data wins, but ``None`` never erases data.

    In a partially downloaded archive ``None`` means "not loaded" (list padding), so merging
    answers in any order gives the same result. ``existing`` may be :data:`MISSING`.
    Dicts and lists are merged in place.
    """
    if existing is MISSING:
        return new
    if new is None:
        return existing
    if isinstance(existing, dict) and isinstance(new, dict):
        merge_partial(existing, new)
        return existing
    if isinstance(existing, list) and isinstance(new, list):
        if len(existing) < len(new):
            existing.extend([None] * (len(new) - len(existing)))
        for position, item in enumerate(new):
            existing[position] = merged(existing[position], item)
        return existing
    return new


def merge_partial(target: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Merge the partial archive ``new`` into ``target`` in place (see :func:`merged`)."""
    for key, value in new.items():
        target[key] = merged(target.get(key, MISSING), value)
    return target
