"""``required`` derived from the analysis: a few lazy samples, then one bulk download."""

from __future__ import annotations

import json
from typing import Any

import pytest

import archivemap
from archivemap.remote.derive import required_for
from archivemap.server import LocalServer

from .conftest import SHARED

pytestmark = pytest.mark.shared

METAINFO = SHARED / "metainfo" / "nomad-2.0.0-metainfo.json"
LAMMPS, FHI_AIMS, VASP = "W8WtgZtrEbJuCUCl76SN0Pp2Topu", "Ev7IoH2IX5SXLGn8il__qfm3OyEq", "1WGSYo1RrGFEIcM17Re4kjHC7k6p"


def final_energy(archive: archivemap.Section) -> Any:
    """"Final total energy in eV of every entry that has one" (None when it has none)."""
    workflow = archive.workflow2
    if not workflow or not workflow.results:
        return None
    calc = workflow.results.calculation_result_ref
    if not calc or not calc.energy or not calc.energy.total:
        return None
    return float(calc.energy.total.value.to("eV").magnitude)


def last_energy(archive: archivemap.Section) -> Any:
    return archive.run[0].calculation[-1].energy.total.value


@pytest.fixture(scope="module")
def served():
    with LocalServer(SHARED / "archives", metainfo=METAINFO) as server:
        yield server


def test_derived_on_two_samples_then_one_bulk_download_with_no_follow_up(served, schema_2_0) -> None:
    spec = required_for(final_energy, archivemap.Client(served.url), [LAMMPS, FHI_AIMS], schema=schema_2_0)
    # through the reference, so NOMAD resolves it server-side
    assert spec == {"workflow2": {"results": {"calculation_result_ref": {"energy": {"total": {"value": "*"}}}}}}
    client = archivemap.Client(served.url)
    seen = len(served.requests)
    results = {entry_id: final_energy(root) for entry_id, root in client.archives(None, spec, schema=schema_2_0)}
    paths = [record.path for record in served.requests[seen:]]
    # one bulk download, no follow-up: 12 entries in two pages of the query's archives
    assert paths == ["entries/archive/query"] * 2
    truth = {
        entry_id: final_energy(root)
        for entry_id, root in archivemap.Client(served.url).archives(None, "*", schema=schema_2_0)
    }
    assert results == truth and sum(v is not None for v in results.values()) >= 2


def test_analyze_reports_results_and_costs(served, schema_2_0) -> None:
    client = archivemap.Client(served.url)
    analysis = client.analyze(None, final_energy, sample=2, schema=schema_2_0)
    assert analysis.follow_ups == 0 and analysis.requests == client.requests_made
    assert analysis.required == {
        "workflow2": {"results": {"calculation_result_ref": {"energy": {"total": {"value": "*"}}}}}
    }
    found = dict(analysis.results)
    assert found[LAMMPS] == pytest.approx(1.2932321356, rel=1e-9)
    frame = analysis.to_dataframe()
    assert frame.shape[0] == len(analysis.results)


def test_an_item_taken_from_the_end_stays_counted_from_the_end(served, schema_2_0) -> None:
    spec = required_for(last_energy, archivemap.Client(served.url), [LAMMPS, VASP], schema=schema_2_0)
    assert spec == {"run[0]": {"calculation[-1]": {"energy": {"total": {"value": "*"}}}}}
    bulk = required_for(last_energy, archivemap.Client(served.url), [LAMMPS], schema=schema_2_0, bulk=True)
    assert bulk == {"run[0]": {"calculation": {"energy": {"total": {"value": "*"}}}}}
    client = archivemap.Client(served.url)
    archive = client.archive(LAMMPS, spec, schema=schema_2_0)
    before = client.requests_made
    lammps = json.loads((SHARED / "archives" / "lammps-methane-nvt-md.parsed.archive.json").read_text())
    value = last_energy(archive).magnitude
    assert value == pytest.approx(lammps["run"][0]["calculation"][-1]["energy"]["total"]["value"])
    assert client.requests_made == before


