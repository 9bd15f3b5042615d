"""The bundled server answers as NOMAD does: every request of NOMAD's own conformance corpus.

``../shared/nomad-data/conformance`` holds ~1,700 requests over the 12 archives of
``archives/`` with the answers of NOMAD 2.0.0's own entries router and ``RequiredReader``
(see its README). Each is replayed here over HTTP against a :class:`LocalServer` serving
those archives with NOMAD 2.0.0's metainfo, twice: as shipped in the package (the default of
``LocalServer(DIR)`` and ``archivemap serve DIR``) and as NOMAD's export file in
``../shared``; status and body are compared exactly
(dict key order aside), as the corpus README prescribes:

* ``status: 500`` answers compare ``reason``, ``exception`` and ``exception_class`` (the
  traceback text depends on the installation);
* lines with ``"skipped": "size"`` (answers over 200 kB were not stored) compare the status;
* ``entries/query`` data items compare on ``entry_id, upload_id, mainfile, parser_name``:
  the corpus replaced NOMAD's Elasticsearch by an emulation whose items carry only those
  four keys, while real NOMAD (and this server) return the whole search document.

A case the server answers differently must be listed in :data:`KNOWN_DIFFERENCES` with the
reason; listed cases are expected to differ (strict xfail), so the list cannot go stale.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from archivemap.server import LocalServer

NOMAD_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "nomad-data"
CONFORMANCE = NOMAD_DATA / "conformance"
ARCHIVES = NOMAD_DATA / "archives"
METAINFO = NOMAD_DATA / "metainfo" / "nomad-2.0.0-metainfo.json"
SEARCH_ITEM_KEYS = frozenset({"entry_id", "upload_id", "mainfile", "parser_name"})

#: case name -> why this server's answer differs from NOMAD's (keep it short and honest).
KNOWN_DIFFERENCES: dict[str, str] = {}


def _cases() -> list[dict[str, Any]]:
    """Every conformance line as ``{name, method, endpoint, body | raw, status, response, skipped}``."""
    files = [CONFORMANCE / f"{kind}.jsonl.gz" for kind in ("required", "queries", "errors")]
    if not all(path.is_file() for path in files) or not ARCHIVES.is_dir():
        return []
    cases: list[dict[str, Any]] = []
    with gzip.open(files[0], "rt", encoding="utf-8") as lines:
        for line in lines:
            case = json.loads(line)
            kind = "multi" if case["endpoint"] == "entries/archive/query" else "single"
            archive = case["archive"].split(".")[0]
            case["name"] = f"required/{archive}/{kind}/{case['kind']}/{case['spec_index']}"
            case["method"] = "POST"
            case["endpoint"] = case["endpoint"].replace("{id}", case["entry_id"])
            cases.append(case)
    for path, prefix in ((files[1], "queries"), (files[2], "errors")):
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            for line in lines:
                case = json.loads(line)
                case["name"] = f"{prefix}/{case['name']}"
                case.setdefault("method", "POST")
                cases.append(case)
    return cases


CASES = _cases()


def _params() -> list[Any]:
    if not CASES:
        reason = f"NOMAD conformance corpus not found at {CONFORMANCE} (expected ../shared beside the repository)"
        return [pytest.param(None, id="corpus-missing", marks=pytest.mark.skip(reason=reason))]
    params = []
    for case in CASES:
        marks = []
        if case["name"] in KNOWN_DIFFERENCES:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_DIFFERENCES[case["name"]]))
        params.append(pytest.param(case, id=case["name"], marks=marks))
    return params


@pytest.fixture(scope="module", params=["default", "export"])
def nomad_like(request: pytest.FixtureRequest) -> Iterator[LocalServer]:
    # "default": what `archivemap serve DIR` and LocalServer(DIR) give, with the metainfo
    # shipped in the package; "export": NOMAD's own export file from ../shared
    if request.param == "default":
        with LocalServer(ARCHIVES) as server:
            yield server
        return
    if not METAINFO.is_file():
        pytest.skip(f"NOMAD 2.0.0 metainfo export not found at {METAINFO}")
    with LocalServer(ARCHIVES, metainfo=METAINFO) as server:
        yield server


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def _send(http: requests.Session, server: LocalServer, case: dict[str, Any]) -> requests.Response:
    url = f"{server.url}/{case['endpoint']}"
    if "request_raw" in case:
        raw = case["request_raw"]
        data = raw.encode("utf-8") if isinstance(raw, str) else json.dumps(raw).encode("utf-8")
        return http.request(case["method"], url, data=data, headers={"Content-Type": "application/json"}, timeout=60)
    if case["method"] == "GET" or case.get("request") is None:
        return http.request(case["method"], url, timeout=60)
    return http.request(case["method"], url, json=case["request"], timeout=60)


def _comparable(case: dict[str, Any], body: Any) -> Any:
    """The part of an answer the corpus lets us compare (see the module docstring)."""
    if case["status"] == 500:
        detail = body.get("detail") if isinstance(body, dict) else None
        if not isinstance(detail, dict):
            return body
        return {key: detail.get(key) for key in ("reason", "exception", "exception_class")}
    if case["endpoint"] == "entries/query" and isinstance(body, dict) and isinstance(body.get("data"), list):
        items = [{k: v for k, v in item.items() if k in SEARCH_ITEM_KEYS} for item in body["data"]]
        return {**body, "data": items}
    return body


def test_corpus_is_complete() -> None:
    if not CASES:
        pytest.skip(f"NOMAD conformance corpus not found at {CONFORMANCE}")
    assert len(CASES) == 1560 + 45 + 77
    assert len({case["name"] for case in CASES}) == len(CASES)
    assert set(KNOWN_DIFFERENCES) <= {case["name"] for case in CASES}


@pytest.mark.shared
@pytest.mark.parametrize("case", _params())
def test_answers_as_nomad(case: dict[str, Any], nomad_like: LocalServer, http: requests.Session) -> None:
    response = _send(http, nomad_like, case)
    assert response.status_code == case["status"], response.text[:2000]
    if case.get("skipped") == "size":
        return
    got = _comparable(case, response.json())
    expected = _comparable(case, case["response"])
    assert got == expected
