"""Where run-time section classes live, by name, so that everything a user holds pickles.

A :class:`~archivemap.archive.schema.Schema` builds the classes generated code does not provide
with ``attrs.make_class``. Each gets ``__module__ = "archivemap.archive.runtime"`` (this module)
and a ``__qualname__`` that says how to build it again::

    Calculation__3_9f1c2a0b7d6e5f41_p5s2i0
    <class>     <serial>_<schema identity[:16]>_<definition path, compact>

This module has no classes of its own: its module-level ``__getattr__`` (PEP 562) reads such
a name, finds the schema (:func:`~archivemap.archive.schema.find_schema`) and returns
``schema.class_for(definition)``. So ``pickle`` stores a class as a plain global reference, as
it does for any class, and no metaclass is needed. Generated classes keep their own importable
module paths.

The design, piece by piece (each piece sits beside what it pickles):

* **Schema** (``Schema.__reduce__``): by its source. A file pickles as its absolute path and
  sha256 (unpickling re-reads it and raises
  :class:`~archivemap.archive.schema.SchemaSourceChangedError` when the hash differs), a URL as
  the URL, a dict or bytes as the environment's compressed JSON; plus the name of its generated
  package, if any. The identity of a schema is that sha256 (of the file, the URL or the JSON).
  In the process that pickled it, unpickling gives back the very same object (the pickle
  carries a process token and the schema's serial number); elsewhere, one schema per identity
  is built and kept, so sections unpickled one by one share their schema and its classes.
* **Run-time class**: by name, as above. In the process that made it the serial number finds
  the exact schema. In another process the identity finds the schema that arrived with an
  unpickled schema or section (pickle ``(schema, cls)`` together, or any section first), or,
  failing that, the schema named by ``ARCHIVEMAP_METAINFO`` when it has that identity.
  A run-time class keeps its schema alive (``cls._m_schema``), so a class held alone still
  pickles. Classes of an archive's own definitions (custom schemas) keep plain names and do
  not pickle alone; their sections do.
* **Section** (``Section.__reduce_ex__``): a section of a loaded archive pickles as its
  archive context plus its path from the root; the context
  (``ArchiveContext.__reduce__``) pickles as the root's ``to_dict()`` (raw data with every
  assignment applied; pickled by the context itself, or as JSON text for an archive nested
  deeper than pickle can recurse), the schema, the entry and upload ids, the source and the
  fetcher. On
  the other side the archive is loaded again and the path walked, so several sections pickled
  together share one archive, and what was not read stays lazy. A section built in Python
  (no archive) pickles as its class and slots.
* **Sources**: a folder or zip source as its path and schema; a remote archive's
  ``RemoteFetcher`` as its client, entry id and the ``required`` specs downloaded so far, so
  lazy follow-ups fetch exactly what is still missing.
* **Client**: base URL and options; a new HTTP session on the other side. Credentials are
  left out unless the client was made with ``pickle_credentials=True``.

Paths of files (schemas, folders) must mean the same on both sides of the pickle.
"""

from __future__ import annotations

import os

from archivemap.archive.schema import Schema, as_schema, find_schema, parse_runtime_name
from archivemap.archive.sections import Section
from archivemap.errors import UnknownSchemaError

__all__ = ["UnknownSchemaError", "class_by_name"]


def class_by_name(qualname: str) -> type[Section]:
    """The run-time class a ``__qualname__`` of this module names (built if needed).

    Raises:
        AttributeError: ``qualname`` is not a run-time class name.
        UnknownSchemaError: no schema of its identity is known in this process.
    """
    parts = parse_runtime_name(qualname)
    if parts is None:
        raise AttributeError(f"module {__name__!r} has no attribute {qualname!r}")
    schema = find_schema(parts.serial, parts.identity_prefix) or _schema_from_environment(parts.identity_prefix)
    if schema is None:
        raise UnknownSchemaError(
            f"run-time class {qualname!r}: no schema with identity {parts.identity_prefix}… is known "
            "in this process; unpickle its schema (or a section of it) first, or set "
            "ARCHIVEMAP_METAINFO to its metainfo file"
        )
    return schema.class_for(schema.environment.section(parts.definition_path))


def _schema_from_environment(identity_prefix: str) -> Schema | None:
    source = os.environ.get("ARCHIVEMAP_METAINFO")
    if not source:
        return None
    schema = as_schema(source)
    return schema if schema.identity.startswith(identity_prefix) else None


def __getattr__(name: str) -> type[Section]:
    if name.startswith("__"):  # probes such as __path__ or __wrapped__
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return class_by_name(name)
