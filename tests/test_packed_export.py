"""Packed exports (``Environment.pack`` / ``from_packed``) and the disk cache that keeps them.

An environment from a packed export builds a package only when a lookup reaches into it; it
must answer every lookup exactly as the environment it was packed from: same definitions,
same objects on every lookup, same errors for hostile metainfo. Every test runs with
``ARCHIVEMAP_CACHE_DIR`` in a temporary folder.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from archivemap.errors import CyclicDefinitionError, DefinitionError, UnknownDefinitionError
from archivemap.metainfo import cache, environment, model
from archivemap.metainfo.default import read_default_environment
from archivemap.metainfo.environment import Environment, is_packed_export, unpack_export
from archivemap.metainfo.model import QuantityDef, SubSectionDef

from .conftest import SAMPLES, SHARED


@pytest.fixture(autouse=True)
def tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    where = tmp_path / "cache"
    monkeypatch.setenv(cache.CACHE_ENV, str(where))
    return where


def _packed(data: Mapping[str, Any]) -> Environment:
    """The environment of ``data`` after a round trip through the packed form."""
    packed = Environment(data).pack()
    assert packed is not None and is_packed_export(packed)
    return Environment.from_packed(packed)


def _ref(definition: Any) -> str | None:
    """A definition by where it sits, comparable across two environments."""
    return None if definition is None else definition.path


def _signature(env: Environment) -> dict[str, Any]:
    """Everything a consumer reads of every section, by definition path."""
    out: dict[str, Any] = {}
    for section in env.all_sections():
        props = []
        for name, prop in section.all_properties.items():
            if isinstance(prop, QuantityDef):
                kind = prop.type.kind
                target = _ref(prop.type.target) if kind in ("reference", "quantity_reference") else None
                props.append((name, "q", prop.path, kind, repr(prop.type.data), prop.unit, prop.shape, target))
            else:
                assert isinstance(prop, SubSectionDef)
                props.append((name, "s", prop.path, prop.repeats, _ref(prop.sub_section)))
        out[section.path] = (
            section.qualified_name,
            section.definition_id,
            props,
            [b.path for b in section.all_base_sections],
            [e.path for e in section.extensions],
        )
    return out


def _assert_same_answers(eager: Environment, lazy: Environment, data: Mapping[str, Any]) -> None:
    assert _signature(lazy) == _signature(eager)
    for section in eager.all_sections():  # every name and id finds the same definition
        assert _ref(lazy.by_qualified_name(section.qualified_name)) == _ref(eager.by_qualified_name(section.qualified_name))
        for prop in (*section.quantities, *section.sub_sections):
            if prop.definition_id:
                assert _ref(lazy.by_definition_id(prop.definition_id)) == _ref(eager.by_definition_id(prop.definition_id))
        if section.definition_id:
            assert _ref(lazy.by_definition_id(section.definition_id)) == _ref(eager.by_definition_id(section.definition_id))
    for pkg in eager.packages:
        if pkg.definition_id:
            assert _ref(lazy.by_definition_id(pkg.definition_id)) == pkg.path
    assert lazy.raw == data and list(lazy.raw) == list(data)


# ---------------------------------------------------------------- the same definitions
@pytest.mark.shared
def test_the_2_0_export_packed_answers_as_unpacked() -> None:
    data = json.loads((SHARED / "metainfo" / "nomad-2.0.0-metainfo.json").read_bytes())
    eager = Environment(data)
    packed = eager.pack()
    assert packed is not None
    lazy = Environment.from_packed(packed)
    assert not any(pkg.is_built for pkg in lazy.packages)
    _assert_same_answers(eager, lazy, data)


def test_the_embedded_export_from_a_warm_cache_answers_as_parsed(tmp_cache: Path) -> None:
    cold = read_default_environment()
    assert not cold.is_packed and len(list((tmp_cache / "metainfo").glob("*.marshal"))) == 1
    warm = read_default_environment()
    assert warm.is_packed and not any(pkg.is_built for pkg in warm.packages)
    _assert_same_answers(cold, warm, cold.raw)


def test_the_samples_export_through_the_cache() -> None:
    data = json.loads((SAMPLES / "metainfo.json").read_bytes())
    first = cache.cached_environment("test", "cd" * 32, lambda: data, "samples")
    second = cache.cached_environment("test", "cd" * 32, lambda: pytest.fail("parsed again"), "samples")
    assert not first.is_packed and second.is_packed and second.source == "samples"
    _assert_same_answers(first, second, data)


# ---------------------------------------------------------------- built on first use, once
def _three_packages() -> dict[str, Any]:
    return {"packages": [
        {"name": "base", "definition_id": "b" * 40, "section_definitions": [
            {"name": "Run", "definition_id": "1" * 40, "quantities": [{"name": "n", "definition_id": "2" * 40}],
             "sub_sections": [{"name": "method", "sub_section": "/packages/1/section_definitions/0"}]},
        ]},
        {"name": "other", "section_definitions": [{"name": "Method", "quantities": [{"name": "m"}]}]},
        {"name": "code", "section_definitions": [
            {"name": "CodeRun", "extends_base_section": True, "base_sections": ["/packages/0/section_definitions/0"],
             "quantities": [{"name": "x_code_n", "definition_id": "3" * 40}]},
            {"name": "Unused", "inner_section_definitions": [{"name": "Deep"}]},
        ]},
    ]}


def _built(env: Environment) -> list[str]:
    return [pkg.name for pkg in env.packages if pkg.is_built]


def test_a_packed_package_is_built_when_a_lookup_reaches_it(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    original = model.SectionDef

    class Counting(original):  # type: ignore[misc,valid-type]
        __slots__ = ()

        def __init__(self, raw, path, package, outer):  # type: ignore[no-untyped-def]
            built.append(path)
            super().__init__(raw, path, package, outer)

    env = _packed(_three_packages())
    monkeypatch.setattr(model, "SectionDef", Counting)
    assert _built(env) == [] and built == []
    assert [p.name for p in env.packages] == ["base", "other", "code"]  # heads only
    run = env.section("base.Run")
    assert _built(env) == ["base"] and built == ["/packages/0/section_definitions/0"]
    assert env.resolve("/packages/0/section_definitions/0") is run is env.by_definition_id("1" * 40)
    assert _built(env) == ["base"]
    assert set(run.all_properties) == {"n", "method", "x_code_n"}  # the extension lives in "code"
    assert _built(env) == ["base", "code"]
    assert run.all_properties["method"].sub_section is env.section("other.Method")
    assert _built(env) == ["base", "other", "code"]
    assert len(built) == len(set(built)) == 5  # each section once, inner ones included
    assert env.by_definition_id("3" * 40) is run.all_properties["x_code_n"]
    assert env.by_definition_id("b" * 40) is env.packages[0]


def test_threads_get_the_same_objects() -> None:
    env = _packed(_three_packages())
    barrier = threading.Barrier(8)
    found: list[tuple[Any, ...]] = []

    def look() -> None:
        barrier.wait()
        run = env.by_definition_id("1" * 40)
        found.append((run, env.section("code.CodeRun"), tuple(env.section("base.Run").all_properties.values())))

    threads = [threading.Thread(target=look) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(found) == 8 and all(f == found[0] for f in found)
    assert all(a is b for f in found for a, b in zip(f[2], found[0][2]))


# ---------------------------------------------------------------- hostile metainfo
def test_hostile_definitions_fail_alike_packed_and_unpacked() -> None:
    data = {"packages": [{"name": "p", "section_definitions": [
        {"name": "A", "base_sections": ["/packages/0/section_definitions/1"]},
        {"name": "B", "base_sections": ["/packages/0/section_definitions/0"]},
        {"name": "C", "base_sections": ["/packages/0/section_definitions/9"]},
        {"name": "D", "sub_sections": [{"name": "s", "sub_section": "p.Nowhere"}]},
    ]}]}
    for env in (Environment(data), _packed(data)):
        with pytest.raises(CyclicDefinitionError, match="/packages/0/section_definitions/0"):
            env.section("p.A").all_properties  # noqa: B018
        with pytest.raises(UnknownDefinitionError, match="/packages/0/section_definitions/2"):
            env.section("p.C").base_sections  # noqa: B018
        with pytest.raises(UnknownDefinitionError, match="p.Nowhere"):
            env.section("p.D").sub_sections[0].sub_section  # noqa: B018
        with pytest.raises(UnknownDefinitionError):
            env.section("p.E")


def test_an_export_that_fails_to_build_is_not_cached(tmp_cache: Path) -> None:
    bad = {"packages": [{"name": "p", "section_definitions": [
        {"name": "A"}, {"name": "B"},
        {"name": "X", "extends_base_section": True, "base_sections": ["p.A", "p.B"]},
    ]}]}
    for _ in range(2):
        with pytest.raises(DefinitionError, match="2 base sections"):
            cache.cached_environment("test", "ef" * 32, lambda: bad, "bad")
    assert cache.load_parsed("test", "ef" * 32) is None


def test_deep_nesting_packs_or_falls_back_to_a_parse() -> None:
    for depth in (300, 3000):  # 3000 levels: deeper than marshal writes
        top: dict[str, Any] = {"name": "S0"}
        node = top
        for i in range(1, depth):
            inner: dict[str, Any] = {"name": f"S{i}"}
            node["inner_section_definitions"] = [inner]
            node = inner
        node["quantities"] = [{"name": "leaf"}]
        data = {"packages": [{"name": "p", "section_definitions": [top]}]}
        name = "p." + ".".join(f"S{i}" for i in range(depth))
        key = (f"{depth}f" * 64)[:64]
        first = cache.cached_environment("test", key, lambda: data, "deep")
        second = cache.cached_environment("test", key, lambda: data, "deep")
        assert second.is_packed == (depth == 300)
        for env in (first, second):
            assert list(env.section(name).all_properties) == ["leaf"]


def test_sections_defined_inline_later_win_alike() -> None:
    """A sub-section's inline definition is indexed when first met, and then wins id lookups."""
    data = {"packages": [{"name": "p", "section_definitions": [
        {"name": "A", "definition_id": "a" * 40},
        {"name": "Holder", "sub_sections": [{"name": "s", "sub_section": {"name": "A", "definition_id": "a" * 40}}]},
    ]}]}
    eager, lazy = Environment(data), _packed(data)
    answers = []
    for env in (eager, lazy):
        before = env.by_definition_id("a" * 40)
        inline = env.section("p.Holder").sub_sections[0].sub_section
        after = env.by_definition_id("a" * 40)
        answers.append((_ref(before), _ref(inline), _ref(after), _ref(env.section("p.A"))))
        assert after is inline and env.section("p.A") is not inline
    assert answers[0] == answers[1]
    assert eager.pack() is None  # an inline definition was met: the index would no longer be the export's


