"""Typed search queries: built in Python or given as JSON, checked before they are sent.

NOMAD's query language (spec §5.4) is a JSON object of dotted search keys. A misspelt key
costs a round trip (NOMAD answers 422), a misspelt enum value or an operator that cannot
apply (a range on a string) silently matches nothing, and a number in the wrong unit matches
the wrong entries. The deployment's metainfo knows every key, its type and its unit
(:func:`archivemap.metainfo.search.search_quantities`), so all of this is decided here,
offline, with the nearest valid keys in the error.

Two ways in, one check:

* Build a query from Python::

      from archivemap.remote.query import Q
      q = (Q("results.material.elements") == ["Ti", "O"]) & (
          Q("results.properties.electronic.band_gap.value") > 1 * ureg.eV)
      q.validate(quantities).to_json()
      # {"and": [{"results.material.elements": ["Ti", "O"]},
      #          {"results.properties.electronic.band_gap.value": {"gt": 1.602176634e-19}}]}

* Give the JSON NOMAD takes: ``validate_query({"upload_create_time:gt": "2020-01-01"},
  quantities)`` checks it the same way and returns it with values made plain.

What NOMAD does with a query, and what is checked (NOMAD 2.0.0, ``nomad/app/v1/models``):

* ``{key: value}``: a scalar is equality; a **list means all** of its values (NOMAD wraps
  plain lists in ``All``); the entries of one object are AND-ed.
* Operators as key suffixes (``key:any``, ``key:all``, ``key:none``, ``key:gt`` ...) or as
  objects (``{"any": [...]}``, ``{"gte": 1, "lt": 2}``). ``any/all/none`` take a non-empty
  list; ranges take numbers or dates, never both ``gt`` and ``gte`` (nor ``lt`` and ``lte``).
* ``{"and": [...]}``, ``{"or": [...]}``, ``{"not": {...}}`` and nested documents
  ``{"prefix": "entry_references", "query": {...}}``; an object under a key that is not an
  operator object continues the key (``{"results": {"material": {"elements": [...]}}}``).
* One key twice in one query object (``key`` and ``key:any``) is refused (NOMAD: 422
  ``duplicate_quantity``); in nested objects NOMAD accepts it, and so does this module.

Checks NOMAD does not make, each because the answer could otherwise be silently wrong:
ranges only on numbers and dates; enum values must exist; ``all`` of several values of a key
an entry holds once can never match (use ``any``); an empty ``any/all/none`` list matches every
entry; ``and``/``or`` next to other keys in one object (NOMAD ignores the others); values
must have the key's type; quantities with units (pint) are converted to the unit the index
stores — the definition's unit — and sent as plain numbers; dates go as ISO 8601 strings.
"""

from __future__ import annotations

import datetime
import difflib
import math
from collections.abc import Iterable, Mapping
from typing import Any, Final, NoReturn

from archivemap.errors import QueryError
from archivemap.metainfo.search import SearchQuantities, SearchQuantity
from archivemap.units import unit as unit_of

__all__ = [
    "LIST_OPERATORS",
    "RANGE_OPERATORS",
    "Q",
    "Query",
    "SearchKey",
    "explain_query",
    "query_json",
    "validate_order_by",
    "validate_query",
]

#: Operators over a list of values, as key suffixes (``key:any``) or objects (``{"any": [...]}``).
LIST_OPERATORS: Final = ("any", "all", "none")
#: Range bounds, as key suffixes (``key:gt``) or objects (``{"gt": 1, "lte": 3}``).
RANGE_OPERATORS: Final = ("gt", "gte", "lt", "lte")
_OPERATORS: Final = LIST_OPERATORS + RANGE_OPERATORS
_LOGIC: Final = ("and", "or", "not")
_OPTIMADE: Final = "optimade_filter"
#: Deeper queries are refused: no honest query nests this far, and recursion must end.
MAX_DEPTH: Final = 64

Location = tuple[str | int, ...]


