"""Typed queries: search keys from the metainfo's annotations, queries checked before sending.

Two sources of truth. A small export written here (the repository's samples/metainfo.json has
no search annotations) pins each rule of how NOMAD names search keys. NOMAD 2.0.0's own export
and NOMAD's own answers to query requests (``../shared/nomad-data/conformance``) check the
result against the real thing; those tests are skipped when ../shared is absent.
"""

from __future__ import annotations

import datetime
import gzip
import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from archivemap.errors import ArchivemapError, QueryError
from archivemap.metainfo.environment import Environment
from archivemap.metainfo.model import QuantityDef
from archivemap.metainfo.exports import load_environment
from archivemap.metainfo.search import SearchQuantities, search_annotations, search_quantities, unplaced_annotations
from archivemap.remote.query import (
    Q,
    Query,
    SearchKey,
    explain_query,
    query_json,
    validate_order_by,
    validate_query,
)
from archivemap.units import registry

ureg = registry()
EV = 1.602176634e-19  # joule


# ------------------------------------------------------------------------- a small export
def _q(name: str, type_data: Any, kind: str = "python", **more: Any) -> dict[str, Any]:
    return {"name": name, "type": {"type_kind": kind, "type_data": type_data}, **more}


def _es(*keys: str) -> dict[str, Any]:
    return {"m_annotations": {"elasticsearch": list(keys)}}


def _sub(name: str, target: str, *, repeats: bool = False, es: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "sub_section": target, "repeats": repeats}
    if es:
        out.update(_es(es))
    return out


MINI_EXPORT: dict[str, Any] = {"packages": [
    {"name": "nomad.datamodel.data", "section_definitions": [
        {"name": "EntryData"},
        {"name": "User", "quantities": [
            _q("user_id", "str", **_es("viewers.user_id")),
            _q("name", "str", **_es("viewers.name", "viewers.name.text", "viewers.name__suggestion")),
        ]},
    ]},
    {"name": "nomad.datamodel.results", "section_definitions": [
        {"name": "Results", "sub_sections": [
            _sub("material", "nomad.datamodel.results.Material"),          # not annotated:
            _sub("properties", "nomad.datamodel.results.Properties"),      # results includes all
        ]},
        {"name": "Material", "quantities": [
            _q("elements", ["Ag", "O", "Si", "Ti"], "enum", shape=["0..*"],
               **_es("results.material.elements", "results.material.elements__suggestion.suggestion")),
            _q("structural_type", ["bulk", "molecule / cluster", "surface"], "enum",
               **_es("results.material.structural_type")),
            _q("n_elements", "int32", "numpy", **_es("results.material.n_elements")),
            _q("not_indexed", "str"),
        ]},
        {"name": "Properties", "sub_sections": [
            _sub("electronic", "nomad.datamodel.results.ElectronicProperties")]},
        {"name": "ElectronicProperties", "sub_sections": [
            _sub("band_gap", "nomad.datamodel.results.BandGap", repeats=True, es="band_gap")]},
        {"name": "BandGap", "quantities": [
            _q("value", "float64", "numpy", unit="joule",
               **_es("results.properties.electronic.band_gap.value")),
            _q("type", ["direct", "indirect"], "enum", **_es("results.properties.electronic.band_gap.type")),
        ]},
    ]},
    {"name": "nomad.datamodel.datamodel", "section_definitions": [
        {"name": "EntryArchiveReference", "quantities": [
            _q("target_entry_id", "str", **_es("entry_references.target_entry_id"))]},
        {"name": "EntryMetadata",
         "quantities": [
             _q("entry_id", "str", **_es("entry_id")),
             _q("upload_create_time", "nomad.metainfo.data_type.Datetime", "custom", **_es("upload_create_time")),
             _q("n_quantities", "int", **_es("n_quantities")),
             _q("published", "bool", **_es("published")),
             _q("main_author", "User", "User", **_es("main_author")),
             _q("viewers", "Author", "Author", shape=["0..*"], **_es("viewers")),
         ],
         "sub_sections": [
             _sub("entry_references", "nomad.datamodel.datamodel.EntryArchiveReference", repeats=True,
                  es="entry_references")]},
        {"name": "EntryArchive", "sub_sections": [
            _sub("metadata", "nomad.datamodel.datamodel.EntryMetadata", es="metadata"),
            _sub("results", "nomad.datamodel.results.Results", es="results"),
            _sub("data", "nomad.datamodel.data.EntryData"),
            _sub("run", "mycode.Run", repeats=True),  # not annotated: not in the search document
        ]},
    ]},
    {"name": "mycode", "section_definitions": [
        {"name": "Run", "quantities": [_q("program", "str", **_es("run.program"))]},
        {"name": "Sample", "quantities": [_q("name", "str"), _q("mass", "float64", "numpy", unit="kilogram")]},
        {"name": "MyData", "base_sections": ["nomad.datamodel.data.EntryData"],
         "quantities": [_q("temperature", "float64", "numpy", unit="kelvin"), _q("tags", "str", shape=["*"])],
         "sub_sections": [_sub("samples", "mycode.Sample", repeats=True)]},
    ]},
]}
# Author points at the same fields as User here; NOMAD's Author has more, which changes nothing.
MINI_EXPORT["packages"][0]["section_definitions"].append(
    {"name": "Author", "base_sections": ["nomad.datamodel.data.User"]})


