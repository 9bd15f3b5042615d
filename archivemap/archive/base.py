"""The base of every section, and the protocols its collaborators meet through.

:class:`SectionBase` holds a section's private state (the slots ``_m_data``, ``_m_parent``,
``_m_ctx``, ``_m_dirty``, ``_m_key``) and what can be answered from it alone: identity,
navigation up the tree, which properties are set. The full
:class:`~archivemap.archive.sections.Section` derives from it and adds the reads that convert,
fetch and resolve; it sits on top of the modules that do that work, which are written against
this base (and the protocols below), so no import goes back up.

The collaborators are typed protocols, declared here because this is where sections meet
them: :class:`SectionContext` (what every section of one archive shares: implemented by
:class:`archivemap.archive.context.ArchiveContext`), :class:`Fetcher` (downloads what a
partial archive lacks, speaking JSON only: implemented by
:class:`archivemap.remote.fetch.RemoteFetcher`) and :class:`AccessRecorder` (told what an
analysis reads). Other layers read sections through the public functions here
(:func:`raw_data`, :func:`built_value`, :func:`assigned`): only the section modules of this
package touch a section's slots.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final, Protocol, TypeVar

from archivemap.archive.references import ParsedReference
from archivemap.errors import DefinitionError
from archivemap.metainfo.environment import Environment
from archivemap.metainfo.model import SectionDef
from archivemap.metainfo.fields import FieldMeta, fields_by_name, section_fields

__all__ = [
    "EMPTY",
    "RESOLVING",
    "AccessRecorder",
    "Fetcher",
    "Path",
    "SectionBase",
    "SectionContext",
    "adopt",
    "adopt_built",
    "adopt_value",
    "assigned",
    "built_value",
    "fetcher_of",
    "path_segments",
    "raw_data",
    "resolution",
    "resolving",
    "wrap",
]

#: An archive path as a tuple of NOMAD names and absolute indices: ``("run", 0, "system")``.
Path = tuple[Any, ...]

#: What :func:`built_value` returns for a slot that was never filled.
EMPTY: Final = object()

_S = TypeVar("_S", bound="SectionBase")
#: The section class a context or recorder hands out and takes: ``Section`` for the
#: implementations above this module (``ArchiveContext``), any section for the modules below.
_C = TypeVar("_C", bound="SectionBase")
_C_contra = TypeVar("_C_contra", bound="SectionBase", contravariant=True)


class Fetcher(Protocol):
    """Downloads what a partially downloaded archive lacks; speaks JSON, never sections.

    Paths are tuples of NOMAD names and absolute (non-negative) indices. The archive layer
    merges what a fetcher returns into its raw data and patches built sections; the fetcher
    only decides what to ask for, asks, and remembers what it has asked.
    """

    @property
    def fetches(self) -> int:
        """How many requests this fetcher has sent."""
        ...

    @property
    def auto(self) -> bool:
        """Whether reading what is missing fetches it (else: NotDownloadedError)."""
        ...

    def is_downloaded(self, path: Path) -> bool:
        """Whether ``path`` was covered by a download (present or proven absent)."""
        ...

    def was_asked(self, path: Path) -> bool:
        """Whether a download asked for the key at ``path``: NOMAD answers every key asked for
        that exists, so a key missing from the data is absent and needs no request."""
        ...

    def is_complete_list(self, path: Path) -> bool:
        """Whether the repeating sub-section at ``path`` is known at its full length."""
        ...

    def mark_complete_list(self, path: Path) -> None:
        """Remember that the list at ``path`` was padded to its full length."""
        ...

    def download(
        self, paths: Sequence[Path], typed: Sequence[int] | None = None, whole: bool = True
    ) -> dict[str, Any] | None:
        """Download ``paths`` in one request and return the answer as a partial archive.

        Items sit at their original indices, lists are padded with ``None`` (not loaded).
        Returns ``None`` when every path was already downloaded. Sections from position
        ``typed[k]`` of ``paths[k]`` on come with their ``m_def``; with ``whole=False`` the
        sections at the ends of the paths come with their ``m_def`` only.

        Raises:
            NotDownloadedError: fetching is off for this archive.
        """
        ...

    def list_items(self, path: Path, keys: Sequence[str]) -> list[Any]:
        """Every item of the repeating sub-section at ``path``, with only ``keys`` of each."""
        ...


class AccessRecorder(Protocol[_C_contra]):
    """Told what is read of an archive, so that a ``required`` spec can be derived from it.

    Only the first read of each property is reported (later reads hit the filled slot).
    """

    def read(self, section: _C_contra, fm: FieldMeta) -> None:
        """Property ``fm`` of ``section`` was read."""
        ...

    def reached(self, target: _C_contra, holder: _C_contra, fm: FieldMeta) -> None:
        """``target`` was reached through the reference quantity ``fm`` of ``holder``."""
        ...

    def iterated(self, owner: _C_contra, name: str) -> None:
        """The whole list of repeating sub-section ``name`` was iterated or measured."""
        ...

    def indexed(self, owner: _C_contra, name: str, index: int) -> None:
        """One item of ``name`` was taken by ``index`` (negative: counted from the end)."""
        ...


class SectionContext(Protocol[_C]):
    """What every section of one loaded archive shares (see ``ArchiveContext``).

    Generic in the section class it hands out (``SectionContext[Section]`` for
    ``ArchiveContext``); the modules below ``sections.py`` use it as ``SectionContext`` (any).

    Attributes:
        entry_id, upload_id, mainfile: the entry's identity, when known.
        fetcher: downloads what is missing, or ``None`` when everything is here.
        lock: serialises merges of downloaded data into this archive.
        owns_data: the raw dict was parsed for this archive and no caller holds it, so
            converted float arrays may stand in for raw lists.
        recorder: told what an analysis reads (see :class:`AccessRecorder`), or ``None``.
    """

    entry_id: str | None
    upload_id: str | None
    mainfile: str | None
    fetcher: Fetcher | None
    lock: threading.RLock
    owns_data: bool
    recorder: AccessRecorder[_C] | None

    def sub_section_class(self, owner: type[_C], fm: FieldMeta) -> type[_C]:
        """The declared class of sub-section ``fm`` of ``owner``."""
        ...

    def class_for_item(self, declared: type[_C], item: dict[str, Any], path: object = None) -> type[_C]:
        """The class of one raw sub-section item (its ``m_def``, else ``declared``)."""
        ...

    def definition_of(self, cls: type) -> SectionDef:
        """The definition a section class was made for."""
        ...

    def archive_for(self, ref: ParsedReference) -> _C | None:
        """The root of another archive a reference points into; ``None`` without a source."""
        ...

    @property
    def custom_environment(self) -> Environment | None:
        """The definitions the archive carries itself (a custom schema), if any."""
        ...

    def reference_class(self, fm: FieldMeta) -> type[_C] | None:
        """The class a reference quantity's targets have, when the schema names a specific
        one (``None`` for generic targets such as ``ArchiveSection``, which NOMAD does not
        follow in ``required``)."""
        ...


class SectionBase:
    """A section's private state and what it answers without converting anything.

    Every section class derives from :class:`~archivemap.archive.sections.Section`, which
    derives from this; nothing else does. The modules below ``sections.py`` see sections as
    this class.
    """

    __slots__ = ("_m_data", "_m_parent", "_m_ctx", "_m_dirty", "_m_key")

    # the raw JSON dict of a loaded section, None for one built in Python (Any: the modules
    # that read it know which from where they are, as they did before the base existed)
    _m_data: Any
    _m_parent: SectionBase | None
    _m_ctx: SectionContext[Any] | None
    _m_dirty: set[str] | None  # attribute names assigned since loading
    _m_key: tuple[str, int | None] | None  # (sub-section name, index) in the parent

    m_qualified_name: ClassVar[str]
    m_definition_id: ClassVar[str | None]

    if TYPE_CHECKING:  # implemented by Section (sections.py), above the modules that call them
        def to_dict(self) -> dict[str, Any]: ...

        def _repr_pretty_(self, p: Any, cycle: bool) -> None: ...

        def _repr_html_(self) -> str: ...

    @classmethod
    def m_load(
        cls: type[_S],
        data: dict[str, Any],
        parent: SectionBase | None = None,
        key: tuple[str, int | None] | None = None,
        ctx: SectionContext | None = None,
    ) -> _S:
        """Wrap a raw JSON dict without converting anything (used by the loader)."""
        obj = cls.__new__(cls)
        wrap(obj, data, parent, ctx if ctx is not None else (parent._m_ctx if parent else None), key)
        return obj

    # -- identity and navigation ----------------------------------------------------------
    @property
    def m_parent(self) -> SectionBase | None:
        """The section that contains this one (``None`` at the root)."""
        return self._m_parent  # type: ignore[no-any-return]

    @property
    def m_root(self) -> SectionBase:
        """The archive root (EntryArchive) this section belongs to."""
        node: SectionBase = self
        while node._m_parent is not None:
            node = node._m_parent
        return node

    @property
    def m_context(self) -> SectionContext | None:
        """What the sections of this archive share (schema, identity, source, fetcher)."""
        return self._m_ctx  # type: ignore[no-any-return]

    @property
    def m_parent_sub_section(self) -> str | None:
        """The NOMAD name of the sub-section this section sits in."""
        return self._m_key[0] if self._m_key else None

    @property
    def m_parent_index(self) -> int | None:
        """The index in a repeating sub-section, ``None`` for single sub-sections."""
        return self._m_key[1] if self._m_key else None

    def m_path(self) -> str:
        """The NOMAD archive path of this section, e.g. ``/run/0/calculation/3``."""
        parts = path_segments(self)
        return "/" + "/".join(map(str, parts)) if parts else "/"

    @property
    def m_entry_id(self) -> str | None:
        """The entry id of the archive this section belongs to, when known."""
        ctx = self._m_ctx
        return ctx.entry_id if ctx is not None else None

    @property
    def m_def(self) -> SectionDef:
        """The section definition (from the metainfo the archive was loaded with)."""
        ctx = self._m_ctx
        if ctx is None:
            raise DefinitionError(f"{type(self).__name__} was not loaded with a schema")
        return ctx.definition_of(type(self))

    @property
    def m_extras(self) -> dict[str, Any]:
        """Keys of the raw data that are not properties of the definition, kept as they were."""
        data = self._m_data
        if not data:
            return {}
        by_name = fields_by_name(type(self))
        return {k: v for k, v in data.items() if k not in by_name and k not in ("m_def", "m_def_id")}

    def m_set_fields(self) -> list[FieldMeta]:
        """The fields that hold a value: read from the raw keys, not by probing every slot."""
        cls = type(self)
        data = self._m_data
        if data is None:
            out = []
            for fm in section_fields(cls).values():
                value = object.__getattribute__(self, fm.attribute)
                if value is not None and not (isinstance(value, list) and not value):
                    out.append(fm)
            return out
        by_name = fields_by_name(cls)
        out = [by_name[k] for k, v in data.items() if v is not None and k in by_name]
        dirty = self._m_dirty
        if dirty:
            fields = section_fields(cls)
            present = {fm.attribute for fm in out}
            out.extend(fields[a] for a in sorted(dirty) if a not in present and a in fields)
        return out


# ============================================================ the slots
_set_slot: Final = object.__setattr__


def wrap(
    obj: SectionBase,
    data: dict[str, Any],
    parent: SectionBase | None,
    ctx: SectionContext | None,
    key: tuple[str, int | None] | None,
) -> None:
    """Fill the private slots of a section made by ``__new__`` around its raw JSON."""
    _set_slot(obj, "_m_data", data)
    _set_slot(obj, "_m_parent", parent)
    _set_slot(obj, "_m_ctx", ctx)
    _set_slot(obj, "_m_dirty", None)
    _set_slot(obj, "_m_key", key)


# ============================================================ reading storage (public, read-only)
def raw_data(section: SectionBase) -> dict[str, Any] | None:
    """The raw JSON dict a loaded section wraps (``None`` for sections built in Python).

    Read-only by contract: the walkers of other layers (the reference graph) read it to avoid
    converting values they never show.
    """
    return section._m_data  # type: ignore[no-any-return]


def assigned(section: SectionBase) -> frozenset[str]:
    """The attribute names assigned since loading (their raw JSON is stale)."""
    dirty = section._m_dirty
    return frozenset(dirty) if dirty else frozenset()


def built_value(section: SectionBase, fm: FieldMeta) -> Any:
    """The converted value in ``fm``'s slot, or :data:`EMPTY` when it was never read."""
    try:
        return object.__getattribute__(section, fm.attribute)
    except AttributeError:
        return EMPTY


