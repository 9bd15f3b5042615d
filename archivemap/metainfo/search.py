"""The search quantities of a deployment, derived from its metainfo's search annotations.

NOMAD's ``POST entries/query`` accepts a fixed set of dotted *search keys*
(``results.material.elements``, ``upload_create_time``, ``entry_id`` ...): one per place an
annotated quantity has in the search document. The metainfo export carries them as
``m_annotations`` → ``elasticsearch`` (453 distinct strings in the 2.0.0 export), which is
enough to check a query offline, before any request, instead of learning about a typo from a
422 (or, on servers that ignore unknown keys, from a result that silently matches everything).

How NOMAD builds the keys (``nomad.metainfo.elasticsearch_extension``), and so this module:

* The search document starts at ``EntryArchive``. Its ``metadata`` sub-section is flattened
  away: metadata keys have no ``metadata.`` prefix (``upload_create_time``, ``n_quantities``).
* A quantity is indexed where it is reached through *annotated* sub-sections; below a
  sub-section indexed with ``auto_include_subsections`` (NOMAD: ``results``) every sub-section
  is followed. The export does not keep that flag, so it is inferred from the export itself:
  an annotated sub-section whose keys continue through an unannotated child includes all.
* A quantity whose type is a section reference (``datasets``, ``main_author``, ``viewers``) is
  followed like a sub-section into the referenced section.
* The key is the path of sub-section names plus the quantity name; extra fields of one
  quantity add a suffix (``.text``, ``__suggestion``, ``__suggestion.suggestion``, ``.path``).
* The export writes each annotation's *last* placement only: a definition placed several
  times (``BandGap.value`` under ``band_gap`` of three different sections) is a key at every
  placement here, as in NOMAD.
* An annotated quantity NOMAD never registers is exported under its bare ``Elasticsearch.name``
  (``m_to_dict`` gives the search key only once one was registered): ``type`` and
  ``type__suggestion__suggestion`` of ``results.ExcitedStateMethodology`` in 2.0.0. NOMAD
  indexes a placed section's *effective* quantities, where an inheritor's redefinition
  replaces the base's; ``ExcitedStateMethodology`` is placed only as ``GW`` and ``BSE``, which
  redefine ``type``, so its own ``type`` is never a key and a query on it gets NOMAD's 422
  ``type is not a doc quantity``. These strings are no keys here either;
  :func:`unplaced_annotations` says why and names the keys to use instead.
* Sub-section annotations are exported as bare names (``band_gap``, ``metadata``); they are
  sections of the document, kept here as ``kind == "section"`` entries (valid as prefixes of
  nested queries, not as criteria).
* Plugin schemas add *dynamic* keys ``data.<path>#<qualified section name>`` for scalar
  quantities of their ``EntryData`` sections, and custom YAML schemas
  ``data.<path>#entry_id:<id>.<Section>#<str|int|float|bool|datetime>``; those are resolved on
  demand by :meth:`SearchQuantities.lookup`.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final, Union

from archivemap.metainfo.environment import Environment
from archivemap.metainfo.model import QuantityDef, SectionDef, SubSectionDef

__all__ = [
    "ENTRY_ARCHIVE",
    "SearchQuantities",
    "SearchQuantity",
    "UnplacedAnnotation",
    "iter_keys",
    "search_annotations",
    "search_quantities",
    "unplaced_annotations",
]

#: The section NOMAD's search document starts from.
ENTRY_ARCHIVE: Final = "nomad.datamodel.datamodel.EntryArchive"
#: The sections that ``User``/``Author`` typed quantities refer to (their export names no path).
_USER_SECTIONS: Final = {"User": "nomad.datamodel.data.User", "Author": "nomad.datamodel.data.Author"}
#: Plugin sections must derive from this to get dynamic search keys.
_ENTRY_DATA: Final = "nomad.datamodel.data.EntryData"
#: NOMAD's separators in dynamic keys and the prefix of custom (YAML) schemas.
_SCHEMA_SEPARATOR: Final = "#"
_YAML_PREFIX: Final = "entry_id:"
#: The data types a custom-schema key may name, and the kind each means.
_YAML_DTYPES: Final = {"str": "str", "int": "int", "float": "float", "bool": "bool", "datetime": "datetime"}
#: NOMAD drops ``metadata`` from sub-section keys with exactly this pattern.
_METADATA: Final = re.compile(r"\.?metadata")
_NUMPY_INT: Final = frozenset({"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"})
_NUMPY_FLOAT: Final = frozenset({"float16", "float32", "float64"})
_CUSTOM_KINDS: Final = {
    "Datetime": "datetime",
    "JSON": "json",
    "Any": "json",
    "Capitalized": "str",
    "Bytes": "str",
    "HDF5Reference": "str",
    "HDF5Dataset": "str",
    "Unit": "str",
    "Dimension": "str",
}

Definition = Union[QuantityDef, SubSectionDef]


@dataclasses.dataclass(frozen=True)
class SearchQuantity:
    """One search key of a deployment, with what a query value for it must look like.

    Attributes:
        key: the key as NOMAD's query language spells it (``results.material.elements``).
        kind: ``str``, ``enum``, ``int``, ``float``, ``bool``, ``datetime``, ``reference``
            (a section reference or user id), ``json`` (free-form values) or ``section`` (a
            sub-section of the search document: a prefix of keys, not a criterion itself).
        dtype: the exported type name (``float64``, ``str``, ``Datetime``, ``User``, ``enum``).
        unit: the unit values are stored in (and must be sent in), e.g. ``joule``; ``None``
            for unitless quantities.
        shape: the quantity's shape as exported (``()`` for scalars).
        enum_values: the allowed values of an ``enum`` (empty otherwise).
        is_list: an entry can hold several values for this key, because the quantity is
            an array or lies in a repeating sub-section; ``all`` of several values can match.
        field: the extra field of the quantity this key addresses (``text``, ``suggestion``,
            ``path``, ``keyword``, ``prefix``), or ``None`` for the quantity's own value.
        suggestion: an autocompletion field (``__suggestion`` keys).
        annotation: the export's own annotation string for this key, or ``None`` when the
            export spells a different placement of the same definition (or none).
        dynamic: a plugin or custom schema key (``data.<path>#<schema>``).
        definition: the quantity (or sub-section) definition behind the key.
    """

    key: str
    kind: str
    dtype: str = ""
    unit: str | None = None
    shape: tuple[int | str, ...] = ()
    enum_values: tuple[str, ...] = ()
    is_list: bool = False
    field: str | None = None
    suggestion: bool = False
    annotation: str | None = None
    dynamic: bool = False
    definition: Definition | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def supports_range(self) -> bool:
        """Whether ``gt``/``gte``/``lt``/``lte`` make sense: numbers and dates."""
        return self.kind in ("int", "float", "datetime")

    @property
    def is_section(self) -> bool:
        """A sub-section of the search document (a key prefix, not a criterion)."""
        return self.kind == "section"

    @property
    def description(self) -> str | None:
        """The definition's description, for help texts."""
        return self.definition.description if self.definition is not None else None


@dataclasses.dataclass(frozen=True)
class UnplacedAnnotation:
    """An ``elasticsearch`` annotation string of the export that is no search key, and why.

    Attributes:
        text: the string as exported (``type__suggestion__suggestion``).
        definition: the annotated quantity NOMAD never placed in its search document.
        reason: why NOMAD never registered it (one sentence, for error messages).
        instead: the keys NOMAD does serve for the quantities that replace it (an inheritor's
            redefinition, same extra field), sorted; empty when there are none.
    """

    text: str
    definition: QuantityDef = dataclasses.field(compare=False, repr=False)
    reason: str
    instead: tuple[str, ...] = ()


class SearchQuantities(dict[str, SearchQuantity]):
    """The search keys of one environment, by key; also resolves dynamic keys.

    A plain dict of the static keys (sorted), so ``key in quantities`` and iteration work as
    expected; :meth:`lookup` additionally answers plugin and custom-schema keys
    (``data.<path>#<schema>``) that are too many to list.

    Attributes:
        environment: the environment the keys were derived from (``None`` when built by hand).
    """

    def __init__(
        self,
        items: Mapping[str, SearchQuantity] | Iterable[tuple[str, SearchQuantity]] = (),
        environment: Environment | None = None,
    ) -> None:
        super().__init__(items)
        self.environment = environment

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self), self.environment))

    def lookup(self, key: str) -> SearchQuantity | None:
        """The search quantity of ``key``, static or dynamic; ``None`` if there is none.

        A dynamic key naming an unknown schema, or a path that does not resolve, gives
        ``None``; :meth:`explain_dynamic` says why.
        """
        found = self.get(key)
        if found is not None or _SCHEMA_SEPARATOR not in key or self.environment is None:
            return found
        quantity, _ = _dynamic(self.environment, key)
        return quantity

    def unplaced(self, key: str) -> UnplacedAnnotation | None:
        """The export's annotation ``key`` names a quantity NOMAD never places; else ``None``."""
        if key in self or self.environment is None:
            return None
        return unplaced_annotations(self.environment).get(key)

    def explain_dynamic(self, key: str) -> str | None:
        """Why a dynamic key (``data.<path>#<schema>``) is not a search key, or ``None``."""
        if _SCHEMA_SEPARATOR not in key:
            return None
        if self.environment is None:
            return "dynamic keys need the environment the search quantities were built from"
        quantity, reason = _dynamic(self.environment, key)
        return None if quantity is not None else reason

    def nearest(self, key: str, n: int = 3) -> list[str]:
        """The valid keys closest to ``key`` (``difflib``), best first, for error messages.

        Autocompletion fields are offered only when nothing else is close, and keys that
        end in the same name (``elements`` → ``results.material.elements``) count too.
        """
        base = key.split(_SCHEMA_SEPARATOR, 1)[0]
        plain = [k for k, q in self.items() if not q.suggestion and not q.is_section]
        close = difflib.get_close_matches(base, plain, n=n, cutoff=0.6)
        tail = base.rsplit(".", 1)[-1]
        # then keys named like the last segment, then keys below sections named like it
        for matches in (
            lambda k: k == tail or k.endswith("." + tail),
            lambda k: k.startswith(tail + ".") or f".{tail}." in k,
        ):
            for k in plain:
                if len(close) >= n:
                    return close
                if k not in close and matches(k):
                    close.append(k)
        if not close:  # a misspelt last segment: "worfklow_name" → "...workflow_name"
            tails = {k.rsplit(".", 1)[-1] for k in plain}
            for near_tail in difflib.get_close_matches(tail, sorted(tails), n=n, cutoff=0.75):
                close.extend(k for k in plain if k.rsplit(".", 1)[-1] == near_tail and k not in close)
        if not close:
            close = difflib.get_close_matches(base, list(self), n=n, cutoff=0.6)
        return close[:n]

    def children(self, prefix: str) -> list[str]:
        """The non-section keys directly or indirectly below a section key, sorted."""
        start = prefix + "."
        return [k for k, q in self.items() if k.startswith(start) and not q.is_section and not q.suggestion]


