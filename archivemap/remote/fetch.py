"""Lazy remote archives: fetch exactly what is navigated to.

An archive from :meth:`Client.archive` remembers every ``required`` spec it was downloaded
with. Reading something those specs did not cover sends one ``POST entries/{id}/archive/query``
whose ``required`` selects exactly that path (spec §4.4). The answer is re-anchored here (the
server compacts ``[i]`` selections to position 0 and pads placed reference targets with
``None``) and handed to the archive layer as a partial archive, which merges it into the tree
and patches already-built sections so that objects the user holds stay the same objects.

This module speaks JSON only: :class:`RemoteFetcher` implements the archive layer's
:class:`~archivemap.archive.base.Fetcher` protocol and :class:`ClientSource` its
:class:`~archivemap.archive.context.ArchiveSource` protocol. What they need of the HTTP
client is the :class:`ArchiveAPI` protocol, so the client sits above them and nothing here
imports it.

Negative indices and key-name segments are resolved by the archive layer, not on the server
(spec §7): one small request lists the items (their key quantities only), the index is
computed, and the path is fetched with absolute indices.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

from archivemap._json import merge_partial, pad_list
from archivemap.archive.context import ArchiveContext, new_archive
from archivemap.archive.references import ParsedReference
from archivemap.archive.schema import Schema, SchemaSource, as_schema
from archivemap.archive.sections import Section
from archivemap.errors import DanglingReferenceError, NotDownloadedError, UnsupportedReferenceError
from archivemap.paths import format_path
from archivemap.metainfo.fields import fields_by_name
from archivemap.remote.required import (
    RESOLVE_INPLACE,
    Required,
    asks_for,
    covers,
    format_required_key,
    graft,
    merge_required,
    parse_required_key,
    placed_targets,
    required_for_path,
    typed_path_spec,
)

__all__ = [
    "ArchiveAPI",
    "ClientSource",
    "RemoteFetcher",
    "absolute_required",
    "anchored",
    "dense_groups",
    "open_archive",
    "open_archive_from",
]

Path = tuple[Any, ...]


class ArchiveAPI(Protocol):
    """What lazy remote archives need of an HTTP client (implemented by ``Client``)."""

    @property
    def base_url(self) -> str:
        """The API base URL, e.g. ``https://nomad-lab.eu/prod/v1/api/v1``."""
        ...

    def archive_raw(self, entry_id: str, required: Required = "*") -> dict[str, Any]:
        """The archive dict of ``POST entries/{id}/archive/query``."""
        ...

    def archive_answer_raw(self, entry_id: str, required: Required = "*") -> dict[str, Any]:
        """The ``data`` part of that answer (``entry_id``, ``upload_id``, ``archive``)."""
        ...

    def for_host(self, url: str) -> ArchiveAPI:
        """A client for another installation, without this one's credentials.

        Raises ``UnsupportedReferenceError`` for an installation the user did not allow.
        """
        ...