def path_segments(section: SectionBase) -> Path:
    """The archive path of a section as names and indices: ``("run", 0, "system", 2)``."""
    parts: list[Any] = []
    node: SectionBase | None = section
    while node is not None and node._m_key is not None:
        name, index = node._m_key
        if index is not None:
            parts.append(index)
        parts.append(name)
        node = node._m_parent
    return tuple(reversed(parts))


def fetcher_of(section: SectionBase) -> Fetcher | None:
    ctx = section._m_ctx
    return ctx.fetcher if ctx is not None else None


def partly_downloaded(section: SectionBase) -> bool:
    """Whether the archive of ``section`` came from a server with less than all of it (a
    ``required`` below ``"*"``): the rest is downloaded when read. An archive downloaded
    whole has a fetcher too (for references into other entries), but nothing to fetch."""
    fetcher = fetcher_of(section)
    return fetcher is not None and not fetcher.is_downloaded(())


# ============================================================ adoption
def adopt(child: SectionBase, parent: SectionBase, name: str, index: int | None) -> None:
    object.__setattr__(child, "_m_parent", parent)
    object.__setattr__(child, "_m_key", (name, index))
    if child._m_ctx is None:
        object.__setattr__(child, "_m_ctx", parent._m_ctx)


def adopt_value(parent: SectionBase, fm: FieldMeta, value: Any) -> None:
    """Give a section (or the sections of a list) assigned to ``fm`` its parent and place."""
    if isinstance(value, SectionBase):
        adopt(value, parent, fm.name, None)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, SectionBase):
                adopt(item, parent, fm.name, i)


