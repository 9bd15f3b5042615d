"""The recorded RequiredReader outputs E1-E9 of spec §4.8, asked over real HTTP."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import requests

from archivemap.server import LocalServer

VASP_ENTRY_ID = "1WGSYo1RrGFEIcM17Re4kjHC7k6p"
UPLOAD = "archive_browser_test"


def ask(server: LocalServer, required: Any, entry_id: str = VASP_ENTRY_ID) -> requests.Response:
    return requests.post(f"{server.url}/entries/{entry_id}/archive/query", json={"required": required}, timeout=10)


def archive_of(server: LocalServer, required: Any, entry_id: str = VASP_ENTRY_ID) -> dict[str, Any]:
    response = ask(server, required, entry_id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["entry_id"] == entry_id
    assert body["required"] == required
    assert body["data"]["entry_id"] == entry_id
    return body["data"]["archive"]


def test_e1_exact_subtree(corpus_server: LocalServer, vasp_archive: dict[str, Any]) -> None:
    out = archive_of(corpus_server, {"run[0]": {"calculation[0]": "*"}})
    assert out == {"run": [{"calculation": [vasp_archive["run"][0]["calculation"][0]]}], "m_ref_archives": {}}
    calc = out["run"][0]["calculation"][0]
    assert calc["system_ref"] == "#/run/0/system/0"
    assert calc["energy"]["total"] == {"value": -1.3893980273911905e-17}
    assert len(calc["scf_iteration"]) == 17


def test_e2_leaf_and_negative_index(corpus_server: LocalServer) -> None:
    out = archive_of(corpus_server, {"run": {"calculation[-1]": {"energy": {"total": "*"}}}})
    assert out == {"run": [{"calculation": [{"energy": {"total": {"value": -1.3893980273911905e-17}}}]}], "m_ref_archives": {}}


E3_REQUIRED = {
    "workflow": {
        "calculation_result_ref": {"energy": {"free": "*"}, "system_ref": {"chemical_composition_hill": "*"}}
    }
}


def test_e3_reference_placed_at_original_path(corpus_server: LocalServer) -> None:
    assert archive_of(corpus_server, E3_REQUIRED) == {
        "run": [
            {
                "system": [{"chemical_composition_hill": "Si16"}],
                "calculation": [
                    {"energy": {"free": {"value": -1.3893980273911905e-17}}, "system_ref": "/run/0/system/0"}
                ],
            }
        ],
        "workflow": [{"calculation_result_ref": "/run/0/calculation/0"}],
        "m_ref_archives": {},
    }


def test_e4_resolve_inplace(corpus_server: LocalServer) -> None:
    assert archive_of(corpus_server, {**E3_REQUIRED, "resolve-inplace": True}) == {
        "workflow": [
            {
                "calculation_result_ref": {
                    "energy": {"free": {"value": -1.3893980273911905e-17}},
                    "system_ref": {"chemical_composition_hill": "Si16"},
                }
            }
        ],
        "m_ref_archives": {},
    }


def test_e5_directives_keep_reference_strings(corpus_server: LocalServer) -> None:
    out = archive_of(corpus_server, {"run": {"calculation[0]": {"system_ref": "*", "method_ref": "include"}}})
    assert out == {
        "run": [{"calculation": [{"system_ref": "#/run/0/system/0", "method_ref": "#/run/0/method/0"}]}],
        "m_ref_archives": {},
    }


E6_SOURCE = {
    "metadata": {"entry_id": "e6-source", "upload_id": UPLOAD, "mainfile": "e6.archive.json"},
    "run": [
        {
            "calculation": [
                {
                    "system_ref": f"../upload/archive/{VASP_ENTRY_ID}#/run/0/system/0",
                    "method_ref": "#/run/0/method/0",
                }
            ]
        }
    ],
}
E6_REQUIRED = {
    "run": {
        "calculation": {
            "system_ref": {"chemical_composition_hill": "*", "atoms": {"labels": "*"}},
            "method_ref": "*",
        }
    }
}


@pytest.fixture(scope="module")
def e6_server(vasp_archive: dict[str, Any]) -> Any:
    with LocalServer({VASP_ENTRY_ID: vasp_archive, "e6-source": E6_SOURCE}) as server:
        yield server


def test_e6_cross_entry_reference(e6_server: LocalServer) -> None:
    url = f"../uploads/{UPLOAD}/archive/{VASP_ENTRY_ID}"
    assert archive_of(e6_server, E6_REQUIRED, "e6-source") == {
        "run": [{"calculation": [{"system_ref": f"{url}#/run/0/system/0", "method_ref": "#/run/0/method/0"}]}],
        "m_ref_archives": {
            url: {
                "run": [{"system": [{"chemical_composition_hill": "Si16", "atoms": {"labels": ["Si"] * 16}}]}],
                "m_def": "nomad.datamodel.EntryArchive",
            }
        },
    }


def test_e6_cross_entry_reference_inplace(e6_server: LocalServer) -> None:
    out = archive_of(e6_server, {**E6_REQUIRED, "resolve-inplace": True}, "e6-source")
    assert out == {
        "run": [
            {
                "calculation": [
                    {
                        "system_ref": {"chemical_composition_hill": "Si16", "atoms": {"labels": ["Si"] * 16}},
                        "method_ref": "#/run/0/method/0",
                    }
                ]
            }
        ],
        "m_ref_archives": {},
    }


def test_e7_out_of_range_and_slices(corpus_server: LocalServer) -> None:
    out = archive_of(corpus_server, {"run": {"calculation[5]": "*", "system[0]": {"type": "*"}}})
    assert out == {"run": [{"system": [{"type": "bulk"}]}], "m_ref_archives": {}}
    out = archive_of(corpus_server, {"run": {"calculation[0]": {"scf_iteration[1:3]": {"energy": {"total": "*"}}}}})
    values = [item["energy"]["total"]["value"] for item in out["run"][0]["calculation"][0]["scf_iteration"]]
    assert values == [-1.2724077141049626e-17, -1.4088157814237713e-17]


def test_e8_wildcard_and_exclude(corpus_server: LocalServer, vasp_archive: dict[str, Any]) -> None:
    out = archive_of(corpus_server, {"results": {"*": "*", "material": "exclude", "properties": "exclude"}})
    assert out == {"results": {"method": vasp_archive["results"]["method"]}, "m_ref_archives": {}}
    response = ask(corpus_server, {"run": {"*": "exclude", "program": "*"}})
    assert response.status_code == 400
    assert response.json() == {"detail": "unknown directive exclude"}


def test_e9_include_resolved_cycle_is_a_500(corpus_server: LocalServer) -> None:
    response = ask(corpus_server, {"workflow": {"task[0]": "include-resolved"}})
    assert response.status_code == 500
    detail = response.json()["detail"]
    assert detail["exception_class"] == "RecursionError"
    assert set(detail) >= {"reason", "exception", "exception_class"}
    # the server keeps serving after it
    assert ask(corpus_server, "*").status_code == 200


def test_errors_of_section_4_6(corpus_server: LocalServer) -> None:
    response = ask(corpus_server, {"results[0]": "*"})
    assert (response.status_code, response.json()) == (400, {"detail": "cannot use list key on none list results"})
    response = ask(corpus_server, {"run": {"calculation[x]": "*"}})
    assert (response.status_code, response.json()) == (
        422, {"detail": [{"msg": "invalid required key", "loc": ["calculation[x]"]}]},
    )
    response = ask(corpus_server, {"run": "*", "resolve-inplace": "yes"})
    assert (response.status_code, response.json()) == (
        422, {"detail": [{"msg": "resolve-inplace is not a bool", "loc": ["required", "resolve-inplace"]}]},
    )
    response = ask(corpus_server, "*", entry_id="no-such-entry")
    assert (response.status_code, response.json()) == (
        404, {"detail": "The entry does not exist or is not visible to you."},
    )


def test_full_archive_get_and_star(corpus_server: LocalServer, vasp_archive: dict[str, Any]) -> None:
    before = copy.deepcopy(vasp_archive)
    response = requests.get(f"{corpus_server.url}/entries/{VASP_ENTRY_ID}/archive", timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["required"] == "*"
    assert body["data"]["upload_id"] == UPLOAD
    assert body["data"]["parser_name"] == "parsers/vasp"
    assert body["data"]["archive"] == {**json.loads(json.dumps(vasp_archive)), "m_ref_archives": {}}
    archive_of(corpus_server, E3_REQUIRED)
    assert vasp_archive == before  # answering never mutates the shared archive


def test_inter_entry_eln_reference(corpus_server: LocalServer) -> None:
    """The recorded powder-mixture entry points into the substance list with a slash-less fragment."""
    required = {"data": {"test_1": {"name": "*"}}}
    out = archive_of(corpus_server, required, "4WgzB6xcTzWB_Xk9UNUH4HB3IRKJ")
    url = "../uploads/references_upload_id1/archive/AkeMNBjzHdEWJmv2w8GVaw9drWRu"
    assert out["data"]["test_1"] == f"{url}#/data/contents/3"
    target = out["m_ref_archives"][url]
    assert target["m_def"] == "nomad.datamodel.EntryArchive"
    assert target["data"]["contents"][:3] == [None, None, None]
    assert len(target["data"]["contents"]) == 4
