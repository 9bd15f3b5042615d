"""The real NOMAD exports (../shared/nomad-data/metainfo): generate, import, type-check.

Skipped when the corpus is not next to the repository.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from archivemap.metainfo.exports import load_environment
from archivemap.metainfo.fields import META_KEY, field_meta
from archivemap.naming import python_name

from ..conftest import forget_generated
from .conftest import import_generated, mypy_errors, run_mypy_packages, run_python

from archivemap_codegen import generate

pytestmark = pytest.mark.shared

EXPORTS = ["nomad-2.0.0-metainfo.json", "nomad-gui-artifacts-metainfo.json"]


def package_name(export: str) -> str:
    return "full_" + export.split("-")[1].replace(".", "_")


@pytest.fixture(scope="module")
def generated_root(shared_metainfo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Both exports generated once, side by side (the tests only read the packages)."""
    root = tmp_path_factory.mktemp("full-exports")
    for export in EXPORTS:
        assert generate(shared_metainfo / export, root, package_name=package_name(export)) == 0
    yield root
    for export in EXPORTS:  # later Schemas of these exports must not pick these packages
        forget_generated(package_name(export))


@pytest.fixture(params=EXPORTS, ids=["2.0.0", "gui-artifacts"])
def generated(request: pytest.FixtureRequest, shared_metainfo: Path, generated_root: Path):
    """(export, root, package, None) per export; speed lives in benchmarks/bench_codegen.py."""
    return shared_metainfo / request.param, generated_root, package_name(request.param), None


@pytest.fixture(scope="module")
def mypy_of_both(generated_root: Path):
    """One mypy run over both generated packages."""
    return run_mypy_packages(generated_root, [package_name(e) for e in EXPORTS])


@pytest.mark.parametrize("order", ["sorted", "reversed", "shuffled"])
def test_all_modules_import_in_any_order(generated, order: str) -> None:
    _, root, name, _ = generated
    code = (
        f"import importlib, random, {name} as pkg\n"
        "mods = sorted(pkg.MODULES)\n"
        f"if {order!r} == 'reversed': mods.reverse()\n"
        f"if {order!r} == 'shuffled': random.Random(7).shuffle(mods)\n"
        "for m in mods:\n"
        f"    importlib.import_module('{name}.' + m)\n"
        "for qn in pkg.CLASSES:\n"
        "    assert pkg.get_class(qn).m_qualified_name == qn or qn in pkg.ALIASES\n"
        "for alias in pkg.ALIASES:\n"
        "    pkg.get_class(alias)\n"
        "for def_id in pkg.DEFINITION_IDS:\n"
        "    pkg.get_class(def_id)\n"
    )
    result = run_python(code, root)
    assert result.returncode == 0, result.stderr[-3000:]


def test_field_metadata_equals_the_runtime(generated) -> None:
    source, root, name, _ = generated
    pkg = import_generated(root, name)
    env = load_environment(source)
    for sdef in env.all_sections():
        cls = pkg.get_class(sdef.qualified_name)
        got = {f.name: f.metadata[META_KEY] for f in attrs.fields(cls)}
        expected = {python_name(n): field_meta(p, python_name(n)) for n, p in sdef.all_properties.items()}
        assert got == expected, sdef.qualified_name


def test_mypy_reports_no_errors(generated, mypy_of_both) -> None:
    _, _, name, _ = generated
    errors = mypy_errors(mypy_of_both, name)
    assert errors == [], "\n".join(errors)[-5000:] + mypy_of_both.stderr[-2000:]