@pytest.fixture(scope="module")
def mini() -> SearchQuantities:
    return search_quantities(load_environment(MINI_EXPORT))


# ------------------------------------------------------------------------- deriving keys
def test_keys_follow_nomads_naming(mini: SearchQuantities) -> None:
    quantities = {k for k, q in mini.items() if not q.is_section}
    assert quantities == {
        "entry_id", "upload_create_time", "n_quantities", "published",  # metadata.: dropped
        "main_author", "main_author.user_id", "main_author.name", "main_author.name.text",
        "main_author.name__suggestion",  # a User reference is followed like a sub-section
        "viewers", "viewers.user_id", "viewers.name", "viewers.name.text", "viewers.name__suggestion",
        "entry_references.target_entry_id",
        "results.material.elements", "results.material.elements__suggestion.suggestion",
        "results.material.structural_type", "results.material.n_elements",
        "results.properties.electronic.band_gap.value", "results.properties.electronic.band_gap.type",
    }
    # run.program is annotated, but run is not part of the search document
    assert "run.program" not in mini
    sections = {k for k, q in mini.items() if q.is_section}
    assert {"results", "results.material", "results.properties.electronic.band_gap", "entry_references"} <= sections


def test_key_types_units_and_multiplicity(mini: SearchQuantities) -> None:
    elements = mini["results.material.elements"]
    assert (elements.kind, elements.is_list, elements.enum_values) == ("enum", True, ("Ag", "O", "Si", "Ti"))
    gap = mini["results.properties.electronic.band_gap.value"]
    assert (gap.kind, gap.unit, gap.dtype, gap.shape) == ("float", "joule", "float64", ())
    assert gap.is_list  # in a repeating sub-section: an entry has several band gaps
    assert gap.annotation == "results.properties.electronic.band_gap.value"
    assert isinstance(gap.definition, QuantityDef) and gap.definition.name == "value"
    assert mini["upload_create_time"].kind == "datetime" and mini["upload_create_time"].supports_range
    assert not mini["entry_id"].is_list and not mini["entry_id"].supports_range
    assert mini["n_quantities"].kind == "int" and mini["published"].kind == "bool"
    assert mini["main_author"].kind == "reference" and mini["viewers.name"].is_list
    assert mini["viewers.name.text"].field == "text"
    suggestion = mini["results.material.elements__suggestion.suggestion"]
    assert suggestion.suggestion and suggestion.kind == "str" and suggestion.field == "suggestion"
    band_gap = mini["results.properties.electronic.band_gap"]
    assert band_gap.is_section and band_gap.annotation == "band_gap" and band_gap.is_list


def test_definitions_keep_their_search_annotations() -> None:
    env = load_environment(MINI_EXPORT)
    material = env.section("nomad.datamodel.results.Material")
    assert material.all_quantities["elements"].search_annotations == (
        "results.material.elements", "results.material.elements__suggestion.suggestion")
    assert material.all_quantities["not_indexed"].search_annotations == ()
    texts = search_annotations(env)
    assert texts["band_gap"][0].name == "band_gap" and "metadata" in texts


def test_derived_once_per_environment_and_returned_as_a_copy() -> None:
    env = load_environment(MINI_EXPORT)
    first = search_quantities(env)
    first.pop("entry_id")
    again = search_quantities(env)
    assert "entry_id" in again and again.environment is env
    clone = pickle.loads(pickle.dumps(again))
    assert clone == again and clone.environment is not None


def test_an_environment_without_entry_archive_has_no_keys() -> None:
    env = load_environment({"packages": [{"name": "pkg", "section_definitions": [{"name": "A"}]}]})
    assert search_quantities(env) == {}


