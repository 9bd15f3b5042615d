"""Warnings that point at the user's line, not at archivemap's.

A ``SchemaMismatchWarning`` is about the user's data and the user's code that read it; a fixed
``stacklevel`` points somewhere inside the library whenever the call chain changes (lazy
loading, references, remote fetches). The level is counted instead: the first frame outside
this package.
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = ["warn_at_caller"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn_at_caller(message: str, category: type[Warning]) -> None:
    """Issue ``message`` attributed to the innermost frame outside archivemap."""
    frame = sys._getframe(1)  # our caller, which stacklevel=2 would name
    level = 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    warnings.warn(message, category, stacklevel=level)
