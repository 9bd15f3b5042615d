"""DataFrames of sections, archives and search results: no silent data loss, plottable index."""

from __future__ import annotations

import json
import math
import sys
import warnings
from typing import Any

import pytest

from archivemap.archive.load import load
from archivemap.errors import NotInSchemaError
from archivemap.views.units import display_units
from tests.conftest import SHARED

pd = pytest.importorskip("pandas", reason="the pandas extra is not installed (pip install 'archivemap[pandas]')")

from archivemap.views.dataframe import to_dataframe  # noqa: E402

EV = 1.602176634e-19


@pytest.fixture(scope="module")
def lammps(schema_2_0: Any) -> Any:
    return load(SHARED / "archives" / "lammps-methane-nvt-md.parsed.archive.json", schema_2_0)


@pytest.fixture(scope="module")
def aims(schema_2_0: Any) -> Any:
    return load(SHARED / "archives" / "fhiaims-alas-geometry-optimization.parsed.archive.json", schema_2_0)


@pytest.mark.shared
def test_sections_in_display_units_indexed_by_time(lammps: Any) -> None:
    calcs = lammps.run[0].calculation
    df = to_dataframe(calcs)
    assert len(df) == 101 and df.index.name == "time [ps]"
    assert df.index[3] == pytest.approx(0.3) and df["path"].iloc[3] == "/run/0/calculation/3"
    assert {"pressure [GPa]", "temperature [K]", "step"} <= set(df.columns)
    assert "system_ref" not in df.columns  # references are links, not data
    raw = lammps._m_data["run"][0]["calculation"][-1]
    assert df["temperature [K]"].iloc[-1] == raw["temperature"]
    assert df["pressure [GPa]"].iloc[-1] == pytest.approx(raw["pressure"] / 1e9, rel=1e-12)
    assert df["step"].iloc[-1] == raw["step"]
    stored = to_dataframe(calcs, units="stored", index=None)
    assert {"pressure [Pa]", "time [s]"} <= set(stored.columns) and stored.index[3] == 3


@pytest.mark.shared
def test_chosen_paths_units_and_molar(lammps: Any) -> None:
    calcs = lammps.run[0].calculation
    df = to_dataframe(calcs[:3], columns={"step": None, "energy.total.value": "eV", "energy.kinetic.value": None})
    assert list(df.columns) == ["path", "energy.total.value [eV]", "energy.kinetic.value [eV]"]
    assert df.index.name == "step"
    joule = lammps._m_data["run"][0]["calculation"][0]["energy"]["total"]["value"]
    assert df["energy.total.value [eV]"].iloc[0] == pytest.approx(joule / EV, rel=1e-12)
    assert df["energy.kinetic.value [eV]"].isna().all()  # absent everywhere: NaN, column kept
    molar = to_dataframe(calcs[:2], columns={"energy.total.value": "kJ/mol"})
    assert molar["energy.total.value [kJ/mol]"].iloc[0] == pytest.approx(joule * 6.02214076e23 / 1000, rel=1e-9)
    with display_units("materials", energy="kJ/mol"):
        assert "energy.total.value [kJ/mol]" in to_dataframe(calcs[:2], columns=["energy.total.value"]).columns
    df2 = to_dataframe(calcs[:2], columns=["energy.total.value", "temperature"])
    assert list(df2.columns) == ["path", "energy.total.value [eV]", "temperature [K]"]


@pytest.mark.shared
def test_unknown_column_names_the_nearest_valid_paths(lammps: Any) -> None:
    calcs = lammps.run[0].calculation
    with pytest.raises(NotInSchemaError, match=r"no column 'temprature'.*did you mean 'temperature'"):
        to_dataframe(calcs, columns={"temprature": "K"})
    with pytest.raises(NotInSchemaError, match=r"'energy\.totl\.value'.*did you mean 'energy\.total'"):
        to_dataframe(calcs, columns=["energy.totl.value"])


@pytest.mark.shared
def test_absent_values_are_nan_and_the_column_stays(aims: Any) -> None:
    # FHI-aims' last geometry step holds only the Fermi energy
    df = to_dataframe(aims.run[0].calculation, columns={"energy.total.value": "eV", "energy.fermi": None})
    assert list(df.columns) == ["path", "energy.total.value [eV]", "energy.fermi [eV]"]
    assert math.isnan(df["energy.total.value [eV]"].iloc[-1]) and df["energy.total.value [eV]"].notna().sum() == 5
    default = to_dataframe(aims.run[0].calculation)
    # run times are seconds, not 3.6e13 ps
    assert default["time_calculation [s]"].iloc[0] == pytest.approx(35.591)
    assert default["time_calculation [s]"].iloc[-1] == pytest.approx(0.055, rel=1e-2)


