"""The command line as a matrix: every command × good arguments, a missing file, bad JSON,
a server that is down, a URL without /api/v1, a typo in ``required``.

Each failing cell must print exactly one clear line on stderr (starting ``archivemap CMD:``
and naming the argument or the URL), exit with the right code (1 work, 2 usage), and put
nothing on stdout; each good cell prints only results on stdout.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from archivemap.cli import main
from archivemap.server import LocalServer
from tests.conftest import SAMPLES

ARCHIVE = SAMPLES / "archives" / "si2-single-point.archive.json"
ENTRY = "133Gj4_SgWS0a0dp1Cv0h1JjOfB8"
METAINFO = str(SAMPLES / "metainfo.json")
ENERGY = "run[0].calculation[-1].energy.total.value"


@pytest.fixture(scope="module")
def server() -> Any:
    with LocalServer(SAMPLES / "archives") as srv:
        yield srv


@pytest.fixture(scope="module")
def down_url() -> str:
    """A URL where nothing listens: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/v1"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cli")
    (folder / "broken.json").write_text('{"run": [', encoding="utf-8")
    (folder / "not-an-archive.json").write_text('{"provenance": "notes"}', encoding="utf-8")
    return {"broken": folder / "broken.json", "not_archive": folder / "not-an-archive.json", "missing": folder / "nope.json",
            "out": folder}


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # usage errors: argparse exits
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


Case = tuple[str, Callable[[Any, str, dict[str, Path]], list[str]], int, str]

CASES: list[Case] = [
    # -- good arguments: results on stdout, exit 0
    ("show good", lambda s, d, f: ["show", str(ARCHIVE), ENERGY], 0, "eV"),
    ("show good kJ/mol", lambda s, d, f: ["show", str(ARCHIVE), ENERGY, "--unit", "kJ/mol"], 0, "kJ/mol"),
    ("show remote good", lambda s, d, f: ["show", ENTRY, ENERGY, "--url", s.url, "--metainfo", METAINFO], 0, "eV"),
    ("graph good", lambda s, d, f: ["graph", str(ARCHIVE), "--no-progress"], 0, "calculation"),
    ("fetch good", lambda s, d, f: ["fetch", ENTRY, "--url", s.url, "--required", '{"workflow2": "*"}'], 0, '"workflow2"'),
    ("query good", lambda s, d, f: ["query", "--url", s.url, "--query", '{"results.material.elements": ["Si"]}', "--no-progress"], 0, '"entry_id"'),
    ("demo good", lambda s, d, f: ["demo", "--json"], 0, '"energy_eV"'),
    ("codegen good", lambda s, d, f: ["codegen", METAINFO, "-o", str(f["out"] / "classes")], 0, ""),
    # -- a missing file
    ("show missing file", lambda s, d, f: ["show", str(f["missing"]), "--metainfo", METAINFO], 1, "no such file or folder"),
    ("graph missing file", lambda s, d, f: ["graph", str(f["missing"]), "--metainfo", METAINFO], 1, "no such file or folder"),
    ("codegen missing file", lambda s, d, f: ["codegen", str(f["missing"]), "-o", str(f["out"] / "x")], 2, "nope.json"),
    ("demo missing samples", lambda s, d, f: ["demo", "--samples", str(f["missing"])], 1, "no samples"),
    # -- bad JSON: in a file, in an argument
    ("show bad JSON file", lambda s, d, f: ["show", str(f["broken"]), "--metainfo", METAINFO], 1, "broken.json"),
    ("show not an archive", lambda s, d, f: ["show", str(f["not_archive"]), "--metainfo", METAINFO], 1, "is not an archive"),
    ("graph bad JSON file", lambda s, d, f: ["graph", str(f["broken"]), "--metainfo", METAINFO], 1, "broken.json"),
    ("codegen of an archive", lambda s, d, f: ["codegen", str(ARCHIVE), "-o", str(f["out"] / "y")], 2, "is not a metainfo export"),
    ("query bad --query", lambda s, d, f: ["query", "--url", s.url, "--query", '{"a": }'], 2, "argument --query: not JSON"),
    ("query --query not an object", lambda s, d, f: ["query", "--url", s.url, "--query", "[1]"], 2, "argument --query: expected a JSON object"),
    ("fetch bad --required", lambda s, d, f: ["fetch", ENTRY, "--url", s.url, "--required", '{"run": *}'], 2, "argument --required: not JSON"),
    ("show bad --required", lambda s, d, f: ["show", ENTRY, "--url", s.url, "--required", "{run}", "--metainfo", METAINFO], 2, "argument --required"),
    ("show bad --unit", lambda s, d, f: ["show", str(ARCHIVE), ENERGY, "--unit", "parsecs_per_fortnight_x"], 2, "argument --unit"),
    ("show --unit of another dimension", lambda s, d, f: ["show", str(ARCHIVE), ENERGY, "--unit", "angstrom"], 1, "DimensionalityError"),
    # -- a server that is down
    ("fetch down server", lambda s, d, f: ["fetch", ENTRY, "--url", d], 1, "cannot reach"),
    ("query down server", lambda s, d, f: ["query", "--url", d, "--no-progress"], 1, "cannot reach"),
    ("show down server", lambda s, d, f: ["show", ENTRY, ENERGY, "--url", d, "--metainfo", METAINFO], 1, "cannot reach"),
    # -- a URL without /api/v1
    ("fetch URL without /api/v1", lambda s, d, f: ["fetch", ENTRY, "--url", s.url.removesuffix("/api/v1")], 1, "try --url http://"),
    ("query URL without /api/v1", lambda s, d, f: ["query", "--url", s.url.removesuffix("/api/v1"), "--no-progress"], 1, "try --url http://"),
    ("show URL without /api/v1", lambda s, d, f: ["show", ENTRY, ENERGY, "--url", s.url.removesuffix("/api/v1"), "--metainfo", METAINFO], 1, "try --url http://"),
    # -- a typo in required
    ("fetch typo in required", lambda s, d, f: ["fetch", ENTRY, "--url", s.url, "--required", '{"workflowz": "*"}'], 1, "did you mean 'workflow'"),
    ("fetch typo in required, with schema", lambda s, d, f: ["fetch", ENTRY, "--url", s.url, "--required", '{"runn": "*"}', "--metainfo", METAINFO], 1, "did you mean 'run'"),
    ("show typo in required", lambda s, d, f: ["show", ENTRY, ENERGY, "--url", s.url, "--metainfo", METAINFO, "--required", '{"workflowz": "*"}'], 1, "did you mean 'workflow'"),
    ("show typo in path", lambda s, d, f: ["show", str(ARCHIVE), "run[0].calculation[-1].energy.totl"], 1, "has no property 'totl'"),
    # -- usage
    ("no such command", lambda s, d, f: ["no-such-command"], 2, "invalid choice"),
    ("fetch without --url", lambda s, d, f: ["fetch", ENTRY], 2, "--url"),
]


