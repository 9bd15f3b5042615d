"""Hostile metainfo: names, descriptions, enum values, units, defaults that try to be code.

Metainfo comes from whatever server or file the user points at. Every case here must give
safe generated code (it parses, imports, runs nothing, keeps the exact values) or a clear
CodegenError / DefinitionError naming the definition.
"""

from __future__ import annotations

import ast
import json
import inspect
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from archivemap.metainfo.exports import load_environment, parse_export
import archivemap
from archivemap.errors import CodegenError, CyclicDefinitionError, DefinitionError, SchemaMismatchWarning
from archivemap.metainfo.fields import META_KEY, field_meta
from archivemap.naming import python_name

from archivemap_codegen import generate, generate_files
from archivemap_codegen.literals import doc_text, docstring, literal, string

from .conftest import import_generated, run_mypy, run_python


def _payloads(canary: Path) -> list[str]:
    c = str(canary)
    return [
        f"x):\n import os; os.system('touch {c}')",
        f"__import__('os').system('touch {c}')",
        f'"""\nimport os; os.system("touch {c}")\n"""',
        f"'''; __import__('os').system('touch {c}'); '''",
        f"\\\"; __import__('os').system('touch {c}') #",
        f"a\x00b\\x00\\\\\\",
        f"\r\n# comment\n__import__('os').system('touch {c}')",
        "\u2028\u2029\x85\x0b\x0c line separators",
        "Ångström",
        "\u202e\u200fevil\u202c right-to-left",
        "\ud800 lone surrogate",
        "\U0001f600 emoji",
        "class",
        "def",
        "None",
        "True",
        "__class__",
        "m_parent",
        "",
        "A" * 10_000,
        "{}".format("x" * 70),
        "1leading_digit",
        "trailing\\",
        "f'{__import__(\"os\").system(\"touch " + c + "\")}'",
    ]


def _q(name: str, type_: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"m_def": "nomad.metainfo.metainfo.Quantity", "name": name, "type": type_, **extra}


def hostile_environment(canary: Path) -> dict[str, Any]:
    payloads = _payloads(canary)
    code = payloads[1]
    sections = []
    for i, text in enumerate(payloads):
        quantities = [
            _q(text, {"type_kind": "python", "type_data": "str"}, description=text, default=text),
            _q("enum_" + str(i), {"type_kind": "enum", "type_data": [text, code, "ok"]}),
            _q("unit_" + str(i), {"type_kind": "numpy", "type_data": "float64"}, unit=text, shape=[text, 3]),
            _q("custom_" + str(i), {"type_kind": "custom", "type_data": text}, default={text: [text, 1.5]}),
            _q("np_" + str(i), {"type_kind": "numpy", "type_data": text}),
        ]
        sections.append(
            {
                "m_def": "nomad.metainfo.metainfo.Section",
                "name": text,
                "description": text + ' """ \\ ' + text,
                "quantities": quantities,
                "sub_sections": [
                    {"name": "child_" + text[:50], "sub_section": "/packages/0/section_definitions/0",
                     "repeats": i % 2 == 0, "more": {"label_quantity": text}},
                ],
            }
        )
    # a section whose own fields shadow the names its annotations need
    sections.append(
        {
            "name": "Shadows",
            "quantities": [
                _q(n, {"type_kind": "python", "type_data": "str"})
                for n in ("str", "int", "float", "bool", "list", "dict", "bytes", "datetime",
                          "quantity", "sub_section", "Shadows", "x_section")
            ]
            + [_q("when", {"type_kind": "custom", "type_data": "nomad.metainfo.data_type.Datetime"}),
               _q("blob", {"type_kind": "custom", "type_data": "nomad.metainfo.data_type.JSON"}),
               _q("vals", {"type_kind": "python", "type_data": "int"}, shape=["*"])],
            "sub_sections": [
                {"name": "x_section", "sub_section": f"/packages/0/section_definitions/{len(payloads) + 1}"},
            ],
        }
    )
    sections.append({"name": "x_section", "quantities": [_q("v", {"type_kind": "python", "type_data": "int"})]})
    for name in ("Any", "ClassVar", "Section", "str", "attrs", "np", "quantity"):
        sections.append({"name": name, "base_sections": ["/packages/0/section_definitions/0"]})
    packages = [{"name": payloads[0], "section_definitions": sections}]
    for pkg_name in ("../../etc/passwd", "...", ".", "", "get_class", "CLASSES", payloads[1], "Ångström.pkg"):
        packages.append(
            {
                "name": pkg_name,
                "description": payloads[2],
                "section_definitions": [
                    {"name": "Workflow", "base_sections": ["/packages/0/section_definitions/1"],
                     "quantities": [_q(payloads[3], {"type_kind": "reference",
                                                     "type_data": "/packages/0/section_definitions/2"},
                                       shape=["*"])]},
                ],
            }
        )
    return {"packages": packages}