def test_cyclic_annotated_sub_sections_end() -> None:
    export = json.loads(json.dumps(MINI_EXPORT))
    material = export["packages"][1]["section_definitions"][1]
    material["sub_sections"] = [_sub("again", "nomad.datamodel.results.Results", es="again")]
    keys = search_quantities(load_environment(export))
    assert "results.material.again.material.elements" not in keys
    assert "results.material.elements" in keys


# ------------------------------------------------------------------------- building queries
def test_builder_emits_nomads_json() -> None:
    elements = Q("results.material.elements")
    assert (elements == ["Ti", "O"]).to_json() == {"results.material.elements": ["Ti", "O"]}
    assert (elements == ("Ti", "O")).to_json() == {"results.material.elements": ["Ti", "O"]}
    assert elements.any(["Ti", "O"]).to_json() == {"results.material.elements:any": ["Ti", "O"]}
    assert elements.all(["Ti"]).to_json() == {"results.material.elements:all": ["Ti"]}
    assert elements.none(["Si"]).to_json() == {"results.material.elements:none": ["Si"]}
    assert (Q("n_quantities") > 3).to_json() == {"n_quantities": {"gt": 3}}
    assert (Q("n_quantities") >= 3).to_json() == {"n_quantities": {"gte": 3}}
    assert (Q("n_quantities") < 3).to_json() == {"n_quantities": {"lt": 3}}
    assert (Q("n_quantities") <= 3).to_json() == {"n_quantities": {"lte": 3}}
    assert Q("n_quantities").between(40, 1000).to_json() == {"n_quantities": {"gte": 40, "lte": 1000}}
    assert Q("n_quantities").between(1, 2, inclusive=False).to_json() == {"n_quantities": {"gt": 1, "lt": 2}}
    assert (Q("parser_name") != "parsers/vasp").to_json() == {"not": {"parser_name": "parsers/vasp"}}
    assert isinstance(Q("a") == 1, Query) and SearchKey is Q


def test_and_or_not_combine_and_flatten() -> None:
    a, b, c = Q("upload_id") == "x", Q("n_quantities") >= 50, Q("parser_name") == "y"
    assert (a & b & c).to_json() == {"and": [{"upload_id": "x"}, {"n_quantities": {"gte": 50}}, {"parser_name": "y"}]}
    assert (a | (b | c)).to_json() == {"or": [{"upload_id": "x"}, {"n_quantities": {"gte": 50}}, {"parser_name": "y"}]}
    assert ((a | b) & ~c).to_json() == {
        "and": [{"or": [{"upload_id": "x"}, {"n_quantities": {"gte": 50}}]}, {"not": {"parser_name": "y"}}]}
    assert ~~a == a
    assert (a & {"entry_id": "e"}).to_json() == {"and": [{"upload_id": "x"}, {"entry_id": "e"}]}
    assert ({"entry_id": "e"} | a).to_json() == {"or": [{"entry_id": "e"}, {"upload_id": "x"}]}
    assert (Query() & a) == a and (a & Query()) == a and (Query() | a).is_empty


def test_a_query_has_no_truth_value() -> None:
    with pytest.raises(TypeError, match="between"):
        bool(Q("n_quantities") > 1)
    with pytest.raises(TypeError):
        1 < Q("n_quantities") < 3  # noqa: B015 - the chained comparison under test


def test_builder_refuses_malformed_criteria() -> None:
    with pytest.raises(QueryError, match="as a method"):
        Q("results.material.elements:any")
    with pytest.raises(QueryError):
        Q("")
    with pytest.raises(QueryError, match="list of values"):
        Q("entry_id").any("abc")
    with pytest.raises(QueryError, match="one value"):
        Q("n_quantities") > [1, 2]
    with pytest.raises(QueryError):
        Q("entry_id") == {"any": ["a"]}  # noqa: B015
    with pytest.raises(QueryError, match="at least one bound"):
        Q("n_quantities").range()


def test_plain_json_of_python_values() -> None:
    when = datetime.datetime(2020, 1, 1, 12, tzinfo=datetime.timezone.utc)
    assert (Q("upload_create_time") > when).to_json() == {"upload_create_time": {"gt": "2020-01-01T12:00:00+00:00"}}
    assert (Q("upload_create_time") > datetime.date(2020, 1, 1)).to_json() == {"upload_create_time": {"gt": "2020-01-01"}}
    with pytest.raises(QueryError, match="validate"):  # the stored unit needs the metainfo
        (Q("results.properties.electronic.band_gap.value") > 1 * ureg.eV).to_json()
    assert query_json(None) == {} and query_json({"entry_id": "x"}) == {"entry_id": "x"}


