"""The reference graph: which section of which archive points at which, as a networkx graph.

:func:`reference_graph` walks one or more archives and returns a plain
``networkx.MultiDiGraph``; everything else here is a function over such a graph (no subclass),
so any networkx algorithm applies as well.

Nodes are section addresses ``"<entry_id>#<path>"`` such as
``"W8WtgZtrEbJuCUCl76SN0Pp2Topu#/run/0/calculation/3"`` (``""`` for an archive without an
entry id; ``"<installation>/entries/<entry_id>#<path>"`` for another NOMAD installation). Paths
are normalised: negative indices and key names of reference fragments become positions.

Node attributes:
    entry_id (str): the entry holding the section (``""`` when unknown).
    path (str): the archive path, ``/run/0/calculation/3`` (``/`` is the root).
    label (str): a short name for display: the last path segments, plus the ``name``
        quantity when the section has one (``tasks/3 (Step 3)``).
    section (str): the qualified name of the section definition, when known (not for
        remote or dangling targets).
    quantity (str): only on targets of quantity references: the quantity's NOMAD name (the
        node path then ends with it, possibly followed by array indices).
    remote (bool): the target lives in an archive that was not given (another entry not in
        the set, another installation); reaching it needs a fetch.
    dangling (bool): the target does not exist (checked against the raw archive data).
    error (str): why a target is dangling, or why a remote one could not be resolved.

Edge attributes:
    kind (str): ``"reference"``; ``"contains"`` for parent → child with ``containment=True``;
        ``"definition"`` for ``m_def`` references with ``definitions=True``.
    quantity (str): the NOMAD name of the referencing quantity (the sub-section name for
        ``contains`` edges, ``m_def`` for definition edges).
    reference (str): the raw reference string as written in the archive (not on ``contains``).
    index (int): the position in a list-valued reference (or of the child in a repeating
        sub-section); absent for single values.

Building the graph reads reference strings from the raw data and never resolves a reference
through a section's attribute, so it stays cheap on large archives, and every walk is
iterative: a 10,000-deep nesting does not exhaust the stack.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable
from typing import Any

from archivemap._progress import Progress
from archivemap._warnings import warn_at_caller
from archivemap.archive.references import ParsedReference, parse_reference
from archivemap.archive.base import EMPTY, SectionContext, assigned, built_value, partly_downloaded, raw_data
from archivemap.archive.sections import Section
from archivemap.archive.standins import Pending
from archivemap.archive.walk import keyed_order, select_item
from archivemap.archive.sources import DirectorySource, ZipSource
from archivemap.errors import ArchivemapError
from archivemap.graph._nx import nx
from archivemap.metainfo.fields import FieldMeta, fields_by_name, section_fields

__all__ = ["node_id", "reference_graph"]

_REFERENCE_KINDS = ("reference", "quantity_reference")
# NOMAD's metainfo-as-data: a Quantity definition's ``type`` is a dict whose ``type_data``
# is a section reference when ``type_kind`` is "reference" (custom schemas in ``definitions``).
_QUANTITY_TYPE = "nomad.metainfo.metainfo.QuantityType"


def node_id(section: Section) -> str:
    """The graph node of a section: ``"<entry_id>#<path>"``."""
    return _address(section.m_entry_id, section.m_path())


def _address(entry_id: str | None, path: str, installation: str | None = None) -> str:
    if installation:
        return f"{installation}/entries/{entry_id or ''}#{path}"
    return f"{entry_id or ''}#{path}"


# -- paths as linked tuples --------------------------------------------------------------------
# A path is (parent_link, segment) or None for the root. Building the string only for sections
# that are nodes keeps a 10,000-deep walk linear instead of quadratic.
_Link = tuple[Any, str] | None


def _path_of(link: _Link) -> str:
    parts: list[str] = []
    while link is not None:
        link, segment = link
        parts.append(segment)
    return "/" + "/".join(reversed(parts)) if parts else "/"


def _label(path: str, raw: Any) -> str:
    head, _, last = path.rstrip("/").rpartition("/")
    if not last:
        text = "archive"
    elif last.isdigit() and head:
        text = f"{head.rpartition('/')[2]}/{last}"
    else:
        text = last
    name = raw.get("name") if isinstance(raw, dict) else None
    if isinstance(name, str) and name:
        text = f"{text} ({name})"
    return text


# -- a cursor over sections that may or may not be materialised ---------------------------------
class _Cursor:
    """One section during a walk: its class, the Section object if it exists, its raw dict.

    Sub-sections whose attribute slot is still empty are walked as raw dicts, so walking never
    materialises sections; sub-sections that were read (or assigned) are walked as objects,
    so assignments made after loading are seen.
    """

    __slots__ = ("cls", "obj", "raw", "link")

    def __init__(self, cls: type[Section], obj: Section | None, raw: Any, link: _Link) -> None:
        self.cls = cls
        self.obj = obj
        self.raw = raw if isinstance(raw, dict) else None
        self.link = link

    @classmethod
    def of(cls, section: Section, link: _Link) -> _Cursor:
        return cls(type(section), section, raw_data(section), link)

    def field_names(self) -> Iterable[FieldMeta]:
        """The fields that may hold a value, without scanning every field of big classes."""
        by_name = fields_by_name(self.cls)
        obj = self.obj
        dirty = assigned(obj) if obj is not None else None
        if self.raw is not None and not dirty:
            return [by_name[k] for k in self.raw if k in by_name]
        fields = section_fields(self.cls)
        if self.raw is None:
            return list(fields.values())
        names = {k for k in self.raw if k in by_name}
        names.update(fields[a].name for a in dirty or () if a in fields)
        return [by_name[n] for n in names]

    def slot(self, fm: FieldMeta) -> Any:
        """The materialised attribute value, or ``_EMPTY`` when the slot was never filled."""
        if self.obj is None:
            return _EMPTY
        return built_value(self.obj, fm)

    def reference_value(self, fm: FieldMeta) -> Any:
        """The raw reference string(s) of a quantity, never resolving them."""
        obj = self.obj
        if obj is not None and (self.raw is None or fm.attribute in assigned(obj)):
            try:
                return obj.m_reference(fm.attribute)
            except ArchivemapError:
                return None
        return self.raw.get(fm.name) if self.raw is not None else None

    def quantity_value(self, fm: FieldMeta) -> Any:
        value = self.slot(fm)
        if value is not _EMPTY and (self.raw is None or fm.name not in self.raw):
            return value
        return self.raw.get(fm.name) if self.raw is not None else None


_EMPTY = EMPTY  # a slot never filled (from the archive layer)


class _Classes:
    """Section classes of raw sub-section dicts, cached per owner class, field and m_def."""

    def __init__(self) -> None:
        self._declared: dict[tuple[type, str], type[Section] | None] = {}
        self._by_m_def: dict[tuple[int, str, type], type[Section]] = {}

    def declared(self, ctx: SectionContext | None, owner: type[Section], fm: FieldMeta) -> type[Section] | None:
        key = (owner, fm.name)
        if key not in self._declared:
            cls: type[Section] | None = None
            if ctx is not None:
                try:
                    cls = ctx.sub_section_class(owner, fm)
                except (ArchivemapError, KeyError):
                    cls = None
            self._declared[key] = cls
        return self._declared[key]

    def for_item(self, ctx: SectionContext | None, declared: type[Section], item: dict[str, Any]) -> type[Section]:
        m_def = item.get("m_def")
        if not isinstance(m_def, str) or ctx is None:
            return declared
        key = (id(ctx), m_def, declared)
        cls = self._by_m_def.get(key)
        if cls is None:
            # the schema's one m_def resolver; no warning: the loader warns when it reads it
            cls = self._by_m_def[key] = ctx.class_for_item(declared, item)
        return cls


def _raw_items(value: Any) -> list[Any] | None:
    """The items of a raw repeating sub-section (list form or keyed dict form, spec §2.1)."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        return [value[k] for k in keyed_order(value)]
    return None