# ---------------------------------------------------------------------------- derivation
def search_annotations(environment: Environment) -> dict[str, list[Definition]]:
    """Every ``elasticsearch`` annotation string of the export, with the definitions carrying it.

    Quantity annotations are full keys (or, for a definition NOMAD never places in the search
    document, a bare name); sub-section annotations are bare sub-section names. The 2.0.0
    export has 453 distinct strings.
    """
    found: dict[str, list[Definition]] = {}
    for section in environment.all_sections():
        for quantity in section.quantities:
            for text in quantity.search_annotations:
                found.setdefault(text, []).append(quantity)
        for sub in section.sub_sections:
            for text in _sub_section_annotations(sub):
                found.setdefault(text, []).append(sub)
    return found


_cache: weakref.WeakKeyDictionary[Environment, SearchQuantities] = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def search_quantities(environment: Environment) -> SearchQuantities:
    """The search keys of a deployment, derived from its metainfo (computed once per environment).

    Args:
        environment: the deployment's metainfo (``load_environment(...)``), e.g. NOMAD 2.0.0's
            export or the GUI artifacts of a running deployment.

    Returns:
        A fresh :class:`SearchQuantities` (a dict by key, sorted; safe to modify) of every
        static key: quantities, their extra fields, and ``section`` entries for the
        sub-sections on the way. Empty when the environment has no ``EntryArchive`` (a
        custom schema on its own).
    """
    with _cache_lock:
        cached = _cache.get(environment)
    if cached is None:
        cached = SearchQuantities(sorted(_derive(environment).items()), environment)
        with _cache_lock:
            _cache[environment] = cached
    return SearchQuantities(cached, environment)


