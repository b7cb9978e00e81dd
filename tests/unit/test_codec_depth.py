"""Nesting limits of stored values and request bodies (``controller.store.codec``): deep YAML
is refused from its tokens before the recursive loader sees it, deep JSON by the walk."""

from __future__ import annotations

import pytest

from controller.store.codec import MAX_DEPTH, DecodeError, decode_value


@pytest.mark.parametrize(
    "raw",
    [
        b"- " * 20_000 + b"x",  # far past the interpreter's recursion limit
        b"a: " + b"[" * 500 + b"]" * 500,
        b"a:\n" + b"".join(b"  " * i + b"k:\n" for i in range(1, MAX_DEPTH + 2)) + b"  x",
    ],
    ids=["block-sequences", "flow-sequences", "block-mappings"],
)
def test_deep_yaml_is_refused_by_its_depth(raw: bytes) -> None:
    with pytest.raises(DecodeError, match=f"deeper than {MAX_DEPTH} levels"):
        decode_value(raw, max_bytes=len(raw))


def test_yaml_at_the_limit_decodes() -> None:
    # The mapping, MAX_DEPTH - 2 lists and the scalar: MAX_DEPTH levels.
    raw = b"a: " + b"[" * (MAX_DEPTH - 2) + b"1" + b"]" * (MAX_DEPTH - 2)
    value = decode_value(raw)
    depth, node = 2, value["a"]
    while isinstance(node, list):
        depth, node = depth + 1, node[0]
    assert (depth, node) == (MAX_DEPTH, 1)


def test_deep_json_is_refused_by_depth() -> None:
    raw = b'{"a": ' + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1) + b"}"
    with pytest.raises(DecodeError, match="deeper than"):
        decode_value(raw)
