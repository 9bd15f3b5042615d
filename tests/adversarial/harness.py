"""Run hostile input in a child process with hard limits on memory and time.

A hang or a memory blow-up must fail the test, not the machine: the child gets an address
space limit (``RLIMIT_AS``) and a wall-clock timeout; the parent only reads its exit status
and output. The limits are budgets for "bounded", generous enough for a busy 2-core machine.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: Budgets a single hostile input may use.
SECONDS = 60
MEMORY_BYTES = 1536 * 1024 * 1024


def _limit() -> None:  # runs in the child before exec
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))


def run_bounded(code: str, seconds: float = SECONDS) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter under the budgets; fail on timeout.

    Returns:
        The finished process (the caller asserts on ``returncode`` and ``stdout``).
    """
    try:
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=seconds,
            preexec_fn=_limit,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"hostile input ran longer than {seconds} s:\n{textwrap.dedent(code)}") from exc
