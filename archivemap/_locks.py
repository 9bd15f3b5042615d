"""Locks that a forked child process gets back unlocked.

A lock held by another thread at the moment of ``os.fork()`` stays locked in the child
forever: the thread that would release it does not exist there. Python does not reset user
locks, and fork is the default start method of ``multiprocessing`` on Linux up to Python
3.13, so a notebook with a background thread (loading an archive, importing pint for its
first unit) and a ``multiprocessing.Pool`` could leave the pool's workers hanging in the
first archivemap call that takes such a lock. Every :class:`ForkSafeLock` is replaced by a
fresh one in the child (``os.register_at_fork``).
"""

from __future__ import annotations

import os
import threading
import weakref
from types import TracebackType
from typing import Any

__all__ = ["ForkSafeLock"]


class ForkSafeLock:
    """A ``threading.RLock`` (reentrant) or ``Lock`` that a forked child gets back unlocked."""

    __slots__ = ("_lock", "_reentrant", "__weakref__")

    def __init__(self, reentrant: bool = True) -> None:
        self._reentrant = reentrant
        self._lock: Any = threading.RLock() if reentrant else threading.Lock()
        _ALL.add(self)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return bool(self._lock.acquire(blocking, timeout))

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return bool(self._lock.acquire())

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._lock.release()

    def _renew(self) -> None:
        self._lock = threading.RLock() if self._reentrant else threading.Lock()


_ALL: weakref.WeakSet[ForkSafeLock] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for lock in list(_ALL):
        lock._renew()


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
