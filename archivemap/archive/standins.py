"""The stand-ins a read may give instead of a value, and the batches that collect them.

* :class:`Absent`: an unset single sub-section of a loaded archive (falsy, ``== None``, a named
  error when read through);
* :class:`Pending` and :class:`PendingList`: not downloaded yet, a planned path, fetched in one
  request when a quantity below it is read;
* :class:`Placeholder`: a value read inside ``with archive.batch():``, fetched with the block's
  other reads (:class:`Batch`).

They are never kept in a slot (:data:`STAND_INS`): the next read looks again.
"""

from __future__ import annotations

import functools
import html
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

import lazy_object_proxy

from archivemap._json import value_at
from archivemap._lazy import deferred_import
from archivemap.archive._download import download, present
from archivemap.archive._messages import no_property
from archivemap.archive.base import Path, SectionBase, fetcher_of, path_segments, resolution
from archivemap.errors import (
    AbsentItemError,
    AbsentSectionError,
    ArchivemapError,
    HTTPStatusError,
    NotInSchemaError,
)
from archivemap.metainfo.fields import FieldMeta, fields_by_name, section_fields

if TYPE_CHECKING:
    import numpy as np
else:
    np = deferred_import("numpy")  # arrays only appear once numpy is imported (converter.py)

__all__ = [
    "BATCHES",
    "STAND_INS",
    "Absent",
    "Batch",
    "Pending",
    "PendingList",
    "Placeholder",
    "absent_error",
    "batch_of",
    "through_reference",
    "what_is_there",
]


# ============================================================ absent sections
def absent_error(holder: SectionBase, name: str, doing: str) -> AbsentSectionError:
    """The error for reading through ``holder.name``, an unset single sub-section.

    Says which path of which entry is absent, what the reader tried, and what *is* set next
    to it (the keys of the holder's data), so a scientist sees at once that, say, FHI-aims'
    referenced calculation has ``energy`` but no ``energy.total``.
    """
    where = holder.m_path()
    return AbsentSectionError(
        f"{name!r} is not set in {where}, so {doing}; {what_is_there(holder, name)}",
        path=f"{where.rstrip('/')}/{name}",
        entry_id=holder.m_entry_id,
    )


def what_is_there(holder: SectionBase, name: str) -> str:
    """``"what it has: fermi, total"``: the set properties next to an absent one."""
    present = sorted({fm.name for fm in holder.m_set_fields()} - {name})
    listed = ", ".join(present[:12]) + (f", … ({len(present)} in all)" if len(present) > 12 else "")
    has = "what was downloaded of it" if fetcher_of(holder) is not None else "what it has"
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

    def __init__(self, holder: SectionBase, name: str) -> None:
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

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        # what a notebook or IPython shows: that it is not set, and what is set beside it
        p.text(f"{self!r}: not set; {what_is_there(self._holder, self._name)}")

    def _repr_html_(self) -> str:
        return (
            f"<code>{html.escape(repr(self))}</code>: not set; "
            f"{html.escape(what_is_there(self._holder, self._name))}"
        )

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
                    no_property(cls, name), path=self.m_path(),
                    entry_id=self._holder.m_entry_id,
                )
            raise absent_error(self._holder, self._name, f".{name}() cannot be called")
        raise absent_error(self._holder, self._name, f".{name} cannot be read")

    def _declared(self) -> type[SectionBase] | None:
        """The class the schema declares for the absent sub-section."""
        ctx = self._holder._m_ctx
        fm = fields_by_name(type(self._holder)).get(self._name)
        if ctx is None or fm is None:
            return None
        if fm.kind != "sub_section":  # an unset reference on a planned path
            return ctx.reference_class(fm)
        return ctx.sub_section_class(type(self._holder), fm)

    def __setattr__(self, name: str, value: Any) -> None:
        raise absent_error(
            self._holder, self._name, f".{name} cannot be assigned (assign a new section to .{self._name} first)"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_absent, (self._holder, self._name))


def _rebuild_absent(holder: SectionBase, name: str) -> Any:
    return getattr(holder, name)


# ============================================================ sections not downloaded yet
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
        self, anchor: SectionBase, rel: Path, cls: type[SectionBase], via: tuple[SectionBase, FieldMeta, int] | None = None
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
            declared = ctx.sub_section_class(self._cls, fm) if ctx is not None else SectionBase
            return Pending(self._anchor, self._rel + (fm.name,), declared, self._via)
        if fm is not None and fm.kind == "sub_section":
            ctx = self._anchor._m_ctx
            return PendingList(self, fm, ctx.sub_section_class(self._cls, fm) if ctx is not None else SectionBase)
        if fm is not None and fm.kind == "quantity":
            through = through_reference(self._anchor, fm)
            if through is not None:  # followed on the server, with what is read below it
                return Pending(self._anchor, self._rel + (fm.name,), through, self._via)
            root = self._anchor.m_root
            path = self._full_path() + (fm.name,)
            batch = batch_of(root)
            if batch is not None:
                return batch.defer(path, functools.partial(_read_through, self, fm), (self, fm))
            download(root, [path], typed=True)
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
        return target._repr_html_() if isinstance(target, SectionBase) else repr(target)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        target = self.m_settle()
        if isinstance(target, SectionBase):
            target._repr_pretty_(p, cycle)
        else:
            p.text(repr(target))

    def __reduce__(self) -> tuple[Any, ...]:
        return (Pending, (self._anchor, self._rel, self._cls, self._via))

    def to_dict(self) -> dict[str, Any]:
        """The section's archive JSON: downloaded whole first (one request), as exporting
        a section means all of it; ``{}`` when the archive does not have it."""
        root = self._anchor.m_root
        download(root, [self._full_path()], typed=True)
        target = self.m_settle()
        return target.to_dict() if isinstance(target, SectionBase) else {}

    def m_settle(self) -> SectionBase | Absent:
        """The section this stands for (one request when not downloaded), or :class:`Absent`."""
        root = self._anchor.m_root
        path = self._full_path()
        fetcher = fetcher_of(root)
        if fetcher is not None and not present(root._m_data, path) and not fetcher.was_asked(path):
            download(root, [path], typed=True, whole=False)
        target = _walk_down(self)
        return target.m_settle() if type(target) is Pending else target  # type: ignore[return-value]


