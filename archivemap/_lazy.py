"""Modules imported by their first use, safely from several threads at once.

numpy and pint (with the dask pint imports when installed) are most of what ``import
archivemap`` would cost although only values with units or arrays need them, and msgspec is
only needed by the first parse; so they are imported when first used. ``lazy_loader`` (over
``importlib.util.LazyLoader``) did this until threads were found to be the first users: on
Python 3.11 its module turns into a plain, still empty module *before* the import runs, so the
other threads read ``module 'numpy' has no attribute 'float64'`` (7 of 8 threads, every time,
in tests/test_json.py's check). Python 3.12.3 added a lock there; 3.10 and 3.11 have none.

A :func:`deferred_import` module is a stand-in whose first missing attribute imports the real module
under one lock and copies its namespace in, so later reads are plain module-dict lookups (no
``__getattr__`` on hot paths); a name the real module makes on demand (its own PEP 562
``__getattr__``) is asked of the real module.
"""

from __future__ import annotations

import importlib
import types
from typing import Any

from archivemap._locks import ForkSafeLock

__all__ = ["deferred_import"]

# reentrant: importing numpy may touch another stand-in (pint → numpy); renewed in a forked
# child, where the thread that held it during the fork does not exist
_LOCK = ForkSafeLock()
_REAL = "__archivemap_real__"


class _Deferred(types.ModuleType):
    """A module whose import waits for the first attribute read (see the module docstring)."""

    def __getattr__(self, attr: str) -> Any:
        real = self.__dict__.get(_REAL)
        if real is None:
            with _LOCK:
                real = self.__dict__.get(_REAL)
                if real is None:
                    real = importlib.import_module(self.__name__)
                    namespace = {k: v for k, v in vars(real).items() if k not in ("__name__", "__spec__", "__loader__")}
                    self.__dict__.update(namespace)
                    self.__dict__[_REAL] = real
        if attr in self.__dict__:
            return self.__dict__[attr]
        return getattr(real, attr)


def deferred_import(name: str) -> Any:
    """A stand-in for module ``name``, imported (once, by one thread) when first used."""
    return _Deferred(name)
