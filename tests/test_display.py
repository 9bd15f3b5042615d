"""Text and HTML display of sections: bounded, escaped, iterative, in display units, no dead ends."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from archivemap.archive.load import load
from archivemap.views.display import format_value, html, pretty, python_path, summary
from archivemap.views.units import display_units
from tests.conftest import SHARED


@pytest.fixture(scope="module")
def lammps(schema_2_0: Any) -> Any:
    return load(SHARED / "archives" / "lammps-methane-nvt-md.parsed.archive.json", schema_2_0)


@pytest.fixture(scope="module")
def vasp(schema_2_0: Any) -> Any:
    return load(SHARED / "archives" / "vasp-si16-singlepoint.recorded.archive.json", schema_2_0)


@pytest.mark.shared
def test_pretty_tree_with_display_units_and_references(lammps: Any) -> None:
    text = pretty(lammps.run[0].calculation[0], max_depth=5)
    lines = text.splitlines()
    assert lines[0] == "Calculation /run/0/calculation/0"
    assert "  system_ref -> #/run/0/system/0" in lines
    assert "  temperature = 99.699704 K" in lines
    assert "  pressure = -0.2879316656 GPa" in lines  # stored in Pa
    assert "  time = 0 ps" in lines and "  step = 0" in lines
    assert "    total: EnergyEntry" in lines
    assert "      value = 0.2159336611 eV" in lines  # stored: 3.459638663e-20 J
    # the stored value did not change, and the reference was shown, not resolved
    assert lammps.run[0].calculation[0].energy.total.value.units == "joule"
    with pytest.raises(AttributeError):
        object.__getattribute__(lammps.run[0].calculation[0], "system_ref")


@pytest.mark.shared
def test_display_units_can_be_switched_back_to_what_is_stored(lammps: Any) -> None:
    with display_units("si"):
        assert "      value = 3.459638663e-20 J" in pretty(lammps.run[0].calculation[0], max_depth=5).splitlines()
    with display_units("materials", energy="kJ/mol"):
        assert "      value = 20.83443101 kJ/mol" in pretty(lammps.run[0].calculation[0], max_depth=5).splitlines()
    assert "      value = 0.2159336611 eV" in pretty(lammps.run[0].calculation[0], max_depth=5).splitlines()


@pytest.mark.shared
def test_big_arrays_are_summarised_in_angstrom(lammps: Any) -> None:
    text = pretty(lammps.run[0].system[0])
    (positions,) = [line for line in text.splitlines() if "positions =" in line]
    assert "..." in positions and positions.endswith("shape (320, 3) Å")
    assert len(positions) < 400
    (labels,) = [line for line in text.splitlines() if "labels =" in line]
    assert labels.endswith("… 315 more]")


@pytest.mark.shared
def test_depth_and_items_are_capped(lammps: Any) -> None:
    text = pretty(lammps, max_depth=2, max_items=3)
    assert "    calculation[2]: Calculation …" in text
    assert "calculation[3]" not in text
    assert "    calculation: … 98 more" in text
    # nothing below the cap was converted
    calc = lammps.run[0].calculation[2]
    with pytest.raises(AttributeError):
        object.__getattribute__(calc, "energy")
    only_root = pretty(lammps, max_depth=0).splitlines()
    assert only_root[0] == "EntryArchive /" and all(line.startswith("  # ") for line in only_root[1:])


@pytest.mark.shared
@pytest.mark.parametrize(
    "name, facts",
    [
        ("vasp-si16-singlepoint.recorded", {"entry id": "1WGSYo1RrGFEIcM17Re4kjHC7k6p", "formula": "Si16",
                                            "program": "VASP 4.6.35 3Apr08 complex parallel LinuxIFC",
                                            "method": "DFT, GGA_C_PBE, GGA_X_PBE, plane waves", "workflow": "single_point",
                                            "calculations": "1"}),
        ("lammps-methane-nvt-md.parsed", {"program": "LAMMPS 10 Feb 2015", "workflow": "MolecularDynamics (NVT)",
                                          "calculations": "101"}),
        ("fhiaims-alas-geometry-optimization.parsed", {"formula": "AlAs", "workflow": "GeometryOptimization",
                                                       "calculations": "6"}),
    ],
)
def test_archive_summary(schema_2_0: Any, name: str, facts: dict[str, str]) -> None:
    archive = load(SHARED / "archives" / f"{name}.archive.json", schema_2_0)
    found = dict(summary(archive))
    assert {k: found.get(k) for k in facts} == facts
    assert summary(archive.metadata) == []  # only roots have one


@pytest.mark.shared
def test_text_from_the_archive_cannot_steer_the_terminal(schema_2_0: Any) -> None:
    # a right-to-left override would turn the rest of the line around, an escape recolour it
    archive = load({"metadata": {"entry_id": "E", "entry_name": "Si\u202e)lanif(\x1b[31m"},
                    "run": [{"program": {"name": "VASP\u2066x"},
                             "calculation": [{"system_ref": "#/run/0/system/0\u202e"}]}]}, schema_2_0)
    text = pretty(archive, max_depth=4)
    assert "\u202e" not in text and "\x1b" not in text and "\u2066" not in text
    rows = dict(summary(archive))
    assert rows["entry"] == "Si\\u202e)lanif(\\u001b[31m"
    assert rows["program"] == "VASP\\u2066x"
    assert "#/run/0/system/0\\u202e" in pretty(archive.run[0].calculation[0])
    # keys the schema does not know are archive text too; and every other invisible character
    odd = load({"run": [{"x_unknown\x1b[2J\u202eevil": 1, "x_b\u2028\u061c\u00ad\u2060": 2}]}, schema_2_0)
    shown = pretty(odd.run[0]) + html(odd.run[0])
    for char in "\x1b\u202e\u2028\u061c\u00ad\u2060":
        assert char not in shown, repr(char)
    assert "x_unknown\\u001b[2J\\u202eevil" in pretty(odd.run[0])


@pytest.mark.shared
def test_summary_never_downloads_or_fails(schema_2_0: Any) -> None:
    archive = load({"metadata": {"entry_id": "E"}, "run": [{"calculation": [{}]}], "workflow": "not a list"}, schema_2_0)
    assert dict(summary(archive)) == {"entry id": "E", "calculations": "1"}


@pytest.mark.shared
def test_html_root_opens_with_a_summary_and_has_no_dead_ends(vasp: Any, lammps: Any) -> None:
    out = html(vasp)
    assert out.startswith('<div class="archivemap-section">') and out.endswith("</div>")
    assert out.count("<details") == out.count("</details>")
    assert out.count("<div") == out.count("</div>")
    table = out[out.index('<table class="am-summary">'): out.index("</table>")]
    for text in ("entry id", "1WGSYo1RrGFEIcM17Re4kjHC7k6p", "Si16", "VASP", "single_point", "-86.71940396 eV"):
        assert text in table
    # items left out say how to get them, and deep sections how to open them
    assert "archive.metadata.section_defs[5:]" in out
    deep = html(lammps, max_depth=2)
    assert "display <code>archive.run[0].calculation[0]</code> to open it" in deep
    assert "archive.run[0].calculation[5:]" in deep


@pytest.mark.shared
def test_html_values_read_as_a_person_writes_them(vasp: Any) -> None:
    out = html(vasp, max_depth=8)
    for noise in ("np.", "numpy", "datetime.", "tzinfo", "np.True_", "np.int"):
        assert noise not in out
    assert "upload_create_time</span> <span class=\"\">= 2022-12-14 10:59:19 UTC" in out
    assert "= 5.6385 eV" in out  # energy.highest_occupied, stored in J
    text = pretty(vasp.run[0].calculation[0], max_depth=4)
    assert re.search(r"stress.*\n.*\n\s+value = .* shape \(3, 3\) GPa", text)
    assert "shape (16, 3) eV/Å" in text


@pytest.mark.shared
def test_html_tree(lammps: Any) -> None:
    out = html(lammps.run[0].calculation[0])
    assert out.count("<details") == out.count("</details>")
    assert out.count("<div") == out.count("</div>")
    assert ('<summary title="runschema.calculation.Calculation"><span class="am-root">Calculation</span> '
            '<span class="am-t">/run/0/calculation/0</span></summary>') in out
    assert lammps.run[0].calculation[0]._repr_html_() == out


def test_html_escapes_archive_data(schema_2_0: Any) -> None:
    evil = '<script>alert("x")</script>'
    archive = load(
        {"metadata": {"entry_name": evil, "upload_id": "&amp;"}, "run": [{"program": {"name": evil}}], "<img src=x>": 1},
        schema_2_0,
    )
    out = html(archive, max_depth=5)
    assert "<script>" not in out and "<img" not in out
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
    assert html(archive, max_depth=20_000, max_rows=None).count("<details") == 10_003
    bounded = html(archive, max_depth=20_000)  # the default row budget ends in a way to go on
    assert bounded.count("<details") < 2_000 and "to open it" in bounded


def test_format_value() -> None:
    import datetime

    from archivemap.units import registry

    ureg = registry()
    assert format_value(np.arange(1000.0) * ureg.meter).endswith("shape (1000,) Å")
    with display_units("si"):
        assert format_value(np.arange(1000.0) * ureg.meter).endswith("shape (1000,) m")
    assert "..." in format_value(np.arange(1000.0))
    assert format_value(np.float64(2.5) * ureg.dimensionless) == "2.5"
    assert format_value("x" * 500).endswith("…'")
    assert format_value({"a": 1}) == "{'a': …}"
    assert format_value([1, 2, 3, 4, 5, 6, 7], max_items=2) == "[1, 2, … 5 more]"
    assert format_value(np.int32(0)) == "0" and format_value(np.True_) == "True"
    assert format_value([np.int64(3), np.bool_(False)]) == "[3, False]"
    logs = [{"event": "a", "level": "INFO"}] * 29
    assert format_value(logs) == "[29 objects with event, level]"
    stamp = datetime.datetime(2022, 12, 14, 10, 59, 19, 642000, tzinfo=datetime.timezone.utc)
    assert format_value(stamp) == "2022-12-14 10:59:19 UTC"
    assert format_value(1567789228.0 * ureg.second) == "2019-09-06 17:00:28 UTC (1567789228 s)"
    assert format_value(1e-13 * ureg.second) == "0.1 ps"
    assert format_value(35.591 * ureg.second) == "35.591 s"  # a run time
    assert format_value(-1.3893980273911905e-17 * ureg.joule) == "-86.71940396 eV"
    # an all-electron total energy keeps its meV: SCF steps must not all read the same
    assert format_value(-144690.2132 * ureg.eV) == "-144690.2132 eV"
    assert format_value(-144690.2132 * ureg.eV) != format_value(-144690.2141 * ureg.eV)
    assert format_value(np.float32(0.1)) == "0.1"  # seven digits: the rest is float32 noise


def test_python_path(schema_2_0: Any) -> None:
    archive = load({"run": [{"calculation": [{}, {"energy": {}}]}], "workflow2": {"results": {}}}, schema_2_0)
    assert python_path(archive.run[0].calculation[1].energy) == "archive.run[0].calculation[1].energy"
    assert python_path(archive) == "archive"


def test_ipython_pretty_hook(schema_2_0: Any) -> None:
    archive = load({"metadata": {"entry_id": "E"}}, schema_2_0)

    seen: list[str] = []

    class P:
        def text(self, s: str) -> None:
            seen.append(s)

    archive._repr_pretty_(P(), False)
    assert seen == [pretty(archive)]


def test_chained_tab_completion_in_ipython(schema_2_0: Any) -> None:
    """``final.energy.<Tab>`` lists the schema's names under IPython's default settings."""
    pytest.importorskip("IPython", reason="IPython is not installed")
    from IPython.core.completer import provisionalcompleter
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    archive = load({"run": [{"calculation": [{"energy": {"total": {"value": 1e-19}}}]}]}, schema_2_0)
    shell.user_ns["archive"] = archive
    shell.user_ns["final"] = archive.run[0].calculation[-1]

    def completions(text: str) -> set[str]:
        with provisionalcompleter():
            return {c.text for c in shell.Completer.completions(text, len(text))}

    assert "energy" in completions("final.ener")
    assert "total" in completions("final.energy.tot")
    assert "total" in completions("archive.run[0].calculation[-1].energy.tot")


@pytest.mark.shared
def test_an_absent_sub_section_shows_that_it_is_not_set(schema_2_0: Any) -> None:
    archive = load(SHARED / "archives" / "exciting-ag-singlepoint.parsed.archive.json", schema_2_0)
    absent = archive.run[0].calculation[0].scf_iteration[-1].energy.zero_point
    path = "/run/0/calculation/0/scf_iteration/11/energy/zero_point"
    assert pretty(absent) == f"not set: {path}"
    assert path in html(absent) and "<span" in html(absent)
    assert "what it has: correlation, coulomb, exchange, fermi" in absent._repr_html_()  # set beside it
    assert absent._repr_html_().startswith("<code>Absent(")
    assert pretty(None) == "not set (None)" and pretty(3) == "not a section: 3"
    # values that are falsy or have no truth value are values, not absent sections
    assert pretty(0) == "not a section: 0" and pretty("") == "not a section: ''"
    assert pretty(np.array([1.0, 2.0])) == "not a section: [1., 2.] shape (2,)"
