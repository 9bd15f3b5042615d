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
    out = capsys.readouterr().out
    assert out.strip().endswith(" eV")
    assert main(["show", str(path), "run[0].calculation[-1].energy.total.value", "--unit", "kJ/mol"]) == 0
    molar = capsys.readouterr().out.split()
    assert molar[1] == "kJ/mol" and float(molar[0]) == __import__("pytest").approx(float(out.split()[0]) * 96.48533212, rel=1e-9)


def test_show_uses_display_units_unless_asked(capsys) -> None:
    path = SAMPLES / "archives" / "si2-single-point.archive.json"
    assert main(["show", str(path), "run[0].system[0].atoms.lattice_vectors"]) == 0
    assert capsys.readouterr().out.strip().endswith("Å")
    assert main(["show", str(path), "run[0].system[0].atoms.lattice_vectors", "--units", "si"]) == 0
    assert capsys.readouterr().out.strip().endswith(" m")
    assert main(["show", str(path), "run[0].calculation[0]"]) == 0
    assert " eV" in capsys.readouterr().out


def test_errors_are_one_line_with_exit_1(capsys) -> None:
    assert main(["show", str(SAMPLES / "nope.json"), "--metainfo", str(SAMPLES / "metainfo.json")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("archivemap show:") and "\n" not in err


def test_query_fetch_and_show_against_the_local_server(tmp_path, capsys) -> None:
    from archivemap.server import LocalServer

    with LocalServer(SAMPLES / "archives") as srv:
        assert main(["query", "--url", srv.url, "--query", '{"results.material.elements": ["Ti", "O"]}', "--no-progress"]) == 0
        out, err = capsys.readouterr()
        entries = [json.loads(line) for line in out.splitlines()]
        assert len(entries) == 1 and "1 entries" in err
        entry_id = entries[0]["entry_id"]
        target = tmp_path / "partial.json"
        assert main(["fetch", entry_id, "--url", srv.url, "--required", '{"workflow": "*"}', "-o", str(target)]) == 0
        assert set(json.loads(target.read_text())) <= {"workflow", "m_ref_archives"}
        capsys.readouterr()
        assert main(["show", entry_id, "workflow[0].calculation_result_ref.energy.total.value", "--url", srv.url,
                     "--metainfo", str(SAMPLES / "metainfo.json"), "--required", '{"workflow": "*"}', "--unit", "eV"]) == 0
        assert capsys.readouterr().out.strip().endswith(" eV")
        assert main(["fetch", "no-such-entry", "--url", srv.url]) == 1
        assert "NotFoundError" in capsys.readouterr().err


def test_usage_errors_exit_2() -> None:
    import pytest

    with pytest.raises(SystemExit) as info:
        main(["no-such-command"])
    assert info.value.code == 2


def test_graph_formats(tmp_path, capsys) -> None:
    import networkx as nx

    folder = str(SAMPLES / "archives")
    assert main(["graph", folder, "--format", "graphml", "-o", str(tmp_path / "g.graphml")]) == 0
    assert nx.read_graphml(tmp_path / "g.graphml").number_of_edges() > 0
    assert main(["graph", folder, "--format", "dot"]) == 0
    assert capsys.readouterr().out.startswith(("digraph", "strict digraph"))
    assert main(["graph", folder, "--format", "dot", "-o", str(tmp_path / "g.dot")]) == 0
    assert f"wrote {tmp_path / 'g.dot'}" in capsys.readouterr().err  # as every other format says
    assert (tmp_path / "g.dot").read_text().startswith(("digraph", "strict digraph"))
    assert main(["graph", folder, "--format", "png", "-o", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"


def test_graph_of_an_entry_on_a_server(tmp_path, capsys) -> None:
    """`graph ENTRY_ID --url URL` draws that entry's archive (the entry id was read as a file
    name: FileNotFoundError)."""
    from archivemap.server import LocalServer

    with LocalServer(SAMPLES / "archives") as srv:
        assert main(["query", "--url", srv.url, "--no-progress", "--max", "1"]) == 0
        entry_id = json.loads(capsys.readouterr().out.splitlines()[0])["entry_id"]
        assert main(["graph", entry_id, "--url", srv.url, "--metainfo", str(SAMPLES / "metainfo.json"),
                     "--format", "dot", "--no-progress"]) == 0
        out = capsys.readouterr().out
    assert out.startswith(("digraph", "strict digraph")) and entry_id in out and "->" in out


def test_serve_prints_its_url_and_answers(tmp_path) -> None:
    import subprocess
    import sys

    import requests

    proc = subprocess.Popen(
        [sys.executable, "-m", "archivemap.cli", "serve", str(SAMPLES / "archives"), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "serving 3 entries at http://127.0.0.1:" in line
        url = line.split(" at ")[1].split()[0]
        answer = requests.post(f"{url}/entries/query", json={}, timeout=10).json()
        assert answer["pagination"]["total"] == 3
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_debug_shows_the_traceback_on_any_subcommand(capsys) -> None:
    import pytest

    with pytest.raises(FileNotFoundError):
        main(["show", str(SAMPLES / "nope.json"), "--metainfo", str(SAMPLES / "metainfo.json"), "--debug"])
    with pytest.raises(FileNotFoundError):
        main(["--debug", "demo", "--samples", str(SAMPLES / "nope")])
