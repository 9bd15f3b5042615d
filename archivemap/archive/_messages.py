"""How sections say where and what went wrong: lazily built paths and the typo hint.

Messages are made only when a warning or an error needs them: a path costs O(depth) to spell
out, and the "did you mean" hint runs difflib over a class's names.
"""

from __future__ import annotations

import difflib

from archivemap._warnings import warn_at_caller
from archivemap.archive.base import SectionBase
from archivemap.errors import SchemaMismatchWarning
from archivemap.metainfo.fields import fields_by_name, section_fields

__all__ = ["LazyPath", "no_property", "warn_kept"]


class LazyPath:
    """An archive path computed only when a message needs it (paths cost O(depth))."""

    __slots__ = ("section", "name", "index")

    def __init__(self, section: SectionBase, name: str, index: int | None = None) -> None:
        self.section, self.name, self.index = section, name, index

    def __str__(self) -> str:
        text = f"{self.section.m_path().rstrip('/')}/{self.name}"
        return text if self.index is None else f"{text}/{self.index}"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def warn_kept(path: object, message: str) -> None:
    """Warn that the data at ``path`` does not fit the schema and is kept as it was."""
    warn_at_caller(f"{path}: {message}; kept as it was", SchemaMismatchWarning)


def no_property(cls: type[SectionBase], name: str) -> str:
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
    """A class's NOMAD and attribute names by their first letter (for :func:`no_property`);
    kept on the class, as its field tables are (metainfo/fields.py)."""
    found: dict[str, tuple[str, ...]] | None = cls.__dict__.get("_m_names_by_initial")
    if found is None:
        table: dict[str, list[str]] = {}
        for name in sorted({*fields_by_name(cls), *section_fields(cls)}):
            table.setdefault(name[:1].lower(), []).append(name)
        found = {initial: tuple(names) for initial, names in table.items()}
        type.__setattr__(cls, "_m_names_by_initial", found)
    return found

