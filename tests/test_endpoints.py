"""The client's endpoints beyond entries and archives, against the bundled server on 127.0.0.1.

Typed queries are checked before any request (the server's request log proves none went out);
raw files are streamed to disk and resumed with byte ranges after a cut-off answer; uploads,
datasets, users, referrers and aggregations are read in NOMAD's layouts. Request shapes are
compared with the recorded NOMAD exchanges in ../shared where those exist.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from archivemap import Client
from archivemap.archive.load import default_schema
from archivemap.archive.schema import Schema
from archivemap.cli import main
from archivemap.errors import AuthenticationError, NotFoundError, QueryError, ValidationError
from archivemap.errors import DownloadLimitError, ForbiddenError, MissingScopeError
from archivemap.remote.endpoints import missing_scopes, scope_error
from archivemap.remote.query import Q
from archivemap.server import LocalServer
from archivemap.units import registry

from tests.conftest import SHARED

ureg = registry()
RAW_SIZE = 200_000
PAT = "nomad_pat_entries_only"
UPLOADS_PAT = "nomad_pat_uploads_only"
N_QUANTITIES = {"e1": 7, "e2": 23, "e3": 28}


def _archive(entry_id: str, elements: list[str], references: list[str] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    return {
        "metadata": {
            "entry_id": entry_id,
            "upload_id": "up1" if entry_id != "e3" else "up2",
            "mainfile": f"{entry_id}/vasprun.xml",
            "main_author": "user-1",
            "n_quantities": N_QUANTITIES[entry_id],
            "datasets": ["ds-1"] if entry_id != "e3" else [],
            "files": [f"{entry_id}/vasprun.xml", f"{entry_id}/OUTCAR"],
            "entry_references": [{"target_entry_id": target, "target_path": "/run/0"} for target in references],
        },
        "results": {"material": {"elements": elements}},
    }


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``archives/`` and its sibling ``raw/<upload_id>/<path>``, plus a file outside any upload."""
    root = tmp_path_factory.mktemp("site")
    archives = root / "archives"
    archives.mkdir()
    for archive in (_archive("e1", ["Si"]), _archive("e2", ["Ti", "O"], ["e1"]), _archive("e3", ["Ti"], ["e1"])):
        (archives / f"{archive['metadata']['entry_id']}.json").write_text(json.dumps(archive))
    for entry_id, upload_id in (("e1", "up1"), ("e2", "up1"), ("e3", "up2")):
        folder = root / "raw" / upload_id / entry_id
        folder.mkdir(parents=True)
        (folder / "vasprun.xml").write_bytes(os.urandom(RAW_SIZE))
        (folder / "OUTCAR").write_text(f"OUTCAR of {entry_id}\n")
    (root / "raw" / "secret.txt").write_text("outside every upload")
    return root


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[LocalServer]:
    with LocalServer(site / "archives", users={"ada": "pw-ada"}, pats={PAT: ["entries:read"], UPLOADS_PAT: ["uploads:read"]}) as running:
        yield running


@pytest.fixture()
def client(server: LocalServer) -> Iterator[Client]:
    server.clear_faults()
    server.clear_log()
    with Client(server.url, username="ada", password="pw-ada", retries=3, backoff_base=0.01, rate=0) as made:
        yield made


@pytest.fixture(scope="module")
def schema() -> Schema:
    return default_schema()


# -- typed queries -------------------------------------------------------------------------------


def test_a_misspelt_key_fails_before_any_request(client: Client, server: LocalServer, schema: Schema) -> None:
    with pytest.raises(QueryError) as caught:
        client.entries({"results.material.elemnts": ["Si"]}, schema=schema)
    assert "results.material.elements" in str(caught.value)
    assert caught.value.suggestions[0] == "results.material.elements"
    with pytest.raises(QueryError, match="operator"):
        client.archives_raw({"upload_id:anyy": ["up1"]}, schema=schema)
    with pytest.raises(QueryError):
        client.archives(Q("results.material.elemnts") == ["Si"], schema=schema)
    with pytest.raises(QueryError):
        client.aggregate(terms="results.material.elemnts", schema=schema)
    with pytest.raises(QueryError):
        client.raw_query({"upload_idd": "up1"}, schema=schema)
    assert server.requests == []


