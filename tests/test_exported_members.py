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