def test_what_cannot_be_packed() -> None:
    custom = Environment.for_archive({"section_definitions": [{"name": "S"}]}, "e1", parent=Environment(_three_packages()))
    assert custom.pack() is None
    inline_base = {"packages": [{"name": "p", "section_definitions": [
        {"name": "X", "extends_base_section": True, "base_sections": [{"name": "Inline"}]},
    ]}]}
    env = Environment(inline_base)
    assert env.pack() is None  # the base has no path a packed index could point at
    assert [e.name for e in env.section("p.X").base_sections[0].extensions] == ["X"]


# ---------------------------------------------------------------- the cache file
def test_a_cache_of_another_layout_is_ignored_and_rebuilt(tmp_cache: Path) -> None:
    data = json.loads((SAMPLES / "metainfo.json").read_bytes())
    cache.store_parsed("test", "12" * 32, {"format": "archivemap-packed-export/0", "packages": []})
    env = cache.cached_environment("test", "12" * 32, lambda: data, "samples")
    assert not env.is_packed
    stored = cache.load_parsed("test", "12" * 32)
    assert stored is not None and is_packed_export(stored) and unpack_export(stored) == data


def test_a_format_1_cache_file_is_ignored(tmp_cache: Path) -> None:
    data = json.loads((SAMPLES / "metainfo.json").read_bytes())
    path = cache.store_parsed("test", "34" * 32, data)
    assert path is not None and cache.load_parsed("test", "34" * 32) == data
    blob = path.read_bytes()
    path.write_bytes(b"AMMI\x01" + blob[5:])  # what archivemap wrote before packed exports
    assert cache.load_parsed("test", "34" * 32) is None
    assert cache.load_cached_environment("test", "34" * 32, "x") is None


def test_unpack_export_refuses_what_is_not_packed() -> None:
    with pytest.raises(DefinitionError):
        unpack_export({"packages": []})
    with pytest.raises(DefinitionError):
        Environment.from_packed({"format": environment.PACKED_FORMAT, "packages": [b"x"]})
    assert not is_packed_export({"format": environment.PACKED_FORMAT, "head": {}, "package_heads": [{}],
                                 "packages": ["not bytes"], "index": {}})
