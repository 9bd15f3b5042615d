"""archivemap: typed, lazy, navigable Python objects for NOMAD archives.

The public API, by what you do with it::

    load(source, schema)              archive JSON → lazy typed root section (EntryArchive)
    Schema(metainfo)                  metainfo definitions + their classes (generated or run-time)
    load_environment(metainfo)        the definition model alone
    Client(base_url, ...)             NOMAD API v1: queries, archives, lazy remote sections
    Absent / Pending / PendingList    what a read gives for an unset sub-section, and for one
                                      not downloaded yet (fetched when a value below is read)
    section.batch(...) / Placeholder  many reads of a partial archive in one request
    DirectorySource / ZipSource       archives on disk, for cross-entry references offline
    reference_graph(archives)         networkx graph of sections and reference links
    parse_reference(string)           take a reference string apart
    html / pretty / to_dataframe / to_atoms   views of sections (text, HTML, pandas, ASE)
    LocalServer(folder)               a NOMAD-compatible API over a folder, for tests and offline
    ArchivemapError, ...              every error class (the tree is drawn in archivemap.errors)

The layers below, in the direction data flows (an import contract in the tests keeps it so):
leaves (``errors``, ``paths``, ``units``, ``naming``, ``_json``) → ``metainfo`` →
``archive`` → ``remote`` | ``graph`` | ``views`` → ``cli``; ``server`` uses the leaves only.

Names are imported on first use, so ``import archivemap`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from archivemap._version import __version__

__all__ = [
    "Absent",
    "AbsentError",
    "AbsentItemError",
    "AbsentSectionError",
    "ArchiveDataError",
    "ArchiveSource",
    "ArchiveStream",
    "ArchivemapError",
    "AssignmentError",
    "AuthenticationError",
    "BadRequestError",
    "CacheDamagedError",
    "Client",
    "ClientError",
    "CodegenError",
    "CyclicDefinitionError",
    "DanglingReferenceError",
    "DatasetIncompleteError",
    "DatasetIntegrityError",
    "DatasetWarning",
    "DefinitionError",
    "DirectorySource",
    "DownloadLimitError",
    "Environment",
    "Fetcher",
    "ForbiddenError",
    "HTTPStatusError",
    "LocalServer",
    "LockfileConflictError",
    "MalformedResponseError",
    "MissingError",
    "MissingScopeError",
    "NotDownloadedError",
    "NotFoundError",
    "NotInSchemaError",
    "ParsedReference",
    "PathSyntaxError",
    "Pending",
    "PendingList",
    "Placeholder",
    "Q",
    "Query",
    "QueryError",
    "ReferenceCycleError",
    "ReferenceResolutionError",
    "ResponseTooLargeError",
    "Schema",
    "SchemaMismatchWarning",
    "SchemaSourceChangedError",
    "Section",
    "ServerError",
    "SourceWarning",
    "TransportError",
    "UnknownDefinitionError",
    "UnknownSchemaError",
    "UnsafePathError",
    "UnsupportedReferenceError",
    "ValidationError",
    "ZipSource",
    "dangling_references",
    "default_schema",
    "display_units",
    "entry_id_from_mainfile",
    "html",
    "load",
    "load_environment",
    "open_dataset",
    "parse_reference",
    "pretty",
    "read_json",
    "reference_cycles",
    "reference_graph",
    "referrers",
    "required_for",
    "set_default_schema",
    "subgraph_of",
    "to_atoms",
    "to_dataframe",
    "to_trajectory",
    "write_extxyz",
]

#: Where each public name lives (imported from there on first use).
_EXPORTS: dict[str, str] = {
    "Absent": "archivemap.archive.standins",
    "AbsentError": "archivemap.errors",
    "AbsentItemError": "archivemap.errors",
    "AbsentSectionError": "archivemap.errors",
    "ArchiveDataError": "archivemap.errors",
    "ArchiveSource": "archivemap.archive.context",
    "ArchiveStream": "archivemap.remote.stream",
    "ArchivemapError": "archivemap.errors",
    "AssignmentError": "archivemap.errors",
    "AuthenticationError": "archivemap.errors",
    "BadRequestError": "archivemap.errors",
    "CacheDamagedError": "archivemap.errors",
    "Client": "archivemap.remote.client",
    "ClientError": "archivemap.errors",
    "CodegenError": "archivemap.errors",
    "CyclicDefinitionError": "archivemap.errors",
    "DanglingReferenceError": "archivemap.errors",
    "DatasetIncompleteError": "archivemap.errors",
    "DatasetIntegrityError": "archivemap.errors",
    "DatasetWarning": "archivemap.errors",
    "DefinitionError": "archivemap.errors",
    "DirectorySource": "archivemap.archive.sources",
    "DownloadLimitError": "archivemap.errors",
    "Environment": "archivemap.metainfo.environment",
    "Fetcher": "archivemap.archive.base",
    "ForbiddenError": "archivemap.errors",
    "HTTPStatusError": "archivemap.errors",
    "LocalServer": "archivemap.server",
    "LockfileConflictError": "archivemap.errors",
    "MalformedResponseError": "archivemap.errors",
    "MissingError": "archivemap.errors",
    "MissingScopeError": "archivemap.errors",
    "NotDownloadedError": "archivemap.errors",
    "NotFoundError": "archivemap.errors",
    "NotInSchemaError": "archivemap.errors",
    "ParsedReference": "archivemap.archive.references",
    "PathSyntaxError": "archivemap.errors",
    "Pending": "archivemap.archive.standins",
    "PendingList": "archivemap.archive.standins",
    "Placeholder": "archivemap.archive.standins",
    "Q": "archivemap.remote.query",
    "Query": "archivemap.remote.query",
    "QueryError": "archivemap.errors",
    "ReferenceCycleError": "archivemap.errors",
    "ReferenceResolutionError": "archivemap.errors",
    "ResponseTooLargeError": "archivemap.errors",
    "Schema": "archivemap.archive.schema",
    "SchemaMismatchWarning": "archivemap.errors",
    "SchemaSourceChangedError": "archivemap.errors",
    "Section": "archivemap.archive.sections",
    "ServerError": "archivemap.errors",
    "SourceWarning": "archivemap.errors",
    "TransportError": "archivemap.errors",
    "UnknownDefinitionError": "archivemap.errors",
    "UnknownSchemaError": "archivemap.errors",
    "UnsafePathError": "archivemap.errors",
    "UnsupportedReferenceError": "archivemap.errors",
    "ValidationError": "archivemap.errors",
    "ZipSource": "archivemap.archive.sources",
    "dangling_references": "archivemap.graph",
    "default_schema": "archivemap.archive.load",
    "display_units": "archivemap.views.units",
    "entry_id_from_mainfile": "archivemap.archive.references",
    "html": "archivemap.views.display",
    "load": "archivemap.archive.load",
    "load_environment": "archivemap.metainfo.exports",
    "open_dataset": "archivemap.remote.dataset",
    "parse_reference": "archivemap.archive.references",
    "pretty": "archivemap.views.display",
    "read_json": "archivemap._json",
    "reference_cycles": "archivemap.graph",
    "reference_graph": "archivemap.graph",
    "referrers": "archivemap.graph",
    "required_for": "archivemap.remote.derive",
    "set_default_schema": "archivemap.archive.load",
    "subgraph_of": "archivemap.graph",
    "to_atoms": "archivemap.views.ase",
    "to_dataframe": "archivemap.views.dataframe",
    "to_trajectory": "archivemap.views.ase",
    "write_extxyz": "archivemap.views.ase",
}

if TYPE_CHECKING:
    from archivemap.remote.derive import required_for
    from archivemap._json import read_json
    from archivemap.archive.context import ArchiveSource
    from archivemap.archive.load import default_schema, load, set_default_schema
    from archivemap.archive.references import ParsedReference, entry_id_from_mainfile, parse_reference
    from archivemap.archive.schema import Schema
    from archivemap.archive.base import Fetcher
    from archivemap.archive.sections import Section
    from archivemap.archive.standins import Absent, Pending, PendingList, Placeholder
    from archivemap.archive.sources import DirectorySource, ZipSource
    from archivemap.errors import (
        AbsentError,
        AbsentItemError,
        AbsentSectionError,
        ArchiveDataError,
        ArchivemapError,
        AssignmentError,
        AuthenticationError,
        BadRequestError,
        CacheDamagedError,
        ClientError,
        CodegenError,
        CyclicDefinitionError,
        DanglingReferenceError,
        DatasetIncompleteError,
        DatasetIntegrityError,
        DatasetWarning,
        DefinitionError,
        DownloadLimitError,
        ForbiddenError,
        HTTPStatusError,
        LockfileConflictError,
        MalformedResponseError,
        MissingError,
        MissingScopeError,
        NotDownloadedError,
        NotFoundError,
        NotInSchemaError,
        PathSyntaxError,
        QueryError,
        ReferenceCycleError,
        ReferenceResolutionError,
        ResponseTooLargeError,
        SchemaMismatchWarning,
        SchemaSourceChangedError,
        SourceWarning,
        ServerError,
        TransportError,
        UnknownDefinitionError,
        UnknownSchemaError,
        UnsafePathError,
        UnsupportedReferenceError,
        ValidationError,
    )
    from archivemap.graph import (
        dangling_references,
        reference_cycles,
        reference_graph,
        referrers,
        subgraph_of,
    )
    from archivemap.metainfo.environment import Environment
    from archivemap.metainfo.exports import load_environment
    from archivemap.remote.client import Client
    from archivemap.remote.dataset import open_dataset
    from archivemap.remote.query import Q, Query
    from archivemap.remote.stream import ArchiveStream
    from archivemap.server import LocalServer
    from archivemap.views.ase import to_atoms, to_trajectory, write_extxyz
    from archivemap.views.dataframe import to_dataframe
    from archivemap.views.display import html, pretty
    from archivemap.views.units import display_units


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'archivemap' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