def _items(cur: _Cursor, fm: FieldMeta) -> tuple[list[Any], bool] | None:
    """The stored items of sub-section ``fm`` and whether they are Section objects."""
    value = cur.slot(fm)
    if value is not _EMPTY:
        if value is None:
            return None
        return (value if isinstance(value, list) else [value]), True
    raw = cur.raw.get(fm.name) if cur.raw is not None else None
    if raw is None:
        return None
    if fm.repeats:
        items = _raw_items(raw)
        return (items, False) if items is not None else None
    if isinstance(raw, list) and len(raw) == 1:  # single sub-section written as a list
        raw = raw[0]
    return [raw], False


def _cursor(
    cur: _Cursor, fm: FieldMeta, index: int | None, item: Any, is_obj: bool, ctx: SectionContext | None, classes: _Classes
) -> _Cursor | None:
    """The cursor of one child item, or ``None`` when the item is not a section."""
    link = _child_link(cur.link, fm.name, index)
    if is_obj:
        return _Cursor.of(item, link) if isinstance(item, Section) else None
    if not isinstance(item, dict):
        return None
    declared = classes.declared(ctx, cur.cls, fm)
    if declared is None:
        return None
    return _Cursor(classes.for_item(ctx, declared, item), None, item, link)


def _children(
    cur: _Cursor, fm: FieldMeta, ctx: SectionContext | None, classes: _Classes
) -> list[tuple[int | None, _Cursor]]:
    """The children of sub-section ``fm``: (index or None, cursor) for each present item."""
    found = _items(cur, fm)
    if found is None:
        return []
    items, is_obj = found
    out: list[tuple[int | None, _Cursor]] = []
    if not is_obj and fm.repeats:  # the hot path: thousands of raw calculations and systems
        declared = classes.declared(ctx, cur.cls, fm)
        if declared is None:
            return out
        link = (cur.link, fm.name)
        for i, item in enumerate(items):
            if isinstance(item, dict):
                cls = declared if "m_def" not in item else classes.for_item(ctx, declared, item)
                out.append((i, _Cursor(cls, None, item, (link, str(i)))))
        return out
    # a partial archive's list as it is here: building a graph downloads nothing, and items
    # not downloaded (None) are no nodes; references into them are marked "not downloaded"
    for i, item in enumerate(list.__iter__(items) if isinstance(items, list) else items):
        index = i if fm.repeats else None
        child = _cursor(cur, fm, index, item, is_obj, ctx, classes)
        if child is not None:
            out.append((index, child))
    return out


