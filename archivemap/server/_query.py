"""``entries/query`` semantics: the query language, cursor pagination and metadata ``required``
(aggregations: :mod:`archivemap.server._aggregations`), with NOMAD 2.0.0's validation and echo (spec §5.4-§5.6).

The query goes through the same two stages as in NOMAD: the request model (pydantic's union
``And | Or | Not | Nested | Criteria | Empty | Mapping``, ``:op`` suffixes and the duplicate
check of ``_validate_query``), then ``normalize_api_query``, which checks every quantity
against the search document and produces the normalised query NOMAD echoes back
(``{"name": ..., "value": ...}``, ``{"and": [...]}``). The search back end itself (NOMAD's
Elasticsearch) is emulated over the served entries' search documents.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import operator
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from archivemap._json import parse_json
from archivemap.errors import ArchiveDataError
from archivemap.server._problems import ApiProblem, validation_item, validation_problem
from archivemap.server._store import Entry, EntryStore

__all__ = [
    "MAX_RESULT_WINDOW",
    "OWNERS",
    "CompiledQuery",
    "Page",
    "Pagination",
    "SearchFields",
    "compile_query",
    "filter_metadata",
    "paginate",
    "parse_metadata_required",
    "parse_pagination",
    "query_from_parameters",
    "url_with",
]

Predicate = Callable[[Entry], bool]

#: Owner values in NOMAD's enum order (it shows up in the 422 message).
OWNERS = ("public", "all", "visible", "shared", "user", "staging", "admin")
#: Elasticsearch's ``index.max_result_window``: ``from + size`` may not pass it.
MAX_RESULT_WINDOW = 10_000

_LIST_OPS = ("any", "all", "none")
_RANGE_OPS = ("lt", "lte", "gt", "gte")
_OPS = frozenset(_LIST_OPS + _RANGE_OPS)
# Search document fields NOMAD indexes in nested documents: criteria on them echo with a prefix.
_NESTED_PREFIXES = ("entry_references", "search_quantities")
# Search quantities every NOMAD knows, even if no served entry sets them.
_ALWAYS_KNOWN = frozenset(
    {
        "entry_id", "upload_id", "mainfile", "parser_name", "entry_name", "entry_type",
        "quantities", "sections", "published", "with_embargo", "processed", "n_quantities",
        "upload_create_time", "entry_create_time", "last_processing_time", "nomad_version",
        "domain", "origin", "comment", "references", "external_db", "text_search_contents",
        "results.material.elements", "results.material.n_elements",
        "results.material.chemical_formula_hill", "results.material.chemical_formula_reduced",
        "results.material.chemical_formula_anonymous", "results.material.chemical_formula_descriptive",
        "results.material.structural_type", "results.material.material_id",
        "results.method.method_name", "results.method.simulation.program_name",
        "entry_references.target_entry_id", "entry_references.target_path",
    }
)
# Sub-fields of user and dataset objects in the search document.
_OBJECT_FIELDS = {
    "main_author": ("user_id", "name"),
    "authors": ("user_id", "name"),
    "writers": ("user_id", "name"),
    "viewers": ("user_id", "name"),
    "datasets": ("dataset_id", "dataset_name", "doi"),
}
_MANY_OBJECTS = frozenset({"authors", "writers", "viewers", "datasets"})


@dataclasses.dataclass(frozen=True)
class SearchFields:
    """Which quantities the search document has and which of them hold lists.

    Built from the schema's ``a_elasticsearch`` annotations when the server has a metainfo
    export, else from the served entries' documents (plus the quantities every NOMAD has).
    """

    known: frozenset[str]
    many: frozenset[str]

    @classmethod
    def for_store(cls, store: EntryStore) -> SearchFields:
        """The search fields of a store (cached on it)."""
        cached = store.search_fields
        if isinstance(cached, SearchFields):
            return cached
        known = set(store.known_fields) | set(_ALWAYS_KNOWN)
        many = set(store.many_fields)
        if store.schema is not None:
            for name, is_many in store.schema.search_quantities.items():
                known.add(name)
                if is_many:
                    many.add(name)
        for name, subfields in _OBJECT_FIELDS.items():
            known.update(f"{name}.{sub}" for sub in subfields)
            if name in _MANY_OBJECTS:
                many.update(f"{name}.{sub}" for sub in subfields)
        fields = cls(frozenset(known), frozenset(many))
        store.search_fields = fields
        return fields

    def check(self, name: str, loc: Any = None) -> None:
        """422 (NOMAD's ``QueryValidationError``) for a name the search document lacks."""
        if name not in self.known:
            raise ApiProblem(422, [{"msg": f"{name} is not a doc quantity", "loc": [loc if loc is not None else [name]]}])


# -- the query model -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CompiledQuery:
    """A validated query: NOMAD's normalised echo and a predicate over entries."""

    echo: Any
    predicate: Predicate


def _union_errors(query: Any) -> ApiProblem:
    """pydantic's answer when ``query`` matches no member of NOMAD's ``Query`` union."""
    loc = ["body", "query"]
    items = [
        {"type": "model_attributes_type", "loc": [*loc, name], "msg": "Input should be a valid dictionary or object to extract fields from", "input": False}
        for name in ("And", "Or", "Not")
    ]
    items += [
        {"type": "model_attributes_type", "loc": [*loc, name], "msg": "Input should be a valid dictionary or object to extract fields from", "input": query}
        for name in ("Nested", "Criteria", "Empty")
    ]
    items.append(
        {
            "type": "dict_type",
            "loc": [*loc, "dict[str,union[int,float,bool,str,datetime,list[union[int,float,bool,str,datetime]],function-after[check_range_is_valid(), Range],Any_,All,None_,dict[str,any]]]"],
            "msg": "Input should be a valid dictionary",
            "input": query,
        }
    )
    return ApiProblem(422, items)


def _is_value(value: Any) -> bool:
    return isinstance(value, (bool, int, float, str))


def _op_model(value: Any) -> tuple[str, Any] | None:
    """The operator model a dict value validates as (``Range``, ``Any_``, ``All``, ``None_``).

    Like pydantic with NOMAD's models: a range needs a *truthy* bound and no conflicting
    pair; list operators need a list of plain values. Anything else is a nested dict.
    """
    if not isinstance(value, Mapping) or not value:
        return None
    keys = set(value)
    if keys <= set(_RANGE_OPS):
        bounds = [value.get(op) for op in _RANGE_OPS]
        if not all(b is None or (_is_value(b) and not isinstance(b, bool)) for b in bounds):
            return None
        if not any(bounds) or ("lt" in value and "lte" in value and None not in (value["lt"], value["lte"])):
            return None
        if "gt" in value and "gte" in value and None not in (value["gt"], value["gte"]):
            return None
        return "range", {op: value[op] for op in _RANGE_OPS if value.get(op) is not None}
    if len(keys) == 1:
        (op,) = keys
        operand = value[op]
        if op in _LIST_OPS and isinstance(operand, list) and all(_is_value(v) for v in operand):
            return op, list(operand)
    return None


def _suffix_value(name: str, value: Any, loc: list[Any]) -> tuple[str, Any]:
    """NOMAD's ``_validate_criteria_value``: ``name:op`` suffixes and lists meaning ``all``."""
    if ":" in name:
        quantity, qualifier = name.rsplit(":", 1)
        if qualifier in _OPS:
            if qualifier in _LIST_OPS:
                if not isinstance(value, list) or not all(_is_value(v) for v in value):
                    raise validation_problem(loc, "Input should be a valid list", "list_type", value)
                return quantity, (qualifier, list(value))
            if not (_is_value(value) and not isinstance(value, bool)):
                raise validation_problem(loc, "Input should be a valid number or string", "union_type", value)
            if not value:
                raise validation_problem(loc, "At least one range boundary must be defined", "range_undefined", {qualifier: value})
            return quantity, ("range", {qualifier: value})
    if isinstance(value, list):
        if not all(_is_value(v) for v in value):
            raise validation_problem(loc, "Input should be a valid list of values", "list_type", value)
        return name, ("all", list(value))
    if isinstance(value, Mapping):
        model = _op_model(value)
        return name, (model if model is not None else ("dict", value))
    if value is None or not _is_value(value):
        raise validation_problem(loc, "Input should be a valid value", "union_type", value)
    return name, ("eq", value)


def _validate_mapping(query: Mapping[str, Any], loc: list[Any]) -> list[tuple[str, Any]]:
    """NOMAD's ``_validate_query`` on a mapping: suffixes resolved, duplicates refused."""
    items: list[tuple[str, Any]] = []
    names: dict[str, None] = {}
    for key, value in query.items():
        quantity, converted = _suffix_value(str(key), value, loc + [key])
        if quantity != key and (quantity in query or quantity in names):
            raise ApiProblem(
                422,
                [{"type": "duplicate_quantity", "loc": loc, "msg": "A quantity can only appear once in a query", "input": dict(query)}],
            )
        names[quantity] = None
        items.append((quantity, converted))
    return items


class _Compiler:
    def __init__(self, fields: SearchFields | None) -> None:
        self.fields = fields

    def query(self, query: Any, loc: list[Any], prefix: str | None = None) -> tuple[Any, Predicate]:
        """A ``Query`` (any union member): ``(echo, predicate)``."""
        if not isinstance(query, Mapping):
            raise _union_errors(query)
        if "and" in query and isinstance(query["and"], list) and all(isinstance(q, Mapping) for q in query["and"]):
            parts = [self.query(q, loc + ["and", i], prefix) for i, q in enumerate(query["and"])]
            return {"and": [echo for echo, _ in parts]}, _all_of([p for _, p in parts])
        if "or" in query and isinstance(query["or"], list) and all(isinstance(q, Mapping) for q in query["or"]):
            parts = [self.query(q, loc + ["or", i], prefix) for i, q in enumerate(query["or"])]
            predicates = [p for _, p in parts]
            return {"or": [echo for echo, _ in parts]}, lambda entry: any(p(entry) for p in predicates)
        if "not" in query and isinstance(query["not"], Mapping):
            echo, inner = self.query(query["not"], loc + ["not"], prefix)
            return {"not": echo}, lambda entry: not inner(entry)
        if isinstance(query.get("prefix"), str) and "query" in query:
            nested = str(query["prefix"])
            echo, predicate = self.query(query["query"], loc + ["query"], nested)
            return {"prefix": nested, "query": echo}, predicate
        if set(query) == {"name", "value"} and isinstance(query["name"], str):
            name, value = _suffix_value(query["name"], query["value"], loc)
            return self.criteria(name, value, prefix, loc)
        if not query:
            return {"and": []}, lambda entry: True
        parts = [self.criteria(name, value, prefix, loc) for name, value in _validate_mapping(query, loc)]
        if len(parts) == 1:
            return parts[0]
        return {"and": [echo for echo, _ in parts]}, _all_of([p for _, p in parts])

    def criteria(self, name: str, value: tuple[str, Any], prefix: str | None, loc: list[Any]) -> tuple[Any, Predicate]:
        """NOMAD's ``normalize_criteria``: nested dicts become ``and``s of their items."""
        full = f"{prefix}.{name}" if prefix else name
        kind, operand = value
        if kind == "dict":
            parts = []
            for key, inner in operand.items():
                inner_name, inner_value = _suffix_value(f"{full}.{key}", inner, loc + [key])
                parts.append(self.criteria(inner_name, inner_value, None, loc))
            return {"and": [echo for echo, _ in parts]}, _all_of([p for _, p in parts])
        if self.fields is not None:
            self.fields.check(full)
        echo_value = operand if kind in ("eq", "range") else {kind: operand}
        echo: Any = {"name": name, "value": echo_value}
        if prefix is None:
            nested = next((p for p in _NESTED_PREFIXES if full.startswith(p + ".")), None)
            if nested is not None:
                echo = {"prefix": nested, "query": {"name": full[len(nested) + 1 :], "value": echo_value}}
        return echo, _leaf(full, kind, operand)


def _all_of(predicates: list[Predicate]) -> Predicate:
    return lambda entry: all(p(entry) for p in predicates)


def _variants(value: Any) -> tuple[Any, ...]:
    """A query value and its other spellings, as Elasticsearch coerces a term to the field's
    type (``"3"`` matches 3, ``"true"`` matches True, 3 matches ``"3"``)."""
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "false"):
            return value, lowered == "true"
        for kind in (int, float):
            try:
                return value, kind(lowered)
            except ValueError:
                continue
        return (value,)
    if isinstance(value, bool):
        return value, str(value).lower()
    return value, str(value)


