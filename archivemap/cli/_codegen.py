"""``archivemap codegen``: the code generator's command, borrowed whole from ``archivemap_codegen``.

The generator lives apart (it shares only the definition model) and owns its options and its
run, so ``python -m archivemap_codegen`` and ``archivemap codegen`` cannot drift apart.
"""

from __future__ import annotations

import argparse

from archivemap.cli._args import AddCommand
from archivemap_codegen import cli as codegen_cli

__all__ = ["add_codegen_command", "cmd_codegen"]


def cmd_codegen(args: argparse.Namespace) -> int:
    """Generate Python classes from a metainfo export (refuses archives and other JSON)."""
    return int(codegen_cli.run(args))


def add_codegen_command(add_command: AddCommand) -> None:
    """``archivemap codegen``: the generator's own options."""
    p = add_command("codegen", help="generate Python classes from a metainfo export")
    codegen_cli.add_arguments(p)
    p.set_defaults(func=cmd_codegen)