def test_numpy_values_become_python() -> None:
    np = pytest.importorskip("numpy")
    q = Q("results.material.elements") == np.array(["Ti", "O"])
    assert q.to_json() == {"results.material.elements": ["Ti", "O"]}
    assert (Q("n_quantities") > np.int64(3)).to_json() == {"n_quantities": {"gt": 3}}
    assert type((Q("n_quantities") > np.int64(3)).to_json()["n_quantities"]["gt"]) is int


# ------------------------------------------------------------------------- validation
def test_units_are_converted_to_the_stored_unit(mini: SearchQuantities) -> None:
    gap = Q("results.properties.electronic.band_gap.value")
    sent = (gap > 1 * ureg.eV).validate(mini).to_json()
    assert sent["results.properties.electronic.band_gap.value"]["gt"] == pytest.approx(EV, rel=1e-12)
    sent = gap.between(100 * ureg.meV, 2 * ureg.eV).validate(mini).to_json()
    assert sent["results.properties.electronic.band_gap.value"] == {
        "gte": pytest.approx(0.1 * EV, rel=1e-12), "lte": pytest.approx(2 * EV, rel=1e-12)}
    assert (gap > 1e-19).validate(mini).to_json() == {"results.properties.electronic.band_gap.value": {"gt": 1e-19}}
    with pytest.raises(QueryError, match="stored in joule"):
        (gap > 1 * ureg.meter).validate(mini)
    with pytest.raises(QueryError, match="no value with a unit"):
        (Q("entry_id") == 1 * ureg.eV).validate(mini)
    assert (Q("n_quantities") > 3 * ureg.dimensionless).validate(mini).to_json() == {"n_quantities": {"gt": 3.0}}
    with pytest.raises(QueryError, match="plain number"):
        (Q("n_quantities") > 3 * ureg.eV).validate(mini)


def test_any_all_none_with_a_unit_array(mini: SearchQuantities) -> None:
    np = pytest.importorskip("numpy")
    q = Q("results.properties.electronic.band_gap.value").any(np.array([1.0, 2.0]) * ureg.eV)
    values = q.validate(mini).to_json()["results.properties.electronic.band_gap.value:any"]
    assert values == [pytest.approx(EV), pytest.approx(2 * EV)]


def test_unknown_key_names_the_nearest(mini: SearchQuantities) -> None:
    with pytest.raises(QueryError) as info:
        validate_query({"and": [{"entry_id": "x"}, {"results.material.elemnts": ["Ti"]}]}, mini)
    error = info.value
    assert isinstance(error, ArchivemapError) and isinstance(error, ValueError)
    assert error.key == "results.material.elemnts"
    assert error.location == ("and", 1, "results.material.elemnts")
    assert error.suggestions[0] == "results.material.elements"
    assert "did you mean 'results.material.elements'" in str(error)
    with pytest.raises(QueryError, match="did you mean 'upload_create_time'"):
        (Q("upload_create_tim") > "2020-01-01").validate(mini)
    with pytest.raises(QueryError, match="results.material.elements"):
        validate_query({"elements": ["Ti"]}, mini)  # a bare last segment


def test_operator_must_fit_the_type(mini: SearchQuantities) -> None:
    with pytest.raises(QueryError, match="number or a date.*enum"):
        (Q("results.material.elements") > "Ti").validate(mini)
    with pytest.raises(QueryError, match="number or a date"):
        validate_query({"entry_id:gt": "a"}, mini)
    with pytest.raises(QueryError, match="number or a date"):
        validate_query({"published": {"lt": True}}, mini)
    # all of two values of a key an entry holds once never matches; any is fine
    with pytest.raises(QueryError, match="entry_id:any"):
        (Q("entry_id") == ["a", "b"]).validate(mini)
    with pytest.raises(QueryError, match="never matches"):
        Q("entry_id").all(["a", "b"]).validate(mini)
    assert Q("entry_id").any(["a", "b"]).validate(mini).to_json() == {"entry_id:any": ["a", "b"]}
    assert Q("entry_id").none(["a", "b"]).validate(mini).to_json() == {"entry_id:none": ["a", "b"]}
    assert (Q("entry_id") == ["a"]).validate(mini).to_json() == {"entry_id": ["a"]}
    assert (Q("results.material.elements") == ["Ti", "O"]).validate(mini).to_json() == {
        "results.material.elements": ["Ti", "O"]}
    with pytest.raises(QueryError, match="matches every entry"):
        validate_query({"results.material.elements:any": []}, mini)
    with pytest.raises(QueryError, match="list of values"):
        validate_query({"results.material.elements:any": "Ti"}, mini)


