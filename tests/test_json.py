"""archivemap._json: JSON read exactly (big integers, NaN, lone surrogates) and written back."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from archivemap._json import dump_json, parse_json
from archivemap.errors import ArchiveDataError

# A fresh interpreter, so that msgspec is imported by the threads' first parse: on Python 3.11
# importlib's lazy modules answered "module 'msgspec' has no attribute 'DecodeError'" to
# threads that touched one while another was importing it.
_THREADS_FIRST = """
import threading
from archivemap._json import parse_json
barrier = threading.Barrier(16)
errors = []
def work():
    barrier.wait()
    try:
        assert parse_json(b'{"a": [1, 2]}') == {"a": [1, 2]}
        try:
            parse_json(b'{"a": ')
        except Exception as exc:
            assert type(exc).__name__ == "ArchiveDataError", repr(exc)
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=work) for _ in range(16)]
for t in threads: t.start()
for t in threads: t.join()
print(len(errors), errors[:1])
"""


def test_threads_may_be_the_first_to_parse() -> None:
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", _THREADS_FIRST], capture_output=True, text=True, check=True)
        assert out.stdout.startswith("0 "), out.stdout + out.stderr


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"x": "lone \\ud800"}', {"x": "lone \ud800"}),  # what Python's json.dumps writes
        ('{"x": NaN, "y": -Infinity}', None),
        ('{"big": 1180591620717411303424, "neg": -1180591620717411303425}', {"big": 2**70, "neg": -(2**70) - 1}),
        ('{"z": -0.0, "d": 1, "d": 2}', {"z": -0.0, "d": 2}),
        ('{"huge": 1e400}', {"huge": float("inf")}),  # as Python reads it: no float holds it
    ],
)
def test_what_python_writes_is_read_exactly(text: str, expected: Any) -> None:
    for data in (text, text.encode("utf-8")):
        parsed = parse_json(data)
        if expected is None:
            assert parsed["x"] != parsed["x"] and parsed["y"] == float("-inf")
        else:
            assert parsed == expected and [type(v) for v in parsed.values()] == [type(v) for v in expected.values()]


@pytest.mark.parametrize("data", [b'{"a": ', b"[1,]", b'"\xff"', b"\xef\xbb\xbf{}", b'{"x": NaN', b"[" * 100_000])
def test_what_is_no_json_is_a_typed_error(data: bytes) -> None:
    with pytest.raises(ArchiveDataError, match="not valid JSON"):
        parse_json(data, "here.json")


@pytest.mark.parametrize(
    "value",
    [
        {"big": 2**70 + 1, "neg": -(2**80) - 3, "x": [0.5, 1e300]},
        {"big": 2**70, 3: "int key", "b": {"a": 1}},
        {"s": "lone \ud800", "big": 2**65},
        {"s": "lone \ud800"},
    ],
)
@pytest.mark.parametrize("sort_keys", [False, True])
def test_dump_json_is_read_back_as_it_was(value: dict[Any, Any], sort_keys: bool) -> None:
    text = dump_json(value, sort_keys=sort_keys)
    expected = json.loads(json.dumps(value))  # keys as strings, as JSON has them
    assert parse_json(text) == expected
    if sort_keys:
        assert dump_json(dict(reversed(list(value.items()))), sort_keys=True) == text
