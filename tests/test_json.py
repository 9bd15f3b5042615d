"""archivemap._json: JSON read exactly (big integers, NaN, lone surrogates) and written back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from archivemap._json import dump_json, parse_json
from archivemap.errors import ArchiveDataError

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


def test_an_integer_beyond_pythons_digit_guard_is_named_as_such() -> None:
    with pytest.raises(ArchiveDataError, match="integer is too long to read") as info:
        parse_json(b'{"x": ' + b"1" * 5000 + b"}", "big.json")
    assert "not valid JSON" not in str(info.value) and "big.json" in str(info.value)
