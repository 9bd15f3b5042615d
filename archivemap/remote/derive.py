"""``required`` derived from the analysis itself, and the analysis run in bulk with it.

A scientist writes the analysis (``lambda a: a.workflow2.results.calculation_result_ref
.energy.total.value``), not the ``required`` spec. :func:`required_for` runs it lazily on a few
sample entries, with a :class:`~archivemap.archive.base.AccessRecorder` on each archive,
and turns what was read into one spec that serves *any* entry:

* a path reached through a reference is written through the reference
  (``{"workflow2": {"results": {"calculation_result_ref": {"energy": {"total": "*"}}}}}``), so
  NOMAD resolves it server-side and places the target where it lives;
* an item taken from the end of a list (``calculation[-1]``) stays counted from the end; an
  item taken at the same index in every sample keeps that index; anything else, and every
  list that was iterated, becomes the whole list;
* a quantity read becomes ``"*"`` at that quantity; a section only looked at becomes
  ``{"m_def": "*"}``.

``Client.analyze`` records the same way on its samples, which it downloads whole in a page or
two (:func:`record_access`, :func:`required_from_access`: one request instead of one per value
read, and the samples are not downloaded again), then downloads the other entries of the query
in bulk with the derived spec and runs the analysis on each. Bulk answers cannot be placed by
negative index (the server compacts them and does not say the list's length), so for the bulk
run a selection counted from the end asks for the whole list with the same sub-spec: more
bytes, no follow-up request. An analysis that
touches something the samples did not is still answered, by a lazy follow-up, and counted.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import attrs

from archivemap.archive.sections import Section
from archivemap.metainfo.fields import FieldMeta, fields_by_name
from archivemap.remote.required import Required, format_required_key, merge_required

__all__ = [
    "SAMPLE_REQUIRED",
    "AccessLog",
    "AccessPath",
    "Analysis",
    "ArchiveOpener",
    "record_access",
    "required_for",
    "required_for_samples",
    "required_from_access",
]

# One step of an access path: a property name and, for repeating sub-sections, a selector:
# ("index", i), ("end", k) for the k-th from the end, or ("all",).
Step = tuple[str, tuple[Any, ...] | None]
AccessPath = tuple[Step, ...]


class AccessLog:
    """The :class:`AccessRecorder` of one sample archive: what the analysis read, and how."""

    def __init__(self) -> None:
        self.paths: set[AccessPath] = set()
        self._via: dict[int, tuple[Section, FieldMeta]] = {}
        self._selectors: dict[tuple[int, str, int], tuple[Any, ...]] = {}
        self._iterated: set[tuple[int, str]] = set()
        self._keep: list[Section] = []  # ids above stay valid while the log lives

    # -- the AccessRecorder protocol --------------------------------------------------------------
    def read(self, section: Section, fm: FieldMeta) -> None:
        """A property was read: remember its access path."""
        selector: tuple[Any, ...] | None = None
        if fm.kind == "sub_section":  # looked at; reads below it make it a prefix, dropped
            selector = ("all",) if fm.repeats else ("section",)
        self.paths.add(self._access_path(section) + ((fm.name, selector),))

    def reached(self, target: Section, holder: Section, fm: FieldMeta) -> None:
        """A reference led to ``target``: reads below it are written through the reference."""
        if id(target) not in self._via:
            self._via[id(target)] = (holder, fm)
            self._keep.append(target)

    def iterated(self, owner: Section, name: str) -> None:
        """A whole list was used."""
        self._iterated.add((id(owner), name))
        self._keep.append(owner)

    def indexed(self, owner: Section, name: str, index: int) -> None:
        """One item was taken: from the end (negative index) or at a position."""
        key = (id(owner), name)
        position = index
        if index < 0:
            length = list.__len__(getattr(owner, _attribute(owner, name)))
            position = length + index
        selector = ("end", -index) if index < 0 else ("index", index)
        self._selectors.setdefault((*key, position), selector)
        self._keep.append(owner)

    # -- paths ------------------------------------------------------------------------------------
    def _access_path(self, section: Section) -> AccessPath:
        """How the analysis reached ``section``: through references where it used them."""
        steps: list[Step] = []
        node: Section | None = section
        while node is not None:
            via = self._via.get(id(node))
            if via is not None:
                holder, fm = via
                return self._access_path(holder) + ((fm.name, None),) + tuple(reversed(steps))
            parent = node.m_parent
            if parent is None:
                break
            name, index = node.m_parent_sub_section, node.m_parent_index
            assert name is not None
            selector: tuple[Any, ...] | None = None
            if index is not None:
                if (id(parent), name) in self._iterated:
                    selector = ("all",)
                else:
                    selector = self._selectors.get((id(parent), name, index), ("index", index))
            steps.append((name, selector))
            node = parent
        return tuple(reversed(steps))


def _attribute(owner: Section, name: str) -> str:
    fm = fields_by_name(type(owner)).get(name)
    return fm.attribute if fm is not None else name


def _generalise(samples: list[set[AccessPath]]) -> set[AccessPath]:
    """One set of paths for any entry: selectors that differ between samples become "all"."""
    by_shape: dict[tuple[str, ...], list[AccessPath]] = {}
    for paths in samples:
        for path in paths:
            by_shape.setdefault(tuple(name for name, _ in path), []).append(path)
    out: set[AccessPath] = set()
    for shape, same_shape in by_shape.items():
        steps: list[Step] = []
        for position, name in enumerate(shape):
            selectors = {path[position][1] for path in same_shape}
            if len(selectors) == 1:
                steps.append((name, next(iter(selectors))))
            else:
                steps.append((name, ("all",)))
        out.add(tuple(steps))
    return out


def _spec(paths: Iterable[AccessPath], bulk: bool) -> Required:
    """The ``required`` spec of a set of access paths (``bulk``: no negative indices)."""
    paths = set(paths)
    shapes = {tuple(name for name, _ in path) for path in paths}
    prefixes = {shape[:n] for shape in shapes for n in range(1, len(shape))}
    specs: list[Required] = []
    for path in paths:
        if tuple(name for name, _ in path) in prefixes:
            continue  # a section on the way to what was read: the deeper path covers it
        last = path[-1][1]
        # a section only looked at: its existence (and class), not its subtree
        spec: Any = {"m_def": "*"} if last in (("section",), ("all",)) else "*"
        for name, selector in reversed(path):
            key = name
            if selector is not None and selector[0] == "index":
                key = format_required_key(name, int(selector[1]))
            elif selector is not None and selector[0] == "end" and not bulk:
                key = format_required_key(name, -int(selector[1]))
            spec = {key: spec}
        specs.append(spec)
    return merge_required(specs) if specs else {}


@attrs.frozen
class Analysis:
    """The results of ``Client.analyze``, with what they cost.

    Attributes:
        results: ``(entry_id, result)`` for every entry, in listing order.
        required: the spec the bulk download used.
        requests, bytes: what the derivation and the bulk run cost together.
        follow_ups: lazy requests still needed after the downloads (the bulk run's, and those of
            samples downloaded whole); 0 when the samples covered the analysis.
        errors: ``{entry_id: "ErrorType: message"}`` for entries on which the analysis raised
            (their result is ``None``): one odd entry does not stop a run over thousands.
    """

    results: list[tuple[str, Any]]
    required: Required
    requests: int
    bytes: int
    follow_ups: int
    errors: dict[str, str] = attrs.field(factory=dict)

    def to_dataframe(self) -> Any:
        """The results as a pandas DataFrame (needs the ``pandas`` extra), indexed by entry id."""
        try:  # an optional extra, loaded only when asked for
            pd = importlib.import_module("pandas")
        except ImportError:
            raise ImportError("a DataFrame needs pandas: pip install 'archivemap[pandas]'") from None
        rows = [r if isinstance(r, Mapping) else {"result": r} for _, r in self.results]
        return pd.DataFrame(rows, index=[entry_id for entry_id, _ in self.results])


def record_access(analysis: Callable[[Section], Any], root: Section) -> tuple[Any, set[AccessPath]]:
    """Run ``analysis`` on ``root`` and record what it read: ``(result, access paths)``.

    The root may be lazy (what is read gets fetched) or downloaded whole: the paths are the
    same, since they come from what the analysis touched, not from what was fetched.
    """
    ctx = root.m_context
    if ctx is None:
        return analysis(root), set()
    log = AccessLog()
    ctx.recorder = log
    try:
        result = analysis(root)
    finally:
        ctx.recorder = None
    return result, log.paths


def required_from_access(samples: Iterable[set[AccessPath]], *, bulk: bool) -> Required:
    """The spec that covers the access paths of several samples for any entry (module docstring)."""
    return _spec(_generalise(list(samples)), bulk)


def required_for_samples(
    analysis: Callable[[Section], Any], open_sample: Callable[[str], Section], entries: Iterable[str], *, bulk: bool
) -> Required:
    """The spec that covers what ``analysis`` reads, from lazy runs on ``entries``.

    Args:
        analysis: the user's function of an archive root.
        open_sample: opens an entry lazily (nothing but what is read gets downloaded).
        entries: the sample entry ids.
        bulk: write the spec for a bulk download (no negative indices, see module docstring).
    """
    samples = [record_access(analysis, open_sample(entry_id))[1] for entry_id in entries]
    return required_from_access(samples, bulk=bulk)


#: What the samples are opened with: only the entry id, so that everything else the analysis
#: reads is fetched, and recorded, on access.
SAMPLE_REQUIRED: Required = {"metadata": {"entry_id": "*"}}


class ArchiveOpener(Protocol):
    """Opens one entry's archive lazily (``Client`` is one)."""

    def archive(self, entry_id: str, required: Required = "*", *, schema: Any = None, fetch: bool = True) -> Section:
        """The lazy root of ``entry_id``'s archive, downloaded with ``required``."""
        ...


