"""The Section: lazy storage, and everything that reads or writes it.

Every archive section is an attrs class with ``slots=True`` deriving from :class:`Section`.
A loaded section keeps its raw JSON dict and leaves its field slots empty; reading an empty
slot falls through to ``__getattr__``, which converts that one property, stores it in the slot
and returns it. So reading ``archive.run[0].calculation[-1].energy.total.value`` from a
100 MB archive builds five sections and one quantity, not the tree.

``to_dict`` writes back the raw JSON of everything that was not assigned since loading, so
that ``to_dict(load(d)) == d`` holds exactly, unknown keys and mistyped values included.

This module is the only one that touches a section's private slots. It holds, besides the
class:

* loading one field and dumping a section back to JSON;
* adoption (a child knows its parent and its place);
* the one walker: :func:`get_path` (dotted paths), :func:`resolve_reference` /
  :func:`resolve_fragment` (reference fragments), :func:`select_item` (an item of a repeating
  sub-section by index, negative index or key), and the planning of a path for one remote
  request;
* merging downloaded data into a partial archive (:class:`PartialList` and the fetch seam);
* the stand-ins a read may give instead of a value: :class:`Absent` (an unset single
  sub-section: falsy, ``== None``, a named error when read through), :class:`Pending` and
  :class:`PendingList` (not downloaded yet: a planned path, fetched in one request when a
  quantity below it is read) and :class:`Placeholder` (a value of a ``batch``). They are never
  kept in a slot: the next read looks again.

Its collaborators are typed protocols, declared here because this is where they are used:
:class:`SectionContext` (what every section of one archive shares: implemented by
:class:`archivemap.archive.context.ArchiveContext`) and :class:`Fetcher` (downloads what a
partial archive lacks, speaking JSON only: implemented by
:class:`archivemap.remote.fetch.RemoteFetcher`). Other modules read sections through the
public functions at the bottom (:func:`raw_data`, :func:`built_value`, :func:`assigned`).
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, Final, Protocol, SupportsIndex, TypeVar, overload

import lazy_object_proxy

from archivemap._lazy import deferred_import
from archivemap._json import merge_partial, pad_list, value_at
from archivemap._warnings import warn_at_caller
from archivemap.archive.converter import assignment_problem, converter, dump_value, load_value
from archivemap.archive.references import ParsedReference, parse_reference
from archivemap.errors import (
    AbsentError,
    AbsentItemError,
    AbsentSectionError,
    ArchivemapError,
    AssignmentError,
    ArchiveDataError,
    DanglingReferenceError,
    DefinitionError,
    HTTPStatusError,
    NotDownloadedError,
    NotInSchemaError,
    ReferenceCycleError,
    SchemaMismatchWarning,
    UnsupportedReferenceError,
)
from archivemap.metainfo.definitions import Environment, SectionDef
from archivemap.metainfo.fields import ITEMS, VALUE, FieldMeta, fields_by_name, section_fields, walk_steps
from archivemap.paths import Key, Segment, format_path, parse_path

if TYPE_CHECKING:
    import numpy as np
else:
    np = deferred_import("numpy")  # arrays only appear once numpy is imported (converter.py)

__all__ = [
    "EMPTY",
    "Absent",
    "AccessRecorder",
    "Fetcher",
    "PartialList",
    "Pending",
    "PendingList",
    "Placeholder",
    "Section",
    "SectionContext",
    "assigned",
    "built_value",
    "dump_field",
    "get_path",
    "keyed_order",
    "path_segments",
    "raw_data",
    "resolve_fragment",
    "resolve_reference",
    "select_item",
]

#: An archive path as a tuple of NOMAD names and absolute indices: ``("run", 0, "system")``.
Path = tuple[Any, ...]

_FIRST_READ = threading.Lock()

_T = TypeVar("_T")

#: What :func:`built_value` returns for a slot that was never filled.
EMPTY: Final = object()


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


class AccessRecorder(Protocol):
    """Told what is read of an archive, so that a ``required`` spec can be derived from it.

    Only the first read of each property is reported (later reads hit the filled slot).
    """

    def read(self, section: Section, fm: FieldMeta) -> None:
        """Property ``fm`` of ``section`` was read."""
        ...

    def reached(self, target: Section, holder: Section, fm: FieldMeta) -> None:
        """``target`` was reached through the reference quantity ``fm`` of ``holder``."""
        ...

    def iterated(self, owner: Section, name: str) -> None:
        """The whole list of repeating sub-section ``name`` was iterated or measured."""
        ...

    def indexed(self, owner: Section, name: str, index: int) -> None:
        """One item of ``name`` was taken by ``index`` (negative: counted from the end)."""
        ...


class SectionContext(Protocol):
    """What every section of one loaded archive shares (see ``ArchiveContext``).

    Attributes:
        entry_id, upload_id: the entry's identity, when known.
        fetcher: downloads what is missing, or ``None`` when everything is here.
        lock: serialises merges of downloaded data into this archive.
        owns_data: the raw dict was parsed for this archive and no caller holds it, so
            converted float arrays may stand in for raw lists.
        recorder: told what an analysis reads (see :class:`AccessRecorder`), or ``None``.
    """

    entry_id: str | None
    upload_id: str | None
    fetcher: Fetcher | None
    lock: threading.RLock
    owns_data: bool
    recorder: AccessRecorder | None

    def sub_section_class(self, owner: type[Section], fm: FieldMeta) -> type[Section]:
        """The declared class of sub-section ``fm`` of ``owner``."""
        ...

    def class_for_item(self, declared: type[Section], item: dict[str, Any], path: object = None) -> type[Section]:
        """The class of one raw sub-section item (its ``m_def``, else ``declared``)."""
        ...

    def definition_of(self, cls: type) -> SectionDef:
        """The definition a section class was made for."""
        ...

    def archive_for(self, ref: ParsedReference) -> Section | None:
        """The root of another archive a reference points into; ``None`` without a source."""
        ...

    @property
    def custom_environment(self) -> Environment | None:
        """The definitions the archive carries itself (a custom schema), if any."""
        ...

    def reference_class(self, fm: FieldMeta) -> type[Section] | None:
        """The class a reference quantity's targets have, when the schema names a specific
        one (``None`` for generic targets such as ``ArchiveSection``, which NOMAD does not
        follow in ``required``)."""
        ...


class Section:
    """Base class of all section classes, generated or built at run time.

    Sections made by loading are lazy (see the module docstring); sections made by calling
    the class (``Energy(total=EnergyEntry(value=...))``) are ordinary attrs instances.
    """

    __slots__ = ("_m_data", "_m_parent", "_m_ctx", "_m_dirty", "_m_key")

    m_qualified_name: ClassVar[str] = "archivemap.archive.sections.Section"
    m_definition_id: ClassVar[str | None] = None

    # -- construction ---------------------------------------------------------------------
    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_m_data", None)
        object.__setattr__(self, "_m_parent", None)
        object.__setattr__(self, "_m_ctx", None)
        object.__setattr__(self, "_m_dirty", None)
        object.__setattr__(self, "_m_key", None)
        for fm in section_fields(type(self)).values():
            value = object.__getattribute__(self, fm.attribute)
            if fm.kind == "sub_section":
                _adopt_value(self, fm, value)

    @classmethod
    def m_load(
        cls,
        data: dict[str, Any],
        parent: Section | None = None,
        key: tuple[str, int | None] | None = None,
        ctx: SectionContext | None = None,
    ) -> Section:
        """Wrap a raw JSON dict without converting anything (used by the loader)."""
        obj = cls.__new__(cls)
        _wrap(obj, data, parent, ctx if ctx is not None else (parent._m_ctx if parent else None), key)
        return obj

    # -- lazy loading ---------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup failed: an empty slot or an unknown name.
        if name.startswith(("_m_", "__")):  # private state (empty slot) and dunders
            raise AttributeError(name)
        fm = section_fields(type(self)).get(name)
        if fm is None:
            raise NotInSchemaError(
                _no_property(type(self), name),
                path=self.m_path(),
                entry_id=self.m_entry_id,
            )
        value = _local_reference(self, fm) if fm.is_reference else _MISS
        if value is _MISS:
            value = _load_field(self, fm)
            if type(value) in _STAND_INS:  # not the value: kept out of the slot
                return value
            if fm.is_reference and type(value) is list and any(type(v) in _STAND_INS for v in value):
                return value  # references to targets not here yet: resolved again when read again
        elif type(value) is not list:
            # a section that exists already: whichever thread walks first finds this object
            object.__setattr__(self, name, value)
            return value
        with _FIRST_READ:  # two threads reading at once must end up with the same object
            try:
                return object.__getattribute__(self, name)
            except AttributeError:
                object.__setattr__(self, name, value)
                return value

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_"):
            fm = section_fields(type(self)).get(name)
            if fm is not None and fm.kind == "quantity" and value is not None:
                _check_assignment(self, fm, value)
        object.__setattr__(self, name, value)
        if name.startswith("_"):
            return
        try:
            dirty = object.__getattribute__(self, "_m_dirty")
        except AttributeError:  # during attrs __init__, before post-init
            return
        fm = section_fields(type(self)).get(name)
        if fm is None:
            return
        if dirty is None:
            dirty = set()
            object.__setattr__(self, "_m_dirty", dirty)
        dirty.add(name)
        if fm.kind == "sub_section":
            _adopt_value(self, fm, value)

    def __dir__(self) -> list[str]:
        # Tab completion offers the schema's properties (also of lazy, unread slots)
        return sorted(set(object.__dir__(self)) | set(section_fields(type(self))))

    # -- identity and navigation ----------------------------------------------------------
    @property
    def m_parent(self) -> Section | None:
        """The section that contains this one (``None`` at the root)."""
        return self._m_parent  # type: ignore[no-any-return]

    @property
    def m_root(self) -> Section:
        """The archive root (EntryArchive) this section belongs to."""
        node: Section = self
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

    def m_is_set(self, name: str) -> bool:
        """Whether property ``name`` (NOMAD or attribute name) has a value in this section."""
        fm = section_fields(type(self)).get(name) or fields_by_name(type(self)).get(name)
        if fm is None:
            return False
        try:
            object.__getattribute__(self, fm.attribute)
        except AttributeError:
            data = self._m_data
            return data is not None and data.get(fm.name) is not None
        value = object.__getattribute__(self, fm.attribute)
        return value is not None and value != [] if not hasattr(value, "shape") else True

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

    def m_quantities(self) -> Iterator[tuple[str, Any]]:
        """(attribute name, value) of every quantity that is set."""
        for fm in self.m_set_fields():
            if fm.kind == "quantity" and not fm.virtual:
                yield fm.attribute, getattr(self, fm.attribute)

    def m_sub_sections(self) -> Iterator[tuple[str, Section]]:
        """(attribute name, child) of every sub-section that is set, items of lists one by one."""
        for value, fm in self._m_sub_section_values():
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, Section):
                        yield fm.attribute, item
            elif isinstance(value, Section):
                yield fm.attribute, value

    def _m_sub_section_values(self) -> list[tuple[Any, FieldMeta]]:
        # (value, field) of the set sub-sections, in the order of m_set_fields; a loaded,
        # unedited section looks only at the raw keys that are sub-sections of its class
        data = self._m_data
        if data is None or self._m_dirty:
            return [(getattr(self, fm.attribute), fm) for fm in self.m_set_fields() if fm.kind == "sub_section"]
        cls = type(self)
        subs = _sub_sections_by_name(cls)
        out = []
        for key, raw in data.items():
            if raw is not None and key in subs:
                fm = subs[key]
                try:
                    value = object.__getattribute__(self, fm.attribute)
                except AttributeError:
                    value = getattr(self, fm.attribute)
                out.append((value, fm))
        return out

    def _m_sub_section_children(self) -> list[Any]:
        # the values of _m_sub_section_values without their fields: m_contents' hot loop
        data = self._m_data
        if data is None or self._m_dirty:
            return [value for value, _ in self._m_sub_section_values()]
        cls = type(self)
        subs = _sub_sections_by_name(cls)
        out = []
        for key, raw in data.items():
            fm = subs.get(key)
            if fm is not None and raw is not None:
                try:
                    out.append(object.__getattribute__(self, fm.attribute))
                except AttributeError:
                    out.append(getattr(self, fm.attribute))
        return out

    def m_contents(self) -> Iterator[Section]:
        """Every section below this one, depth first (iterative: deep trees are fine)."""
        stack: list[Section] = [self]
        while stack:
            node = stack.pop()
            if node is not self:
                yield node
            children: list[Section] = []
            for value in node._m_sub_section_children():
                if isinstance(value, list):
                    children.extend([item for item in value if isinstance(item, Section)])
                elif isinstance(value, Section):
                    children.append(value)
            stack.extend(reversed(children))

    def m_reference(self, name: str) -> Any:
        """The raw reference string(s) of quantity ``name``, without resolving them."""
        fm = section_fields(type(self)).get(name) or fields_by_name(type(self)).get(name)
        if fm is None:
            raise NotInSchemaError(
                _no_property(type(self), name), path=self.m_path()
            )
        data = self._m_data
        if data is not None and fm.name in data and not (self._m_dirty and fm.attribute in self._m_dirty):
            return _copy_json(data[fm.name]) if type(data[fm.name]) is np.ndarray else data[fm.name]
        return dump_field(self, fm, getattr(self, fm.attribute))

    def m_resolve(self, reference: str) -> Any:
        """Resolve a reference string (any form of spec §3) as if this section held it."""
        return resolve_reference(self, reference, source_path=self.m_path())

    def m_get(self, path: str) -> Any:
        """Read a dotted path such as ``"run[0].calculation[-1].energy.total.value"``.

        Raises:
            NotInSchemaError: a segment names no property of its section.
            AbsentError: a property or index along the path is not set.
            NotDownloadedError: the data is on the server but was not downloaded.
        """
        segments = _parse_path(path)
        if _fetcher_of(self) is not None:
            batch = _batch_of(self.m_root)
            if batch is not None:  # planned now, fetched with the block's other reads
                planned, blind = _planned(self, segments)
                if planned:
                    return batch.defer(planned, functools.partial(_get_segments, self, segments), blind=blind)
            _fetch_planned(self, segments)  # one request for the whole path, not one per level
        return _get_segments(self, segments)

    def prefetch(self, paths: Iterable[str]) -> int:
        """Fetch several not-yet-downloaded paths below this section in one request.

        Paths are dotted (``"calculation[3].energy"``) or slash paths relative to this
        section. Only archives from a client fetch anything; for others this is a no-op.

        Returns:
            The number of requests sent (0 or 1, plus one per list whose length had to be
            learned for a negative index or key).

        Raises:
            NotInSchemaError: a path leaves what the schema describes.
        """
        fetcher = _fetcher_of(self)
        if fetcher is None:
            return 0
        root = self.m_root
        base = tuple(str(s) for s in path_segments(self))
        before = fetcher.fetches
        planned = []
        for path in paths:
            segments = base + tuple(str(s) for s in parse_path(path))
            plan = _plan_path(root, segments)
            if plan is None:
                raise NotInSchemaError(f"cannot plan path {path!r}", path=self.m_path(), entry_id=self.m_entry_id)
            planned.append(plan)
        _download(root, planned)
        return int(fetcher.fetches - before)

    @overload
    def batch(self) -> contextlib.AbstractContextManager[None]: ...

    @overload
    def batch(self, reads: Callable[[], _T]) -> _T: ...

    def batch(self, reads: Callable[[], Any] | None = None) -> Any:
        """Turn many reads into one request.

        ``archive.batch(lambda: (calc.energy.total.value, calc.forces.total.value))`` runs the
        function twice: first to collect what it reads (placeholders, nothing sent), then,
        after one request for all of it, for real; it returns plain values. Side effects of
        the function happen twice.

        ``with archive.batch():`` does the same for a block, without running it twice: reading
        a quantity that was not downloaded (by attribute or ``m_get``) gives a placeholder, and
        the block's end fetches every such path in one request (so does using a placeholder
        earlier). Placeholders then behave as their values (``e.to("eV")``, ``repr``, numpy),
        except where Python looks at the object itself: ``is None``, ``type(x) is``,
        ``json.dumps``; use the function form for plain values. Archives that are not partial
        (files, ``"*"`` downloads) read as usual.
        """
        if reads is None:
            return self._batch_block()
        with self._batch_block():
            try:
                reads()  # collect: placeholders only
            except Exception:  # noqa: BLE001  the real run below raises it, with real values
                pass
        return reads()

    @contextlib.contextmanager
    def _batch_block(self) -> Iterator[None]:
        root = self.m_root
        active: dict[int, _Batch] | None = getattr(_BATCHES, "active", None)
        if active is None:
            active = _BATCHES.active = {}
        if id(root) in active or _fetcher_of(root) is None:
            yield
            return
        batch = active[id(root)] = _Batch(root)
        try:
            yield
        finally:
            del active[id(root)]
        batch.flush()

    # -- serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The archive JSON of this section: the loaded data, with assignments applied."""
        return section_to_dict(self)

    # -- display --------------------------------------------------------------------------
    def __repr__(self) -> str:
        path = self.m_path() if self._m_key is not None else ""
        return f"{type(self).__name__}({path})" if path else f"{type(self).__name__}()"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(_display().pretty(self))

    def _repr_html_(self) -> str:
        return _display().html(self)  # type: ignore[no-any-return]

    # -- pickling (helpers at the end of this module; design in archivemap.archive.runtime) --
    def __reduce_ex__(self, protocol: SupportsIndex) -> str | tuple[Any, ...]:
        return _reduce_section(self)


