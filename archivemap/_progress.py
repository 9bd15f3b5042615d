"""One progress display for every long operation, shown where a human watches.

``Progress(None)`` (the default of the library's ``progress=`` arguments that follow it) is on
when someone is watching: stderr is a terminal (the CLI), or the code runs in a Jupyter
kernel; it is off in scripts, pipes, CI and tests. ``True``/``False`` force it.

What it draws, best first:

- in a notebook with ipywidgets: ``tqdm.notebook``'s bar (a widget, not a stderr stream);
- in a notebook without ipywidgets: one line of text updated in place through IPython's
  display (no pink stderr box, no ``TqdmWarning``);
- in a terminal: ``tqdm``'s bar on stderr when tqdm is installed (``pip install
  'archivemap[progress]'``), else a ``\\r``-updated line on stderr.

Nothing is ever written to stdout: that belongs to results (``archivemap query … | jq``).
"""

from __future__ import annotations

import importlib
import sys
import time
from typing import Any

__all__ = ["Progress", "in_notebook", "watched"]


def in_notebook() -> bool:
    """Whether the code runs in a Jupyter kernel (IPython with a ZMQ shell)."""
    shell_module = sys.modules.get("IPython")
    if shell_module is None:
        return False
    try:
        shell = shell_module.get_ipython()
    except AttributeError:
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def watched() -> bool:
    """Whether a human is watching: stderr is a terminal, or this is a notebook."""
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):
        tty = False
    return tty or in_notebook()


def _optional(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


class _NotebookLine:
    """A line of text updated in place in a notebook cell's output (IPython display)."""

    def __init__(self) -> None:
        display = importlib.import_module("IPython.display")
        self._display = display
        self._handle = display.display(display.Pretty(""), display_id=True)

    def show(self, text: str) -> None:
        self._handle.update(self._display.Pretty(text))


class Progress:
    """A progress display that costs nothing when off.

    Args:
        enabled: ``None`` (on where a human watches, see :func:`watched`), ``True`` or
            ``False``.
        unit: what is counted, for the rate (``archive``).
        desc: the label in front of the count.
    """

    def __init__(self, enabled: bool | None = None, unit: str = "archive", desc: str = "archives") -> None:
        self.unit = unit
        self.desc = desc
        self.enabled = watched() if enabled is None else bool(enabled)
        self.total: int | None = None
        self.count = 0
        self._bar: Any = None
        self._line: _NotebookLine | None = None
        self._started = time.monotonic()
        self._drawn = 0.0

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more done."""
        if not self.enabled:
            return
        if self.count == 0:
            self._started = time.monotonic()  # the rate counts from the first item, not setup
        self.count += n
        if self._bar is None:
            self._bar = self._make_bar()
        if self._bar is not False:
            if self.total is not None and self._bar.total != self.total:
                self._bar.total = self.total
                self._bar.refresh()
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._drawn >= 0.2 or self.count == self.total:
            self._drawn = now
            self._draw(now)

    def _text(self, now: float) -> str:
        elapsed = max(now - self._started, 1e-9)
        of = f"/{self.total}" if self.total is not None else ""
        rate = f" ({self.count / elapsed:.1f} {self.unit}/s)" if elapsed >= 0.5 else ""
        return f"{self.desc} {self.count}{of}{rate}"

    def _draw(self, now: float) -> None:
        if in_notebook():
            if self._line is None:
                self._line = _NotebookLine()
            self._line.show(self._text(now))
            return
        sys.stderr.write("\r" + self._text(now))
        sys.stderr.flush()

    def _make_bar(self) -> Any:
        options = {"total": self.total, "unit": self.unit, "desc": self.desc}
        if in_notebook():
            if _optional("ipywidgets") is None:
                return False  # tqdm would fall back to a stderr stream and warn: draw a line
            notebook = _optional("tqdm.notebook")
            return notebook.tqdm(**options) if notebook is not None else False
        std = _optional("tqdm")
        return std.tqdm(file=sys.stderr, **options) if std is not None else False

    def close(self) -> None:
        """End the display (a final line with the count and rate)."""
        if not self.enabled:
            return
        if self._bar:
            self._bar.close()
        elif self.count:
            now = time.monotonic()
            self._draw(now)
            if self._line is None:
                sys.stderr.write("\n")
                sys.stderr.flush()
