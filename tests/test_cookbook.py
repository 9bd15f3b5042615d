"""The README's cookbook runs on the real archives: every ``python cookbook`` block, in order,
in one namespace, from a scratch folder beside a link to ../shared (the pictures land there).

The cookbook blocks are fenced as ``python cookbook`` so that ``tests/test_readme.py`` (which
runs the tutorial's plain ``python`` blocks on the samples) leaves them to this test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import REPO, SHARED

README = (REPO / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python cookbook\n(.*?)```", README, flags=re.S)

pytestmark = pytest.mark.shared


def test_the_cookbook_is_there() -> None:
    assert len(BLOCKS) >= 6
    text = "\n".join(BLOCKS)
    for recipe in ("kJ/mol", "band gap", "to_trajectory", "plot_md", "eln-", "reference_graph"):
        assert recipe in text


def test_cookbook_blocks_run_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for extra in ("pandas", "ase", "matplotlib", "pyvis"):
        pytest.importorskip(extra, reason=f"the cookbook uses {extra} (pip install -e '.[dev]')")
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "shared").symlink_to(SHARED.parent)  # ../shared/nomad-data from the scratch folder
    monkeypatch.chdir(work)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    namespace: dict = {"__name__": "__cookbook__"}
    for i, code in enumerate(BLOCKS):
        try:
            exec(compile(code, f"README.md cookbook block {i + 1}", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the failure message is the point
            pytest.fail(f"README cookbook block {i + 1} failed: {type(exc).__name__}: {exc}\n{code}")
        finally:
            plt.close("all")
    out = capsys.readouterr().out
    # what the recipes print, as a scientist reads it
    assert "-86.7194" in out and "kJ/mol" in out and "-8367.15" in out and "NaN" in out
    assert "band gap of Si16: 0.645 eV" in out
    assert "AlAs 45.7" in out and "6 steps" in out
    assert "99.779" in out  # the mean temperature of the NVT run
    assert "SubstanceExtended SubstanceExtended1 from AkeMNBjzHdEWJmv2w8GVaw9drWRu" in out
    assert "513 sections -> 12 boxes" in out
    # the pictures and files the README describes exist and are real
    from tests.test_plots import assert_picture

    for picture in ("si16-dos.png", "alas-convergence.png", "methane-md.png", "graph_lammps.png"):
        assert_picture(work / picture)
    assert (work / "alas-optimisation.extxyz").read_text().count("Lattice=") == 6
    assert (work / "graph_lammps.html").stat().st_size > 10_000
    assert sorted(p.name for p in REPO.glob("*.png")) == []  # nothing written into the repository
