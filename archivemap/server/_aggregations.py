"""NOMAD's ``aggregations`` of ``entries/query`` over the matching entries (spec §5.4).

Served: ``terms``, ``histogram``, ``date_histogram``, ``min_max`` and ``statistics``, answered
in NOMAD 2.0.0's response models (``nomad/app/v1/models/models.py``: the request echoed as
``model_dump`` with ``None`` dropped, plus ``data``); ``auto_date_histogram`` and
``percentiles`` get a 422 that says they are not served. What NOMAD does, and so this module
(``nomad/search.py`` of nomad-lab 2.0.0 over Elasticsearch 7):

* The request model first, with the other body errors in one 422: a histogram needs
  ``interval`` or ``buckets`` (a ``value_error`` on the histogram object), ``interval`` and
  ``buckets`` are > 0, ``extended_bounds.min`` <= ``max``; a date histogram takes one of
  ``interval``, ``calendar_interval``, ``fixed_interval`` (default ``calendar_interval: 1M``;
  ``interval`` becomes the calendar or the fixed one). An aggregation naming no kind is
  NOMAD's ``NotImplementedError``: a 500.
* Then the search: an unknown quantity is ``<q> is not a doc quantity`` at
  ``["aggregation", "quantity"]``; a histogram or ``min_max`` over a field that is no number
  or date is refused with NOMAD's message (``SearchQuantity(<q>)``, "mix-max" as NOMAD spells
  it; a histogram by ``buckets`` fails in its min/max step, so with the min/max message).
* Field types are Elasticsearch mapping types; the server has no mapping and infers them from
  the values all served entries hold: all ints (``integer``), all numbers (``double``), all
  ISO dates (``date``, as epoch milliseconds like Elasticsearch). A field no entry sets could
  be anything: it is accepted and aggregates to nothing.
* ``histogram``: an entry counts once per bucket its values fall in; the bucket key is
  ``floor((v - offset) / interval) * interval + offset`` as a double; empty buckets between
  the first and last one are answered with count 0, and out to ``extended_bounds``
  (``min_doc_count`` 0). ``count`` equals ``nested_count``: the served search documents have
  no nested parts.
* ``histogram`` by ``buckets`` (NOMAD's ``_buckets_to_interval``): min and max first
  (widened by ``extended_bounds``); integer and date fields take ``ceil(range / buckets)``,
  floats ``(1 + 1e-12) * range / buckets``; no range (one value, or none) means interval 1,
  no ``interval`` in the answer, and the single bucket's value is the minimum. The answer
  echoes ``buckets``, the interval used and ``offset: 0``.
* ``date_histogram``: calendar intervals round down to the second ... year (weeks start on
  Monday), fixed ones (``90m``, ``2h``, ``1d``) to multiples since the epoch; bucket values
  are ``yyyy-MM-dd`` (NOMAD's format), empty buckets in between are answered.
* ``min_max``: ``[min, max]`` as doubles, ``[null, null]`` when no matching entry has a value.
* ``statistics`` and bucket ``metrics``: NOMAD's metrics are ``n_entries``, ``n_uploads``,
  ``n_materials``, ``n_authors`` (distinct values) and ``n_quantities``, ``n_calculations``
  (sums); any other name is ``metric must be the qualified name of a suitable search
  quantity`` at ``["statistic", "metrics"]``.
* More than ``search.max_buckets`` (65,536) buckets, empty ones included, is Elasticsearch's
  refusal, so NOMAD's 400 (``Elasticsearch could not process your query``), never a hang.
* ``exclude_from_search``: the aggregation ignores the query's top-level criteria on its own
  quantity (NOMAD's ``post_filter``); the entries answered still match the whole query.
"""

from __future__ import annotations

import calendar
import datetime
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from archivemap.server._problems import ApiProblem, validation_item
from archivemap.server._query import SearchFields
from archivemap.server._store import Entry

__all__ = ["MAX_BUCKETS", "METRICS", "aggregate", "check_aggregations"]

