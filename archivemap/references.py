"""Reference strings: parse and canonicalise them, and resolve them inside an archive.

NOMAD writes references in a dozen spellings (spec §3.2): ``#/run/0/system/0``, the legacy
``/run/0/system/0``, fragments without a slash (``#data``), other entries by id, by mainfile
or by raw file, other uploads, other installations. :func:`parse_reference` turns each into
one :class:`ParsedReference`, and :func:`resolve_reference` follows it: inside the archive
directly, into other archives through the archive's source (a folder or a client).
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import TYPE_CHECKING, Any

import attrs

from archivemap.errors import AbsentError, DanglingReferenceError, UnsupportedReferenceError

if TYPE_CHECKING:
    from archivemap.sections import Section

__all__ = [
    "ParsedReference",
    "entry_id_from_mainfile",
    "parse_reference",
    "resolve_fragment",
    "resolve_reference",
]

_DEF_ID = re.compile(r"@[0-9a-fA-F]{40}$")
# [installation]/upload[s]/[upload_id]/(archive|raw)/<id or mainfile/path or raw path>
_UPLOAD_URL = re.compile(
    r"^(?P<inst>[^?#]*?)/uploads?(?:/(?P<upload>[\w=\-]*))?/(?P<kind>archive|raw)/(?P<rest>[^?#]+)$"
)
# [..]/entries/<entry_id>/(archive|raw)
_ENTRY_URL = re.compile(r"^(?P<inst>[^?#]*?)/entries/(?P<entry>[^/?#]+)/(?P<kind>archive|raw)$")


@attrs.frozen(slots=True)
class ParsedReference:
    """A reference string taken apart (spec §3.6).

    Attributes:
        raw: the original string, kept for display and re-serialisation.
        fragment: the path segments inside the target archive.
        installation: the API base of another installation, or ``None`` for this one.
        upload_id: the target upload, ``None`` for the current one (or unknown).
        entry_id: the target entry, ``None`` when it is the current archive or a mainfile.
        mainfile: the target's mainfile (``mainfile/<path>`` and ``raw/<path>`` forms).
        definition_id: a stripped ``@<definition_id>`` suffix.
    """

    raw: str
    fragment: tuple[str, ...]
    installation: str | None = None
    upload_id: str | None = None
    entry_id: str | None = None
    mainfile: str | None = None
    definition_id: str | None = None

    @property
    def is_local(self) -> bool:
        """Whether the reference points into the archive that holds it."""
        return (
            self.installation is None
            and self.upload_id is None
            and self.entry_id is None
            and self.mainfile is None
        )

    def target_entry_id(self, current_upload_id: str | None) -> str | None:
        """The target entry id, computing it from the mainfile when needed (spec §3.4)."""
        if self.entry_id is not None:
            return self.entry_id
        if self.mainfile is not None:
            upload = self.upload_id or current_upload_id
            if upload is not None:
                return entry_id_from_mainfile(upload, self.mainfile)
        return None

    def canonical(self, current_upload_id: str | None = None, current_entry_id: str | None = None) -> tuple[Any, ...]:
        """``(installation, upload_id, entry_id, fragment)`` with relative parts filled in."""
        if self.is_local:
            return (None, current_upload_id, current_entry_id, self.fragment)
        return (
            self.installation,
            self.upload_id or current_upload_id,
            self.target_entry_id(current_upload_id),
            self.fragment,
        )


def entry_id_from_mainfile(upload_id: str, mainfile: str, mainfile_key: str | None = None) -> str:
    """NOMAD's entry id for a mainfile: url-safe base64 of sha512(upload + mainfile [+ key])."""
    text = upload_id + mainfile + (mainfile_key or "")
    digest = hashlib.sha512(text.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:28]


def _segments(fragment: str) -> tuple[str, ...]:
    return tuple(s for s in fragment.split("/") if s)


def parse_reference(ref: str) -> ParsedReference | None:
    """Parse a reference string, or return ``None`` when it is not one (e.g. a dataset id).

    Args:
        ref: any reference form of spec §3.2.

    Returns:
        The parsed reference, or ``None`` for strings that are not archive references.
    """
    if not isinstance(ref, str) or not ref:
        return None
    text = ref
    definition_id = None
    m = _DEF_ID.search(text)
    if m:
        definition_id = text[m.start() + 1 :]
        text = text[: m.start()]
    url, hash_, fragment = text.partition("#")
    if not hash_:
        if text.startswith("/") and not text.startswith(("/entries/", "/uploads/", "/upload/")):
            return ParsedReference(ref, _segments(text), definition_id=definition_id)
        return None
    if "?" in fragment:
        return None
    if not url:
        return ParsedReference(ref, _segments(fragment), definition_id=definition_id)
    m_up = _UPLOAD_URL.match(url)
    if m_up:
        inst = _installation(m_up.group("inst"))
        upload = m_up.group("upload") or None
        kind, rest = m_up.group("kind"), m_up.group("rest")
        if kind == "raw":
            return ParsedReference(ref, _segments(fragment), inst, upload, None, rest, definition_id)
        if rest.startswith("mainfile/"):
            return ParsedReference(
                ref, _segments(fragment), inst, upload, None, rest[len("mainfile/") :], definition_id
            )
        return ParsedReference(ref, _segments(fragment), inst, upload, rest.strip("/"), None, definition_id)
    m_en = _ENTRY_URL.match(url)
    if m_en:
        inst = _installation(m_en.group("inst"))
        return ParsedReference(ref, _segments(fragment), inst, None, m_en.group("entry"), None, definition_id)
    return None


def _installation(prefix: str) -> str | None:
    prefix = prefix.rstrip("/")
    if prefix in ("", ".."):
        return None
    return prefix


