"""``explain KIND[.field…]``: documentation of a kind's fields, from its JSON Schema.

Where it sits: a read-only verb that needs no server — the schema is generated from the same
pydantic models the API validates with (``api_types.registry.json_schema``), so it can never
disagree with what the server accepts. Paths walk through nested objects, list items and map
values (``instance.spec.hardware.cpu``, ``pool.spec.members.zones``).
"""

from __future__ import annotations

import textwrap
from typing import Any

from api_types import registry
from api_types.meta import API_VERSION
from controller.errors import SkybrokerError
from skyctl.kinds import UnknownKind, resolve_kind

__all__ = ["ExplainError", "explain"]

Schema = dict[str, Any]


class ExplainError(SkybrokerError, LookupError):
    """The path names a field that does not exist."""


def _resolve(node: Schema, defs: dict[str, Schema]) -> Schema:
    """Follow ``$ref``s and drop the ``null`` member of optional fields."""
    while True:
        if "$ref" in node:
            node = defs[node["$ref"].rsplit("/", 1)[-1]]
            continue
        members = [m for m in node.get("anyOf", []) if m.get("type") != "null"]
        if "anyOf" in node and len(members) == 1:
            node = members[0]
            continue
        return node


def _children(node: Schema, defs: dict[str, Schema]) -> Schema:
    """The object schema fields are looked up in: through list items and map values."""
    node = _resolve(node, defs)
    if node.get("type") == "array":
        return _children(node.get("items", {}), defs)
    if node.get("type") == "object" and isinstance(node.get("additionalProperties"), dict):
        return _children(node["additionalProperties"], defs)
    return node


def _type(node: Schema, defs: dict[str, Schema]) -> str:
    if "$ref" in node:
        return str(node["$ref"].rsplit("/", 1)[-1])
    variants = node.get("anyOf") or node.get("oneOf")
    if variants:
        return " | ".join(_type(v, defs) for v in variants if v.get("type") != "null")
    if "enum" in node:
        return "string (" + ", ".join(str(v) for v in node["enum"]) + ")"
    kind = node.get("type", "object")
    if kind == "array":
        return f"[]{_type(node.get('items', {}), defs)}"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return f"map[string]{_type(node['additionalProperties'], defs)}"
    if "const" in node:
        return f"string ({node['const']})"
    return str(kind)


def _wrap(text: str, indent: str) -> str:
    paragraphs = [p for p in text.strip().splitlines() if p.strip()] or ["<empty>"]
    return "\n".join(
        textwrap.fill(p.strip(), 96, initial_indent=indent, subsequent_indent=indent)
        for p in paragraphs
    )


def explain(path: str) -> str:
    kind_name, *fields = path.split(".")
    try:
        info = resolve_kind(kind_name)
    except UnknownKind as exc:
        raise ExplainError(str(exc)) from None
    schema = registry.json_schema(info.kind)
    defs: dict[str, Schema] = schema.get("$defs", {})
    node: Schema = schema
    walked: list[str] = []
    for field in fields:
        container = _children(node, defs)
        properties = container.get("properties", {})
        if field not in properties:
            where = ".".join([info.kind, *walked])
            known = ", ".join(properties) or "none: it is not an object"
            raise ExplainError(f"field {field!r} does not exist in {where} (fields: {known})")
        node = properties[field]
        walked.append(field)
    text = f"KIND:     {info.kind}\nVERSION:  {API_VERSION}\n"
    if walked:
        text += f"FIELD:    {walked[-1]} <{_type(node, defs)}>\n"
    description = node.get("description") or _resolve(node, defs).get("description") or ""
    text += "\nDESCRIPTION:\n" + _wrap(description, "  ") + "\n"
    container = _children(node, defs)
    properties = container.get("properties", {})
    if properties:
        required = set(container.get("required", []))
        text += "\nFIELDS:\n"
        for name, child in properties.items():
            marker = " -required-" if name in required else ""
            text += f"  {name}\t<{_type(child, defs)}>{marker}\n"
            text += _wrap(child.get("description", ""), "    ") + "\n\n"
    return text.rstrip() + "\n"
