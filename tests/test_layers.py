"""The architecture holds: one direction of flow, no import cycles, private names stay home.

Two independent checks. ``lint-imports`` (import-linter, configured in pyproject.toml) enforces
the layers leaves → metainfo → archive → remote | graph | views → cli, a server that uses the
leaves only, and a code generator that shares only the definition model. The ``ast`` reading
below sees what import-linter does not weigh: imports inside functions and under
``TYPE_CHECKING`` count as edges too, so a cycle cannot hide behind a deferred import.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

from .conftest import REPO

PACKAGE = REPO / "archivemap"

#: The one deferred import of a sibling module the library allows, and why (see sections.py).
SANCTIONED_DEFERRED = {
    ("archivemap.archive.sections", "archivemap.views.display"): "IPython display hook on sections",
}


def _lint_imports(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(exe), "--no-cache"], cwd=cwd, capture_output=True, text=True, env=env, timeout=300
    )


def test_import_contract_is_kept() -> None:
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_import_contract_fails_on_an_upward_import(tmp_path: Path) -> None:
    # A copy of the project with one upward import: the metainfo layer reaching for sections.
    shutil.copytree(PACKAGE, tmp_path / "archivemap", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "codegen", tmp_path / "archivemap_codegen", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    fields = tmp_path / "archivemap" / "metainfo" / "fields.py"
    fields.write_text(fields.read_text() + "\nimport archivemap.archive.sections  # upward\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = _lint_imports(tmp_path, env)
    assert result.returncode != 0, result.stdout
    assert "archivemap.metainfo.fields -> archivemap.archive.sections" in result.stdout


# -- the ast reading ---------------------------------------------------------------------------
def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, str | None, bool]]:
    """(target module, imported name or None, deferred) for every import of ours in a module."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    deferred_nodes = {
        id(node)
        for func in ast.walk(tree)
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(func)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = []
            for alias in node.names:
                full = f"{module}.{alias.name}"
                targets.append((full, None) if full in modules else (module, alias.name))
        else:
            continue
        for target, imported in targets:
            if target.split(".")[0] != "archivemap":
                continue
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            if target != name:
                found.append((target, imported, id(node) in deferred_nodes))
    return found


@pytest.fixture(scope="module")
def imports() -> dict[str, list[tuple[str, str | None, bool]]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_no_module_cycle_even_through_deferred_or_type_checking_imports(imports) -> None:
    graph = nx.DiGraph()
    graph.add_nodes_from(imports)
    graph.add_edges_from((name, target) for name, found in imports.items() for target, _, _ in found)
    cycles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert cycles == []


def test_only_the_sanctioned_deferred_import_remains(imports) -> None:
    deferred = {(name, target) for name, found in imports.items() for target, _, late in found if late}
    assert deferred == set(SANCTIONED_DEFERRED)


def test_no_module_imports_a_private_name_of_another(imports) -> None:
    private = [
        (name, target, imported)
        for name, found in imports.items()
        for target, imported, _ in found
        if imported is not None and imported.startswith("_") and not imported.startswith("__")
    ]
    assert private == []
