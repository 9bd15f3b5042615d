"""The archive layer: archive JSON ⇄ typed, lazy sections.

Inside it, data flows one way: ``converter`` and ``references`` (values and reference strings)
→ ``sections`` (the Section class, its storage and the one walker) → ``schema`` (definitions
→ classes) → ``context`` (what one archive shares; the seams) → ``sources`` (other archives
on disk) → ``load``.
"""

from archivemap.archive.context import ArchiveContext, ArchiveSource, new_archive
from archivemap.archive.load import load, set_default_schema
from archivemap.archive.references import ParsedReference, entry_id_from_mainfile, parse_reference
from archivemap.archive.schema import Schema, as_schema
from archivemap.archive.sections import Fetcher, Section, SectionContext
from archivemap.archive.sources import DirectorySource, ZipSource

__all__ = [
    "ArchiveContext",
    "ArchiveSource",
    "DirectorySource",
    "Fetcher",
    "ParsedReference",
    "Schema",
    "Section",
    "SectionContext",
    "ZipSource",
    "as_schema",
    "entry_id_from_mainfile",
    "load",
    "new_archive",
    "parse_reference",
    "set_default_schema",
]
