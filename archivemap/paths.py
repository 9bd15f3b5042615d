"""Archive paths: the grammar of the two spellings users meet, and nothing else.

Dotted attribute paths (``run[0].calculation[-1].energy``, ``data.processes['pvd x']``) and
NOMAD's slash form (``/run/0/calculation/3``, ``#/run/0``) both parse to one tuple of
segments: ``str`` property names, ``int`` indices (negative too) and :class:`Key` item keys.
This is a leaf: reading a path through an archive lives with the sections
(:func:`archivemap.archive.walk.get_path`), building ``required`` specs from it in
:mod:`archivemap.remote.fetch.fetch.required`.

The parsers are single left-to-right scans (linear in the length of the path).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final, Union

from archivemap.errors import PathSyntaxError

__all__ = [
    "INT_RE",
    "Key",
    "Segment",
    "format_archive_path",
    "format_path",
    "parse_archive_path",
    "parse_path",
]

class Key(str):
    """A path segment that selects a repeating sub-section item by its key, not by index.

    Written ``processes[pvd_evaporation]`` or ``processes['pvd evaporation']`` in dotted
    paths. The server cannot resolve these (spec §7.4), so they stay client-side. A plain
    ``str`` segment is a property name; slash paths (``/data/processes/x``) cannot tell a key
    from a name and always yield names.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Key({str.__repr__(self)})"


#: One parsed path segment: a property name, a list index or a :class:`Key`.
Segment = Union[str, int]

# --------------------------------------------------------------------------- paths

INT_RE: Final = re.compile(r"-?\d+\Z")
_DOTTED_TOKEN_RE: Final = re.compile(
    r"""
    (?P<name>[^.\[\]]+)                       # a property name
    | \[ (?: (?P<int>-?\d+)                   # [3] or [-1]
           | '(?P<sq>[^']*)' | "(?P<dq>[^"]*)"  # ['a key'] / ["a key"]
           | (?P<bare>[^\]'"]+) ) \]          # [a_key]
    | (?P<dot>\.)
    """,
    re.VERBOSE,
)


def parse_archive_path(path: str | Sequence[Segment]) -> tuple[Segment, ...]:
    """Split an archive path into names, indices and keys.

    Both spellings NOMAD users meet are accepted, so callers need not care which one they
    were handed: reference fragments (``/run/0/calculation/3``, ``#/run/0``, ``run/0``) and
    dotted attribute paths (``run[0].calculation[-1].energy``,
    ``data.processes['pvd evaporation']``). An already parsed sequence is validated and
    returned as a tuple.

    Args:
        path: the path; ``""``, ``"/"`` and ``"#"`` mean the archive root.

    Returns:
        The segments: ``str`` property names, ``int`` indices (possibly negative) and
        :class:`Key` item keys.

    Raises:
        PathSyntaxError: the path is not well formed (``run[0``, ``a..b``, ``[0]`` first); a
            ``ValueError``.
    """
    if not isinstance(path, str):
        segments = tuple(path)
        for segment in segments:
            if isinstance(segment, bool) or not isinstance(segment, (str, int)):
                raise PathSyntaxError(f"bad path segment {segment!r} in {path!r}", repr(path))
        return segments
    text = path.strip()
    if text.startswith("#"):
        text = text[1:]
    if "/" in text:
        return tuple(
            int(part) if INT_RE.match(part) else part for part in text.split("/") if part
        )
    return _parse_dotted(text)


def _expected(text: str, position: int) -> str:
    """What is wrong at ``position`` of a dotted path, in words."""
    char = text[position]
    if char == "]":
        return "a ']' without its '['"
    if "]" not in text[position:]:
        return "a '[' that is not closed with ']'"
    if text[position + 1 : position + 2] in ("'", '"'):
        return f"a key in brackets whose {text[position + 1]} is not closed"
    return "brackets hold an index ([0], [-1]) or a key ([name], ['a key'])"