def test_values_must_fit_the_type(mini: SearchQuantities) -> None:
    with pytest.raises(QueryError, match="did you mean 'Ti'") as info:
        (Q("results.material.elements") == ["ti"]).validate(mini)
    assert info.value.suggestions == ("Ti",) and info.value.location == ("results.material.elements", 0)
    with pytest.raises(QueryError, match="is a number"):
        (Q("n_quantities") > "3").validate(mini)
    with pytest.raises(QueryError, match="never matches"):
        (Q("n_quantities") == 3.5).validate(mini)
    assert (Q("n_quantities") == 3.0).validate(mini).to_json() == {"n_quantities": 3}
    assert (Q("n_quantities") > 3.5).validate(mini).to_json() == {"n_quantities": {"gt": 3.5}}
    with pytest.raises(QueryError, match="true or false"):
        (Q("published") == 1).validate(mini)
    with pytest.raises(QueryError, match="holds strings"):
        (Q("entry_id") == 5).validate(mini)
    with pytest.raises(QueryError, match="None"):
        validate_query({"entry_id": None}, mini)
    with pytest.raises(QueryError, match="not a JSON number"):
        (Q("results.properties.electronic.band_gap.value") > float("nan")).validate(mini)


def test_dates(mini: SearchQuantities) -> None:
    ok = {"upload_create_time:gt": "2020-01-01", "upload_create_time:lt": "2020-08-01T00:00:00Z"}
    with pytest.raises(QueryError, match="twice"):  # NOMAD: duplicate_quantity
        validate_query(ok, mini)
    assert validate_query({"upload_create_time": {"gt": "2020-01-01", "lt": "2020-08-01T00:00:00Z"}}, mini)
    when = datetime.datetime(2021, 3, 4, 5, 6, 7)
    assert (Q("upload_create_time") >= when).validate(mini).to_json() == {
        "upload_create_time": {"gte": "2021-03-04T05:06:07"}}
    with pytest.raises(QueryError, match="ISO 8601"):
        (Q("upload_create_time") > "last tuesday").validate(mini)
    with pytest.raises(QueryError, match="range.*is empty"):
        Q("upload_create_time").between("2021-01-01", "2020-01-01").validate(mini)


def test_ranges_follow_nomads_rules(mini: SearchQuantities) -> None:
    with pytest.raises(QueryError, match="conflicting_bounds"):
        validate_query({"n_quantities": {"gt": 1, "gte": 2}}, mini)
    with pytest.raises(QueryError, match="is empty"):
        validate_query({"n_quantities": {"gte": 5, "lte": 1}}, mini)
    with pytest.raises(QueryError, match="operators.*'gtx'"):
        validate_query({"n_quantities": {"gtx": 3}}, mini)
    with pytest.raises(QueryError, match="stand alone"):
        validate_query({"results.material.elements": {"any": ["Ti"], "gt": 1}}, mini)
    with pytest.raises(QueryError, match="unknown operator 'some'"):
        validate_query({"results.material.elements:some": ["Si"]}, mini)


def test_logic_and_nesting(mini: SearchQuantities) -> None:
    nested = {"results": {"material": {"elements:any": ["Si", "Ag"]}}}
    assert validate_query(nested, mini) == nested
    assert validate_query({"results.material": {"elements": ["Ti"]}}, mini) == {"results.material": {"elements": ["Ti"]}}
    both = {"results.material.elements": ["Si"], "results": {"material": {"elements": ["Ag"]}}}
    assert validate_query(both, mini) == both  # NOMAD accepts a repeat through a nested object
    refs = {"prefix": "entry_references", "query": {"target_entry_id": "abc"}}
    assert validate_query(refs, mini) == refs
    with pytest.raises(QueryError, match="unknown section"):
        validate_query({"prefix": "entry_referencs", "query": {"target_entry_id": "abc"}}, mini)
    with pytest.raises(QueryError, match="list of queries"):
        validate_query({"and": {"entry_id": "x"}}, mini)
    with pytest.raises(QueryError, match="ignore them"):
        validate_query({"and": [{"entry_id": "x"}], "published": True}, mini)
    with pytest.raises(QueryError, match="JSON object"):
        validate_query("upload_id=x", mini)  # type: ignore[arg-type]
    with pytest.raises(QueryError, match="section of the search document"):
        validate_query({"results.material": "x"}, mini)
    with pytest.raises(QueryError, match="unknown search key 'results.and'"):
        validate_query({"results": {"and": [{"material.elements": ["Ti"]}]}}, mini)
    assert validate_query({"optimade_filter": "nelements >= 2"}, mini) == {"optimade_filter": "nelements >= 2"}
    assert validate_query({}, mini) == {} and validate_query(None, mini) == {}
    deep: dict[str, Any] = {"entry_id": "x"}
    for _ in range(100):
        deep = {"not": deep}
    with pytest.raises(QueryError, match="deeper"):
        validate_query(deep, mini)


