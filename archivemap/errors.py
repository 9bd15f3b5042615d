"""Every exception archivemap raises, in one tree.

Each error also subclasses the builtin a caller would naturally catch, so ``except KeyError``
around a lookup keeps working. Every error carries *where* it happened (archive path, entry id,
URL, definition path) when that applies, and never a token or password.

```
ArchivemapError
├── DefinitionError (ValueError)            metainfo that cannot be understood
│   ├── UnknownDefinitionError (KeyError)   a definition reference that names nothing
│   └── CyclicDefinitionError               base sections that inherit from themselves
├── CodegenError (ValueError)               definitions that cannot become safe Python
├── ArchiveDataError (ValueError)           archive JSON that cannot be read at all
├── AssignmentError (TypeError)             a value assigned to a quantity that does not fit it
├── MissingError                            the three kinds of "not there":
│   ├── NotDownloadedError (AttributeError) in the archive, but not fetched (yet)
│   ├── AbsentError (KeyError)              not set in this archive
│   │   ├── AbsentSectionError (AttributeError)  read through a sub-section that is not set
│   │   └── AbsentItemError (IndexError)         an index past the end of a list
│   └── NotInSchemaError (AttributeError)   no such property in the section definition
├── ReferenceResolutionError (LookupError)  a reference string that cannot be followed
│   ├── DanglingReferenceError (KeyError)   its target does not exist
│   ├── UnsupportedReferenceError           a form this context cannot resolve (no client)
│   └── ReferenceCycleError                 following references leads back to the start
├── ClientError                             talking to a NOMAD API
│   ├── TransportError (ConnectionError)    network failures after all retries
│   ├── DownloadLimitError                  a download larger than the caller allowed, deadline passed
│   ├── MalformedResponseError (ValueError) a 2xx answer that is not JSON or not NOMAD's shape
│   ├── ResponseTooLargeError               an answer past the client's size limit (bombs too)
│   └── HTTPStatusError                     an answer with an error status
│       ├── BadRequestError (ValueError)         400
│       ├── AuthenticationError (PermissionError) 401
│       ├── ForbiddenError (PermissionError)      403
│       │   └── MissingScopeError                 403 for a token that lacks a scope (names it)
│       ├── NotFoundError (KeyError)              404
│       ├── ValidationError (ValueError)          422
│       └── ServerError                           5xx after all retries
├── QueryError (ValueError)                 a search query that NOMAD would refuse or misread
├── PathSyntaxError (ValueError)            an archive path that is not well formed (``run[0``)
├── UnsafePathError (ValueError)            a file path that escapes its source directory
├── UnknownSchemaError (LookupError)        unpickling a run-time class whose schema is unknown
├── DatasetIntegrityError (ValueError)      data or a lockfile that is not what a lockfile pins
│   └── DatasetIncompleteError              locked entries that cannot be reproduced (keeps the rest)
├── LockfileConflictError (FileExistsError) a lockfile path that holds another dataset's lock
├── CacheDamagedError (OSError)             a disk cache file SQLite cannot read (says how to clear it)
└── SchemaSourceChangedError (UnpicklingError)  a pickled schema's file is gone or changed
```

Warnings (not errors): ``SchemaMismatchWarning`` for a value that does not fit its declared
type; the value is kept as it was. ``SourceWarning`` for a file of a folder or zip source that
was skipped (too large, not JSON, not a regular file). ``DatasetWarning`` for listed entries
that were gone when their archives were downloaded.
"""

from __future__ import annotations

import pickle
from typing import Any


class ArchivemapError(Exception):
    """Base class of every archivemap error."""


class DefinitionError(ArchivemapError, ValueError):
    """Metainfo definitions that cannot be understood.

    Attributes:
        definition_path: where in the metainfo the problem sits (for example
            ``/packages/3/section_definitions/7`` or a qualified name).
    """

    def __init__(self, message: str, definition_path: str | None = None) -> None:
        self.definition_path = definition_path
        text = f"{message} (at {definition_path})" if definition_path else message
        super().__init__(text)

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class UnknownDefinitionError(DefinitionError, KeyError):
    """A definition reference (path, qualified name or definition id) that names nothing."""