# ----------------------------------------------------------------------------- building
class Query:
    """A NOMAD search query: combine with ``&``, ``|`` and ``~``; emit with :meth:`to_json`.

    Holds the query as NOMAD's JSON, with Python values (pint quantities, datetimes) kept
    until :meth:`validate` converts them against the deployment's search quantities. Build
    criteria with :class:`SearchKey` (``Q``), or wrap existing JSON with :meth:`from_json`.
    ``Query()`` is the empty query: every entry.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise QueryError(f"a query is a JSON object (a dict), not {type(data).__name__}")
        self._data: dict[str, Any] = _copy(data)

    @classmethod
    def from_json(cls, data: Query | Mapping[str, Any] | None) -> Query:
        """A query from NOMAD's JSON form (checked only by :meth:`validate`)."""
        return data if isinstance(data, Query) else cls(data)

    # -- combining --------------------------------------------------------------------------
    def __and__(self, other: Query | Mapping[str, Any]) -> Query:
        return _combine("and", self, Query.from_json(other))

    def __rand__(self, other: Mapping[str, Any]) -> Query:
        return _combine("and", Query.from_json(other), self)

    def __or__(self, other: Query | Mapping[str, Any]) -> Query:
        return _combine("or", self, Query.from_json(other))

    def __ror__(self, other: Mapping[str, Any]) -> Query:
        return _combine("or", Query.from_json(other), self)

    def __invert__(self) -> Query:
        if set(self._data) == {"not"} and isinstance(self._data["not"], Mapping):
            return Query(self._data["not"])
        return Query({"not": self._data})

    def __bool__(self) -> bool:
        # ``1 < Q(k) < 3`` and ``a and b`` would silently drop a criterion.
        raise TypeError(
            "a Query has no truth value: combine queries with & | ~ (not and/or/not), and "
            "write a range as Q(key).between(low, high) (not low < Q(key) < high)"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Query) and self._data == other._data

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Query({self._data!r})"

    # -- output -----------------------------------------------------------------------------
    @property
    def is_empty(self) -> bool:
        """The empty query, which matches every entry."""
        return not self._data

    def to_json(self) -> dict[str, Any]:
        """The query exactly as NOMAD takes it (a fresh dict of plain JSON values).

        Datetimes become ISO 8601 strings and numpy scalars Python numbers. Quantities with
        units need the stored unit, which only the metainfo knows: :meth:`validate` first.

        Raises:
            QueryError: a value with a unit in a query not yet validated, or a value that is
                not JSON (``None``, an object).
        """
        return _plain(self._data, ())  # type: ignore[no-any-return]

    def validate(self, quantities: Mapping[str, SearchQuantity]) -> Query:
        """Check the query against a deployment's search quantities; return it converted.

        Args:
            quantities: :func:`~archivemap.metainfo.search.search_quantities` of the
                deployment's metainfo.

        Returns:
            The same query with units converted to the stored ones and dates as ISO strings.

        Raises:
            QueryError: see :func:`validate_query`.
        """
        return Query(validate_query(self._data, quantities))

    def keys(self) -> list[str]:
        """The search keys the query filters on (operators stripped), each once, in order."""
        found: list[str] = []
        _collect_keys(self._data, None, found, 0)
        return found