#: The kinds of NOMAD 2.0.0's ``Aggregation`` model, in the order ``_specific_agg`` tries them.
KINDS: Final = ("terms", "histogram", "date_histogram", "auto_date_histogram", "min_max", "percentiles", "statistics")
_SERVED: Final = frozenset({"terms", "histogram", "date_histogram", "min_max", "statistics"})
#: NOMAD 2.0.0's metrics (``Elasticsearch(metrics=...)`` annotations): name -> (function, field).
METRICS: Final = {
    "n_entries": ("cardinality", "entry_id"),
    "n_uploads": ("cardinality", "upload_id"),
    "n_materials": ("cardinality", "results.material.material_id"),
    "n_authors": ("cardinality", "authors.user_id"),
    "n_quantities": ("sum", "n_quantities"),
    "n_calculations": ("sum", "results.properties.n_calculations"),
}
#: ``DateHistogramAggregation``'s calendar interval names (NOMAD's ``_CALENDAR_INTERVALS``).
_CALENDAR: Final = {
    "second": "s", "1s": "s", "minute": "m", "1m": "m", "hour": "h", "1h": "h", "day": "d", "1d": "d",
    "week": "w", "1w": "w", "month": "M", "1M": "M", "quarter": "q", "1q": "q", "year": "y", "1y": "y",
}
#: Elasticsearch's ``search.max_buckets`` (7.x default): more buckets are refused (NOMAD: 400).
MAX_BUCKETS: Final = 65_536
_FIXED: Final = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_FIXED_MS: Final = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_EPOCH: Final = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_MS: Final = datetime.timedelta(milliseconds=1)

Select = Callable[[Any], Sequence[Entry]]


class _Problems:
    """Validation items of the request model, collected the way pydantic reports them."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, loc: list[Any], msg: str, type_: str, input_: Any, ctx: dict[str, Any] | None = None) -> None:
        self.items.append(validation_item(loc, msg, type_, input_, ctx))

    def number(self, spec: Mapping[str, Any], name: str, loc: list[Any], positive: bool, integer: bool = False) -> None:
        """pydantic's lax ``int``/``float`` field: numbers, numeric text and booleans pass."""
        value = spec.get(name)
        if value is None:
            return
        here = [*loc, name]
        parsed = _number(value, integer)
        if parsed is None:
            if isinstance(value, str) and integer:
                self.add(here, "Input should be a valid integer, unable to parse string as an integer", "int_parsing", value)
            elif isinstance(value, str):
                self.add(here, "Input should be a valid number, unable to parse string as a number", "float_parsing", value)
            elif integer and isinstance(value, float):
                self.add(here, "Input should be a valid integer, got a number with a fractional part", "int_from_float", value)
            else:
                self.add(here, f"Input should be a valid {'integer' if integer else 'number'}",
                         "int_type" if integer else "float_type", value)
            return
        if positive and parsed <= 0:
            self.add(here, "Input should be greater than 0", "greater_than", value, {"gt": 0})

    def string(self, spec: Mapping[str, Any], name: str, loc: list[Any], required: bool) -> None:
        value = spec.get(name)
        if value is None:
            if required:
                self.add([*loc, name], "Field required", "missing", dict(spec))
            return
        if not isinstance(value, str):
            self.add([*loc, name], "Input should be a valid string", "string_type", value)

    def strings(self, spec: Mapping[str, Any], name: str, loc: list[Any]) -> None:
        value = spec.get(name)
        if value is None:
            return
        if not isinstance(value, list):
            self.add([*loc, name], "Input should be a valid list", "list_type", value)
            return
        for index, item in enumerate(value):
            if not isinstance(item, str):
                self.add([*loc, name, index], "Input should be a valid string", "string_type", item)