class CyclicDefinitionError(DefinitionError):
    """Section definitions whose ``base_sections`` form a cycle."""


class CodegenError(ArchivemapError, ValueError):
    """Definitions that cannot be turned into safe, importable Python code."""


class ArchiveDataError(ArchivemapError, ValueError):
    """Archive data that cannot be read at all (not JSON, not an object at the root)."""

    def __init__(self, message: str, source: str | None = None) -> None:
        self.source = source
        super().__init__(f"{message} (in {source})" if source else message)


class AssignmentError(ArchivemapError, TypeError):
    """A value assigned to a quantity does not fit its definition (unit, type or shape).

    Attributes:
        path: the archive path of the quantity.
        name: the quantity's NOMAD name.
    """

    def __init__(self, message: str, path: str | None = None, name: str | None = None) -> None:
        self.path = path
        self.name = name
        super().__init__(f"{message} (at {path})" if path else message)


class MissingError(ArchivemapError):
    """Base of the three kinds of missing data; each says where and what to do."""

    def __init__(
        self,
        message: str,
        path: str | None = None,
        entry_id: str | None = None,
    ) -> None:
        self.path = path
        self.entry_id = entry_id
        where = []
        if path is not None:
            where.append(f"at {path or '<root>'}")
        if entry_id:
            where.append(f"in entry {entry_id}")
        super().__init__(f"{message} ({', '.join(where)})" if where else message)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class NotDownloadedError(MissingError, AttributeError):
    """The data exists on the server but was not part of what was downloaded.

    Archives from a client fetch such data on access; this is raised where that is not
    possible (no client, or lazy fetching was turned off). Fetch it with ``archive.prefetch``
    or request it in ``required``.
    """


class AbsentError(MissingError, KeyError):
    """The property is defined, but not set in this archive (or the index is out of range)."""


class AbsentSectionError(AbsentError, AttributeError):
    """Reading through a single sub-section that the archive does not have.

    ``calc.energy`` of a calculation without energy is :class:`~archivemap.Absent` (falsy,
    equal to ``None``); reading ``calc.energy.total`` raises this error, which names the
    absent path, the entry and what *is* set next to it. It is an ``AttributeError`` too, so
    ``getattr(calc.energy, "total", None)`` and ``hasattr`` keep working.
    """


class AbsentItemError(AbsentError, IndexError):
    """An index past the end of a repeating sub-section (``calculation[7]`` of six).

    An ``IndexError`` too, as a list's index error is, whether the list was downloaded or
    is still only planned in a partial archive.
    """


class NotInSchemaError(MissingError, AttributeError):
    """The section's definition has no property of that name."""


class ReferenceResolutionError(ArchivemapError, LookupError):
    """A reference string that cannot be followed.

    Attributes:
        reference: the raw reference string.
        source_path: the archive path of the quantity holding the reference.
        segment: the path segment at which resolution failed, when known.
        entry_id: the entry the reference was resolved in, when known.
    """

    def __init__(
        self,
        message: str,
        reference: str | None = None,
        source_path: str | None = None,
        segment: str | None = None,
        entry_id: str | None = None,
    ) -> None:
        self.reference = reference
        self.source_path = source_path
        self.segment = segment
        self.entry_id = entry_id
        parts = [message]
        if reference is not None:
            parts.append(f"reference {reference!r}")
        if source_path is not None:
            parts.append(f"from {source_path or '<root>'}")
        if segment is not None:
            parts.append(f"failed at segment {segment!r}")
        if entry_id:
            parts.append(f"in entry {entry_id}")
        super().__init__("; ".join(parts))

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DanglingReferenceError(ReferenceResolutionError, KeyError):
    """The reference's target does not exist."""


