"""Shared test fixtures: where the real NOMAD data (../shared) and the samples are."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
SHARED = REPO.parent / "shared" / "nomad-data"
SHARED_REASON = f"real NOMAD data not found at {SHARED} (../shared/nomad-data beside the repo)"

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=SHARED_REASON)


def shared_archives() -> list[Path]:
    """The real archives in ../shared (empty when it is absent)."""
    if not SHARED.is_dir():
        return []
    return sorted((SHARED / "archives").glob("*.archive.json"))


@pytest.fixture(scope="session")
def schema_2_0():
    """The schema of NOMAD 2.0.0's metainfo export (loaded once per session)."""
    if not SHARED.is_dir():
        pytest.skip(SHARED_REASON)
    from archivemap.archive.schema import Schema

    return Schema(SHARED / "metainfo" / "nomad-2.0.0-metainfo.json")


@pytest.fixture(scope="session")
def schema_old():
    """The schema of the older GUI-artifact metainfo export."""
    if not SHARED.is_dir():
        pytest.skip(SHARED_REASON)
    from archivemap.archive.schema import Schema

    return Schema(SHARED / "metainfo" / "nomad-gui-artifacts-metainfo.json")


@pytest.fixture(scope="session")
def generated_2_0(tmp_path_factory):
    """A Schema whose classes were generated from the 2.0.0 export into a temp folder."""
    if not SHARED.is_dir():
        pytest.skip(SHARED_REASON)
    import sys

    from archivemap.archive.schema import Schema
    from archivemap_codegen.cli import generate

    out = tmp_path_factory.mktemp("generated")
    export = SHARED / "metainfo" / "nomad-2.0.0-metainfo.json"
    assert generate(export, out, package_name="nomad_classes_for_tests") == 0
    sys.path.insert(0, str(out))
    try:
        return Schema(export, classes="nomad_classes_for_tests")
    finally:
        sys.path.remove(str(out))