def test_hostile_metainfo_gives_safe_code(tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    data = hostile_environment(canary)
    out = tmp_path / "out"
    assert generate(data, out, package_name="hostile") == 0
    files = sorted((out / "hostile").glob("*.py"))
    assert len(files) == 1 + len(data["packages"])
    for path in files:
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)  # no syntax errors
        assert path.stem.isidentifier() and path.parent == out / "hostile"
        if path.name == "__init__.py":  # data only, plus the fixed functions
            defs = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
            assert defs == ["__getattr__", "__dir__", "_qualified", "get_class", "_register"]
            continue
        for node in ast.walk(tree):  # nothing but the calls the generator itself writes
            if isinstance(node, ast.Call):
                func = ast.unparse(node.func)
                assert func in {"quantity", "sub_section", "attrs.define", "float", "quantity_",
                                "sub_section_"}, func
            assert not isinstance(node, (ast.FunctionDef, ast.Lambda, ast.Subscript)) or (
                isinstance(node, ast.Subscript)  # only in annotations
            )
    assert not canary.exists()

    code = (
        "import importlib, hostile\n"
        "for m in sorted(hostile.MODULES):\n"
        "    importlib.import_module('hostile.' + m)\n"
        "for qn in hostile.CLASSES:\n"
        "    hostile.get_class(qn)\n"
    )
    result = run_python(code, out)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not canary.exists()

    # the exact values survive: names, enum values, units, defaults, shapes, docstrings
    pkg = import_generated(out, "hostile")
    env = load_environment(data)
    checked = 0
    for sdef in env.all_sections():
        cls = pkg.get_class(sdef.qualified_name)
        assert cls.m_qualified_name == sdef.qualified_name or pkg.CLASSES[sdef.qualified_name]
        fields = {f.name: f.metadata[META_KEY] for f in attrs.fields(cls)}
        expected = {python_name(n): field_meta(p, python_name(n)) for n, p in sdef.all_properties.items()}
        assert fields == expected, sdef.path
        if pkg.CLASSES[sdef.qualified_name] == (cls.__module__.rpartition(".")[2], cls.__name__):
            expected_doc = sdef.description or f"NOMAD section ``{sdef.qualified_name}``."
            assert inspect.getdoc(cls) == inspect.cleandoc(doc_text(expected_doc))
        checked += 1
    assert checked == len(list(env.all_sections()))
    assert not canary.exists()


def test_hostile_package_type_checks(tmp_path: Path) -> None:
    data = hostile_environment(tmp_path / "pwned")
    assert generate(data, tmp_path, package_name="hostile_mypy") == 0
    result = run_mypy(tmp_path, "hostile_mypy")
    assert result.returncode == 0, result.stdout[-5000:]


def test_shadowing_attribute_names_keep_annotations_right(tmp_path: Path) -> None:
    data = hostile_environment(tmp_path / "pwned")
    files = generate_files(data)
    module = next(t for n, t in files.items() if "Shadows" in t and "class Shadows" in t)
    assert "import builtins as builtins" in module or "import builtins as builtins_" in module
    assert "str: builtins" in module  # the field named str does not shadow the str type
    assert "from archivemap.metainfo.fields import quantity as quantity_" in module


