"""The Hypothesis properties of the parsers and the round trip, at 10,000 examples each.

Too slow for every CI run (the suite uses 100 examples, see tests/conftest.py); run it
nightly or before a release. It reports each property's time as a ratio to the fastest one in
the same run, and fails (exit 1) when a property fails.

    python benchmarks/nightly_properties.py            # all properties, 10,000 examples
    python benchmarks/nightly_properties.py -k round   # a subset (pytest's -k)
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROPERTIES = [
    "tests/test_roundtrip_property.py",
    "tests/test_required.py",
    "tests/codegen/test_hostile.py",
]


def main(argv: list[str]) -> int:
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=0",
        "--hypothesis-profile=nightly", "-m", "not shared or shared", *PROPERTIES, *argv,
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    durations = [
        (float(m.group(1)), m.group(2))
        for m in re.finditer(r"^([\d.]+)s call\s+(\S+)", result.stdout, re.MULTILINE)
    ]
    if durations:
        fastest = min(d for d, _ in durations) or 1e-9
        print(f"{'property':70} {'seconds':>8} {'× fastest':>10}")
        for seconds, name in sorted(durations, reverse=True)[:25]:
            print(f"{name[:70]:70} {seconds:8.2f} {seconds / fastest:10.1f}")
    print(result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-2000:])
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