class RemoteFetcher:
    """Fetches what one entry's partial archive lacks (the archive layer's ``Fetcher``).

    Attributes:
        downloaded: every ``required`` spec this archive's data came from.
        fetches: how many requests this fetcher sent (for tests and benchmarks).
    """

    def __init__(
        self,
        client: ArchiveAPI,
        entry_id: str,
        required: Required,
        auto: bool = True,
        source: ClientSource | None = None,
    ) -> None:
        self.client = client
        self.entry_id = entry_id
        self.auto = auto
        self.source = source
        self.downloaded: list[Required] = [required]
        self.fetches = 0
        self._complete_lists: set[Path] = set()
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"RemoteFetcher(entry_id={self.entry_id!r}, fetches={self.fetches})"

    def __reduce__(self) -> tuple[Any, ...]:
        # the client (without credentials unless it opted in) and what was downloaded so far
        with self._lock:
            state = (list(self.downloaded), sorted(self._complete_lists, key=repr), self.fetches)
        return (_rebuild_fetcher, (self.client, self.entry_id, self.auto, self.source, *state))

    def _allowed(self, path: Path) -> None:
        """Raise when fetching is off (``Client.archive(..., fetch=False)``)."""
        if not self.auto:
            raise NotDownloadedError(
                f"{format_path(tuple(path))!r} was not downloaded and fetching is off; request it in "
                "'required', call archive.prefetch([...]) with fetching on, or open the archive "
                "with fetch=True",
                path="/" + "/".join(map(str, path)),
                entry_id=self.entry_id,
            )

    def _ask(self, spec: Required) -> dict[str, Any]:
        answer = self.client.archive_raw(self.entry_id, required=spec)
        self.fetches += 1
        refs = answer.pop("m_ref_archives", None)
        if isinstance(refs, dict) and refs and self.source is not None:
            self.source.remember_ref_archives(refs)
        return answer

    # -- the Fetcher protocol -------------------------------------------------------------------
    def is_downloaded(self, path: Path) -> bool:
        """Whether ``path`` (names and absolute indices) is covered by what was downloaded."""
        return any(covers(spec, list(path)) for spec in self.downloaded)

    def learn_placed_targets(self, partial: Any, spec: Required) -> None:
        """Remember what an answer holds of the targets of references the spec followed.

        ``{"workflow2": {"results": {"calculation_result_ref": {"energy": "*"}}}}`` makes NOMAD
        place ``run[0].calculation[5].energy`` at its own path: that path was asked for too,
        so a key missing there is absent, not a reason for another request.
        """
        # only what the answer placed: NOMAD loses a target that lies inside a list the same
        # spec selects by index (run[0] ... system_ref -> /run/0/system/0)
        for target, sub, _ in placed_targets(partial, spec):
            self.downloaded.append(required_for_path(list(target), leaf=sub))

    def was_asked(self, path: Path) -> bool:
        """Whether a download asked for the key at ``path`` (so its absence means absent)."""
        return any(asks_for(spec, list(path)) for spec in self.downloaded)

    def is_complete_list(self, path: Path) -> bool:
        """Whether the list at ``path`` was padded to its full length."""
        return tuple(path) in self._complete_lists

    def mark_complete_list(self, path: Path) -> None:
        """Remember that the list at ``path`` is known at its full length."""
        self._complete_lists.add(tuple(path))

    def download(
        self, paths: Sequence[Path], typed: Sequence[int] | None = None, whole: bool = True
    ) -> dict[str, Any] | None:
        """Fetch several paths of this entry in one request; the answer, re-anchored.

        One request, unless two paths select far-apart items of one list
        (``calculation[0]`` and ``calculation[4199]``): ``required`` can name a list only once,
        so merging them would ask for every item in between; such paths go in separate
        requests (:func:`dense_groups`).

        ``typed[k]``: from this position of ``paths[k]`` on, every section along the path also
        brings its ``m_def``, so that sections first learned from this answer get their real
        class (a polymorphic ``workflow2`` is a ``GeometryOptimization``, not a ``Workflow``).
        ``whole=False`` asks for the sections at the ends of the paths by their ``m_def``
        only: whether they exist, and what they are, without their subtrees.
        """
        with self._lock:
            pairs = [
                (tuple(p), typed[k] if typed is not None else len(p))
                for k, p in enumerate(paths)
                if not self.is_downloaded(tuple(p))
            ]
            if not pairs:
                return None
            self._allowed(pairs[0][0])
            leaf: Required = "*" if whole else {"m_def": "*"}
            partial: dict[str, Any] = {}
            for group in dense_groups([p for p, _ in pairs]):
                spec = merge_required([typed_path_spec(pairs[k][0], pairs[k][1], leaf) for k in group])
                answer = self._ask(spec)
                part = graft({}, answer, spec)
                self.downloaded.append(spec)  # with an m_def leaf: asked for, not covered
                self.learn_placed_targets(part, spec)
                merge_partial(partial, part)
            return partial

    def list_items(self, path: Path, keys: Sequence[str]) -> list[Any]:
        """The items of a repeating sub-section, with only ``keys`` of each (one request)."""
        with self._lock:
            self._allowed(path)
            leaf: dict[str, Any] = {k: "*" for k in keys} or {"m_def": "*"}
            node = _compacted(self._ask(required_for_path(list(path), leaf=leaf)), path)
            return node if isinstance(node, list) else []