_unplaced_cache: weakref.WeakKeyDictionary[Environment, dict[str, UnplacedAnnotation]] = weakref.WeakKeyDictionary()


def unplaced_annotations(environment: Environment) -> dict[str, UnplacedAnnotation]:
    """The quantity annotation strings of an export that are no search key, each with why.

    NOMAD (``elasticsearch_extension``) registers a quantity where a placed section's effective
    quantities hold it, and writes the registered key into the export; a quantity never
    registered keeps its bare ``Elasticsearch.name`` there. For NOMAD 2.0.0 these are the two
    annotations of ``results.ExcitedStateMethodology.type``: every placed inheritor (``GW``,
    ``BSE``) redefines ``type``.

    Args:
        environment: the deployment's metainfo.

    Returns:
        By annotation string; empty when every annotation is a key (or there is no
        ``EntryArchive``).
    """
    with _cache_lock:
        cached = _unplaced_cache.get(environment)
    if cached is None:
        keys = search_quantities(environment)
        cached = {}
        if keys:
            for text, definitions in search_annotations(environment).items():
                quantity = next((d for d in definitions if isinstance(d, QuantityDef)), None)
                if quantity is not None and text not in keys:
                    cached[text] = _unplaced(text, quantity, keys)
        with _cache_lock:
            _unplaced_cache[environment] = cached
    return dict(cached)


