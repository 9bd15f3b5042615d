"""Progress: on where a human watches (terminal, notebook), off elsewhere, never on stdout."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from archivemap._progress import Progress, in_notebook, watched


class _Stream:
    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self.text = ""

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


def _no_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("tqdm", "tqdm.auto", "tqdm.notebook", "ipywidgets"):
        monkeypatch.setitem(sys.modules, name, None)


def _notebook(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A fake Jupyter kernel: IPython whose shell is a ZMQInteractiveShell, with a display."""
    shown: list[str] = []

    class ZMQInteractiveShell:
        pass

    class Handle:
        def update(self, obj: Any) -> None:
            shown.append(obj.text)

    class Pretty:
        def __init__(self, text: str) -> None:
            self.text = text

    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: ZMQInteractiveShell()  # type: ignore[attr-defined]
    display = types.ModuleType("IPython.display")
    display.Pretty = Pretty  # type: ignore[attr-defined]
    display.display = lambda obj, display_id=False: Handle()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", display)
    return shown


def test_off_where_nobody_watches(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stderr", _Stream(tty=False))
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert not watched() and not in_notebook()
    bar = Progress()
    bar.total = 3
    for _ in range(3):
        bar.advance()
    bar.close()
    assert sys.stderr.text == "" and capsys.readouterr().out == ""  # type: ignore[attr-defined]


def test_terminal_line_on_stderr_without_tqdm(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _no_tqdm(monkeypatch)
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    err = _Stream(tty=True)
    monkeypatch.setattr(sys, "stderr", err)
    bar = Progress(None, desc="graph")
    assert bar.enabled
    bar.total = 2
    bar.advance()
    bar.advance()
    bar.close()
    assert err.text.startswith("\rgraph 1/2") and err.text.rstrip().endswith("graph 2/2") and err.text.endswith("\n")
    assert "/s" not in err.text  # no bogus rate for a run shorter than half a second
    assert capsys.readouterr().out == ""


def test_tqdm_bar_on_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[dict[str, Any]] = []

    class FakeBar:
        def __init__(self, **options: Any) -> None:
            made.append(options)
            self.total = options["total"]
            self.n = 0

        def update(self, n: int) -> None:
            self.n += n

        def refresh(self) -> None:
            pass

        def close(self) -> None:
            made.append({"closed": self.n})

    fake = types.ModuleType("tqdm")
    fake.tqdm = FakeBar  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tqdm", fake)
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    bar = Progress(True, unit="archive", desc="archives")
    bar.total = 5
    for _ in range(5):
        bar.advance()
    bar.close()
    assert made[0]["file"] is sys.stderr and made[0]["total"] == 5 and made[-1] == {"closed": 5}


def test_notebook_without_ipywidgets_updates_one_line_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_tqdm(monkeypatch)
    shown = _notebook(monkeypatch)
    err = _Stream(tty=False)
    monkeypatch.setattr(sys, "stderr", err)
    assert in_notebook() and watched()
    bar = Progress()  # on by default in a notebook
    bar.total = 2
    bar.advance()
    bar.advance()
    bar.close()
    assert shown and shown[-1].startswith("archives 2/2")
    assert err.text == ""  # no pink stderr box, no TqdmWarning


def test_notebook_with_ipywidgets_uses_the_widget(monkeypatch: pytest.MonkeyPatch) -> None:
    _notebook(monkeypatch)
    made: list[str] = []

    class Widget:
        def __init__(self, **options: Any) -> None:
            made.append("widget")
            self.total = options["total"]

        def update(self, n: int) -> None:
            pass

        def refresh(self) -> None:
            pass

        def close(self) -> None:
            made.append("closed")

    notebook = types.ModuleType("tqdm.notebook")
    notebook.tqdm = Widget  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tqdm.notebook", notebook)
    monkeypatch.setitem(sys.modules, "ipywidgets", types.ModuleType("ipywidgets"))
    bar = Progress()
    bar.advance()
    bar.close()
    assert made == ["widget", "closed"]
