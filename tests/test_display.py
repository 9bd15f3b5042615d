"""Text and HTML display of sections: bounded, escaped, iterative."""

from __future__ import annotations

from typing import Any

import pytest

from archivemap.views.display import format_value, html, pretty
from archivemap.archive.load import load
from tests.conftest import SHARED, needs_shared


@pytest.fixture(scope="module")
def lammps(schema_2_0: Any) -> Any:
    return load(SHARED / "archives" / "lammps-methane-nvt-md.parsed.archive.json", schema_2_0)


@needs_shared
def test_pretty_tree_with_units_and_references(lammps: Any) -> None:
    text = pretty(lammps.run[0].calculation[0], max_depth=5)
    lines = text.splitlines()
    assert lines[0] == "Calculation /run/0/calculation/0"
    assert "  system_ref -> #/run/0/system/0" in lines
    assert "  temperature = 99.6997 K" in lines
    assert "    total: EnergyEntry" in lines
    assert "      value = 3.45964e-20 J" in lines
    # the reference was shown, not resolved
    with pytest.raises(AttributeError):
        object.__getattribute__(lammps.run[0].calculation[0], "system_ref")


@needs_shared
def test_big_arrays_are_summarised(lammps: Any) -> None:
    text = pretty(lammps.run[0].system[0])
    (positions,) = [line for line in text.splitlines() if "positions =" in line]
    assert "..." in positions and positions.endswith("shape (320, 3) m")
    assert len(positions) < 400
    (labels,) = [line for line in text.splitlines() if "labels =" in line]
    assert labels.endswith("… 315 more]")


@needs_shared
def test_depth_and_items_are_capped(lammps: Any) -> None:
    text = pretty(lammps, max_depth=2, max_items=3)
    assert "    calculation[2]: Calculation …" in text
    assert "calculation[3]" not in text
    assert "    calculation: … 98 more" in text
    # nothing below the cap was converted
    calc = lammps.run[0].calculation[2]
    with pytest.raises(AttributeError):
        object.__getattribute__(calc, "energy")
    assert len(pretty(lammps, max_depth=0).splitlines()) == 1


@needs_shared
def test_html_tree(lammps: Any) -> None:
    out = html(lammps.run[0].calculation[0])
    assert out.startswith('<div class="archivemap-section"') and out.endswith("</div>")
    assert out.count("<details") == out.count("</details>")
    assert out.count("<div") == out.count("</div>")
    assert '<summary title="runschema.calculation.Calculation">Calculation /run/0/calculation/0</summary>' in out
    assert lammps.run[0].calculation[0]._repr_html_() == out


def test_html_escapes_archive_data(schema_2_0: Any) -> None:
    evil = '<script>alert("x")</script>'
    archive = load(
        {"metadata": {"entry_name": evil, "upload_id": "&amp;"}, "run": [{"program": {"name": evil}}], "<img src=x>": 1},
        schema_2_0,
    )
    out = html(archive, max_depth=5)
    assert "<script" not in out and "<img" not in out
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in out
    assert "&amp;amp;" in out
    assert out.count("<details") == out.count("</details>")


def test_pretty_of_deep_nesting_is_iterative(schema_2_0: Any) -> None:
    node: dict[str, Any] = {"name": "leaf"}
    for i in range(10_000):
        node = {"name": f"s{i}", "inner_section_definitions": [node]}
    archive = load({"definitions": {"section_definitions": [node]}}, schema_2_0)
    assert len(pretty(archive, max_depth=5).splitlines()) < 20
    full = pretty(archive, max_depth=20_000)
    assert full.splitlines()[-1].strip() == "name = 'leaf'"
    assert html(archive, max_depth=20_000).count("<details") == 10_003


def test_format_value() -> None:
    import numpy as np

    from archivemap.units import registry

    ureg = registry()
    assert format_value(np.arange(1000.0) * ureg.meter).endswith("shape (1000,) m")
    assert "..." in format_value(np.arange(1000.0))
    assert format_value(np.float64(2.5) * ureg.dimensionless) == "2.5"
    assert format_value("x" * 500).endswith("…'")
    assert format_value({"a": 1}) == "{'a': …}"
    assert format_value([1, 2, 3, 4, 5, 6, 7], max_items=2) == "[1, 2, … 5 more]"


def test_ipython_pretty_hook(schema_2_0: Any) -> None:
    archive = load({"metadata": {"entry_id": "E"}}, schema_2_0)

    seen: list[str] = []

    class P:
        def text(self, s: str) -> None:
            seen.append(s)

    archive._repr_pretty_(P(), False)
    assert seen == [pretty(archive)]
