"""Per-archive context shared by all sections of one loaded archive, and its seams.

An :class:`ArchiveContext` knows the schema, the entry's identity, where other archives come
from (an :class:`ArchiveSource`), and, for archives from a client, how to fetch the rest (a
:class:`~archivemap.archive.base.Fetcher`). It implements the
:class:`~archivemap.archive.base.SectionContext` protocol that sections are written
against, so sections never see a schema, a source or a client directly.
"""

from __future__ import annotations

import pickle
import threading
import weakref
from typing import Any, Protocol

from archivemap._json import dump_json, parse_json
from archivemap.archive.references import ParsedReference, parse_reference
from archivemap.archive.schema import Schema
from archivemap.archive.base import AccessRecorder, Fetcher
from archivemap.archive.sections import Section
from archivemap.errors import DefinitionError, UnknownDefinitionError
from archivemap.metainfo.environment import Environment
from archivemap.metainfo.model import Definition, SectionDef
from archivemap.metainfo.fields import FieldMeta

__all__ = ["ArchiveContext", "ArchiveSource", "Fetcher", "new_archive"]


class ArchiveSource(Protocol):
    """Where archives other than the current one come from (a folder, a zip, a client)."""

    def archive_for(self, ref: ParsedReference, context: ArchiveContext) -> Section:
        """The root section of the archive a cross-entry reference points into.

        Raises:
            DanglingReferenceError: the source holds no such archive.
            UnsupportedReferenceError: the source cannot reach that kind of target.
        """
        ...

    def register(self, root: Section) -> None:
        """Remember an archive loaded with this source, so references back to it reuse it."""
        ...


