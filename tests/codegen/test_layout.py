"""Layout rules: base cycles between modules, duplicate names, overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from archivemap_codegen import generate, generate_files

from .conftest import run_mypy, run_python


def _section(name: str, base: str | None = None, **quantities: str) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "quantities": [
        {"name": q, "type": {"type_kind": "python", "type_data": t}} for q, t in quantities.items()
    ]}
    if base:
        out["base_sections"] = [base]
    return out


CYCLIC = {
    "packages": [
        {"name": "pkg.a", "section_definitions": [
            _section("A1", x="str"),
            _section("A2", "/packages/1/section_definitions/0", y="int"),
        ]},
        {"name": "pkg.b", "section_definitions": [
            _section("B1", "/packages/0/section_definitions/0", z="float"),
            _section("A1", "/packages/0/section_definitions/1", x="int"),  # override, other type
        ]},
    ]
}


def test_modules_whose_bases_cycle_import_in_any_order(tmp_path: Path) -> None:
    assert generate(CYCLIC, tmp_path, package_name="cyc") == 0
    files = sorted(p.name for p in (tmp_path / "cyc").glob("*.py"))
    assert [f for f in files if f.startswith("_cycle_")], files
    for first in ("pkg_a", "pkg_b"):
        code = (
            f"import cyc.{first}, cyc\n"
            "A2 = cyc.get_class('pkg.a.A2'); B1 = cyc.get_class('pkg.b.B1')\n"
            "assert issubclass(A2, B1) and issubclass(B1, cyc.get_class('pkg.a.A1'))\n"
            "assert A2.__name__ == 'pkg_a_A2' and cyc.pkg_a.A2 is A2\n"
            "assert A2(x='s', y=1, z=2.0).y == 1\n"
        )
        result = run_python(code, tmp_path)
        assert result.returncode == 0, result.stderr
    result = run_mypy(tmp_path, "cyc")
    assert result.returncode == 0, result.stdout


def test_incompatible_override_gets_a_precise_ignore() -> None:
    files = generate_files(CYCLIC)
    cycle = next(t for n, t in files.items() if n.startswith("_cycle_"))
    line = next(ln for ln in cycle.splitlines() if ln.strip().startswith("x: int | None"))
    assert line.endswith("# type: ignore[assignment]")