def test_names_that_would_clash_get_distinct_attributes(tmp_path: Path) -> None:
    # "class" becomes class_; a real "class_" must not land on the same attribute (issue 12)
    data = {"packages": [{"name": "p", "section_definitions": [
        {"name": "S", "quantities": [_q("class", {"type_kind": "python", "type_data": "str"}),
                                      _q("class_", {"type_kind": "python", "type_data": "str"}),
                                      _q("_m_data", {"type_kind": "python", "type_data": "str"})]}]}]}
    pkg = import_generated(tmp_path, "clash_pkg") if generate(data, tmp_path, package_name="clash_pkg") == 0 else None
    assert pkg is not None
    fields = {f.metadata[META_KEY].name: f.name for f in attrs.fields(pkg.get_class("p.S"))}
    assert len(set(fields.values())) == 3
    assert fields["class"] == "class_" and fields["class_"] != "class_"
    assert not fields["_m_data"].startswith("_")


def test_crafted_names_that_still_meet_are_an_error(tmp_path: Path) -> None:
    crafted = python_name("x\n")  # a hashed name, written literally as a second property
    data = {"packages": [{"name": "p", "section_definitions": [
        {"name": "S", "quantities": [_q("x\n", {"type_kind": "python", "type_data": "str"}),
                                      _q(crafted, {"type_kind": "python", "type_data": "str"})]}]}]}
    with pytest.raises(CodegenError, match=r"/packages/0/section_definitions/0"):
        generate_files(data)


def test_cyclic_bases_are_an_error() -> None:
    data = {"packages": [{"name": "p", "section_definitions": [
        {"name": "A", "base_sections": ["/packages/0/section_definitions/1"]},
        {"name": "B", "base_sections": ["/packages/0/section_definitions/0"]}]}]}
    with pytest.raises(CyclicDefinitionError):
        generate_files(data)


def test_unknown_base_is_an_error() -> None:
    data = {"packages": [{"name": "p", "section_definitions": [
        {"name": "A", "base_sections": ["/packages/3/section_definitions/1"]}]}]}
    with pytest.raises(DefinitionError, match="/packages/0/section_definitions/0"):
        generate_files(data)


def _chain(n: int, quantities: int = 1) -> dict[str, Any]:
    """Sections S0 … S{n-1}, each with ``quantities`` of its own and the previous one as base."""
    return {"packages": [{"name": "deep", "section_definitions": [
        {"name": f"S{i}",
         "quantities": [_q(f"q{i}_{j}", {"type_kind": "python", "type_data": "str"}) for j in range(quantities)],
         **({"base_sections": [f"/packages/0/section_definitions/{i - 1}"]} if i else {})}
        for i in range(n)]}]}


def test_a_chain_of_bases_longer_than_any_real_schema_is_refused() -> None:
    # 1,000 sections in a chain build 500,500 fields (30 s, 600 MB) before the limit
    with pytest.raises(DefinitionError, match="more than 64 base sections") as info:
        generate_files(_chain(1000))
    assert info.value.definition_path is not None
    assert info.value.definition_path.startswith("/packages/0/section_definitions/")
    env = load_environment(_chain(1000))
    with pytest.raises(DefinitionError, match="refused as hostile"):
        env.resolve("deep.S999").all_properties  # noqa: B018
    generate_files(_chain(60))  # deep, but within the limit: generated


def test_sections_whose_ancestry_holds_too_many_properties_are_refused() -> None:
    # 40 levels of 2,000 quantities each: 1.6 million fields across the classes of the chain
    env = load_environment(_chain(40, quantities=2000))
    assert len(env.resolve("deep.S5").all_properties) == 12_000  # 42,000 with its bases: fine
    with pytest.raises(DefinitionError, match="more than 60000"):
        env.resolve("deep.S39").all_properties  # noqa: B018


def test_non_json_values_are_an_error() -> None:
    data = {"packages": [{"name": "p", "section_definitions": [
        {"name": "A", "quantities": [_q("q", {"type_kind": "python", "type_data": "str"}, default=object())]}]}]}
    with pytest.raises(CodegenError):
        generate_files(data)


