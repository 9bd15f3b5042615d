"""``archivemap demo`` and ``archivemap show``: values of archives, printed for people.

``demo`` walks the shipped samples' workflow to the energy, offline; ``show`` prints a section
or value of a file, of each archive of a folder, or of an entry of a deployment. Quantities are
shown in the display units (``--units``) or converted to ``--unit``; ``--json`` prints them as
stored (or in ``--unit``) for scripts.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import archivemap
from archivemap._lazy import deferred_import
from archivemap.archive.sections import Section
from archivemap.cli._args import AddCommand, add_source_options, required_type, unit_type
from archivemap.cli._errors import CommandError
from archivemap.cli._loading import REPO_SAMPLES, Folder, load_one, load_remote, local_schema
from archivemap.cli._output import json_text
from archivemap.errors import AbsentError
from archivemap.views.display import pretty
from archivemap.views.units import convert, to_display, unit_text

if TYPE_CHECKING:
    import numpy as np
    import pint
else:
    # numpy and pint (~0.3 s) are imported by the first value shown, not by `archivemap --help`
    np = deferred_import("numpy")
    pint = deferred_import("pint")

__all__ = ["add_demo_command", "add_show_command", "cmd_demo", "cmd_show"]


def _samples_dir(value: str | None) -> Path:
    path = Path(value) if value else REPO_SAMPLES
    if not (path / "metainfo.json").is_file():
        raise FileNotFoundError(f"no samples at {path} (expected metainfo.json and archives/)")
    return path


# -- showing values ------------------------------------------------------------------------------------
def _value_text(value: Any, unit: str | None) -> str:
    """A value as a line (or block) of text: quantities in the asked or display unit."""
    if isinstance(value, pint.Quantity):
        shown = convert(value, unit) if unit else to_display(value)
        magnitude = shown.magnitude
        symbol = unit_text(shown.units)
        if isinstance(magnitude, np.ndarray) and magnitude.ndim:
            body = np.array2string(magnitude, threshold=200, precision=8)
            return f"{body} {symbol}".rstrip()
        number = magnitude.item() if isinstance(magnitude, np.generic) else magnitude
        return f"{number!r} {symbol}".rstrip() if isinstance(number, float) else f"{number} {symbol}".rstrip()
    if unit:
        raise CommandError(f"--unit {unit}: the value has no unit ({type(value).__name__})")
    if isinstance(value, Section):
        return pretty(value)
    if isinstance(value, list) and value and isinstance(value[0], Section):
        return "\n".join(pretty(item, max_depth=1) for item in value)
    if isinstance(value, np.generic):
        return str(value.item())
    if isinstance(value, (dict, list)):
        return json_text(value)
    return str(value)


def _value_json(value: Any, unit: str | None) -> Any:
    if isinstance(value, pint.Quantity) and unit:
        value = convert(value, unit)
    if isinstance(value, Section):
        return value.to_dict()
    if isinstance(value, list) and value and isinstance(value[0], Section):
        return [item.to_dict() for item in value]
    return value


def _show_value(archive: Any, args: argparse.Namespace) -> Any:
    return archive.m_get(args.path) if args.path else archive


def cmd_demo(args: argparse.Namespace) -> int:
    """Load the shipped samples and walk the workflow to the energy, offline."""

    samples = _samples_dir(args.samples)
    schema = archivemap.Schema(samples / "metainfo.json")
    archive_dir = samples / "archives"
    rows = []
    # one source for all: a folder given as a path would be indexed again for every archive
    source = archivemap.DirectorySource(archive_dir, schema)
    for path in sorted(archive_dir.glob("*.archive.json")):
        archive = archivemap.load(path, schema, archives=source)
        calc = archive.workflow[0].calculation_result_ref
        energy = calc.energy.total.value.to("eV")
        system = calc.system_ref
        rows.append(
            {
                "file": path.name,
                "entry_id": archive.metadata.entry_id,
                "formula": system.chemical_composition_hill if system is not None else None,
                "calculation": calc.m_path(),
                "energy_eV": float(energy.magnitude),
            }
        )
    if args.json:
        print(json_text(rows))
        return 0
    print(f"archivemap demo: {len(rows)} sample archives from {archive_dir}\n")
    print("archive.workflow[0].calculation_result_ref.energy.total.value.to('eV')")
    for row in rows:
        print(
            f"  {row['file']:<45} {row['formula'] or '?':<8} {row['calculation']:<22} "
            f"{row['energy_eV']:.6f} eV"
        )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """Print a section or value of an archive (a file, a folder, or an entry id with --url)."""

    if args.url:
        value = _show_value(load_remote(args.source, args), args)
        print(json_text(_value_json(value, args.unit)) if args.json else _value_text(value, args.unit))
        return 0
    path = Path(args.source)
    if not path.is_dir():
        value = _show_value(load_one(args.source, args), args)
        print(json_text(_value_json(value, args.unit)) if args.json else _value_text(value, args.unit))
        return 0
    folder = Folder(path, local_schema(args, path))
    archives = folder.archives()
    tried = len(archives) + len(folder.failed)
    for file, archive in archives:
        try:
            value = _show_value(archive, args)
            if args.json:
                text = json_text({"file": file.name, "value": _value_json(value, args.unit)}, indent=None)
            else:
                text = _value_text(value, args.unit)
                text = f"{file.name}: {text}" if "\n" not in text else f"== {file.name}\n{text}"
        except AbsentError as exc:  # this archive has no such value: the others may
            folder.lacking.append((file.name, str(exc)))
            continue
        except Exception as exc:  # the next archive may have it: keep going, report at the end
            folder.failed.append((file.name, f"{type(exc).__name__}: {exc}"))
            continue
        print(text, flush=True)
    return folder.report("show", tried)


def add_demo_command(add_command: AddCommand) -> None:
    """``archivemap demo``: its options."""
    p = add_command("demo", help="run offline on the shipped samples")
    p.add_argument("--samples", help="samples folder (default: the repository's samples/)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_demo)


def add_show_command(add_command: AddCommand) -> None:
    """``archivemap show``: its options."""
    p = add_command("show", help="print a section or value of an archive")
    p.add_argument("source", help="archive file, folder of archives, or entry id with --url")
    p.add_argument("path", nargs="?", help='dotted path, e.g. "run[0].calculation[-1].energy.total.value"')
    p.add_argument("--unit", type=unit_type, help="convert the value to this unit, e.g. eV or kJ/mol")
    p.add_argument("--required", type=required_type, help="with --url: what to download (JSON or *)")
    p.add_argument("--json", action="store_true", help="print JSON (values as stored, or in --unit)")
    add_source_options(p)
    p.set_defaults(func=cmd_show)