def _number(value: Any, integer: bool = False) -> float | int | None:
    """A lax pydantic ``int``/``float`` value, or None when pydantic would refuse it."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip()) if integer else float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not integer:
            return value
        return int(value) if value.is_integer() else None
    return None


def _value_error(problems: _Problems, loc: list[Any], message: str, spec: Any) -> None:
    # pydantic's answer to a ValueError in a model validator; FastAPI encodes the exception as {}
    problems.add(loc, f"Value error, {message}", "value_error", spec, {"error": {}})


def check_aggregations(aggregations: Any) -> list[dict[str, Any]]:
    """The request-model errors of ``aggregations`` (pydantic's, NOMAD 2.0.0's models); empty if fine."""
    if aggregations is None:
        return []
    loc: list[Any] = ["body", "aggregations"]
    problems = _Problems()
    if not isinstance(aggregations, Mapping):
        problems.add(loc, "Input should be a valid dictionary", "dict_type", aggregations)
        return problems.items
    for name, aggregation in aggregations.items():
        here = [*loc, name]
        if not isinstance(aggregation, Mapping):
            problems.add(here, "Input should be a valid dictionary or instance of Aggregation", "model_type", aggregation)
            continue
        for kind in KINDS:
            spec = aggregation.get(kind)
            if spec is None:
                continue
            model = "".join(part.capitalize() for part in kind.split("_")) + "Aggregation"
            if not isinstance(spec, Mapping):
                problems.add([*here, kind], f"Input should be a valid dictionary or instance of {model}", "model_type", spec)
                continue
            _check_kind(problems, kind, spec, [*here, kind])
    return problems.items


def _check_kind(problems: _Problems, kind: str, spec: Mapping[str, Any], loc: list[Any]) -> None:
    if kind == "histogram" and spec.get("interval") is None and spec.get("buckets") is None:
        # a "before" model validator: when it fails, pydantic reports nothing else of the model
        _value_error(problems, loc, "Provide either interval or the number of buckets.", dict(spec))
        return
    if kind != "statistics":
        problems.string(spec, "quantity", loc, required=True)
    if kind in ("terms", "histogram", "date_histogram", "auto_date_histogram", "statistics"):
        problems.strings(spec, "metrics", loc)
    if kind == "terms":
        problems.number(spec, "size", loc, positive=True, integer=True)
    elif kind == "histogram":
        problems.number(spec, "interval", loc, positive=True)
        problems.number(spec, "buckets", loc, positive=True, integer=True)
        problems.number(spec, "offset", loc, positive=False)
        _check_bounds(problems, spec.get("extended_bounds"), [*loc, "extended_bounds"])
    elif kind == "date_histogram":
        for name in ("interval", "calendar_interval", "fixed_interval"):
            problems.string(spec, name, loc, required=False)
        given = [name for name in ("interval", "calendar_interval", "fixed_interval") if spec.get(name) is not None]
        if len(given) > 1:
            message = f"Only one of {', '.join(given)} can be given for date histogram aggregation."
            _value_error(problems, loc, message, dict(spec))


def _check_bounds(problems: _Problems, bounds: Any, loc: list[Any]) -> None:
    if bounds is None:
        return
    if not isinstance(bounds, Mapping):
        problems.add(loc, "Input should be a valid dictionary or instance of Bounds", "model_type", bounds)
        return
    low, high = (None if bounds.get(k) is None else _number(bounds.get(k)) for k in ("min", "max"))
    if low is not None and high is not None and low > high:
        _value_error(problems, loc, "The maximum value should be greater than the minimum value.", dict(bounds))
        return
    problems.number(bounds, "min", loc, positive=False)
    problems.number(bounds, "max", loc, positive=False)


# -- the search part -----------------------------------------------------------------------------


class _NoKind(NotImplementedError):
    """NOMAD's ``_specific_agg`` on an aggregation that names no kind (a 500 there too)."""

    nomad_explanation = (
        "An aggregation with none of terms, histogram, date_histogram, auto_date_histogram, "
        "min_max, percentiles, statistics: nomad.search._specific_agg raises NotImplementedError."
    )