def _child_link(link: _Link, name: str, index: int | None) -> _Link:
    link = (link, name)
    return (link, str(index)) if index is not None else link


# -- targets ------------------------------------------------------------------------------------
class _Target:
    """Where a reference fragment leads: a normalised path and whether it exists."""

    __slots__ = ("path", "section", "quantity", "error", "raw")

    def __init__(self, path: str, section: str | None, quantity: str | None, error: str | None, raw: Any) -> None:
        self.path = path
        self.section = section
        self.quantity = quantity
        self.error = error
        self.raw = raw


def _select(items: list[Any], selector: str, key_quantity: str | None) -> int | None:
    """The position selected by an index (negative allowed) or a key name (spec §3.1)."""
    found = select_item(items, selector, key_quantity)
    return None if found is None else found[0]


def _walk_value(value: Any, rest: tuple[str, ...]) -> tuple[list[str], str | None]:
    """Index into a quantity value (JSON lists/dicts or numpy arrays); (segments, error)."""
    done: list[str] = []
    for seg in rest:
        try:
            if isinstance(value, dict):
                value = value[seg]
                done.append(seg)
            else:
                index = int(seg)
                n = len(value)
                if not -n <= index < n:
                    return done, f"index {index} out of range ({n} values)"
                value = value[index]
                done.append(str(index % n))
        except (KeyError, ValueError, TypeError):
            return done, f"cannot index into the value with {seg!r}"
    return done, None