_parse_path_cached = functools.lru_cache(maxsize=4096)(parse_path)


def _parse_path(path: str) -> tuple[Segment, ...]:
    """:func:`~archivemap.paths.parse_path`, cached for strings (paths repeat; tuples are immutable)."""
    return _parse_path_cached(path) if type(path) is str else parse_path(path)


def _no_property(cls: type[Section], name: str) -> str:
    """"X has no property 'runn'; did you mean 'run'?": the message of a misspelt name.

    Only made when the error is raised (difflib over the class's NOMAD and attribute names).
    """
    text = str(name)
    if not text or text.startswith("_"):  # probes (IPython's _repr_*_, ...): no typo to help with
        return f"{cls.m_qualified_name} has no property {name!r}"
    # a typo keeps the first letter and about the length: that keeps difflib to a few of a
    # class's names (NOMAD 2.0's Run has 1,530), so code probing for attributes stays cheap
    size = len(text)
    names = [n for n in _names_by_initial(cls).get(text[0].lower(), ()) if abs(len(n) - size) <= 2]
    near = difflib.get_close_matches(text, names, n=3, cutoff=0.7)
    hint = f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""
    return f"{cls.m_qualified_name} has no property {name!r}{hint}"


def _names_by_initial(cls: type) -> dict[str, tuple[str, ...]]:
    """A class's NOMAD and attribute names by their first letter (for :func:`_no_property`);
    kept on the class, as its field tables are (metainfo/fields.py)."""
    found: dict[str, tuple[str, ...]] | None = cls.__dict__.get("_m_names_by_initial")
    if found is None:
        table: dict[str, list[str]] = {}
        for name in sorted({*fields_by_name(cls), *section_fields(cls)}):
            table.setdefault(name[:1].lower(), []).append(name)
        found = {initial: tuple(names) for initial, names in table.items()}
        type.__setattr__(cls, "_m_names_by_initial", found)
    return found


def _sub_sections_by_name(cls: type) -> dict[str, FieldMeta]:
    """The sub-section fields of a section class by NOMAD name (cached on the class as
    ``(owner, table)``: one attribute read, no mapping proxy, a subclass's own table)."""
    owned = getattr(cls, "_m_subs_owned", None)
    if owned is not None and owned[0] is cls:
        return owned[1]  # type: ignore[no-any-return]
    found = {name: fm for name, fm in fields_by_name(cls).items() if fm.kind == "sub_section"}
    type.__setattr__(cls, "_m_subs_owned", (cls, found))
    return found


def _display() -> ModuleType:
    # The library's one deferred import, sanctioned by the import contract: IPython calls
    # these hooks on any section, and the views sit above the archive layer (they consume
    # sections), so the archive layer cannot import them at module level.
    import archivemap.views.display as display

    return display


# Sections are written back through the converter like any other value (a cattrs hook, not
# a special case in the converter): a section assigned to a quantity of type JSON stays JSON.
converter.register_unstructure_hook(Section, lambda section: section.to_dict())


# ============================================================ reading storage (public, read-only)
def raw_data(section: Section) -> dict[str, Any] | None:
    """The raw JSON dict a loaded section wraps (``None`` for sections built in Python).

    Read-only by contract: the walkers of other layers (the reference graph) read it to avoid
    converting values they never show.
    """
    return section._m_data  # type: ignore[no-any-return]


def assigned(section: Section) -> frozenset[str]:
    """The attribute names assigned since loading (their raw JSON is stale)."""
    dirty = section._m_dirty
    return frozenset(dirty) if dirty else frozenset()


def built_value(section: Section, fm: FieldMeta) -> Any:
    """The converted value in ``fm``'s slot, or :data:`EMPTY` when it was never read."""
    try:
        return object.__getattribute__(section, fm.attribute)
    except AttributeError:
        return EMPTY


