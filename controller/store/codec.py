"""Decoding of stored values: JSON normally, YAML for manifests written straight into etcd.

Where it sits: between raw etcd bytes and the typed models of ``api_types``. A value written
by hand may be anything, so decoding is defensive: a size limit, YAML anchors, aliases and merge
keys (``<<: *base``) allowed only as long as they expand the document by at most
:data:`MAX_ALIAS_EXPANSION` nodes (a "billion laughs" document is refused before it expands,
and so is an alias to its own ancestor), a nesting-depth limit, a mapping at the top, and
numbers of at most ``MAX_NUMBER_DIGITS`` digits (a longer one is refused with its position,
before the interpreter's own integer-conversion limit could speak). The result is a plain
tree: what an alias repeats is a copy, so changing one place never changes another. Every
failure is a ``DecodeError`` with a message fit for a Warning event or an API error. The same
decoder serves values in etcd, API request bodies and skyctl's manifests.

Then the typed step: :func:`validate_at_key` turns a decoded mapping into its kind's model and
checks it belongs at its key (an ``InvalidObjectError`` naming every field otherwise), and
:func:`decode_canonical` is the fast path for the canonical JSON the store itself writes.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import pydantic
import yaml

from api_types import registry
from api_types.meta import Resource
from controller.errors import FieldCause, InvalidObjectError, SkybrokerError
from controller.store.keys import ObjectKey

__all__ = [
    "MAX_ALIAS_EXPANSION",
    "MAX_DEPTH",
    "MAX_NUMBER_DIGITS",
    "MAX_VALUE_BYTES",
    "DecodeError",
    "decode_canonical",
    "decode_documents",
    "decode_value",
    "encode_value",
    "validate_at_key",
]

#: Larger values are refused without parsing (etcd's own default request limit is 1.5 MiB).
MAX_VALUE_BYTES = 1536 * 1024
MAX_DEPTH = 32
#: Longer integers are refused while decoding, with this module's message (Python's default
#: limit for converting digits to an int; past it the interpreter's own error would leak out).
#: Shorter ones reach the schema, whose bounds refuse them naming the field.
MAX_NUMBER_DIGITS = 4300
#: A JSON number of more digits than that, as a value (after ``:``, ``[`` or ``,``).
_LONG_JSON_NUMBER = re.compile(rf"[:\[,]\s*(-?[0-9]{{{MAX_NUMBER_DIGITS + 1},}})")
#: A run of digits orjson might read as something else than Python's ``json`` does: it turns
#: integers past 64 bits into floats, where ``json`` keeps them exact.
_WIDE_DIGITS = re.compile(r"[0-9]{19}")


class DecodeError(SkybrokerError, ValueError):
    """A stored value is not a usable manifest."""


#: How many nodes aliases may add to a YAML document once expanded. Anchors and merge keys in
#: real manifests repeat a few labels or a block of spec (hundreds of nodes); an exponential
#: "billion laughs" reaches this after a handful of levels.
MAX_ALIAS_EXPANSION = 100_000


def _too_long(digits: int, where: str) -> DecodeError:
    return DecodeError(
        f"{where}: a number of {digits} digits is out of range "
        f"(numbers have at most {MAX_NUMBER_DIGITS} digits)"
    )


def _position(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"line {line} column {column}"


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """Nodes of the document under ``root`` as if every alias were written out; stops with
    DecodeError past ``limit``. Aliases share composed nodes, so each is sized once (memo)."""
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        ident = id(node)
        if ident in sizes:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        if not children_done:
            if ident in in_progress:
                raise DecodeError(
                    f"a YAML alias refers to its own ancestor (line {node.start_mark.line + 1})"
                )
            in_progress.add(ident)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        in_progress.discard(ident)
        sizes[ident] = 1 + sum(sizes[id(child)] for child in children)
        if sizes[ident] > limit:
            raise DecodeError(
                f'YAML aliases expand the document to more than {limit} nodes (a "billion '
                'laughs" document?); write the repeated parts out or repeat them less'
            )
    return sizes[id(root)]


def _distinct_nodes(root: yaml.Node) -> int:
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            stack.extend(part for pair in node.value for part in pair)
    return len(seen)


class _BoundedAliasLoader(yaml.SafeLoader):
    """SafeLoader that sizes each composed document, aliases expanded, before constructing it,
    and refuses over-long integers."""

    def construct_document(self, node: yaml.Node) -> Any:
        _expanded_size(node, _distinct_nodes(node) + MAX_ALIAS_EXPANSION)
        return _unshared(super().construct_document(node))

    def construct_bounded_int(self, node: yaml.ScalarNode) -> Any:
        digits = sum(c.isalnum() for c in str(node.value))
        if digits > MAX_NUMBER_DIGITS:
            mark = node.start_mark
            raise _too_long(digits, f"line {mark.line + 1} column {mark.column + 1}")
        return self.construct_yaml_int(node)


def _unshared(value: Any) -> Any:
    """A copy in which no dict or list appears twice (an alias constructs one shared object)."""
    if isinstance(value, dict):
        return {key: _unshared(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unshared(item) for item in value]
    return value


_BoundedAliasLoader.add_constructor(
    "tag:yaml.org,2002:int", _BoundedAliasLoader.construct_bounded_int
)


def _load_json(text: str) -> Any:
    """JSON with integers of at most ``MAX_NUMBER_DIGITS`` digits."""

    def parse_int(literal: str) -> int:
        digits = len(literal.lstrip("-"))
        if digits > MAX_NUMBER_DIGITS:
            offsets = [
                found.start(1)
                for found in _LONG_JSON_NUMBER.finditer(text)
                if found.group(1) == literal
            ]
            raise _too_long(digits, _position(text, offsets[0]) if offsets else "the value")
        return int(literal)

    if _WIDE_DIGITS.search(text) is None:
        # orjson gives exactly json.loads' result for what it accepts (no integer past 64
        # bits here), some thirty times faster; whatever it refuses (NaN, lone surrogates,
        # deep nesting, bad syntax) takes the standard path below, whose result or message
        # stays the one clients see.
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text, parse_int=parse_int)


def _check_depth(value: Any, limit: int) -> None:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise DecodeError(f"document nests deeper than {limit} levels")
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)


_OPENING_TOKENS = (
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.FlowSequenceStartToken,
)
_CLOSING_TOKENS = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)
_Scanner = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _check_yaml_depth(text: str, limit: int) -> None:
    """Refuse YAML nesting deeper than ``limit`` from its tokens, before anything recurses:
    the loader builds nodes recursively, and a RecursionError thrown thousands of frames deep
    is slow to unwind and leaves half-built parser state to the garbage collector."""
    depth = 0
    for token in yaml.scan(text, Loader=_Scanner):
        if isinstance(token, _OPENING_TOKENS):
            depth += 1
            if depth > limit:
                raise DecodeError(f"document nests deeper than {limit} levels")
        elif isinstance(token, _CLOSING_TOKENS):
            depth -= 1


def decode_documents(raw: bytes, *, max_bytes: int = MAX_VALUE_BYTES) -> list[dict[str, Any]]:
    """Every document of a JSON value or a (multi-document) YAML stream, each a mapping."""
    if len(raw) > max_bytes:
        raise DecodeError(f"value is {len(raw)} bytes; the limit is {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"value is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        is_json = text.lstrip().startswith("{")
        if is_json:
            documents = [_load_json(text)]
        else:
            _check_yaml_depth(text, MAX_DEPTH)
            loaded = yaml.load_all(text, Loader=_BoundedAliasLoader)
            documents = [doc for doc in loaded if doc is not None]
    except RecursionError:
        raise DecodeError(f"document nests deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise DecodeError(f"invalid JSON: {exc}") from None
    except yaml.YAMLError as exc:
        raise DecodeError(f"invalid YAML: {exc}") from None
    for index, document in enumerate(documents):
        if not isinstance(document, dict):
            where = f"document {index + 1}" if len(documents) > 1 else "the value"
            raise DecodeError(
                f"expected a mapping at the top of {where}, found {type(document).__name__}"
            )
        # JSON nests only through brackets: with fewer of them than the limit (which is
        # nearly every stored value) the walk over the whole document cannot find anything.
        if not is_json or text.count("{") + text.count("[") > MAX_DEPTH:
            _check_depth(document, MAX_DEPTH)
    return documents


def decode_value(raw: bytes, *, max_bytes: int = MAX_VALUE_BYTES) -> dict[str, Any]:
    """A stored value: exactly one JSON or YAML mapping."""
    documents = decode_documents(raw, max_bytes=max_bytes)
    if len(documents) != 1:
        raise DecodeError(f"expected exactly one document, found {len(documents)}")
    return documents[0]


def encode_value(value: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON: the stored form, history records and the API's answers.

    orjson writes what ``json.dumps(separators=(",", ":"), ensure_ascii=False)`` writes, some
    thirty times faster; what it refuses (integers past 64 bits, keys that are not strings)
    goes through ``json`` as before. One difference: a non-finite float becomes ``null``
    (valid JSON) rather than ``NaN``/``Infinity``, which strict JSON parsers refuse."""
    try:
        encoded: bytes = orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return encoded


