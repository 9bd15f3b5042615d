"""A disk cache of downloaded archive data, shared by processes, keyed by processing state.

Why: without it every run downloads everything again, and a cluster of workers downloads the
same entries as often as it has workers. One row per ``(deployment, entry_id)`` holds the
partial archive fetched so far, the ``required`` spec that covers it (the union of every spec
that filled it, :func:`~archivemap.remote.required.merge_required`) and the entry's
*processing state*: NOMAD's ``metadata.last_processing_time`` (``complete_time`` when an
entry has no ``last_processing_time``). An entry reprocessed on the server gets a new state,
so its stale row is never answered from; a wider ``required`` fetches only what the row lacks
(:func:`required_difference`) and grafts it in (:func:`~archivemap.remote.required.graft`).

Storage is stdlib ``sqlite3`` in WAL mode, not ``diskcache``: WAL gives several readers and
one writer across processes (Dask workers on one machine share it), and the cache needs its
own columns (state, covering spec, size, last access) and a transactional
read-graft-write, which a key-value store would have to emulate; so no new dependency.
Payloads are JSON (archivemap._json: exact integers of any size) + zlib. The cache is bounded (``size_limit`` bytes of payload): the
least recently used rows are evicted after a write.

The cache is opt-in (``Client(cache=True)`` or a folder): a default-on cache would silently
answer from data a user did not know was kept, fill disks of users who never asked for it,
and change request counts that existing code and tests rely on. ``cache=True`` uses
:func:`default_cache_dir` (``$ARCHIVEMAP_CACHE_DIR``, else the platform's user cache folder).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import platformdirs

from archivemap._json import dump_json, merge_partial, parse_json
from archivemap._warnings import warn_at_caller
from archivemap.errors import ArchiveDataError, CacheDamagedError, DatasetWarning, NotDownloadedError
from archivemap.remote.required import Required, graft, merge_required, parse_required_key, placed_targets
from archivemap.remote.stream import ArchiveStream

__all__ = [
    "STATE_FIELDS",
    "ArchiveCache",
    "as_cache",
    "cached_answer",
    "fill",
    "CachedArchive",
    "EntryState",
    "cached_archives",
    "canonical_json",
    "default_cache_dir",
    "list_entries",
    "FAILED_BY_SERVER",
    "GONE",
    "locked_hash",
    "lost_entries_text",
    "payload_hash",
    "project",
    "required_difference",
]

#: the environment variable naming the cache folder (overrides the platform's cache folder)
CACHE_DIR_ENV = "ARCHIVEMAP_CACHE_DIR"
#: 2 GiB of compressed payload by default
DEFAULT_SIZE_LIMIT = 2 * 1024**3
#: the entry metadata a listing asks for: what the cache key and a lockfile need
STATE_FIELDS = ("entry_id", "upload_id", "last_processing_time", "complete_time", "license")


def default_cache_dir() -> Path:
    """``$ARCHIVEMAP_CACHE_DIR``, else ``<user cache dir>/archivemap/archives``."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env)
    return Path(platformdirs.user_cache_dir("archivemap")) / "archives"


def canonical_json(value: Any) -> bytes:
    """Key-sorted compact JSON: the same data always gives the same bytes (and hash)."""
    return dump_json(value, sort_keys=True)


def payload_hash(value: Any) -> str:
    """``sha256:`` of the canonical JSON of ``value``."""
    return "sha256:" + hashlib.sha256(canonical_json(value)).hexdigest()


@dataclass(frozen=True)
class EntryState:
    """What a listing says about one entry: enough to key the cache and write a lockfile.

    Attributes:
        entry_id: the entry.
        upload_id: its upload (relative references resolve against it).
        processing_time: ``last_processing_time`` (else ``complete_time``, else ``""``).
        license: the entry's licence, when the server gives one.
    """

    entry_id: str
    upload_id: str | None
    processing_time: str
    license: str | None = None

    @classmethod
    def from_metadata(cls, item: Mapping[str, Any]) -> EntryState:
        """Read one ``entries/query`` item."""
        state = item.get("last_processing_time") or item.get("complete_time") or ""
        upload = item.get("upload_id")
        licence = item.get("license")
        return cls(
            str(item["entry_id"]),
            None if upload is None else str(upload),
            str(state),
            None if licence is None else str(licence),
        )