def aggregate(
    aggregations: Mapping[str, Any] | None,
    query: Any,
    matching: Sequence[Entry],
    every: Sequence[Entry],
    fields: SearchFields,
    select: Select,
) -> dict[str, Any] | None:
    """NOMAD's answers to validated ``aggregations`` (see :func:`check_aggregations`).

    Args:
        aggregations: the request's ``aggregations`` (already model-checked), or None.
        query: the request's query (for ``exclude_from_search``).
        matching: the entries the whole query selects.
        every: all served entries (field types are inferred from their values).
        fields: the search document's quantities.
        select: the entries a (reduced) query selects.

    Returns:
        ``{name: {kind: answer}}``, or None without aggregations.

    Raises:
        ApiProblem: NOMAD's 422s (unknown quantity or metric, a field that is no number or
            date), 422 for kinds this server does not serve, 400 for a date interval
            Elasticsearch would refuse.
    """
    if not aggregations:
        return None
    chosen: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for name, aggregation in aggregations.items():
        kinds = [kind for kind in KINDS if aggregation.get(kind) is not None]
        if not kinds:
            raise _NoKind()
        chosen[name] = (kinds[0], aggregation[kinds[0]])
    answers: dict[str, Any] = {}
    types = _FieldTypes(every)
    for name, (kind, spec) in chosen.items():
        if kind not in _SERVED:
            raise ApiProblem(
                422, [{"loc": ["body", "aggregations", name], "msg": f"{kind} aggregations are not served by the archivemap local server"}]
            )
        spec = _coerced(kind, spec)
        entries = matching
        if kind != "statistics":
            quantity = str(spec["quantity"])
            fields.check(quantity, ["aggregation", "quantity"])
            _check_type(name, kind, spec, types(quantity))
            if spec.get("exclude_from_search") and isinstance(query, Mapping):
                entries = select(_without(query, quantity))
        # metrics are checked last, as NOMAD does; min_max has none (the model ignores them)
        metrics = [] if kind == "min_max" else list(spec.get("metrics") or [])
        if any(metric not in METRICS for metric in metrics):
            raise ApiProblem(422, [{"msg": "metric must be the qualified name of a suitable search quantity", "loc": [["statistic", "metrics"]]}])
        if kind == "terms":
            answers[name] = {"terms": _terms(spec, entries, metrics)}
        elif kind == "histogram":
            answers[name] = {"histogram": _histogram(spec, entries, types, metrics)}
        elif kind == "date_histogram":
            answers[name] = {"date_histogram": _date_histogram(spec, entries, metrics)}
        elif kind == "min_max":
            answers[name] = {"min_max": _min_max(spec, entries, types)}
        else:
            answers[name] = {"statistics": {"metrics": metrics, "data": _metrics(metrics, entries)}}
    return answers


def _check_type(name: str, kind: str, spec: Mapping[str, Any], field_type: str | None) -> None:
    """NOMAD's refusals of a field whose mapping type does not fit the aggregation."""
    if field_type is None:  # no served value: nothing to refuse on
        return
    quantity = spec["quantity"]
    numeric = field_type in ("integer", "double", "date")
    refusal: tuple[str, str] | None = None
    if kind == "terms" and numeric:  # Elasticsearch.aggregatable: keyword and boolean only
        raise ApiProblem(
            422,
            [{"msg": "The aggregation quantity cannot be used in a terms aggregation.",
              "loc": [["aggregation", name, "terms", "quantity"]]}],
        )
    if kind == "min_max" or (kind == "histogram" and spec.get("buckets") is not None):
        # by buckets, NOMAD's _buckets_to_interval runs a min_max aggregation first
        refusal = None if numeric else ("mix-max", "min_max")
    elif kind == "histogram":
        refusal = None if numeric else ("histogram", "histogram")
    elif kind == "date_histogram":
        refusal = None if field_type == "date" else ("date histogram", "histogram")
    if refusal is not None:
        what, loc_kind = refusal
        raise ApiProblem(
            422,
            [{"msg": f"The quantity SearchQuantity({quantity}) cannot be used in a {what} aggregation",
              "loc": [["aggregations", name, loc_kind, "quantity"]]}],
        )


_FLOATS: Final = frozenset({"interval", "offset", "min", "max"})
_INTS: Final = frozenset({"size", "buckets"})