def dense_groups(paths: Sequence[Path]) -> list[list[int]]:
    """Group paths (by position) so that merging a group never asks for items nobody read.

    ``required`` names a list once per request, so two indices of one list merge into the
    slice that covers both, and the items in between come too (with the same sub-spec). A
    group takes a path unless that would bring more than :data:`MAX_UNREAD_ITEMS` items of one
    list that nobody selected (``scf_iteration[0]`` and ``[16]`` share a request: 15 small
    extras; ``calculation[0]`` and ``[4199]`` do not). Greedy, in the order given.
    """
    groups: list[tuple[list[int], dict[Path, set[int]]]] = []
    for k, path in enumerate(paths):
        # a list is named once per request whatever the indices above it (run[0] and run[1]
        # share "calculation"): the index sets are kept per names-only prefix
        picks: dict[Path, int] = {}
        for i in range(1, len(path)):
            if isinstance(path[i], int):
                names = tuple(seg for seg in path[:i] if isinstance(seg, str))
                if names in picks and picks[names] != path[i]:
                    continue  # one path, two items of one list name: a later group's concern
                picks[names] = path[i]
        for members, indices in groups:
            if all(_dense(indices.get(prefix, set()) | {index}) for prefix, index in picks.items()):
                members.append(k)
                for prefix, index in picks.items():
                    indices.setdefault(prefix, set()).add(index)
                break
        else:
            groups.append(([k], {prefix: {index} for prefix, index in picks.items()}))
    return [members for members, _ in groups]


#: How many unselected items of one list a merged request may bring along (see dense_groups).
MAX_UNREAD_ITEMS = 32


def _dense(indices: set[int]) -> bool:
    return max(indices) - min(indices) + 1 - len(indices) <= MAX_UNREAD_ITEMS


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


class ClientSource:
    """Other entries of the same installation, fetched lazily through a client.

    References into other installations get a client for that host without credentials
    (``Client.for_host``), so a token never leaves the host it was given for.
    """

    def __init__(self, client: ArchiveAPI, schema: Schema) -> None:
        self.client = client
        self.schema = schema
        self._roots: dict[tuple[str, str], Section] = {}
        self._ref_archives: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()

    def __reduce__(self) -> tuple[Any, ...]:
        # the archives it opened are not pickled: they are opened again when referenced
        with self._lock:
            seeds = dict(self._ref_archives)
        return (_rebuild_client_source, (self.client, self.schema, seeds))

    def remember_ref_archives(self, refs: dict[str, Any]) -> None:
        """Keep the other-entry subsets a server placed in ``m_ref_archives`` (spec §4.5)."""
        for url, data in refs.items():
            entry_id = url.rstrip("/").rsplit("/", 1)[-1]
            if isinstance(data, dict):
                self._ref_archives[entry_id] = data

    def register(self, root: Section) -> None:
        """Remember a root of this installation, so references back to it reuse it."""
        if root.m_entry_id:
            self._roots.setdefault((self.client.base_url, root.m_entry_id), root)

    def archive_for(self, ref: ParsedReference, context: ArchiveContext) -> Section:
        """A lazy root for the referenced entry; nothing is downloaded until it is read.

        References and ``m_def`` values come from archive data, so the installation they
        name is checked before anything is sent: only the client's own and those the user
        listed (``Client(follow_hosts=...)``) are followed.

        Raises:
            UnsupportedReferenceError: another installation that is not allowed (no request
                is made), naming it and how to allow it.
            DanglingReferenceError: the reference names no entry.
        """
        client = self.client
        if ref.installation is not None:
            try:
                client = self.client.for_host(ref.installation)
            except UnsupportedReferenceError as exc:
                raise UnsupportedReferenceError(str(exc), reference=ref.raw, entry_id=context.entry_id) from None
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