class ArchiveContext:
    """What every section of one archive shares.

    Attributes:
        schema: the schema the archive was loaded with.
        entry_id, upload_id, mainfile: the entry's identity, from ``metadata`` when present.
        source: resolves references into other archives, or ``None``.
        fetcher: fetches what was not downloaded, or ``None`` (everything is here).
        root: the root section.
        lock: serialises merges of downloaded data into this archive.
        owns_data: the raw dict was parsed for this archive (no caller holds it), so sections
            may let converted float arrays stand in for their raw lists (memory).
    """

    def __init__(
        self,
        schema: Schema,
        raw_root: dict[str, Any],
        source: ArchiveSource | None = None,
        fetcher: Fetcher | None = None,
        entry_id: str | None = None,
        upload_id: str | None = None,
        owns_data: bool = False,
    ) -> None:
        self.schema = schema
        self.owns_data = owns_data
        self.recorder: AccessRecorder | None = None
        meta = raw_root.get("metadata") if isinstance(raw_root, dict) else None
        meta = meta if isinstance(meta, dict) else {}
        self.entry_id: str | None = entry_id or _str(meta.get("entry_id"))
        self.upload_id: str | None = upload_id or _str(meta.get("upload_id"))
        self.mainfile: str | None = _str(meta.get("mainfile"))
        self.source = source
        self.fetcher = fetcher
        self._root: weakref.ref[Section] | None = None
        self._pinned: Section | None = None  # a root nobody else holds yet (unpickling)
        self.lock = threading.RLock()
        self._raw_root = raw_root
        self._custom_env: Environment | None = None

    @property
    def root(self) -> Section | None:
        """The root section, held weakly.

        Every section reaches the root through its parents, so whoever can reach this context
        keeps the root alive; held strongly, root and context would form a reference cycle,
        and an archive nobody navigated would wait for the garbage collector instead of
        being freed when dropped (a large part of ``load`` for small archives).
        """
        ref = self._root
        return ref() if ref is not None else self._pinned

    @root.setter
    def root(self, value: Section | None) -> None:
        try:
            self._root = weakref.ref(value) if value is not None else None
        except TypeError:  # a section class without a weakref slot: hold it
            self._root, self._pinned = None, value

    # -- pickling (see archivemap.archive.runtime) -------------------------------------------
    def __reduce__(self) -> tuple[Any, ...]:
        # The whole archive as data with every assignment applied; loaded again on unpickling.
        # Pickled here, as bytes, rather than handed to the caller's pickler: pickle recurses
        # once per level of a nested dict, and a deep archive (hundreds of levels) would fail
        # inside the caller's pickle.dumps with a bare RecursionError. Here that is caught, and
        # the archive goes as JSON text, whose limit is the one reading it has; deeper still,
        # the error says so. (A pickle, when it fits, is half the size: keys are memoized.)
        with self.lock:
            raw = self.root.to_dict() if self.root is not None else self._raw_root
        try:
            payload, kind = pickle.dumps(raw, protocol=pickle.HIGHEST_PROTOCOL), "pickle"
        except RecursionError:
            try:
                payload, kind = dump_json(raw), "json"
            except RecursionError:
                raise pickle.PicklingError(
                    f"archive{' ' + self.entry_id if self.entry_id else ''} is nested too deeply "
                    "to pickle (more levels than Python's recursion limit, the limit reading it "
                    "from JSON has too)"
                ) from None
        return (
            _rebuild_context,
            (self.schema, kind, payload, self.source, self.fetcher, self.entry_id, self.upload_id),
        )

    @property
    def definitions_final(self) -> bool:
        """Whether this archive's own definitions are all here (nothing left to download)."""
        return self.fetcher is None

    # -- the SectionContext protocol ----------------------------------------------------------
    def sub_section_class(self, owner: type[Section], fm: FieldMeta) -> type[Section]:
        """The declared class of sub-section ``fm`` of ``owner``."""
        return self.schema.sub_section_class(owner, fm)

    def class_for_item(self, declared: type[Section], item: dict[str, Any], path: object = None) -> type[Section]:
        """The class of one raw item: its ``m_def`` resolved here (custom schemas included)."""
        return self.schema.class_for_item(declared, item, self, path)

    def definition_of(self, cls: type) -> SectionDef:
        """The definition a section class was made for."""
        return self.schema.definition_of(cls)

    def reference_class(self, fm: FieldMeta) -> type[Section] | None:
        """The specific class of a reference quantity's targets, or ``None`` (see Schema)."""
        return self.schema.reference_class(fm)

    def archive_for(self, ref: ParsedReference) -> Section | None:
        """The root of the archive ``ref`` points into, or ``None`` without a source."""
        if self.source is None:
            return None
        return self.source.archive_for(ref, self)

    # -- custom schemas -------------------------------------------------------------------------
    @property
    def custom_environment(self) -> Environment | None:
        """The environment of the archive's own ``definitions`` (custom schema), if any."""
        if self._custom_env is None:
            if self.fetcher is not None and self.root is not None and not self.fetcher.is_downloaded(("definitions",)):
                # A partial archive from a client: its custom schema may be missing, or only
                # probed (navigating ``definitions`` learns names, not whole definitions). A
                # class must only ever be built from complete definitions: fetch them whole.
                self.root.prefetch(["definitions"])
            definitions = self._raw_root.get("definitions")
            if not isinstance(definitions, dict) or "section_definitions" not in definitions:
                return None
            with self.lock:
                if self._custom_env is None:
                    self._custom_env = Environment.for_archive(
                        definitions, self.entry_id, self.schema.environment, self._external
                    )
        return self._custom_env

    def _external(self, ref: str) -> Definition:
        """Resolve a definition that lives in another archive's ``definitions``."""
        if self.source is None:
            raise UnknownDefinitionError(
                f"definition {ref!r} lives in another archive; load with a source "
                "(a folder of archives or a client) to resolve it"
            )
        if ref.startswith("entry_id:"):
            entry_id, _, name = ref[len("entry_id:") :].partition(".")
            by_entry = parse_reference(f"../entries/{entry_id}/archive#/definitions")
            assert by_entry is not None  # a well-formed URL by construction
            other_env = _custom_environment_of(self.source.archive_for(by_entry, self))
            if other_env is None:
                raise UnknownDefinitionError(f"archive of {ref!r} carries no definitions")
            return other_env.section(ref.partition("@")[0])
        parsed = parse_reference(ref)
        if parsed is None:
            raise UnknownDefinitionError(f"definition reference {ref!r} is not an archive URL")
        env = _custom_environment_of(self.source.archive_for(parsed, self))
        if env is None:
            raise UnknownDefinitionError(f"archive of {ref!r} carries no definitions")
        return env.resolve("#/" + "/".join(parsed.fragment), context=env.packages[0], origin=ref)

    def resolve_definition(self, m_def: str) -> SectionDef:
        """The section definition an ``m_def`` value names (spec §2.4).

        A qualified name or definition id is looked up in the deployment's schema first: only
        a miss, a fragment into the archive's own ``definitions`` or an ``entry_id:`` name
        needs the archive's custom schema, which a partial download may first have to fetch
        (one request per archive, not one per section that carries an ``m_def``).
        """
        target: Definition
        url, hash_, _ = m_def.partition("#")
        if url and hash_:
            target = self._external(m_def)
        elif m_def.startswith(("#", "/")) or m_def.startswith("entry_id:"):
            env = self.custom_environment
            if env is None and m_def.startswith("entry_id:"):
                target = self._external(m_def)
            elif env is None:
                raise UnknownDefinitionError(f"m_def {m_def!r} points into definitions this archive lacks")
            else:
                target = env.resolve(m_def, context=env.packages[0])
        else:
            try:
                target = self.schema.environment.resolve(m_def)
            except UnknownDefinitionError:
                env = self.custom_environment
                if env is None:
                    raise
                target = env.resolve(m_def, context=env.packages[0])
        if not isinstance(target, SectionDef):
            raise DefinitionError(f"m_def {m_def!r} is not a section definition")
        return target