def test_the_clients_schema_checks_every_call(client: Client, server: LocalServer, schema: Schema) -> None:
    client.schema = schema
    with pytest.raises(QueryError):
        list(client.referrers("e1", order_by="results.material.elemnts"))
    with pytest.raises(QueryError):
        client.entries(order_by="results.material.elements")  # not a scalar: NOMAD 422s it
    assert server.requests == []
    assert [e["entry_id"] for e in client.entries(Q("results.material.elements") == ["Ti", "O"])] == ["e2"]


def test_a_query_object_is_sent_as_nomads_json(client: Client, server: LocalServer, schema: Schema) -> None:
    query = (Q("results.material.elements").any(["Ti"])) & ~(Q("entry_id") == "e3")
    assert [e["entry_id"] for e in client.entries(query, schema=schema)] == ["e2"]
    body = server.requests[-1].body
    assert body["query"] == {"and": [{"results.material.elements:any": ["Ti"]}, {"not": {"entry_id": "e3"}}]}


def test_a_value_with_a_unit_is_sent_in_the_stored_unit(client: Client, server: LocalServer, schema: Schema) -> None:
    query = Q("results.properties.electronic.band_gap.value") > 1 * ureg.eV
    with pytest.raises(Exception):  # the bundled server does not index band gaps; NOMAD would
        list(client.entries(query, schema=schema))
    sent = server.requests[-1].body["query"]
    value = sent["results.properties.electronic.band_gap.value"]["gt"]
    assert value == pytest.approx(1.602176634e-19)


def test_without_a_schema_a_unit_cannot_be_converted(client: Client, server: LocalServer) -> None:
    with pytest.raises(QueryError, match="unit"):
        client.entries(Q("results.properties.electronic.band_gap.value") > 1 * ureg.eV)
    assert server.requests == []


# -- raw files ------------------------------------------------------------------------------------


def test_raw_zip_of_an_entry(client: Client, tmp_path: Path) -> None:
    path = client.raw("e1", to=tmp_path)
    assert path == tmp_path / "e1.zip"
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["e1/OUTCAR", "e1/vasprun.xml"]
        assert len(archive.read("e1/vasprun.xml")) == RAW_SIZE
    assert not list(tmp_path.glob("*.part"))


def test_one_raw_file_by_entry_and_by_upload(client: Client, site: Path, tmp_path: Path) -> None:
    path = client.raw("e2", "e2/vasprun.xml", to=tmp_path / "a")
    assert path.read_bytes() == (site / "raw/up1/e2/vasprun.xml").read_bytes()
    path = client.upload_raw("up2", "e3/OUTCAR", to=tmp_path / "b")
    assert path.read_text() == "OUTCAR of e3\n"
    with pytest.raises(NotFoundError):
        client.upload_raw("up1", "e1/missing.txt", to=tmp_path)
    with pytest.raises(ValueError):
        client.upload_raw("up1", "../secret.txt", to=tmp_path)


def test_a_cut_off_download_resumes_with_a_range(client: Client, server: LocalServer, site: Path, tmp_path: Path) -> None:
    client.login()  # the cut must hit the download, not the login
    server.update_faults(truncate_next=1, truncate_fraction=0.5)
    path = client.upload_raw("up1", "e1/vasprun.xml", to=tmp_path)
    assert path.read_bytes() == (site / "raw/up1/e1/vasprun.xml").read_bytes()
    first, second = server.requests[-2:]
    assert (first.status, first.fault) == (200, "truncate")
    assert second.status == 206


def test_a_partial_file_from_an_earlier_call_is_resumed(client: Client, server: LocalServer, site: Path, tmp_path: Path) -> None:
    whole = (site / "raw/up1/e2/vasprun.xml").read_bytes()
    (tmp_path / "vasprun.xml.part").write_bytes(whole[:1000])
    path = client.upload_raw("up1", "e2/vasprun.xml", to=tmp_path)
    assert path.read_bytes() == whole
    assert server.requests[-1].status == 206
    assert server.requests[-1].response_bytes == len(whole) - 1000


