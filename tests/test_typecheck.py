"""The library type-checks: mypy over archivemap/ reports no errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import REPO


def test_mypy_is_clean_on_the_library(mypy_cache: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "archivemap", "--ignore-missing-imports", "--cache-dir", str(mypy_cache)],
        cwd=REPO, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