def _unplaced(text: str, quantity: QuantityDef, keys: Mapping[str, SearchQuantity]) -> UnplacedAnnotation:
    """Why ``quantity`` is no key, and which keys serve the redefinitions that replace it."""
    owner = quantity.section
    suffix = text[len(quantity.name):] if text.startswith(quantity.name) else ""
    suggestion = suffix.startswith("__suggestion")
    field = suffix.rsplit(".", 1)[1] if "." in suffix else None
    overrides = [
        q for q in keys.values()
        if isinstance(q.definition, QuantityDef) and q.definition is not quantity
        and q.definition.name == quantity.name and q.definition.section.is_a(owner)
    ]
    instead = tuple(sorted(q.key for q in overrides if q.suggestion == suggestion and q.field == field))
    if overrides:
        inheritors = sorted({q.definition.section.name for q in overrides if isinstance(q.definition, QuantityDef)})
        reason = (
            f"{quantity.qualified_name} is never placed in NOMAD's search document: "
            f"{owner.name} appears there only as {' and '.join(inheritors)}, which redefine "
            f"{quantity.name!r}, and NOMAD indexes a section's effective quantities"
        )
    else:
        reason = (
            f"{quantity.qualified_name} is never placed in NOMAD's search document: no annotated "
            f"sub-section path from EntryArchive reaches {owner.name}"
        )
    return UnplacedAnnotation(text, quantity, reason, instead)


def _sub_section_annotations(sub: SubSectionDef) -> tuple[str, ...]:
    annotations = sub.raw.get("m_annotations")
    found = annotations.get("elasticsearch") if isinstance(annotations, Mapping) else None
    if isinstance(found, str):
        found = [found]
    return tuple(a for a in found if isinstance(a, str) and a) if isinstance(found, list) else ()


def _join(prefix: str | None, name: str) -> str:
    return name if not prefix else f"{prefix}.{name}"


def _kind(quantity: QuantityDef) -> tuple[str, str]:
    """(kind, dtype) of a quantity's type, following quantity references to their target."""
    seen: set[int] = set()
    current = quantity
    while True:
        kind, data = current.type.kind, current.type.data
        if kind == "quantity_reference":
            try:
                target = current.type.target
            except (KeyError, ValueError):
                return "json", "quantity_reference"
            if not isinstance(target, QuantityDef) or id(target) in seen:
                return "json", "quantity_reference"
            seen.add(id(target))
            current = target
            continue
        if kind == "enum":
            return "enum", "enum"
        if kind in ("reference", "User", "Author"):
            return "reference", kind
        name = str(data).rsplit(".", 1)[-1]
        if kind == "custom":
            return _CUSTOM_KINDS.get(name, "json"), name
        if name in ("str", "str_"):
            return "str", name
        if name in ("bool", "bool_"):
            return "bool", name
        if name == "int" or name in _NUMPY_INT:
            return "int", name
        if name == "float" or name in _NUMPY_FLOAT:
            return "float", name
        return "json", name