def test_a_download_larger_than_allowed_is_refused(client: Client, tmp_path: Path) -> None:
    with pytest.raises(DownloadLimitError):
        client.upload_raw("up1", "e1/vasprun.xml", to=tmp_path, max_bytes=1000)
    assert not (tmp_path / "vasprun.xml").exists()


def test_zip_of_a_querys_raw_files(client: Client, server: LocalServer, tmp_path: Path) -> None:
    path = client.raw_query({"results.material.elements:any": ["Ti"]}, to=tmp_path / "ti.zip", files={"compress": False})
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["up1/e2/OUTCAR", "up1/e2/vasprun.xml", "up2/e3/OUTCAR", "up2/e3/vasprun.xml"]
    body = server.requests[-1].body
    assert body == {"owner": "visible", "query": {"results.material.elements:any": ["Ti"]}, "files": {"compress": False}}


# -- uploads, datasets, users, referrers ------------------------------------------------------------


def test_uploads_and_their_entries(client: Client, server: LocalServer) -> None:
    uploads = list(client.uploads(page_size=1))
    assert [u["upload_id"] for u in uploads] == ["up1", "up2"]
    assert client.upload("up1")["entries"] == 2
    entries = list(client.upload_entries("up1", page_size=1))
    assert [e["entry_id"] for e in entries] == ["e1", "e2"]
    assert entries[0]["entry_metadata"]["upload_id"] == "up1"
    listing = [r for r in server.requests if r.path == "uploads/up1/entries"]
    assert [r.query for r in listing] == ["page=1&page_size=1", "page=2&page_size=1"]
    with pytest.raises(NotFoundError):
        client.upload("nope")


def test_listing_uploads_needs_a_token(server: LocalServer) -> None:
    with Client(server.url, retries=0) as anonymous, pytest.raises(AuthenticationError):
        list(anonymous.uploads())


def test_datasets_and_their_entries(client: Client) -> None:
    assert [d["dataset_id"] for d in client.datasets()] == ["ds-1"]
    assert client.dataset("ds-1")["user_id"] == "user-1"
    assert sorted(e["entry_id"] for e in client.dataset_entries("ds-1")) == ["e1", "e2"]


def test_users_by_id(client: Client) -> None:
    assert client.users(["user-1", "nobody"]) == [{"user_id": "user-1", "name": "user-1"}]
    assert client.user("user-1")["user_id"] == "user-1"
    assert client.user()["user_id"] == "ada"


def test_referrers(client: Client, server: LocalServer) -> None:
    assert sorted(e["entry_id"] for e in client.referrers("e1")) == ["e2", "e3"]
    assert server.requests[-1].body["query"] == {"entry_references.target_entry_id": "e1"}
    assert list(client.referrers("e3")) == []


def test_a_pat_without_the_scope_says_which(server: LocalServer) -> None:
    with Client(server.url, token=PAT, retries=0) as scoped:
        assert [e["entry_id"] for e in scoped.entries()] == ["e1", "e2", "e3"]
        with pytest.raises(MissingScopeError) as caught:
            scoped.upload("up1")
    assert caught.value.scopes == ["uploads:read"]
    assert "uploads:read" in str(caught.value)
    assert missing_scopes(caught.value) == ["uploads:read"]


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c, tmp: list(c.entries()), id="entries"),
        pytest.param(lambda c, tmp: c.archive_raw("e1"), id="archive_raw"),
        pytest.param(lambda c, tmp: c.archive_answer_raw("e1", {"metadata": "*"}), id="archive_answer_raw"),
        pytest.param(lambda c, tmp: c.archive("e1").results.material.elements, id="archive"),
        pytest.param(lambda c, tmp: list(c.archives_raw()), id="archives_raw"),
        pytest.param(lambda c, tmp: c.get_json("entries/e1/archive"), id="get_json"),
        pytest.param(lambda c, tmp: c.raw("e1", to=tmp), id="raw"),
        pytest.param(lambda c, tmp: list(c.referrers("e1")), id="referrers"),
        pytest.param(lambda c, tmp: c.aggregate(terms="upload_id"), id="aggregate"),
    ],
)
def test_every_entries_endpoint_names_the_missing_scope(server: LocalServer, tmp_path: Path, call: Any) -> None:
    """A token with ``uploads:read`` only: NOMAD's 403 on each entries route becomes MissingScopeError."""
    server.clear_log()
    with Client(server.url, token=UPLOADS_PAT, retries=0) as scoped:
        with pytest.raises(MissingScopeError) as caught:
            call(scoped, tmp_path)
    assert caught.value.scopes == ["entries:read"]
    assert caught.value.status_code == 403
    assert "entries:read" in str(caught.value) and UPLOADS_PAT not in str(caught.value)
    refused = [r for r in server.requests if r.status == 403]
    assert refused and all(r.path.startswith("entries") for r in refused)


