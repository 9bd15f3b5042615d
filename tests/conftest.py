"""Shared test setup: paths, the ``shared`` marker, Hypothesis profiles, the mypy cache.

Paths
    ``REPO`` is the repository, ``SAMPLES`` its bundled samples, ``SHARED`` the real NOMAD data
    at ``../shared/nomad-data`` beside the repository (may be absent).

Real NOMAD data (the ``shared`` marker)
    A test that needs ``SHARED`` says so with ``@pytest.mark.shared`` (or ``pytestmark``), or by
    using the ``shared_data`` fixture, directly or through another fixture (``schema_2_0``,
    ``shared_metainfo``, ``corpus_server`` ...). Without ``SHARED`` every such test is skipped,
    with the reason, by :func:`pytest_collection_modifyitems` below: the only place that looks.
    (``needs_shared`` is kept as an alias of the marker.)

Hypothesis profiles
    ``ci``: 100 examples per test (Hypothesis's default), and ``dev``: 20, for quick local runs.
    Both drop the deadline and the ``too_slow`` health check (the only timing-based one), as
    attrs and cattrs do: on a loaded machine example generation is slow, which is not a bug.
    The profile is ``$ARCHIVEMAP_HYPOTHESIS_PROFILE`` if set, else ``ci`` when ``$CI`` is set
    (non-empty), else ``dev``; ``.ci/run`` exports ``ARCHIVEMAP_HYPOTHESIS_PROFILE=ci``.
    ``pytest --hypothesis-profile=NAME`` overrides both. A test sets ``max_examples`` itself
    only when it needs a different count; never a deadline or a health check.

mypy
    The session-scoped ``mypy_cache`` fixture is the one cache folder every mypy run in the
    session uses (``tests/test_typecheck.py`` and ``tests/codegen``), so standard library,
    third-party and archivemap modules are analysed once, not once per run.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
SHARED = REPO.parent / "shared" / "nomad-data"
SHARED_REASON = f"real NOMAD data not found at {SHARED} (../shared/nomad-data beside the repo)"

# The parsed-metainfo cache (archivemap.metainfo.cache) goes to a folder of this session, never
# the user's real cache folder; subprocesses started by tests inherit the variable.
_CACHE_DIR = tempfile.mkdtemp(prefix="archivemap-test-cache-")
os.environ["ARCHIVEMAP_CACHE_DIR"] = _CACHE_DIR
atexit.register(shutil.rmtree, _CACHE_DIR, True)

# --------------------------------------------------------------------------- Hypothesis

_TIMING_FREE = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("ci", max_examples=100, print_blob=True, **_TIMING_FREE)
settings.register_profile("dev", max_examples=20, **_TIMING_FREE)
# benchmarks/nightly_properties.py: the parser and round-trip properties at 10,000 examples
settings.register_profile("nightly", max_examples=10_000, print_blob=True, **_TIMING_FREE)
HYPOTHESIS_PROFILE = os.environ.get("ARCHIVEMAP_HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
settings.load_profile(HYPOTHESIS_PROFILE)

# --------------------------------------------------------------------------- ../shared

needs_shared = pytest.mark.shared  # the old name of the marker


def skip_without_shared() -> None:
    """Skip the calling test (or fixture) when the real NOMAD data is absent."""
    if not SHARED.is_dir():
        pytest.skip(SHARED_REASON)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without ../shared, skip every test marked ``shared`` or using the ``shared_data`` fixture."""
    if SHARED.is_dir():
        return
    skip = pytest.mark.skip(reason=SHARED_REASON)
    for item in items:
        if item.get_closest_marker("shared") or "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(skip)


def pytest_report_header(config: pytest.Config) -> str:
    return f"NOMAD data: {SHARED if SHARED.is_dir() else 'absent, tests marked shared are skipped'}"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/nomad-data`` (tests using it are skipped when it is absent)."""
    skip_without_shared()  # only reached through getfixturevalue: the hook skipped the others
    return SHARED


def shared_archives() -> list[Path]:
    """The real archives in ../shared (empty when it is absent)."""
    if not SHARED.is_dir():
        return []
    return sorted((SHARED / "archives").glob("*.archive.json"))


# --------------------------------------------------------------------------- generated packages


def forget_generated(package: str, *, unimport: bool = True) -> None:
    """Undo what importing a generated package did to this process.

    Importing registers the package for its metainfo file, so every later ``Schema`` of that
    file (and ``as_schema``'s cache) would use it; once its folder is off ``sys.path`` that
    makes results depend on test order (a fresh process cannot import it to unpickle).
    ``unimport`` also drops its modules from ``sys.modules``.
    """
    import sys

    from archivemap.archive import schema as schema_module

    for sha, module in list(schema_module._registered.items()):
        if module.__name__ == package:
            del schema_module._registered[sha]
    for key, cached in list(schema_module._cache.items()):
        generated = getattr(cached, "generated", None)
        if generated is not None and generated.__name__ == package:
            del schema_module._cache[key]
    if unimport:
        for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            del sys.modules[name]


# --------------------------------------------------------------------------- mypy


@pytest.fixture(scope="session")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one mypy cache folder of the session (runs with other options land in other
    subfolders of it, by target Python version, so they do not invalidate each other)."""
    return tmp_path_factory.mktemp("mypy-cache")


# --------------------------------------------------------------------------- schemas


@pytest.fixture(scope="session")
def schema_2_0(shared_data: Path):
    """The schema of NOMAD 2.0.0's metainfo export (loaded once per session)."""
    from archivemap.archive.schema import Schema

    return Schema(shared_data / "metainfo" / "nomad-2.0.0-metainfo.json")


@pytest.fixture(scope="session")
def schema_old(shared_data: Path):
    """The schema of the older GUI-artifact metainfo export."""
    from archivemap.archive.schema import Schema

    return Schema(shared_data / "metainfo" / "nomad-gui-artifacts-metainfo.json")


@pytest.fixture(scope="session")
def generated_2_0(tmp_path_factory: pytest.TempPathFactory, shared_data: Path):
    """A Schema whose classes were generated from the 2.0.0 export into a temp folder."""
    import sys

    from archivemap.archive.schema import Schema
    from archivemap_codegen.cli import generate

    out = tmp_path_factory.mktemp("generated")
    export = shared_data / "metainfo" / "nomad-2.0.0-metainfo.json"
    assert generate(export, out, package_name="nomad_classes_for_tests") == 0
    sys.path.insert(0, str(out))
    try:
        schema = Schema(export, classes="nomad_classes_for_tests")
    finally:
        sys.path.remove(str(out))
    forget_generated("nomad_classes_for_tests", unimport=False)  # only this schema uses them
    return schema