@dataclass(frozen=True)
class CachedArchive:
    """One cache row: the partial archive, the spec covering it and the state it belongs to."""

    state: str
    upload_id: str | None
    required: Required
    archive: dict[str, Any]


def required_difference(new: Required, old: Required) -> Required | None:
    """The part of ``new`` that ``old`` does not already download, or None when covered.

    Conservative by design: where the two cannot be compared key by key (directives other
    than ``"*"``, different index selections), the whole sub-spec of ``new`` is returned,
    so the answer never fetches *less* than needed, only sometimes a little more.
    """
    if new == old or old == "*" and not isinstance(new, str):
        return None
    if old == "*" and new == "*":
        return None
    if isinstance(new, dict) and isinstance(old, dict):
        if any(not isinstance(key, str) or key.startswith("resolve") for key in (*new, *old)):
            return new if new != old else None
        out: dict[str, Any] = {}
        for key, sub in new.items():
            if key not in old:
                out[key] = sub
                continue
            rest = required_difference(sub, old[key])
            if rest is not None:
                out[key] = rest
        return out or None
    return new


def locked_hash(archive: Mapping[str, Any], required: Required) -> str:
    """The payload hash a lockfile records for an entry's archive downloaded with ``required``.

    Over exactly what the spec names, however the data arrived: fresh from the server, or
    from a cache row that other specs widened. So a lock verifies the same either way. Three
    things that differ with the way are left out:

    - the targets of references (whether a server places them depends on the server and on
      the rest of the spec);
    - the other items of a list the spec selects by index (``run[0]``: a row filled by
      ``"*"`` holds them all);
    - how a followed reference is spelled (NOMAD answers ``/run/0/calculation/0`` for the
      ``#/run/0/calculation/0`` it stores).
    """
    return payload_hash(_named(archive, required))


def _named(data: Mapping[str, Any], required: Required) -> Any:
    """What :func:`locked_hash` hashes: the spec's names, selections applied, references
    spelled as paths; a directive's value whole."""
    if not isinstance(required, dict) or "*" in required or any(
        not isinstance(key, str) or key.startswith("resolve") for key in required
    ):
        return dict(data)
    out: dict[str, Any] = {}
    for key, sub in required.items():
        name, selection = parse_required_key(key)
        value = data.get(name)
        if value is None:
            continue
        if selection is not None and isinstance(value, list):
            picked = [selection] if isinstance(selection, int) else range(len(value))[selection]
            out[key] = {
                str(i): _named_value(value[i], sub) for i in picked if 0 <= i < len(value) and value[i] is not None
            }
        else:
            out[name] = _named_value(value, sub)
    if "m_def" in data and out:
        out["m_def"] = data["m_def"]
    if "m_ref_archives" in data:
        out["m_ref_archives"] = data["m_ref_archives"]
    return out


def _named_value(value: Any, sub: Required) -> Any:
    if not isinstance(sub, dict):  # a directive: the value as it is
        return value
    if isinstance(value, str):  # a reference the spec follows
        return value[1:] if value.startswith("#/") else value
    if isinstance(value, dict):
        return _named(value, sub)
    if isinstance(value, list):
        return [_named_value(item, sub) for item in value]
    return value


def project(archive: Mapping[str, Any], required: Required) -> dict[str, Any]:
    """The part of a (wider) cached archive that ``required`` selects.

    Why: a cache row grows with every ``required`` that filled it, but a run must see the data
    it asked for whatever else the cache happens to hold. Plain property names are followed; a
    key with an index selection, a wildcard or a directive keeps its whole value; the
    ``m_def`` of a selected section and ``m_ref_archives`` are kept as they are. The targets of
    references the spec follows are kept where the server places them (at their own paths,
    ``workflow2.results.calculation_result_ref`` → ``run[0].calculation[5]``), projected by the
    spec below the reference, with the targets they lead on to: that is what the spec asked
    for, and reading it must not cost a request. (Whether a row holds a target can depend on
    other specs; the lock's hash, :func:`locked_hash`, leaves targets out for that reason.)
    """
    out = _project_names(archive, required)
    if not isinstance(required, dict) or not out:
        return out
    for target, sub, value in placed_targets(archive, required):
        _place(out, archive, target, _project_names(value, sub) if isinstance(value, dict) else value)
    return out