def test_other_scopes_are_named_too(server: LocalServer) -> None:
    with Client(server.url, token=PAT, retries=0) as scoped:
        for call, scope in ((lambda: list(scoped.datasets()), "datasets:read"), (lambda: scoped.user("user-1"), "users:read")):
            with pytest.raises(MissingScopeError) as caught:
                call()
            assert caught.value.scopes == [scope]
    with Client(server.url, token=UPLOADS_PAT, retries=0) as scoped:
        assert scoped.upload("up1")["upload_id"] == "up1"


def test_forbidden_without_a_scope_list_stays_a_plain_forbidden_error(server: LocalServer) -> None:
    # NOMAD's other 403s (admin only, owner "all") name no scope: no MissingScopeError then
    with Client(server.url, username="ada", password="pw-ada", retries=0) as client:
        with pytest.raises(ForbiddenError) as caught:
            client.post_json("entries/archive/query", {"owner": "all"})
    assert not isinstance(caught.value, MissingScopeError)
    assert missing_scopes(caught.value) == []


@pytest.mark.parametrize(
    ("detail", "scopes"),
    [
        ("Missing scopes: [<Scope.ENTRIES_READ: 'entries:read'>]", ["entries:read"]),  # NOMAD 2.0.0
        (
            "Missing scopes: [<Scope.ENTRIES_READ: 'entries:read'>, <Scope.UPLOADS_READ: 'uploads:read'>]",
            ["entries:read", "uploads:read"],
        ),
        ("Missing scopes: ['entries:read', \"graph:read\"]", ["entries:read", "graph:read"]),
        ("missing scope: [entries:read]", ["entries:read"]),
        ("You are not authorized to access this Oasis", []),
    ],
)
def test_missing_scopes_reads_nomads_enum_form_and_plain_lists(detail: str, scopes: list[str]) -> None:
    error = ForbiddenError("GET -> 403", "http://127.0.0.1/api/v1/entries", 403, detail)
    assert missing_scopes(error) == scopes
    mapped = scope_error(error)
    assert isinstance(mapped, MissingScopeError) == bool(scopes)
    assert (mapped.scopes if isinstance(mapped, MissingScopeError) else []) == scopes


# -- aggregations ---------------------------------------------------------------------------------


def test_terms_aggregation(client: Client, server: LocalServer) -> None:
    buckets = client.aggregate(terms=["results.material.elements", "upload_id"])
    assert {b["value"]: b["count"] for b in buckets["results.material.elements"]} == {"Ti": 2, "O": 1, "Si": 1}
    assert {b["value"]: b["count"] for b in buckets["upload_id"]} == {"up1": 2, "up2": 1}
    body = server.requests[-1].body
    assert body["pagination"] == {"page_size": 0}
    assert body["aggregations"]["terms:upload_id"] == {"terms": {"quantity": "upload_id", "size": 10}}
    assert client.aggregate({"upload_id": "up2"}, terms="upload_id") == {"upload_id": [{"value": "up2", "count": 1, "nested_count": 1}]}


def test_aggregation_as_a_dataframe(client: Client) -> None:
    pandas = pytest.importorskip("pandas")
    frame = client.aggregate_frame(terms="upload_id")
    assert isinstance(frame, pandas.DataFrame)
    assert list(frame.columns[:3]) == ["key", "value", "count"]
    assert frame["count"].sum() == 3


