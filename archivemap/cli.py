"""The ``archivemap`` command line.

Exit codes: 0 success, 1 an error in the work (one line on stderr; ``--debug`` shows the
traceback), 2 a usage error. Commands that a script would read print JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pint

import archivemap
from archivemap import graph
from archivemap.archive.sections import Section
from archivemap.archive.schema import as_schema
from archivemap.server import LocalServer
from archivemap.views.display import pretty
from archivemap_codegen import cli as codegen_cli

__all__ = ["main"]

REPO_SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def _samples_dir(value: str | None) -> Path:
    path = Path(value) if value else REPO_SAMPLES
    if not (path / "metainfo.json").is_file():
        raise FileNotFoundError(f"no samples at {path} (expected metainfo.json and archives/)")
    return path


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


def _print_json(value: Any) -> None:
    print(json.dumps(value, default=_json_default, indent=2, sort_keys=False))


# -- commands -----------------------------------------------------------------------------------
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
        _print_json(rows)
        return 0
    print(f"archivemap demo: {len(rows)} sample archives from {archive_dir}\n")
    print("archive.workflow[0].calculation_result_ref.energy.total.value.to('eV')")
    for row in rows:
        print(
            f"  {row['file']:<45} {row['formula'] or '?':<8} {row['calculation']:<22} "
            f"{row['energy_eV']:.6f} eV"
        )
    return 0


def _required_arg(text: str | None) -> Any:
    """``--required``: a JSON spec, or a directive such as ``*``."""
    if not text:
        return "*"
    return json.loads(text) if text.strip()[:1] in '{["' else text


def _load_source(source: str, args: argparse.Namespace) -> Any:

    schema = args.metainfo or os.environ.get("ARCHIVEMAP_METAINFO")
    if getattr(args, "url", None):
        client = archivemap.Client(args.url, token=os.environ.get("NOMAD_TOKEN"))
        if schema is None:
            raise ValueError("--metainfo (or ARCHIVEMAP_METAINFO) is needed to map remote archives")
        return client.archive(source, required=_required_arg(getattr(args, "required", None)), schema=schema)
    path = Path(source)
    if schema is None and (REPO_SAMPLES / "metainfo.json").is_file() and REPO_SAMPLES in path.resolve().parents:
        schema = str(REPO_SAMPLES / "metainfo.json")
    if schema is None:
        raise ValueError("--metainfo (or ARCHIVEMAP_METAINFO) names the metainfo export to read with")
    folder = archivemap.DirectorySource(path.parent if path.is_file() else path, as_schema(schema))
    if path.is_dir():
        return [archivemap.load(p, folder.schema, archives=folder) for p in sorted(path.glob("*.json"))]
    return archivemap.load(path, folder.schema, archives=folder)


def cmd_show(args: argparse.Namespace) -> int:
    """Print a section or value of an archive (a file, a folder, or an entry id with --url)."""

    loaded = _load_source(args.source, args)
    archives = loaded if isinstance(loaded, list) else [loaded]
    for archive in archives:
        value = archive.m_get(args.path) if args.path else archive
        if args.unit:
            value = value.to(args.unit)
        if args.json:
            _print_json(value.to_dict() if isinstance(value, Section) else value)
        elif isinstance(value, Section):
            print(pretty(value))
        elif isinstance(value, list) and value and isinstance(value[0], Section):
            for item in value:
                print(pretty(item, max_depth=1))
        else:
            print(value)
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    """Download (part of) one archive as JSON."""

    client = archivemap.Client(args.url, token=os.environ.get("NOMAD_TOKEN"))
    data = client.archive_raw(args.entry_id, required=_required_arg(args.required))
    text = json.dumps(data, indent=2)
    if args.output and args.output != "-":
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output} ({len(text)} bytes)", file=sys.stderr)
    else:
        print(text)
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    """Page through entries matching a query, printing one JSON line per entry."""

    client = archivemap.Client(args.url, token=os.environ.get("NOMAD_TOKEN"))
    query = json.loads(args.query) if args.query else {}
    required = {"include": args.include.split(",")} if args.include else None
    count = 0
    show_progress = not args.no_progress and sys.stderr.isatty()
    for entry in client.entries(query, required=required, page_size=args.page_size):
        print(json.dumps(entry))
        count += 1
        if show_progress and count % args.page_size == 0:
            print(f"\r{count} entries", end="", file=sys.stderr, flush=True)
        if args.max and count >= args.max:
            break
    print(f"{chr(13) if show_progress else ''}{count} entries", file=sys.stderr)
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    """Write the reference graph of one or more archives."""

    loaded = _load_source(args.source, args)
    g = graph.reference_graph(loaded, containment=args.containment, progress=not args.no_progress and sys.stderr.isatty())
    if args.format == "graphml":
        out = args.output or "graph.graphml"
        graph.to_graphml(g, out)
        print(f"wrote {out}", file=sys.stderr)
    elif args.format == "dot":
        text = graph.to_dot(g)
        if args.output:
            Path(args.output).write_text(text, encoding="utf-8")
        else:
            print(text)
    elif args.format == "png":
        out = args.output or "graph.png"
        ax = graph.draw(g)
        ax.figure.savefig(out, dpi=150, bbox_inches="tight")
        print(f"wrote {out}", file=sys.stderr)
    else:
        print(graph.to_text(g))
    dangling = graph.dangling_references(g)
    if dangling:
        print(f"{len(dangling)} dangling reference(s)", file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve a folder of archives as a NOMAD-compatible API on 127.0.0.1."""

    server = LocalServer(args.directory, host=args.host, port=args.port).start()
    print(f"serving {len(server.store)} entries at {server.url}  (Ctrl-C to stop)", flush=True)
    try:
        import threading

        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def cmd_codegen(args: argparse.Namespace) -> int:

    return int(codegen_cli.run(args))