def _place(out: dict[str, Any], archive: Mapping[str, Any], target: tuple[str | int, ...], leaf: Any) -> None:
    """Put ``leaf`` at ``target`` inside ``out``, making the path as the archive has it (lists
    padded with ``None``, "not loaded"; new sections with their ``m_def``). Linear in the
    path: a list is padded once, not rebuilt per target (20,000 references in 0.01 s, not 8 s).
    Containers ``out`` shares with the archive are copied before they change."""
    node: Any = out
    source: Any = archive
    for depth, segment in enumerate(target):
        if isinstance(segment, int) != isinstance(node, list) or (isinstance(segment, int) and segment < 0):
            return  # the archive's shape and the path disagree: nothing to place
        if isinstance(node, list) and isinstance(segment, int) and len(node) <= segment:
            node.extend([None] * (segment + 1 - len(node)))
        source_child = _child(source, segment)
        current: Any = _child(node, segment)
        if depth == len(target) - 1:
            if current is None or current is source_child:
                node[segment] = leaf
            elif isinstance(current, dict) and isinstance(leaf, dict):
                node[segment] = merge_partial(dict(current), leaf)
            return
        if current is None:
            current = [] if isinstance(source_child, list) else {}
            if isinstance(source_child, dict) and "m_def" in source_child:
                current["m_def"] = source_child["m_def"]
            node[segment] = current
        elif current is source_child:  # the archive's own container: copied, not changed
            current = list(current) if isinstance(current, list) else dict(current)
            node[segment] = current
        if not isinstance(current, (dict, list)):
            return
        node, source = current, source_child


def _child(container: Any, segment: str | int) -> Any:
    if isinstance(segment, int):
        return container[segment] if isinstance(container, list) and segment < len(container) else None
    return container.get(segment) if isinstance(container, dict) else None


def _project_names(archive: Mapping[str, Any], required: Required) -> dict[str, Any]:
    """:func:`project` along the names of the spec only (recursive, no references)."""
    if not isinstance(required, dict):
        return dict(archive)
    if "*" in required or any(not isinstance(key, str) or key.startswith("resolve") for key in required):
        return dict(archive)
    out: dict[str, Any] = {}
    for key, sub in required.items():
        name = key.split("[", 1)[0]
        if name not in archive:
            continue
        value = archive[name]
        if "[" in key or not isinstance(sub, dict):
            out[name] = value
        elif isinstance(value, dict):
            out[name] = _project_names(value, sub)
        elif isinstance(value, list):
            out[name] = [_project_names(item, sub) if isinstance(item, dict) else item for item in value]
        else:
            out[name] = value
    if "m_def" in archive and out:
        # NOMAD answers every section it returns with its m_def where that differs from the
        # declared class (a workflow2 is a SinglePoint): without it the class would be wrong
        out["m_def"] = archive["m_def"]
    if "m_ref_archives" in archive:
        out["m_ref_archives"] = archive["m_ref_archives"]
    return out


