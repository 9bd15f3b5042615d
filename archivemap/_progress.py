"""One progress display for every long operation: tqdm when installed, else a stderr line."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """A progress display that costs nothing when off: tqdm if installed, else a stderr line."""

    def __init__(self, enabled: bool, unit: str = "archive", desc: str = "archives") -> None:
        self.unit = unit
        self.desc = desc
        self.enabled = enabled
        self.total: int | None = None
        self.count = 0
        self._bar: Any = None
        self._started = time.monotonic()
        self._drawn = 0.0

    def advance(self) -> None:
        if not self.enabled:
            return
        self.count += 1
        if self._bar is None:
            self._bar = self._make_bar()
        if self._bar is not False:
            self._bar.total = self.total
            self._bar.update(1)
            return
        now = time.monotonic()
        if now - self._drawn >= 0.2 or self.count == self.total:
            self._drawn = now
            rate = self.count / max(now - self._started, 1e-9)
            of = f"/{self.total}" if self.total is not None else ""
            sys.stderr.write(f"\r{self.desc} {self.count}{of} ({rate:.1f}/s)")
            sys.stderr.flush()

    def _make_bar(self) -> Any:
        try:
            from tqdm.auto import tqdm  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            return False
        return tqdm(total=self.total, unit=self.unit, desc=self.desc)

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar:
            self._bar.close()
        elif self.count:
            sys.stderr.write("\n")
            sys.stderr.flush()