# -- parser -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="archivemap",
        description="Typed, lazy, navigable Python objects for NOMAD archives.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_parser = sub.add_parser

    def add_parser(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return _add_parser(name, parents=[common], description=kwargs.get("help"), **kwargs)

    sub.add_parser = add_parser  # type: ignore[method-assign]
    sub.required = True

    p = sub.add_parser("demo", help="run offline on the shipped samples")
    p.add_argument("--samples", help="samples folder (default: the repository's samples/)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("codegen", help="generate Python classes from a metainfo export")
    try:
    
        codegen_cli.add_arguments(p)
    except ImportError:  # pragma: no cover - generator missing from a broken install
        p.add_argument("metainfo")
    p.set_defaults(func=cmd_codegen)

    def common_source(q: argparse.ArgumentParser) -> None:
        q.add_argument("--metainfo", help="metainfo export (path or URL); env ARCHIVEMAP_METAINFO")
        q.add_argument("--url", help="NOMAD API v1 URL: SOURCE is then an entry id")

    p = sub.add_parser("show", help="print a section or value of an archive")
    p.add_argument("source", help="archive file, folder of archives, or entry id with --url")
    p.add_argument("path", nargs="?", help='dotted path, e.g. "run[0].calculation[-1].energy.total.value"')
    p.add_argument("--unit", help="convert the value to this unit, e.g. eV")
    p.add_argument("--required", help="with --url: what to download (JSON or *)")
    p.add_argument("--json", action="store_true", help="print JSON")
    common_source(p)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("fetch", help="download (part of) an archive as JSON")
    p.add_argument("entry_id", help="the entry to download")
    p.add_argument("--url", required=True, help="NOMAD API v1 URL")
    p.add_argument("--required", default="*", help='required spec as JSON, e.g. \'{"workflow": "*"}\'')
    p.add_argument("-o", "--output", help="output file (default: stdout)")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("query", help="page through entries matching a query")
    p.add_argument("--url", required=True, help="NOMAD API v1 URL")
    p.add_argument("--query", help='query JSON, e.g. \'{"results.material.elements": ["Ti", "O"]}\'')
    p.add_argument("--include", help="comma-separated metadata fields to return")
    p.add_argument("--page-size", type=int, default=100, help="entries per request")
    p.add_argument("--max", type=int, default=0, help="stop after this many entries")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("graph", help="the reference graph of archives")
    p.add_argument("source", help="archive file or folder")
    p.add_argument("--format", choices=["text", "graphml", "dot", "png"], default="text")
    p.add_argument("--containment", action="store_true", help="include parent→child edges")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-o", "--output", help="output file")
    common_source(p)
    p.set_defaults(func=cmd_graph)

    p = sub.add_parser("serve", help="serve a folder of archives as a NOMAD API on 127.0.0.1")
    p.add_argument("directory", help="folder of archive JSON files")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    p.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one clear line; --debug for the traceback
        if args.debug:
            raise
        print(f"archivemap {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