def path_segments(section: Section) -> Path:
    """The archive path of a section as names and indices: ``("run", 0, "system", 2)``."""
    parts: list[Any] = []
    node: Section | None = section
    while node is not None and node._m_key is not None:
        name, index = node._m_key
        if index is not None:
            parts.append(index)
        parts.append(name)
        node = node._m_parent
    return tuple(reversed(parts))


def _fetcher_of(section: Section) -> Fetcher | None:
    ctx = section._m_ctx
    return ctx.fetcher if ctx is not None else None


# ============================================================ loading one field
class _LazyPath:
    """An archive path computed only when a message needs it (paths cost O(depth))."""

    __slots__ = ("section", "name", "index")

    def __init__(self, section: Section, name: str, index: int | None = None) -> None:
        self.section, self.name, self.index = section, name, index

    def __str__(self) -> str:
        text = f"{self.section.m_path().rstrip('/')}/{self.name}"
        return text if self.index is None else f"{text}/{self.index}"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def _warn(path: object, message: str) -> None:
    warn_at_caller(f"{path}: {message}; kept as it was", SchemaMismatchWarning)


def _load_field(section: Section, fm: FieldMeta) -> Any:
    """Convert property ``fm`` of a loaded section from its raw JSON (first access)."""
    data = section._m_data
    if data is None:  # constructed, not loaded: attrs __init__ filled every slot
        return None if not (fm.kind == "sub_section" and fm.repeats) else []
    ctx: SectionContext | None = section._m_ctx
    if ctx is not None and ctx.recorder is not None and not _resolving():
        ctx.recorder.read(section, fm)  # what the analysis reads, not what a reference walks
    if fm.name not in data and ctx is not None and ctx.fetcher is not None:
        stand_in = _fetch_missing(section, fm, ctx, ctx.fetcher)
        if stand_in is not None:
            return stand_in
        data = section._m_data
    value = data.get(fm.name)
    if value is None:
        if fm.kind == "sub_section":
            return [] if fm.repeats else Absent(section, fm.name)
        if fm.default is not None and not fm.is_reference:
            default = list(fm.default) if isinstance(fm.default, tuple) else fm.default
            return load_value(default, fm, _LazyPath(section, fm.name))
        return None
    if fm.kind == "sub_section":
        return _load_sub_section(section, fm, value)
    if fm.is_reference:
        return _load_reference(section, fm, value)
    out = load_value(value, fm, _LazyPath(section, fm.name))
    if type(value) is list and ctx is not None and ctx.fetcher is None and ctx.owns_data:
        _keep_converted(data, fm.name, value, out)
    return out


def _keep_converted(data: dict[str, Any], name: str, raw: list[Any], value: Any) -> None:
    """Keep a float array once: the converted one stands in for its raw JSON list.

    A float64 array read from a list (of lists ...) of JSON floats writes back exactly that
    list (``tolist()``: same floats, same nesting), so the raw list is dropped and the array
    (the magnitude, in the definition's unit) takes its place in the raw dict: the lists of
    a 100 MB MD archive cost ~4x the array. Anything else (ints, ``null``, strings, other
    dtypes) keeps its raw JSON. :func:`_copy_json` writes such an array back as its list.
    """
    array = getattr(value, "magnitude", value)
    if type(array) is not np.ndarray or array.dtype != np.float64 or array.ndim == 0 or not array.size:
        return
    flat: Iterable[Any] = raw
    for _ in range(array.ndim - 1):
        flat = chain.from_iterable(flat)
    if set(map(type, flat)) == _FLOATS:
        data[name] = array


_FLOATS: Final = {float}
_set_slot: Final = object.__setattr__


def _wrap(
    obj: Section, data: dict[str, Any], parent: Section | None, ctx: SectionContext | None, key: tuple[str, int | None] | None
) -> None:
    """Fill the private slots of a section made by ``__new__`` around its raw JSON."""
    _set_slot(obj, "_m_data", data)
    _set_slot(obj, "_m_parent", parent)
    _set_slot(obj, "_m_ctx", ctx)
    _set_slot(obj, "_m_dirty", None)
    _set_slot(obj, "_m_key", key)


def _load_sub_section(section: Section, fm: FieldMeta, value: Any) -> Any:
    ctx = section._m_ctx
    path = _LazyPath(section, fm.name)
    if ctx is None:
        raise DefinitionError(f"{path}: section was loaded without a schema")
    declared = ctx.sub_section_class(type(section), fm)
    if fm.repeats:
        items: list[Any]
        if isinstance(value, dict):  # keyed form: {key: {..., m_parent_index}} (spec §2.1)
            if not all(isinstance(v, dict) for v in value.values()):
                _warn(path, "repeating sub-section is neither a list nor a dict of sections")
                return value
            items = [value[k] for k in keyed_order(value)]
        elif isinstance(value, list):
            items = value
        else:
            _warn(path, f"repeating sub-section holds a {type(value).__name__}")
            return value
        # the loop of every list of sections (a 100-step MD run: 100 calculations, systems,
        # tasks): an item without m_def is the declared class, asked of nobody, and each
        # section is made here as m_load makes it, without a call per item
        out: list[Any] = []
        append = out.append
        name = fm.name
        declared_new = declared.__new__
        for i, item in enumerate(items):
            if type(item) is dict and "m_def" not in item and "m_def_id" not in item:
                obj = declared_new(declared)
            elif isinstance(item, dict):
                cls = ctx.class_for_item(declared, item, _LazyPath(section, name, i))
                obj = cls.__new__(cls)
            else:
                if item is not None:
                    _warn(f"{path}/{i}", f"sub-section item is a {type(item).__name__}")
                append(item)
                continue
            _wrap(obj, item, section, ctx, (name, i))
            append(obj)
        if ctx.fetcher is not None:
            return PartialList(out, section, fm.name)
        return out
    if type(value) is dict and "m_def" not in value and "m_def_id" not in value:  # the declared class
        obj = declared.__new__(declared)
        _wrap(obj, value, section, ctx, (fm.name, None))
        return obj
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        value_dict = value[0]
        _warn(path, "single sub-section stored as a one-item list")
        return ctx.class_for_item(declared, value_dict, path).m_load(value_dict, section, (fm.name, None), ctx)
    if not isinstance(value, dict):
        _warn(path, f"sub-section holds a {type(value).__name__}")
        return value
    cls = ctx.class_for_item(declared, value, path)
    return cls.m_load(value, section, (fm.name, None), ctx)


# The reference quantities being resolved right now, per thread: a quantity reference whose
# target is (through other references) itself would otherwise recurse until RecursionError.
_RESOLVING = threading.local()


def _resolving() -> bool:
    """Whether this thread is inside a reference resolution right now."""
    return bool(getattr(_RESOLVING, "active", None))


def _load_reference(section: Section, fm: FieldMeta, value: Any) -> Any:
    active: set[tuple[int, str]] | None = getattr(_RESOLVING, "active", None)
    if active is None:
        active = _RESOLVING.active = set()
    key = (id(section), fm.name)
    if key in active:
        raise ReferenceCycleError(
            "following references leads back to this quantity",
            reference=value if isinstance(value, str) else None,
            source_path=str(_LazyPath(section, fm.name)),
            entry_id=section.m_entry_id,
        )
    active.add(key)
    try:
        resolved = _resolve_reference_value(section, fm, value)
    finally:
        active.discard(key)
    if type(resolved) is Pending:  # told to the recorder when it is settled
        return Pending(resolved._anchor, resolved._rel, resolved._cls, (section, fm, len(resolved._rel)))
    if type(resolved) is list and any(type(t) is Pending for t in resolved):
        resolved = [Pending(t._anchor, t._rel, t._cls, (section, fm, len(t._rel))) if type(t) is Pending else t
                    for t in resolved]
    ctx = section._m_ctx
    if ctx is not None and ctx.recorder is not None:
        for target in resolved if isinstance(resolved, list) else [resolved]:
            if isinstance(target, Section):
                ctx.recorder.reached(target, section, fm)
    return resolved


def _local_reference(section: Section, fm: FieldMeta) -> Any:
    """The section(s) a reference in this archive points to, or :data:`_MISS`.

    The common case, taken without the general machinery: a loaded archive with nothing to
    fetch or record, a reference (or list of them) into the same archive, and a walk that
    only steps through sub-sections. Stopping before any quantity's value is what makes
    the cycle check of :func:`_load_reference` unnecessary here: only a reference to a
    quantity can lead back to itself. Everything else (``_MISS``) takes the general path,
    which gives the same answer or the error.
    """
    data = section._m_data
    ctx = section._m_ctx
    if data is None or (ctx is not None and (ctx.recorder is not None or ctx.fetcher is not None)):
        return _MISS
    raw = data.get(fm.name)
    if type(raw) is str:
        parsed = parse_reference(raw)
        if parsed is None or not parsed.is_local:
            return _MISS
        root = section
        parent = section._m_parent
        while parent is not None:
            root = parent
            parent = parent._m_parent
        return _walk_fast(root, parsed.fragment, False)
    if type(raw) is not list or not raw:
        return _MISS
    root = section
    parent = section._m_parent
    while parent is not None:
        root = parent
        parent = parent._m_parent
    out = []
    for item in raw:
        parsed = parse_reference(item) if type(item) is str else None
        if parsed is None or not parsed.is_local:
            return _MISS
        target = _walk_fast(root, parsed.fragment, False)
        if target is _MISS:
            return _MISS
        out.append(target)
    return out


def _resolve_reference_value(section: Section, fm: FieldMeta, value: Any) -> Any:
    # where the reference sits is only spelled out when an error needs it (_LazyPath)
    if isinstance(value, list):
        out = []
        for i, v in enumerate(value):
            parsed = parse_reference(v) if isinstance(v, str) else None
            out.append(v if parsed is None else _resolve_parsed(section, v, parsed, _LazyPath(section, fm.name, i)))
        return out
    if isinstance(value, str):
        parsed = parse_reference(value)
        if parsed is None:  # e.g. dataset ids in metadata.datasets
            return value
        return _resolve_parsed(section, value, parsed, _LazyPath(section, fm.name))
    if isinstance(value, dict):  # resolve-inplace answers put the target itself here
        return value
    _warn(_LazyPath(section, fm.name), f"reference holds a {type(value).__name__}")
    return value


def keyed_order(items: dict[str, Any]) -> list[str]:
    """The keys of a keyed repeating sub-section (spec §2.1) in ``m_parent_index`` order.

    A missing or malformed index (a string, a float, ``true``) sorts after the well-formed
    ones, in the order written: data must not decide whether sorting crashes.
    """

    def position(key: str) -> tuple[int, int]:
        index = items[key].get("m_parent_index") if isinstance(items[key], dict) else None
        return (0, index) if type(index) is int else (1, 0)

    return sorted(items, key=position)


