"""The section base: lazy storage, navigation (m_parent, m_path, m_get) and to_dict.

Every archive section is an attrs class with ``slots=True`` deriving from :class:`Section`.
A loaded section keeps its raw JSON dict and leaves its field slots empty; reading an empty
slot falls through to ``__getattr__``, which converts that one property, stores it in the slot
and returns it. So reading ``archive.run[0].calculation[-1].energy.total.value`` from a
100 MB archive builds five sections and one quantity, not the tree.

``to_dict`` writes back the raw JSON of everything that was not assigned since loading, so
that ``to_dict(load(d)) == d`` holds exactly, unknown keys and mistyped values included.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from archivemap.errors import AbsentError, NotInSchemaError
from archivemap.fields import META_KEY, FieldMeta

if TYPE_CHECKING:
    from archivemap._context import ArchiveContext
    from archivemap.definitions import SectionDef

__all__ = ["Section", "section_fields"]

_FIRST_READ = threading.Lock()


def section_fields(cls: type) -> dict[str, FieldMeta]:
    """The :class:`FieldMeta` of every field of a section class, by attribute name."""
    cached = cls.__dict__.get("_m_fields_by_attr")
    if cached is None:
        cached = {}
        if attrs.has(cls):
            for f in attrs.fields(cls):
                fm = f.metadata.get(META_KEY)
                if fm is not None:
                    cached[f.name] = fm
        type.__setattr__(cls, "_m_fields_by_attr", cached)
        type.__setattr__(cls, "_m_fields_by_name", {fm.name: fm for fm in cached.values()})
    return cached  # type: ignore[no-any-return]


def _fields_by_name(cls: type) -> dict[str, FieldMeta]:
    by_name = cls.__dict__.get("_m_fields_by_name")
    if by_name is None:
        section_fields(cls)
        by_name = cls.__dict__["_m_fields_by_name"]
    return by_name  # type: ignore[no-any-return]


class Section:
    """Base class of all section classes, generated or built at run time.

    Sections made by loading are lazy (see the module docstring); sections made by calling
    the class (``Energy(total=EnergyEntry(value=...))``) are ordinary attrs instances.
    """

    __slots__ = ("_m_data", "_m_parent", "_m_ctx", "_m_dirty", "_m_key")

    m_qualified_name: ClassVar[str] = "archivemap.sections.Section"
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
                self._adopt(fm, value)

    @classmethod
    def m_load(
        cls,
        data: dict[str, Any],
        parent: Section | None = None,
        key: tuple[str, int | None] | None = None,
        ctx: ArchiveContext | None = None,
    ) -> Section:
        """Wrap a raw JSON dict without converting anything (used by the loader)."""
        obj = cls.__new__(cls)
        object.__setattr__(obj, "_m_data", data)
        object.__setattr__(obj, "_m_parent", parent)
        object.__setattr__(obj, "_m_ctx", ctx if ctx is not None else (parent._m_ctx if parent else None))
        object.__setattr__(obj, "_m_dirty", None)
        object.__setattr__(obj, "_m_key", key)
        return obj

    def _adopt(self, fm: FieldMeta, value: Any) -> None:
        if isinstance(value, Section):
            object.__setattr__(value, "_m_parent", self)
            object.__setattr__(value, "_m_key", (fm.name, None))
            if value._m_ctx is None:
                object.__setattr__(value, "_m_ctx", self._m_ctx)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, Section):
                    object.__setattr__(item, "_m_parent", self)
                    object.__setattr__(item, "_m_key", (fm.name, i))
                    if item._m_ctx is None:
                        object.__setattr__(item, "_m_ctx", self._m_ctx)

    # -- lazy loading ---------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup failed: an empty slot or an unknown name.
        if name.startswith(("_m_", "__")):  # private state (empty slot) and dunders
            raise AttributeError(name)
        fm = section_fields(type(self)).get(name)
        if fm is None:
            raise NotInSchemaError(
                f"{type(self).m_qualified_name} has no property {name!r}",
                path=self.m_path(),
                entry_id=self.m_entry_id,
            )
        value = _load_field(self, fm)
        with _FIRST_READ:  # two threads reading at once must end up with the same object
            try:
                return object.__getattribute__(self, name)
            except AttributeError:
                object.__setattr__(self, name, value)
                return value

    def __setattr__(self, name: str, value: Any) -> None:
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
            self._adopt(fm, value)

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
    def m_parent_sub_section(self) -> str | None:
        """The NOMAD name of the sub-section this section sits in."""
        return self._m_key[0] if self._m_key else None

    @property
    def m_parent_index(self) -> int | None:
        """The index in a repeating sub-section, ``None`` for single sub-sections."""
        return self._m_key[1] if self._m_key else None

    def m_path(self) -> str:
        """The NOMAD archive path of this section, e.g. ``/run/0/calculation/3``."""
        parts: list[str] = []
        node: Section | None = self
        while node is not None and node._m_key is not None:
            name, index = node._m_key
            if index is not None:
                parts.append(str(index))
            parts.append(name)
            node = node._m_parent
        return "/" + "/".join(reversed(parts)) if parts else "/"

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
            from archivemap.errors import DefinitionError

            raise DefinitionError(f"{type(self).__name__} was not loaded with a schema")
        return ctx.schema.definition_of(type(self))

    @property
    def m_extras(self) -> dict[str, Any]:
        """Keys of the raw data that are not properties of the definition, kept as they were."""
        data = self._m_data
        if not data:
            return {}
        by_name = _fields_by_name(type(self))
        return {k: v for k, v in data.items() if k not in by_name and k not in ("m_def", "m_def_id")}

    def m_is_set(self, name: str) -> bool:
        """Whether property ``name`` (NOMAD or attribute name) has a value in this section."""
        fm = section_fields(type(self)).get(name) or _fields_by_name(type(self)).get(name)
        if fm is None:
            return False
        try:
            object.__getattribute__(self, fm.attribute)
        except AttributeError:
            data = self._m_data
            return data is not None and data.get(fm.name) is not None
        value = object.__getattribute__(self, fm.attribute)
        return value is not None and value != [] if not hasattr(value, "shape") else True

    def _m_set_fields(self) -> list[FieldMeta]:
        """The fields that hold a value: read from the raw keys, not by probing every slot."""
        fields = section_fields(type(self))
        data = self._m_data
        if data is None:
            out = []
            for fm in fields.values():
                value = object.__getattribute__(self, fm.attribute)
                if value is not None and not (isinstance(value, list) and not value):
                    out.append(fm)
            return out
        by_name = _fields_by_name(type(self))
        out = [by_name[k] for k, v in data.items() if v is not None and k in by_name]
        dirty = self._m_dirty
        if dirty:
            present = {fm.attribute for fm in out}
            out.extend(fields[a] for a in sorted(dirty) if a not in present and a in fields)
        return out

    def m_quantities(self) -> Iterator[tuple[str, Any]]:
        """(attribute name, value) of every quantity that is set."""
        for fm in self._m_set_fields():
            if fm.kind == "quantity" and not fm.virtual:
                yield fm.attribute, getattr(self, fm.attribute)

    def m_sub_sections(self) -> Iterator[tuple[str, Section]]:
        """(attribute name, child) of every sub-section that is set, items of lists one by one."""
        for fm in self._m_set_fields():
            if fm.kind != "sub_section":
                continue
            value = getattr(self, fm.attribute)
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, Section):
                        yield fm.attribute, item
            elif isinstance(value, Section):
                yield fm.attribute, value

    def m_contents(self) -> Iterator[Section]:
        """Every section below this one, depth first (iterative: deep trees are fine)."""
        stack: list[Section] = [self]
        while stack:
            node = stack.pop()
            if node is not self:
                yield node
            children = [child for _, child in node.m_sub_sections()]
            stack.extend(reversed(children))

    def m_reference(self, name: str) -> Any:
        """The raw reference string(s) of quantity ``name``, without resolving them."""
        fm = section_fields(type(self)).get(name) or _fields_by_name(type(self)).get(name)
        if fm is None:
            raise NotInSchemaError(
                f"{type(self).m_qualified_name} has no property {name!r}", path=self.m_path()
            )
        data = self._m_data
        if data is not None and fm.name in data and not (self._m_dirty and fm.attribute in self._m_dirty):
            return data[fm.name]
        from archivemap._loading import dump_field

        return dump_field(self, fm, getattr(self, fm.attribute))

    def m_resolve(self, reference: str) -> Any:
        """Resolve a reference string (any form of spec §3) as if this section held it."""
        from archivemap.references import resolve_reference

        return resolve_reference(self, reference, source_path=self.m_path())

    def m_get(self, path: str) -> Any:
        """Read a dotted path such as ``"run[0].calculation[-1].energy.total.value"``.

        Raises:
            NotInSchemaError: a segment names no property of its section.
            AbsentError: a property or index along the path is not set.
            NotDownloadedError: the data is on the server but was not downloaded.
        """
        from archivemap.paths import get_path

        ctx = self._m_ctx
        if ctx is not None and ctx.fetcher is not None and hasattr(ctx.fetcher, "fetch_many"):
            self._m_fetch_planned(path)  # one request for the whole path, not one per level
        return get_path(self, path)

    def _m_fetch_planned(self, path: str) -> None:
        from archivemap._loading import _path_tuple
        from archivemap.paths import parse_path
        from archivemap.references import _present
        from archivemap.remote import absolute_path

        fetcher = self._m_ctx.fetcher  # type: ignore[union-attr]
        root = self.m_root
        segments = tuple(str(s) for s in _path_tuple(self)) + tuple(str(s) for s in parse_path(path))
        try:
            planned = absolute_path(root, segments, fetcher)
        except AbsentError:
            return  # get_path reports it
        if planned and not fetcher.is_downloaded(planned) and not _present(root._m_data, planned):
            fetcher.fetch(root, planned)

    def prefetch(self, paths: Iterable[str]) -> int:
        """Fetch several not-yet-downloaded paths below this section in one request.

        Paths are dotted (``"calculation[3].energy"``) or slash paths relative to this
        section. Only archives from a client fetch anything; for others this is a no-op.

        Returns:
            The number of requests sent (0 or 1, plus one per list whose length had to be
            learned for a negative index or key).
        """
        ctx = self._m_ctx
        fetcher = ctx.fetcher if ctx is not None else None
        if fetcher is None or not hasattr(fetcher, "fetch_many"):
            return 0
        from archivemap._loading import _path_tuple
        from archivemap.paths import parse_path
        from archivemap.remote import absolute_path

        root = self.m_root
        base = tuple(str(s) for s in _path_tuple(self))
        before = fetcher.fetches
        planned = []
        for path in paths:
            segments = base + tuple(str(s) for s in parse_path(path))
            plan = absolute_path(root, segments, fetcher)
            if plan is None:
                raise NotInSchemaError(f"cannot plan path {path!r}", path=self.m_path(), entry_id=self.m_entry_id)
            planned.append(plan)
        fetcher.fetch_many(root, planned)
        return int(fetcher.fetches - before)

    def to_ase(self) -> Any:
        """This System (or Atoms) section as an ``ase.Atoms`` (needs the ``ase`` extra)."""
        from archivemap.ase import to_atoms

        return to_atoms(self)

    # -- serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The archive JSON of this section: the loaded data, with assignments applied."""
        from archivemap._loading import section_to_dict

        return section_to_dict(self)

    # -- display --------------------------------------------------------------------------
    def __repr__(self) -> str:
        path = self.m_path() if self._m_key is not None else ""
        return f"{type(self).__name__}({path})" if path else f"{type(self).__name__}()"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        from archivemap.display import pretty

        p.text(pretty(self))

    def _repr_html_(self) -> str:
        from archivemap.display import html

        return html(self)


def _load_field(section: Section, fm: FieldMeta) -> Any:
    global _load_field
    from archivemap._loading import load_field

    _load_field = load_field  # bound once: __getattr__ is the hot path
    return load_field(section, fm)