def test_analyze_downloads_each_entry_once_at_the_bulk_minimum(served, schema_2_0) -> None:
    truth = {
        entry_id: final_energy(root)
        for entry_id, root in archivemap.Client(served.url).archives(None, "*", schema=schema_2_0)
    }
    client = archivemap.Client(served.url)
    seen = len(served.requests)
    analysis = client.analyze(None, final_energy, sample=2, schema=schema_2_0, batch_size=10)
    records = served.requests[seen:]
    assert [record.path for record in records] == ["entries/archive/query"] * analysis.requests
    # a page of 2 whole samples, a page of the other 6 candidates, the rest in one page
    assert analysis.requests == 3 and analysis.follow_ups == 0
    assert [record.body["required"] for record in records] == ["*", "*", analysis.required]
    assert [e for e, _ in analysis.results] == sorted(truth)  # listing order, each entry once
    assert dict(analysis.results) == truth
    assert analysis.bytes == client.bytes_received == sum(record.response_bytes for record in records)


def test_analyze_samples_lazily_when_whole_archives_are_too_large(served, schema_2_0) -> None:
    eager = archivemap.Client(served.url).analyze(None, final_energy, sample=2, schema=schema_2_0)
    client = archivemap.Client(served.url)
    seen = len(served.requests)
    lazy = client.analyze(None, final_energy, sample=2, schema=schema_2_0, sample_bytes=20_000)
    assert lazy.required == eager.required and lazy.results == eager.results
    assert lazy.follow_ups == 0
    records = served.requests[seen:]
    # abandoned "*" pages count their bytes up to the limit, never more
    abandoned = [r for r in records if r.path == "entries/archive/query" and r.body.get("required") == "*"]
    assert abandoned and client.bytes_received < eager.bytes
    assert any(record.path.startswith("entries/") and record.path.endswith("/archive/query") and
               record.path != "entries/archive/query" for record in records)  # per value, lazily


def test_analyze_with_a_lockfile_covers_every_entry(served, schema_2_0, tmp_path) -> None:
    plain = archivemap.Client(served.url).analyze(None, final_energy, sample=2, schema=schema_2_0)
    lock = tmp_path / "energies.lock"
    locked = archivemap.Client(served.url).analyze(None, final_energy, sample=2, schema=schema_2_0, lock=lock)
    assert locked.results == plain.results and locked.required == plain.required
    assert [entry["entry_id"] for entry in json.loads(lock.read_text())["entries"]] == [e for e, _ in plain.results]


def test_one_sample_may_be_named_by_its_id_alone(served, schema_2_0) -> None:
    one = required_for(final_energy, archivemap.Client(served.url), LAMMPS, schema=schema_2_0)
    both = required_for(final_energy, archivemap.Client(served.url), [LAMMPS], schema=schema_2_0)
    assert one == both and "workflow2" in one  # an id, not 28 one-letter entry ids


def test_an_entry_the_analysis_fails_on_does_not_stop_the_run(served, schema_2_0) -> None:
    def program(archive: archivemap.Section) -> Any:
        return archive.run[0].program.name  # ELN entries have no run: IndexError

    client = archivemap.Client(served.url)
    analysis = client.analyze(None, program, sample=2, schema=schema_2_0)
    results = dict(analysis.results)
    assert len(results) == 12 and sorted(v for v in results.values() if v) == ["FHI-aims", "LAMMPS", "VASP", "exciting"]
    assert len(analysis.errors) == 8 and all(e.startswith("IndexError") for e in analysis.errors.values())
    assert all(results[entry_id] is None for entry_id in analysis.errors)

    def broken(archive: archivemap.Section) -> Any:
        return archive.no_such_thing  # fails on every entry: a bug in the analysis, raised

    with pytest.raises(archivemap.NotInSchemaError):
        client.analyze(None, broken, sample=2, schema=schema_2_0)


@pytest.mark.parametrize("entries", [None, {"results.material.elements": ["Si"]}, []])
def test_samples_that_are_not_entry_ids_are_told_apart(entries: Any) -> None:
    # a query (or nothing) where entry ids belong failed with a bare TypeError deep inside
    from archivemap.remote.derive import required_for

    with pytest.raises((TypeError, ValueError), match="entry id"):
        required_for(lambda archive: archive.run, None, entries)  # type: ignore[arg-type]
