"""Helpers for the generator's tests: paths, generating into tmp dirs, importing, mypy."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from archivemap_codegen import generate

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"
SAMPLE_METAINFO = SAMPLES / "metainfo.json"
SHARED = REPO.parent / "shared"
METAINFO_DIR = SHARED / "nomad-data" / "metainfo"


def subprocess_env(*paths: Path) -> dict[str, str]:
    """Environment for a child interpreter that can import packages generated under paths."""
    env = dict(os.environ)
    parts = [str(p) for p in paths]
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def run_python(code: str, *paths: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (the venv's) with ``paths`` importable."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=subprocess_env(*paths),
        timeout=timeout,
        cwd=str(paths[0]) if paths else None,
    )


def run_mypy(
    root: Path, package: str, *modules: str, timeout: float = 1800
) -> subprocess.CompletedProcess[str]:
    """mypy over a generated package; errors in imported (hand-written) modules are not ours.

    ``--follow-imports=silent`` still type-checks the generated code against archivemap,
    but reports only errors in the generated package.
    """
    pytest.importorskip("mypy")
    env = subprocess_env()
    env["MYPYPATH"] = str(REPO)  # the editable install's import hook is invisible to mypy
    return subprocess.run(
        [
            sys.executable, "-m", "mypy", "--follow-imports=silent", "--no-error-summary",
            "--hide-error-context", "--warn-unused-ignores", "--cache-dir", str(root / ".mypy_cache"), "-p", package,
            *[arg for m in modules for arg in ("-m", m)],
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(root),
        timeout=timeout,
    )


def import_generated(root: Path, package: str) -> ModuleType:
    """Import a generated package in this process (each test uses its own package name)."""
    sys.path.insert(0, str(root))
    try:
        importlib.invalidate_caches()
        return importlib.import_module(package)
    finally:
        sys.path.remove(str(root))


@pytest.fixture
def shared_metainfo() -> Path:
    if not METAINFO_DIR.is_dir():
        pytest.skip(f"needs the NOMAD corpus at {METAINFO_DIR} (../shared next to the repo)")
    return METAINFO_DIR


@pytest.fixture
def sample_package(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Path, str]]:
    """The sample metainfo generated into ``tmp_path/<unique name>``; modules removed after."""
    name = "gen_" + "".join(ch if ch.isalnum() else "_" for ch in request.node.name)[:60]
    assert generate(SAMPLE_METAINFO, tmp_path, package_name=name) == 0
    yield tmp_path, name
    for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[mod]
