"""Helpers for the generator's tests: paths, generating into tmp dirs, importing, mypy."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType

import pytest

from archivemap_codegen import generate

from ..conftest import forget_generated

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


_mypy_cache: list[Path] = []  # the session's shared cache, set by _share_mypy_cache


@pytest.fixture(scope="session", autouse=True)
def _share_mypy_cache(mypy_cache: Path) -> None:
    """Every :func:`run_mypy` of the session uses the one ``mypy_cache`` (tests/conftest.py)."""
    _mypy_cache[:] = [mypy_cache]


def run_mypy(
    root: Path, package: str, *modules: str, timeout: float = 1800
) -> subprocess.CompletedProcess[str]:
    """mypy over a generated package; errors in imported (hand-written) modules are not ours.

    ``--follow-imports=silent`` still type-checks the generated code against archivemap,
    but reports only errors in the generated package.
    """
    return run_mypy_packages(root, [package], modules, timeout=timeout)


def run_mypy_packages(
    root: Path, packages: Sequence[str], modules: Sequence[str] = (), timeout: float = 1800
) -> subprocess.CompletedProcess[str]:
    """One mypy run over several generated packages (and modules) under ``root``.

    The cache is the session's (archivemap, pint, the standard library are analysed once);
    :func:`mypy_errors` picks one package's errors out of the output.
    """
    pytest.importorskip("mypy")
    env = subprocess_env()
    env["MYPYPATH"] = str(REPO)  # the editable install's import hook is invisible to mypy
    cache = _mypy_cache[0] if _mypy_cache else root / ".mypy_cache"
    return subprocess.run(
        [
            sys.executable, "-m", "mypy", "--follow-imports=silent", "--no-error-summary",
            "--hide-error-context", "--warn-unused-ignores", "--cache-dir", str(cache),
            *[arg for p in packages for arg in ("-p", p)],
            *[arg for m in modules for arg in ("-m", m)],
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(root),
        timeout=timeout,
    )


def mypy_errors(result: subprocess.CompletedProcess[str], package: str) -> list[str]:
    """The output lines of :func:`run_mypy_packages` about ``package`` (its files under root).

    Fails the calling test when mypy did not run through (exit status 2) or reported an error
    outside every package and module it was asked to check (that could hide one of ours).
    """
    output = result.stdout[-5000:] + result.stderr[-2000:]
    assert result.returncode in (0, 1), output
    args = [str(a) for a in result.args]
    targets = [args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-p", "-m")]
    lines = result.stdout.replace(os.sep, "/").splitlines()
    if result.returncode == 1:
        prefixes = tuple(p for t in targets for p in (f"{t}/", f"{t}.py:"))
        stray = [ln for ln in lines if ": error:" in ln and not ln.startswith(prefixes)]
        assert not stray, output
        assert any(": error:" in ln for ln in lines), output
    return [ln for ln in lines if ln.startswith((f"{package}/", f"{package}.py:"))]


def import_generated(root: Path, package: str) -> ModuleType:
    """Import a generated package in this process (each test uses its own package name)."""
    sys.path.insert(0, str(root))
    try:
        importlib.invalidate_caches()
        return importlib.import_module(package)
    finally:
        sys.path.remove(str(root))


@pytest.fixture(scope="session")
def shared_metainfo(shared_data: Path) -> Path:
    """The metainfo exports of the NOMAD corpus (skipped without ../shared)."""
    return shared_data / "metainfo"


@pytest.fixture
def sample_package(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Path, str]]:
    """The sample metainfo generated into ``tmp_path/<unique name>``; forgotten after the test
    (modules and registration: see ``forget_generated`` in tests/conftest.py)."""
    name = "gen_" + "".join(ch if ch.isalnum() else "_" for ch in request.node.name)[:60]
    assert generate(SAMPLE_METAINFO, tmp_path, package_name=name) == 0
    yield tmp_path, name
    forget_generated(name)
