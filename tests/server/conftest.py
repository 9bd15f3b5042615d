"""Fixtures for the local server tests: real HTTP on 127.0.0.1, real archives when present.

The shared NOMAD corpus is ``../shared`` beside the repository (CI clones the repository with
``shared`` next to it), never an absolute path: the ``shared_data`` fixture of tests/conftest.py,
which also skips the tests that need it when it is absent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from archivemap.server import LocalServer

VASP_ENTRY_ID = "1WGSYo1RrGFEIcM17Re4kjHC7k6p"
VASP_FILE = "vasp-si16-singlepoint.recorded.archive.json"


def small_archive(entry_id: str, upload_id: str = "up1", elements: list[str] | None = None) -> dict[str, Any]:
    """A tiny synthetic archive with references, for tests that must not need ../shared."""
    return {
        "metadata": {
            "entry_id": entry_id,
            "upload_id": upload_id,
            "mainfile": f"{entry_id}/vasprun.xml",
            "parser_name": "parsers/vasp",
        },
        "results": {"material": {"elements": elements or ["Si"], "chemical_formula_hill": "".join(elements or ["Si"])}},
        "run": [
            {
                "program": {"name": "VASP"},
                "method": [{"label": "m0"}],
                "system": [{"type": "bulk", "atoms": {"labels": ["Si", "Si"]}}, {"type": "surface"}],
                "calculation": [
                    {"energy": {"total": {"value": -1.0}}, "system_ref": "#/run/0/system/0", "method_ref": "#/run/0/method/0"},
                    {"energy": {"total": {"value": -2.0}}, "system_ref": "#/run/0/system/1", "method_ref": "/run/0/method/0"},
                    {"energy": {"total": {"value": -3.0}}, "system_ref": "#/run/0/system/9"},
                ],
            }
        ],
        "workflow": [
            {
                "calculation_result_ref": "#/run/0/calculation/1",
                "calculations_ref": ["#/run/0/calculation/0", "#/run/0/calculation/1"],
                "task": [{"input_workflow": "#/workflow/0", "output_calculation": "#/run/0/calculation/0"}],
            }
        ],
    }


@pytest.fixture(scope="session")
def make_archive() -> Any:
    """The :func:`small_archive` builder (test modules cannot import conftest)."""
    return small_archive


@pytest.fixture(scope="session")
def shared_archives(shared_data: Path) -> Path:
    """The shared archives folder (skipped without ../shared)."""
    return shared_data / "archives"


@pytest.fixture(scope="session")
def vasp_archive(shared_archives: Path) -> dict[str, Any]:
    """The recorded VASP archive (read-only: the server shares it)."""
    import json

    return json.loads((shared_archives / VASP_FILE).read_text())


@pytest.fixture(scope="session")
def corpus_server(shared_archives: Path) -> Iterator[LocalServer]:
    """One server over the shared corpus for the whole session (no faults, no auth)."""
    with LocalServer(shared_archives) as server:
        yield server


@pytest.fixture(scope="module")
def small_server() -> Iterator[LocalServer]:
    """A server over three synthetic entries in two uploads."""
    entries = {
        "entryA": small_archive("entryA", "up1", ["Si"]),
        "entryB": small_archive("entryB", "up1", ["Ga", "As"]),
        "entryC": small_archive("entryC", "up2", ["Si", "O"]),
    }
    with LocalServer(entries) as server:
        yield server


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http