@pytest.mark.parametrize("name, argv, code, expected", CASES, ids=[c[0] for c in CASES])
def test_cli_matrix(name: str, argv: Any, code: int, expected: str, server: Any, down_url: str,
                    files: dict[str, Path], capsys: pytest.CaptureFixture[str],
                    monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    slept: list[float] = []  # the client's back-off waits: what it chose, not a clock reading
    spy = SimpleNamespace(monotonic=time.monotonic, sleep=lambda s: slept.append(s) or time.sleep(s))
    monkeypatch.setattr("archivemap.remote.client.time", spy)
    got, out, err = _run(argv(server, down_url, files), capsys)
    assert got == code, f"{name}: exit {got}, stderr {err!r}"
    if code == 0:
        assert expected in out
        if out.lstrip().startswith(("{", "[")):  # JSON results parse: nothing else was mixed in
            lines = out.strip().splitlines()
            if len(lines) > 1 and all(line.startswith("{") and line.endswith("}") for line in lines):
                [json.loads(line) for line in lines]
            else:
                json.loads(out)
        return
    assert out == "", f"{name}: stdout must hold results only, got {out!r}"
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"{name}: one line expected on stderr, got {err!r}"
    assert lines[0].startswith("archivemap"), lines[0]
    assert expected in lines[0], lines[0]
    assert "Traceback" not in err
    if "down server" in name:
        assert sum(slept) < 2.0, f"{name}: a refused connection waited {sum(slept):.1f} s in back-off"
        assert down_url in lines[0] and "connection refused" in lines[0]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import archivemap

    code, out, err = _run(["--version"], capsys)
    assert code == 0 and out.strip() == f"archivemap {archivemap.__version__}" and err == ""


def test_folder_commands_keep_going_and_summarise(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for source in (SAMPLES / "archives").glob("*.json"):
        (tmp_path / source.name).write_bytes(source.read_bytes())
    (tmp_path / "notes.json").write_text('{"comment": "not an archive"}', encoding="utf-8")
    (tmp_path / "a-broken.json").write_text('{"run": [', encoding="utf-8")
    code, out, err = _run(["show", str(tmp_path), ENERGY, "--metainfo", METAINFO], capsys)
    assert code == 1  # one broken archive
    assert len(out.splitlines()) == 3 and all(line.endswith(" eV") for line in out.splitlines())
    assert "skipped 2 file(s) that are not archives" not in err  # a broken file is a failure, not a skip
    assert "skipped 1 file(s) that are not archives (notes.json)" in err
    assert "1 of 4 archive(s) failed" in err and "a-broken.json" in err
    # an entry lacking the path does not stop the others either
    code, out, err = _run(["show", str(tmp_path), "run[0].calculation[2].energy.total.value", "--metainfo", METAINFO], capsys)
    # (absent is data, not a failure: listed apart, exit status 0 once the broken file is gone)
    assert code == 1 and "si2-geometry-optimization.archive.json" in out and "out of range" in err
    assert "archive(s) do not have it:" in err and "1 of 4 archive(s) failed" in err
    (tmp_path / "a-broken.json").unlink()
    code, out, err = _run(["show", str(tmp_path), "run[0].calculation[2].energy.total.value", "--metainfo", METAINFO], capsys)
    assert code == 0 and "failed" not in err and "do not have it" in err
    code, out, err = _run(["graph", str(tmp_path), "--metainfo", METAINFO, "--no-progress"], capsys)
    assert code == 0 and "calculation" in out and "notes.json" in err
    code, out, err = _run(["show", str(tmp_path), ENERGY, "--metainfo", METAINFO, "--json"], capsys)
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["file"] for row in rows] == sorted(p.name for p in (SAMPLES / "archives").glob("*.json"))


def test_broken_pipe_is_quiet(server: Any) -> None:
    """``archivemap fetch … | head -1``: no BrokenPipeError, no traceback."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "archivemap.cli", "fetch", ENTRY, "--url", server.url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # the reader goes away
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=30)
    assert err == "" and code in (0, 141)


def test_nothing_but_results_on_stdout_of_a_real_process(server: Any) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "archivemap.cli", "query", "--url", server.url, "--query", "{}"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0
    assert [json.loads(line)["entry_id"] for line in result.stdout.splitlines()]
    assert result.stderr.strip().endswith("3 entries")