def _coerced(kind: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """A model-checked aggregation with its numbers as the model holds them (``"5"`` -> 5.0)."""
    out = dict(spec)
    if kind not in ("terms", "histogram"):  # a date histogram's interval is text
        return out
    for name, value in spec.items():
        if value is not None and (name in _FLOATS or name in _INTS):
            out[name] = _number(value, name in _INTS)
    bounds = spec.get("extended_bounds")
    if isinstance(bounds, Mapping):
        out["extended_bounds"] = {k: v if v is None else _number(v) for k, v in bounds.items() if k in ("min", "max")}
    return out


def _echo(spec: Mapping[str, Any], *names: str) -> dict[str, Any]:
    """The request as NOMAD's response model dumps it: defaults filled in, ``None`` dropped,
    ``float`` fields as floats (pydantic's coercion)."""
    out: dict[str, Any] = {"quantity": spec["quantity"], "exclude_from_search": bool(spec.get("exclude_from_search", False))}
    for name in names:
        value = spec.get(name, [] if name == "metrics" else None)
        if isinstance(value, Mapping):
            out[name] = {k: float(v) if k in _FLOATS else v for k, v in value.items() if v is not None}
        elif value is not None:
            out[name] = float(value) if name in _FLOATS and isinstance(value, (int, float)) else value
    return out


def _values(entry: Entry, quantity: str) -> list[Any]:
    return [v for v in entry.fields.get(quantity, ()) if isinstance(v, (bool, int, float, str))]


def _metrics(names: Iterable[str], entries: Sequence[Entry]) -> dict[str, int]:
    """NOMAD's metric values over some entries: distinct values or sums (ints, as its model)."""
    out: dict[str, int] = {}
    for name in names:
        function, field = METRICS[name]
        values = [v for entry in entries for v in _values(entry, field)]
        if function == "cardinality":
            out[name] = len(set(values))
        else:
            out[name] = int(sum(v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)))
    return out


def _bucket(value: Any, members: Sequence[Entry], metrics: Sequence[str]) -> dict[str, Any]:
    bucket: dict[str, Any] = {"count": len(members), "nested_count": len(members)}
    if metrics:
        bucket["metrics"] = _metrics(metrics, members)
    bucket["value"] = value
    return bucket


def _terms(spec: Mapping[str, Any], entries: Sequence[Entry], metrics: Sequence[str]) -> dict[str, Any]:
    quantity = str(spec["quantity"])
    members: dict[Any, list[Entry]] = {}
    for entry in entries:
        for value in dict.fromkeys(_values(entry, quantity)):
            members.setdefault(value, []).append(entry)
    include = spec.get("include")
    if isinstance(include, list):
        members = {value: found for value, found in members.items() if value in include}
    elif isinstance(include, str):
        members = {value: found for value, found in members.items() if include in str(value)}
    size = spec.get("size") or 10
    ranked = sorted(members.items(), key=lambda item: (-len(item[1]), str(item[0])))[:size]
    echo = {**_echo(spec, "metrics", "pagination", "include", "entries"), "size": size}
    return {**echo, "data": [_bucket(value, found, metrics) for value, found in ranked]}


# -- numbers and dates -----------------------------------------------------------------------------


def _epoch_ms(value: Any) -> int | None:
    """An ISO date as Elasticsearch's epoch milliseconds (UTC when no zone is given), else None."""
    if not isinstance(value, str) or len(value) < 10 or not value[:4].isdigit():
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return (moment - _EPOCH) // _MS


class _FieldTypes:
    """Elasticsearch mapping types inferred from the values of every served entry."""

    def __init__(self, entries: Sequence[Entry]) -> None:
        self._entries = entries
        self._types: dict[str, str | None] = {}

    def __call__(self, quantity: str) -> str | None:
        """``integer``, ``double``, ``date``, ``keyword``, or None when no entry has a value."""
        if quantity not in self._types:
            values = [v for entry in self._entries for v in _values(entry, quantity)]
            kind: str | None = None
            if values:
                if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                    kind = "integer"
                elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                    kind = "double"
                elif all(_epoch_ms(v) is not None for v in values):
                    kind = "date"
                else:
                    kind = "keyword"
            self._types[quantity] = kind
        return self._types[quantity]


def _numbers(entry: Entry, quantity: str, kind: str | None) -> list[float]:
    """An entry's values as Elasticsearch aggregates them: numbers, dates in epoch ms."""
    if kind == "date":
        return [float(ms) for ms in (_epoch_ms(v) for v in _values(entry, quantity)) if ms is not None]
    return [float(v) for v in _values(entry, quantity) if isinstance(v, (int, float)) and not isinstance(v, bool)]


def _min_max(spec: Mapping[str, Any], entries: Sequence[Entry], types: _FieldTypes) -> dict[str, Any]:
    quantity = str(spec["quantity"])
    kind = types(quantity)
    low, high = _range(entries, quantity, kind)
    return {**_echo(spec), "data": [low, high]}