def test_aggregate_needs_something_to_count(client: Client) -> None:
    with pytest.raises(ValueError):
        client.aggregate()


# -- request shapes against recorded NOMAD exchanges ---------------------------------------------------


def _recorded(name: str) -> list[dict[str, Any]]:
    if not SHARED.is_dir():
        pytest.skip("../shared/nomad-data is absent: no recorded NOMAD exchanges to compare with")
    return json.loads((SHARED / "recorded" / name).read_text())["exchanges"]  # type: ignore[no-any-return]


@pytest.mark.shared
def test_upload_entries_request_and_answer_shape_match_nomad(client: Client, server: LocalServer) -> None:
    recorded = _recorded("upload-entries-pagination.json")[0]
    assert recorded["request"]["path"] == "uploads/dft_upload_1/entries"
    list(client.upload_entries("up1", page_size=5))
    sent = server.requests[-1]
    assert sent.method == recorded["request"]["method"] == "GET"
    assert set(dict(p.split("=") for p in sent.query.split("&"))) <= set(recorded["request"]["query"])
    ours = client.get_json("uploads/up1/entries", {"page": 1, "page_size": 1})
    theirs = recorded["response"]["body"]
    assert set(ours) == set(theirs)
    assert set(ours["pagination"]) <= set(theirs["pagination"]) | {"page_after_value", "prev_page_url"}
    assert set(ours["data"][0]) <= set(theirs["data"][0])
    assert set(ours["upload"]) <= set(theirs["upload"]) | {"upload_name", "publish_time"}


@pytest.mark.shared
def test_referrers_query_matches_nomads_gui(client: Client, server: LocalServer) -> None:
    recorded = [
        x for x in _recorded("inter-entry-schema-archive.json")
        if x["request"]["path"] == "entries/query" and "entry_references.target_entry_id" in json.dumps(x["request"]["body"])
    ]
    assert recorded
    list(client.referrers("e1"))
    sent = server.requests[-1]
    assert sent.path == recorded[0]["request"]["path"] and sent.method == "POST"
    theirs = recorded[0]["request"]["body"]["query"]
    assert set(sent.body["query"]) <= set(theirs)


# -- the command line -----------------------------------------------------------------------------