def _copy(value: Any) -> Any:
    """A structural copy of JSON-like data (dicts and lists); leaves are shared (immutable)."""
    if isinstance(value, Mapping):
        return {str(k) if not isinstance(k, str) else k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _parts(op: str, query: Query) -> list[Any]:
    data = query._data
    if set(data) == {op} and isinstance(data[op], list):
        return list(data[op])
    return [data]


def _combine(op: str, left: Query, right: Query) -> Query:
    if left.is_empty or right.is_empty:
        if op == "and":  # the empty query matches everything: neutral for and ...
            return right if left.is_empty else left
        return Query()  # ... and absorbing for or
    return Query({op: _parts(op, left) + _parts(op, right)})


class SearchKey:
    """A search key; comparing it makes a :class:`Query` criterion (alias ``Q``).

    ``Q(k) == v`` (equality; a list means *all* values), ``Q(k) != v``, ``Q(k) > v`` (also
    ``>=``, ``<``, ``<=``), ``Q(k).any([...])``, ``.all([...])``, ``.none([...])``,
    ``.between(low, high)`` and ``.range(gt=..., lte=...)``. Values may be pint quantities
    (converted to the stored unit by :meth:`Query.validate`) and ``datetime``/``date``.

    Args:
        key: the dotted search key (``results.material.elements``), without an ``:op`` suffix.
    """

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        if not isinstance(key, str) or not key.strip():
            raise QueryError(f"a search key is a non-empty string, not {key!r}")
        head, _, op = key.partition("#")[0].rpartition(":")
        if head:
            hint = f": use Q({head!r}).{op}(...)" if op in LIST_OPERATORS else ""
            raise QueryError(f"write the operator as a method, not as a suffix of {key!r}{hint}", key=key)
        self.key = key

    def __repr__(self) -> str:
        return f"Q({self.key!r})"

    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, value: Any) -> Query:  # type: ignore[override]
        if isinstance(value, (Mapping, Query, SearchKey)):
            raise QueryError(
                f"compare {self!r} with a value, not {type(value).__name__}: use .any/.all/.none/.range",
                key=self.key,
            )
        return Query({self.key: _as_values(value) if _is_many(value) else value})

    def __ne__(self, value: Any) -> Query:  # type: ignore[override]
        return ~(self == value)

    def __gt__(self, value: Any) -> Query:
        return self.range(gt=value)

    def __ge__(self, value: Any) -> Query:
        return self.range(gte=value)

    def __lt__(self, value: Any) -> Query:
        return self.range(lt=value)

    def __le__(self, value: Any) -> Query:
        return self.range(lte=value)

    def any(self, values: Iterable[Any]) -> Query:
        """Entries with at least one of the values (``key:any``)."""
        return self._list("any", values)

    def all(self, values: Iterable[Any]) -> Query:
        """Entries with every one of the values (``key:all``; what a plain list means)."""
        return self._list("all", values)

    def none(self, values: Iterable[Any]) -> Query:
        """Entries with none of the values (``key:none``)."""
        return self._list("none", values)

    def between(self, low: Any, high: Any, *, inclusive: bool = True) -> Query:
        """Entries with a value from ``low`` to ``high`` (both included unless ``inclusive=False``)."""
        if inclusive:
            return self.range(gte=low, lte=high)
        return self.range(gt=low, lt=high)

    def range(self, *, gt: Any = None, gte: Any = None, lt: Any = None, lte: Any = None) -> Query:
        """A range with any of the four bounds (``{"key": {"gt": ..., "lte": ...}}``)."""
        given = (("gt", gt), ("gte", gte), ("lt", lt), ("lte", lte))
        bounds = {name: v for name, v in given if v is not None}
        if not bounds:
            raise QueryError(f"a range on {self.key!r} needs at least one bound", key=self.key)
        for name, v in bounds.items():
            if isinstance(v, Mapping) or _is_many(v):
                raise QueryError(
                    f"the {name} bound of {self.key!r} is one value, not {type(v).__name__}", key=self.key
                )
        return Query({self.key: bounds})

    def _list(self, op: str, values: Iterable[Any]) -> Query:
        if isinstance(values, (str, bytes, Mapping)) or not _is_many(values):
            raise QueryError(f"{self.key}:{op} takes a list of values, not {values!r}", key=self.key)
        return Query({f"{self.key}:{op}": _as_values(values)})


#: ``Q("results.material.elements") == ["Ti", "O"]``: the short name of :class:`SearchKey`.
Q = SearchKey


def _is_pint(value: Any) -> bool:
    return hasattr(value, "magnitude") and hasattr(value, "units") and hasattr(value, "to")


def _is_many(value: Any) -> bool:
    """A list of values: list, tuple, set, numpy array, or a pint quantity of an array."""
    if isinstance(value, (str, bytes, Mapping)):
        return False
    if _is_pint(value):
        return getattr(value.magnitude, "ndim", 0) > 0
    if isinstance(value, (list, tuple, set, frozenset)):
        return True
    return getattr(value, "ndim", 0) > 0 and hasattr(value, "tolist")


def _as_values(values: Any) -> list[Any]:
    if _is_pint(values) and getattr(values.magnitude, "ndim", 0) > 0:
        return [values[i] for i in range(len(values.magnitude))]
    if isinstance(values, (set, frozenset)):
        return sorted(values, key=repr)
    if hasattr(values, "tolist") and not isinstance(values, (list, tuple)):
        listed = values.tolist()
        return listed if isinstance(listed, list) else [listed]
    return list(values)


def _collect_keys(data: Any, prefix: str | None, found: list[str], depth: int) -> None:
    if depth > MAX_DEPTH or not isinstance(data, Mapping):
        return
    if set(data) == {"prefix", "query"} and isinstance(data.get("prefix"), str):
        _collect_keys(data["query"], _join(prefix, data["prefix"]), found, depth + 1)
        return
    for key, value in data.items():
        if key in ("and", "or") and isinstance(value, list):
            for item in value:
                _collect_keys(item, prefix, found, depth + 1)
            continue
        if key == "not":
            _collect_keys(value, prefix, found, depth + 1)
            continue
        name, op = _split(key)
        full = _join(prefix, name)
        if op is None and isinstance(value, Mapping) and not (set(value) <= set(_OPERATORS)):
            _collect_keys(value, full, found, depth + 1)
        elif full not in found:
            found.append(full)


