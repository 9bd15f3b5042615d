"""Following references: from a reference string to its target section or value.

:func:`resolve_reference` takes any form of spec §3 (parsing is
:mod:`archivemap.archive.references`' job); a reference into this archive walks from the root
(:func:`resolve_fragment`), one into another archive asks the context for that archive's
root, and in a partial archive the target path is fetched first or handed out as a
:class:`~archivemap.archive.standins.Pending`. :func:`load_reference` is what the first read of
a reference quantity does (with the cycle check), and :func:`local_reference` its shortcut for
the common case: a loaded archive, nothing to fetch or record, a walk through sub-sections.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from archivemap.archive._download import download_unless_present, present
from archivemap.archive._fetch import class_at, plan_path
from archivemap.archive._messages import LazyPath, warn_kept
from archivemap.archive.base import RESOLVING, SectionBase, fetcher_of
from archivemap.archive.references import ParsedReference, parse_reference
from archivemap.archive.standins import Pending
from archivemap.archive.walk import MISS, walk, walk_fast
from archivemap.errors import (
    AbsentError,
    DanglingReferenceError,
    ReferenceCycleError,
    UnsupportedReferenceError,
)
from archivemap.metainfo.fields import FieldMeta
from archivemap.paths import Segment

__all__ = ["load_reference", "local_reference", "resolve_fragment", "resolve_reference"]


def resolve_reference(holder: SectionBase, ref: str, source_path: object = None) -> Any:
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


def _resolve_parsed(holder: SectionBase, ref: str, parsed: ParsedReference, source_path: object) -> Any:
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
        found = walk_fast(root, segments)
        if found is not MISS:
            return found
    else:
        # a partial archive: fetch exactly the target path, with absolute indices
        try:
            planned = plan_path(root, segments)
        except AbsentError:
            planned = None  # the walk below reports it as a dangling reference
        if planned is not None:
            target_cls = class_at(root, planned) if len(planned) == len(segments) else None
            if target_cls is not None and not present(root._m_data, planned) and fetcher_of(root).auto:  # type: ignore[union-attr]
                # a section not downloaded yet: fetched when something below it is read
                return Pending(root, planned, target_cls)
            download_unless_present(root, planned)
            # one planned element per fragment segment; what is left indexes into a value
            segments = tuple(str(s) for s in planned) + segments[len(planned):]
    return resolve_fragment(root, segments, reference=ref, source_path=source_path)


def _other_root(holder: SectionBase, ref: str, parsed: ParsedReference, source_path: object) -> SectionBase:
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


def resolve_fragment(
    root: SectionBase, segments: Sequence[str], reference: str | None = None, source_path: object = None
) -> Any:
    """Walk reference ``segments`` from ``root`` (the same walk as :func:`get_path`).

    Raises:
        DanglingReferenceError: a segment leads nowhere (it is named in the error).
    """

    def fail(kind: str, segment: Segment, done: Sequence[Segment], why: str) -> Exception:
        return DanglingReferenceError(
            why, reference=reference, source_path=_text(source_path), segment=str(segment), entry_id=root.m_entry_id
        )

    return walk(root, tuple(segments), fail)


def load_reference(section: SectionBase, fm: FieldMeta, value: Any) -> Any:
    active: set[tuple[int, str]] | None = getattr(RESOLVING, "active", None)
    if active is None:
        active = RESOLVING.active = set()
    key = (id(section), fm.name)
    if key in active:
        raise ReferenceCycleError(
            "following references leads back to this quantity",
            reference=value if isinstance(value, str) else None,
            source_path=str(LazyPath(section, fm.name)),
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
            if isinstance(target, SectionBase):
                ctx.recorder.reached(target, section, fm)
    return resolved


def local_reference(section: SectionBase, fm: FieldMeta) -> Any:
    """The section(s) a reference in this archive points to, or :data:`MISS`.

    The common case, taken without the general machinery: a loaded archive with nothing to
    fetch or record, a reference (or list of them) into the same archive, and a walk that
    only steps through sub-sections. Stopping before any quantity's value is what makes
    the cycle check of :func:`load_reference` unnecessary here: only a reference to a
    quantity can lead back to itself. Everything else (``MISS``) takes the general path,
    which gives the same answer or the error.
    """
    data = section._m_data
    ctx = section._m_ctx
    if data is None or (ctx is not None and (ctx.recorder is not None or ctx.fetcher is not None)):
        return MISS
    raw = data.get(fm.name)
    single = type(raw) is str
    if single:
        parsed = parse_reference(raw)
        if parsed is None or not parsed.is_local:
            return MISS
        fragment = parsed.fragment
    elif type(raw) is not list or not raw:
        return MISS
    root = section  # the root inline, not m_root: one call less per reference
    parent = section._m_parent
    while parent is not None:
        root = parent
        parent = parent._m_parent
    if single:
        return walk_fast(root, fragment, False)
    out = []
    for item in raw:
        parsed = parse_reference(item) if type(item) is str else None
        if parsed is None or not parsed.is_local:
            return MISS
        target = walk_fast(root, parsed.fragment, False)
        if target is MISS:
            return MISS
        out.append(target)
    return out


def _resolve_reference_value(section: SectionBase, fm: FieldMeta, value: Any) -> Any:
    # where the reference sits is only spelled out when an error needs it (LazyPath)
    if isinstance(value, list):
        out = []
        for i, v in enumerate(value):
            parsed = parse_reference(v) if isinstance(v, str) else None
            out.append(v if parsed is None else _resolve_parsed(section, v, parsed, LazyPath(section, fm.name, i)))
        return out
    if isinstance(value, str):
        parsed = parse_reference(value)
        if parsed is None:  # e.g. dataset ids in metadata.datasets
            return value
        return _resolve_parsed(section, value, parsed, LazyPath(section, fm.name))
    if isinstance(value, dict):  # resolve-inplace answers put the target itself here
        return value
    warn_kept(LazyPath(section, fm.name), f"reference holds a {type(value).__name__}")
    return value