def test_dynamic_keys_of_plugin_and_custom_schemas(mini: SearchQuantities) -> None:
    key = "data.temperature#mycode.MyData"
    assert mini.lookup(key) is not None and key not in mini
    sent = (Q(key) > 300 * ureg.kelvin).validate(mini).to_json()
    assert sent == {key: {"gt": pytest.approx(300.0)}}
    assert validate_query({"data.samples.name#mycode.MyData": "s1"}, mini)
    assert mini.lookup("data.samples.name#mycode.MyData").is_list  # type: ignore[union-attr]
    with pytest.raises(QueryError, match="did you mean temperature"):
        validate_query({"data.temperatur#mycode.MyData": 1.0}, mini)
    with pytest.raises(QueryError, match="not a scalar"):
        validate_query({"data.tags#mycode.MyData": "x"}, mini)
    with pytest.raises(QueryError, match="not an EntryData"):
        validate_query({"data.program#mycode.Run": "x"}, mini)
    with pytest.raises(QueryError, match="no schema section"):
        validate_query({"data.x#mycode.Nope": "x"}, mini)
    assert validate_query({"data.x#entry_id:abc.MySection#float": {"gt": 1}}, mini)
    with pytest.raises(QueryError, match="names its data type"):
        validate_query({"data.x#entry_id:abc.MySection": 1}, mini)


def test_order_by(mini: SearchQuantities) -> None:
    assert validate_order_by("upload_create_time", mini) == "upload_create_time"
    assert validate_order_by("_score", mini) == "_score"
    with pytest.raises(QueryError, match="scalar"):
        validate_order_by("results.material.elements", mini)
    with pytest.raises(QueryError, match="did you mean"):
        validate_order_by("upload_create_tim", mini)


def test_explain(mini: SearchQuantities) -> None:
    q = (Q("results.material.elements") == ["Ti", "O"]) & (Q("results.properties.electronic.band_gap.value") > 1 * ureg.eV)
    lines = explain_query(q, mini)
    assert lines[0] == "AND:"
    assert "results.material.elements all of ['Ti', 'O']" in lines[1] and "several values per entry" in lines[1]
    assert "> 1.602176634e-19" in lines[2] and "in joule" in lines[2]
    assert explain_query({}, mini) == ["(empty query: every entry)"]
    assert q.keys() == ["results.material.elements", "results.properties.electronic.band_gap.value"]


def test_query_json_validates_with_quantities(mini: SearchQuantities) -> None:
    q = Q("results.properties.electronic.band_gap.value") > 1 * ureg.eV
    assert query_json(q, mini) == {"results.properties.electronic.band_gap.value": {"gt": pytest.approx(EV)}}
    with pytest.raises(QueryError):
        query_json({"no_such_key": 1}, mini)
    assert query_json({"no_such_key": 1}) == {"no_such_key": 1}  # nothing to check against


def test_a_plain_mapping_of_quantities_works_too(mini: SearchQuantities) -> None:
    plain = dict(mini)
    assert validate_query({"entry_id": "x"}, plain) == {"entry_id": "x"}
    with pytest.raises(QueryError, match="did you mean 'entry_id'"):
        validate_query({"entry_idd": "x"}, plain)


# ------------------------------------------------------------------------- NOMAD 2.0.0
@pytest.fixture(scope="module")
def env_2_0(shared_data: Path) -> Environment:
    return load_environment(shared_data / "metainfo" / "nomad-2.0.0-metainfo.json")


@pytest.fixture(scope="module")
def keys_2_0(env_2_0: Environment) -> SearchQuantities:
    return search_quantities(env_2_0)