def _check_assignment(section: Section, fm: FieldMeta, value: Any) -> None:
    if fm.is_reference:
        items = value if isinstance(value, list) else [value]
        problem = None if all(isinstance(v, (str, Section)) for v in items) else (
            "a reference takes a section or a reference string"
        )
    else:
        problem = assignment_problem(value, fm)
    if problem is not None:
        try:  # while attrs' __init__ runs, the section has no place yet
            placed = object.__getattribute__(section, "_m_key") is not None
        except AttributeError:
            placed = False
        where = f"{section.m_path().rstrip('/')}/{fm.name}" if placed else fm.name
        raise AssignmentError(f"{type(section).__name__}.{fm.attribute} {problem}", path=where, name=fm.name)


# ============================================================ adoption
def _adopt(child: Section, parent: Section, name: str, index: int | None) -> None:
    object.__setattr__(child, "_m_parent", parent)
    object.__setattr__(child, "_m_key", (name, index))
    if child._m_ctx is None:
        object.__setattr__(child, "_m_ctx", parent._m_ctx)


def _adopt_value(parent: Section, fm: FieldMeta, value: Any) -> None:
    """Give a section (or the sections of a list) assigned to ``fm`` its parent and place."""
    if isinstance(value, Section):
        _adopt(value, parent, fm.name, None)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, Section):
                _adopt(item, parent, fm.name, i)


def _adopt_built(root: Section) -> None:
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
            if isinstance(value, Section):
                if value._m_parent is not node:
                    _adopt(value, node, fm.name, None)
                stack.append(value)
            elif isinstance(value, list):
                for i, item in enumerate(list.__iter__(value)):
                    if isinstance(item, Section):
                        if item._m_key != (fm.name, i) or item._m_parent is not node:
                            _adopt(item, node, fm.name, i)
                        stack.append(item)


# ============================================================ dumping
def dump_field(section: Section, fm: FieldMeta, value: Any) -> Any:
    """The JSON of a field's current Python value."""
    if value is None:
        return None
    if fm.kind == "sub_section":
        if isinstance(value, list):
            return [v.to_dict() if isinstance(v, Section) else v for v in value]
        return value.to_dict() if isinstance(value, Section) else value
    if fm.is_reference:
        def ref(v: Any) -> Any:
            if isinstance(v, Section):
                if v.m_root is section.m_root and (v._m_key is not None or v is section.m_root):
                    return "#" + v.m_path()
                entry = v.m_entry_id
                upload = v._m_ctx.upload_id if v._m_ctx else None
                if v._m_key is None and v._m_parent is None and not entry:
                    raise ArchiveDataError(
                        f"{fm.name!r} refers to a {type(v).__name__} that is not part of an archive "
                        "yet; assign it to a sub-section first"
                    )
                if entry is None or upload is None:
                    raise ArchiveDataError(
                        f"{fm.name!r} refers to a section of another archive whose entry or "
                        "upload id is unknown; load that archive with its metadata"
                    )
                return f"../uploads/{upload}/archive/{entry}#{v.m_path()}"
            return v
        return [ref(v) for v in value] if isinstance(value, list) else ref(value)
    return dump_value(value, fm)


def section_to_dict(section: Section) -> dict[str, Any]:
    """The section's JSON: raw data for untouched properties, dumped values for the rest.

    Sub-sections that were read are written from their objects (so edits deeper down show);
    the rest is the raw JSON, copied. Key order follows the raw data, new keys come last.
    Iterative: a child section is written into a placeholder dict taken from a work list.
    """
    _adopt_built(section.m_root)  # sections appended to lists since loading get their place
    root_out: dict[str, Any] = {}
    work: list[tuple[Section, dict[str, Any]]] = [(section, root_out)]
    while work:
        current, out = work.pop()
        _fill_dict(current, out, work)
    return root_out


def _child_out(
    value: Any, work: list[tuple[Section, dict[str, Any]]], parent: Section | None = None, name: str | None = None
) -> Any:
    if isinstance(value, Section):
        if parent is not None and value._m_parent is None and name is not None:
            _adopt(value, parent, name, None)  # e.g. appended to a list after loading
        placeholder: dict[str, Any] = {}
        work.append((value, placeholder))
        return placeholder
    if isinstance(value, list):
        out = []
        for i, v in enumerate(list.__iter__(value)):
            if isinstance(v, Section) and parent is not None and name is not None and v._m_key != (name, i):
                _adopt(v, parent, name, i)
            out.append(_child_out(v, work))
        return out
    return value


def _fill_dict(section: Section, out: dict[str, Any], work: list[tuple[Section, dict[str, Any]]]) -> None:
    fields = section_fields(type(section))
    data = section._m_data
    dirty = section._m_dirty or set()
    by_name = fields_by_name(type(section))
    if data is not None:
        for key, raw_value in data.items():
            fm = by_name.get(key)
            if fm is None or (fm.kind == "quantity" and fm.attribute not in dirty):
                out[key] = _copy_json(raw_value)
                continue
            try:
                current = object.__getattribute__(section, fm.attribute)
            except AttributeError:  # never read: raw is current
                out[key] = _copy_json(raw_value)
                continue
            if fm.kind == "sub_section":
                out[key] = (
                    _sub_sections_like(raw_value, current, work, section, fm.name)
                    if fm.attribute not in dirty
                    else _child_out(current, work, section, fm.name)
                )
            else:
                dumped = dump_field(section, fm, current)
                if dumped is not None:
                    out[key] = dumped
    for attr, fm in fields.items():
        if fm.name in out or (data is not None and attr not in dirty):
            continue
        try:
            current = object.__getattribute__(section, attr)
        except AttributeError:
            continue
        if current is None or (fm.kind == "sub_section" and isinstance(current, list) and not current):
            continue
        out[fm.name] = _child_out(current, work, section, fm.name) if fm.kind == "sub_section" else dump_field(section, fm, current)


def _sub_sections_like(
    raw: Any, current: Any, work: list[tuple[Section, dict[str, Any]]], parent: Section, name: str
) -> Any:
    """Write read sub-sections back in the form the raw data used (list or keyed dict)."""
    if raw is None and (current is None or (isinstance(current, list) and not list.__len__(current))):
        return None  # an explicit null stays null; an empty list would be a change
    if isinstance(raw, dict) and isinstance(current, list) and all(isinstance(v, dict) for v in raw.values()):
        keys = keyed_order(raw)
        items = list(list.__iter__(current))
        if len(keys) == len(items):
            return {k: _child_out(v, work) if isinstance(v, Section) else _copy_json(raw[k]) for k, v in zip(keys, items)}
    if isinstance(current, Section) and isinstance(raw, list):  # single stored as [one]
        return [_child_out(current, work, parent, name)]
    if isinstance(current, (list, Section)):
        return _child_out(current, work, parent, name)
    return _copy_json(raw)


def _copy_json(value: Any) -> Any:
    """A deep copy of JSON data, iterative so that deep nesting cannot overflow the stack.

    A float array that stands in for its raw list (:func:`_keep_converted`) is written as
    that list.
    """
    if not isinstance(value, (dict, list)):
        return value.tolist() if type(value) is np.ndarray else value
    root: Any = {} if isinstance(value, dict) else []
    stack: list[tuple[Any, Any]] = [(value, root)]
    while stack:
        src, dst = stack.pop()
        if isinstance(src, dict):
            for k, v in src.items():
                if isinstance(v, (dict, list)):
                    new: Any = {} if isinstance(v, dict) else []
                    dst[k] = new
                    stack.append((v, new))
                else:
                    dst[k] = v.tolist() if type(v) is np.ndarray else v
        else:
            for v in src:
                if isinstance(v, (dict, list)):
                    new = {} if isinstance(v, dict) else []
                    dst.append(new)
                    stack.append((v, new))
                else:
                    dst.append(v)
    return root


# ============================================================ the walker
def _item_key_values(item: Any, names: Sequence[str]) -> Iterator[Any]:
    """The values of the key quantities of one item (a section, a raw dict or ``None``)."""
    if isinstance(item, dict):
        data: Any = item
    elif isinstance(item, Section):
        data = item._m_data
        if data is None:  # built by the user: read the attributes
            by_name = fields_by_name(type(item))
            for name in names:
                fm = by_name.get(name)
                yield getattr(item, fm.attribute) if fm is not None else None
            return
    else:
        return
    for name in names:
        yield data.get(name)


def select_item(items: Any, selector: int | str, key_quantity: str | None) -> tuple[int, Any] | None:
    """The item of a repeating sub-section that ``selector`` names, with its position.

    The one rule for every walk (paths, reference fragments, the graph, remote planning): an
    ``int`` (or a string of digits, as in fragments) is an index, negative from the end; any
    other string is a key, matched against the sub-section's ``key_quantity`` (or the
    section's ``label_quantity``, both in ``FieldMeta.key_quantity``) and then ``name``
    (spec §3.1). Items may be sections, raw dicts or ``None`` (not downloaded).

    Returns:
        ``(position, item)``, or ``None`` when no item matches.
    """
    if isinstance(selector, str) and not isinstance(selector, Key) and _is_int(selector):
        selector = int(selector)
    if isinstance(selector, int):
        try:
            item = items[selector]  # no len() first: a partial list learns its length lazily
        except IndexError:
            return None
        return (selector if selector >= 0 else len(items) + selector), item
    names = [k for k in (key_quantity, "name") if k]
    for position, item in enumerate(items):
        if any(value == selector for value in _item_key_values(item, names)):
            return position, item
    return None


def _is_int(text: str) -> bool:
    body = text[1:] if text.startswith("-") else text
    return body.isdigit()


def get_path(section: Section, path: str) -> Any:
    """Read ``path`` below ``section`` (see :meth:`Section.m_get`), without fetching ahead.

    Raises:
        NotInSchemaError: a name that is no property of its section.
        AbsentError: an unset property or an index out of range.
        NotDownloadedError: data that exists on the server but was not downloaded.
    """
    return _get_segments(section, _parse_path(path))


def _get_segments(section: Section, segments: tuple[Segment, ...]) -> Any:
    if _fetcher_of(section) is None:
        found = _walk_fast(section, segments)
        if found is not _MISS:
            return found

    def fail(kind: str, segment: Segment, done: Sequence[Segment], why: str) -> Exception:
        where = format_path(tuple(done)) or "<root>"
        error = {_NOT_IN_SCHEMA: NotInSchemaError, _NOT_DOWNLOADED: NotDownloadedError}.get(kind, AbsentError)
        return error(why, path=where, entry_id=section.m_entry_id)

    return _walk(section, segments, fail)


