"""The ``archivemap`` command line.

Exit codes: 0 success, 1 an error in the work (one line on stderr; ``--debug`` shows the
traceback), 2 a usage error (one line naming the argument, e.g. ``--query``), 141 a closed
pipe (``archivemap fetch … | head``, quietly). Only results go to stdout; progress, notes
and errors go to stderr. Commands that a script would read print JSON with ``--json``.

Values are shown in display units (``--units materials``: eV, Å, GPa, ps; ``si`` shows what
the archive stores); ``--unit kJ/mol`` converts one value, molar through the documented
``"molar"`` context (see :mod:`archivemap.views.units`).
"""

from __future__ import annotations

import argparse
import datetime
import difflib
import json
import os
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

import archivemap
from archivemap import graph
from archivemap._embedded import EMBEDDED_METAINFO
from archivemap._json import read_json
from archivemap._lazy import deferred_import
from archivemap._progress import watched
from archivemap.archive.load import default_schema
from archivemap.archive.schema import as_schema
from archivemap.archive.sections import Section
from archivemap.errors import (
    AbsentError,
    ArchiveDataError,
    CacheDamagedError,
    HTTPStatusError,
    NotFoundError,
    QueryError,
    TransportError,
)
from archivemap.graph.draw import to_html
from archivemap.metainfo.fields import fields_by_name
from archivemap.metainfo.search import search_quantities
from archivemap.remote.cache import ArchiveCache
from archivemap.remote.client import api_base_url, transport_reason
from archivemap.remote.dataset import open_dataset
from archivemap.remote.lockfile import dataset_raw
from archivemap.remote.query import explain_query, query_json
from archivemap.server import LocalServer
from archivemap.units import check_unit_text
from archivemap.views.display import pretty
from archivemap.views.units import PRESETS, convert, display_units, molar_registry, to_display, unit_text
from archivemap_codegen import cli as codegen_cli

if TYPE_CHECKING:
    import numpy as np
    import pint
else:
    # numpy and pint (~0.3 s) are imported by the first value shown, not by `archivemap --help`
    np = deferred_import("numpy")
    pint = deferred_import("pint")

__all__ = ["build_parser", "main"]

REPO_SAMPLES = Path(__file__).resolve().parents[2] / "samples"

#: A JSON object with none of these top-level keys is not an archive (as ``serve`` decides).
ARCHIVE_KEYS = frozenset({"metadata", "run", "data", "workflow", "workflow2", "results", "definitions"})
#: NOMAD's EntryArchive properties, for suggestions when no metainfo is given.
ENTRY_ARCHIVE_KEYS = (
    "definitions", "metadata", "processing_logs", "run", "workflow", "workflow2", "data",
    "results", "m_ref_archives",
)

#: The client options of the command line: a refused connection fails in well under 2 s.
CLI_RETRIES = 2
CLI_BACKOFF = (0.25, 1.0)
CLI_TIMEOUT = (5.0, 120.0)


class CommandError(Exception):
    """A failure the command explains itself (its message is the one line printed)."""


class UsageError(CommandError):
    """A command-line value that cannot work (exit 2, like argparse's own errors)."""


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


def _json_text(value: Any, indent: int | None = 2) -> str:
    return json.dumps(value, default=_json_default, indent=indent, sort_keys=False)


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


_query_type = _json_type("query", """'{"results.material.elements": ["Ti", "O"]}'""")


def _required_type(text: str) -> Any:
    """``--required``: a JSON spec, or a directive such as ``*``."""
    if text.strip()[:1] in '{["':
        return _json_type("required", """'{"workflow2": "*"}' or *""", (dict, list, str))(text)
    return text


