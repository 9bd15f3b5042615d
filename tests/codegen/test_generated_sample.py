"""The package generated from samples/metainfo.json: imports, registry, metadata, mypy."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import attrs
import pytest

from archivemap.metainfo.exports import load_environment
from archivemap.errors import UnknownDefinitionError
from archivemap.metainfo.fields import META_KEY, field_meta
from archivemap.naming import python_name
from archivemap.archive.sections import Section

from .conftest import SAMPLE_METAINFO, import_generated, run_mypy, run_python


def test_every_module_imports_first_in_a_fresh_interpreter(sample_package: tuple[Path, str]) -> None:
    root, name = sample_package
    modules = sorted(p.stem for p in (root / name).glob("*.py") if p.stem != "__init__")
    for module in modules:
        code = (
            f"import importlib, {name}\n"
            f"importlib.import_module('{name}.{module}')\n"
            f"for m in sorted({name}.MODULES):\n"
            f"    importlib.import_module('{name}.' + m)\n"
            f"for qn in {name}.CLASSES:\n"
            f"    {name}.get_class(qn)\n"
        )
        result = run_python(code, root)
        assert result.returncode == 0, f"importing {module} first failed:\n{result.stderr}"


def test_root_is_lazy(sample_package: tuple[Path, str]) -> None:
    root, name = sample_package
    code = (
        f"import sys, {name}\n"
        f"assert not [m for m in sys.modules if m.startswith('{name}.')], sys.modules\n"
        f"assert {name}.runschema_run.Run.m_qualified_name == 'runschema.run.Run'\n"
        f"assert '{name}.runschema_run' in sys.modules\n"
    )
    result = run_python(code, root)
    assert result.returncode == 0, result.stderr


def test_field_metadata_equals_the_runtime(sample_package: tuple[Path, str]) -> None:
    pkg = import_generated(*sample_package)
    env = load_environment(SAMPLE_METAINFO)
    for sdef in env.all_sections():
        cls = pkg.get_class(sdef.qualified_name)
        got = {f.name: f.metadata[META_KEY] for f in attrs.fields(cls)}
        expected = {python_name(n): field_meta(p, python_name(n)) for n, p in sdef.all_properties.items()}
        assert got == expected, sdef.qualified_name
        if not sdef.extends_base_section:
            assert cls.m_qualified_name == sdef.qualified_name
            assert cls.m_definition_id == sdef.definition_id
            assert inspect.getdoc(cls) == inspect.cleandoc(sdef.description or "")


def test_classes_and_bases(sample_package: tuple[Path, str]) -> None:
    pkg = import_generated(*sample_package)
    calc = pkg.get_class("runschema.calculation.Calculation")
    base = pkg.get_class("runschema.calculation.BaseCalculation")
    assert issubclass(calc, base) and issubclass(base, Section)
    # two base sections: the first is the Python base, the second's properties are declared
    workflow = pkg.get_class("nomad.datamodel.metainfo.workflow.Workflow")
    assert workflow.__mro__[1] is pkg.get_class("nomad.datamodel.metainfo.workflow.Task")
    assert not issubclass(workflow, pkg.get_class("nomad.datamodel.data.EntryData"))
    # the same section name in two packages: two classes, told apart by module
    legacy = pkg.get_class("nomad.datamodel.metainfo.simulation.legacy_workflows.Workflow")
    assert legacy is not workflow and legacy.__name__ == workflow.__name__ == "Workflow"
    # inner sections are module-level classes named Outer_Inner
    inner = pkg.get_class("nomad.datamodel.results.Properties.GeometryOptimizationProperties")
    assert inner.__name__ == "Properties_GeometryOptimizationProperties"
    # slots, kw_only, no eq
    obj = calc(n_scf_steps=3)
    assert not hasattr(obj, "__dict__") and obj.n_scf_steps == 3
    with pytest.raises(TypeError):
        calc(3)  # type: ignore[misc]


def test_get_class_accepts_names_aliases_and_ids(sample_package: tuple[Path, str]) -> None:
    pkg = import_generated(*sample_package)
    env = load_environment(SAMPLE_METAINFO)
    method = pkg.get_class("runschema.method.Method")
    ext = env.section("electronicparsers.vasp.metainfo.vasp.Method")
    assert pkg.get_class(ext.qualified_name) is method  # extension → the extended class
    assert pkg.ALIASES[ext.qualified_name] == "runschema.method.Method"
    assert "x_vasp_incar_ENCUT" in attrs.fields_dict(method)
    assert pkg.get_class(ext.definition_id) is method
    sdef = env.section("runschema.method.Method")
    assert pkg.get_class(sdef.definition_id) is method
    assert pkg.get_class(f"runschema.method.Method@{sdef.definition_id}") is method
    assert pkg.get_class(f"runschema.method.Method@{'0' * 40}") is method
    assert pkg.DEFINITION_IDS[sdef.definition_id] == "runschema.method.Method"
    with pytest.raises(KeyError):
        pkg.get_class("runschema.method.Nothing")
    with pytest.raises(UnknownDefinitionError):
        pkg.get_class("f" * 40)
    assert pkg.SOURCE == "metainfo.json" and len(pkg.SOURCE_SHA256) == 64


def test_generated_modules_parse_and_keep_literal_values(sample_package: tuple[Path, str]) -> None:
    root, name = sample_package
    env = load_environment(SAMPLE_METAINFO)
    docs = {s.qualified_name: s.description for s in env.all_sections()}
    seen = 0
    for path in (root / name).glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                values = {
                    stmt.target.id: ast.literal_eval(stmt.value)
                    for stmt in node.body
                    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                    and stmt.target.id == "m_qualified_name" and stmt.value is not None
                }
                qn = values["m_qualified_name"]
                assert inspect.cleandoc(ast.get_docstring(node, clean=False) or "") == inspect.cleandoc(docs[qn] or "")
                seen += 1
    assert seen == sum(1 for s in env.all_sections() if not s.extends_base_section)


def test_mypy_accepts_the_sample_package(sample_package: tuple[Path, str], tmp_path: Path) -> None:
    root, name = sample_package
    (root / "use_it.py").write_text(
        f"from {name}.runschema_calculation import Calculation\n"
        f"from {name}.runschema_method import Method\n"
        "import pint\n"
        "def energy(c: Calculation) -> pint.Quantity | None:\n"
        "    return c.energy.total.value if c.energy and c.energy.total else None\n"
        "def cutoff(m: Method) -> pint.Quantity | None:\n"
        "    return m.x_vasp_incar_ENCUT\n"
        "def label(c: Calculation) -> str | None:\n"
        "    return c.method_ref.label if c.method_ref else None\n"
    )
    result = run_mypy(root, name, "use_it")
    assert result.returncode == 0, result.stdout + result.stderr