def test_bad_package_name_argument(tmp_path: Path) -> None:
    with pytest.raises(CodegenError):
        generate({"packages": []}, tmp_path, package_name="../evil")


_any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=60)


@given(_any_text)
def test_string_literals_round_trip(text: str) -> None:
    source = string(text)
    assert ast.literal_eval(source) == text
    assert "\n" not in source and "\r" not in source


@given(_any_text)
def test_docstrings_round_trip(text: str) -> None:
    source = "class C:\n    " + docstring(text, "    ") + "\n"
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.ClassDef)
    # What a docstring means is its cleandoc up to blank lines: cleandoc is not idempotent on
    # lone "\r" lines ("\n\r" -> "\r" -> "") and keeps whitespace-only lines at the end, which
    # the indented literal cannot reproduce character for character.
    def clean(doc: str) -> str:
        lines = [line.rstrip() for line in inspect.cleandoc(inspect.cleandoc(doc)).split("\n")]
        while lines and not lines[-1]:
            lines.pop()
        return "\n".join(lines)

    assert clean(ast.get_docstring(node, clean=False) or "") == clean(doc_text(text))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _any_text,
    lambda children: st.lists(children, max_size=4)
    | st.lists(children, max_size=4).map(tuple)
    | st.dictionaries(_any_text, children, max_size=4),
    max_leaves=12,
)


@given(json_values)
def test_value_literals_round_trip(value: Any) -> None:
    source = literal(value)
    tree = ast.parse(source, mode="eval")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):  # only float("nan") / float("inf")
            assert ast.unparse(node.func) == "float"
    result = eval(compile(tree, "<literal>", "eval"), {"__builtins__": {"float": float}})
    assert repr(result) == repr(value)


def test_an_integer_default_of_any_size_is_read_exactly(tmp_path: Path) -> None:
    # valid JSON that a float-based parser reads as infinity ("number is infinity")
    huge = 10**400
    text = json.dumps({"packages": [{"name": "p", "section_definitions": [
        {"name": "A", "quantities": [_q("n", {"type_kind": "numpy", "type_data": "int64"}, default=huge)]}]}]})
    assert parse_export(text, "huge.json")["packages"][0]["section_definitions"][0]["quantities"][0]["default"] == huge
    files = generate_files(parse_export(text, "huge.json"))
    assert any(str(huge) in source for source in files.values())
    with pytest.raises(DefinitionError, match=r"not valid JSON.*\(at broken.json\)"):
        parse_export('{"packages": [}', "broken.json")


def test_a_dangling_sub_section_is_read_untyped_and_said(tmp_path: Path) -> None:
    data = {"packages": [{"name": "p", "section_definitions": [
        {"name": "A", "sub_sections": [{"name": "c", "sub_section": "/packages/3/section_definitions/0"}]}]}]}
    with pytest.warns(SchemaMismatchWarning, match=r"sub_sections/0\).*read untyped"):
        files = generate_files(data)
    assert any('c: Any = quantity("c"' in source for source in files.values())
    schema = archivemap.Schema(data)
    with pytest.warns(SchemaMismatchWarning, match="no packages '3'"):
        cls = schema.class_for_name("p.A")
    section = cls.m_load({"c": {"x": [1, 2]}})  # the data is still read, and kept as it is
    assert section.c == {"x": [1, 2]} and section.to_dict() == {"c": {"x": [1, 2]}}


def test_many_small_sections_on_one_large_base_exhaust_the_environments_budget() -> None:
    # each leaf is within the per-section limit, together they would build 870,000 fields
    quantities = [_q(f"q{j}", {"type_kind": "python", "type_data": "str"}) for j in range(29_000)]
    data = {"packages": [{"name": "p", "section_definitions": [{"name": "Big", "quantities": quantities}] + [
        {"name": f"L{i}", "base_sections": ["/packages/0/section_definitions/0"]} for i in range(30)]}]}
    env = load_environment(data)
    with pytest.raises(DefinitionError, match="more than 600000 properties together"):
        for i in range(30):
            env.resolve(f"p.L{i}").all_properties  # noqa: B018
    with pytest.raises(DefinitionError, match="refused as hostile"):
        generate_files(data)
