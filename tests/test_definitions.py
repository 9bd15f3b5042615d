"""The definition model: references, inheritance, extensions and clear errors."""

from __future__ import annotations

import pytest

from archivemap.metainfo.exports import load_environment
from archivemap.errors import CyclicDefinitionError, DefinitionError, UnknownDefinitionError

from .conftest import SAMPLES, SHARED


def _env(sections):
    return load_environment({"packages": [{"name": "pkg", "section_definitions": sections}]})


def test_samples_environment_resolves_everything() -> None:
    env = load_environment(SAMPLES / "metainfo.json")
    for section in env.all_sections():
        for prop in section.all_properties.values():
            if hasattr(prop, "sub_section"):
                assert prop.sub_section is not None
    calc = env.section("runschema.calculation.Calculation")
    assert "system_ref" in calc.all_properties  # inherited from BaseCalculation
    assert calc.all_properties["system_ref"].type.target_section.name == "System"


def test_reference_forms() -> None:
    env = _env([
        {"name": "A", "quantities": [{"name": "x", "type": {"type_kind": "python", "type_data": "int"}}],
         "definition_id": "a" * 40},
        {"name": "B", "base_sections": ["/packages/0/section_definitions/0"],
         "inner_section_definitions": [{"name": "Inner"}]},
    ])
    a = env.section("pkg.A")
    assert env.resolve("/packages/0/section_definitions/0") is a
    assert env.resolve("pkg.A@" + "a" * 40) is a
    assert env.resolve("a" * 40 + "@" + "a" * 40) is a  # bare id with suffix
    assert env.resolve("pkg.B.Inner").name == "Inner"
    assert env.resolve("/packages/0/section_definitions/0/quantities/0").name == "x"
    assert env.section("pkg.B").all_properties["x"].section is a


def test_several_bases_and_extensions() -> None:
    env = _env([
        {"name": "A", "quantities": [{"name": "a", "type": {"type_kind": "python", "type_data": "str"}}]},
        {"name": "B", "quantities": [{"name": "b", "type": {"type_kind": "python", "type_data": "str"}}]},
        {"name": "C", "base_sections": ["/packages/0/section_definitions/0", "/packages/0/section_definitions/1"]},
        {"name": "X", "extends_base_section": True, "base_sections": ["/packages/0/section_definitions/0"],
         "quantities": [{"name": "x_code_extra", "type": {"type_kind": "python", "type_data": "str"}}]},
    ])
    c = env.section("pkg.C")
    assert set(c.all_properties) == {"a", "b", "x_code_extra"}
    assert [b.name for b in c.all_base_sections] == ["A", "B"]


def test_unknown_and_cyclic_definitions_name_the_path() -> None:
    env = _env([{"name": "A", "base_sections": ["/packages/0/section_definitions/9"]}])
    with pytest.raises(UnknownDefinitionError) as info:
        env.section("pkg.A").base_sections  # noqa: B018
    assert "/packages/0/section_definitions/0" in str(info.value)
    env = _env([
        {"name": "A", "base_sections": ["/packages/0/section_definitions/1"]},
        {"name": "B", "base_sections": ["/packages/0/section_definitions/0"]},
    ])
    with pytest.raises(CyclicDefinitionError) as cyc:
        env.section("pkg.A").all_properties  # noqa: B018
    assert "/packages/0/section_definitions/" in str(cyc.value)
    with pytest.raises(DefinitionError):
        load_environment({"packages": [{"name": "p", "section_definitions": [{"no_name": 1}]}]})


def test_gui_artifacts_js_form(tmp_path) -> None:
    js = tmp_path / "artifacts.js"
    js.write_text('window.nomadArtifacts = {"metainfo": {"packages": [{"name": "p", "section_definitions": [{"name": "S"}]}]}};')
    assert load_environment(js).section("p.S").name == "S"


@pytest.mark.shared
@pytest.mark.parametrize("name", ["nomad-2.0.0-metainfo.json", "nomad-gui-artifacts-metainfo.json"])
def test_real_exports_resolve_every_reference(name: str) -> None:
    env = load_environment(SHARED / "metainfo" / name)
    n = 0
    for section in env.all_sections():
        props = section.all_properties
        n += len(props)
        for prop in section.quantities:
            if prop.type.kind in ("reference", "quantity_reference"):
                assert prop.type.target is not None
        for sub in section.sub_sections:
            assert sub.sub_section is not None
    assert n > 5000
    assert len(env.section("runschema.run.Run").all_properties) > 5 if "2.0.0" in name else True


def test_environment_from_a_deployment_url(tmp_path) -> None:
    """``load_environment("<base>/api/v1")`` reads ``<base>/gui/artifacts.js`` over HTTP."""
    import functools
    import http.server
    import json
    import threading

    (tmp_path / "prod" / "gui").mkdir(parents=True)
    metainfo = json.loads((SAMPLES / "metainfo.json").read_text())
    (tmp_path / "prod" / "gui" / "artifacts.js").write_text(
        "window.nomadArtifacts = " + json.dumps({"metainfo": metainfo, "unitList": []}) + ";"
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = load_environment(f"http://127.0.0.1:{server.server_port}/prod/api/v1")
    finally:
        server.shutdown()
    assert env.section("runschema.calculation.Calculation").name == "Calculation"
