"""archivemap: typed, lazy, navigable Python objects for NOMAD archives.

The public API, by what you do with it::

    load(source, schema)              archive JSON → lazy typed root section (EntryArchive)
    Schema(metainfo)                  metainfo definitions + their classes (generated or run-time)
    load_environment(metainfo)        the definition model alone
    Client(base_url, ...)             NOMAD API v1: queries, archives, lazy remote sections
    DirectorySource / ZipSource       archives on disk, for cross-entry references offline
    reference_graph(archives)         networkx graph of sections and reference links
    parse_reference(string)           take a reference string apart
    errors                            ArchivemapError and its subclasses

Names are imported on first use, so ``import archivemap`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "AbsentError": "archivemap.errors",
    "ArchivemapError": "archivemap.errors",
    "Client": "archivemap.client",
    "DanglingReferenceError": "archivemap.errors",
    "DirectorySource": "archivemap.sources",
    "Environment": "archivemap.definitions",
    "NotDownloadedError": "archivemap.errors",
    "NotInSchemaError": "archivemap.errors",
    "ParsedReference": "archivemap.references",
    "ReferenceResolutionError": "archivemap.errors",
    "Schema": "archivemap.schema",
    "SchemaMismatchWarning": "archivemap.errors",
    "Section": "archivemap.sections",
    "ZipSource": "archivemap.sources",
    "ArchiveStream": "archivemap.client",
    "LocalServer": "archivemap.server",
    "dangling_references": "archivemap.graph",
    "html": "archivemap.display",
    "pretty": "archivemap.display",
    "reference_cycles": "archivemap.graph",
    "referrers": "archivemap.graph",
    "subgraph_of": "archivemap.graph",
    "to_atoms": "archivemap.ase",
    "to_dataframe": "archivemap.dataframe",
    "entry_id_from_mainfile": "archivemap.references",
    "load": "archivemap.loading",
    "load_environment": "archivemap.definitions",
    "parse_reference": "archivemap.references",
    "reference_graph": "archivemap.graph",
    "set_default_schema": "archivemap.loading",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from archivemap.client import Client
    from archivemap.definitions import Environment, load_environment
    from archivemap.errors import (
        AbsentError,
        ArchivemapError,
        DanglingReferenceError,
        NotDownloadedError,
        NotInSchemaError,
        ReferenceResolutionError,
        SchemaMismatchWarning,
    )
    from archivemap.ase import to_atoms
    from archivemap.client import ArchiveStream
    from archivemap.dataframe import to_dataframe
    from archivemap.display import html, pretty
    from archivemap.graph import dangling_references, reference_cycles, reference_graph, referrers, subgraph_of
    from archivemap.server import LocalServer
    from archivemap.loading import load, set_default_schema
    from archivemap.references import ParsedReference, entry_id_from_mainfile, parse_reference
    from archivemap.schema import Schema
    from archivemap.sections import Section
    from archivemap.sources import DirectorySource, ZipSource


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'archivemap' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