def _rebuild_fetcher(
    client: ArchiveAPI,
    entry_id: str,
    auto: bool,
    source: ClientSource | None,
    downloaded: list[Required],
    complete_lists: list[Path],
    fetches: int,
) -> RemoteFetcher:
    fetcher = RemoteFetcher(client, entry_id, {}, auto=auto, source=source)
    fetcher.downloaded = downloaded
    fetcher._complete_lists = set(complete_lists)
    fetcher.fetches = fetches
    return fetcher


def _rebuild_client_source(client: ArchiveAPI, schema: Schema, seeds: dict[str, dict[str, Any]]) -> ClientSource:
    source = ClientSource(client, schema)
    source._ref_archives.update(seeds)
    return source


def anchored(answer: dict[str, Any], required: Required, source: ClientSource | None) -> dict[str, Any]:
    """The archive dict of an answer with ``[i]`` selections put back at index ``i``.

    The server compacts index selections to position 0 (spec §4.3); a mapped archive must
    have every item where the archive has it, so the first answer is grafted like later ones.

    ``resolve-inplace: true`` answers hold each reference's target in place of the reference
    string; they are grafted like others (the targets stay where the references were).

    Raises:
        ValueError: ``required`` still uses negative indices (make them absolute first, see
            :func:`absolute_required`; ``Client.archive_raw`` returns such answers raw).
    """
    refs = answer.pop("m_ref_archives", None)
    if isinstance(refs, dict) and refs and source is not None:
        source.remember_ref_archives(refs)
    try:
        return graft({}, answer, _without_resolve_inplace(required))
    except ValueError as exc:
        raise ValueError(
            f"cannot map an archive downloaded with this 'required' ({exc}); use non-negative "
            "indices without resolve-inplace, or Client.archive_raw for the raw answer"
        ) from None


def open_archive(
    client: ArchiveAPI,
    entry_id: str,
    required: Required | None = "*",
    *,
    schema: Schema | SchemaSource,
    source: ClientSource | None = None,
    seed: dict[str, Any] | None = None,
    upload_id: str | None = None,
    fetch: bool = True,
) -> Section:
    """Download ``required`` of one entry and return its lazy root section.

    ``required=None`` downloads nothing now (the root starts empty, or from ``seed``).
    """
    schema = as_schema(schema)
    src = source or ClientSource(client, schema)
    if required is None:
        raw: dict[str, Any] = dict(seed or {})
        raw.pop("m_def", None)
        fetcher = RemoteFetcher(client, entry_id, {}, source=src)
    else:
        required, lengths = absolute_required_and_lengths(client, entry_id, required, schema)
        data = client.archive_answer_raw(entry_id, required)
        raw = anchored(data["archive"], required, src)
        fetcher = RemoteFetcher(client, entry_id, _without_resolve_inplace(required), auto=fetch, source=src)
        fetcher.learn_placed_targets(raw, required)
        for list_path, length in lengths.items():  # learned already: no second listing later
            if pad_list(raw, list_path, length):
                fetcher.mark_complete_list(list_path)
        upload_id = data.get("upload_id") or upload_id
    return new_archive(raw, schema, source=src, fetcher=fetcher, entry_id=entry_id, upload_id=upload_id)


def open_archive_from(
    client: ArchiveAPI, entry_id: str, answer: dict[str, Any], required: Required, schema: Schema, source: ClientSource
) -> Section:
    """The lazy root of an archive already downloaded in bulk with ``required``."""
    raw = anchored(answer, required, source)
    fetcher = RemoteFetcher(client, entry_id, required, source=source)
    fetcher.learn_placed_targets(raw, required)
    return new_archive(raw, schema, source=source, fetcher=fetcher, entry_id=entry_id)