def decode_canonical(key: ObjectKey, raw: bytes) -> Resource | None:
    """The fast path for values the store wrote: JSON validated by pydantic's own parser.

    Returns None for anything else (YAML, unknown kinds, invalid or misplaced values); the
    careful path (:func:`decode_value`, :func:`validate_at_key`) then decodes them again and
    says exactly what is wrong.
    """
    if not raw.startswith(b"{") or len(raw) > MAX_VALUE_BYTES:
        return None
    try:
        model = registry.by_plural(key.plural).model
        obj = model.model_validate_json(raw)
    except (registry.UnknownKindError, pydantic.ValidationError):
        return None
    metadata = obj.metadata
    if metadata.name != key.name or (metadata.namespace or None) != key.namespace:
        return None
    return obj


def validate_at_key(key: ObjectKey, wire: dict[str, Any]) -> Resource:
    """Validate a wire dict and check it belongs at ``key`` (kind, name, namespace)."""
    try:
        obj = registry.parse_object(wire)
    except pydantic.ValidationError as exc:
        causes = tuple(FieldCause(path, message) for path, message in registry.field_errors(exc))
        raise InvalidObjectError(f"{key}: invalid", causes) from None
    except registry.UnknownKindError as exc:
        raise InvalidObjectError(f"{key}: invalid", (FieldCause("kind", str(exc)),)) from None
    info = registry.by_kind(obj.kind)
    problems = []
    if info.plural != key.plural:
        problems.append(FieldCause("kind", f"{obj.kind} does not belong under {key.plural}/"))
    if obj.metadata.name != key.name:
        problems.append(FieldCause("metadata.name", f"must equal the key's name {key.name!r}"))
    if (obj.metadata.namespace or None) != key.namespace:
        problems.append(
            FieldCause("metadata.namespace", f"must equal the key's namespace {key.namespace!r}")
        )
    if problems:
        raise InvalidObjectError(f"{key}: does not match its key", tuple(problems))
    return obj