# The kinds of missing the walker tells apart; each caller maps them to its own errors.
_NOT_IN_SCHEMA: Final = "not in schema"
_ABSENT: Final = "absent"
_NOT_DOWNLOADED: Final = "not downloaded"


def _walk(start: Section, segments: Sequence[Segment], fail: Any) -> Any:
    """The one walker: names through sections, selectors through repeating sub-sections,
    indices and keys into values.

    Segments are names (NOMAD or attribute names), ``int`` indices, :class:`Key` item keys,
    or, as in reference fragments, strings of digits (indices) and other strings after a
    repeating sub-section (keys). Iterative, so deep paths cannot exhaust the stack; path
    strings are only built when ``fail(kind, segment, done, why)`` makes an error.
    """
    node: Any = start
    items_of: FieldMeta | None = None  # set while node is the item list of a repeating field
    for i, seg in enumerate(segments):
        if items_of is not None:
            found = select_item(node, seg, items_of.key_quantity) if isinstance(node, list) else None
            if found is None:
                if isinstance(seg, int) or (not isinstance(seg, Key) and _is_int(seg)):
                    size = len(node) if isinstance(node, list) else 0
                    raise fail(_ABSENT, seg, segments[:i], f"index {int(seg)} out of range ({size} items)")
                keys = "/".join(k for k in (items_of.key_quantity, "name") if k)
                raise fail(_ABSENT, seg, segments[:i], f"no item with {keys} {seg!r}")
            if found[1] is None:
                if _fetcher_of(start) is not None:
                    raise fail(_NOT_DOWNLOADED, seg, segments[:i], f"item [{seg}] was not downloaded")
                raise fail(_ABSENT, seg, segments[:i], f"item [{seg}] is empty")
            node, items_of = found[1], None
            continue
        if isinstance(node, Section):
            if not isinstance(seg, str) or isinstance(seg, Key):
                raise fail(_ABSENT, seg, segments[:i], f"cannot index a section with [{seg}]")
            cls = type(node)
            fm = fields_by_name(cls).get(seg) or section_fields(cls).get(seg)
            if fm is None:
                extras = node.m_extras
                if seg not in extras:
                    raise fail(_NOT_IN_SCHEMA, seg, segments[:i], _no_property(cls, seg))
                node = extras[seg]
                continue
            value = getattr(node, fm.attribute)
            if type(value) is Pending or type(value) is PendingList:
                value = value.m_settle()
            if value is None or type(value) is Absent:
                there = f"; {node.m_path()}: {_what_is_there(node, fm.name)}" if fm.kind == "sub_section" else ""
                raise fail(_ABSENT, seg, segments[: i + 1], f"{seg!r} is not set{there}")
            node = value
            items_of = fm if fm.kind == "sub_section" and fm.repeats and isinstance(value, list) else None
            continue
        # inside a quantity value (array, list) or raw JSON: an index or a key
        try:
            if isinstance(node, dict):
                node = node[seg]
            elif isinstance(seg, int) or (isinstance(seg, str) and not isinstance(seg, Key) and _is_int(seg)):
                node = node[int(seg)]
            else:
                raise KeyError(seg)
        except (KeyError, IndexError, TypeError):
            raise fail(_ABSENT, seg, segments[:i], f"cannot index into the value with [{seg}]") from None
    return node


def resolve_reference(holder: Section, ref: str, source_path: object = None) -> Any:
    """Follow ``ref`` as written in section ``holder``; return the target section or value.

    ``source_path`` (where the reference is written, for errors) may be any object whose
    ``str()`` is that path: it is only turned into text when an error is raised.

    Raises:
        DanglingReferenceError: the target does not exist (names the failing segment).
        UnsupportedReferenceError: the target is in another archive and the archive was
            loaded without a source that can provide it.
    """
    parsed = parse_reference(ref)
    if parsed is None:
        raise DanglingReferenceError(
            "not a reference", reference=ref, source_path=_text(source_path), entry_id=holder.m_entry_id
        )
    return _resolve_parsed(holder, ref, parsed, source_path)


def _resolve_parsed(holder: Section, ref: str, parsed: ParsedReference, source_path: object) -> Any:
    root = holder
    parent = holder._m_parent
    while parent is not None:
        root = parent
        parent = parent._m_parent
    if not parsed.is_local:
        root = _other_root(holder, ref, parsed, source_path)
    segments: tuple[str, ...] = parsed.fragment
    ctx = root._m_ctx
    if ctx is None or ctx.fetcher is None:
        found = _walk_fast(root, segments)
        if found is not _MISS:
            return found
    else:
        # a partial archive: fetch exactly the target path, with absolute indices
        try:
            planned = _plan_path(root, segments)
        except AbsentError:
            planned = None  # the walk below reports it as a dangling reference
        if planned is not None:
            target_cls = _class_at(root, planned) if len(planned) == len(segments) else None
            if target_cls is not None and not _present(root._m_data, planned) and _fetcher_of(root).auto:  # type: ignore[union-attr]
                # a section not downloaded yet: fetched when something below it is read
                return Pending(root, planned, target_cls)
            _download_unless_present(root, planned)
            # one planned element per fragment segment; what is left indexes into a value
            segments = tuple(str(s) for s in planned) + segments[len(planned):]
    return resolve_fragment(root, segments, reference=ref, source_path=source_path)


def _other_root(holder: Section, ref: str, parsed: ParsedReference, source_path: object) -> Section:
    """The root a non-local reference walks from: this archive's when it names this entry."""
    ctx = holder._m_ctx
    target_id = parsed.target_entry_id(ctx.upload_id if ctx else None)
    same = ctx is not None and target_id is not None and target_id == ctx.entry_id
    if same and parsed.installation is None:
        root = holder
        while root._m_parent is not None:
            root = root._m_parent
        return root
    other = ctx.archive_for(parsed) if ctx is not None else None
    if other is None:
        raise UnsupportedReferenceError(
            "reference into another archive; load with a source (a folder of archives "
            "or archivemap.Client) to follow it",
            reference=ref,
            source_path=_text(source_path),
            entry_id=ctx.entry_id if ctx else None,
        )
    return other


def _text(path: object) -> str | None:
    return None if path is None else str(path)


_MISS: Final = object()


def _walk_fast(start: Section, segments: Sequence[Segment], into_values: bool = True) -> Any:
    """The common walk (names, then indices into repeating sub-sections, down to a set
    value), or :data:`_MISS`.

    No closures, no path strings: :data:`_MISS` hands anything unusual (keys, extras, values
    indexed into, unset properties, partial lists, errors) to :func:`_walk`, which gives the
    same answer or the error. Indices are ``int`` (dotted paths) or digit strings (fragments).
    One dict lookup per property (:func:`walk_steps`): every resolved reference comes here.
    """
    node: Any = start
    rest = iter(segments)
    for seg in rest:
        if type(seg) is not str or not isinstance(node, Section):
            return _MISS
        cls = type(node)
        cached = getattr(cls, "_m_walk_steps", None)
        steps = cached[1] if cached is not None and cached[0] is cls else walk_steps(cls)
        step = steps.get(seg)
        if step is None:
            return _MISS
        attribute, then = step
        if then == VALUE and not into_values:
            return _MISS
        value = getattr(node, attribute)  # an empty slot is converted now (__getattr__)
        if value is None or type(value) is Absent:  # (the other stand-ins need a fetcher:
            return _MISS  # they stop below, at a Pending node or a list that is not a list)
        if then == VALUE:
            return value if next(rest, _MISS) is _MISS else _MISS
        if then == ITEMS:
            if type(value) is not list:
                return _MISS
            selector = next(rest, _MISS)
            if selector is _MISS:
                return value
            if type(selector) is int:
                index = selector
            elif type(selector) is str and selector.isdigit():
                index = int(selector)
            else:
                return _MISS
            try:
                value = value[index]
            except IndexError:
                return _MISS
            if value is None:
                return _MISS
        node = value
    return node


def resolve_fragment(
    root: Section, segments: Sequence[str], reference: str | None = None, source_path: object = None
) -> Any:
    """Walk reference ``segments`` from ``root`` (the same walk as :func:`get_path`).

    Raises:
        DanglingReferenceError: a segment leads nowhere (it is named in the error).
    """

    def fail(kind: str, segment: Segment, done: Sequence[Segment], why: str) -> Exception:
        return DanglingReferenceError(
            why, reference=reference, source_path=_text(source_path), segment=str(segment), entry_id=root.m_entry_id
        )

    return _walk(root, tuple(segments), fail)


# ============================================================ partial archives (the fetch seam)
def _present_prefix(raw: Any, path: Path) -> int:
    """How many leading segments of ``path`` the raw data already has."""
    node = raw
    for i, seg in enumerate(path):
        if isinstance(seg, int):
            node = node[seg] if isinstance(node, list) and 0 <= seg < len(node) else None
        else:
            node = node.get(seg) if isinstance(node, dict) else None
        if node is None:
            return i
    return len(path)


def _present(raw: Any, path: Path) -> bool:
    """Whether the raw data holds something (not ``None``: "not loaded") at ``path``."""
    return value_at(raw, path) is not None


def _download(root: Section, paths: Sequence[Path], typed: bool = False, whole: bool = True) -> None:
    """Fetch ``paths`` of a partial archive in one request and merge the answer in.

    ``typed``: the sections along each path that the raw data does not have yet come with
    their ``m_def`` (paths planned from the classes, not walked through the data).
    """
    ctx = root._m_ctx
    fetcher = ctx.fetcher if ctx is not None else None
    if fetcher is None:
        return
    with ctx.lock:
        wanted = [
            tuple(p)
            for p in paths
            if not fetcher.is_downloaded(tuple(p)) and (whole or not fetcher.was_asked(tuple(p)))
        ]
        if not wanted:
            return
        known = [_present_prefix(root._m_data, p) for p in wanted] if typed else None
        partial = fetcher.download(wanted, known, whole)
        if partial is not None:
            merge_partial(root._m_data, partial)
        for path in wanted:
            _patch_built_sections(root, path)


def _download_unless_present(root: Section, path: Path) -> None:
    # A target the server already placed (e.g. from m_ref_archives) is used as it is; its
    # missing properties are fetched one by one when read.
    fetcher = _fetcher_of(root)
    if fetcher is not None and not fetcher.is_downloaded(path) and not _present(root._m_data, path):
        _download(root, [path])