def _range(entries: Sequence[Entry], quantity: str, kind: str | None) -> tuple[float | None, float | None]:
    values = [v for entry in entries for v in _numbers(entry, quantity, kind)]
    return (min(values), max(values)) if values else (None, None)


def _histogram(spec: Mapping[str, Any], entries: Sequence[Entry], types: _FieldTypes, metrics: Sequence[str]) -> dict[str, Any]:
    quantity = str(spec["quantity"])
    kind = types(quantity)
    bounds = spec.get("extended_bounds") or {}
    buckets = spec.get("buckets")
    single: float | None = None
    if buckets is not None:
        # NOMAD's _buckets_to_interval: a min_max aggregation first, then the interval
        low, high = _range(entries, quantity, kind)
        if bounds.get("min") is not None:
            low = bounds["min"] if low is None else min(low, bounds["min"])
        if bounds.get("max") is not None:
            high = bounds["max"] if high is None else max(high, bounds["max"])
        interval: float | None = None
        if low is not None and high is not None:
            if kind in ("integer", "date"):
                interval = math.ceil((high - low) / buckets)
            else:
                interval = 0 if high - low <= 0 else (1 + 1e-12) * (high - low) / buckets
        answered = interval or None
        if not interval:
            interval, single = 1, low
        echo = {**_echo(spec, "metrics"), **({"interval": float(answered)} if answered else {}), "buckets": buckets, "offset": 0.0}
        if spec.get("extended_bounds") is not None:
            echo["extended_bounds"] = _echo(spec, "extended_bounds")["extended_bounds"]
        offset = 0.0
    else:
        interval = float(spec["interval"])
        offset = float(spec.get("offset") or 0)
        echo = _echo(spec, "metrics", "interval", "offset", "extended_bounds")
    step = float(interval)

    def key_of(value: float) -> float:
        return math.floor((value - offset) / step) * step + offset

    members: dict[float, list[Entry]] = {}
    for entry in entries:
        for key in dict.fromkeys(key_of(v) for v in _numbers(entry, quantity, kind)):
            members.setdefault(key, []).append(entry)
    keys = _fill(
        sorted(members),
        lambda key: key_of(key + step + step / 2),  # Elasticsearch's nextKey
        None if bounds.get("min") is None else key_of(float(bounds["min"])),
        None if bounds.get("max") is None else key_of(float(bounds["max"])),
    )
    data = [_bucket(key if single is None else single, members.get(key, []), metrics) for key in keys]
    return {**echo, "data": data}


def _fill(keys: list[Any], following: Callable[[Any], Any], low: Any, high: Any) -> list[Any]:
    """Bucket keys with the empty ones between and out to the bounds (``min_doc_count`` 0).

    Without any key, Elasticsearch answers empty buckets only when both bounds are given.
    """
    if not keys and (low is None or high is None):
        return []
    start = keys[0] if keys else low
    end = keys[-1] if keys else high
    if low is not None and low < start:
        start = low
    if high is not None and high > end:
        end = high
    present = set(keys)
    out: list[Any] = []
    key = start
    while key <= end:
        out.append(key)
        if len(out) > MAX_BUCKETS:
            raise ApiProblem(
                400,
                "Elasticsearch could not process your query: trying to create too many buckets, more "
                f"than search.max_buckets ({MAX_BUCKETS}) (archivemap local server)",
            )
        following_key = following(key)
        if following_key <= key:  # an interval below the values' float precision
            break
        key = following_key
    # a key the stepping missed (float rounding) still counts: keep every filled bucket
    return sorted(set(out) | present)