def required_for(
    analysis: Callable[[Section], Any],
    client: ArchiveOpener,
    entries: Iterable[str] | str,
    *,
    schema: Any = None,
    bulk: bool = False,
) -> Required:
    """The minimal ``required`` that covers what ``analysis`` reads, for any entry.

    Runs ``analysis`` lazily on the sample ``entries`` (a few requests each) and generalises
    what it read (see the module docstring).

    Args:
        analysis: a function of an archive root; its result is not used here.
        client: opens the samples (an ``archivemap.Client``).
        entries: two or three entry ids of the kind the analysis is meant for (one id
            alone may be given as a string).
        schema: the schema to map the samples with (default: the client's).
        bulk: write the spec for ``Client.archives`` (a list counted from the end becomes the
            whole list, since bulk answers cannot be placed by negative index).

    Returns:
        The spec, e.g. ``{"workflow2": {"results": {"calculation_result_ref": {"energy":
        {"total": {"value": "*"}}}}}}``.

    Raises:
        TypeError: ``entries`` is not entry ids (a query belongs to ``Client.analyze``).
        ValueError: no sample entry was given.
    """
    if isinstance(entries, Mapping) or entries is None or not isinstance(entries, (str, Iterable)):
        raise TypeError(
            f"required_for samples the analysis on entry ids, not {type(entries).__name__}: "
            "pass two or three ids (client.entries(query) lists some), or let "
            "client.analyze(query, analysis) choose them"
        )

    def open_sample(entry_id: str) -> Section:
        return client.archive(entry_id, required=SAMPLE_REQUIRED, schema=schema)

    samples = [entries] if isinstance(entries, str) else list(entries)  # not its characters
    if not samples:
        raise ValueError("required_for needs at least one sample entry id")
    return required_for_samples(analysis, open_sample, samples, bulk=bulk)