class ArchiveCache:
    """The disk cache: one SQLite file in ``directory``, safe across threads and processes.

    Args:
        directory: the folder (created); default :func:`default_cache_dir`.
        size_limit: the most payload bytes kept; least recently used rows go first.

    Pickles as its folder and limit, so a Dask worker opens the same cache.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None, *, size_limit: int = DEFAULT_SIZE_LIMIT) -> None:
        if size_limit < 1:
            raise ValueError(f"size_limit must be positive, not {size_limit}")
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.size_limit = int(size_limit)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "archives.sqlite3"
        self._lock = threading.RLock()
        self._connection: sqlite3.Connection | None = None
        self._pid = -1
        try:
            self._create()
        except CacheDamagedError:
            # not raised here: clear() must be able to remove the file; every read or write
            # raises the same error, naming the file and how to clear it
            self.close()

    def _create(self) -> None:
        with self._transaction() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS archives (deployment TEXT NOT NULL, entry_id TEXT NOT NULL, "
                "state TEXT NOT NULL, upload_id TEXT, required TEXT NOT NULL, payload BLOB NOT NULL, "
                "size INTEGER NOT NULL, accessed REAL NOT NULL, PRIMARY KEY (deployment, entry_id))"
            )
            db.execute("CREATE INDEX IF NOT EXISTS archives_accessed ON archives (accessed)")

    def __repr__(self) -> str:
        return f"ArchiveCache({str(self.directory)!r}, size_limit={self.size_limit})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_cache, (str(self.directory), self.size_limit))

    def _db(self) -> sqlite3.Connection:
        # One connection per process: a forked child must not share its parent's.
        if self._connection is None or self._pid != os.getpid():
            connection = sqlite3.connect(self.path, timeout=_BUSY_SECONDS, isolation_level=None, check_same_thread=False)
            try:
                _use_wal(connection)
                connection.execute("PRAGMA synchronous=NORMAL")
            except BaseException:
                connection.close()
                raise
            self._connection, self._pid = connection, os.getpid()
        return self._connection

    def damaged(self, error: BaseException) -> CacheDamagedError:
        """The error that names this cache's damaged file and how to remove it."""
        return CacheDamagedError(
            f"the archive cache {self.path} is damaged ({error}); remove it with "
            f"'archivemap cache clear --cache-dir {self.directory}' or ArchiveCache({str(self.directory)!r}).clear()",
            str(self.path),
        )

    def _transaction(self, *, outside: bool = False) -> _Transaction:
        return _Transaction(self, outside=outside)

    def close(self) -> None:
        """Close this process's connection (reopened on next use)."""
        with self._lock:
            if self._connection is not None and self._pid == os.getpid():
                self._connection.close()
            self._connection = None

    def get(self, deployment: str, entry_id: str) -> CachedArchive | None:
        """The row of one entry, or None (also for a row that cannot be read, which is dropped).

        A damaged row is a cache miss, not an error: the cache only ever holds copies, and
        one bad blob (a disk error, a killed writer on a filesystem without fsync) must not
        stop a run that can download the entry again.
        """
        with self._transaction() as db:
            row = db.execute(
                "SELECT state, upload_id, required, payload FROM archives WHERE deployment=? AND entry_id=?",
                (deployment, entry_id),
            ).fetchone()
            if row is None:
                return None
            state, upload_id, required, payload = row
            try:
                archive = parse_json(zlib.decompress(payload))
                covering = parse_json(required)
            except (zlib.error, TypeError, ArchiveDataError):
                archive = None
            if not isinstance(archive, dict) or not isinstance(state, str):
                db.execute("DELETE FROM archives WHERE deployment=? AND entry_id=?", (deployment, entry_id))
                return None
            db.execute(
                "UPDATE archives SET accessed=? WHERE deployment=? AND entry_id=?", (time.time(), deployment, entry_id)
            )
        return CachedArchive(state, upload_id, covering, archive)

    def delete(self, deployment: str, entry_id: str) -> bool:
        """Drop the row of one entry (a copy that failed verification); whether there was one."""
        with self._transaction() as db:
            cursor = db.execute("DELETE FROM archives WHERE deployment=? AND entry_id=?", (deployment, entry_id))
            return cursor.rowcount > 0

    def put(
        self,
        deployment: str,
        entry_id: str,
        state: str,
        upload_id: str | None,
        required: Required,
        archive: Mapping[str, Any],
    ) -> None:
        """Store (replace) the row of one entry, then evict down to ``size_limit``."""
        payload = zlib.compress(dump_json(archive), 3)
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO archives VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (deployment, entry_id, state, upload_id, dump_json(required).decode(), payload, len(payload), time.time()),
            )
            self._evict(db)

    def add(
        self,
        deployment: str,
        entry_id: str,
        state: str,
        upload_id: str | None,
        required: Required,
        answer: dict[str, Any],
    ) -> dict[str, Any]:
        """Graft a fetched ``answer`` (for ``required``) into the row and return the whole archive.

        A row of another state is replaced, not grafted into: its data belongs to an older
        processing of the entry.
        """
        with self._transaction():
            cached = self.get(deployment, entry_id)
            if cached is None or cached.state != state:
                archive = graft({}, answer, required)
                covering = required
            else:
                archive = graft(cached.archive, answer, required)
                covering = merge_required([cached.required, required])
            self.put(deployment, entry_id, state, upload_id, covering, archive)
        return archive

    def _evict(self, db: sqlite3.Connection) -> None:
        total = db.execute("SELECT COALESCE(SUM(size), 0) FROM archives").fetchone()[0]
        if total <= self.size_limit:
            return
        freed = 0
        doomed: list[tuple[str, str]] = []
        for deployment, entry_id, size in db.execute("SELECT deployment, entry_id, size FROM archives ORDER BY accessed"):
            if total - freed <= self.size_limit:
                break
            doomed.append((deployment, entry_id))
            freed += size
        db.executemany("DELETE FROM archives WHERE deployment=? AND entry_id=?", doomed)

    def info(self) -> dict[str, Any]:
        """Folder, row count, payload bytes, the limit and rows per deployment."""
        with self._transaction() as db:
            count, size = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM archives").fetchone()
            per = dict(db.execute("SELECT deployment, COUNT(*) FROM archives GROUP BY deployment").fetchall())
        return {
            "directory": str(self.directory),
            "entries": count,
            "bytes": size,
            "size_limit": self.size_limit,
            "deployments": per,
        }

    def clear(self, deployment: str | None = None) -> int:
        """Delete every row (of one deployment); returns how many.

        A damaged database file (one SQLite cannot read) is removed with its journal files
        and made anew; its rows cannot be counted, so 0 is returned.

        Raises:
            CacheDamagedError: the file is damaged and only one ``deployment`` was to be
                cleared (the rows of the others cannot be told apart in it).
        """
        try:
            with self._transaction() as db:
                if deployment is None:
                    cursor = db.execute("DELETE FROM archives")
                else:
                    cursor = db.execute("DELETE FROM archives WHERE deployment=?", (deployment,))
                count = cursor.rowcount
            with self._transaction(outside=True) as db:
                db.execute("VACUUM")
        except CacheDamagedError:
            if deployment is not None:
                raise
            self.remove_files()
            return 0
        return count

    def remove_files(self) -> None:
        """Delete the database file and its journals, then make an empty one."""
        with self._lock:
            self.close()
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            self._create()


