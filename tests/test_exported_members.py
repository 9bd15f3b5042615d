"""The public API is what archivemap/__init__.py exports, and importing it stays cheap.

The expected names are spelled out here (as httpx does): adding, renaming or dropping a
public name is a deliberate change to this list, not a side effect.
"""

from __future__ import annotations

import inspect
import subprocess
import sys

import archivemap
import archivemap.errors

EXPECTED_PUBLIC_NAMES = [
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

# Optional or heavy dependencies that only the functions needing them may import.
NOT_IMPORTED_BY_IMPORT_ARCHIVEMAP = [
    "pandas", "ase", "matplotlib", "dask", "tqdm", "numpy", "pint", "networkx", "requests",
]


def test_all_is_the_expected_public_api() -> None:
    assert archivemap.__all__ == EXPECTED_PUBLIC_NAMES


def test_every_public_name_resolves() -> None:
    for name in EXPECTED_PUBLIC_NAMES:
        assert getattr(archivemap, name) is not None, name


def test_every_error_and_warning_is_exported() -> None:
    classes = [
        cls
        for _, cls in inspect.getmembers(archivemap.errors, inspect.isclass)
        if cls.__module__ == archivemap.errors.__name__
        and issubclass(cls, (archivemap.errors.ArchivemapError, Warning))
    ]
    assert archivemap.errors.ArchivemapError in classes
    for cls in classes:
        assert cls.__name__ in archivemap.__all__, cls
        assert getattr(archivemap, cls.__name__) is cls


def test_import_does_not_load_heavy_dependencies() -> None:
    code = (
        "import sys, archivemap\n"
        f"print(','.join(m for m in {NOT_IMPORTED_BY_IMPORT_ARCHIVEMAP!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_generated_package_is_found_for_its_metainfo(tmp_path, monkeypatch) -> None:
    from archivemap_codegen import generate

    from .conftest import SAMPLES

    assert generate(SAMPLES / "metainfo.json", tmp_path, package_name="found_by_sha") == 0
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("ARCHIVEMAP_CLASSES", "found_by_sha")
    monkeypatch.setattr("archivemap.archive.schema._registered", {})  # other tests import other packages
    schema = archivemap.Schema(SAMPLES / "metainfo.json")
    assert schema.generated is not None and schema.generated.__name__ == "found_by_sha"
    archive = archivemap.load(SAMPLES / "archives" / "si2-single-point.archive.json", schema)
    assert type(archive.run[0]).__module__ == "found_by_sha.runschema_run"