def _date_histogram(spec: Mapping[str, Any], entries: Sequence[Entry], metrics: Sequence[str]) -> dict[str, Any]:
    quantity = str(spec["quantity"])
    calendar_interval, fixed_interval = spec.get("calendar_interval"), spec.get("fixed_interval")
    interval = spec.get("interval")
    if interval is not None:
        calendar_interval, fixed_interval = (interval, None) if interval in _CALENDAR else (None, interval)
    elif calendar_interval is None and fixed_interval is None:
        calendar_interval = "1M"
    round_down, following = _date_steps(calendar_interval, fixed_interval)
    members: dict[datetime.datetime, list[Entry]] = {}
    for entry in entries:
        moments = [_EPOCH + datetime.timedelta(milliseconds=ms) for ms in _numbers(entry, quantity, "date")]
        for key in dict.fromkeys(round_down(moment) for moment in moments):
            members.setdefault(key, []).append(entry)
    keys = _fill(sorted(members), following, None, None)
    echo = _echo(spec, "metrics")
    if calendar_interval is not None:
        echo["calendar_interval"] = calendar_interval
    else:
        echo["fixed_interval"] = fixed_interval
    data = [_bucket(key.strftime("%Y-%m-%d"), members.get(key, []), metrics) for key in keys]
    return {**echo, "data": data}


def _date_steps(
    calendar_interval: str | None, fixed_interval: str | None
) -> tuple[Callable[[datetime.datetime], datetime.datetime], Callable[[datetime.datetime], datetime.datetime]]:
    """(round a moment down to its bucket, the next bucket's start) for a date interval."""
    if calendar_interval is not None:
        unit = _CALENDAR.get(calendar_interval)
        if unit is None:
            raise _bad_interval(calendar_interval, "calendar")
        return _calendar_round(unit), _calendar_next(unit)
    found = _FIXED.match(str(fixed_interval))
    if found is None or int(found.group(1)) == 0:
        raise _bad_interval(str(fixed_interval), "fixed")
    step = int(found.group(1)) * _FIXED_MS[found.group(2)]

    def round_fixed(moment: datetime.datetime) -> datetime.datetime:
        ms = (moment - _EPOCH) // _MS
        return _EPOCH + datetime.timedelta(milliseconds=ms - ms % step)

    return round_fixed, lambda moment: moment + datetime.timedelta(milliseconds=step)


def _bad_interval(interval: str, kind: str) -> ApiProblem:
    # NOMAD passes the interval to Elasticsearch, whose refusal becomes a 400 (SearchError)
    return ApiProblem(
        400,
        f"Elasticsearch could not process your query: the {kind} interval {interval!r} is not one "
        "Elasticsearch accepts (archivemap local server)",
    )


def _calendar_round(unit: str) -> Callable[[datetime.datetime], datetime.datetime]:
    def round_down(moment: datetime.datetime) -> datetime.datetime:
        if unit == "s":
            return moment.replace(microsecond=0)
        if unit == "m":
            return moment.replace(second=0, microsecond=0)
        if unit == "h":
            return moment.replace(minute=0, second=0, microsecond=0)
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        if unit == "d":
            return day
        if unit == "w":
            return day - datetime.timedelta(days=day.weekday())
        if unit == "M":
            return day.replace(day=1)
        if unit == "q":
            return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
        return day.replace(month=1, day=1)

    return round_down


def _calendar_next(unit: str) -> Callable[[datetime.datetime], datetime.datetime]:
    fixed = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}

    def following(moment: datetime.datetime) -> datetime.datetime:
        if unit in fixed:
            return moment + datetime.timedelta(seconds=fixed[unit])
        months = {"M": 1, "q": 3, "y": 12}[unit]
        month = moment.month - 1 + months
        year = moment.year + month // 12
        month = month % 12 + 1
        return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))

    return following


# -- exclude_from_search -----------------------------------------------------------------------------


def _and_clauses(query: Any) -> Iterable[Any]:
    """The top-level conjunction of a query: ``and`` lists and several keys of one object."""
    if isinstance(query, Mapping):
        if set(query) == {"and"} and isinstance(query["and"], list):
            for clause in query["and"]:
                yield from _and_clauses(clause)
            return
        if len(query) > 1 and not set(query) & {"and", "or", "not", "prefix"}:
            for key, value in query.items():
                yield {key: value}
            return
    yield query


def _without(query: Mapping[str, Any], quantity: str) -> Any:
    """``query`` less its top-level criteria on ``quantity`` (NOMAD's pre-aggregation query)."""
    kept = [
        clause for clause in _and_clauses(query)
        if not (isinstance(clause, Mapping) and len(clause) == 1 and next(iter(clause)).split(":", 1)[0] == quantity)
    ]
    return {"and": kept} if kept else None
