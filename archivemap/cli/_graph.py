"""``archivemap graph``: the reference graph of archives, as text or a file to look at.

The archives are a file, each archive of a folder (one bad file is reported, not fatal) or,
with ``--url``, one whole entry; the graph is written as text (default), GraphML, DOT, a PNG
picture (plot extra) or interactive HTML (interactive extra). Dangling references are counted
on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from archivemap import graph
from archivemap._progress import watched
from archivemap.cli._args import AddCommand, add_source_options
from archivemap.cli._errors import CommandError
from archivemap.cli._loading import Folder, load_one, load_remote, local_schema
from archivemap.graph.draw import to_html

__all__ = ["add_graph_command", "cmd_graph"]


def cmd_graph(args: argparse.Namespace) -> int:
    """Write the reference graph of one or more archives."""

    path = Path(args.source)
    status = 0
    if args.url:  # SOURCE is an entry id: its whole archive, in one request
        loaded: Any = load_remote(args.source, args)
    elif path.is_dir():
        folder = Folder(path, local_schema(args, path))
        loaded = [archive for _, archive in folder.archives()]
        status = folder.report("graph", len(loaded) + len(folder.failed))
        if not loaded:
            raise CommandError(f"no archives in {path}")
    else:
        loaded = load_one(args.source, args)
    g = graph.reference_graph(loaded, containment=args.containment, progress=not args.no_progress and watched())
    if args.format == "graphml":
        out = args.output or "graph.graphml"
        graph.to_graphml(g, out)
        print(f"wrote {out}", file=sys.stderr)
    elif args.format == "dot":
        text = graph.to_dot(g)
        if args.output:
            Path(args.output).write_text(text, encoding="utf-8")
            print(f"wrote {args.output}", file=sys.stderr)
        else:
            print(text)
    elif args.format == "png":
        out = args.output or "graph.png"
        ax = graph.draw(g)
        ax.figure.savefig(out, dpi=150, bbox_inches="tight")
        print(f"wrote {out}", file=sys.stderr)
    elif args.format == "html":
        out = args.output or "graph.html"
        to_html(g, out)
        print(f"wrote {out}", file=sys.stderr)
    else:
        print(graph.to_text(g))
    dangling = graph.dangling_references(g)
    if dangling:
        print(f"{len(dangling)} dangling reference(s)", file=sys.stderr)
    return status


def add_graph_command(add_command: AddCommand) -> None:
    """``archivemap graph``: its options."""
    p = add_command("graph", help="the reference graph of archives")
    p.add_argument("source", help="archive file, folder of archives, or entry id with --url")
    p.add_argument("--format", choices=["text", "graphml", "dot", "png", "html"], default="text",
                   help="png: a readable picture (plot extra); html: interactive (interactive extra)")
    p.add_argument("--containment", action="store_true", help="include parent→child edges")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-o", "--output", help="output file")
    add_source_options(p)
    p.set_defaults(func=cmd_graph, required=None)  # with --url: the whole archive
