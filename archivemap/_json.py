"""JSON in and out: NOMAD's dialect of it (``NaN``/``Infinity`` as Python writes them).

A leaf: every layer that reads JSON (the loader, sources, the client, the server) uses these,
so one archive parses the same way everywhere.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import orjson

from archivemap._lazy import deferred_import
from archivemap.errors import ArchiveDataError

if TYPE_CHECKING:
    import msgspec
else:
    # imported by the first parse, not with archivemap ("import + schema ready" parses nothing)
    msgspec = deferred_import("msgspec")

__all__ = ["MISSING", "dump_json", "merge_partial", "merged", "pad_list", "parse_json", "read_json", "value_at"]

#: "No value here at all", as opposed to ``None`` ("a value not loaded yet").
MISSING: Final = object()


def parse_json(data: bytes | bytearray | str, label: str | None = None) -> Any:
    """Parse JSON text exactly: integers of any size stay ``int``, NaN/Infinity are accepted.

    msgspec does the work: it is as fast as orjson within 10-15 % and, unlike orjson (which
    reads an integer beyond 64 bits as a float: 1180591620717411303424 → 1.18e21), it keeps
    such integers exact, so no scan of the text for long digit runs is needed (that scan cost
    30-60 % of orjson's parse). The standard library takes over for what msgspec refuses and
    Python's ``json`` writes: ``NaN``/``Infinity`` literals (spec §2.2) and lone surrogate
    escapes (``"\\ud800"``); it also words the error of text that is no JSON (with the
    position), so a failure costs a second parse, a success never does.

    Raises:
        ArchiveDataError: not valid JSON (or nested too deeply to parse).
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    try:
        return msgspec.json.decode(raw)
    except RecursionError:
        raise ArchiveDataError("not valid JSON: nested too deeply", label) from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        pass
    try:
        return json.loads(raw.decode("utf-8", "surrogatepass"))
    except RecursionError:
        raise ArchiveDataError("not valid JSON: nested too deeply", label) from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        if "integer string conversion" in str(exc):  # valid JSON: Python's guard against slow int()
            raise ArchiveDataError(f"an integer is too long to read (the JSON is valid): {exc}", label) from None
        raise ArchiveDataError(f"not valid JSON: {exc}", label) from None


def dump_json(value: Any, *, sort_keys: bool = False) -> bytes:
    """Compact JSON of plain data that :func:`parse_json` reads back as it was.

    orjson writes (the fastest). Where it refuses, msgspec writes: an integer beyond 64
    bits, exactly. Where both refuse (a lone surrogate in a string, keys that are not strings
    with a big integer elsewhere), the standard library writes (escaped surrogates, keys as
    strings). Non-finite floats become ``null`` with orjson and msgspec, as in NOMAD's own
    API answers; the standard library writes ``NaN``, which :func:`parse_json` reads.

    Raises:
        TypeError: a value JSON has no form for.
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | (orjson.OPT_SORT_KEYS if sort_keys else 0))
    except TypeError:
        pass
    try:
        return msgspec.json.encode(value, order="sorted" if sort_keys else None)  # type: ignore[no-any-return]
    except (TypeError, UnicodeEncodeError):
        pass
    text = json.dumps(value, separators=(",", ":"))
    if sort_keys:  # keys made strings first, as JSON has them: mixed key types do not sort
        text = json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    return text.encode("utf-8")


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


def value_at(data: Any, path: Sequence[str | int]) -> Any:
    """The value at ``path`` (names and list indices) inside JSON data, or ``None``."""
    node = data
    for seg in path:
        if isinstance(seg, int):
            node = node[seg] if isinstance(node, list) and -len(node) <= seg < len(node) else None
        else:
            node = node.get(seg) if isinstance(node, dict) else None
        if node is None:
            return None
    return node


def pad_list(data: Any, list_path: Sequence[str | int], length: int) -> bool:
    """Make the list at ``list_path`` at least ``length`` long, padding with ``None``.

    In a partial archive ``None`` means "not loaded". A missing list is created only when its
    parent exists; parents are never invented (a dict where a list belongs would later read as
    "empty"). Returns whether the list is there now.
    """
    parent = value_at(data, list_path[:-1])
    if not isinstance(parent, dict):
        return False
    items = parent.get(list_path[-1])
    if items is None:
        items = parent[list_path[-1]] = []
    if not isinstance(items, list):
        return False
    if len(items) < length:
        items.extend([None] * (length - len(items)))
    return True