class PendingList:
    """A repeating sub-section of a partial archive that was not downloaded: a planned path.

    ``archive.run[0].calculation[3]`` (non-negative indices) only extends the path, as
    :class:`Pending` does; ``len()``, iteration, negative indices, slices and keys first learn
    the list (one request: every item's ``m_def``) and then behave as the list.
    """

    __slots__ = ("_owner", "_fm", "_cls")

    def __init__(self, owner: SectionBase | Pending, fm: FieldMeta, cls: type[SectionBase]) -> None:
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
        fetcher = fetcher_of(root)
        if fetcher is not None and not present(root._m_data, path) and not fetcher.was_asked(path):
            download(root, [path], typed=True, whole=False)
            if isinstance(value_at(root._m_data, path), list):
                fetcher.mark_complete_list(path)  # every item came, with its m_def
        holder = owner.m_settle() if isinstance(owner, Pending) else owner
        if type(holder) is Absent:
            raise absent_error(holder._holder, holder._name, f"{self._fm.name!r} below it cannot be read")
        return getattr(holder, self._fm.attribute)  # type: ignore[no-any-return]


def through_reference(section: SectionBase, fm: FieldMeta) -> type[SectionBase] | None:
    """The target class when reading through reference ``fm`` can be planned as a path.

    One reference to a specific section class (not a list of them, not a quantity
    reference, not a generic ``ArchiveSection``): NOMAD follows it when ``required`` goes on
    below it, and places the target where it lives.
    """
    if fm.type_kind != "reference" or fm.shape:
        return None
    ctx = section._m_ctx
    return ctx.reference_class(fm) if ctx is not None else None


def _walk_down(pending: Pending) -> SectionBase | Absent | Pending:
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
            with resolution():
                node = _step_down(pending, node, seg)
        else:
            node = _step_down(pending, node, seg)
        if type(node) is Absent:
            return node
        if node is None and isinstance(holder, SectionBase):  # an unset reference on the way
            return Absent(holder, seg)
        if type(node) is Pending:  # a reference's target that is not here: the rest from there
            rest = pending._rel[i + 1 :]
            return Pending(node._anchor, node._rel + rest, pending._cls, node._via)
        if via is not None and i + 1 == quiet and isinstance(node, SectionBase):
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
        raise NotInSchemaError(no_property(type(node), seg), path=node.m_path())
    data = node._m_data
    if fm.is_reference and data is not None and fm.name not in data:
        # asked for through the reference, and not in the answer: unset, or a server that
        # does not follow references; the reference itself, asked for plainly, tells which
        fetcher = fetcher_of(node)
        path = path_segments(node) + (fm.name,)
        if fetcher is not None and not fetcher.is_downloaded(path):
            download(node.m_root, [path])
    return getattr(node, fm.attribute)


def _read_through(pending: Pending, fm: FieldMeta) -> Any:
    """Read quantity ``fm`` of the section a pending path stands for (after its download)."""
    target = _walk_down(pending)
    if type(target) is Pending:  # below a reference target that still has to be fetched
        return getattr(target, fm.attribute)
    if type(target) is Absent:
        raise absent_error(target._holder, target._name, f"{fm.name!r} below it cannot be read")
    return getattr(target, fm.attribute)


# ------------------------------------------------------------ batches: many reads, one request
BATCHES = threading.local()


class Placeholder(lazy_object_proxy.Proxy):  # type: ignore[misc]
    """A value read inside ``with archive.batch():``, fetched with the block's other reads.

    A transparent proxy (lazy-object-proxy) that shows and converts as its value: ``repr``
    is the value's, numpy sees the value's array.
    """

    def __repr__(self) -> str:
        return repr(self.__wrapped__)

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        return np.asarray(self.__wrapped__, *args, **kwargs)


class Batch:
    """The reads collected inside one ``with archive.batch():`` block."""

    def __init__(self, root: SectionBase) -> None:
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
            download(self.root, paths + blind, typed=True)
        except HTTPStatusError:
            if not blind:
                raise
            # a path by names the server refuses: the others now, it step by step when read
            download(self.root, paths, typed=True)
        asked: set[tuple[int, Path]] = set()
        while through:  # targets of references the answers did not place: one more round
            rounds: dict[int, tuple[SectionBase, list[Path]]] = {}
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
                download(root, wanted, typed=True)
            through = rest


def batch_of(root: SectionBase) -> Batch | None:
    active: dict[int, Batch] | None = getattr(BATCHES, "active", None)
    return active.get(id(root)) if active else None


#: What reading a property may hand out instead of its value (never kept in a slot).
STAND_INS: Final = (Absent, Pending, PendingList, Placeholder)

