"""Per-archive context shared by all sections of one loaded archive.

It knows the schema, the entry's identity, where other archives come from (a source), and,
for archives from a client, what was downloaded and how to fetch the rest.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Protocol

from archivemap.definitions import Definition, Environment, SectionDef
from archivemap.errors import DefinitionError, UnknownDefinitionError

if TYPE_CHECKING:
    from archivemap.references import ParsedReference
    from archivemap.schema import Schema
    from archivemap.sections import Section


class ArchiveSource(Protocol):
    """Where archives other than the current one come from (a folder, a zip, a client)."""

    def archive_for(self, ref: ParsedReference, context: ArchiveContext) -> Section:
        """The root section of the archive a cross-entry reference points into."""
        ...


class Fetcher(Protocol):
    """Fetches parts of a partially downloaded archive (implemented by the client)."""

    def is_downloaded(self, path: tuple[Any, ...]) -> bool: ...

    def fetch(self, root: Section, path: tuple[Any, ...]) -> None: ...


class ArchiveContext:
    """What every section of one archive shares.

    Attributes:
        schema: the schema the archive was loaded with.
        entry_id, upload_id, mainfile: the entry's identity, from ``metadata`` when present.
        source: resolves references into other archives, or ``None``.
        fetcher: fetches what was not downloaded, or ``None`` (everything is here).
        root: the root section.
    """

    def __init__(
        self,
        schema: Schema,
        raw_root: dict[str, Any],
        source: ArchiveSource | None = None,
        fetcher: Fetcher | None = None,
        entry_id: str | None = None,
        upload_id: str | None = None,
    ) -> None:
        self.schema = schema
        meta = raw_root.get("metadata") if isinstance(raw_root, dict) else None
        meta = meta if isinstance(meta, dict) else {}
        self.entry_id: str | None = entry_id or _str(meta.get("entry_id"))
        self.upload_id: str | None = upload_id or _str(meta.get("upload_id"))
        self.mainfile: str | None = _str(meta.get("mainfile"))
        self.source = source
        self.fetcher = fetcher
        self.root: Section | None = None
        self._raw_root = raw_root
        self._custom_env: Environment | None = None
        self._custom_lock = threading.Lock()

    @property
    def custom_environment(self) -> Environment | None:
        """The environment of the archive's own ``definitions`` (custom schema), if any."""
        if self._custom_env is None:
            if "definitions" not in self._raw_root and self.fetcher is not None and self.root is not None:
                # a partial archive from a client: its custom schema may not be downloaded yet
                if not self.fetcher.is_downloaded(("definitions",)):
                    self.fetcher.fetch(self.root, ("definitions",))
            definitions = self._raw_root.get("definitions")
            if not isinstance(definitions, dict) or "section_definitions" not in definitions:
                return None
            with self._custom_lock:
                if self._custom_env is None:
                    self._custom_env = Environment.for_archive(
                        definitions, self.entry_id, self.schema.environment, self._external
                    )
        return self._custom_env

    def _external(self, ref: str) -> Definition:
        """Resolve a definition that lives in another archive's ``definitions``."""
        from archivemap.references import parse_reference

        if self.source is None:
            raise UnknownDefinitionError(
                f"definition {ref!r} lives in another archive; load with a source "
                "(a folder of archives or a client) to resolve it"
            )
        if ref.startswith("entry_id:"):
            entry_id, _, name = ref[len("entry_id:") :].partition(".")
            by_entry = parse_reference(f"../entries/{entry_id}/archive#/definitions")
            assert by_entry is not None  # a well-formed URL by construction
            other = self.source.archive_for(by_entry, self)
            other_env = other._m_ctx.custom_environment if other._m_ctx is not None else None
            if other_env is None:
                raise UnknownDefinitionError(f"archive of {ref!r} carries no definitions")
            return other_env.section(ref.partition("@")[0])
        parsed = parse_reference(ref)
        if parsed is None:
            raise UnknownDefinitionError(f"definition reference {ref!r} is not an archive URL")
        other = self.source.archive_for(parsed, self)
        other_ctx = other._m_ctx
        env = other_ctx.custom_environment if other_ctx is not None else None
        if env is None:
            raise UnknownDefinitionError(f"archive of {ref!r} carries no definitions")
        return env.resolve("#/" + "/".join(parsed.fragment), context=env.packages[0], origin=ref)

    def resolve_definition(self, m_def: str) -> SectionDef:
        """The section definition an ``m_def`` value names (spec §2.4)."""
        env = self.custom_environment
        target: Definition
        url, hash_, _ = m_def.partition("#")
        if (url and hash_) or (m_def.startswith("entry_id:") and env is None):
            target = self._external(m_def)
        elif env is not None:
            target = env.resolve(m_def, context=env.packages[0])
        else:
            target = self.schema.environment.resolve(m_def)
        if not isinstance(target, SectionDef):
            raise DefinitionError(f"m_def {m_def!r} is not a section definition")
        return target


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