#: Annotation strings of the 2.0.0 export that name no search key: NOMAD answers 422 for them.
#:
#: Evidence, from nomad-lab 2.0.0 (the wheel the export and the conformance corpus were made with):
#: - nomad/datamodel/results.py:1962 annotates ``ExcitedStateMethodology.type`` (plain and
#:   ``suggestion='default'``); its only inheritors GW (:2007) and BSE (:2055) redefine ``type``
#:   with annotations of their own, and only they are placed (``gw``/``bse``, :2398-2399).
#: - nomad/metainfo/metainfo.py:4362-4367: ``all_quantities`` lets the inheritor's definition
#:   replace the base's; nomad/metainfo/elasticsearch_extension.py:355 registers the placed
#:   section's ``all_quantities`` only (``_register``, :588-598), so the base ``type`` never
#:   gets a search quantity.
#: - elasticsearch_extension.py:1009-1013: ``m_to_dict`` exports the registered key, or else the
#:   bare ``Elasticsearch.name`` (:985-991), which for the suggestion annotation doubles the
#:   suffix: ``type__suggestion__suggestion`` is no key shape at all; nomad/datamodel/__init__.py
#:   :88-92 creates the mapping before the export, which is why the other 451 strings are keys.
#: - nomad/search.py:635-663 ``validate_quantity``: a name missing from ``entry_type.quantities``
#:   (and no ``#`` schema key) is ``QueryValidationError('<name> is not a doc quantity')``, the
#:   422 the conformance corpus records for an unknown key (errors.jsonl.gz, ``query/unknown_quantity``).
UNPLACED_2_0 = {
    "type": ("results.method.simulation.bse.type", "results.method.simulation.gw.type"),
    "type__suggestion__suggestion": (
        "results.method.simulation.bse.type__suggestion",
        "results.method.simulation.gw.type__suggestion",
    ),
}


def test_the_fate_of_each_of_the_453_annotations(env_2_0: Environment, keys_2_0: SearchQuantities) -> None:
    texts = search_annotations(env_2_0)
    assert len(texts) == 453
    fate: dict[str, str] = {}
    for text, definitions in texts.items():
        if any(isinstance(d, QuantityDef) for d in definitions):
            try:
                query = {text: _sample_value(keys_2_0[text])} if text in keys_2_0 else {text: "x"}
                assert validate_query(query, keys_2_0) == query
                assert keys_2_0[text].annotation == text
                fate[text] = "criterion"
            except QueryError as error:
                assert error.suggestions == UNPLACED_2_0[text], text
                assert "ExcitedStateMethodology" in str(error) and "BSE and GW" in str(error)
                assert f"422 '{text} is not a doc quantity'" in str(error)
                fate[text] = "refused: NOMAD answers 422"
        elif text == "metadata":  # NOMAD writes metadata's keys without a prefix
            assert {"upload_create_time", "entry_id", "n_quantities"} <= set(keys_2_0)
            fate[text] = "flattened"
        else:  # a bare sub-section name: a section of the search document, a nested query's prefix
            placed = [k for k, q in keys_2_0.items() if q.is_section and q.annotation == text]
            assert placed, text
            for key in placed:
                child = keys_2_0.children(key)[0]
                query = {key: {child[len(key) + 1 :]: _sample_value(keys_2_0[child])}}
                assert validate_query(query, keys_2_0) == query
            fate[text] = "section"
    tally = {kind: sum(1 for f in fate.values() if f == kind) for kind in sorted(set(fate.values()))}
    assert tally == {"criterion": 428, "flattened": 1, "refused: NOMAD answers 422": 2, "section": 22}
    assert {t for t, f in fate.items() if f.startswith("refused")} == set(UNPLACED_2_0)
    unplaced = unplaced_annotations(env_2_0)
    assert {t: u.instead for t, u in unplaced.items()} == UNPLACED_2_0
    assert {u.definition.qualified_name for u in unplaced.values()} == {"nomad.datamodel.results.ExcitedStateMethodology.type"}


@pytest.mark.shared
def test_nomads_422_for_an_unknown_key_is_the_recorded_one(shared_data: Path) -> None:
    (unknown,) = [r for r in _conformance(shared_data, "errors.jsonl.gz") if r["name"] == "query/unknown_quantity"]
    assert unknown["status"] == 422
    assert unknown["response"] == {"detail": [{"msg": "no_such_quantity is not a doc quantity", "loc": [["no_such_quantity"]]}]}


def _sample_value(quantity: Any) -> Any:
    return {
        "str": "x", "reference": "x", "json": "x", "int": 1, "float": 1.5, "bool": True,
        "datetime": "2020-01-01T00:00:00+00:00",
    }.get(quantity.kind, quantity.enum_values[0] if quantity.enum_values else "x")