def _fetch_missing(section: Section, fm: FieldMeta, ctx: SectionContext, fetcher: Fetcher) -> Any:
    """A property absent from a partial archive's raw data: learn or fetch it.

    Returns what to hand out instead of reading the raw data: a :class:`Pending` for a
    single sub-section (nothing is fetched until a quantity below it is read), a
    placeholder inside a batch; ``None`` when the raw data is now the answer.
    """
    path = path_segments(section) + (fm.name,)
    if fetcher.is_downloaded(path) or fetcher.was_asked(path):
        return None  # the answer that asked for it had none: absent
    if fm.kind != "sub_section":
        through = _through_reference(section, fm) if fetcher.auto else None
        if through is not None:  # the reference and what is read below it: one request
            return Pending(section, (fm.name,), through)
        root = section.m_root
        batch = _batch_of(root)
        if batch is not None:
            return batch.defer(path, functools.partial(getattr, section, fm.attribute))
        _download(root, [path])
        return None
    if fetcher.auto:
        declared = ctx.sub_section_class(type(section), fm)
        return PendingList(section, fm, declared) if fm.repeats else Pending(section, (fm.name,), declared)
    _download(section.m_root, [path])  # fetching is off: NotDownloadedError, naming the path
    return None


def _list_items(root: Section, list_path: Path, keys: Sequence[str]) -> list[Any]:
    """The items of a remote repeating sub-section (keys only); pads the raw list to length."""
    ctx = root._m_ctx
    fetcher = ctx.fetcher if ctx is not None else None
    if fetcher is None:
        return []
    with ctx.lock:
        items = fetcher.list_items(list_path, keys)
        _pad_raw_list(root, list_path, len(items))
        return items


def _pad_raw_list(root: Section, list_path: Path, length: int) -> None:
    """Make the raw list at ``list_path`` at least ``length`` long (``None``: not loaded).

    A list with items proves its parents exist: those missing from the raw data are made
    (empty sections, whose properties come when read), so the length is learned once.
    """
    if length and value_at(root._m_data, list_path[:-1]) is None:
        merge_partial(root._m_data, _skeleton(list_path[:-1]))
    if not pad_list(root._m_data, list_path, length):
        return
    _patch_built_sections(root, list_path)


def _skeleton(path: Path) -> dict[str, Any]:
    """``("run", 0, "calculation", 2)`` -> ``{"run": [{"calculation": [None, None, {}]}]}``."""
    node: Any = {}
    for seg in reversed(path):
        node = [None] * seg + [node] if isinstance(seg, int) else {seg: node}
    return node  # type: ignore[no-any-return]


def _patch_built_sections(root: Section, path: Path) -> None:
    """After a merge: give already-built lists and empty single slots their new items."""
    node: Section = root
    i = 0
    while i < len(path):
        seg = path[i]
        fm = fields_by_name(type(node)).get(seg) if isinstance(seg, str) else None
        if fm is None or fm.kind != "sub_section":
            return
        raw = node._m_data.get(fm.name) if node._m_data is not None else None
        try:
            built = object.__getattribute__(node, fm.attribute)
        except AttributeError:
            return  # not built yet: it will be built from the merged raw data
        ctx = node._m_ctx
        if fm.repeats:
            if not isinstance(built, list) or not isinstance(raw, list):
                if isinstance(raw, list):
                    object.__delattr__(node, fm.attribute)
                return
            size = list.__len__(built)
            if size < len(raw):
                list.extend(built, [None] * (len(raw) - size))
            declared = ctx.sub_section_class(type(node), fm) if ctx is not None else None
            for j, item in enumerate(raw):
                if list.__getitem__(built, j) is None and isinstance(item, dict) and declared is not None:
                    cls = ctx.class_for_item(declared, item, f"{node.m_path()}/{fm.name}/{j}")  # type: ignore[union-attr]
                    list.__setitem__(built, j, cls.m_load(item, node, (fm.name, j), ctx))
            if i + 1 >= len(path) or not isinstance(path[i + 1], int):
                return
            nxt = list.__getitem__(built, path[i + 1]) if path[i + 1] < list.__len__(built) else None
            if not isinstance(nxt, Section):
                return
            node = nxt
            i += 2
        else:
            if built is None and isinstance(raw, dict):
                object.__delattr__(node, fm.attribute)
                return
            if not isinstance(built, Section):
                return
            node = built
            i += 1


def _plan_path(root: Section, segments: Sequence[str]) -> Path | None:
    """Plan a fragment as a path of names and absolute indices, for one fetch.

    Walks the *classes* (not the data) to know which names are repeating sub-sections; a
    negative index or a key segment is turned into an absolute index with one listing
    request. Returns ``None`` when the fragment leaves what the classes describe (then the
    caller walks step by step).

    Raises:
        AbsentError: a negative index or key that selects no item.
    """
    ctx = root._m_ctx
    fetcher = ctx.fetcher if ctx is not None else None
    if ctx is None or fetcher is None:
        return None
    cls: type[Section] = type(root)
    out: list[Any] = []
    i = 0
    while i < len(segments):
        seg = segments[i]
        fm = fields_by_name(cls).get(seg)
        if fm is None:
            return None
        out.append(fm.name)
        if fm.kind == "quantity":
            return tuple(out)  # further segments index into the value
        if fm.repeats:
            if i + 1 >= len(segments):
                return tuple(out)
            selector = segments[i + 1]
            if selector.isdigit():
                out.append(int(selector))
            else:
                keys = [k for k in (fm.key_quantity, "name") if k]
                by_index = _is_int(selector)
                list_path = tuple(out)
                known = value_at(root._m_data, list_path)
                if isinstance(known, list) and (
                    fetcher.is_downloaded(list_path) or (by_index and fetcher.is_complete_list(list_path))
                ):
                    # the list is here in full (a covering answer): its length, and the keys
                    # of downloaded items, need no request
                    items = known
                else:
                    items = _list_items(root, list_path, [] if by_index else keys)
                    if by_index:
                        fetcher.mark_complete_list(list_path)
                found = select_item(items, selector, fm.key_quantity)
                if found is None:
                    raise AbsentError(
                        f"no item [{selector}] in {len(items)} items", path="/" + "/".join(map(str, out)),
                        entry_id=ctx.entry_id,
                    )
                out.append(found[0])
            i += 2
        else:
            i += 1
        cls = ctx.sub_section_class(cls, fm)
    return tuple(out)


def _class_at(root: Section, path: Path) -> type[Section] | None:
    """The class the schema declares for the section at ``path``; ``None`` for a quantity."""
    ctx = root._m_ctx
    cls: type[Section] = type(root)
    for seg in path:
        if isinstance(seg, int):
            continue
        fm = fields_by_name(cls).get(seg)
        if fm is None or fm.kind != "sub_section" or ctx is None:
            return None
        cls = ctx.sub_section_class(cls, fm)
    return cls


def _planned(section: Section, segments: tuple[Segment, ...]) -> tuple[Path | None, bool]:
    """A path below ``section`` planned for one request (absolute indices), and whether it
    was planned by names alone; ``(None, False)`` when it cannot be (the walk then reports
    why, one step at a time)."""
    full = tuple(str(s) for s in path_segments(section)) + tuple(str(s) for s in segments)
    try:
        planned = _plan_path(section.m_root, full)
    except AbsentError:
        return None, False
    if planned is not None:
        return planned, False
    blind = _by_names(path_segments(section) + tuple(segments))
    return blind, blind is not None


def _by_names(segments: Sequence[Any]) -> Path | None:
    """A path as ``required`` reads it, without the classes: names, and digits as indices.

    When the declared classes cannot plan a path (a ``workflow2`` declared as ``Workflow`` is
    a ``GeometryOptimization``; a reference leads on), the server can: it reads names against
    each section's real definition and follows references. ``None`` for negative indices and
    keys, which need the list first.
    """
    out: list[Any] = []
    for seg in segments:
        if isinstance(seg, Key):
            return None
        text = str(seg)
        if text.isdigit() and out and isinstance(out[-1], str):
            out.append(int(text))
        elif text.isidentifier():
            out.append(text)
        else:
            return None
    return tuple(out)


def _fetch_planned(section: Section, segments: tuple[Segment, ...]) -> None:
    """Fetch a whole path below ``section`` in one request before walking it."""
    planned, blind = _planned(section, segments)
    if not planned:
        return
    root = section.m_root
    try:
        if blind:  # the classes on the way are not known: each section comes with its m_def
            if not _present(root._m_data, planned):
                _download(root, [planned], typed=True)
        else:
            _download_unless_present(root, planned)
    except HTTPStatusError:
        if not blind:
            raise  # a path planned by names the server refuses: walked step by step instead


class PartialList(list):  # type: ignore[type-arg]
    """The items of a repeating sub-section of a partially downloaded archive.

    ``None`` items were not downloaded; reading one fetches it. ``len()``, negative indices
    and iteration first learn the real length (one small request) when the list itself was
    never downloaded whole.
    """

    __slots__ = ("_owner", "_name")

    def __init__(self, items: Iterable[Any], owner: Section, name: str) -> None:
        super().__init__(items)
        self._owner = owner
        self._name = name

    def __reduce__(self) -> Any:
        # pickled as its owner and name: the list of the owner in the unpickled archive
        return (_rebuild_partial_list, (self._owner, self._name))

    def _path(self) -> Path:
        return path_segments(self._owner) + (self._name,)

    def _ensure_complete(self) -> None:
        fetcher = _fetcher_of(self._owner)
        if fetcher is None:
            return
        path = self._path()
        if fetcher.is_downloaded(path) or fetcher.is_complete_list(path):
            return
        _list_items(self._owner.m_root, path, [])
        fetcher.mark_complete_list(path)

    def _known_length(self, fetcher: Fetcher) -> bool:
        path = self._path()
        return fetcher.is_downloaded(path) or fetcher.is_complete_list(path)

    def _record(self, index: int | None = None) -> None:
        ctx = self._owner._m_ctx
        if ctx is not None and ctx.recorder is not None and not _resolving():
            if index is None:
                ctx.recorder.iterated(self._owner, self._name)
            else:
                ctx.recorder.indexed(self._owner, self._name, index)

    def __len__(self) -> int:
        self._record()
        self._ensure_complete()
        return super().__len__()

    def __iter__(self) -> Iterator[Any]:
        self._record()
        self._ensure_complete()
        missing = [i for i in range(list.__len__(self)) if list.__getitem__(self, i) is None]
        if missing:  # one request for what the items not loaded yet are (their m_def)
            base = self._path()
            _download(self._owner.m_root, [base + (i,) for i in missing], typed=True, whole=False)
        for i in range(super().__len__()):
            yield super().__getitem__(i)

    def __getitem__(self, index: Any) -> Any:
        self._record(index if isinstance(index, int) else None)
        if isinstance(index, slice):
            self._ensure_complete()
            wanted = range(*index.indices(super().__len__()))
            missing = [i for i in wanted if list.__getitem__(self, i) is None]
            if missing:
                _download(self._owner.m_root, [self._path() + (i,) for i in missing], typed=True, whole=False)
            return [list.__getitem__(self, i) for i in wanted]
        fetcher = _fetcher_of(self._owner)
        if index >= super().__len__() and fetcher is not None and fetcher.auto and not self._known_length(fetcher):
            item = None  # past what is here: planned like any item not loaded (its read tells)
        else:
            if index < 0 or index >= super().__len__():
                self._ensure_complete()
            if not -super().__len__() <= index < super().__len__():
                raise AbsentItemError(
                    f"no item [{index}] in {super().__len__()} items",
                    path=f"{self._owner.m_path().rstrip('/')}/{self._name}", entry_id=self._owner.m_entry_id,
                )
            item = super().__getitem__(index)
        if item is None and fetcher is not None:
            absolute = index if index >= 0 else super().__len__() + index
            ctx = self._owner._m_ctx
            fm = fields_by_name(type(self._owner)).get(self._name)
            if fetcher.auto and ctx is not None and fm is not None:  # planned, not fetched
                return Pending(self._owner, (self._name, absolute), ctx.sub_section_class(type(self._owner), fm))
            _download(self._owner.m_root, [self._path() + (absolute,)])
            item = super().__getitem__(index)
        return item