def _without_resolve_inplace(required: Required) -> Required:
    if isinstance(required, dict) and RESOLVE_INPLACE in required:
        return {k: v for k, v in required.items() if k != RESOLVE_INPLACE}
    return required


def absolute_required(client: ArchiveAPI, entry_id: str, required: Required, schema: Schema) -> Required:
    """``required`` with its negative index selections made absolute.

    NOMAD resolves ``calculation[-1]`` itself, but answers with the item compacted to
    position 0, so where it sits cannot be told from the answer, and a mapped archive needs
    every item at its index. One small listing request per negative selection (the list's
    items with ``m_def`` only) gives the length; the spec then selects the same items by
    their absolute indices. Specs without negative selections cost nothing extra.

    Raises:
        ValueError: a negative selection below a repeating sub-section selected whole (each
            item's list may have another length; select the parent by index).
    """
    return absolute_required_and_lengths(client, entry_id, required, schema)[0]


def absolute_required_and_lengths(
    client: ArchiveAPI, entry_id: str, required: Required, schema: Schema
) -> tuple[Required, dict[Path, int]]:
    """:func:`absolute_required`, plus the lengths of the lists it had to learn."""
    if not isinstance(required, dict) or not _has_negative(required):
        return required, {}
    lengths: dict[Path, int] = {}
    return _absolute(client, entry_id, required, schema.root_class(), (), schema, lengths), lengths


def _has_negative(spec: Any) -> bool:
    stack = [spec]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        for key, value in node.items():
            if key not in ("*", RESOLVE_INPLACE):
                _, selection = parse_required_key(key)
                if _negative(selection):
                    return True
            stack.append(value)
    return False


def _negative(selection: Any) -> bool:
    if isinstance(selection, int):
        return selection < 0
    if isinstance(selection, slice):
        return (selection.start or 0) < 0 or (selection.stop or 0) < 0
    return False


def _absolute(
    client: ArchiveAPI,
    entry_id: str,
    spec: dict[str, Any],
    cls: type[Section],
    path: Path | None,
    schema: Schema,
    lengths: dict[Path, int],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if key in ("*", RESOLVE_INPLACE):
            out[key] = value
            continue
        prop, selection = parse_required_key(key)
        fm = fields_by_name(cls).get(prop)
        if _negative(selection):
            if path is None:
                raise ValueError(
                    f"cannot make {key!r} absolute below a repeating sub-section selected whole; "
                    "select the parent by index"
                )
            length = lengths[path + (prop,)] = _list_length(client, entry_id, path + (prop,))
            if isinstance(selection, int):
                selection = selection + length if selection + length >= 0 else selection
            elif isinstance(selection, slice):
                start, stop, _ = selection.indices(length)
                selection = slice(start, stop)
            key = format_required_key(prop, selection)
        child_path: Path | None = None
        if path is not None and fm is not None:
            if not fm.repeats:
                child_path = path + (prop,)
            elif isinstance(selection, int) and selection >= 0:
                child_path = path + (prop, selection)
            elif selection is None and isinstance(value, dict) and _has_negative(value):
                # NOMAD's own example, {"run": {"calculation[-1]": "*"}}: a whole list with a
                # negative selection below. With one item (one run) it is that item.
                length = lengths[path + (prop,)] = _list_length(client, entry_id, path + (prop,))
                if length == 0:  # nothing to select below: the spec can stay as it is
                    out[key] = value
                    continue
                if length == 1:
                    key, child_path = format_required_key(prop, slice(0, 1)), path + (prop, 0)
        if isinstance(value, dict) and fm is not None and fm.kind == "sub_section":
            value = _absolute(client, entry_id, value, schema.sub_section_class(cls, fm), child_path, schema, lengths)
        out[key] = value
    return out


def _list_length(client: ArchiveAPI, entry_id: str, list_path: Path) -> int:
    answer = client.archive_raw(entry_id, required_for_path(list(list_path), leaf={"m_def": "*"}))
    node = _compacted(answer, list_path)
    return len(node) if isinstance(node, list) else 0
