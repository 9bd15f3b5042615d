"""The command line: demo offline on samples, exit codes, one-line errors."""

from __future__ import annotations

import json

from archivemap.cli import main

from .conftest import SAMPLES


def test_demo_prints_energies_in_ev(capsys) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "eV" in out and "calculation_result_ref" in out


def test_demo_json(capsys) -> None:
    assert main(["demo", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == len(list((SAMPLES / "archives").glob("*.archive.json")))
    assert all(row["energy_eV"] < 0 for row in rows)


def test_show_a_value_with_unit(capsys) -> None:
    path = sorted((SAMPLES / "archives").glob("*.archive.json"))[0]
    assert main(["show", str(path), "run[0].calculation[-1].energy.total.value", "--unit", "eV"]) == 0
    assert "electron_volt" in capsys.readouterr().out


def test_errors_are_one_line_with_exit_1(capsys) -> None:
    assert main(["show", str(SAMPLES / "nope.json"), "--metainfo", str(SAMPLES / "metainfo.json")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("archivemap show:") and "\n" not in err