# ============================================================ stand-ins: absent and not-yet-downloaded sections
def _absent_error(holder: Section, name: str, doing: str) -> AbsentSectionError:
    """The error for reading through ``holder.name``, an unset single sub-section.

    Says which path of which entry is absent, what the reader tried, and what *is* set next
    to it (the keys of the holder's data), so a scientist sees at once that, say, FHI-aims'
    referenced calculation has ``energy`` but no ``energy.total``.
    """
    where = holder.m_path()
    return AbsentSectionError(
        f"{name!r} is not set in {where}, so {doing}; {_what_is_there(holder, name)}",
        path=f"{where.rstrip('/')}/{name}",
        entry_id=holder.m_entry_id,
    )


def _what_is_there(holder: Section, name: str) -> str:
    """``"what it has: fermi, total"``: the set properties next to an absent one."""
    present = sorted({fm.name for fm in holder.m_set_fields()} - {name})
    listed = ", ".join(present[:12]) + (f", … ({len(present)} in all)" if len(present) > 12 else "")
    has = "what was downloaded of it" if _fetcher_of(holder) is not None else "what it has"
    return f"{has}: {listed or 'nothing'}"


class Absent:
    """What reading an unset single sub-section of a loaded archive gives.

    ``calc.energy`` of a calculation without energy: falsy and equal to ``None`` (so ``if not
    calc.energy`` and ``calc.energy == None`` read as before), but reading *through* it,
    ``calc.energy.total``, raises :class:`~archivemap.errors.AbsentSectionError` naming the
    absent path, the entry and what is set next to it, instead of Python's
    ``'NoneType' object has no attribute 'total'``. ``calc.energy is None`` is ``False``: test
    with ``not calc.energy`` (or ``calc.m_is_set("energy")``).

    Sections built in Python (``Calculation()``) keep plain ``None`` in unset slots.
    """

    __slots__ = ("_holder", "_name")

    def __init__(self, holder: Section, name: str) -> None:
        object.__setattr__(self, "_holder", holder)
        object.__setattr__(self, "_name", name)

    def __bool__(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        if other is None:
            return True
        return type(other) is Absent and other._holder is self._holder and other._name == self._name

    def __hash__(self) -> int:
        return hash(None)

    def __repr__(self) -> str:
        return f"Absent({self.m_path()!r})"

    def __dir__(self) -> list[str]:
        return ["m_path"]

    def m_path(self) -> str:
        """The archive path that is not set, e.g. ``/run/0/calculation/3/energy``."""
        return f"{self._holder.m_path().rstrip('/')}/{self._name}"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # IPython's and copy's probes are not reads of the archive
            raise AttributeError(name)
        cls = self._declared()
        if cls is not None and name not in section_fields(cls) and name not in fields_by_name(cls):
            if not hasattr(cls, name):  # a typo stays a typo, absent section or not
                raise NotInSchemaError(
                    _no_property(cls, name), path=self.m_path(),
                    entry_id=self._holder.m_entry_id,
                )
            raise _absent_error(self._holder, self._name, f".{name}() cannot be called")
        raise _absent_error(self._holder, self._name, f".{name} cannot be read")

    def _declared(self) -> type[Section] | None:
        """The class the schema declares for the absent sub-section."""
        ctx = self._holder._m_ctx
        fm = fields_by_name(type(self._holder)).get(self._name)
        if ctx is None or fm is None:
            return None
        if fm.kind != "sub_section":  # an unset reference on a planned path
            return ctx.reference_class(fm)
        return ctx.sub_section_class(type(self._holder), fm)

    def __setattr__(self, name: str, value: Any) -> None:
        raise _absent_error(
            self._holder, self._name, f".{name} cannot be assigned (assign a new section to .{self._name} first)"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_absent, (self._holder, self._name))


def _rebuild_absent(holder: Section, name: str) -> Any:
    return getattr(holder, name)


class Pending:
    """A single sub-section of a partial archive that was not downloaded: a planned path.

    Reading ``calc.energy.total.value`` where ``energy`` was never downloaded sends no request
    for ``energy`` or ``total``: each step extends the path, and reading the quantity fetches
    exactly that path in one request (every section along it with its ``m_def``, so it gets
    its real class). Anything else — a repeating sub-section, a method, display, a name only a
    derived class has — first learns the section itself (one small request: its ``m_def``)
    and then behaves as the section. A path the archive does not have ends in
    :class:`~archivemap.errors.AbsentSectionError`, as with :class:`Absent`.
    """

    __slots__ = ("_anchor", "_rel", "_cls", "_via")

    def __init__(
        self, anchor: Section, rel: Path, cls: type[Section], via: tuple[Section, FieldMeta, int] | None = None
    ) -> None:
        object.__setattr__(self, "_anchor", anchor)  # a downloaded section: where the path starts
        object.__setattr__(self, "_rel", rel)  # names and absolute indices below it
        object.__setattr__(self, "_cls", cls)  # the class the schema declares there
        # the reference (holder, field) that led here, and how many steps of rel it spans
        object.__setattr__(self, "_via", via)

    @property
    def m_entry_id(self) -> str | None:
        """The entry id of the archive the section belongs to (no request)."""
        return self._anchor.m_entry_id

    def m_path(self) -> str:
        """The archive path of the section (no request)."""
        return "/" + "/".join(map(str, self._full_path()))

    def _full_path(self) -> Path:
        return path_segments(self._anchor) + self._rel

    def __repr__(self) -> str:
        return f"{self._cls.__name__}({self.m_path()}, not downloaded yet)"

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self._cls)) | set(section_fields(self._cls)))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        fm = section_fields(self._cls).get(name)
        if fm is not None and fm.kind == "sub_section" and not fm.repeats:
            ctx = self._anchor._m_ctx
            declared = ctx.sub_section_class(self._cls, fm) if ctx is not None else Section
            return Pending(self._anchor, self._rel + (fm.name,), declared, self._via)
        if fm is not None and fm.kind == "sub_section":
            ctx = self._anchor._m_ctx
            return PendingList(self, fm, ctx.sub_section_class(self._cls, fm) if ctx is not None else Section)
        if fm is not None and fm.kind == "quantity":
            through = _through_reference(self._anchor, fm)
            if through is not None:  # followed on the server, with what is read below it
                return Pending(self._anchor, self._rel + (fm.name,), through, self._via)
            root = self._anchor.m_root
            path = self._full_path() + (fm.name,)
            batch = _batch_of(root)
            if batch is not None:
                return batch.defer(path, functools.partial(_read_through, self, fm), (self, fm))
            _download(root, [path], typed=True)
            return _read_through(self, fm)
        if name.startswith("_") and not hasattr(self._cls, name):
            raise AttributeError(name)  # IPython's probes: no request
        return getattr(self.m_settle(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.m_settle(), name, value)

    def __bool__(self) -> bool:
        return bool(self.m_settle())

    def __eq__(self, other: object) -> bool:
        return bool(self.m_settle() == other)

    def __hash__(self) -> int:
        return hash(self._full_path())

    def _repr_html_(self) -> Any:
        target = self.m_settle()
        return target._repr_html_() if isinstance(target, Section) else repr(target)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        target = self.m_settle()
        if isinstance(target, Section):
            target._repr_pretty_(p, cycle)
        else:
            p.text(repr(target))

    def __reduce__(self) -> tuple[Any, ...]:
        return (Pending, (self._anchor, self._rel, self._cls, self._via))

    def to_dict(self) -> dict[str, Any]:
        """The section's archive JSON: downloaded whole first (one request), as exporting
        a section means all of it; ``{}`` when the archive does not have it."""
        root = self._anchor.m_root
        _download(root, [self._full_path()], typed=True)
        target = self.m_settle()
        return target.to_dict() if isinstance(target, Section) else {}

    def m_settle(self) -> Section | Absent:
        """The section this stands for (one request when not downloaded), or :class:`Absent`."""
        root = self._anchor.m_root
        path = self._full_path()
        fetcher = _fetcher_of(root)
        if fetcher is not None and not _present(root._m_data, path) and not fetcher.was_asked(path):
            _download(root, [path], typed=True, whole=False)
        target = _walk_down(self)
        return target.m_settle() if type(target) is Pending else target  # type: ignore[return-value]


class PendingList:
    """A repeating sub-section of a partial archive that was not downloaded: a planned path.

    ``archive.run[0].calculation[3]`` (non-negative indices) only extends the path, as
    :class:`Pending` does; ``len()``, iteration, negative indices, slices and keys first learn
    the list (one request: every item's ``m_def``) and then behave as the list.
    """

    __slots__ = ("_owner", "_fm", "_cls")

    def __init__(self, owner: Section | Pending, fm: FieldMeta, cls: type[Section]) -> None:
        self._owner = owner  # the section holding the list (downloaded or pending)
        self._fm = fm
        self._cls = cls  # the class the schema declares for the items

    def _full_path(self) -> Path:
        owner = self._owner
        base = owner._full_path() if isinstance(owner, Pending) else path_segments(owner)
        return base + (self._fm.name,)

    def __repr__(self) -> str:
        return f"[{self._cls.__name__}(/{'/'.join(map(str, self._full_path()))}/...), not downloaded yet]"

    def __getitem__(self, index: Any) -> Any:
        if type(index) is int and index >= 0:
            owner = self._owner
            if type(owner) is Pending:
                return Pending(owner._anchor, owner._rel + (self._fm.name, index), self._cls, owner._via)
            return Pending(owner, (self._fm.name, index), self._cls)  # type: ignore[arg-type]
        return self.m_settle()[index]

    def __len__(self) -> int:
        return len(self.m_settle())

    def __iter__(self) -> Iterator[Any]:
        return iter(self.m_settle())

    def __bool__(self) -> bool:
        return bool(self.m_settle())

    def __eq__(self, other: object) -> bool:
        return bool(self.m_settle() == other)

    __hash__ = None  # type: ignore[assignment]  # a list

    def __reduce__(self) -> tuple[Any, ...]:
        return (PendingList, (self._owner, self._fm, self._cls))

    def m_settle(self) -> list[Any]:
        """The list this stands for (one request when not downloaded)."""
        owner = self._owner
        root = owner._anchor.m_root if isinstance(owner, Pending) else owner.m_root
        path = self._full_path()
        fetcher = _fetcher_of(root)
        if fetcher is not None and not _present(root._m_data, path) and not fetcher.was_asked(path):
            _download(root, [path], typed=True, whole=False)
            if isinstance(value_at(root._m_data, path), list):
                fetcher.mark_complete_list(path)  # every item came, with its m_def
        holder = owner.m_settle() if isinstance(owner, Pending) else owner
        if type(holder) is Absent:
            raise _absent_error(holder._holder, holder._name, f"{self._fm.name!r} below it cannot be read")
        return getattr(holder, self._fm.attribute)  # type: ignore[no-any-return]


def _through_reference(section: Section, fm: FieldMeta) -> type[Section] | None:
    """The target class when reading through reference ``fm`` can be planned as a path.

    One reference to a specific section class (not a list of them, not a quantity
    reference, not a generic ``ArchiveSection``): NOMAD follows it when ``required`` goes on
    below it, and places the target where it lives.
    """
    if fm.type_kind != "reference" or fm.shape:
        return None
    ctx = section._m_ctx
    return ctx.reference_class(fm) if ctx is not None else None


def _walk_down(pending: Pending) -> Section | Absent | Pending:
    """Walk a pending path through the data that is now here (no request of its own).

    Returns the section, :class:`Absent`, or — when a reference on the way led to a target
    the answer did not place (NOMAD loses a placed target inside a list the same spec
    selects by index) — a :class:`Pending` for the rest of the path below that target.
    """
    node: Any = pending._anchor
    via = pending._via
    # the steps a reference spans are its resolution, not reads of the analysis (recorder)
    quiet = via[2] if via is not None else 0
    for i, seg in enumerate(pending._rel):
        holder = node
        if i < quiet:
            with _resolution():
                node = _step_down(pending, node, seg)
        else:
            node = _step_down(pending, node, seg)
        if type(node) is Absent:
            return node
        if node is None and isinstance(holder, Section):  # an unset reference on the way
            return Absent(holder, seg)
        if type(node) is Pending:  # a reference's target that is not here: the rest from there
            rest = pending._rel[i + 1 :]
            return Pending(node._anchor, node._rel + rest, pending._cls, node._via)
        if via is not None and i + 1 == quiet and isinstance(node, Section):
            ctx = via[0]._m_ctx
            if ctx is not None and ctx.recorder is not None:
                ctx.recorder.reached(node, via[0], via[1])
    return node  # type: ignore[no-any-return]


def _step_down(pending: Pending, node: Any, seg: Any) -> Any:
    if type(node) is PendingList or type(node) is Pending:  # not here yet: learn it first
        node = node.m_settle()
    if isinstance(seg, int):
        if not isinstance(node, list) or not 0 <= seg < list.__len__(node):
            raise AbsentItemError(f"no item [{seg}]", path=pending.m_path(), entry_id=pending._anchor.m_entry_id)
        return node[seg]
    fm = fields_by_name(type(node)).get(seg)
    if fm is None:
        raise NotInSchemaError(_no_property(type(node), seg), path=node.m_path())
    data = node._m_data
    if fm.is_reference and data is not None and fm.name not in data:
        # asked for through the reference, and not in the answer: unset, or a server that
        # does not follow references; the reference itself, asked for plainly, tells which
        fetcher = _fetcher_of(node)
        path = path_segments(node) + (fm.name,)
        if fetcher is not None and not fetcher.is_downloaded(path):
            _download(node.m_root, [path])
    return getattr(node, fm.attribute)


@contextlib.contextmanager
def _resolution() -> Iterator[None]:
    """Mark this thread as resolving a reference (reads inside are not recorded)."""
    active: set[Any] | None = getattr(_RESOLVING, "active", None)
    if active is None:
        active = _RESOLVING.active = set()
    marker = object()
    active.add(marker)
    try:
        yield
    finally:
        active.discard(marker)


def _read_through(pending: Pending, fm: FieldMeta) -> Any:
    """Read quantity ``fm`` of the section a pending path stands for (after its download)."""
    target = _walk_down(pending)
    if type(target) is Pending:  # below a reference target that still has to be fetched
        return getattr(target, fm.attribute)
    if type(target) is Absent:
        raise _absent_error(target._holder, target._name, f"{fm.name!r} below it cannot be read")
    return getattr(target, fm.attribute)


# ------------------------------------------------------------ batches: many reads, one request
_BATCHES = threading.local()


class Placeholder(lazy_object_proxy.Proxy):  # type: ignore[misc]
    """A value read inside ``with archive.batch():``, fetched with the block's other reads.

    A transparent proxy (lazy-object-proxy) that shows and converts as its value: ``repr``
    is the value's, numpy sees the value's array.
    """

    def __repr__(self) -> str:
        return repr(self.__wrapped__)

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        return np.asarray(self.__wrapped__, *args, **kwargs)


class _Batch:
    """The reads collected inside one ``with archive.batch():`` block."""

    def __init__(self, root: Section) -> None:
        self.root = root
        self.paths: list[Path] = []
        self.blind: list[Path] = []  # planned by names alone: the server may refuse them
        self.through: list[tuple[Pending, FieldMeta]] = []  # reads below pending paths

    def defer(
        self, path: Path, read: Any, below: tuple[Pending, FieldMeta] | None = None, blind: bool = False
    ) -> Any:
        """Remember ``path``; hand out a placeholder that reads the value once it is here."""
        (self.blind if blind else self.paths).append(path)
        if below is not None:
            self.through.append(below)

        def value() -> Any:
            self.flush()
            return read()

        return Placeholder(value)

    def flush(self) -> None:
        """One request for every path collected so far (and one more per level of references
        whose targets the answer did not place)."""
        paths, self.paths = self.paths, []
        blind, self.blind = self.blind, []
        through, self.through = self.through, []
        try:
            _download(self.root, paths + blind, typed=True)
        except HTTPStatusError:
            if not blind:
                raise
            # a path by names the server refuses: the others now, it step by step when read
            _download(self.root, paths, typed=True)
        asked: set[tuple[int, Path]] = set()
        while through:  # targets of references the answers did not place: one more round
            rounds: dict[int, tuple[Section, list[Path]]] = {}
            rest = []
            for pending, fm in through:
                try:
                    target = _walk_down(pending)
                except (ArchivemapError, LookupError):
                    continue  # that read raises it itself, when it is used
                if type(target) is not Pending:
                    continue
                root = target._anchor.m_root  # the target's own archive (another entry too)
                path = target._full_path() + (fm.name,)
                if (id(root), path) in asked:
                    continue  # asked already and still not there: the read tells why
                asked.add((id(root), path))
                rounds.setdefault(id(root), (root, []))[1].append(path)
                rest.append((target, fm))
            for root, wanted in rounds.values():
                _download(root, wanted, typed=True)
            through = rest


def _batch_of(root: Section) -> _Batch | None:
    active: dict[int, _Batch] | None = getattr(_BATCHES, "active", None)
    return active.get(id(root)) if active else None


#: What reading a property may hand out instead of its value (never kept in a slot).
_STAND_INS: Final = (Absent, Pending, PendingList, Placeholder)


# ============================================================ pickling (see archivemap.archive.runtime)
_PRIVATE_SLOTS: Final = ("_m_data", "_m_parent", "_m_key", "_m_ctx", "_m_dirty")


def _reduce_section(section: Section) -> tuple[Any, ...]:
    """A section of a loaded archive pickles as (its context, its path); others as slots.

    The context pickles as the whole archive (``ArchiveContext.__reduce__``), once per pickle
    however many of its sections are in it.
    """
    ctx = section._m_ctx
    root = getattr(ctx, "root", None)
    if isinstance(root, Section):
        _adopt_built(root)  # items inserted since loading get their current index
        path = path_segments(section)
        if _walk_built(root, path) is section:
            return (_rebuild_section, (ctx, path))
    # built in Python, or detached from its archive: the class by name, the slots as state
    cls = type(section)
    state: dict[str, Any] = {}
    for attr in section_fields(cls):
        try:
            state[attr] = object.__getattribute__(section, attr)
        except AttributeError:
            continue  # not read yet: it stays lazy (the raw data comes along)
    private = tuple(getattr(section, name, None) for name in _PRIVATE_SLOTS)
    # attrs classes restore their fields with their own __setstate__; others by setattr
    return (_rebuild_built_section, (cls, *private), state if hasattr(cls, "__setstate__") else (None, state))


def _walk_built(root: Section, path: Path) -> Section | None:
    """The section at ``path`` among the sections already built, without loading anything."""
    node: Any = root
    i = 0
    while i < len(path):
        fm = fields_by_name(type(node)).get(path[i]) if isinstance(node, Section) else None
        if fm is None:
            return None
        try:
            node = object.__getattribute__(node, fm.attribute)
        except AttributeError:
            return None
        i += 1
        if isinstance(node, list):
            if i >= len(path) or not isinstance(path[i], int) or not 0 <= path[i] < list.__len__(node):
                return None
            node = list.__getitem__(node, path[i])
            i += 1
    return node if isinstance(node, Section) else None


def _rebuild_section(ctx: Any, path: Path) -> Section:
    """Unpickle a section: walk ``path`` in the archive its unpickled context loaded."""
    node: Any = ctx.root
    i = 0
    while i < len(path):
        fm = fields_by_name(type(node))[path[i]]
        node = getattr(node, fm.attribute)  # present in the raw data: nothing is fetched
        i += 1
        if isinstance(node, list) and i < len(path) and isinstance(path[i], int):
            node = list.__getitem__(node, path[i])
            i += 1
    return node  # type: ignore[no-any-return]


def _rebuild_built_section(cls: type[Section], *private: Any) -> Section:
    obj = cls.__new__(cls)
    for name, value in zip(_PRIVATE_SLOTS, private):
        object.__setattr__(obj, name, value)
    return obj


def _rebuild_partial_list(owner: Section, name: str) -> Any:
    return getattr(owner, fields_by_name(type(owner))[name].attribute)