def _find_target(root: _Cursor, fragment: tuple[str, ...], ctx: SectionContext | None, classes: _Classes) -> _Target:
    """Walk a fragment from an archive root; never raises, reports a missing target instead."""
    cur = root
    parts: list[str] = []
    i, n = 0, len(fragment)

    def missing(why: str) -> _Target:
        return _Target("/" + "/".join(list(parts) + list(fragment[i:])), None, None, why, None)

    while i < n:
        seg = fragment[i]
        fm = fields_by_name(cur.cls).get(seg)
        if fm is None:
            if cur.raw is None or seg not in cur.raw:  # an unknown key kept in m_extras
                return missing(f"{cur.cls.m_qualified_name} has no property {seg!r}")
            done, error = _walk_value(cur.raw[seg], fragment[i + 1 :])
            path = "/" + "/".join(parts + [seg] + done)
            return _Target(path, cur.cls.m_qualified_name, seg, error, None) if not error else missing(error)
        if fm.kind == "quantity":
            value = cur.quantity_value(fm)
            if value is None:
                return missing(f"{seg!r} is not set")
            done, error = _walk_value(value, fragment[i + 1 :])
            if error:
                return missing(error)
            return _Target("/" + "/".join(parts + [seg] + done), cur.cls.m_qualified_name, seg, None, None)
        found = _items(cur, fm)
        if not found or not found[0]:
            return missing(f"{seg!r} is not set")
        items, is_obj = found
        if fm.repeats and i + 1 >= n:  # the whole list: NOMAD resolves it to the sections
            parts.append(seg)
            declared = classes.declared(ctx, cur.cls, fm)
            return _Target("/" + "/".join(parts), declared.m_qualified_name if declared else None, None, None, None)
        pos = _select(items, fragment[i + 1], fm.key_quantity) if fm.repeats else 0
        if pos is None:
            selector = fragment[i + 1]
            what = f"index {selector} out of range" if selector.lstrip("-").isdigit() else f"no item {selector!r}"
            return missing(f"{what} in {seg!r} ({len(items)} items)")
        index = pos if fm.repeats else None
        child = _cursor(cur, fm, index, items[pos], is_obj, ctx, classes)
        if child is None:
            return missing(f"item {pos} of {seg!r} is not a section")
        cur = child
        parts.extend((seg, str(pos)) if fm.repeats else (seg,))
        i += 2 if fm.repeats else 1
    return _Target("/" + "/".join(parts), cur.cls.m_qualified_name, None, None, cur.raw)