def _reference_target(quantity: QuantityDef) -> SectionDef | None:
    """The section a reference-typed quantity points to (users and authors included)."""
    if quantity.type.kind == "reference":
        return quantity.type.target_section
    name = _USER_SECTIONS.get(quantity.type.kind)
    if name is None:
        return None
    return quantity.package.environment.by_qualified_name(name)


_VARIANT_CACHE: dict[str, re.Pattern[str]] = {}


def _variants(quantity: QuantityDef) -> list[tuple[str, str | None]]:
    """(suffix, annotation) per annotation of a quantity: ``""``, ``.text``, ``__suggestion``...

    The annotation string is the full key of the placement NOMAD registered last; the suffix
    after the quantity's name is the same at every placement.
    """
    pattern = _VARIANT_CACHE.get(quantity.name)
    if pattern is None:
        pattern = re.compile(
            r"^(?:(?P<prefix>.*)\.)?"
            + re.escape(quantity.name)
            + r"(?P<suffix>(?:__suggestion)*(?:\.[A-Za-z_]\w*)?)$"
        )
        _VARIANT_CACHE[quantity.name] = pattern
    out: list[tuple[str, str | None]] = []
    for text in quantity.search_annotations:
        match = pattern.match(text)
        if match is not None and (match.group("suffix"), text) not in out:
            out.append((match.group("suffix"), text))
    return out


def _derive(environment: Environment) -> dict[str, SearchQuantity]:
    root = environment.by_qualified_name(ENTRY_ARCHIVE)
    if root is None:
        return {}
    strings = {text for section in environment.all_sections() for q in section.quantities
               for text in q.search_annotations}
    # Every dotted prefix of an exported key: evidence that a sub-section path is indexed.
    prefixes = {text.rsplit(".", i)[0] for text in strings for i in range(1, text.count(".") + 1)}
    out: dict[str, SearchQuantity] = {}
    # Iterative depth-first walk: (section, key prefix, repeats, include every sub-section,
    # sections on the way). Hostile metainfo may nest deeply or loop; loops end at a revisit.
    stack: list[tuple[SectionDef, str | None, bool, bool, frozenset[int]]] = [
        (root, None, False, False, frozenset())
    ]
    while stack:
        section, prefix, repeats, auto, on_path = stack.pop()
        if id(section) in on_path:
            continue
        on_path = on_path | {id(section)}
        try:
            properties = section.all_properties
        except (KeyError, ValueError):  # unresolvable bases: index what can be read
            continue
        for quantity in [p for p in properties.values() if isinstance(p, QuantityDef)]:
            if not quantity.search_annotations:
                continue
            key = _join(prefix, quantity.name)
            is_list = repeats or not quantity.is_scalar
            target = _reference_target(quantity)
            if target is not None:
                stack.append((target, key, is_list, False, on_path))
            _place(out, quantity, key, is_list)
        for sub in [p for p in properties.values() if isinstance(p, SubSectionDef)]:
            annotated = bool(_sub_section_annotations(sub))
            sub_key = _METADATA.sub("", _join(prefix, sub.name)) or None
            if not annotated and not auto:
                continue
            try:
                child = sub.sub_section
            except (KeyError, ValueError):
                continue
            child_auto = auto or (annotated and _includes_all(child, sub_key, prefixes))
            if sub_key is not None and sub_key not in out:
                out[sub_key] = SearchQuantity(
                    key=sub_key,
                    kind="section",
                    dtype=child.qualified_name,
                    is_list=repeats or sub.repeats,
                    annotation=sub.name if annotated else None,
                    definition=sub,
                )
            stack.append((child, sub_key, repeats or sub.repeats, child_auto, on_path))
    # NOMAD maps a sub-section only if something below it is indexed: drop empty sections.
    filled = {
        k.rsplit(".", i)[0] for k, q in out.items() if not q.is_section for i in range(1, k.count(".") + 1)
    }
    return {k: q for k, q in out.items() if not q.is_section or k in filled}


def _includes_all(section: SectionDef, key: str | None, prefixes: set[str]) -> bool:
    """Whether an annotated sub-section is indexed with ``auto_include_subsections``.

    The export drops the flag; the keys show it: some key continues through an unannotated
    sub-section of it (``results`` → ``results.material.elements``, ``material`` has none).
    """
    try:
        subs = section.all_sub_sections.values()
    except (KeyError, ValueError):
        return False
    return any(not _sub_section_annotations(s) and _join(key, s.name) in prefixes for s in subs)


