"""Archive paths in the two spellings users meet: dotted (``run[0].energy``) and NOMAD's
slash form (``/run/0/energy``), and reading them with typed errors for each kind of missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from archivemap.errors import AbsentError, NotDownloadedError, NotInSchemaError

if TYPE_CHECKING:
    from archivemap.sections import Section

__all__ = ["format_path", "get_path", "parse_path"]


def parse_path(path: str) -> tuple[str | int, ...]:
    """Split ``run[0].calculation[-1].energy`` or ``/run/0/calculation/-1/energy``.

    Integers (negative too) become ``int``; everything else stays a name (item keys such as
    ``processes[pvd]`` become :class:`archivemap.required.Key`, a ``str``). One parser for the
    whole library: :func:`archivemap.required.parse_archive_path`.

    Raises:
        ValueError: brackets that do not close, or an empty path segment.
    """
    from archivemap.required import parse_archive_path

    return parse_archive_path(path)


def format_path(segments: tuple[str | int, ...]) -> str:
    """The dotted form: ``("run", 0, "energy")`` → ``run[0].energy``."""
    text = ""
    for seg in segments:
        if isinstance(seg, int):
            text += f"[{seg}]"
        else:
            text += ("." if text else "") + seg
    return text


def get_path(section: Section, path: str) -> Any:
    """Read ``path`` below ``section`` (see :meth:`Section.m_get`).

    Raises:
        NotInSchemaError: a name that is no property of its section.
        AbsentError: an unset property or an index out of range.
        NotDownloadedError: data that exists on the server but was not downloaded.
    """
    from archivemap.sections import Section, _fields_by_name, section_fields

    from archivemap.references import item_by_key

    segments = parse_path(path)
    node: Any = section
    done: list[str | int] = []
    key_quantity: str | None = None  # of the repeating sub-section last read
    for seg in segments:
        where = format_path(tuple(done)) or "<root>"
        if isinstance(seg, int) or (isinstance(seg, str) and not isinstance(node, Section)):
            if isinstance(node, Section):
                raise AbsentError(f"cannot index a section with [{seg}]", path=where, entry_id=section.m_entry_id)
            try:
                if _is_key(seg) and isinstance(node, list):
                    node = item_by_key(node, str(seg), key_quantity)
                    if node is None:
                        raise KeyError(seg)
                else:
                    node = node[seg]
            except (IndexError, KeyError, TypeError):
                try:
                    size: Any = len(node)
                except TypeError:  # a scalar (number, Quantity) cannot be indexed
                    size = "a scalar, no"
                raise AbsentError(
                    f"no item [{seg}] ({size} items)", path=where, entry_id=section.m_entry_id
                ) from None
            if node is None:
                raise NotDownloadedError(
                    f"item [{seg}] was not downloaded", path=where, entry_id=section.m_entry_id
                ) if section._m_ctx is not None and section._m_ctx.fetcher is not None else AbsentError(
                    f"item [{seg}] is empty", path=where, entry_id=section.m_entry_id
                )
        else:
            cls = type(node)
            fm = section_fields(cls).get(seg) or _fields_by_name(cls).get(seg)
            if fm is None:
                if seg in node.m_extras:
                    node = node.m_extras[seg]
                    done.append(seg)
                    continue
                raise NotInSchemaError(
                    f"{cls.m_qualified_name} has no property {seg!r}", path=where, entry_id=section.m_entry_id
                )
            value = getattr(node, fm.attribute)
            if value is None:
                raise AbsentError(f"{seg!r} is not set", path=format_path((*done, seg)), entry_id=section.m_entry_id)
            key_quantity = fm.key_quantity
            node = value
        done.append(seg)
    return node


def _is_key(segment: Any) -> bool:
    from archivemap.required import Key

    return isinstance(segment, Key)