@pytest.mark.shared
def test_one_row_per_entry_from_archives(schema_2_0: Any, lammps: Any, aims: Any) -> None:
    vasp = load(SHARED / "archives" / "vasp-si16-singlepoint.recorded.archive.json", schema_2_0)
    pairs = [(a.m_entry_id, a) for a in (vasp, aims, lammps)]  # what client.archives(query) yields
    df = to_dataframe(pairs, columns={"results.material.chemical_formula_hill": None,
                                      "run[0].calculation[-1].energy.total.value": "eV"})
    assert list(df["entry_id"]) == [a.m_entry_id for a in (vasp, aims, lammps)]
    assert list(df["results.material.chemical_formula_hill"]) == ["Si16", "AlAs", "X320"]
    energies = df["run[0].calculation[-1].energy.total.value [eV]"]
    assert energies.iloc[0] == pytest.approx(-86.71940396, rel=1e-9) and math.isnan(energies.iloc[1])


@pytest.mark.shared
def test_sections_of_several_entries(schema_2_0: Any) -> None:
    archives = [load(SHARED / "archives" / f"{n}.archive.json", schema_2_0) for n in ("vasp-si16-singlepoint.recorded", "exciting-ag-singlepoint.parsed")]
    df = to_dataframe([a.run[0].calculation[-1] for a in archives], columns=["energy.total.value"])
    assert list(df["entry_id"]) == [a.m_entry_id for a in archives]


@pytest.mark.shared
def test_index_choice(lammps: Any) -> None:
    calcs = lammps.run[0].calculation[:4]
    assert to_dataframe(calcs, columns=["temperature", "step"], index="step").index.name == "step"
    assert to_dataframe(calcs, columns=["temperature"], index=None).index.tolist() == [0, 1, 2, 3]
    with pytest.raises(KeyError, match="no column 'pressure' to index by"):
        to_dataframe(calcs, columns=["temperature"], index="pressure")


@pytest.mark.shared
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
    with pytest.raises(ValueError, match="units must be"):
        to_dataframe([archive], units="furlongs")


def test_extras_outside_the_schema_are_columns_too(schema_2_0: Any) -> None:
    archive = load({"run": [{"calculation": [{"my_note": "a"}, {}]}]}, schema_2_0)
    df = to_dataframe(archive.run[0].calculation, columns=["my_note"])
    assert df["my_note"].iloc[0] == "a" and pd.isna(df["my_note"].iloc[1])


def test_friendly_error_without_pandas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"pip install 'archivemap\[pandas\]'"):
        to_dataframe([])


@pytest.mark.shared
def test_one_path_in_two_units(lammps: Any) -> None:
    path = "energy.total.value"
    df = to_dataframe(lammps.run[0].calculation[:3], columns=[(path, "eV"), (path, "kJ/mol"), "temperature"])
    assert list(df.columns) == ["path", f"{path} [eV]", f"{path} [kJ/mol]", "temperature [K]"]
    ratio = df[f"{path} [kJ/mol]"] / df[f"{path} [eV]"]
    assert ratio.tolist() == pytest.approx([96.48533212] * 3, rel=1e-9)
    with pytest.raises(TypeError, match="list of paths"):
        to_dataframe(lammps.run[0].calculation[:3], columns="temperature")


@pytest.mark.shared
def test_a_table_of_a_partial_archive_is_one_batch_of_requests(lammps: Any, schema_2_0: Any) -> None:
    # row by row, a 101-step trajectory of a lazily downloaded archive cost 203 requests
    from archivemap.remote.client import Client
    from archivemap.server import LocalServer

    entry_id = lammps.m_entry_id
    columns = ["temperature", "energy.total.value"]
    with LocalServer({entry_id: lammps.to_dict()}) as server:
        archive = Client(server.url).archive(entry_id, required={"metadata": {"entry_id": "*"}}, schema=schema_2_0)
        server.clear_log()
        frame = to_dataframe(archive.run[0].calculation, columns)
        requests = len(server.requests)
        with pytest.warns(UserWarning, match="name the columns"):  # the default: what is here
            to_dataframe(archive.run[0].calculation)
        whole = Client(server.url).archive(entry_id, required="*", schema=schema_2_0)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # downloaded whole: nothing to say
            assert to_dataframe(whole.run[0].calculation, columns).equals(frame)
    assert len(frame) == 101 and requests <= 4
    expected = to_dataframe(lammps.run[0].calculation, columns)
    assert frame.equals(expected)
