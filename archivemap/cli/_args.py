"""The values the commands take: JSON, units and the options of an archive's source.

argparse parses them, so a bad value is a usage error naming its argument (``--query: not
JSON …``, exit 2) before any file is read or request sent. Commands add their parsers through
an :data:`AddCommand` the parser wiring hands them, which gives every command the shared
``--debug`` and ``--version``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from archivemap._lazy import deferred_import
from archivemap.errors import ArchiveDataError
from archivemap.units import check_unit_text
from archivemap.views.units import PRESETS, molar_registry

if TYPE_CHECKING:
    import pint
else:
    pint = deferred_import("pint")  # by the first --unit, not by `archivemap --help`

__all__ = ["AddCommand", "add_source_options", "query_type", "required_type", "unit_type"]

#: ``add_command(name, help=…)``: a command's parser, with the options every command shares.
AddCommand = Callable[..., argparse.ArgumentParser]


# -- arguments that are JSON: parsed by argparse, so a failure names the argument -------------------
def _json_type(name: str, example: str, kinds: tuple[type, ...] = (dict,)) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise argparse.ArgumentTypeError(f"not JSON ({exc.msg} at column {exc.colno}); e.g. {example}") from None
        if not isinstance(value, kinds):
            raise argparse.ArgumentTypeError(f"expected a JSON object, e.g. {example}")
        return value

    parse.__name__ = name  # argparse names the type in its messages
    return parse


query_type = _json_type("query", """'{"results.material.elements": ["Ti", "O"]}'""")


def required_type(text: str) -> Any:
    """``--required``: a JSON spec, or a directive such as ``*``."""
    if text.strip()[:1] in '{["':
        return _json_type("required", """'{"workflow2": "*"}' or *""", (dict, list, str))(text)
    return text


def unit_type(text: str) -> str:
    """``--unit``: a unit pint knows, checked before pint evaluates it."""
    try:
        check_unit_text(text)  # pint evaluates unit expressions: "10**10**10" would never end
    except ArchiveDataError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    try:
        molar_registry().Unit(text)
    except (pint.errors.UndefinedUnitError, pint.errors.DefinitionSyntaxError, AttributeError, TypeError, ValueError, AssertionError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a unit pint knows (e.g. eV, angstrom, kJ/mol)") from None
    return text


def add_source_options(parser: argparse.ArgumentParser) -> None:
    """``--metainfo``, ``--url`` and ``--units``: where a command's archives come from and how
    their values are shown (``show`` and ``graph``)."""
    parser.add_argument("--metainfo", help="metainfo export (path or URL); env ARCHIVEMAP_METAINFO; "
                        "default for local files: the embedded NOMAD 2.0.0 metainfo")
    parser.add_argument("--url", help="NOMAD API v1 URL (…/api/v1): SOURCE is then an entry id")
    parser.add_argument(
        "--units", choices=sorted(PRESETS), default="materials",
        help="display units: materials (eV, Å, GPa, ps; default), atomic, si (as stored)",
    )