class UnsupportedReferenceError(ReferenceResolutionError):
    """A reference form that cannot be resolved here, e.g. another entry without a client."""


class ReferenceCycleError(ReferenceResolutionError):
    """Following references leads back to where it started."""


class ClientError(ArchivemapError):
    """Base of errors while talking to a NOMAD API."""

    def __init__(self, message: str, url: str | None = None) -> None:
        self.url = url
        super().__init__(f"{message} ({url})" if url else message)


class TransportError(ClientError, ConnectionError):
    """The request did not get an answer (connection refused, reset, timeout) after retries."""


class MalformedResponseError(ClientError, ValueError):
    """A 2xx answer the client cannot use: not JSON, or not the shape NOMAD answers with.

    Raised instead of letting a ``KeyError``/``AttributeError`` escape or yielding values of
    the wrong type; a paging cursor that comes back again (a cycle) is one too, because
    following it would never end.
    """


class ResponseTooLargeError(ClientError):
    """An answer whose body exceeds the client's size limit, on the wire or once decompressed.

    The body is read as a stream and abandoned at the limit, so a hostile or broken server
    (a gzip bomb: a few MiB that inflate to GiB) cannot exhaust memory. Raise the limit with
    ``Client(max_response_bytes=...)`` if a real answer is this large.

    Attributes:
        limit: the limit in bytes that was exceeded.
    """

    def __init__(self, message: str, url: str | None = None, limit: int = 0) -> None:
        self.limit = limit
        super().__init__(message, url)


class HTTPStatusError(ClientError):
    """The server answered with an error status.

    Attributes:
        status_code: the HTTP status.
        detail: the server's ``detail`` (a string, a list of validation errors or a dict).
    """

    def __init__(
        self, message: str, url: str | None = None, status_code: int = 0, detail: Any = None
    ) -> None:
        self.status_code = status_code
        self.detail = detail
        super().__init__(message, url)


class BadRequestError(HTTPStatusError, ValueError):
    """400: the server refused the request (bad query, bad ``required``)."""


class AuthenticationError(HTTPStatusError, PermissionError):
    """401: missing, wrong or expired credentials."""


class ForbiddenError(HTTPStatusError, PermissionError):
    """403: authenticated, but not allowed (scopes, owner ``all``)."""


class NotFoundError(HTTPStatusError, KeyError):
    """404: unknown or invisible entry, upload or path."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ValidationError(HTTPStatusError, ValueError):
    """422: the request did not validate (page size, ``required`` key syntax...)."""


class ServerError(HTTPStatusError):
    """5xx that persisted through every retry."""


class QueryError(ArchivemapError, ValueError):
    """A search query that does not fit the deployment's search quantities.

    Raised before any request: a misspelt key would otherwise cost a round trip (422) or,
    on servers that ignore unknown keys, silently match every entry.

    Attributes:
        key: the search key (with any ``:op`` suffix) the problem is about, if one.
        location: where in the query, as keys and list indices from its root
            (``("and", 1, "results.material.elements")``).
        suggestions: the nearest valid keys (or values), best first.
    """

    def __init__(
        self,
        message: str,
        key: str | None = None,
        location: tuple[str | int, ...] = (),
        suggestions: tuple[str, ...] = (),
    ) -> None:
        self.key = key
        self.location = tuple(location)
        self.suggestions = tuple(suggestions)
        where = " → ".join(str(part) for part in self.location)
        super().__init__(f"{message} (at {where})" if where else message)


class PathSyntaxError(ArchivemapError, ValueError):
    """An archive path (``run[0].calculation[-1]`` or ``/run/0``) that is not well formed.

    Raised before anything is read, so a typo in a path is told apart from a path that is
    well formed but names nothing (a :class:`MissingError`).

    Attributes:
        path: the path as given.
        position: where in it reading stopped, when that is known.
    """

    def __init__(self, message: str, path: str, position: int | None = None) -> None:
        self.path = path
        self.position = position
        super().__init__(message)


class UnsafePathError(ArchivemapError, ValueError):
    """A path that would escape its source directory or archive."""


class SchemaMismatchWarning(UserWarning):
    """A value that does not fit its declared type; it is kept as it was."""


class UnknownSchemaError(ArchivemapError, LookupError):
    """A run-time class name whose schema is not known in this process.

    Not an ``AttributeError`` on purpose: ``pickle`` would replace its message by
    "Can't get attribute", and the message says what to do.
    """


class SchemaSourceChangedError(ArchivemapError, pickle.UnpicklingError):
    """A pickled schema's metainfo file is gone or no longer has the sha256 it was pickled with."""


