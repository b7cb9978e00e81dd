"""JSON Patch (RFC 6902) for ``skyctl patch --type json``.

Where it sits: under ``skyctl.edits``. The API's PATCH takes merge patches (DESIGN §7),
so a JSON patch is applied here, to the object as just read, and the result written back with
that read's resourceVersion as the precondition: a ``test`` operation therefore holds for the
version that is written (a writer in between is a conflict, and the patch is applied again to
the new version).

Operations ``add``, ``remove``, ``replace``, ``move``, ``copy``, ``test`` with JSON Pointer
paths (RFC 6901: ``/spec/rules/0``, ``~1`` for ``/`` and ``~0`` for ``~``, ``-`` for the end of
an array). A malformed patch or an operation that cannot apply is a :class:`JsonPatchError`
naming the operation's index, its op and path.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from controller.errors import SkybrokerError

__all__ = ["JsonPatchError", "apply_json_patch", "check_json_patch"]

_OPERATIONS = {
    "add": ("value",),
    "remove": (),
    "replace": ("value",),
    "move": ("from",),
    "copy": ("from",),
    "test": ("value",),
}


class JsonPatchError(SkybrokerError, ValueError):
    """A patch that is malformed or does not apply."""


def _pointer(text: Any, what: str) -> list[str]:
    if not isinstance(text, str) or (text and not text.startswith("/")):
        raise ValueError(f"{what} must be a JSON Pointer such as /spec/image, not {text!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in text.split("/")[1:]]


def check_json_patch(patch: Any) -> list[dict[str, Any]]:
    """``patch`` if it is a list of well-formed operations; else JsonPatchError."""
    if not isinstance(patch, list):
        raise JsonPatchError(
            "a JSON patch is a list of operations, e.g. "
            '[{"op": "replace", "path": "/spec/image", "value": "debian-12"}]'
        )
    for index, operation in enumerate(patch):
        where = f"operation {index}"
        if not isinstance(operation, dict):
            raise JsonPatchError(f"{where}: must be an object with op and path")
        op = operation.get("op")
        if op not in _OPERATIONS:
            raise JsonPatchError(f"{where}: op {op!r} is not one of {', '.join(_OPERATIONS)}")
        for member in ("path", *_OPERATIONS[op]):
            if member not in operation:
                raise JsonPatchError(f"{where} ({op}): {member!r} is missing")
        try:
            _pointer(operation["path"], "path")
            if "from" in _OPERATIONS[op]:
                _pointer(operation["from"], "from")
        except ValueError as exc:
            raise JsonPatchError(f"{where} ({op}): {exc}") from None
    return patch


def _index(container: list[Any], token: str, *, adding: bool) -> int:
    if adding and token == "-":
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise ValueError(f"{token!r} is not an array index")
    index = int(token)
    if index > len(container) or (index == len(container) and not adding):
        raise ValueError(f"index {index} is out of range (the array has {len(container)} items)")
    return index


def _parent(document: Any, tokens: list[str]) -> tuple[Any, str]:
    """The container holding the last token, and that token."""
    node = document
    for depth, token in enumerate(tokens[:-1]):
        where = "/" + "/".join(tokens[: depth + 1])
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            try:
                node = node[_index(node, token, adding=False)]
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
        else:
            raise ValueError(f"{where} does not exist")
    return node, tokens[-1]


def _get(document: Any, tokens: list[str]) -> Any:
    if not tokens:
        return document
    parent, token = _parent(document, tokens)
    if isinstance(parent, dict) and token in parent:
        return parent[token]
    if isinstance(parent, list):
        return parent[_index(parent, token, adding=False)]
    raise ValueError("the path does not exist")


def _remove(document: Any, tokens: list[str]) -> Any:
    if not tokens:
        raise ValueError("cannot remove the whole object")
    parent, token = _parent(document, tokens)
    if isinstance(parent, dict) and token in parent:
        return parent.pop(token)
    if isinstance(parent, list):
        return parent.pop(_index(parent, token, adding=False))
    raise ValueError("the path does not exist")


def _add(document: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent, token = _parent(document, tokens)
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, token, adding=True), value)
    else:
        raise ValueError("the parent of the path is not an object or an array")
    return document


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _apply(document: Any, operation: dict[str, Any]) -> Any:
    op, tokens = operation["op"], _pointer(operation["path"], "path")
    if op == "add":
        return _add(document, tokens, copy.deepcopy(operation["value"]))
    if op == "remove":
        _remove(document, tokens)
        return document
    if op == "replace":
        _get(document, tokens)  # must exist
        if not tokens:
            return copy.deepcopy(operation["value"])
        _remove(document, tokens)
        return _add(document, tokens, copy.deepcopy(operation["value"]))
    if op == "test":
        actual = _get(document, tokens)
        if actual != operation["value"]:
            raise ValueError(f"the value is {_json(actual)}, not {_json(operation['value'])}")
        return document
    source = _pointer(operation["from"], "from")
    if op == "move":
        if tokens[: len(source)] == source and tokens != source:
            raise ValueError("cannot move a value into itself")
        return _add(document, tokens, _remove(document, source))
    return _add(document, tokens, copy.deepcopy(_get(document, source)))  # copy


def apply_json_patch(document: Any, patch: list[dict[str, Any]]) -> Any:
    """``patch`` applied to a copy of ``document``; all operations or none."""
    result = copy.deepcopy(document)
    for index, operation in enumerate(check_json_patch(patch)):
        try:
            result = _apply(result, operation)
        except ValueError as exc:
            raise JsonPatchError(
                f"operation {index} ({operation['op']} {operation['path']}): {exc}"
            ) from None
    return result
