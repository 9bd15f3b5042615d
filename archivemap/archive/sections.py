"""The Section: the class every archive section derives from.

Every archive section is an attrs class with ``slots=True`` deriving from :class:`Section`.
A loaded section keeps its raw JSON dict and leaves its field slots empty; reading an empty
slot falls through to ``__getattr__``, which converts that one property, stores it in the slot
and returns it. So reading ``archive.run[0].calculation[-1].energy.total.value`` from a
100 MB archive builds five sections and one quantity, not the tree.

This module holds the class and what only it does (the first read of a slot, checked
assignment, the section API: ``m_get``, ``m_resolve``, ``prefetch``, ``batch``, ``to_dict``,
display, pickling); the work sits in the modules below it, which see sections as
:class:`~archivemap.archive.base.SectionBase` and never import this one. From the bottom up:

* :mod:`~archivemap.archive.base`: a section's private state (the slots), navigation up the
  tree, adoption (a child knows its parent and its place), the protocols of the collaborators
  (:class:`~archivemap.archive.base.SectionContext`, :class:`~archivemap.archive.base.Fetcher`,
  :class:`~archivemap.archive.base.AccessRecorder`) and the public readers of the storage;
* :mod:`~archivemap.archive._messages`: lazily spelt paths and the "did you mean" hint;
* :mod:`~archivemap.archive._download`: one request, merged into a partial archive;
* :mod:`~archivemap.archive.standins`: what a read may give instead of a value
  (``Absent``, ``Pending``, ``PendingList``, ``Placeholder``) and batches;
* :mod:`~archivemap.archive.walk`: the one walker (dotted paths, fragments, ``select_item``);
* :mod:`~archivemap.archive._fetch`: what to fetch, and when (planning, ``PartialList``);
* :mod:`~archivemap.archive._resolve`: references to their targets;
* :mod:`~archivemap.archive._loading`: the first read of one property;
* :mod:`~archivemap.archive._dump` and :mod:`~archivemap.archive._pickling`: back to JSON,
  and pickles.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, SupportsIndex, TypeVar, overload

from archivemap._lazy import deferred_import
from archivemap.archive._download import download
from archivemap.archive._dump import copy_json, dump_field, section_to_dict
from archivemap.archive._fetch import PartialList, fetch_planned, plan_below, plan_path
from archivemap.archive._loading import load_field
from archivemap.archive._messages import no_property
from archivemap.archive._pickling import reduce_section
from archivemap.archive._resolve import local_reference, resolve_fragment, resolve_reference
from archivemap.archive.base import (
    EMPTY,
    AccessRecorder,
    Fetcher,
    SectionBase,
    SectionContext,
    adopt_value,
    assigned,
    built_value,
    fetcher_of,
    path_segments,
    raw_data,
)
from archivemap.archive.converter import assignment_problem, converter
from archivemap.archive.standins import BATCHES, STAND_INS, Absent, Batch, Pending, PendingList, Placeholder, batch_of
from archivemap.archive.walk import MISS, get_path, get_segments, keyed_order, parse_path_cached, select_item
from archivemap.errors import AssignmentError, NotInSchemaError, PathSyntaxError
from archivemap.metainfo.fields import FieldMeta, fields_by_name, section_fields
from archivemap.paths import parse_path

if TYPE_CHECKING:
    import numpy as np
else:
    np = deferred_import("numpy")  # arrays only appear once numpy is imported (converter.py)

# Section is this module's own. The others lived here before the module was split into the
# modules above, and are still importable from here; their homes are where they come from.
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
    "get_path",
    "keyed_order",
    "raw_data",
    "resolve_fragment",
    "select_item",
]

_FIRST_READ = threading.Lock()

_T = TypeVar("_T")


class Section(SectionBase):
    """Base class of all section classes, generated or built at run time.

    Sections made by loading are lazy (see the module docstring); sections made by calling
    the class (``Energy(total=EnergyEntry(value=...))``) are ordinary attrs instances.
    """

    __slots__ = ()  # the slots are SectionBase's; without this every section would get a __dict__

    m_qualified_name: ClassVar[str] = "archivemap.archive.sections.Section"
    m_definition_id: ClassVar[str | None] = None

    if TYPE_CHECKING:  # the base's navigation, as seen from above: every section is a Section
        @property
        def m_parent(self) -> Section | None: ...

        @property
        def m_root(self) -> Section: ...

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
                adopt_value(self, fm, value)

    # -- lazy loading ---------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup failed: an empty slot or an unknown name.
        if name.startswith(("_m_", "__")):  # private state (empty slot) and dunders
            raise AttributeError(name)
        fm = section_fields(type(self)).get(name)
        if fm is None:
            message = no_property(type(self), name)
            data = self._m_data
            if data is not None and name in data:  # in the archive, not in this class
                m_def = data.get("m_def")
                why = f"its m_def {m_def!r} was not found" if isinstance(m_def, str) else "the schema lacks it"
                message += f"; the archive has it, kept in .m_extras[{name!r}] ({why})"
            raise NotInSchemaError(message, path=self.m_path(), entry_id=self.m_entry_id)
        value = local_reference(self, fm) if fm.is_reference else MISS
        if value is MISS:
            value = load_field(self, fm)
            if type(value) in STAND_INS:  # not the value: kept out of the slot
                return value
            if fm.is_reference and type(value) is list and any(type(v) in STAND_INS for v in value):
                return value  # references to targets not here yet: resolved again when read again
        elif type(value) is not list:
            # a section that exists already: whichever thread walks first finds this object,
            # but an assignment made while this one walked wins (it is in _m_dirty, written
            # under the same lock): asked without reading the slot, which raises when empty
            with _FIRST_READ:
                dirty = self._m_dirty
                if dirty is not None and name in dirty:
                    return object.__getattribute__(self, name)
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
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        fm = section_fields(type(self)).get(name)
        with _FIRST_READ:  # the slot and _m_dirty together, as a first read checks them
            object.__setattr__(self, name, value)
            try:
                dirty = object.__getattribute__(self, "_m_dirty")
            except AttributeError:  # during attrs __init__, before post-init
                return
            if fm is None:
                return
            if dirty is None:
                dirty = set()
                object.__setattr__(self, "_m_dirty", dirty)
            dirty.add(name)
        if fm.kind == "sub_section":
            adopt_value(self, fm, value)

    def __dir__(self) -> list[str]:
        # Tab completion offers the schema's properties (also of lazy, unread slots)
        return sorted(set(object.__dir__(self)) | set(section_fields(type(self))))

    # -- what is set -----------------------------------------------------------------------
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
                no_property(type(self), name), path=self.m_path()
            )
        data = self._m_data
        if data is not None and fm.name in data and not (self._m_dirty and fm.attribute in self._m_dirty):
            return copy_json(data[fm.name]) if type(data[fm.name]) is np.ndarray else data[fm.name]
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
        segments = parse_path_cached(path)
        if fetcher_of(self) is not None:
            batch = batch_of(self.m_root)
            if batch is not None:  # planned now, fetched with the block's other reads
                planned, blind = plan_below(self, segments)
                if planned:
                    return batch.defer(planned, functools.partial(get_segments, self, segments), blind=blind)
            fetch_planned(self, segments)  # one request for the whole path, not one per level
        return get_segments(self, segments)

    def prefetch(self, paths: Iterable[str]) -> int:
        """Fetch several not-yet-downloaded paths below this section in one request.

        Paths are dotted (``"calculation[3].energy"``) or slash paths relative to this
        section. Only archives from a client fetch anything; for others this is a no-op.

        Returns:
            The number of requests sent (0 or 1, plus one per list whose length had to be
            learned for a negative index or key).

        Raises:
            NotInSchemaError: a path leaves what the schema describes.
            PathSyntaxError: a path selects every item of a list (``[*]``): a path names one
                item; for all of them, read them in :meth:`batch`.
        """
        paths = list(paths)  # read twice below
        parsed = [parse_path(path) for path in paths]
        for path, segments in zip(paths, parsed):
            if any(isinstance(s, str) and s == "*" for s in segments):  # Key("*") is a str
                raise PathSyntaxError(
                    f"{path!r}: prefetch paths name one item of a list, not all of them ('[*]'); "
                    "read every item in one request with archive.batch(lambda: [c.temperature for c in calcs])",
                    str(path),
                )
        fetcher = fetcher_of(self)
        if fetcher is None:
            return 0
        root = self.m_root
        base = tuple(str(s) for s in path_segments(self))
        before = fetcher.fetches
        planned = []
        for path, parsed_path in zip(paths, parsed):
            segments = base + tuple(str(s) for s in parsed_path)
            plan = plan_path(root, segments)
            if plan is None:
                raise NotInSchemaError(f"cannot plan path {path!r}", path=self.m_path(), entry_id=self.m_entry_id)
            planned.append(plan)
        download(root, planned)
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
        active: dict[int, Batch] | None = getattr(BATCHES, "active", None)
        if active is None:
            active = BATCHES.active = {}
        if id(root) in active or fetcher_of(root) is None:
            yield
            return
        batch = active[id(root)] = Batch(root)
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
        if path:
            return f"{type(self).__name__}({path})"
        ctx = self._m_ctx if self._m_parent is None else None
        # a loaded root says which entry it is (from what loading already read: no reads here)
        known = [] if ctx is None else [
            f"{name}={value!r}" for name, value in (("entry_id", ctx.entry_id), ("mainfile", ctx.mainfile)) if value
        ]
        return f"{type(self).__name__}({', '.join(known)})"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(_display().pretty(self))

    def _repr_html_(self) -> str:
        return _display().html(self)  # type: ignore[no-any-return]

    # -- pickling (archivemap.archive._pickling; design in archivemap.archive.runtime) --------
    def __reduce_ex__(self, protocol: SupportsIndex) -> str | tuple[Any, ...]:
        return reduce_section(self)


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