def adopt_built(root: SectionBase) -> None:
    """Give every built sub-section its parent and position (iterative, built slots only)."""
    stack = [root]
    while stack:
        node = stack.pop()
        for fm in section_fields(type(node)).values():
            if fm.kind != "sub_section":
                continue
            try:
                value = object.__getattribute__(node, fm.attribute)
            except AttributeError:
                continue
            if isinstance(value, SectionBase):
                if value._m_parent is not node:
                    adopt(value, node, fm.name, None)
                stack.append(value)
            elif isinstance(value, list):
                for i, item in enumerate(list.__iter__(value)):
                    if isinstance(item, SectionBase):
                        if item._m_key != (fm.name, i) or item._m_parent is not node:
                            adopt(item, node, fm.name, i)
                        stack.append(item)


# ============================================================ reads that are not the analysis's
# The reference quantities being resolved right now, per thread: a quantity reference whose
# target is (through other references) itself would otherwise recurse until RecursionError.
RESOLVING = threading.local()


def resolving() -> bool:
    """Whether this thread is inside a reference resolution right now."""
    return bool(getattr(RESOLVING, "active", None))


@contextlib.contextmanager
def resolution() -> Iterator[None]:
    """Mark this thread as resolving a reference (reads inside are not recorded)."""
    active: set[Any] | None = getattr(RESOLVING, "active", None)
    if active is None:
        active = RESOLVING.active = set()
    marker = object()
    active.add(marker)
    try:
        yield
    finally:
        active.discard(marker)