# ----------------------------------------------------------------------------- plain JSON
def _plain(value: Any, loc: Location) -> Any:
    """JSON values of an unvalidated query: datetimes as ISO strings, numpy as Python."""
    if isinstance(value, Mapping):
        return {k: _plain(v, loc + (k,)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, loc + (i,)) for i, v in enumerate(value)]
    if _is_pint(value):
        raise QueryError(
            f"the value {value} has a unit, and only the metainfo knows the unit NOMAD stores: "
            "validate the query against the deployment's search quantities first",
            location=loc,
        )
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if value is None or isinstance(value, (str, bool, int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise QueryError(f"{value} is not a JSON number", location=loc)
        return value
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return _plain(value.item(), loc)
    raise QueryError(f"{type(value).__name__} is not a query value", location=loc)


# ----------------------------------------------------------------------------- validation
def validate_query(
    query: Query | Mapping[str, Any] | None, quantities: Mapping[str, SearchQuantity]
) -> dict[str, Any]:
    """Check a query (JSON or :class:`Query`) against the search quantities; return its JSON.

    Accepts every query form NOMAD's ``entries/query`` accepts (spec §5.4) and refuses, with
    the nearest valid keys, what NOMAD would refuse (unknown keys and operators, duplicate
    keys, malformed ``and``/``or``/``not``) or silently misread (see the module docstring).

    Args:
        query: the query; ``None`` is the empty query.
        quantities: :func:`~archivemap.metainfo.search.search_quantities` of the deployment.

    Returns:
        The query as NOMAD's JSON: the same structure, with pint quantities converted to
        plain numbers in the stored unit, dates as ISO strings, numpy values as Python ones.

    Raises:
        QueryError: the first problem found, with ``key``, ``location`` and ``suggestions``.
    """
    if query is None:
        return {}
    data = query._data if isinstance(query, Query) else query
    if not isinstance(data, Mapping):
        raise QueryError(f"a query is a JSON object (a dict), not {type(data).__name__}")
    return _Checker(quantities).query(data, None, (), 0)


def query_json(
    query: Query | Mapping[str, Any] | None, quantities: Mapping[str, SearchQuantity] | None = None
) -> dict[str, Any]:
    """The JSON to send as ``query``: validated when the search quantities are known.

    The one call for a client: ``body["query"] = query_json(query, quantities)``.

    Args:
        query: a :class:`Query`, NOMAD's JSON, or ``None`` (every entry).
        quantities: the deployment's search quantities; without them the query is sent as
            given (only made plain: dates as ISO strings, numpy values as Python ones).

    Raises:
        QueryError: the query does not validate, or (without ``quantities``) holds a value
            with a unit, which cannot be converted without the metainfo.
    """
    if quantities is not None:
        return validate_query(query, quantities)
    if query is None:
        return {}
    return Query.from_json(query).to_json()


def validate_order_by(key: str, quantities: Mapping[str, SearchQuantity]) -> str:
    """Check a ``pagination.order_by`` key the way NOMAD does, before the request.

    Returns:
        The key.

    Raises:
        QueryError: not a search key (NOMAD: 422 ``... is not a doc quantity``), or a key of
            an array quantity (NOMAD: 422 ``the order_by quantity must be a scalar``).
    """
    if key in ("_score", "_doc"):
        return key
    checker = _Checker(quantities)
    found = checker.lookup(key, ("pagination", "order_by"))
    if found.is_section or found.shape:
        raise QueryError(
            f"order_by needs a scalar quantity; {key!r} is not one (NOMAD: 422)",
            key=key, location=("pagination", "order_by"),
        )
    return key


def explain_query(
    query: Query | Mapping[str, Any] | None, quantities: Mapping[str, SearchQuantity]
) -> list[str]:
    """One line per criterion of a validated query: what it filters on and in which unit.

    For the CLI's ``explain`` and for notebooks: shows the converted values (a band gap of
    ``1 eV`` becomes ``1.602176634e-19 joule``) and whether a key holds several values per
    entry (where ``all`` and ``any`` differ).

    Raises:
        QueryError: the query does not validate.
    """
    data = validate_query(query, quantities)
    lines: list[str] = []
    _explain(data, None, quantities, lines, 0)
    return lines or ["(empty query: every entry)"]


def _split(key: str) -> tuple[str, str | None]:
    """``name:op`` → (name, op) when op is an operator, else (key, None), as NOMAD splits."""
    name, sep, op = key.rpartition(":")
    if sep and op in _OPERATORS:
        return name, op
    return key, None


def _join(prefix: str | None, name: str) -> str:
    return name if not prefix else f"{prefix}.{name}"


class _Checker:
    """One validation run: the search quantities and the recursive checks."""

    def __init__(self, quantities: Mapping[str, SearchQuantity]) -> None:
        self.quantities = quantities

    # -- structure ------------------------------------------------------------------------
    def query(self, data: Any, prefix: str | None, loc: Location, depth: int) -> dict[str, Any]:
        """A query object: logic, a nested document, or criteria (duplicates refused)."""
        if depth > MAX_DEPTH:
            raise QueryError(f"query nested deeper than {MAX_DEPTH} levels", location=loc)
        if not isinstance(data, Mapping):
            raise QueryError(f"expected a query object, got {type(data).__name__} {data!r:.60}", location=loc)
        logic = [k for k in data if k in _LOGIC]
        if logic:
            if len(data) > 1:
                others = ", ".join(repr(k) for k in data if k != logic[0])
                raise QueryError(
                    f"{logic[0]!r} cannot share a query object with {others}: NOMAD would ignore them; "
                    f'put them into the {logic[0]!r} (or use {{"and": [...]}})',
                    key=logic[0], location=loc,
                )
            op = logic[0]
            value = data[op]
            if op == "not":
                return {"not": self.query(value, prefix, loc + ("not",), depth + 1)}
            if not isinstance(value, list):
                raise QueryError(
                    f"{op!r} takes a list of queries, not {type(value).__name__}", key=op, location=loc
                )
            return {op: [self.query(item, prefix, loc + (op, i), depth + 1) for i, item in enumerate(value)]}
        if set(data) == {"prefix", "query"} and isinstance(data.get("prefix"), str):
            nested = _join(prefix, data["prefix"])
            found = self.quantities.get(nested)
            if found is None or not found.is_section:
                self.unknown(nested, loc + ("prefix",), what="section")
            inner = self.query(data["query"], nested, loc + ("query",), depth + 1)
            return {"prefix": data["prefix"], "query": inner}
        seen: dict[str, str] = {}
        out: dict[str, Any] = {}
        for key, value in data.items():
            if not isinstance(key, str):
                raise QueryError(f"query keys are strings, not {key!r}", location=loc)
            name, _ = _split(key)
            if name in seen:
                raise QueryError(
                    f"{name!r} appears twice in one query object ({seen[name]!r} and {key!r}); "
                    'NOMAD refuses that (duplicate_quantity): combine them with {"and": [...]}',
                    key=key, location=loc,
                )
            seen[name] = key
            out[key] = self.criteria(key, value, prefix, loc + (key,), depth + 1)
        return out

    def criteria(self, key: str, value: Any, prefix: str | None, loc: Location, depth: int) -> Any:
        """The value of one key of a query object (or of a nested object)."""
        name, op = _split(key)
        full = _join(prefix, name)
        if full == _OPTIMADE and op is None:
            if not isinstance(value, str) or not value.strip():
                raise QueryError("optimade_filter is an OPTIMADE filter string", key=key, location=loc)
            return value
        if op is None and isinstance(value, Mapping):
            keys = set(value)
            if not keys:
                raise QueryError(f"{full!r}: an empty object filters nothing; leave it out", key=key, location=loc)
            if keys <= set(RANGE_OPERATORS):
                return self.range(full, dict(value), loc)
            if len(keys) == 1 and keys <= set(LIST_OPERATORS):
                (list_op,) = keys
                return {list_op: self.values(full, list_op, value[list_op], loc + (list_op,))}
            found = self.quantities.get(full)
            if found is not None and not found.is_section:
                bad = sorted(str(k) for k in keys - set(_OPERATORS)) or sorted(str(k) for k in keys)
                raise QueryError(
                    f"{full!r} is a quantity: an object under it holds operators "
                    f"({', '.join(_OPERATORS)}), not {', '.join(repr(b) for b in bad)}"
                    + ("; any/all/none stand alone, one per object" if keys & set(LIST_OPERATORS) else ""),
                    key=key, location=loc,
                )
            # an object of further keys: {"results": {"material": {"elements": [...]}}}
            if depth > MAX_DEPTH:
                raise QueryError(f"query nested deeper than {MAX_DEPTH} levels", location=loc)
            return {k: self.criteria(str(k), v, full, loc + (k,), depth + 1) for k, v in value.items()}
        if op in LIST_OPERATORS:
            return self.values(full, op, value, loc)
        if op in RANGE_OPERATORS:
            quantity = self.quantity(full, key, loc)
            self.require_range(quantity, key, loc)
            return self.value(quantity, value, loc, in_range=True)
        if _is_many(value):
            return self.values(full, None, value, loc)
        quantity = self.quantity(full, key, loc)
        return self.value(quantity, value, loc)

    # -- keys -----------------------------------------------------------------------------
    def lookup(self, key: str, loc: Location) -> SearchQuantity:
        quantities = self.quantities
        found = quantities.lookup(key) if isinstance(quantities, SearchQuantities) else quantities.get(key)
        if found is None:
            self.unknown(key, loc)
        return found

    def quantity(self, full: str, key: str, loc: Location) -> SearchQuantity:
        """The search quantity a criterion filters on; not a section."""
        if ":" in full.partition("#")[0]:
            base, _, op = full.rpartition(":")
            if self.quantities.get(base) is not None:
                raise QueryError(
                    f"unknown operator {op!r} in {key!r}; operators: {', '.join(_OPERATORS)}",
                    key=key, location=loc,
                )
        found = self.lookup(full, loc)
        if found.is_section:
            children = self.quantities.children(full) if isinstance(self.quantities, SearchQuantities) else []
            example = f", e.g. {', '.join(children[:3])}" if children else ""
            raise QueryError(
                f"{full!r} is a section of the search document, not a quantity: "
                f"filter on one of its keys{example}",
                key=key, location=loc, suggestions=tuple(children[:3]),
            )
        return found

    def unknown(self, key: str, loc: Location, what: str = "search key") -> NoReturn:
        quantities = self.quantities
        unplaced = quantities.unplaced(key) if isinstance(quantities, SearchQuantities) else None
        if unplaced is not None:
            # the metainfo annotates it, yet NOMAD has no such key: say so, or it looks like a bug here
            instead = f"; use {' or '.join(repr(k) for k in unplaced.instead)}" if unplaced.instead else ""
            raise QueryError(
                f"unknown {what} {key!r}: the metainfo annotates it for search, but {unplaced.reason}, "
                f"so NOMAD answers 422 '{key} is not a doc quantity'{instead}",
                key=key, location=loc, suggestions=unplaced.instead,
            )
        reason = quantities.explain_dynamic(key) if isinstance(quantities, SearchQuantities) else None
        if reason:
            raise QueryError(f"unknown {what} {key!r}: {reason}", key=key, location=loc)
        if isinstance(quantities, SearchQuantities):
            near = quantities.nearest(key)
        else:
            near = _nearest(key, list(quantities))
        hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
        raise QueryError(
            f"unknown {what} {key!r}{hint}" + ("" if near else f" ({len(quantities)} keys are known)"),
            key=key, location=loc, suggestions=tuple(near),
        )

    # -- values ---------------------------------------------------------------------------
    def values(self, full: str, op: str | None, value: Any, loc: Location) -> list[Any]:
        """The list of an ``any``/``all``/``none`` (or of a plain list, which means ``all``)."""
        label = f"{full}:{op}" if op else full
        if not _is_many(value):
            raise QueryError(f"{label} takes a list of values, not {value!r:.60}", key=label, location=loc)
        items = _as_values(value)
        quantity = self.quantity(full, label, loc)
        if not items:
            raise QueryError(
                f"{label} with an empty list matches every entry; leave the criterion out instead",
                key=label, location=loc,
            )
        out = [self.value(quantity, item, loc + (i,)) for i, item in enumerate(items)]
        distinct = {repr(v) for v in out}
        single = not quantity.is_list and quantity.kind not in ("json", "reference")
        if op in (None, "all") and len(distinct) > 1 and single:
            plain = "a list" if op is None else "all"
            raise QueryError(
                f"{full!r} holds one value per entry, so {plain} of {len(distinct)} different values "
                f"never matches; use Q({full!r}).any([...]) (JSON: {full + ':any'!r})",
                key=label, location=loc,
            )
        return out

    def require_range(self, quantity: SearchQuantity, key: str, loc: Location) -> None:
        if not quantity.supports_range:
            raise QueryError(
                f"ranges (gt, gte, lt, lte) need a number or a date; {quantity.key!r} is {quantity.kind}"
                + (" (filter on a value, or any/none of several)" if quantity.kind != "section" else ""),
                key=key, location=loc,
            )

    def range(self, full: str, bounds: dict[Any, Any], loc: Location) -> dict[str, Any]:
        """A range object (``{"gt": 1, "lte": 3}``) on a number or date key."""
        quantity = self.quantity(full, full, loc)
        self.require_range(quantity, full, loc)
        for low, high in (("gt", "gte"), ("lt", "lte")):
            if low in bounds and high in bounds:
                raise QueryError(
                    f"a range on {full!r} has both {low!r} and {high!r}; "
                    "NOMAD refuses that (conflicting_bounds)",
                    key=full, location=loc,
                )
        out = {op: self.value(quantity, bounds[op], loc + (op,), in_range=True)
               for op in RANGE_OPERATORS if op in bounds}
        lower = out.get("gt", out.get("gte"))
        upper = out.get("lt", out.get("lte"))
        if lower is not None and upper is not None and _inverted(lower, upper):
            raise QueryError(f"the range on {full!r} is empty: {lower!r} > {upper!r}", key=full, location=loc)
        return out

    def value(self, quantity: SearchQuantity, value: Any, loc: Location, *, in_range: bool = False) -> Any:
        """One value, converted to what NOMAD compares: stored unit, ISO date, plain types."""
        key = quantity.key
        if value is None:
            raise QueryError(f"{key!r}: None is not a value NOMAD can search for", key=key, location=loc)
        if isinstance(value, Mapping) or _is_many(value):
            raise QueryError(
                f"{key!r}: expected one value, not {type(value).__name__}", key=key, location=loc
            )
        if _is_pint(value):
            value = self.convert(quantity, value, loc)
        elif hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            value = value.item()
        kind = quantity.kind
        if kind in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise QueryError(
                    f"{key!r} is a number ({quantity.dtype}), not {value!r:.60}", key=key, location=loc
                )
            if not math.isfinite(value):
                raise QueryError(f"{key!r}: {value} is not a JSON number", key=key, location=loc)
            if kind == "int" and not in_range and isinstance(value, float):
                if not value.is_integer():
                    raise QueryError(f"{key!r} holds integers; {value} never matches", key=key, location=loc)
                value = int(value)
            return value
        if kind == "datetime":
            return _date_value(key, value, loc)
        if kind == "bool":
            if not isinstance(value, bool):
                raise QueryError(f"{key!r} is true or false, not {value!r:.60}", key=key, location=loc)
            return value
        if kind in ("str", "enum"):
            if not isinstance(value, str):
                raise QueryError(
                    f"{key!r} holds strings, not {type(value).__name__} {value!r:.60}", key=key, location=loc
                )
            if kind == "enum" and quantity.enum_values and value not in quantity.enum_values:
                near = _nearest(value, list(quantity.enum_values))
                hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
                raise QueryError(
                    f"{value!r} is not a value of {key!r}{hint} (allowed: {_shorten(quantity.enum_values)})",
                    key=key, location=loc, suggestions=tuple(near),
                )
            return value
        # reference, json: anything NOMAD's query model takes
        if isinstance(value, (datetime.datetime, datetime.date)):
            return value.isoformat()
        if not isinstance(value, (str, int, float)):
            raise QueryError(f"{key!r}: {type(value).__name__} is not a query value", key=key, location=loc)
        return value

    def convert(self, quantity: SearchQuantity, value: Any, loc: Location) -> Any:
        """A pint quantity as a plain number in the unit the index stores."""
        key = quantity.key
        if quantity.kind not in ("int", "float"):
            raise QueryError(
                f"{key!r} is {quantity.kind}: it takes no value with a unit ({value})", key=key, location=loc
            )
        target = quantity.unit or "dimensionless"
        try:
            magnitude = value.to(unit_of(target)).magnitude
        except (TypeError, ValueError, AttributeError, KeyError, ArithmeticError) as exc:
            stored = f"stored in {quantity.unit}" if quantity.unit else "a plain number (no unit)"
            raise QueryError(
                f"{key!r} is {stored}; {value} cannot be converted ({type(exc).__name__}: {exc})",
                key=key, location=loc,
            ) from None
        if hasattr(magnitude, "item") and getattr(magnitude, "ndim", 1) == 0:
            magnitude = magnitude.item()
        return magnitude


def _inverted(lower: Any, upper: Any) -> bool:
    """Whether a range's lower bound lies above its upper one (numbers, or ISO dates alike)."""
    numbers = (int, float)
    if isinstance(lower, numbers) and isinstance(upper, numbers):
        return not isinstance(lower, bool) and not isinstance(upper, bool) and lower > upper
    if not isinstance(lower, str) or not isinstance(upper, str):
        return False
    low, high = _as_datetime(lower), _as_datetime(upper)
    if low is None or high is None or (low.tzinfo is None) != (high.tzinfo is None):
        return False  # naive against aware: the server decides what the naive one means
    return low > high


def _as_datetime(text: str) -> datetime.datetime | None:
    parsed = _parse_date(text)
    if parsed is None or isinstance(parsed, datetime.datetime):
        return parsed
    return datetime.datetime(parsed.year, parsed.month, parsed.day)


def _parse_date(text: str) -> datetime.datetime | datetime.date | None:
    """An ISO 8601 date or datetime (``Z`` allowed), or ``None``."""
    candidate = text.strip()
    if candidate.endswith(("Z", "z")):
        candidate = candidate[:-1] + "+00:00"
    try:
        return datetime.datetime.fromisoformat(candidate)
    except ValueError:
        pass
    try:
        return datetime.date.fromisoformat(candidate)
    except ValueError:
        return None


def _date_value(key: str, value: Any, loc: Location) -> Any:
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, str):
        if _parse_date(value) is None:
            raise QueryError(
                f"{key!r} is a date: {value!r:.60} is not ISO 8601 "
                "(e.g. 2020-01-01 or 2020-01-01T12:00:00+00:00)",
                key=key, location=loc,
            )
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value  # epoch milliseconds, which the search index also takes
    raise QueryError(f"{key!r} is a date, not {type(value).__name__}", key=key, location=loc)


def _nearest(word: str, options: list[str], n: int = 3) -> list[str]:
    """The closest options (``difflib``), with a case-insensitive second try."""
    close = difflib.get_close_matches(word, options, n=n, cutoff=0.6)
    if not close:
        lowered = {o.lower(): o for o in options}
        close = [lowered[c] for c in difflib.get_close_matches(word.lower(), list(lowered), n=n, cutoff=0.6)]
    return close


def _shorten(values: tuple[str, ...], limit: int = 12) -> str:
    shown = ", ".join(values[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")


def _explain(
    data: Any, prefix: str | None, quantities: Mapping[str, SearchQuantity], lines: list[str], indent: int
) -> None:
    pad = "  " * indent
    if not isinstance(data, Mapping):
        return
    if set(data) == {"prefix", "query"} and isinstance(data.get("prefix"), str):
        lines.append(f"{pad}within each {data['prefix']}:")
        _explain(data["query"], _join(prefix, data["prefix"]), quantities, lines, indent + 1)
        return
    for key, value in data.items():
        if key in ("and", "or"):
            lines.append(f"{pad}{key.upper()}:")
            for item in value:
                _explain(item, prefix, quantities, lines, indent + 1)
            continue
        if key == "not":
            lines.append(f"{pad}NOT:")
            _explain(value, prefix, quantities, lines, indent + 1)
            continue
        name, op = _split(key)
        full = _join(prefix, name)
        if full == _OPTIMADE:
            lines.append(f"{pad}optimade_filter {value!r}")
            continue
        if op is None and isinstance(value, Mapping) and not set(value) <= set(_OPERATORS):
            _explain(value, full, quantities, lines, indent)
            continue
        found = quantities.lookup(full) if isinstance(quantities, SearchQuantities) else quantities.get(full)
        lines.append(f"{pad}{full} {_describe(op, value)}{_about(found)}")


_SYMBOLS: Final = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _describe(op: str | None, value: Any) -> str:
    if op in _SYMBOLS:
        return f"{_SYMBOLS[op]} {value!r}"
    if op in LIST_OPERATORS:
        return f"{op} of {value!r}"
    if isinstance(value, Mapping):
        return " and ".join(_describe(k, v) for k, v in value.items())
    if isinstance(value, list):
        return f"all of {value!r}"
    return f"== {value!r}"


def _about(found: SearchQuantity | None) -> str:
    if found is None:
        return ""
    parts = [found.kind if not found.dtype or found.kind == found.dtype else f"{found.kind} {found.dtype}"]
    if found.unit:
        parts.append(f"in {found.unit}")
    if found.is_list:
        parts.append("several values per entry")
    return f"   [{', '.join(parts)}]"
