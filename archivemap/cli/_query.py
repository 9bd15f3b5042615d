"""``archivemap query`` and ``archivemap explain``: a NOMAD query, checked before it is sent.

A query is checked against the search keys of a metainfo (``--metainfo``,
``ARCHIVEMAP_METAINFO``, else the embedded NOMAD one) before any request, so a misspelt key is
a usage error (exit 2) naming ``--query``; ``--no-check`` sends it as given, for a deployment
whose plugins add keys. ``query`` pages through the entries (one JSON line each), ``explain``
says offline what each criterion filters on. ``fetch --lock`` checks its query here too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from archivemap._progress import watched
from archivemap.archive.load import default_schema
from archivemap.archive.schema import as_schema
from archivemap.cli._args import AddCommand, query_type
from archivemap.cli._errors import UsageError
from archivemap.cli._loading import client
from archivemap.errors import QueryError
from archivemap.metainfo.search import search_quantities
from archivemap.remote.query import explain_query, query_json

__all__ = ["add_explain_command", "add_query_command", "checked_query", "cmd_explain", "cmd_query"]


def _search_keys(args: argparse.Namespace) -> Any:
    """The search keys to check a query against: ``--metainfo``, ARCHIVEMAP_METAINFO, or the
    embedded NOMAD metainfo; None with ``--no-check`` (a deployment with other plugins)."""
    if getattr(args, "no_check", False):
        return None
    source = getattr(args, "metainfo", None) or os.environ.get("ARCHIVEMAP_METAINFO")
    schema = as_schema(source) if source else default_schema()
    return search_quantities(schema.environment) or None


def checked_query(args: argparse.Namespace) -> dict[str, Any]:
    """The query, checked before any request; a QueryError becomes one line and exit 2."""
    query = args.query if args.query is not None else {}
    try:
        return query_json(query, _search_keys(args))
    except QueryError as error:
        raise UsageError(f"--query: {' '.join(str(error).split())}") from None


def cmd_query(args: argparse.Namespace) -> int:
    """Page through entries matching a query, printing one JSON line per entry."""

    query = checked_query(args)
    remote = client(args.url)
    required = {"include": args.include.split(",")} if args.include else None
    count = 0
    show_progress = not args.no_progress and watched()
    for entry in remote.entries(query, required=required, page_size=args.page_size):
        print(json.dumps(entry))
        count += 1
        if show_progress and count % args.page_size == 0:
            print(f"\r{count} entries", end="", file=sys.stderr, flush=True)
        if args.max and count >= args.max:
            break
    print(f"{chr(13) if show_progress else ''}{count} entries", file=sys.stderr)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """Print what a query filters on, checked and converted, without sending it."""
    quantities = _search_keys(args)
    if quantities is None:
        raise UsageError("explain needs search keys: drop --no-check")
    query = args.query if args.query is not None else {}
    try:
        lines = explain_query(query, quantities)
    except QueryError as error:
        raise UsageError(f"--query: {' '.join(str(error).split())}") from None
    for line in lines:
        print(line)
    return 0


def add_query_command(add_command: AddCommand) -> None:
    """``archivemap query``: its options."""
    p = add_command("query", help="page through entries matching a query")
    p.add_argument("--url", required=True, help="NOMAD API v1 URL (…/api/v1)")
    p.add_argument("--query", type=query_type, help='query JSON, e.g. \'{"results.material.elements": ["Ti", "O"]}\'')
    p.add_argument("--include", help="comma-separated metadata fields to return")
    p.add_argument("--page-size", type=int, default=100, help="entries per request")
    p.add_argument("--max", type=int, default=0, help="stop after this many entries")
    p.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    p.add_argument("--metainfo", help="metainfo export to check the query against (default: the embedded "
                   "NOMAD 2.0.0 one); env ARCHIVEMAP_METAINFO")
    p.add_argument("--no-check", action="store_true",
                   help="send the query unchecked (a deployment whose plugins add search keys)")
    p.set_defaults(func=cmd_query)


def add_explain_command(add_command: AddCommand) -> None:
    """``archivemap explain``: its options."""
    p = add_command("explain", help="check a query offline and print what each criterion filters on")
    p.add_argument("--query", type=query_type, help='query JSON, e.g. \'{"results.material.elements": ["Ti", "O"]}\'')
    p.add_argument("--metainfo", help="metainfo export with the search keys (default: the embedded NOMAD 2.0.0 one)")
    p.set_defaults(func=cmd_explain)