def test_every_key_of_2_0_is_accepted(keys_2_0: SearchQuantities) -> None:
    # 428 keys the export spells, 70 more placements of the same definitions, 86 sections
    assert sum(not q.is_section for q in keys_2_0.values()) == 498
    for key, quantity in keys_2_0.items():
        if quantity.is_section:
            child = next(k for k in keys_2_0.children(key))
            rest = child[len(key) + 1 :]
            query = {key: {rest: _sample_value(keys_2_0[child])}}
        else:
            query = {key: _sample_value(quantity)}
        assert validate_query(query, keys_2_0) == query, key


def test_2_0_keys_of_the_brief(keys_2_0: SearchQuantities) -> None:
    elements = keys_2_0["results.material.elements"]
    assert elements.kind == "enum" and elements.is_list and "Ti" in elements.enum_values
    gap = keys_2_0["results.properties.electronic.band_gap.value"]
    assert (gap.kind, gap.unit, gap.is_list) == ("float", "joule", True)
    assert gap.annotation is None  # the export spells another placement of BandGap.value ...
    assert keys_2_0["results.properties.electronic.band_structure_electronic.band_gap.value"].annotation
    assert keys_2_0["upload_create_time"].kind == "datetime"
    assert keys_2_0["entry_id"].kind == "str" and not keys_2_0["entry_id"].is_list
    assert keys_2_0["entry_references.target_entry_id"].is_list
    q = (Q("results.material.elements") == ["Ti", "O"]) & Q(gap.key).between(1 * ureg.eV, 3 * ureg.eV)
    sent = q.validate(keys_2_0).to_json()
    assert sent["and"][1][gap.key] == {"gte": pytest.approx(EV), "lte": pytest.approx(3 * EV)}
    # the typo NOMAD's own helper packages shipped
    with pytest.raises(QueryError, match="results.method.workflow_name"):
        validate_query({"results.method.worfklow_name": "GeometryOptimization"}, keys_2_0)


def _conformance(shared_data: Path, name: str) -> list[dict[str, Any]]:
    with gzip.open(shared_data / "conformance" / name, "rt") as fh:
        return [json.loads(line) for line in fh]


def test_every_query_nomad_answered_is_accepted_unchanged(shared_data: Path, keys_2_0: SearchQuantities) -> None:
    queries = _conformance(shared_data, "queries.jsonl.gz")
    checked = 0
    for record in queries:
        request = record["request"]
        assert record["status"] == 200
        if "query" in request:
            assert validate_query(request["query"], keys_2_0) == request["query"], record["name"]
            checked += 1
        order_by = request.get("pagination", {}).get("order_by")
        if order_by:
            validate_order_by(order_by, keys_2_0)
    assert checked >= 20


def test_query_errors_match_nomads_answers(shared_data: Path, keys_2_0: SearchQuantities) -> None:
    decided = {}
    for record in _conformance(shared_data, "errors.jsonl.gz"):
        request = record.get("request")
        if not isinstance(request, dict) or not record["name"].startswith(("query/", "pagination/order_by")):
            continue
        if "query" in request:
            try:
                validate_query(request["query"], keys_2_0)
                accepted = True
            except QueryError:
                accepted = False
        elif "order_by" in request.get("pagination", {}):
            try:
                validate_order_by(request["pagination"]["order_by"], keys_2_0)
                accepted = True
            except QueryError:
                accepted = False
        else:
            continue
        decided[record["name"]] = (accepted, record["status"])
    # every 422 about the query or order_by is refused here, every 200 accepted
    assert {name: status == 200 for name, (_, status) in decided.items()} == {
        name: accepted for name, (accepted, _) in decided.items()}
    assert {"query/unknown_quantity", "query/unknown_operator", "query/range_unknown_op", "query/and_not_list",
            "query/not_a_dict", "query/duplicate_quantity", "query/duplicate_quantity_nested",
            "pagination/order_by_unknown", "pagination/order_by_not_sortable"} <= set(decided)


def test_the_older_export_derives_too(shared_data: Path) -> None:
    env = load_environment(shared_data / "metainfo" / "nomad-gui-artifacts-metainfo.json")
    keys = search_quantities(env)
    texts = search_annotations(env)
    on_quantities = {t for t, defs in texts.items() if any(isinstance(d, QuantityDef) for d in defs)}
    assert {t for t in on_quantities if t not in keys} == set(UNPLACED_2_0)
    assert keys["results.properties.electronic.band_gap.value"].unit == "joule"
