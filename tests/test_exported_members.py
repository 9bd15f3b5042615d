"""The public API is what archivemap/__init__.py exports, and importing it stays cheap."""

from __future__ import annotations

import subprocess
import sys

import archivemap


def test_all_is_sorted_and_importable() -> None:
    assert archivemap.__all__ == sorted(archivemap.__all__)
    for name in archivemap.__all__:
        assert getattr(archivemap, name) is not None, name


def test_import_does_not_load_heavy_dependencies() -> None:
    code = "import sys, archivemap; print(','.join(m for m in ('numpy','pint','networkx','requests') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_generated_package_is_found_for_its_metainfo(tmp_path, monkeypatch) -> None:
    from archivemap_codegen import generate

    from .conftest import SAMPLES

    assert generate(SAMPLES / "metainfo.json", tmp_path, package_name="found_by_sha") == 0
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("ARCHIVEMAP_CLASSES", "found_by_sha")
    monkeypatch.setattr("archivemap.archive.schema._registered", {})  # other tests import other packages
    schema = archivemap.Schema(SAMPLES / "metainfo.json")
    assert schema.generated is not None and schema.generated.__name__ == "found_by_sha"
    archive = archivemap.load(SAMPLES / "archives" / "si2-single-point.archive.json", schema)
    assert type(archive.run[0]).__module__ == "found_by_sha.runschema_run"
