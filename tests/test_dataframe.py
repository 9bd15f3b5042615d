"""DataFrames of sections and of search results."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from archivemap.archive.load import load
from tests.conftest import SHARED, needs_shared

pd = pytest.importorskip("pandas", reason="the pandas extra is not installed (pip install 'archivemap[pandas]')")

from archivemap.views.dataframe import to_dataframe  # noqa: E402


@pytest.fixture(scope="module")
def lammps(schema_2_0: Any) -> Any:
    return load(SHARED / "archives" / "lammps-methane-nvt-md.parsed.archive.json", schema_2_0)


@needs_shared
def test_sections_scalar_quantities_with_units(lammps: Any) -> None:
    calcs = lammps.run[0].calculation
    df = to_dataframe(calcs)
    assert len(df) == 101 and df.index.name == "path" and df.index[3] == "/run/0/calculation/3"
    assert {"pressure [Pa]", "temperature [K]", "step", "time [s]"} <= set(df.columns)
    assert "system_ref" not in df.columns  # references are links, not data
    raw = lammps._m_data["run"][0]["calculation"][-1]
    assert df["temperature [K]"].iloc[-1] == raw["temperature"]
    assert df["step"].iloc[-1] == raw["step"]


@needs_shared
def test_sections_chosen_paths_and_units(lammps: Any) -> None:
    calcs = lammps.run[0].calculation
    df = to_dataframe(calcs[:3], columns={"step": None, "energy.total.value": "eV", "energy.nothing": None})
    assert list(df.columns) == ["step", "energy.total.value [eV]"]
    joule = lammps._m_data["run"][0]["calculation"][0]["energy"]["total"]["value"]
    assert df["energy.total.value [eV]"].iloc[0] == pytest.approx(joule / 1.602176634e-19, rel=1e-12)
    df2 = to_dataframe(calcs[:2], columns=["energy.total.value", "temperature"])
    assert list(df2.columns) == ["energy.total.value [J]", "temperature [K]"]


@needs_shared
def test_sections_of_several_entries(schema_2_0: Any) -> None:
    archives = [load(SHARED / "archives" / f"{n}.archive.json", schema_2_0) for n in ("vasp-si16-singlepoint.recorded", "exciting-ag-singlepoint.parsed")]
    df = to_dataframe([a.run[0].calculation[-1] for a in archives], columns=["energy.total.value"])
    assert list(df["entry_id"]) == [a.m_entry_id for a in archives]


@needs_shared
def test_query_results_flatten_dotted_keys() -> None:
    recorded = json.loads((SHARED / "recorded" / "user-data-search.json").read_text())
    answers = [x["response"]["body"] for x in recorded["exchanges"] if x["request"]["path"].endswith("entries/query") and x["response"]["status"] == 200]
    body = answers[0]
    df = to_dataframe(body)  # the whole answer: its "data" list
    assert len(df) == len(body["data"])
    assert "entry_id" in df.columns and all("." in c or c in body["data"][0] for c in df.columns)


def test_records_columns() -> None:
    records = [{"entry_id": "a", "results": {"material": {"elements": ["Si"], "n_elements": 1}}}, {"entry_id": "b"}]
    df = to_dataframe(records, columns=["entry_id", "results.material.n_elements", "missing"])
    assert list(df.columns) == ["entry_id", "results.material.n_elements", "missing"]
    assert df["results.material.n_elements"].iloc[0] == 1 and pd.isna(df["results.material.n_elements"].iloc[1])
    assert to_dataframe(records)["results.material.elements"].iloc[0] == ["Si"]
    with pytest.raises(TypeError):
        to_dataframe(records, columns={"entry_id": "eV"})


def test_mixed_input_is_rejected(schema_2_0: Any) -> None:
    archive = load({"metadata": {"entry_id": "E"}}, schema_2_0)
    with pytest.raises(TypeError):
        to_dataframe([archive, {"entry_id": "x"}])


def test_friendly_error_without_pandas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"pip install 'archivemap\[pandas\]'"):
        to_dataframe([])
