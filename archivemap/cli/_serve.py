"""``archivemap serve``: a folder of archives as a NOMAD-compatible API on 127.0.0.1.

The command only wires options to :class:`archivemap.server.LocalServer` and runs it until
Ctrl-C; what makes it safe to leave running (loopback, Host check, token, timeouts, body
limits) lives in the server.
"""

from __future__ import annotations

import argparse
import os
import threading

from archivemap._embedded import EMBEDDED_METAINFO
from archivemap.cli._args import AddCommand
from archivemap.server import LocalServer

__all__ = ["add_serve_command", "cmd_serve"]


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve a folder of archives as a NOMAD-compatible API on 127.0.0.1."""

    server = LocalServer(
        args.directory,
        host=args.host,
        port=args.port,
        metainfo=None if args.no_metainfo else args.metainfo or EMBEDDED_METAINFO,
        token=args.token or os.environ.get("ARCHIVEMAP_SERVE_TOKEN") or None,
        allowed_hosts=args.allowed_host or None,
        request_timeout=args.request_timeout,
        max_body_bytes=args.max_body_bytes,
        raw=args.raw,
    ).start()
    raw = f", raw files from {server.raw}" if server.raw is not None else ""
    print(f"serving {len(server.store)} entries at {server.url}{raw}  (Ctrl-C to stop)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def add_serve_command(add_command: AddCommand) -> None:
    """``archivemap serve``: its options."""
    p = add_command("serve", help="serve a folder of archives as a NOMAD API on 127.0.0.1")
    p.add_argument("directory", help="folder of archive JSON files")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    p.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
    p.add_argument("--metainfo", help="metainfo export whose schema rules answer 'required' "
                   "(default: the embedded NOMAD 2.0.0 one)")
    p.add_argument("--no-metainfo", action="store_true",
                   help="no schema: 'required' follows the JSON as stored (plugins NOMAD 2.0.0 lacks)")
    p.add_argument("--token", help="require 'Authorization: Bearer TOKEN' (or ARCHIVEMAP_SERVE_TOKEN)")
    p.add_argument("--allowed-host", action="append", metavar="HOST",
                   help="a Host header to accept besides the bound address (repeatable)")
    p.add_argument("--request-timeout", type=float, default=5.0, metavar="SECONDS",
                   help="cut off clients that do not send a whole request in time")
    p.add_argument("--max-body-bytes", type=int, default=4 * 1024 * 1024, metavar="BYTES",
                   help="refuse larger request bodies with 413")
    p.add_argument("--raw", metavar="FOLDER",
                   help="raw files as <FOLDER>/<upload_id>/<path> (default: a raw/ folder beside DIRECTORY)")
    p.set_defaults(func=cmd_serve)