def _unit_type(text: str) -> str:
    try:
        check_unit_text(text)  # pint evaluates unit expressions: "10**10**10" would never end
    except ArchiveDataError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    try:
        molar_registry().Unit(text)
    except (pint.errors.UndefinedUnitError, pint.errors.DefinitionSyntaxError, AttributeError, TypeError, ValueError, AssertionError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a unit pint knows (e.g. eV, angstrom, kJ/mol)") from None
    return text


# -- clients ------------------------------------------------------------------------------------------
def _client(url: str) -> Any:
    backoff_base, backoff_max = CLI_BACKOFF
    return archivemap.Client(
        url,
        token=os.environ.get("NOMAD_TOKEN"),
        retries=CLI_RETRIES,
        backoff_base=backoff_base,
        backoff_max=backoff_max,
        timeout=CLI_TIMEOUT,
    )


def _url_hint(url: str | None) -> str:
    """A hint when a URL lacks NOMAD's ``/api/v1``."""
    if not url or "/api/v1" in urlsplit(url).path:
        return ""
    try:
        suggestion = api_base_url(url)
    except ValueError:
        return ""
    return f"; NOMAD's API lives under /api/v1: try --url {suggestion}"


def _transport_reason(error: TransportError) -> str:
    text = str(error)
    return transport_reason(text) or text.split(": ", 1)[-1][:160]


def _server_of(url: str | None) -> str:
    if not url:
        return "the server"
    parts = urlsplit(url)
    marker = parts.path.find("/api/v1")
    path = parts.path[: marker + 7] if marker >= 0 else parts.path
    return f"{parts.scheme}://{parts.netloc}{path}"


# -- loading from files and folders ---------------------------------------------------------------------
def _schema_for(args: argparse.Namespace, near: Path | None = None) -> Any:
    schema = getattr(args, "metainfo", None) or os.environ.get("ARCHIVEMAP_METAINFO")
    if schema is None and near is not None and (REPO_SAMPLES / "metainfo.json").is_file():
        if REPO_SAMPLES == near.resolve() or REPO_SAMPLES in near.resolve().parents:
            schema = str(REPO_SAMPLES / "metainfo.json")
    if schema is None and near is not None:  # local archives: the NOMAD metainfo in the package
        schema = default_schema()
    return schema


def _is_archive(path: Path) -> bool:
    """Whether a JSON file is an archive (an object with one of NOMAD's top-level keys).

    Raises:
        ArchiveDataError, OSError: the file cannot be read as JSON at all.
    """
    data = read_json(path)
    return isinstance(data, dict) and bool(ARCHIVE_KEYS & set(data))


class Folder:
    """The archives of a folder: loaded one by one, non-archives skipped and counted."""

    def __init__(self, path: Path, schema: Any) -> None:
        self.path = path
        self.source = archivemap.DirectorySource(path, as_schema(schema))
        self.skipped: list[str] = []
        self.failed: list[tuple[str, str]] = []
        self.lacking: list[tuple[str, str]] = []  # archives without the path asked for: data, not failures

    def archives(self) -> list[tuple[Path, Any]]:
        out = []
        for file in sorted(self.path.glob("*.json")):
            try:
                if not _is_archive(file):
                    self.skipped.append(file.name)
                    continue
                out.append((file, archivemap.load(file, self.source.schema, archives=self.source)))
            except Exception as exc:  # one bad file must not stop the folder
                self.failed.append((file.name, f"{type(exc).__name__}: {exc}"))
        return out

    def report(self, command: str, total: int) -> int:
        """The summary on stderr; the exit status (1 when any archive failed)."""
        if self.skipped:
            names = ", ".join(self.skipped[:3]) + (", …" if len(self.skipped) > 3 else "")
            print(f"archivemap {command}: skipped {len(self.skipped)} file(s) that are not archives ({names})", file=sys.stderr)
        if self.lacking:
            print(f"archivemap {command}: {len(self.lacking)} of {total} archive(s) do not have it:", file=sys.stderr)
            for name, why in self.lacking:
                print(f"  {name}: {why}", file=sys.stderr)
        if self.failed:
            print(f"archivemap {command}: {len(self.failed)} of {total} archive(s) failed:", file=sys.stderr)
            for name, why in self.failed:
                print(f"  {name}: {why}", file=sys.stderr)
            return 1
        return 0


def _load_one(source: str, args: argparse.Namespace) -> Any:
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {source}")
    schema = _schema_for(args, path)
    if schema is None:
        raise CommandError("--metainfo (or ARCHIVEMAP_METAINFO) names the metainfo export to read archives with")
    if not _is_archive(path):
        raise CommandError(f"{source} is not an archive (a JSON object with one of {', '.join(sorted(ARCHIVE_KEYS))})")
    folder = archivemap.DirectorySource(path.parent, as_schema(schema))
    return archivemap.load(path, folder.schema, archives=folder)


def _load_remote(entry_id: str, args: argparse.Namespace) -> Any:
    client = _client(args.url)
    schema = _schema_for(args) or client.deployment_schema()  # the deployment's own metainfo
    required = args.required if args.required is not None else "*"
    unknown = _unknown_required(required, _archive_names(schema))
    if unknown:
        raise CommandError(unknown[0])
    return client.archive(entry_id, required=required, schema=schema)


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
        return _json_text(value)
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
        print(_json_text(rows))
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
        value = _show_value(_load_remote(args.source, args), args)
        print(_json_text(_value_json(value, args.unit)) if args.json else _value_text(value, args.unit))
        return 0
    path = Path(args.source)
    if not path.is_dir():
        value = _show_value(_load_one(args.source, args), args)
        print(_json_text(_value_json(value, args.unit)) if args.json else _value_text(value, args.unit))
        return 0
    schema = _schema_for(args, path)
    if schema is None:
        raise CommandError("--metainfo (or ARCHIVEMAP_METAINFO) names the metainfo export to read archives with")
    folder = Folder(path, schema)
    archives = folder.archives()
    tried = len(archives) + len(folder.failed)
    for file, archive in archives:
        try:
            value = _show_value(archive, args)
            if args.json:
                text = _json_text({"file": file.name, "value": _value_json(value, args.unit)}, indent=None)
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


def _archive_names(schema: Any) -> Sequence[str]:
    """The top-level names of an archive: from the schema when there is one."""
    if schema is None:
        return ENTRY_ARCHIVE_KEYS
    return [fm.name for fm in fields_by_name(as_schema(schema).root_class()).values()]


def _unknown_required(required: Any, names: Sequence[str]) -> list[str]:
    """One message per top-level ``--required`` key that names nothing, with the nearest names."""
    if not isinstance(required, dict):
        return []
    messages = []
    for key in required:
        if key in names or key in ("resolve-inplace", "include-definition"):
            continue
        near = difflib.get_close_matches(key, list(names), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""
        messages.append(f"--required: {key!r} is not a section of an archive{hint}")
    return messages


def _check_required(required: Any, answer: Any, args: argparse.Namespace, entry_id: str) -> None:
    """``--required`` keys that name nothing: an error naming the nearest names."""
    if not isinstance(required, dict):
        return
    unknown = _unknown_required(required, _archive_names(_schema_for(args)))
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
    client = _client(args.url)
    data = client.archive_raw(args.entry_id, required=args.required)
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
            query = _checked_query(args)
            stream = dataset_raw(_client(args.url), query, args.required, lock=args.lock, cache=cache)
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
        print(_json_text(info))
    else:
        print(f"{info['directory']}: {info['entries']} archives, {info['bytes']} of {info['size_limit']} bytes")
        for url, count in sorted(info["deployments"].items()):
            print(f"  {url}: {count}")
    return 0


def _search_keys(args: argparse.Namespace) -> Any:
    """The search keys to check a query against: ``--metainfo``, ARCHIVEMAP_METAINFO, or the
    embedded NOMAD metainfo; None with ``--no-check`` (a deployment with other plugins)."""
    if getattr(args, "no_check", False):
        return None
    source = getattr(args, "metainfo", None) or os.environ.get("ARCHIVEMAP_METAINFO")
    schema = as_schema(source) if source else default_schema()
    return search_quantities(schema.environment) or None


def _checked_query(args: argparse.Namespace) -> dict[str, Any]:
    """The query, checked before any request; a QueryError becomes one line and exit 2."""
    query = args.query if args.query is not None else {}
    try:
        return query_json(query, _search_keys(args))
    except QueryError as error:
        raise UsageError(f"--query: {' '.join(str(error).split())}") from None


def cmd_query(args: argparse.Namespace) -> int:
    """Page through entries matching a query, printing one JSON line per entry."""

    query = _checked_query(args)
    client = _client(args.url)
    required = {"include": args.include.split(",")} if args.include else None
    count = 0
    show_progress = not args.no_progress and watched()
    for entry in client.entries(query, required=required, page_size=args.page_size):
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


def cmd_graph(args: argparse.Namespace) -> int:
    """Write the reference graph of one or more archives."""

    path = Path(args.source)
    status = 0
    if args.url:  # SOURCE is an entry id: its whole archive, in one request
        loaded: Any = _load_remote(args.source, args)
    elif path.is_dir():
        schema = _schema_for(args, path)
        if schema is None:
            raise CommandError("--metainfo (or ARCHIVEMAP_METAINFO) names the metainfo export to read archives with")
        folder = Folder(path, schema)
        loaded = [archive for _, archive in folder.archives()]
        status = folder.report("graph", len(loaded) + len(folder.failed))
        if not loaded:
            raise CommandError(f"no archives in {path}")
    else:
        loaded = _load_one(args.source, args)
    g = graph.reference_graph(loaded, containment=args.containment, progress=not args.no_progress and watched())
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


def cmd_codegen(args: argparse.Namespace) -> int:
    """Generate Python classes from a metainfo export (refuses archives and other JSON)."""
    return int(codegen_cli.run(args))


# -- parser -----------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """Usage errors as one line naming the argument, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
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
    _add_parser = sub.add_parser

    def add_parser(name: str, **kwargs: Any) -> _Parser:
        return _add_parser(name, parents=[common], description=kwargs.get("help"), **kwargs)

    sub.add_parser = add_parser  # type: ignore[method-assign,assignment]
    sub.required = True

    p = sub.add_parser("demo", help="run offline on the shipped samples")
    p.add_argument("--samples", help="samples folder (default: the repository's samples/)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("codegen", help="generate Python classes from a metainfo export")
    codegen_cli.add_arguments(p)
    p.set_defaults(func=cmd_codegen)

    def common_source(q: argparse.ArgumentParser) -> None:
        q.add_argument("--metainfo", help="metainfo export (path or URL); env ARCHIVEMAP_METAINFO; "
                       "default for local files: the embedded NOMAD 2.0.0 metainfo")
        q.add_argument("--url", help="NOMAD API v1 URL (…/api/v1): SOURCE is then an entry id")
        q.add_argument(
            "--units", choices=sorted(PRESETS), default="materials",
            help="display units: materials (eV, Å, GPa, ps; default), atomic, si (as stored)",
        )

    p = sub.add_parser("show", help="print a section or value of an archive")
    p.add_argument("source", help="archive file, folder of archives, or entry id with --url")
    p.add_argument("path", nargs="?", help='dotted path, e.g. "run[0].calculation[-1].energy.total.value"')
    p.add_argument("--unit", type=_unit_type, help="convert the value to this unit, e.g. eV or kJ/mol")
    p.add_argument("--required", type=_required_type, help="with --url: what to download (JSON or *)")
    p.add_argument("--json", action="store_true", help="print JSON (values as stored, or in --unit)")
    common_source(p)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("fetch", help="download (part of) an archive as JSON")
    p.add_argument("entry_id", nargs="?", help="the entry to download (not with --lock)")
    p.add_argument("--url", help="NOMAD API v1 URL (…/api/v1)")
    p.add_argument("--required", type=_required_type, default="*", help='required spec as JSON, e.g. \'{"workflow2": "*"}\'')
    p.add_argument("--metainfo", help="metainfo export to check --required against; env ARCHIVEMAP_METAINFO")
    p.add_argument("-o", "--output", help="output file (default: stdout)")
    # issue 10: a query's archives with a dataset lockfile (JSON lines out)
    p.add_argument("--lock", help="dataset lockfile: with --url, download --query and write it; alone, replay it")
    p.add_argument("--query", type=_query_type, help="with --lock: the query (default: all entries)")
    p.add_argument("--no-check", action="store_true", help="send the query unchecked")
    p.add_argument("--offline", action="store_true", help="with --lock alone: from the disk cache only")
    p.add_argument("--partial", action="store_true",
                   help="with --lock alone: write the entries that can be reproduced even when others cannot")
    p.add_argument("--cache-dir", help="disk cache folder (default: $ARCHIVEMAP_CACHE_DIR or the user cache)")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("cache", help="the disk cache of downloaded archives: info or clear")
    p.add_argument("action", choices=["info", "clear"])
    p.add_argument("--cache-dir", help="disk cache folder (default: $ARCHIVEMAP_CACHE_DIR or the user cache)")
    p.add_argument("--url", help="clear: only this deployment's archives")
    p.add_argument("--json", action="store_true", help="info: print JSON")
    p.set_defaults(func=cmd_cache)

    p = sub.add_parser("query", help="page through entries matching a query")
    p.add_argument("--url", required=True, help="NOMAD API v1 URL (…/api/v1)")
    p.add_argument("--query", type=_query_type, help='query JSON, e.g. \'{"results.material.elements": ["Ti", "O"]}\'')
    p.add_argument("--include", help="comma-separated metadata fields to return")
    p.add_argument("--page-size", type=int, default=100, help="entries per request")
    p.add_argument("--max", type=int, default=0, help="stop after this many entries")
    p.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    p.add_argument("--metainfo", help="metainfo export to check the query against (default: the embedded "
                   "NOMAD 2.0.0 one); env ARCHIVEMAP_METAINFO")
    p.add_argument("--no-check", action="store_true",
                   help="send the query unchecked (a deployment whose plugins add search keys)")
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("explain", help="check a query offline and print what each criterion filters on")
    p.add_argument("--query", type=_query_type, help='query JSON, e.g. \'{"results.material.elements": ["Ti", "O"]}\'')
    p.add_argument("--metainfo", help="metainfo export with the search keys (default: the embedded NOMAD 2.0.0 one)")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("graph", help="the reference graph of archives")
    p.add_argument("source", help="archive file, folder of archives, or entry id with --url")
    p.add_argument("--format", choices=["text", "graphml", "dot", "png", "html"], default="text",
                   help="png: a readable picture (plot extra); html: interactive (interactive extra)")
    p.add_argument("--containment", action="store_true", help="include parent→child edges")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-o", "--output", help="output file")
    common_source(p)
    p.set_defaults(func=cmd_graph, required=None)  # with --url: the whole archive

    p = sub.add_parser("serve", help="serve a folder of archives as a NOMAD API on 127.0.0.1")
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
    return parser


def _error_line(args: argparse.Namespace, exc: Exception) -> str:
    """The one line that says what went wrong, and what to do when we know."""
    url = getattr(args, "url", None)
    if isinstance(exc, TransportError):
        return f"cannot reach {_server_of(exc.url or url)} ({_transport_reason(exc)}){_url_hint(url)}"
    if isinstance(exc, NotFoundError) and _url_hint(url):
        return f"{type(exc).__name__}: {exc}{_url_hint(url)}"
    if isinstance(exc, HTTPStatusError):
        return f"{type(exc).__name__}: {exc}{_url_hint(url)}"
    if isinstance(exc, CommandError):
        return str(exc)
    text = " ".join(str(exc).split())  # one line, whatever the message held
    return f"{type(exc).__name__}: {text}"


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
        print(f"archivemap {args.command}: {_error_line(args, exc)}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