def test_cli_query_refuses_a_misspelt_key_in_one_line(server: LocalServer, capsys: pytest.CaptureFixture[str]) -> None:
    server.clear_log()
    code = main(["query", "--url", server.url, "--query", '{"results.material.elemnts": ["Si"]}', "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "results.material.elements" in err
    assert server.requests == []
    code = main(["query", "--url", server.url, "--query", '{"results.material.elements": ["Si"]}', "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and [json.loads(line)["entry_id"] for line in out.splitlines()] == ["e1"]


def test_cli_query_without_checks_sends_as_given(server: LocalServer, capsys: pytest.CaptureFixture[str]) -> None:
    server.clear_log()
    code = main(["query", "--url", server.url, "--query", '{"results.material.elemnts": ["Si"]}', "--no-check", "--no-progress"])
    assert code == 1  # the server's 422, not ours
    assert server.requests[-1].status == 422


def test_cli_explain_prints_each_criterion(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["explain", "--query", '{"results.properties.electronic.band_gap.value:gt": 1e-19, "upload_id": "up1"}'])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and len(lines) == 2
    assert "joule" in lines[0] and "upload_id" in lines[1]
    assert main(["explain", "--query", '{"upload_idd": "x"}']) == 2


def test_typed_queries_download_archives(client: Client, server: LocalServer, schema: Schema) -> None:
    stream = client.archives_raw(Q("results.material.elements").any(["Ti"]), {"metadata": "*"}, schema=schema)
    assert [entry_id for entry_id, _ in stream] == ["e2", "e3"]
    # the query pages its own archives (a result of one batch is one request)
    pages = [r for r in server.requests if r.path in ("entries/query", "entries/archive/query")]
    assert pages[0].body["query"] == {"results.material.elements:any": ["Ti"]}


@pytest.mark.shared
def test_entries_and_aggregate_bodies_use_nomads_request_fields(client: Client, server: LocalServer) -> None:
    recorded = [x["request"]["body"] for x in _recorded("user-data-search.json") if x["request"]["path"] == "entries/query"]
    assert recorded
    nomad_fields = {"owner", "query", "pagination", "required", "aggregations", "exclude"}
    assert set(recorded[0]) <= nomad_fields
    list(client.entries({"upload_id": "up1"}, {"include": ["entry_id"]}, page_size=20, order_by="upload_create_time", order="desc"))
    client.aggregate(terms="upload_id")
    for sent in [r for r in server.requests if r.path == "entries/query"]:
        assert set(sent.body) <= nomad_fields
        assert set(sent.body["pagination"]) <= {"page_size", "order_by", "order", "page_after_value"}


def _histogram_from_archives(site: Path, interval: float) -> dict[float, int]:
    """Entries per bin, read from the archive files (not from the server), empty bins between."""
    values = [json.loads(path.read_text())["metadata"]["n_quantities"] for path in (site / "archives").glob("*.json")]
    bins = [math.floor(v / interval) for v in values]
    return {i * interval: bins.count(i) for i in range(min(bins), max(bins) + 1)}


def test_histogram_buckets_are_counted_like_nomad(client: Client, server: LocalServer, site: Path) -> None:
    found = client.aggregate(histogram={"n_quantities": 5})
    assert {b["value"]: b["count"] for b in found["n_quantities"]} == _histogram_from_archives(site, 5)
    assert [b["value"] for b in found["n_quantities"]] == [5.0, 10.0, 15.0, 20.0, 25.0]
    assert server.requests[-1].body["aggregations"] == {
        "histogram:n_quantities": {"histogram": {"quantity": "n_quantities", "interval": 5}}
    }
    # by number of buckets, within up1 (7 and 23): NOMAD's integer interval ceil((23 - 7) / 3) = 6
    by_buckets = client.aggregate({"upload_id": "up1"}, histogram={"n_quantities": {"buckets": 3}}, terms="upload_id")
    assert {b["value"]: b["count"] for b in by_buckets["n_quantities"]} == {6.0: 1, 12.0: 0, 18.0: 1}
    assert by_buckets["upload_id"] == [{"value": "up1", "count": 2, "nested_count": 2}]


def test_a_histogram_over_text_fails_before_any_request(client: Client, server: LocalServer, schema: Schema) -> None:
    server.clear_log()
    with pytest.raises(QueryError, match="number or date"):
        client.aggregate(histogram={"results.material.chemical_formula_hill": 1}, schema=schema)
    assert server.requests == []
    with pytest.raises(ValidationError):  # without a schema the server's 422 says the same
        client.aggregate(histogram={"upload_id": 1})


def test_explain_says_what_a_bulk_download_costs_before_it_starts() -> None:
    from archivemap.server import LocalServer

    from .conftest import SAMPLES

    with LocalServer(SAMPLES / "archives") as server:
        client = Client(server.url, rate=10)
        plan = client.explain(None, {"workflow": "*"}, sample=2, batch_size=2)
        archive_requests = [r for r in server.requests if r.path.endswith("archive/query")]
        assert plan.entries == 3 and plan.sampled == 2 and len(archive_requests) == 2
        assert plan.requests == 2  # the archives paged themselves: two pages of two
        assert plan.approx_bytes > 0 and plan.approx_seconds == pytest.approx(0.2)
        assert "3 entries" in str(plan)
        server.clear_log()  # and that is what the download costs
        assert len(list(client.archives_raw(None, {"workflow": "*"}, batch_size=2))) == 3
        assert len(server.requests) == plan.requests


def test_shards_split_a_query_by_aggregation_and_cover_it_once() -> None:
    from archivemap.server import LocalServer

    from .conftest import SAMPLES

    with LocalServer(SAMPLES / "archives") as server:
        client = Client(server.url)
        everything = sorted(e["entry_id"] for e in client.entries(None))
        shards = client.shards(None, by="entry_id", max_entries=2)
        assert len(shards) == 2
        found = [e["entry_id"] for shard in shards for e in client.entries(shard)]
        assert sorted(found) == everything  # each entry in exactly one shard
        with pytest.raises(QueryError):
            client.shards(None, by="no_such_key", schema=default_schema())
