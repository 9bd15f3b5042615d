"""Writing, ``--check`` and the command-line hooks."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from archivemap_codegen import add_arguments, generate, run

from .conftest import SAMPLE_METAINFO, run_python


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_check_reports_missing_changed_and_extra_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pkg"
    assert run(_args(str(SAMPLE_METAINFO), "-o", str(out), "--check")) == 1
    assert "missing" in capsys.readouterr().err
    assert run(_args(str(SAMPLE_METAINFO), "-o", str(out))) == 0
    assert run(_args(str(SAMPLE_METAINFO), "-o", str(out), "--check")) == 0
    capsys.readouterr()

    (out / "runschema_run.py").write_text("# edited\n")
    (out / "stale_module.py").write_text("x = 1\n")
    (out / "runschema_system.py").unlink()
    assert generate(SAMPLE_METAINFO, out, check=True) == 1
    err = capsys.readouterr().err
    assert "runschema_run.py (changed)" in err
    assert "stale_module.py (extra)" in err
    assert "runschema_system.py (missing)" in err

    assert generate(SAMPLE_METAINFO, out) == 0
    assert generate(SAMPLE_METAINFO, out, check=True) == 1  # the hand-written extra file stays
    (out / "stale_module.py").unlink()
    assert generate(SAMPLE_METAINFO, out, check=True) == 0


def test_rewriting_removes_generated_files_that_are_gone(tmp_path: Path) -> None:
    out = tmp_path / "pkg"
    generate(SAMPLE_METAINFO, out)
    old = (out / "runschema_run.py").read_text()
    (out / "old_package.py").write_text(old)  # a generated module from an earlier metainfo
    generate(SAMPLE_METAINFO, out)
    assert not (out / "old_package.py").exists()


def test_output_is_identical_across_runs(tmp_path: Path) -> None:
    generate(SAMPLE_METAINFO, tmp_path / "a")
    generate(SAMPLE_METAINFO, tmp_path / "b")
    a = {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()}
    b = {p.name: p.read_bytes() for p in (tmp_path / "b").iterdir()}
    assert a == b


def test_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert run(_args(str(bad), "-o", str(tmp_path / "x"))) == 2
    assert "error" in capsys.readouterr().err


def test_module_entry_point(tmp_path: Path) -> None:
    result = run_python(
        "import sys, runpy; sys.argv = ['archivemap_codegen', %r, '-o', %r, '--check'];"
        "runpy.run_module('archivemap_codegen', run_name='__main__')" % (str(SAMPLE_METAINFO), str(tmp_path / "p")),
        tmp_path,
    )
    assert result.returncode == 1 and "missing" in result.stderr
