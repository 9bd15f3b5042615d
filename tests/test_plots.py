"""Pictures on the real archives: plots (DOS, bands, MD, optimisation) and reference graphs.

Every picture is written to ``tmp_path`` and checked to exist and to be non-trivial (a PNG of
a reasonable size with ink on it and many colours), and its axes to name quantity and unit.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from archivemap.archive.load import load
from archivemap.errors import AbsentError
from archivemap.graph import reference_graph
from archivemap.graph.draw import collapse, draw, layered_layout, to_html
from tests.conftest import SHARED

matplotlib = pytest.importorskip("matplotlib", reason="the plot extra is not installed (pip install 'archivemap[plot]')")
matplotlib.use("Agg")
import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from archivemap.views.plots import plot_band_structure, plot_convergence, plot_dos, plot_md  # noqa: E402

ARCHIVES = {
    "vasp": "vasp-si16-singlepoint.recorded",
    "aims": "fhiaims-alas-geometry-optimization.parsed",
    "lammps": "lammps-methane-nvt-md.parsed",
    "exciting": "exciting-ag-singlepoint.parsed",
}


def assert_picture(path: Path, min_size: tuple[int, int] = (300, 300)) -> None:
    """A real picture: a PNG, big enough, with ink on it and more than a handful of colours."""
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 15_000
    image = matplotlib.image.imread(path)
    assert image.shape[0] >= min_size[1] and image.shape[1] >= min_size[0]
    rgb = image[..., :3]
    ink = (rgb.mean(axis=2) < 0.85).mean()
    assert 0.01 < ink < 0.6, f"{path.name}: {ink:.3f} of the pixels are ink"
    colours = np.unique((rgb * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 50


def _labels(fig: Any) -> list[str]:
    return [ax.get_xlabel() for ax in fig.axes] + [ax.get_ylabel() for ax in fig.axes]


@pytest.fixture(scope="module")
def archives(schema_2_0: Any) -> dict[str, Any]:
    return {key: load(SHARED / "archives" / f"{name}.archive.json", schema_2_0, archives=SHARED / "archives")
            for key, name in ARCHIVES.items()}


@pytest.fixture(autouse=True)
def _close_figures() -> Any:
    yield
    plt.close("all")


# -- plots -------------------------------------------------------------------------------------------
@pytest.mark.shared
def test_dos_from_vasp_eigenvalues(archives: dict[str, Any], tmp_path: Path) -> None:
    eigenvalues = archives["vasp"].run[0].calculation[0].eigenvalues[0]
    fig = plot_dos(eigenvalues, sigma=0.1)
    assert "E − E_VBM [eV]" in _labels(fig) and "DOS [states/eV/cell/spin]" in _labels(fig)
    (line,) = fig.axes[0].get_lines()[:1]
    x, y = line.get_data()
    # 24 k-points × 48 bands, normalised: the DOS integrates to 48 states
    assert np.trapezoid(y, x) == pytest.approx(48, rel=1e-3)
    fig.savefig(tmp_path / "dos_vasp.png", dpi=100)
    assert_picture(tmp_path / "dos_vasp.png")


@pytest.mark.shared
def test_dos_section_and_band_structure(schema_2_0: Any, tmp_path: Path) -> None:
    """A Dos and a BandStructure section as NOMAD stores them (free electrons in fcc Si)."""
    a = 5.43e-10
    recip = 2 * np.pi / a * np.array([[-1, 1, 1], [1, -1, 1], [1, 1, -1]], float)
    hbar2_2m = 6.104e-39  # J m², ħ²/2mₑ
    shells = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (-1, 0, 0), (0, -1, 0), (0, 0, -1), (1, 1, 1), (-1, -1, -1)]
    gs = [np.array(g) @ recip for g in shells]

    def segment(start: list[float], end: list[float], labels: list[str]) -> dict[str, Any]:
        ks = np.linspace(start, end, 30)
        e = np.sort([[hbar2_2m * np.sum((k @ recip + g) ** 2) for g in gs] for k in ks], axis=1)[:, :6]
        return {"kpoints": ks.tolist(), "energies": [e.tolist()], "endpoints_labels": labels}

    L, G, X = [0.5, 0.5, 0.5], [0.0, 0.0, 0.0], [0.0, 0.5, 0.5]
    energies = np.linspace(-1e-18, 2e-18, 400)
    archive = load({"run": [{"calculation": [{
        "band_structure_electronic": [{"reciprocal_cell": recip.tolist(), "energy_fermi": 1.3e-18,
                                       "segment": [segment(L, G, ["L", "Gamma"]), segment(G, X, ["Gamma", "X"])]}],
        "dos_electronic": [{"energies": energies.tolist(), "energy_fermi": 1.3e-18,
                            "total": [{"spin": 0, "value": (np.sqrt(np.clip(energies + 1e-18, 0, None)) * 1e28).tolist()}]}],
    }]}]}, schema_2_0)
    calc = archive.run[0].calculation[0]
    fig = plot_band_structure(calc.band_structure_electronic[0])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["L", "Γ", "X"]
    assert ax.get_ylabel() == "E − E_F [eV]" and ax.get_xlabel() == "wave vector along the path [1/Å]"
    fig.savefig(tmp_path / "bands.png", dpi=100)
    assert_picture(tmp_path / "bands.png")
    fig = plot_dos(calc.dos_electronic[0])
    assert fig.axes[0].get_xlabel() == "E − E_F [eV]" and fig.axes[0].get_ylabel() == "DOS [1/eV]"
    fig.savefig(tmp_path / "dos.png", dpi=100)
    assert_picture(tmp_path / "dos.png")
    with pytest.raises(AbsentError, match="no band segments"):
        plot_band_structure(load({"run": [{"calculation": [{"band_structure_electronic": [{}]}]}]}, schema_2_0)
                            .run[0].calculation[0].band_structure_electronic[0])


@pytest.mark.shared
def test_md_thermodynamics_over_time(archives: dict[str, Any], tmp_path: Path) -> None:
    fig = plot_md(archives["lammps"])
    assert [ax.get_ylabel() for ax in fig.axes] == ["temperature [K]", "pressure [GPa]", "total energy [eV]"]
    assert fig.axes[-1].get_xlabel() == "time [ps]"
    x, y = fig.axes[0].get_lines()[0].get_data()
    assert len(x) == 101 and x[-1] == pytest.approx(10.0) and y[0] == pytest.approx(99.699704)
    fig.savefig(tmp_path / "md_lammps.png", dpi=100)
    assert_picture(tmp_path / "md_lammps.png")


@pytest.mark.shared
def test_geometry_optimisation_convergence(archives: dict[str, Any], tmp_path: Path) -> None:
    fig = plot_convergence(archives["aims"].workflow2)
    assert [ax.get_ylabel() for ax in fig.axes] == ["E − E_min [meV]", "cell volume [Å³]"]
    x, y = fig.axes[0].get_lines()[0].get_data()
    assert list(x) == [0, 1, 2, 3, 4]  # the last step has no energy: left out, and said so
    assert y[0] == pytest.approx(14.97, abs=0.05)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "not set at step 5" in texts and any(t.startswith("all forces ≈ 0") for t in texts)
    fig.savefig(tmp_path / "opt_aims.png", dpi=100)
    assert_picture(tmp_path / "opt_aims.png")


@pytest.mark.shared
def test_plots_say_what_is_missing(archives: dict[str, Any]) -> None:
    with pytest.raises(AbsentError, match="no temperature, pressure or energies"):
        plot_md([archives["exciting"].run[0].system[0]])
    with pytest.raises(AbsentError, match="no DOS values and no eigenvalues"):
        plot_dos(archives["vasp"].run[0].calculation[0].energy)
    with pytest.raises(AbsentError, match="no calculations"):
        plot_convergence(archives["vasp"].metadata)


def test_friendly_error_without_matplotlib(monkeypatch: pytest.MonkeyPatch, schema_2_0: Any) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    archive = load({"run": [{"calculation": [{"temperature": 300.0}]}]}, schema_2_0)
    with pytest.raises(ImportError, match=r"pip install 'archivemap\[plot\]'"):
        plot_md(archive)


# -- reference graphs -----------------------------------------------------------------------------------
@pytest.mark.shared
@pytest.mark.parametrize("key, folded", [
    ("lammps", {"calculation ×101", "system ×101", "outputs ×202", "inputs ×101"}),
    ("aims", {"calculation ×6", "system ×6", "inputs ×12", "outputs ×12", "outputs ×4"}),
    ("vasp", set()),
])
def test_graph_collapses_repeats_and_reads_top_down(archives: dict[str, Any], key: str, folded: set[str], tmp_path: Path) -> None:
    g = reference_graph(archives[key])
    cg = collapse(g)
    titles = {data["label"].split("\n")[0] for _, data in cg.nodes(data=True)}
    assert folded <= titles
    assert cg.number_of_nodes() <= 16  # was 513 sections for LAMMPS
    assert sum(d["count"] for _, d in cg.nodes(data=True)) == g.number_of_nodes()
    assert sum(d["count"] for _, _, d in cg.edges(data=True)) == g.number_of_edges()
    pos = layered_layout(cg)
    y_of = {cg.nodes[node]["label"].split("\n")[0].split(" ×")[0].split("/")[0]: y for node, (_, y) in pos.items()}
    # read top-down: the workflow's tasks, then the calculations, then the systems and methods
    top = y_of.get("outputs", y_of.get("task"))
    assert top is not None and top > y_of["calculation"] > y_of["system"]
    run_methods = [y for node, (_, y) in pos.items() if str(cg.nodes[node]["path"]).startswith("/run/0/method")]
    assert all(y_of["calculation"] > y for y in run_methods)  # the run's methods, below the calculations
    ax = draw(g)
    labels = {text.get_text() for text in ax.texts}
    assert any("system_ref" in label for label in labels)  # edge labels are there
    ax.figure.savefig(tmp_path / f"graph_{key}.png", dpi=90, bbox_inches="tight")
    assert_picture(tmp_path / f"graph_{key}.png")


@pytest.mark.shared
def test_graph_edge_labels_count_the_references(archives: dict[str, Any]) -> None:
    cg = collapse(reference_graph(archives["lammps"]))
    by_label = {cg.nodes[n]["label"].split("\n")[0]: n for n in cg.nodes}
    edge = cg.edges[by_label["calculation ×101"], by_label["system ×101"]]
    assert edge["label"] == "system_ref ×101" and edge["quantities"] == {"system_ref": 101}
    # no folding: one node per section, as before
    assert collapse(reference_graph(archives["lammps"]), min_repeats=10**9).number_of_nodes() == 513


@pytest.mark.shared
def test_graph_of_several_entries_says_which(archives: dict[str, Any], tmp_path: Path) -> None:
    g = reference_graph([archives["vasp"], archives["aims"]])
    cg = collapse(g)
    assert any("[1WGSYo1RrG]" in d["label"] for _, d in cg.nodes(data=True))
    ax = draw(g)
    ax.figure.savefig(tmp_path / "graph_two.png", dpi=80, bbox_inches="tight")
    assert_picture(tmp_path / "graph_two.png")


@pytest.mark.shared
def test_interactive_graph_page(archives: dict[str, Any], tmp_path: Path) -> None:
    pytest.importorskip("pyvis", reason="the interactive extra is not installed (pip install 'archivemap[interactive]')")
    page = to_html(reference_graph(archives["lammps"]), str(tmp_path / "graph.html"))
    assert (tmp_path / "graph.html").read_text(encoding="utf-8") == page
    escaped = json.dumps(["calculation ×101\nrun", "system_ref ×101"])  # the page holds JSON
    assert escaped[2:-2].split('", "')[0] in page and json.dumps("system_ref ×101")[1:-1] in page
    assert "vis.Network" in page or "new vis.Network" in page
    assert "unpkg.com/vis-network" not in page and "cdnjs.cloudflare.com/ajax/libs/vis-network" not in page  # JS inline
    # nothing is loaded from elsewhere (pyvis's template also pulled Bootstrap from a CDN)
    assert re.findall(r'(?:src|href)\s*=\s*"(?:https?:|//|\.\./)[^"]*"', page) == []


def test_interactive_graph_needs_pyvis(monkeypatch: pytest.MonkeyPatch) -> None:
    import networkx as nx

    monkeypatch.setitem(sys.modules, "pyvis", None)
    monkeypatch.setitem(sys.modules, "pyvis.network", None)
    with pytest.raises(ImportError, match=r"pip install 'archivemap\[interactive\]'"):
        to_html(nx.MultiDiGraph())
