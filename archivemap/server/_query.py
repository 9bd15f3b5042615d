"""``entries/query`` semantics: the query language, cursor pagination and metadata ``required``.

Covers the subset of spec §5.4-§5.6 a client of archivemap uses: equality, lists meaning
``all``, ``:any``/``:all``/``:none``/``:gt``... suffixes, operator objects, ``and``/``or``/``not``,
nested dicts flattened into dotted names, and cursors over ``entry_id`` (other ``order_by``
fields get NOMAD's ``"<value>:<entry_id>"`` cursors).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from archivemap.server._problems import ApiProblem, validation_item, validation_problem
from archivemap.server._store import Entry, EntryStore

__all__ = [
    "OWNERS",
    "Page",
    "Pagination",
    "compile_query",
    "filter_metadata",
    "paginate",
    "parse_pagination",
]

Predicate = Callable[[Entry], bool]

OWNERS = ("public", "visible", "shared", "user", "staging", "admin", "all")
_LIST_OPS = ("any", "all", "none")
_RANGE_OPS = ("gt", "gte", "lt", "lte")
_OPERATORS = frozenset(_LIST_OPS + _RANGE_OPS)
# Search quantities NOMAD always knows, even if no served entry sets them: asking for one is
# an empty result, not a 422.
_ALWAYS_KNOWN = frozenset(
    {
        "entry_id",
        "upload_id",
        "mainfile",
        "parser_name",
        "entry_name",
        "entry_type",
        "quantities",
        "published",
        "with_embargo",
        "upload_create_time",
        "entry_create_time",
        "results.material.elements",
        "results.material.n_elements",
        "results.material.chemical_formula_hill",
        "results.material.chemical_formula_reduced",
        "results.material.chemical_formula_anonymous",
        "results.material.chemical_formula_descriptive",
        "results.material.structural_type",
        "results.method.method_name",
        "results.method.simulation.program_name",
        "entry_references.target_entry_id",
        "entry_references.target_path",
        "datasets.dataset_id",
        "authors.name",
        "main_author.user_id",
    }
)


def compile_query(query: Any, store: EntryStore) -> Predicate:
    """Turn a NOMAD query into a predicate over entries.

    Args:
        query: the body's ``query`` (a dict, or None for everything).
        store: the served entries; their fields decide which quantities exist.

    Returns:
        A function telling whether an entry matches.

    Raises:
        ApiProblem: 422 for unknown quantities, bad operators or a malformed query.
    """
    if query is None:
        return lambda entry: True
    known = store.known_fields | _ALWAYS_KNOWN
    return _compile(query, "", known, ["body", "query"])


def _compile(query: Any, prefix: str, known: frozenset[str], loc: list[Any]) -> Predicate:
    if not isinstance(query, Mapping):
        raise validation_problem(loc, "Input should be a valid dictionary", "dict_type", query)
    if set(query) == {"prefix", "query"} and not prefix and isinstance(query["prefix"], str):
        # NOMAD's nested-document form; approximated by prefixing the inner names.
        return _compile(query["query"], query["prefix"], known, loc + ["query"])
    predicates: list[Predicate] = []
    for key, value in query.items():
        predicates.append(_compile_item(str(key), value, prefix, known, loc + [key]))
    return lambda entry: all(predicate(entry) for predicate in predicates)


def _compile_item(
    key: str, value: Any, prefix: str, known: frozenset[str], loc: list[Any]
) -> Predicate:
    if key in ("and", "or") and not prefix:
        if not isinstance(value, list):
            raise validation_problem(loc, "Input should be a valid list", "list_type", value)
        parts = [_compile(item, "", known, loc + [i]) for i, item in enumerate(value)]
        if key == "and":
            return lambda entry: all(part(entry) for part in parts)
        return lambda entry: any(part(entry) for part in parts)
    if key == "not" and not prefix:
        inner = _compile(value, "", known, loc)
        return lambda entry: not inner(entry)
    if key == "optimade_filter":
        raise ApiProblem(400, "optimade_filter is not supported by the archivemap local server")

    name, _, op = key.partition(":")
    name = f"{prefix}.{name}" if prefix else name
    if op and op not in _OPERATORS:
        raise validation_problem(loc, f"operator {op} is not supported", "value_error", key)
    if isinstance(value, Mapping) and not op:
        if value and set(value) <= _OPERATORS:
            return _compile_operators(name, value, known, loc)
        return _compile(value, name, known, loc)
    _check_known(name, known)
    return _leaf(name, op or ("all" if isinstance(value, list) else "eq"), value, loc)


def _compile_operators(
    name: str, value: Mapping[str, Any], known: frozenset[str], loc: list[Any]
) -> Predicate:
    _check_known(name, known)
    if ("gt" in value and "gte" in value) or ("lt" in value and "lte" in value):
        raise validation_problem(loc, "conflicting_bounds", "value_error", dict(value))
    if any(op in value for op in _LIST_OPS) and len(value) > 1:
        raise validation_problem(loc, "only one of any/all/none is allowed", "value_error", dict(value))
    parts = [_leaf(name, op, operand, loc + [op]) for op, operand in value.items()]
    return lambda entry: all(part(entry) for part in parts)


def _check_known(name: str, known: frozenset[str]) -> None:
    if name not in known:
        raise ApiProblem(422, [validation_item([[name]], f"{name} is not a doc quantity")])


def _leaf(name: str, op: str, operand: Any, loc: list[Any]) -> Predicate:
    if op in _LIST_OPS:
        wanted = list(operand) if isinstance(operand, list) else [operand]
        if op == "any":
            return lambda entry: any(v in entry.fields.get(name, ()) for v in wanted)
        if op == "all":
            return lambda entry: all(v in entry.fields.get(name, ()) for v in wanted)
        return lambda entry: not any(v in entry.fields.get(name, ()) for v in wanted)
    if isinstance(operand, (list, Mapping)):
        raise validation_problem(loc, "Input should be a scalar", "value_error", operand)
    if op == "eq":
        return lambda entry: operand in entry.fields.get(name, ())
    compare: Callable[[Any, Any], bool] = {
        "gt": operator.gt,
        "gte": operator.ge,
        "lt": operator.lt,
        "lte": operator.le,
    }[op]

    def ranged(entry: Entry) -> bool:
        for candidate in entry.fields.get(name, ()):
            try:
                if compare(candidate, operand):
                    return True
            except TypeError:
                continue
        return False

    return ranged


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


def parse_pagination(raw: Any, max_page_size: int | None = None) -> Pagination:
    """Validate a ``pagination`` object like NOMAD's pydantic model does.

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
        raise validation_problem(loc, "Input should be a valid dictionary", "dict_type", raw)
    page_size = raw.get("page_size", 10)
    if isinstance(page_size, bool) or not isinstance(page_size, int):
        raise validation_problem(loc + ["page_size"], "Input should be a valid integer", "int_type", page_size)
    if page_size < 0:
        raise validation_problem(
            loc + ["page_size"], "Input should be greater than or equal to 0",
            "greater_than_equal", page_size, {"ge": 0},
        )
    if max_page_size is not None and page_size > max_page_size:
        raise validation_problem(
            loc + ["page_size"], f"Input should be less than or equal to {max_page_size}",
            "less_than_equal", page_size, {"le": max_page_size},
        )
    order = raw.get("order", "asc")
    if order not in ("asc", "desc"):
        raise validation_problem(
            loc + ["order"], "Input should be 'asc' or 'desc'", "enum", order,
            {"expected": "'asc' or 'desc'"},
        )
    order_by = raw.get("order_by") or "entry_id"
    if not isinstance(order_by, str):
        raise validation_problem(loc + ["order_by"], "Input should be a valid string", "string_type", order_by)
    if order_by == "mainfile_path":
        order_by = "mainfile"
    after = raw.get("page_after_value")
    page = raw.get("page")
    offset = raw.get("page_offset")
    criteria = [name for name, v in (("page_after_value", after), ("page", page), ("page_offset", offset)) if v is not None]
    if len(criteria) > 1:
        raise validation_problem(loc, "multiple_pagination_criteria", "value_error", dict(raw))
    for name, value, minimum in (("page", page, 1), ("page_offset", offset, 0)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
            raise validation_problem(
                loc + [name], f"Input should be an integer >= {minimum}", "greater_than_equal", value, {"ge": minimum}
            )
    if after is not None and not isinstance(after, str):
        after = str(after)
    return Pagination(page_size, order_by, order, after, page, offset)


def _sort_value(entry: Entry, order_by: str) -> tuple[int, Any]:
    values = entry.fields.get(order_by)
    if not values:
        return (1, "")  # entries without the field sort last, like a missing ES value
    value = values[0]
    return (0, value if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value))


def paginate(store: EntryStore, predicate: Predicate, pagination: Pagination) -> Page:
    """Select one page of matching entries and compute the next cursor.

    Raises:
        ApiProblem: 400 for a cursor that cannot be read for the chosen ``order_by``.
    """
    matching = [entry for entry in store.entries if predicate(entry)]
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
    if selected and start + len(selected) < total:
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


def filter_metadata(document: Mapping[str, Any], required: Any) -> dict[str, Any]:
    """Apply a metadata ``required`` (``include``/``exclude`` dotted names, wildcards) (§5.6).

    ``entry_id`` is always kept, like NOMAD does.

    Raises:
        ApiProblem: 422 for a ``required`` that is not an include/exclude object.
    """
    if required is None:
        return dict(document)
    loc = ["body", "required"]
    if not isinstance(required, Mapping) or not set(required) <= {"include", "exclude"}:
        raise validation_problem(loc, "Input should be an object with 'include' or 'exclude'", "model_type", required)
    include, exclude = required.get("include"), required.get("exclude")
    for name, value in (("include", include), ("exclude", exclude)):
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise validation_problem(loc + [name], "Input should be a valid list of strings", "list_type", value)
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