def resolve_reference(holder: Section, ref: str, source_path: str | None = None) -> Any:
    """Follow ``ref`` as written in section ``holder``; return the target section or value.

    Raises:
        DanglingReferenceError: the target does not exist (names the failing segment).
        UnsupportedReferenceError: the target is in another archive and the archive was
            loaded without a source that can provide it.
    """
    parsed = parse_reference(ref)
    if parsed is None:
        raise DanglingReferenceError(
            "not a reference", reference=ref, source_path=source_path, entry_id=holder.m_entry_id
        )
    ctx = holder._m_ctx
    root = holder.m_root
    if not parsed.is_local:
        target_id = parsed.target_entry_id(ctx.upload_id if ctx else None)
        same = ctx is not None and target_id is not None and target_id == ctx.entry_id
        if not same or parsed.installation is not None:
            if ctx is None or ctx.source is None:
                raise UnsupportedReferenceError(
                    "reference into another archive; load with a source (a folder of archives "
                    "or archivemap.Client) to follow it",
                    reference=ref,
                    source_path=source_path,
                    entry_id=ctx.entry_id if ctx else None,
                )
            root = ctx.source.archive_for(parsed, ctx)
    segments = parsed.fragment
    root_ctx = root._m_ctx
    fetcher = root_ctx.fetcher if root_ctx is not None else None
    if fetcher is not None and hasattr(fetcher, "fetch_many"):
        # a partial archive: fetch exactly the target path, with absolute indices
        from archivemap.remote import absolute_path

        try:
            planned = absolute_path(root, segments, fetcher)
        except AbsentError:
            planned = None  # the walk below reports it as a dangling reference
        if planned is not None:
            if not fetcher.is_downloaded(planned) and not _present(root._m_data, planned):
                # (a target the server already placed, e.g. from m_ref_archives, is used as
                # it is; its missing properties are fetched one by one when read)
                fetcher.fetch(root, planned)
            # one planned element per fragment segment; what is left indexes into a value
            segments = tuple(str(s) for s in planned) + segments[len(planned):]
    return resolve_fragment(root, segments, reference=ref, source_path=source_path)


def _present(raw: Any, path: tuple[Any, ...]) -> bool:
    """Whether the raw data holds something (not ``None``: "not loaded") at ``path``."""
    node = raw
    for seg in path:
        if isinstance(seg, int):
            if not isinstance(node, list) or not -len(node) <= seg < len(node):
                return False
            node = node[seg]
        else:
            if not isinstance(node, dict):
                return False
            node = node.get(seg)
        if node is None:
            return False
    return True


def resolve_fragment(
    root: Section, segments: tuple[str, ...], reference: str | None = None, source_path: str | None = None
) -> Any:
    """Walk ``segments`` from ``root``: sub-sections, item indices or keys, quantity indices.

    Iterative, so deep paths cannot exhaust the stack.
    """
    from archivemap.sections import Section, _fields_by_name

    def dangling(segment: str, why: str) -> DanglingReferenceError:
        return DanglingReferenceError(
            why, reference=reference, source_path=source_path, segment=segment, entry_id=root.m_entry_id
        )

    node: Any = root
    i = 0
    n = len(segments)
    while i < n:
        seg = segments[i]
        if isinstance(node, Section):
            fm = _fields_by_name(type(node)).get(seg)
            if fm is None:
                extras = node.m_extras
                if seg not in extras:
                    raise dangling(seg, f"{type(node).m_qualified_name} has no property {seg!r}")
                node = extras[seg]
                i += 1
                continue
            value = getattr(node, fm.attribute)
            if fm.kind == "sub_section" and fm.repeats:
                if i + 1 >= n:
                    return value
                node = _select_item(value, segments[i + 1], fm.key_quantity, dangling)
                i += 2
                continue
            if value is None:
                raise dangling(seg, f"{seg!r} is not set")
            node = value
            i += 1
            continue
        # inside a quantity value (array, list) or raw JSON: index or key
        try:
            if isinstance(node, dict):
                node = node[seg]
            else:
                node = node[int(seg)]
        except (KeyError, IndexError, ValueError, TypeError):
            raise dangling(seg, f"cannot index into the value with {seg!r}") from None
        i += 1
    return node


def _select_item(items: list[Any], selector: str, key_quantity: str | None, dangling: Any) -> Any:
    if selector.lstrip("-").isdigit():
        index = int(selector)
        try:
            item = items[index]  # no len() first: a partial remote list learns its length lazily
        except IndexError:
            raise dangling(selector, f"index {index} out of range ({len(items)} items)") from None
        if item is None:
            raise dangling(selector, f"item {index} is empty")
        return item
    item = item_by_key(items, selector, key_quantity)
    if item is None:
        keys = "/".join(k for k in (key_quantity, "name") if k)
        raise dangling(selector, f"no item with {keys} {selector!r}")
    return item


def item_by_key(items: Any, key: str, key_quantity: str | None) -> Any:
    """The item of a repeating sub-section named ``key`` (spec §3.1), or ``None``.

    NOMAD matches the sub-section's ``key_quantity`` (or the section's ``label_quantity``,
    both in ``FieldMeta.key_quantity``), then the ``name`` quantity. Items may be sections or
    raw dicts (the listing answers of partial archives).
    """
    names = [k for k in (key_quantity, "name") if k]
    for item in items:
        data = item if isinstance(item, dict) else getattr(item, "_m_data", None)
        if data is None and item is not None:  # a section built by the user
            data = {k: getattr(item, k, None) for k in names}
        if data and any(data.get(k) == key for k in names):
            return item
    return None