def _custom_environment_of(root: Section) -> Environment | None:
    ctx = root.m_context
    return ctx.custom_environment if ctx is not None else None


def new_archive(
    raw: dict[str, Any],
    schema: Schema,
    *,
    source: ArchiveSource | None = None,
    fetcher: Fetcher | None = None,
    entry_id: str | None = None,
    upload_id: str | None = None,
    owns_data: bool = False,
) -> Section:
    """The lazy root section of one parsed archive dict (nothing below it is converted).

    The one place where an archive gets its context: :func:`archivemap.load`, the sources
    and the client all come through here. ``owns_data``: ``raw`` was parsed for this archive
    and no caller holds it (see :class:`ArchiveContext`).
    """
    ctx = ArchiveContext(
        schema, raw, source=source, fetcher=fetcher, entry_id=entry_id, upload_id=upload_id, owns_data=owns_data
    )
    root = schema.root_class().m_load(raw, None, None, ctx)
    ctx.root = root
    if source is not None:
        source.register(root)
    return root


def _rebuild_context(
    schema: Schema,
    kind: str,
    payload: bytes,
    source: ArchiveSource | None,
    fetcher: Fetcher | None,
    entry_id: str | None,
    upload_id: str | None,
) -> ArchiveContext:
    """Unpickle an archive context: load its archive again (the root is ``context.root``)."""
    # the pickle is of the archive's own dict, made by __reduce__ above: the unpickler
    # trusted the stream that holds it already
    data = pickle.loads(payload) if kind == "pickle" else parse_json(payload, "<pickled archive>")
    root = new_archive(
        data, schema, source=source, fetcher=fetcher, entry_id=entry_id, upload_id=upload_id, owns_data=True
    )
    ctx = root.m_context
    assert isinstance(ctx, ArchiveContext)
    ctx._pinned = root  # the unpickler holds the context only: keep its root
    return ctx


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
