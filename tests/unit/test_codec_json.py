"""controller.store.codec's JSON: orjson where it gives the standard library's result, and the
standard library's own result or message wherever it would not (issue #16's fast path must not
change what is stored, answered or refused)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from controller.store.codec import MAX_DEPTH, DecodeError, decode_value, encode_value


def _standard(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize(
    "value",
    [
        {"kind": "Firewall", "metadata": {"name": "fw", "labels": {}}, "spec": {"rules": []}},
        {"text": "héllo ✓ 日本", "quote": 'a"b\\c\n', "nested": [[1, 2.5, None, True, False]]},
        {"big": 2**70, "negative": -(2**65)},  # past 64 bits: json's way
        {"float": 0.1, "tiny": 1e-300, "huge": 1.5e300, "zero": -0.0},
    ],
)
def test_encode_matches_the_standard_library(value: dict[str, Any]) -> None:
    encoded = encode_value(value)
    assert json.loads(encoded) == value
    if not any(isinstance(v, float) for v in value.values()):
        assert encoded == _standard(value)


def test_encode_of_keys_that_are_not_strings_is_the_standard_librarys() -> None:
    assert encode_value({1: "a", None: "b"}) == _standard({1: "a", None: "b"})  # type: ignore[dict-item]


def test_encode_refuses_a_lone_surrogate_as_before() -> None:
    with pytest.raises(UnicodeEncodeError):
        encode_value({"bad": "\ud800"})


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":1,"a":2}',
        b'{"a":12345678901234567890123}',  # exact, not a float
        b'{"a":-9223372036854775809}',
        b'{"a":18446744073709551616}',
        b'{"a":1e400}',
        b'{"a":NaN,"b":-Infinity}',
        b'{"a":"\\ud800"}',
        b'{"a":"caf\\u00e9","b":[1,2,{"c":null}]}',
    ],
)
def test_decode_matches_the_standard_library(raw: bytes) -> None:
    decoded, expected = decode_value(raw), json.loads(raw)
    assert repr(decoded) == repr(expected)  # repr: NaN != NaN, and int vs float shows
    for key, value in expected.items():
        if isinstance(value, float) and not math.isnan(value):
            assert decoded[key] == value


@pytest.mark.parametrize("raw", [b'{"a":', b'{"a":1,}', b'{"a" 1}', b'{"a":tru}'])
def test_syntax_errors_keep_the_standard_librarys_message(raw: bytes) -> None:
    with pytest.raises(json.JSONDecodeError) as standard:
        json.loads(raw)
    with pytest.raises(DecodeError) as ours:
        decode_value(raw)
    assert str(ours.value) == f"invalid JSON: {standard.value}"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"a":' + b"9" * 4301 + b"}", "4301 digits"),
        (b'{"a":' + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1) + b"}", "nests deeper"),
    ],
)
def test_limits_keep_their_messages(raw: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode_value(raw)