class SourceWarning(UserWarning):
    """A file of a folder or zip of archives was skipped; the message says which and why."""


class DatasetWarning(UserWarning):
    """Entries a query listed had no archive when downloaded (deleted or hidden meanwhile):
    the dataset was made without them; the message names them."""


class MissingScopeError(ForbiddenError):
    """403 because the token (a personal access token) lacks a scope the endpoint needs.

    Attributes:
        scopes: the scopes NOMAD named (``["uploads:read"]``).
    """

    def __init__(self, message: str, url: str | None, status_code: int, detail: Any, scopes: list[str]) -> None:
        self.scopes = scopes
        super().__init__(message, url, status_code, detail)


class DownloadLimitError(ClientError):
    """A download larger than the ``max_bytes`` the caller allowed (nothing complete is kept)."""


class DatasetIntegrityError(ArchivemapError, ValueError):
    """Data or a lockfile that is not what a dataset lockfile pins.

    A payload whose sha256 differs from its locked ``payload_hash`` (in the cache or on the
    server), or a lockfile whose ``required`` no longer has its ``required_hash`` (edited by
    hand). Either way the data cannot be vouched for, so it is an error, not a skip.
    """


class DatasetIncompleteError(DatasetIntegrityError):
    """Locked entries that cannot be reproduced (not in the cache offline, gone on the server).

    A lockfile promises exactly its dataset or a reason why not; returning fewer entries
    silently would break that promise, so this is raised unless the caller accepts a partial
    dataset (``open_dataset(..., partial=True)``). Nothing is lost: the entries that could be
    reproduced travel with the error.

    Attributes:
        dataset: the partial :class:`~archivemap.remote.dataset.Dataset` (its ``archives``
            hold what was reproduced, its ``unavailable`` the rest with reasons).
        unavailable: ``entry_id -> why`` for each entry that could not be reproduced.
    """

    def __init__(self, message: str, dataset: Any = None, unavailable: dict[str, str] | None = None) -> None:
        self.dataset = dataset
        self.unavailable = dict(unavailable or {})
        super().__init__(message)


class LockfileConflictError(ArchivemapError, FileExistsError):
    """A lockfile path that already holds the lock of another dataset.

    Writing there would overwrite the record of another query, ``required`` or deployment,
    which is the one thing a lockfile exists to keep. The same dataset resumes or replays.

    Attributes:
        path: the lockfile.
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)

    def __str__(self) -> str:  # OSError would otherwise format its own (errno, strerror)
        return str(self.args[0]) if self.args else ""


class CacheDamagedError(ArchivemapError, OSError):
    """The disk cache's database file cannot be read by SQLite (damaged, or not a database).

    Raised instead of ``sqlite3.DatabaseError`` so that the message names the file and how to
    start again (``archivemap cache clear`` or ``ArchiveCache(folder).clear()`` remove it).

    Attributes:
        path: the database file.
    """

    def __init__(self, message: str, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)

    def __str__(self) -> str:  # OSError would otherwise format its own (errno, strerror)
        return str(self.args[0]) if self.args else ""