# -- the builder --------------------------------------------------------------------------------
class _Builder:
    def __init__(self, roots: list[Section], containment: bool, resolve: bool, definitions: bool) -> None:
        self.g: nx.MultiDiGraph = nx.MultiDiGraph()
        self.containment = containment
        self.resolve = resolve
        self.definitions = definitions
        self.classes = _Classes()
        self.roots: dict[str, Section] = {}
        for root in roots:
            self.roots.setdefault(root.m_entry_id or "", root)
        self.fetched: dict[str, Section] = {}
        self.targets: dict[tuple[str, tuple[str, ...]], tuple[str, _Target | None]] = {}
        self.by_string: dict[tuple[str, str], Any] = {}
        self._paths: dict[int, tuple[Any, str]] = {}

    def build(self, roots: list[Section], progress: bool | None = None) -> nx.MultiDiGraph:
        bar = Progress(None if progress is None and len(roots) > 1 else bool(progress) and len(roots) > 1, desc="graph")
        bar.total = len(roots)
        for root in roots:
            self.walk(root)
            bar.advance()
        bar.close()
        return self.g

    # nodes
    def add_node(self, node: str, entry_id: str, path: str, **attrs: Any) -> None:
        if node in self.g:
            data = self.g.nodes[node]
            for key, value in attrs.items():
                if value is not None and not data.get(key):
                    data[key] = value
            return
        base: dict[str, Any] = {"entry_id": entry_id, "path": path, "remote": False, "dangling": False}
        base.update({k: v for k, v in attrs.items() if v is not None})
        self.g.add_node(node, **base)

    def path_of(self, link: _Link) -> str:
        """The path string of a link, from the nearest link whose path is already known.

        With containment every section becomes a node, and walking each one's links to the
        root would be quadratic in the nesting depth (8,000 levels: 2 s); each path is instead
        its parent's plus one segment.
        """
        if link is None:
            return "/"
        known = self._paths.get(id(link))
        if known is not None:
            return known[1]
        pending: list[tuple[Any, str]] = []
        node: _Link = link
        while node is not None and id(node) not in self._paths:
            pending.append(node)
            node = node[0]
        path = "" if node is None else self._paths[id(node)][1].rstrip("/")
        for each in reversed(pending):
            path = f"{path}/{each[1]}"
            self._paths[id(each)] = (each, path)  # the link itself is kept alive with its id
        return path

    def add_section_node(self, entry_id: str, cur: _Cursor) -> str:
        path = self.path_of(cur.link) if self.containment else _path_of(cur.link)
        node = _address(entry_id, path)
        self.add_node(node, entry_id, path, section=cur.cls.m_qualified_name, label=_label(path, cur.raw))
        return node

    # the walk
    def walk(self, root: Section) -> None:
        ctx = root.m_context
        entry_id = root.m_entry_id or ""
        start = _Cursor.of(root, None)
        # Each entry carries the section's node once it has one (always with containment).
        stack: list[tuple[_Cursor, str | None]] = [(start, None)]
        if self.containment:
            stack = [(start, self.add_section_node(entry_id, start))]
        while stack:
            cur, holder_node = stack.pop()
            if cur.obj is None and not self.containment:
                self.walk_raw(ctx, entry_id, cur, stack)
                continue
            if self.definitions and cur.raw is not None and isinstance(cur.raw.get("m_def"), str):
                holder_node = self.reference_edges(ctx, entry_id, cur, holder_node, "m_def", cur.raw["m_def"], "definition")
            for fm in cur.field_names():
                if fm.kind == "sub_section":
                    for index, child in reversed(_children(cur, fm, ctx, self.classes)):
                        child_node = None
                        if self.containment:
                            holder_node = holder_node or self.add_section_node(entry_id, cur)
                            child_node = self.add_section_node(entry_id, child)
                            extra = {"index": index} if index is not None else {}
                            self.g.add_edge(holder_node, child_node, kind="contains", quantity=fm.name, **extra)
                        stack.append((child, child_node))
                elif fm.type_kind in _REFERENCE_KINDS or fm.dtype == _QUANTITY_TYPE:
                    value = cur.reference_value(fm) if fm.type_kind in _REFERENCE_KINDS else cur.quantity_value(fm)
                    holder_node = self.quantity_edges(ctx, entry_id, cur, holder_node, fm, value)

    def walk_raw(self, ctx: SectionContext | None, entry_id: str, cur: _Cursor, stack: list[Any]) -> None:
        """The walk's hot path: a raw dict that no Section object wraps, without containment."""
        raw = cur.raw
        if raw is None:
            return
        by_name = fields_by_name(cur.cls)
        holder: str | None = None
        if self.definitions and isinstance(raw.get("m_def"), str):
            holder = self.reference_edges(ctx, entry_id, cur, holder, "m_def", raw["m_def"], "definition")
        for key, value in raw.items():
            fm = by_name.get(key)
            if fm is None or value is None:
                continue
            if fm.kind != "sub_section":
                if fm.type_kind in _REFERENCE_KINDS or fm.dtype == _QUANTITY_TYPE:
                    holder = self.quantity_edges(ctx, entry_id, cur, holder, fm, value)
            elif fm.repeats and type(value) is list:
                declared = self.classes.declared(ctx, cur.cls, fm)
                if declared is None:
                    continue
                link = (cur.link, key)
                for i, item in enumerate(value):
                    if type(item) is dict:
                        cls = declared if "m_def" not in item else self.classes.for_item(ctx, declared, item)
                        stack.append((_Cursor(cls, None, item, (link, str(i))), None))
            else:
                stack.extend([(child, None) for _, child in _children(cur, fm, ctx, self.classes)])

    def quantity_edges(
        self, ctx: SectionContext | None, entry_id: str, cur: _Cursor, holder: str | None, fm: FieldMeta, value: Any
    ) -> str | None:
        """The edges of a reference quantity, or of a definition's reference ``type``."""
        if value is None:
            return holder
        if fm.type_kind in _REFERENCE_KINDS:
            holder = self.reference_edges(ctx, entry_id, cur, holder, fm.name, value, "reference")
        elif fm.dtype == _QUANTITY_TYPE:
            if isinstance(value, dict) and value.get("type_kind") in _REFERENCE_KINDS:
                holder = self.reference_edges(ctx, entry_id, cur, holder, fm.name, value.get("type_data"), "reference")
        return holder

    def reference_edges(
        self, ctx: SectionContext | None, entry_id: str, cur: _Cursor, holder: str | None, quantity: str, value: Any, kind: str
    ) -> str | None:
        """Add the edges of one reference quantity (a string or a list of them)."""
        values = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        by_string = self.by_string
        for index, ref in values:
            if not isinstance(ref, str):
                continue
            # The same string in the same archive always leads to the same node (MD archives
            # repeat each system reference several times).
            key = (entry_id, ref)
            target = by_string.get(key, _EMPTY)
            if target is _EMPTY:
                parsed = parse_reference(ref)
                target = self.target(ctx, entry_id, parsed) if parsed is not None else None
                by_string[key] = target
            if target is None:  # dataset ids, Python names in m_def: not archive references
                continue
            holder = holder or self.add_section_node(entry_id, cur)
            extra = {"index": index} if index is not None else {}
            self.g.add_edge(holder, target, kind=kind, quantity=quantity, reference=ref, **extra)
        return holder

    def target(self, ctx: SectionContext | None, entry_id: str, ref: ParsedReference) -> str:
        """The node a reference points at, adding it (remote/dangling as found) if new."""
        upload_id = ctx.upload_id if ctx is not None else None
        installation, _, target_entry, fragment = ref.canonical(upload_id, entry_id or None)
        target_entry = (target_entry or "").strip()
        key = (_address(target_entry, "", installation) + (ref.raw.partition("#")[0] if not target_entry else ""), fragment)
        cached = self.targets.get(key)
        if cached is not None:
            return cached[0]
        known = ref.is_local or bool(target_entry)
        root = None if installation or not known else self.roots.get(target_entry) or self.fetched.get(target_entry)
        error = None
        if root is None and self.resolve and ctx is not None:
            root, error = self.fetch(ctx, ref, target_entry)
        if root is None:
            node = self.remote_node(ref, installation, target_entry, fragment, error)
            self.targets[key] = (node, None)
            return node
        found = _find_target(_Cursor.of(root, None), fragment, root.m_context, self.classes)
        target_entry = root.m_entry_id or target_entry
        if found.error and _not_downloaded(root, fragment):
            # a partial archive from a client: the target may well exist on the server
            if self.resolve:
                try:
                    target = root.m_resolve("#/" + "/".join(fragment))
                    if isinstance(target, Pending):  # planned, not fetched: learn it now
                        target.m_settle()
                except (ArchivemapError, LookupError):
                    pass
                found = _find_target(_Cursor.of(root, None), fragment, root.m_context, self.classes)
            if found.error:
                node = _address(target_entry, "/" + "/".join(fragment))
                self.add_node(node, target_entry, "/" + "/".join(fragment), label=_label("/" + "/".join(fragment), None),
                              remote=True, error="not downloaded")
                self.targets[key] = (node, None)
                return node
        node = _address(target_entry, found.path)
        if found.error:
            self.add_node(node, target_entry, found.path, label=_label(found.path, None), dangling=True, error=found.error)
        else:
            label = _label(found.path, found.raw)
            self.add_node(node, target_entry, found.path, section=found.section, label=label, quantity=found.quantity)
        self.targets[key] = (node, found)
        return node

    def fetch(self, ctx: SectionContext, ref: ParsedReference, target_entry: str) -> tuple[Section | None, str | None]:
        try:
            root = ctx.archive_for(ref)
        except (ArchivemapError, LookupError, OSError) as exc:
            return None, str(exc)
        if root is None:  # the archive was loaded without a source
            return None, None
        self.fetched[root.m_entry_id or target_entry] = root
        return root, None

    def remote_node(
        self, ref: ParsedReference, installation: str | None, entry_id: str, fragment: tuple[str, ...], error: str | None
    ) -> str:
        path = "/" + "/".join(fragment)
        if entry_id or installation:
            node = _address(entry_id, path, installation)
        else:  # no entry id can be computed (e.g. a mainfile without a known upload)
            node = f"{ref.raw.partition('#')[0]}#{path}"
        self.add_node(node, entry_id, path, label=_label(path, None), remote=True, error=error)
        return node


