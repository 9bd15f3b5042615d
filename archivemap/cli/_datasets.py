"""``archivemap fetch`` and ``archivemap cache``: archives downloaded as JSON, and their cache.

``fetch ENTRY_ID --url`` writes (part of) one archive; ``fetch --lock`` (issue 10) downloads a
query's archives through the disk cache and writes a dataset lockfile, or, without ``--url``,
replays one, naming what changed and what cannot be reproduced. ``cache info|clear`` shows or
empties that disk cache.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from archivemap.cli._args import AddCommand, query_type, required_type
from archivemap.cli._errors import CommandError, UsageError
from archivemap.cli._loading import archive_names, client, schema_for, unknown_required
from archivemap.cli._output import json_text
from archivemap.cli._query import checked_query
from archivemap.errors import CacheDamagedError
from archivemap.remote.cache import ArchiveCache
from archivemap.remote.client import api_base_url
from archivemap.remote.dataset import open_dataset
from archivemap.remote.lockfile import dataset_raw

__all__ = ["add_cache_command", "add_fetch_command", "cmd_cache", "cmd_fetch"]


def _check_required(required: Any, answer: Any, args: argparse.Namespace, entry_id: str) -> None:
    """``--required`` keys that name nothing: an error naming the nearest names."""
    if not isinstance(required, dict):
        return
    unknown = unknown_required(required, archive_names(schema_for(args)))
    matched = [key for key in required if isinstance(answer, dict) and key in answer]
    for message in unknown:
        if not matched:
            raise CommandError(message)
        print(f"archivemap fetch: warning: {message}", file=sys.stderr)
    if not matched and not unknown:
        asked = ", ".join(repr(k) for k in required)
        raise CommandError(f"--required: nothing of {asked} is set in entry {entry_id}")


def cmd_fetch(args: argparse.Namespace) -> int:
    """Download (part of) one archive as JSON; with ``--lock``, a whole query's (issue 10)."""

    if args.lock:
        return _fetch_locked(args)
    if not args.entry_id or not args.url:
        raise UsageError("fetch needs ENTRY_ID and --url (or --lock FILE for a dataset)")
    remote = client(args.url)
    data = remote.archive_raw(args.entry_id, required=args.required)
    _check_required(args.required, data, args, args.entry_id)
    text = json.dumps(data, indent=2)
    if args.output and args.output != "-":
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output} ({len(text)} bytes)", file=sys.stderr)
    else:
        print(text)
    return 0


# -- issue 10: datasets (fetch --lock) and the disk cache (cache info|clear) ----------------------------
def _fetch_locked(args: argparse.Namespace) -> int:
    """Download a query's archives through the disk cache and write (or replay) a lockfile.

    With ``--url``: list the query, download what the cache lacks, write the lock. Without
    it: reproduce the lock's dataset (its own URL) and name the entries changed since; when
    entries cannot be reproduced, name them and fail (exit 1) without writing any, unless
    ``--partial`` asks for the others.
    Writes one JSON line ``{"entry_id", "archive"}`` per entry (``-o`` or stdout).
    """
    cache = ArchiveCache(args.cache_dir) if args.cache_dir else ArchiveCache()
    dataset = None
    if not args.url:
        # the whole dataset or its reasons: nothing is written for a replay that fails
        dataset = open_dataset(args.lock, cache=cache, offline=args.offline, strict=False, partial=True)
        for entry_id, reason in {**dataset.changed, **dataset.unavailable}.items():
            print(f"{entry_id}: {reason}", file=sys.stderr)
        if dataset.unavailable and not args.partial:
            lost, total = len(dataset.unavailable), len(dataset.lock["entries"])
            raise CommandError(
                f"{lost} of {total} locked entries cannot be reproduced (named above); "
                f"--partial writes the other {len(dataset.archives)}"
            )
    out = open(args.output, "w", encoding="utf-8") if args.output and args.output != "-" else sys.stdout  # noqa: SIM115
    count = 0
    try:
        if dataset is None:
            query = checked_query(args)
            stream = dataset_raw(client(args.url), query, args.required, lock=args.lock, cache=cache)
            for state, archive in stream:
                out.write(json.dumps({"entry_id": state.entry_id, "archive": archive}) + "\n")
                count += 1
        else:
            for entry_id, archive in dataset.archives.items():
                out.write(json.dumps({"entry_id": entry_id, "archive": archive}) + "\n")
                count += 1
    finally:
        if out is not sys.stdout:
            out.close()
    missing = f", {len(dataset.unavailable)} not reproduced" if dataset is not None and dataset.unavailable else ""
    print(f"{count} entries{missing} ({args.lock})", file=sys.stderr)
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    """``cache info``: where the disk cache is and what it holds; ``cache clear``: empty it
    (a damaged cache file is removed)."""
    cache = ArchiveCache(args.cache_dir) if args.cache_dir else ArchiveCache()
    if args.action == "clear":
        try:
            cache.info()
        except CacheDamagedError as exc:
            if args.url:
                raise CommandError(f"{exc}; a damaged cache is cleared whole: leave out --url") from exc
            cache.remove_files()
            print(f"removed the damaged cache file {cache.path}")
            return 0
        removed = cache.clear(api_base_url(args.url) if args.url else None)
        print(f"removed {removed} cached archives from {cache.directory}")
        return 0
    info = cache.info()
    if args.json:
        print(json_text(info))
    else:
        print(f"{info['directory']}: {info['entries']} archives, {info['bytes']} of {info['size_limit']} bytes")
        for url, count in sorted(info["deployments"].items()):
            print(f"  {url}: {count}")
    return 0


def add_fetch_command(add_command: AddCommand) -> None:
    """``archivemap fetch``: its options."""
    p = add_command("fetch", help="download (part of) an archive as JSON")
    p.add_argument("entry_id", nargs="?", help="the entry to download (not with --lock)")
    p.add_argument("--url", help="NOMAD API v1 URL (…/api/v1)")
    p.add_argument("--required", type=required_type, default="*", help='required spec as JSON, e.g. \'{"workflow2": "*"}\'')
    p.add_argument("--metainfo", help="metainfo export to check --required against; env ARCHIVEMAP_METAINFO")
    p.add_argument("-o", "--output", help="output file (default: stdout)")
    # issue 10: a query's archives with a dataset lockfile (JSON lines out)
    p.add_argument("--lock", help="dataset lockfile: with --url, download --query and write it; alone, replay it")
    p.add_argument("--query", type=query_type, help="with --lock: the query (default: all entries)")
    p.add_argument("--no-check", action="store_true", help="send the query unchecked")
    p.add_argument("--offline", action="store_true", help="with --lock alone: from the disk cache only")
    p.add_argument("--partial", action="store_true",
                   help="with --lock alone: write the entries that can be reproduced even when others cannot")
    p.add_argument("--cache-dir", help="disk cache folder (default: $ARCHIVEMAP_CACHE_DIR or the user cache)")
    p.set_defaults(func=cmd_fetch)


def add_cache_command(add_command: AddCommand) -> None:
    """``archivemap cache``: its options."""
    p = add_command("cache", help="the disk cache of downloaded archives: info or clear")
    p.add_argument("action", choices=["info", "clear"])
    p.add_argument("--cache-dir", help="disk cache folder (default: $ARCHIVEMAP_CACHE_DIR or the user cache)")
    p.add_argument("--url", help="clear: only this deployment's archives")
    p.add_argument("--json", action="store_true", help="info: print JSON")
    p.set_defaults(func=cmd_cache)