#: how long a connection waits for another process's lock before giving up
_BUSY_SECONDS = 60.0


def _use_wal(connection: sqlite3.Connection) -> None:
    """Switch the database to write-ahead logging, waiting for other processes that hold it.

    The switch needs the database alone, and SQLite answers "database is locked" at once,
    without its busy handler, while another connection is creating or switching the same
    file: several Dask workers opening a new cache together did (3 rounds in 10 of 8
    processes here). A file already in WAL mode (the mode persists) needs no switch.
    """
    deadline = time.monotonic() + _BUSY_SECONDS
    delay = 0.005
    while True:
        try:
            mode = connection.execute("PRAGMA journal_mode").fetchone()
            if not mode or str(mode[0]).lower() != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` under the cache's thread lock; re-entrant.

    ``outside``: the lock and the damage check only, no transaction (``VACUUM`` refuses to
    run inside one). SQLite's "not a database" and "malformed" errors become
    :class:`~archivemap.errors.CacheDamagedError` here, the one place every statement passes.
    """

    def __init__(self, cache: ArchiveCache, *, outside: bool = False) -> None:
        self.cache = cache
        self.outside = outside
        self.outer = False

    def __enter__(self) -> sqlite3.Connection:
        self.cache._lock.acquire()  # noqa: SLF001 (the cache's own helper)
        try:
            db = self.cache._db()  # noqa: SLF001
            self.outer = not self.outside and not db.in_transaction
            if self.outer:
                db.execute("BEGIN IMMEDIATE")
        except BaseException as exc:
            self.cache._lock.release()  # noqa: SLF001
            if _is_damage(exc):
                self.cache.close()
                raise self.cache.damaged(exc) from exc
            raise
        return db

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        cache = self.cache
        try:
            connection = cache._connection  # noqa: SLF001
            if self.outer and connection is not None:
                try:
                    connection.execute("COMMIT" if kind is None else "ROLLBACK")
                except sqlite3.DatabaseError as exc:
                    if kind is not None:
                        pass  # a failed ROLLBACK after an error: the first error is the one to tell
                    elif _is_damage(exc):
                        value = exc
                    else:
                        raise
            if isinstance(value, BaseException) and _is_damage(value):
                cache.close()
                raise cache.damaged(value) from value
        finally:
            cache._lock.release()  # noqa: SLF001


def _is_damage(error: object) -> bool:
    """SQLite's verdict on a file it cannot read (not a busy or locked database, not I/O)."""
    return isinstance(error, sqlite3.DatabaseError) and not isinstance(error, sqlite3.OperationalError)


def as_cache(value: ArchiveCache | str | os.PathLike[str] | bool | None) -> ArchiveCache | None:
    """What ``Client(cache=...)`` accepts: None/False (no cache), True (the default folder),
    a folder, or an :class:`ArchiveCache`."""
    if value is None or value is False:
        return None
    if value is True:
        return ArchiveCache()
    if isinstance(value, ArchiveCache):
        return value
    return ArchiveCache(value)


def _has_selection(spec: Any) -> bool:
    if isinstance(spec, dict):
        return any("[" in str(key) or _has_selection(sub) for key, sub in spec.items())
    return False


def cached_answer(cache: ArchiveCache, deployment: str, entry_id: str, required: Required) -> dict[str, Any] | None:
    """An ``archive/query``-shaped answer from the cache when its row covers ``required``.

    For offline clients only: a single-entry read cannot tell whether the entry was
    reprocessed since (that takes a listing), so an online client never answers from here.
    Specs with index selections are not answered (the server compacts those; the cache
    holds them anchored).
    """
    if _has_selection(required):
        return None
    row = cache.get(deployment, entry_id)
    if row is None or required_difference(required, row.required) is not None:
        return None
    return {"entry_id": entry_id, "upload_id": row.upload_id, "archive": project(row.archive, required)}


def fill(cache: ArchiveCache, deployment: str, entry_id: str, required: Required, answer: dict[str, Any]) -> None:
    """Graft a lazy follow-up's answer into an entry's existing row (at the row's state).

    Only rows that exist are grown: a follow-up knows no processing state of its own, and
    the row's state was checked by the listing that created it.
    """
    row = cache.get(deployment, entry_id)
    if row is not None:
        cache.add(deployment, entry_id, row.state, row.upload_id, required, answer)


def _rebuild_cache(directory: str, size_limit: int) -> ArchiveCache:
    return ArchiveCache(directory, size_limit=size_limit)


class ArchiveClient(Protocol):
    """What the cached download needs of a client (:class:`~archivemap.remote.client.Client`)."""

    @property
    def base_url(self) -> str: ...

    def entries(self, *args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]: ...

    def archives_raw(self, *args: Any, **kwargs: Any) -> ArchiveStream: ...


def list_entries(client: ArchiveClient, query: Any, *, page_size: int = 1000, owner: str = "visible") -> list[EntryState]:
    """The entries a query matches, ordered by entry id, with their processing state.

    A metadata listing, not an archive download: this is what lets a warm run check every
    cached row against the server and then download nothing.
    """
    items = client.entries(query, {"include": list(STATE_FIELDS)}, page_size=page_size, owner=owner, order_by="entry_id")
    seen: set[str] = set()
    states: list[EntryState] = []
    for item in items:
        state = EntryState.from_metadata(item)
        if state.entry_id not in seen:
            seen.add(state.entry_id)
            states.append(state)
    return states


def cached_archives(
    client: ArchiveClient,
    cache: ArchiveCache | None,
    entries: Sequence[EntryState],
    required: Required,
    *,
    offline: bool = False,
    chunk: int = 200,
    missing: dict[str, str] | None = None,
    **options: Any,
) -> Iterator[tuple[EntryState, dict[str, Any]]]:
    """``(state, archive)`` for each of ``entries``, in order: from the cache where it covers
    ``required`` at the entry's state, else by downloading only the difference.

    Each entry is yielded as soon as it and every entry before it are there: a cached entry
    at once, a downloaded one as its batch arrives (``archives_raw`` answers in listing
    order), so a caller sees results, and a lock writer records them, while a chunk is still
    downloading. The requests are the same as for whole chunks: ids still go ``chunk`` at a
    time into one ``archives_raw`` call per missing ``required``.

    Args:
        client: downloads with :meth:`~archivemap.remote.client.Client.archives_raw`.
        cache: the cache (None: download everything, fill nothing).
        entries: from :func:`list_entries` (or a lockfile).
        required: what each archive must hold.
        offline: never download; an entry the cache cannot answer raises
            :class:`~archivemap.errors.NotDownloadedError`.
        chunk: entries downloaded per ``archives_raw`` call (ids go in the query).
        missing: filled with ``entry_id -> reason`` for entries without archive; without it,
            a :class:`~archivemap.errors.DatasetWarning` names them.
        options: passed to ``archives_raw`` (``batch_size`` ...).
    """
    deployment = client.base_url
    for start in range(0, len(entries), chunk):
        part = entries[start : start + chunk]
        # entry_id -> its archive, or None when the server gave none; emptied in order
        ready: dict[str, dict[str, Any] | None] = {}
        wanted: dict[str, tuple[Required, list[EntryState]]] = {}
        for state in part:
            cached = None if cache is None else cache.get(deployment, state.entry_id)
            rest: Required = required
            if cached is not None and cached.state == state.processing_time:
                difference = required_difference(required, cached.required)
                if difference is None:
                    ready[state.entry_id] = project(cached.archive, required)
                    continue
                rest = difference
            if offline:
                raise NotDownloadedError("not in the cache (offline)", entry_id=state.entry_id)
            key = canonical_json(rest).decode()
            wanted.setdefault(key, (rest, []))[1].append(state)
        order = _InOrder(part, ready)
        yield from order.due()
        for spec, states in wanted.values():
            by_id = {state.entry_id: state for state in states}
            stream = client.archives_raw({"entry_id:any": list(by_id)}, spec, **options)
            answered: set[str] = set()
            for entry_id, answer in stream:
                owner = by_id.get(entry_id)
                if owner is None or entry_id in answered:
                    continue
                answered.add(entry_id)
                if cache is None:
                    ready[entry_id] = graft({}, answer, spec)
                else:
                    whole = cache.add(deployment, entry_id, owner.processing_time, owner.upload_id, spec, answer)
                    ready[entry_id] = project(whole, required)
                yield from order.due()
            lost = {entry_id: GONE for entry_id in by_id.keys() - answered}
            lost.update(stream.missing)
            for failure in stream.failed.values():  # not gone: the server could not produce it (a 500)
                lost[failure.entry_id] = f"{FAILED_BY_SERVER} ({failure.status}: {failure.detail})"
            for entry_id in lost:
                ready[entry_id] = None
            if missing is not None:
                missing.update(lost)
            elif lost:  # said, not hidden
                warn_at_caller(lost_entries_text(lost, len(entries)), DatasetWarning)
            yield from order.due()


#: Why an entry of a listing came without archive (``missing`` of :func:`cached_archives`):
#: gone from the server since it was listed (deleted or hidden), or failed by it.
GONE: Final = "the server gave no archive for it (deleted or hidden since it was listed?)"
FAILED_BY_SERVER: Final = "the server could not produce its archive"


def lost_entries_text(lost: Mapping[str, str], listed: int) -> str:
    """What a warning or an error says of the listed entries that came without archive."""
    named = "; ".join(f"{entry_id}: {why}" for entry_id, why in sorted(lost.items())[:10])
    more = f"; … {len(lost) - 10} more" if len(lost) > 10 else ""
    return f"{len(lost)} of {listed} listed entries came without archive and are left out: {named}{more}"


class _InOrder:
    """Yields a chunk's entries in their order as soon as each and all before it are ready."""

    def __init__(self, part: Sequence[EntryState], ready: dict[str, dict[str, Any] | None]) -> None:
        self.part = part
        self.ready = ready
        self.position = 0
        # how often each id is still to come: an archive is let go after its last place (an id
        # listed twice is given twice, as the listing asked)
        self.left = Counter(state.entry_id for state in part)

    def due(self) -> Iterator[tuple[EntryState, dict[str, Any]]]:
        while self.position < len(self.part) and self.part[self.position].entry_id in self.ready:
            state = self.part[self.position]
            self.position += 1
            self.left[state.entry_id] -= 1
            archive = self.ready[state.entry_id] if self.left[state.entry_id] else self.ready.pop(state.entry_id)
            if archive is not None:
                yield state, archive
