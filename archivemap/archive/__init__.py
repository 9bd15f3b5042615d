"""The archive layer: archive JSON ⇄ typed, lazy sections.

Inside it, data flows one way: ``converter`` and ``references`` (values and reference strings)
→ ``base`` (a section's state and the protocols of its collaborators) → the section machinery
(``standins``, ``walk`` and the private ``_download``, ``_fetch``, ``_resolve``, ``_loading``,
``_dump``, ``_pickling``) → ``sections`` (the Section class on top; its docstring maps them) →
``schema`` (definitions → classes) → ``context`` (what one archive shares; the seams) →
``sources`` (other archives on disk) → ``load``.
"""

from archivemap.archive.context import ArchiveContext, ArchiveSource, new_archive
from archivemap.archive.load import load, set_default_schema
from archivemap.archive.references import ParsedReference, entry_id_from_mainfile, parse_reference
from archivemap.archive.schema import Schema, as_schema
from archivemap.archive.base import Fetcher, SectionContext
from archivemap.archive.sections import Section
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
