"""The ``archivemap`` command line.

Exit codes: 0 success, 1 an error in the work (one line on stderr; ``--debug`` shows the
traceback), 2 a usage error (one line naming the argument, e.g. ``--query``), 141 a closed
pipe (``archivemap fetch … | head``, quietly). Only results go to stdout; progress, notes
and errors go to stderr. Commands that a script would read print JSON with ``--json``.

Values are shown in display units (``--units materials``: eV, Å, GPa, ps; ``si`` shows what
the archive stores); ``--unit kJ/mol`` converts one value, molar through the documented
``"molar"`` context (see :mod:`archivemap.views.units`).

This module wires the parser and runs a command; each command (its options and its run) lives
in a private module: ``_show`` (demo, show), ``_datasets`` (fetch, cache), ``_query`` (query,
explain), ``_graph``, ``_serve``, ``_codegen``. They share ``_args`` (argument types),
``_loading`` (archives from files, folders and deployments), ``_output`` (JSON text) and
``_errors`` (the one line an error prints).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

import archivemap
from archivemap.cli._codegen import add_codegen_command
from archivemap.cli._datasets import add_cache_command, add_fetch_command
from archivemap.cli._errors import UsageError, error_line
from archivemap.cli._graph import add_graph_command
from archivemap.cli._query import add_explain_command, add_query_command
from archivemap.cli._serve import add_serve_command
from archivemap.cli._show import add_demo_command, add_show_command
from archivemap.views.units import display_units

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line naming the argument, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command, in the order ``archivemap --help`` lists them."""
    parser = _Parser(
        prog="archivemap",
        description="Typed, lazy, navigable Python objects for NOMAD archives.",
    )
    parser.add_argument("--version", action="version", version=f"archivemap {archivemap.__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors")
    common.add_argument("--version", action="version", version=f"archivemap {archivemap.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def add_command(name: str, **kwargs: Any) -> _Parser:
        return sub.add_parser(name, parents=[common], description=kwargs.get("help"), **kwargs)

    add_demo_command(add_command)
    add_codegen_command(add_command)
    add_show_command(add_command)
    add_fetch_command(add_command)
    add_cache_command(add_command)
    add_query_command(add_command)
    add_explain_command(add_command)
    add_graph_command(add_command)
    add_serve_command(add_command)
    return parser


def _one_line_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None
) -> str:
    return f"archivemap: {category.__name__}: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # a warning about data is one line on stderr, not the launcher script's source line
    warnings.formatwarning = _one_line_warning
    units = getattr(args, "units", "materials")
    try:
        with display_units(units):
            return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (``| head``): say nothing, and keep Python from complaining
        # about the unflushable stdout at exit
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 141
    except Exception as exc:  # one clear line; --debug for the traceback
        if args.debug:
            raise
        print(f"archivemap {args.command}: {error_line(args, exc)}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