def _place(out: dict[str, SearchQuantity], quantity: QuantityDef, key: str, is_list: bool) -> None:
    kind, dtype = _kind(quantity)
    enum_values: tuple[str, ...] = ()
    if kind == "enum" and isinstance(quantity.type.data, list):
        enum_values = tuple(str(v) for v in quantity.type.data)
    for suffix, annotation in _variants(quantity):
        full = key + suffix
        if full in out and not out[full].is_section:
            continue
        is_suggestion = suffix.startswith("__suggestion")
        sub_field = suffix.rsplit(".", 1)[1] if "." in suffix else None
        out[full] = SearchQuantity(
            key=full,
            kind="str" if is_suggestion or sub_field == "text" else kind,
            dtype=dtype,
            unit=None if is_suggestion else quantity.unit,
            shape=quantity.shape,
            enum_values=() if is_suggestion else enum_values,
            is_list=is_list,
            field=sub_field,
            suggestion=is_suggestion,
            annotation=annotation if annotation == full else None,
            definition=quantity,
        )


# ---------------------------------------------------------------------------- dynamic keys
def _dynamic(environment: Environment, key: str) -> tuple[SearchQuantity | None, str]:
    """A plugin or custom-schema key, or ``None`` and why not (NOMAD's ``parse_quantity_name``)."""
    path, _, schema = key.partition(_SCHEMA_SEPARATOR)
    schema, _, dtype = schema.partition(_SCHEMA_SEPARATOR)
    if not path.startswith("data.") or len(path) <= len("data."):
        return None, f"dynamic keys start with 'data.': data.<path>#<schema>, not {path!r}"
    if schema.startswith(_YAML_PREFIX):
        kind = _YAML_DTYPES.get(dtype)
        if kind is None:
            return None, (
                f"a key into a custom schema names its data type: {path}#{schema}#<type>, "
                f"<type> one of {', '.join(_YAML_DTYPES)}"
            )
        return SearchQuantity(key=key, kind=kind, dtype=dtype, is_list=True, dynamic=True), ""
    if dtype:
        return None, f"only custom schemas ({_YAML_PREFIX}...) take a data type after a second '#'"
    section = environment.by_qualified_name(schema)
    if section is None or section.outer is not None:
        return None, f"no schema section {schema!r} in this deployment's metainfo"
    if schema.split(".", 1)[0] == "nomad":
        return None, f"{schema} is built into NOMAD: only plugin schemas get dynamic search keys"
    entry_data = environment.by_qualified_name(_ENTRY_DATA)
    if entry_data is not None and not section.is_a(entry_data):
        return None, f"{schema} is not an EntryData section: it has no dynamic search keys"
    names = path.split(".")[1:]
    current, repeats = section, False
    for depth, name in enumerate(names):
        try:
            prop = current.all_properties.get(name)
        except (KeyError, ValueError):
            prop = None
        last = depth == len(names) - 1
        if last and isinstance(prop, QuantityDef):
            kind, dtype_name = _kind(prop)
            if not prop.is_scalar or kind not in ("str", "enum", "int", "float", "bool", "datetime"):
                return None, f"{prop.qualified_name} is not a scalar str, number, bool or date: not indexed"
            values: tuple[str, ...] = ()
            if kind == "enum" and isinstance(prop.type.data, list):
                values = tuple(str(v) for v in prop.type.data)
            return SearchQuantity(
                key=key, kind=kind, dtype=dtype_name, unit=prop.unit, enum_values=values,
                is_list=repeats, dynamic=True, definition=prop,
            ), ""
        if not last and isinstance(prop, SubSectionDef):
            try:
                current = prop.sub_section
            except (KeyError, ValueError):
                break
            repeats = repeats or prop.repeats
            continue
        options = difflib.get_close_matches(name, list(current.all_properties), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(options)}?" if options else ""
        return None, f"{current.qualified_name} has no {'quantity' if last else 'sub-section'} {name!r}{hint}"
    return None, f"cannot follow {path!r} in {schema}"


def iter_keys(quantities: Mapping[str, SearchQuantity], *, sections: bool = False) -> Iterator[str]:
    """The keys a query can filter on (no sections unless asked), for listings and completion."""
    for key, quantity in quantities.items():
        if sections or not quantity.is_section:
            yield key