def _roots_of(archives: Any) -> list[Section]:
    if isinstance(archives, Section):
        return [archives.m_root]
    if isinstance(archives, (DirectorySource, ZipSource)):
        return [archives.archive(e) for e in archives.entry_ids()]
    roots: list[Section] = []
    for item in archives:
        if not isinstance(item, Section):
            raise TypeError(f"expected archive sections, got {type(item).__name__}")
        roots.append(item.m_root)
    return roots


def reference_graph(
    archive_or_archives: Section | Iterable[Section] | Any,
    containment: bool = False,
    resolve: bool = False,
    definitions: bool = False,
    progress: bool | None = None,
) -> nx.MultiDiGraph:
    """Build the graph of every reference in one or more archives.

    Several archives in one graph connect through their cross-entry references, which are
    canonicalised with each archive's own upload and entry id (mainfile and raw-file forms
    become entry ids, spec §3.4). Node and edge attributes are listed in the module docstring.

    Args:
        archive_or_archives: a loaded archive (any section of it), an iterable of archives, or
            a source with ``entry_ids()`` and ``archive(entry_id)`` such as
            :class:`~archivemap.archive.sources.DirectorySource` (all of its archives are loaded).
        containment: also add a node for every section and a ``contains`` edge from each
            section to each of its sub-sections, so the graph shows the tree as well.
        resolve: load targets in archives that were not given through each archive's source
            (folder, zip or client); they then become ordinary nodes. Targets the source
            cannot provide stay ``remote`` with an ``error``.
        definitions: also add ``definition`` edges for ``m_def`` values that are archive
            references (custom schemas in ``definitions`` of the same or another entry).
        progress: show progress (archives walked) on stderr; tqdm's bar if installed. By
            default (``None``) only where a human watches: a terminal or a notebook.

    Returns:
        A new ``networkx.MultiDiGraph``.

    Raises:
        TypeError: an item of ``archive_or_archives`` is not a section.
    """
    roots = _roots_of(archive_or_archives)
    partial = [root.m_entry_id or "?" for root in roots if partly_downloaded(root)]
    if partial:  # the graph walks what is here; a lazy archive downloads as it is read, not now
        warn_at_caller(
            f"{len(partial)} of {len(roots)} archives are partly downloaded ({', '.join(partial[:5])}"
            f"{' …' if len(partial) > 5 else ''}): the graph has only the references downloaded "
            "so far (resolve=True fetches their targets); download them with required='*' for "
            "the whole graph",
            UserWarning,
        )
    # The walk allocates ~10 small objects per section while the parsed archive (millions of
    # objects) is alive, so the cyclic GC rescans it again and again: pausing it cut the first
    # build on a freshly parsed 20,000-step MD archive from 3.1 s to 2.2 s (benchmarks/bench_graph.py).
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _Builder(roots, containment, resolve, definitions).build(roots, progress)
    finally:
        if was_enabled:
            gc.enable()


def _not_downloaded(root: Section, fragment: tuple[str, ...]) -> bool:
    """Whether a fragment of a partially downloaded archive was never fetched."""
    ctx = root.m_context
    fetcher = ctx.fetcher if ctx is not None else None
    if fetcher is None:
        return False
    path = tuple(int(s) if s.isdigit() else s for s in fragment)
    return not fetcher.is_downloaded(path)