def _comparable(candidate: Any, bound: Any) -> tuple[Any, Any]:
    """A pair ``<``/``>`` works on: numbers given as text become numbers, else both text."""
    if isinstance(candidate, (int, float)) and not isinstance(candidate, bool) and isinstance(bound, str):
        try:
            return candidate, float(bound)
        except ValueError:
            return str(candidate), bound
    if isinstance(candidate, str) and not isinstance(bound, str):
        return candidate, str(bound)
    return candidate, bound


def _leaf(name: str, kind: str, operand: Any) -> Predicate:
    if kind in _LIST_OPS or kind == "eq":
        groups = [frozenset(_variants(v)) for v in (operand if kind in _LIST_OPS else [operand])]
        flat = frozenset().union(*groups)
        if kind == "all":
            return lambda entry: all(not group.isdisjoint(entry.fields.get(name, ())) for group in groups)
        if kind == "none":
            return lambda entry: flat.isdisjoint(entry.fields.get(name, ()))
        return lambda entry: not flat.isdisjoint(entry.fields.get(name, ()))
    compares: list[tuple[Callable[[Any, Any], bool], Any]] = [
        ({"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}[op], bound)
        for op, bound in operand.items()
    ]

    def ranged(entry: Entry) -> bool:
        for candidate in entry.fields.get(name, ()):
            try:
                if all(compare(*_comparable(candidate, bound)) for compare, bound in compares):
                    return True
            except TypeError:
                continue
        return False

    return ranged


def compile_query(query: Any, fields: SearchFields | None) -> CompiledQuery:
    """Validate and normalise a NOMAD query.

    Args:
        query: the body's ``query`` (None for everything).
        fields: the search document's quantities; None validates the request model only
            (NOMAD checks quantity names later, at search time).

    Returns:
        NOMAD's normalised echo and a predicate.

    Raises:
        ApiProblem: 422 like NOMAD for a malformed query, a duplicate quantity at one level,
            or a quantity the search document lacks.
    """
    if query is None:
        return CompiledQuery({"and": []}, lambda entry: True)
    if isinstance(query, Mapping) and "optimade_filter" in query:
        raise ApiProblem(
            422,
            [{"loc": [["optimade_filter"]], "msg": "optimade_filter is not supported by the archivemap local server"}],
        )
    echo, predicate = _Compiler(fields).query(query, ["body", "query"])
    return CompiledQuery(echo, predicate)


def query_from_parameters(params: Mapping[str, list[str]], fields: SearchFields) -> dict[str, Any]:
    """NOMAD's ``QueryParameters``: URL parameters of ``GET entries`` to a query dict.

    ``quantity=value`` (repeat for several values; ``all`` for list-valued quantities, else
    ``any``), ``quantity__op=value``, ``q=quantity__op__value`` and ``json_query=<JSON>``.
    Parameters that are no search quantity (``page_size``, ``owner``, ...) are ignored.

    Raises:
        ApiProblem: 422 for a bad ``q``, an unknown operator, several values for a range
            operator or unparsable ``json_query``.
    """
    collected: dict[str, list[str]] = {key: list(values) for key, values in params.items() if key not in ("q", "json_query")}
    for parameter in params.get("q", []):
        fragments = parameter.split("__")
        if len(fragments) == 1 or len(fragments) > 3:
            raise ApiProblem(422, [{"loc": ["query", "q"], "msg": "wrong format, use <quantity>[__<op>]__<value>"}])
        name_op, value = "__".join(fragments[:-1]), fragments[-1]
        quantity_name = name_op.split("__", 1)[0]
        if quantity_name not in fields.known:
            raise ApiProblem(422, [{"loc": ["query", parameter], "msg": f"{quantity_name} is not a entries quantity"}])
        collected.setdefault(name_op, []).append(value)
    query: dict[str, Any] = {}
    for key, values in collected.items():
        name, _, op = key.partition("__")
        if name not in fields.known:
            continue
        converted = [_convert(value) for value in values]
        if not op:
            op = "all" if name in fields.many else "any"
        if op in _LIST_OPS:
            query[name] = {op: converted}
        elif op in _RANGE_OPS:
            if len(converted) > 1:
                raise ApiProblem(422, [{"loc": ["query", key], "msg": f"operator {op} does not support multiple values"}])
            query[name] = {op: converted[0]}
        else:
            raise ApiProblem(422, [{"loc": ["query", key], "msg": f"operator {op} is unknown"}])
    for raw in params.get("json_query", []):
        try:
            loaded = parse_json(raw)
        except ArchiveDataError:
            loaded = None
        if not isinstance(loaded, Mapping):
            raise ApiProblem(422, [{"loc": ["json_query"], "msg": "cannot parse json_query"}])
        query.update(loaded)
    return query


def _convert(value: str) -> Any:
    """URL values to the search document's types (NOMAD converts by the quantity's type)."""
    if value in ("true", "True"):
        return True
    if value in ("false", "False"):
        return False
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    return value


# -- pagination ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Pagination:
    """A validated ``pagination`` request."""

    page_size: int = 10
    order_by: str = "entry_id"
    order: str = "asc"
    page_after_value: str | None = None
    page: int | None = None
    page_offset: int | None = None

    def echo(self) -> dict[str, Any]:
        """The request part NOMAD echoes back in the response's ``pagination``."""
        out: dict[str, Any] = {"page_size": self.page_size, "order_by": self.order_by, "order": self.order}
        for name in ("page_after_value", "page", "page_offset"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


@dataclasses.dataclass(frozen=True)
class Page:
    """One page of matching entries."""

    entries: list[Entry]
    total: int
    next_page_after_value: str | None


def _lax_int(value: Any, loc: list[Any], errors: list[dict[str, Any]]) -> int | None:
    """pydantic's lax ``int``: ints, bools, integral floats and numeric strings."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        errors.append(validation_item(loc, "Input should be a valid integer, got a number with a fractional part", "int_from_float", value))
        return None
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            errors.append(validation_item(loc, "Input should be a valid integer, unable to parse string as an integer", "int_parsing", value))
            return None
    errors.append(validation_item(loc, "Input should be a valid integer", "int_type", value))
    return None


def parse_pagination(raw: Any, max_page_size: int | None = None) -> Pagination:
    """Validate a ``pagination`` object like NOMAD's ``MetadataPagination`` does.

    Includes Elasticsearch's 10,000 result window: ``page * page_size`` and
    ``page_offset + page_size`` must stay below it (NOMAD's validators), and so must a single
    page (``page_size`` up to 10,000).

    Args:
        raw: the body's ``pagination`` (dict or None).
        max_page_size: a page size limit injected as a fault, or None.

    Raises:
        ApiProblem: 422 with pydantic-style items (``loc`` starting ``body, pagination``).
    """
    if raw is None:
        raw = {}
    loc = ["body", "pagination"]
    if not isinstance(raw, Mapping):
        raise validation_problem(loc, "Input should be a valid dictionary or instance of MetadataPagination", "model_type", raw, {"class_name": "MetadataPagination"})
    errors: list[dict[str, Any]] = []
    page_size: int | None = 10
    if raw.get("page_size") is not None:
        page_size = _lax_int(raw["page_size"], loc + ["page_size"], errors)
        if page_size is not None and page_size < 0:
            errors.append(validation_item(loc + ["page_size"], "page_size must be >= 0", "invalid_page_size", raw["page_size"]))
            page_size = None
        elif page_size is not None and max_page_size is not None and page_size > max_page_size:
            errors.append(
                validation_item(loc + ["page_size"], f"Input should be less than or equal to {max_page_size}", "less_than_equal", raw["page_size"], {"le": max_page_size})
            )
            page_size = None
        elif page_size is not None and page_size > MAX_RESULT_WINDOW:
            errors.append(
                validation_item(
                    loc + ["page_size"],
                    f"page_size must be <= {MAX_RESULT_WINDOW} (the search result window)",
                    "invalid_page_size",
                    raw["page_size"],
                )
            )
            page_size = None
    order_by = raw.get("order_by")
    if order_by is not None and not isinstance(order_by, str):
        errors.append(validation_item(loc + ["order_by"], "Input should be a valid string", "string_type", order_by))
    order = raw.get("order", "asc")
    if order is None:
        order = "asc"
    if order not in ("asc", "desc"):
        errors.append(validation_item(loc + ["order"], "Input should be 'asc' or 'desc'", "enum", order, {"expected": "'asc' or 'desc'"}))
    after = raw.get("page_after_value")
    if after is not None and not isinstance(after, str):
        errors.append(validation_item(loc + ["page_after_value"], "Input should be a valid string", "string_type", after))
    size_for_window = 10 if page_size is None else page_size
    page = None if raw.get("page") is None else _lax_int(raw["page"], loc + ["page"], errors)
    if page is not None:
        if page <= 0:
            errors.append(validation_item(loc + ["page"], "Page has to be larger than 1", "bad_page", raw["page"]))
        elif page * size_for_window >= MAX_RESULT_WINDOW:
            errors.append(validation_item(loc + ["page"], "Pagination by `page` is limited to 10.000 entries.", "bad_page", raw["page"]))
    offset = None if raw.get("page_offset") is None else _lax_int(raw["page_offset"], loc + ["page_offset"], errors)
    if offset is not None:
        if offset < 0:
            errors.append(validation_item(loc + ["page_offset"], "Page offset has to be larger than 0", "bad_page_offset", raw["page_offset"]))
        elif offset + size_for_window >= MAX_RESULT_WINDOW:
            errors.append(
                validation_item(loc + ["page_offset"], "Page offset plus page size has to be smaller than 10,000", "bad_page_offset", raw["page_offset"])
            )
    if errors:
        raise ApiProblem(422, errors)
    criteria = [name for name in ("page_after_value", "page", "page_offset") if raw.get(name) is not None]
    if len(criteria) > 1:
        raise validation_problem(
            loc, "Can only specify one of: page_offset, page, or page_after_value", "multiple_pagination_criteria", dict(raw)
        )
    assert page_size is not None
    resolved_order_by = "mainfile" if order_by == "mainfile_path" else (order_by or "entry_id")
    return Pagination(page_size, str(resolved_order_by), str(order), after, page, offset)


def check_order_by(pagination: Pagination, fields: SearchFields) -> None:
    """NOMAD's search-time check of ``order_by``: a known, scalar search quantity.

    Raises:
        ApiProblem: 422 ``... is not a doc quantity`` / ``the order_by quantity must be a scalar``.
    """
    name = pagination.order_by
    if name in ("entry_id", "_score", "_doc"):
        return
    fields.check(name, ["pagination", "order_by"])
    if name in fields.many:
        raise ApiProblem(422, [{"msg": "the order_by quantity must be a scalar", "loc": [["pagination", "order_by"]]}])


def _sort_value(entry: Entry, order_by: str) -> tuple[int, Any]:
    values = entry.fields.get(order_by)
    if not values:
        return (1, "")  # entries without the field sort last, like a missing ES value
    value = values[0]
    return (0, value if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value))


def paginate(entries: Sequence[Entry], pagination: Pagination) -> Page:
    """Select one page of the matching entries and compute the next cursor.

    ``next_page_after_value`` follows NOMAD (``_es_to_api_pagination``): it is set whenever
    a page is full and more entries match in total, so a chain may end with an empty page.

    Args:
        entries: every matching entry, in entry id order.
        pagination: the validated pagination.

    Raises:
        ApiProblem: 400 for a cursor that cannot be read for the chosen ``order_by``.
    """
    matching = list(entries)
    total = len(matching)
    reverse = pagination.order == "desc"
    by_id = pagination.order_by == "entry_id"

    def cursor_key(entry: Entry) -> tuple[Any, ...]:
        return (entry.entry_id,) if by_id else (*_sort_value(entry, pagination.order_by), entry.entry_id)

    if not by_id:
        matching.sort(key=cursor_key)
    if reverse:
        matching.reverse()

    start = 0
    if pagination.page_after_value is not None:
        after = _parse_cursor(pagination.page_after_value, by_id, matching, pagination.order_by)
        start = next(
            (i for i, entry in enumerate(matching) if (cursor_key(entry) < after if reverse else cursor_key(entry) > after)),
            len(matching),
        )
    elif pagination.page is not None:
        start = (pagination.page - 1) * pagination.page_size
    elif pagination.page_offset is not None:
        start = pagination.page_offset
    selected = matching[start : start + pagination.page_size]
    next_value: str | None = None
    if 0 < len(selected) < total and len(selected) >= pagination.page_size:
        last = selected[-1]
        if by_id:
            next_value = last.entry_id
        else:
            _, value = _sort_value(last, pagination.order_by)
            next_value = f"{value}:{last.entry_id}"
    return Page(selected, total, next_value)


def _parse_cursor(cursor: str, by_id: bool, matching: Sequence[Entry], order_by: str) -> tuple[Any, ...]:
    if by_id:
        return (cursor,)
    value, sep, entry_id = cursor.rpartition(":")
    if not sep:
        raise ApiProblem(400, f"page_after_value {cursor!r} is not a cursor for order_by {order_by}")
    # Compare with the typed sort value of the entry the cursor names, when it is served.
    for entry in matching:
        if entry.entry_id == entry_id:
            return (*_sort_value(entry, order_by), entry_id)
    return (0, value, entry_id)


# -- metadata required -----------------------------------------------------------------------


def parse_metadata_required(required: Any) -> dict[str, list[str]] | None:
    """Validate a metadata ``required`` (NOMAD's ``MetadataRequired``; unknown keys ignored).

    Returns:
        ``{"include": [...]}`` and/or ``{"exclude": [...]}`` as given (the echo), or None.

    Raises:
        ApiProblem: 422 for a non-object or lists that are not lists of strings.
    """
    if required is None:
        return None
    loc = ["body", "required"]
    if not isinstance(required, Mapping):
        raise validation_problem(loc, "Input should be a valid dictionary or instance of MetadataRequired", "model_type", required, {"class_name": "MetadataRequired"})
    out: dict[str, list[str]] = {}
    for name in ("include", "exclude"):
        value = required.get(name)
        if value is None:
            continue
        if not isinstance(value, list):
            raise validation_problem(loc + [name], "Input should be a valid list", "list_type", value)
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise validation_problem(loc + [name, index], "Input should be a valid string", "string_type", item)
        out[name] = list(value)
    return out


def filter_metadata(document: Mapping[str, Any], required: Mapping[str, list[str]] | None) -> dict[str, Any]:
    """Apply a validated metadata ``required`` (dotted names, wildcards) (§5.6).

    ``entry_id`` is always kept, like NOMAD does.
    """
    if not required:
        return dict(document)
    include, exclude = required.get("include"), required.get("exclude")
    result: dict[str, Any] = dict(document)
    if include is not None:
        result = _select(document, "", list(include) + ["entry_id"])
    if exclude:
        result = _drop(result, "", exclude)
    result["entry_id"] = document.get("entry_id")
    return result


def _matches(path: str, patterns: Sequence[str]) -> bool:
    return any(path == p or path.startswith(p + ".") or fnmatch.fnmatchcase(path, p) for p in patterns)


def _is_prefix(path: str, patterns: Sequence[str]) -> bool:
    return any(p.startswith(path + ".") or "*" in p for p in patterns)


def _select(document: Mapping[str, Any], prefix: str, patterns: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in document.items():
        path = f"{prefix}{key}"
        if _matches(path, patterns):
            out[key] = value
        elif isinstance(value, Mapping) and _is_prefix(path, patterns):
            inner = _select(value, path + ".", patterns)
            if inner:
                out[key] = inner
    return out


def _drop(document: Mapping[str, Any], prefix: str, patterns: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in document.items():
        path = f"{prefix}{key}"
        if _matches(path, patterns):
            continue
        out[key] = _drop(value, path + ".", patterns) if isinstance(value, Mapping) else value
    return out


def url_with(url: str, **changes: Any) -> str:
    """``url`` with query parameters set (or, for ``None``, removed): NOMAD's page URLs."""
    split = urllib.parse.urlsplit(url)
    params = urllib.parse.parse_qs(split.query, keep_blank_values=True)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = [str(value)]
    return urllib.parse.urlunsplit(split._replace(query=urllib.parse.urlencode(params, doseq=True)))