def _parse_dotted(text: str) -> tuple[Segment, ...]:
    segments: list[Segment] = []
    position = 0
    expect_name = True  # at the start and after a dot, a name must follow
    while position < len(text):
        match = _DOTTED_TOKEN_RE.match(text, position)
        if match is None:
            raise PathSyntaxError(
                f"cannot parse archive path {text!r} at position {position}: {_expected(text, position)}",
                text,
                position,
            )
        position = match.end()
        if match.group("dot"):
            if expect_name:
                raise PathSyntaxError(f"empty segment in archive path {text!r}", text, match.start())
            expect_name = True
        elif match.group("name") is not None:
            if not expect_name:
                raise PathSyntaxError(f"missing '.' before {match.group('name')!r} in {text!r}", text, match.start())
            segments.append(match.group("name").strip())
            expect_name = False
        else:
            if expect_name:
                raise PathSyntaxError(f"an index must follow a name in archive path {text!r}", text, match.start())
            if match.group("int") is not None:
                segments.append(int(match.group("int")))
            else:
                key = next(g for g in match.group("sq", "dq", "bare") if g is not None)
                segments.append(Key(key))
    if expect_name and segments:
        raise PathSyntaxError(f"archive path {text!r} ends with '.'", text, len(text) - 1)
    return tuple(segments)


_DOTTED_NAME: Final = re.compile(r"[^.\[\]\s#/](?:[^.\[\]/]*[^.\[\]\s/])?\Z")


def format_archive_path(path: str | Sequence[Segment]) -> str:
    """Write a path in the dotted form used in messages: ``run[0].calculation[3].energy``.

    Names the dotted form cannot hold (a leading ``#``, a ``.`` or bracket, surrounding white
    space) are written in the slash form instead (``/#weird/0``), so that
    ``parse_archive_path(format_archive_path(p)) == p`` for every path either form can hold.

    Args:
        path: a path in any form :func:`parse_archive_path` accepts.

    Returns:
        The dotted (or slash) path; ``""`` for the root.

    Raises:
        ValueError: a path that neither spelling can hold (a key and such a name together, or
            a name with a ``/``, surrounding white space or only digits that the dotted form
            cannot hold either).
    """
    segments = parse_archive_path(path)
    names = [s for s in segments if isinstance(s, str) and not isinstance(s, Key)]
    if not all(_DOTTED_NAME.match(name) for name in names):
        slash_safe = all(
            name and name == name.strip() and "/" not in name and not INT_RE.match(name) for name in names
        )
        if not slash_safe or any(isinstance(s, Key) for s in segments):
            raise ValueError(f"path {segments!r} cannot be written as an archive path")
        return "/" + "/".join(str(s) for s in segments)
    out: list[str] = []
    for segment in segments:
        if isinstance(segment, Key):
            out.append(f"[{segment!s}]" if re.fullmatch(r"[\w\- ]+", segment) else f"[{str(segment)!r}]")
        elif isinstance(segment, int):
            out.append(f"[{segment}]")
        else:
            out.append(f".{segment}" if out else segment)
    return "".join(out)


def parse_path(path: str | Sequence[Segment]) -> tuple[Segment, ...]:
    """Split ``run[0].calculation[-1].energy`` or ``/run/0/calculation/-1/energy``.

    The same as :func:`parse_archive_path` (one parser for the whole library).

    Raises:
        PathSyntaxError: brackets that do not close, or an empty path segment (a ``ValueError``).
    """
    return parse_archive_path(path)


def format_path(segments: Sequence[Segment]) -> str:
    """The dotted form used in messages: ``("run", 0, "energy")`` → ``run[0].energy``."""
    text = ""
    for seg in segments:
        if isinstance(seg, int):
            text += f"[{seg}]"
        elif isinstance(seg, Key):
            text += f"[{seg!s}]"
        else:
            text += ("." if text else "") + seg
    return text
