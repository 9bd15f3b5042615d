"""Archives for the commands: a file, a folder of files, or an entry of a NOMAD deployment.

Which metainfo reads them (``--metainfo``, ``ARCHIVEMAP_METAINFO``, the repository's samples
beside them, else the embedded NOMAD metainfo), which JSON files are archives at all (as
``serve`` decides), and the client the commands talk to a deployment with. A folder is loaded
file by file: one bad file is counted and reported at the end, not fatal.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import archivemap
from archivemap._json import read_json
from archivemap.archive.load import default_schema
from archivemap.archive.schema import as_schema
from archivemap.cli._errors import CommandError
from archivemap.metainfo.fields import fields_by_name

__all__ = [
    "ARCHIVE_KEYS",
    "REPO_SAMPLES",
    "Folder",
    "archive_names",
    "client",
    "load_one",
    "local_schema",
    "load_remote",
    "schema_for",
    "unknown_required",
]

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


# -- clients ------------------------------------------------------------------------------------------
def client(url: str) -> Any:
    """A client of ``url`` with the command line's retries and timeouts (token: NOMAD_TOKEN)."""
    backoff_base, backoff_max = CLI_BACKOFF
    return archivemap.Client(
        url,
        token=os.environ.get("NOMAD_TOKEN"),
        retries=CLI_RETRIES,
        backoff_base=backoff_base,
        backoff_max=backoff_max,
        timeout=CLI_TIMEOUT,
    )


# -- loading from files and folders ---------------------------------------------------------------------
def schema_for(args: argparse.Namespace, near: Path | None = None) -> Any:
    """The metainfo to read archives with; ``near`` is where local archives are (None: remote)."""
    schema = getattr(args, "metainfo", None) or os.environ.get("ARCHIVEMAP_METAINFO")
    if schema is None and near is not None and (REPO_SAMPLES / "metainfo.json").is_file():
        if REPO_SAMPLES == near.resolve() or REPO_SAMPLES in near.resolve().parents:
            schema = str(REPO_SAMPLES / "metainfo.json")
    if schema is None and near is not None:  # local archives: the NOMAD metainfo in the package
        schema = default_schema()
    return schema


def local_schema(args: argparse.Namespace, path: Path) -> Any:
    """:func:`schema_for` the archives at ``path``.

    Raises:
        CommandError: there is none to read them with.
    """
    schema = schema_for(args, path)
    if schema is None:
        raise CommandError("--metainfo (or ARCHIVEMAP_METAINFO) names the metainfo export to read archives with")
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
        """(file, archive) for each archive that loads; the others are counted for :meth:`report`."""
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


def load_one(source: str, args: argparse.Namespace) -> Any:
    """The archive in file ``source``, read with :func:`local_schema` (its folder a source)."""
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {source}")
    schema = local_schema(args, path)
    if not _is_archive(path):
        raise CommandError(f"{source} is not an archive (a JSON object with one of {', '.join(sorted(ARCHIVE_KEYS))})")
    folder = archivemap.DirectorySource(path.parent, as_schema(schema))
    return archivemap.load(path, folder.schema, archives=folder)


def load_remote(entry_id: str, args: argparse.Namespace) -> Any:
    """Entry ``entry_id`` of ``--url``: what ``--required`` asks for (default all)."""
    remote = client(args.url)
    schema = schema_for(args) or remote.deployment_schema()  # the deployment's own metainfo
    required = args.required if args.required is not None else "*"
    unknown = unknown_required(required, archive_names(schema))
    if unknown:
        raise CommandError(unknown[0])
    return remote.archive(entry_id, required=required, schema=schema)


def archive_names(schema: Any) -> Sequence[str]:
    """The top-level names of an archive: from the schema when there is one."""
    if schema is None:
        return ENTRY_ARCHIVE_KEYS
    return [fm.name for fm in fields_by_name(as_schema(schema).root_class()).values()]


def unknown_required(required: Any, names: Sequence[str]) -> list[str]:
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
