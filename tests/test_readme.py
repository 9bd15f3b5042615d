"""Every code block in the README runs: Python blocks in one namespace, shell commands too."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest

from .conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, flags=re.S)


def test_python_blocks_run_in_order(monkeypatch, capsys) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": "__readme__"}
    python_blocks = [code for lang, code in BLOCKS if lang == "python"]
    assert len(python_blocks) >= 6
    for i, code in enumerate(python_blocks):
        try:
            exec(compile(code, f"README.md python block {i + 1}", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the failure message is the point
            pytest.fail(f"README python block {i + 1} failed: {type(exc).__name__}: {exc}\n{code}")
    out = capsys.readouterr().out
    assert "electron_volt" in out


def _commands() -> list[str]:
    commands = []
    for lang, code in BLOCKS:
        if lang != "bash":
            continue
        for line in code.splitlines():
            command = line.split("#", 1)[0].strip()
            for part in command.split("&&"):
                part = part.strip()
                if part.startswith("archivemap "):
                    commands.append(part)
    return commands


def test_shell_commands_run_in_order(tmp_path) -> None:
    """``pip install`` and ``pytest`` are what CI itself runs; the archivemap commands run here."""
    (tmp_path / "samples").symlink_to(REPO / "samples")
    commands = _commands()
    assert any(c.startswith("archivemap demo") for c in commands)
    for command in commands:
        argv = [sys.executable, "-m", "archivemap.cli", *shlex.split(command)[1:]]
        env = {**os.environ, "MPLBACKEND": "Agg"}
        result = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, env=env)
        assert result.returncode == 0, f"{command}: {result.stderr}"
