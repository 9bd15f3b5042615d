"""Lazy remote archives: fetch exactly what is navigated to, and merge it into the tree.

An archive from :meth:`Client.archive` remembers every ``required`` spec it was downloaded
with. Reading something those specs did not cover sends one ``POST entries/{id}/archive/query``
whose ``required`` selects exactly that path (spec §4.4), grafts the answer into the raw data at
the original indices (the server compacts ``[i]`` selections to position 0 and pads placed
reference targets with ``None``), and patches already-built sections along the path so that
objects the user holds stay the same objects.

Negative indices and key-name segments are resolved here, not on the server (spec §7): one
small request lists the items (their key quantities only), the index is computed, and the
path is fetched with absolute indices.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from archivemap.errors import AbsentError
from archivemap.required import Required, covers, graft, merge_required, required_for_path
from archivemap.sections import Section, _fields_by_name

if TYPE_CHECKING:
    from archivemap._context import ArchiveContext
    from archivemap.client import Client
    from archivemap.references import ParsedReference
    from archivemap.schema import Schema

__all__ = ["ClientSource", "RemoteFetcher", "open_archive"]

Path = tuple[Any, ...]


class RemoteFetcher:
    """Fetches what one entry's partial archive lacks (the :class:`Fetcher` of a client archive).

    Attributes:
        downloaded: every ``required`` spec this archive's data came from.
        fetches: how many requests this fetcher sent (for tests and benchmarks).
    """

    def __init__(self, client: Client, entry_id: str, required: Required, auto: bool = True) -> None:
        self.client = client
        self.entry_id = entry_id
        self.auto = auto
        self.downloaded: list[Required] = [required]
        self.fetches = 0
        self.complete_lists: set[Path] = set()
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"RemoteFetcher(entry_id={self.entry_id!r}, fetches={self.fetches})"

    def _allowed(self, path: Path) -> None:
        """Raise when fetching is off (``Client.archive(..., fetch=False)``)."""
        if not self.auto:
            from archivemap.errors import NotDownloadedError
            from archivemap.paths import format_path

            raise NotDownloadedError(
                f"{format_path(tuple(path))!r} was not downloaded and fetching is off; request it in "
                "'required', call archive.prefetch([...]) with fetching on, or open the archive "
                "with fetch=True",
                path="/" + "/".join(map(str, path)),
                entry_id=self.entry_id,
            )

    def is_downloaded(self, path: Path) -> bool:
        """Whether ``path`` (names and absolute indices) is covered by what was downloaded."""
        return any(covers(spec, list(path)) for spec in self.downloaded)

    def fetch(self, root: Section, path: Path) -> None:
        """Fetch one path (no-op when it is already here)."""
        self.fetch_many(root, [path])

    def fetch_many(self, root: Section, paths: Iterable[Path]) -> int:
        """Fetch several paths of this entry in one request; returns the requests sent (0/1)."""
        with self._lock:
            wanted = [tuple(p) for p in paths if not self.is_downloaded(tuple(p))]
            if not wanted:
                return 0
            self._allowed(wanted[0])
            spec = merge_required([required_for_path(list(p)) for p in wanted])
            answer = self.client.archive_dict(self.entry_id, required=spec)
            self.fetches += 1
            raw = root._m_data
            refs = answer.pop("m_ref_archives", None)
            graft(raw, answer, spec)
            if isinstance(refs, dict) and refs and root._m_ctx is not None:
                source = root._m_ctx.source
                if isinstance(source, ClientSource):
                    source.remember_ref_archives(refs)
            self.downloaded.append(spec)
            for p in wanted:
                _patch_built_sections(root, p)
            return 1

    def probe(self, section: Section, name: str, repeats: bool, keys: Sequence[str]) -> None:
        """Learn whether a sub-section exists (and its items, with ``m_def`` and ``keys`` only).

        Touching a sub-section that was not downloaded must not download the subtree: the
        answer's items become placeholders in the raw data (their other properties are fetched
        exactly when read), a repeating list gets its full length, and an absent sub-section is
        remembered as downloaded-and-absent.
        """
        from archivemap._loading import _path_tuple

        path = _path_tuple(section) + (name,)
        with self._lock:
            if self.is_downloaded(path) or name in (section._m_data or {}):
                return
            self._allowed(path)
            leaf: dict[str, Any] = {"m_def": "*", **{k: "*" for k in keys if k}}
            spec = required_for_path(list(path), leaf=leaf)
            answer = self.client.archive_dict(self.entry_id, required=spec)
            self.fetches += 1
            node = _compacted(answer, path)
            data = section._m_data
            if node is None or data is None:
                self.downloaded.append(required_for_path(list(path)))  # absent on the server
                return
            if repeats and isinstance(node, list):
                data[name] = [dict(item) if isinstance(item, dict) else None for item in node]
                self.complete_lists.add(path)
            elif not repeats and isinstance(node, dict):
                data[name] = dict(node)
            else:
                self.downloaded.append(required_for_path(list(path)))

    def list_items(self, root: Section, list_path: Path, keys: Sequence[str]) -> list[Any]:
        """The items of a repeating sub-section, with only ``keys`` of each (one request)."""
        with self._lock:
            self._allowed(list_path)
            leaf: dict[str, Any] = {k: "*" for k in keys} or {"m_def": "*"}
            spec = required_for_path(list(list_path), leaf=leaf)
            answer = self.client.archive_dict(self.entry_id, required=spec)
            self.fetches += 1
            node = _compacted(answer, list_path)
            items = node if isinstance(node, list) else []
            _pad_raw_list(root, list_path, len(items))
            return items


def _compacted(answer: Any, path: Path) -> Any:
    """The value at ``path`` in an answer where every ``[i]`` selection sits at position 0."""
    node = answer
    for seg in path:
        if isinstance(seg, int):
            node = node[0] if isinstance(node, list) and node else None
        else:
            node = node.get(seg) if isinstance(node, dict) else None
        if node is None:
            return None
    return node


def _pad_raw_list(root: Section, list_path: Path, length: int) -> None:
    """Make the raw list at ``list_path`` at least ``length`` long (``None``: not loaded).

    Only where its parent is already in the raw data: parents are never invented (a dict where
    a list belongs would read as "empty" later).
    """
    node: Any = root._m_data
    for seg in list_path[:-1]:
        if isinstance(seg, int):
            node = node[seg] if isinstance(node, list) and seg < len(node) else None
        else:
            node = node.get(seg) if isinstance(node, dict) else None
        if node is None:
            return
    name = list_path[-1]
    if not isinstance(node, dict):
        return
    items = node.get(name)
    if items is None:
        items = node[name] = []
    if not isinstance(items, list):
        return
    if len(items) < length:
        items.extend([None] * (length - len(items)))
    _patch_built_sections(root, list_path)


def _class_for_item(*args: Any) -> Any:
    from archivemap._loading import _class_for_item as pick

    return pick(*args)


def _patch_built_sections(root: Section, path: Path) -> None:
    """After a graft: give already-built lists and empty single slots their new items."""
    node: Section = root
    i = 0
    while i < len(path):
        seg = path[i]
        fm = _fields_by_name(type(node)).get(seg) if isinstance(seg, str) else None
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
            declared = ctx.schema.sub_section_class(type(node), fm) if ctx is not None else None
            for j, item in enumerate(raw):
                if list.__getitem__(built, j) is None and isinstance(item, dict) and declared is not None:
                    cls = _class_for_item(node, fm, declared, item, f"{node.m_path()}/{fm.name}/{j}")
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


def absolute_path(root: Section, segments: Sequence[str], fetcher: RemoteFetcher) -> Path | None:
    """Plan a reference fragment as a path of names and absolute indices, for one fetch.

    Walks the *classes* (not the data) to know which names are repeating sub-sections; a
    negative index or a key segment is turned into an absolute index with one listing
    request. Returns ``None`` when the fragment leaves what the classes describe (then the
    caller walks step by step).

    Raises:
        AbsentError: a negative index or key that selects no item.
    """
    ctx = root._m_ctx
    if ctx is None:
        return None
    cls: type[Section] = type(root)
    out: list[Any] = []
    i = 0
    while i < len(segments):
        seg = segments[i]
        fm = _fields_by_name(cls).get(seg)
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
                items = fetcher.list_items(root, tuple(out), keys if not _is_int(selector) else [])
                if _is_int(selector):
                    fetcher.complete_lists.add(tuple(out))
                index = _select_index(items, selector, keys)
                if index is None:
                    raise AbsentError(
                        f"no item [{selector}] in {len(items)} items", path="/" + "/".join(map(str, out)),
                        entry_id=fetcher.entry_id,
                    )
                out.append(index)
            i += 2
        else:
            i += 1
        cls = ctx.schema.sub_section_class(cls, fm)
    return tuple(out)


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


def _select_index(items: list[Any], selector: str, keys: Sequence[str]) -> int | None:
    if _is_int(selector):
        index = int(selector)
        if index < 0:
            index += len(items)
        return index if 0 <= index < len(items) else None
    from archivemap.references import item_by_key

    found = item_by_key(items, selector, keys[0] if keys and keys[0] != "name" else None)
    return None if found is None else next(j for j, item in enumerate(items) if item is found)


class ClientSource:
    """Other entries of the same installation, fetched lazily through a client.

    References into other installations get a client for that host without credentials
    (:meth:`Client.for_host`), so a token never leaves the host it was given for.
    """

    def __init__(self, client: Client, schema: Schema) -> None:
        self.client = client
        self.schema = schema
        self._roots: dict[tuple[str, str], Section] = {}
        self._ref_archives: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()

    def remember_ref_archives(self, refs: dict[str, Any]) -> None:
        """Keep the other-entry subsets a server placed in ``m_ref_archives`` (spec §4.5)."""
        for url, data in refs.items():
            entry_id = url.rstrip("/").rsplit("/", 1)[-1]
            if isinstance(data, dict):
                self._ref_archives[entry_id] = data

    def register(self, root: Section) -> None:
        ctx = root._m_ctx
        if ctx is not None and ctx.entry_id:
            self._roots.setdefault((self.client.base_url, ctx.entry_id), root)

    def archive_for(self, ref: ParsedReference, context: ArchiveContext) -> Section:
        """A lazy root for the referenced entry; nothing is downloaded until it is read."""
        from archivemap.errors import DanglingReferenceError

        client = self.client if ref.installation is None else self.client.for_host(ref.installation)
        entry_id = ref.target_entry_id(context.upload_id)
        if entry_id is None:
            raise DanglingReferenceError("cannot tell which entry this reference points to", reference=ref.raw)
        key = (client.base_url, entry_id)
        with self._lock:
            root = self._roots.get(key)
            if root is None:
                seed = self._ref_archives.pop(entry_id, None) if client is self.client else None
                # ../upload/... targets share the referrer's upload; ../uploads/<u>/... name it
                upload_id = ref.upload_id or (context.upload_id if ref.entry_id is None or "/upload/" in ref.raw else None)
                root = open_archive(
                    client, entry_id, required=None, schema=self.schema, source=self, seed=seed, upload_id=upload_id
                )
                self._roots[key] = root
            return root


def anchored(answer: dict[str, Any], required: Required, source: ClientSource | None) -> dict[str, Any]:
    """The archive dict of an answer with ``[i]`` selections put back at index ``i``.

    The server compacts index selections to position 0 (spec §4.3); a mapped archive must
    have every item where the archive has it, so the first answer is grafted like later ones.

    Raises:
        ValueError: ``required`` uses negative indices or ``resolve-inplace`` (the positions
            cannot be recovered from such answers; ``Client.archive_dict`` returns them raw).
    """
    refs = answer.pop("m_ref_archives", None)
    if isinstance(refs, dict) and refs and source is not None:
        source.remember_ref_archives(refs)
    try:
        return graft({}, answer, required)
    except ValueError as exc:
        raise ValueError(
            f"cannot map an archive downloaded with this 'required' ({exc}); use non-negative "
            "indices without resolve-inplace, or Client.archive_dict for the raw answer"
        ) from None


def open_archive(
    client: Client,
    entry_id: str,
    required: Required | None = "*",
    *,
    schema: Any,
    source: ClientSource | None = None,
    seed: dict[str, Any] | None = None,
    upload_id: str | None = None,
    fetch: bool = True,
) -> Any:
    """Download ``required`` of one entry and return its lazy root section.

    ``required=None`` downloads nothing now (the root starts empty, or from ``seed``).
    """
    from archivemap.loading import load
    from archivemap.schema import as_schema

    sch = as_schema(schema)
    src = source or ClientSource(client, sch)
    if required is None:
        raw: dict[str, Any] = dict(seed or {})
        raw.pop("m_def", None)
        fetcher = RemoteFetcher(client, entry_id, {})
    else:
        data = client.archive_entry(entry_id, required)
        raw = anchored(data["archive"], required, src)
        fetcher = RemoteFetcher(client, entry_id, required, auto=fetch)
        upload_id = data.get("upload_id") or upload_id
    return load(raw, sch, archives=src, fetcher=fetcher, entry_id=entry_id, upload_id=upload_id)


class RemoteSectionList(list):  # type: ignore[type-arg]
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

    def _path(self) -> Path:
        from archivemap._loading import _path_tuple

        return _path_tuple(self._owner) + (self._name,)

    def _fetcher(self) -> RemoteFetcher | None:
        ctx = self._owner._m_ctx
        fetcher = ctx.fetcher if ctx is not None else None
        return fetcher if isinstance(fetcher, RemoteFetcher) else None

    def _ensure_complete(self) -> None:
        fetcher = self._fetcher()
        if fetcher is None or fetcher.is_downloaded(self._path()):
            return
        path = self._path()
        if path in fetcher.complete_lists:
            return
        fetcher.list_items(self._owner.m_root, path, [])
        fetcher.complete_lists.add(path)

    def __len__(self) -> int:
        self._ensure_complete()
        return super().__len__()

    def __iter__(self):  # type: ignore[no-untyped-def]
        self._ensure_complete()
        missing = [i for i in range(list.__len__(self)) if list.__getitem__(self, i) is None]
        fetcher = self._fetcher()
        if missing and fetcher is not None:  # one request for every item not loaded yet
            base = self._path()
            fetcher.fetch_many(self._owner.m_root, [base + (i,) for i in missing])
        for i in range(super().__len__()):
            yield super().__getitem__(i)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            self._ensure_complete()
            wanted = range(*index.indices(super().__len__()))
            missing = [i for i in wanted if list.__getitem__(self, i) is None]
            fetcher = self._fetcher()
            if missing and fetcher is not None:
                fetcher.fetch_many(self._owner.m_root, [self._path() + (i,) for i in missing])
            return [list.__getitem__(self, i) for i in wanted]
        if index < 0 or index >= super().__len__():
            self._ensure_complete()
        item = super().__getitem__(index)
        if item is None:
            fetcher = self._fetcher()
            if fetcher is not None:
                absolute = index if index >= 0 else super().__len__() + index
                fetcher.fetch(self._owner.m_root, self._path() + (absolute,))
                item = super().__getitem__(index)
        return item

