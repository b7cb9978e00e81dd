"""REST paths of DESIGN §7 → (kind, namespace, name, subresource), and list continue tokens.

Where it sits: the first thing the resource routes do with a request. Paths below
``/apis/skybroker.io/v1alpha1/``::

    {plural}                                   list/watch/create (cluster-scoped kinds), or
                                               list/watch across namespaces (namespaced kinds)
    {plural}/{name}[/status|/history]          one cluster-scoped object
    namespaces/{ns}/{plural}                   list/watch/create in a namespace
    namespaces/{ns}/{plural}/{name}[/status|/history]

``namespaces/{name}/status`` is the Namespace's own status (no kind has the plural "status").

A continue token is opaque to clients: base64 of ``{"rv": revision, "after": key}`` where the
key is relative to the list's own prefix, so a crafted token can never reach outside the
collection it was issued for.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from api_types import registry
from api_types.registry import KindInfo
from apiserver.status import ApiError

__all__ = ["SUBRESOURCES", "Target", "decode_continue", "encode_continue", "parse_path"]

SUBRESOURCES = ("status", "history")


@dataclass(frozen=True)
class Target:
    """What a path addresses: a kind, its namespace (None: cluster-scoped, or every namespace
    for a list), an object name (None: the collection) and a subresource."""

    info: KindInfo
    namespace: str | None
    name: str | None = None
    subresource: str | None = None

    @property
    def rbac_resource(self) -> str:
        # History is part of the object's record: reading it needs `get` on the object.
        if self.subresource and self.subresource != "history":
            return f"{self.info.plural}/{self.subresource}"
        return self.info.plural


def _kind(plural: str) -> KindInfo:
    try:
        return registry.by_plural(plural)
    except registry.UnknownKindError as exc:
        raise ApiError(404, "NotFound", str(exc)) from None


def _not_found(path: str) -> ApiError:
    return ApiError(404, "NotFound", f"no route for /{path}")


def _item(info: KindInfo, namespace: str | None, rest: list[str], path: str) -> Target:
    if len(rest) == 1:
        return Target(info, namespace, rest[0])
    if len(rest) == 2 and rest[1] in SUBRESOURCES:
        if rest[1] == "status" and not info.has_status:
            raise ApiError(404, "NotFound", f"{info.kind} has no status subresource")
        return Target(info, namespace, rest[0], rest[1])
    raise _not_found(path)


def parse_path(path: str) -> Target:
    segments = path.strip("/").split("/")
    if not all(segments):
        raise _not_found(path)
    if segments[0] == "namespaces" and len(segments) >= 3 and segments[2] not in SUBRESOURCES:
        namespace, plural, rest = segments[1], segments[2], segments[3:]
        info = _kind(plural)
        if not info.namespaced:
            raise ApiError(404, "NotFound", f"{info.kind} is cluster-scoped: use /{plural}")
        return Target(info, namespace) if not rest else _item(info, namespace, rest, path)
    info = _kind(segments[0])
    if len(segments) == 1:
        return Target(info, None)
    if info.namespaced:
        raise ApiError(
            404, "NotFound", f"{info.kind} is namespaced: use /namespaces/{{ns}}/{info.plural}"
        )
    return _item(info, None, segments[1:], path)


def encode_continue(revision: int, last_key: bytes, prefix: bytes) -> str:
    after = last_key[len(prefix) :].decode("utf-8")
    token = json.dumps({"rv": revision, "after": after}, separators=(",", ":"))
    return base64.urlsafe_b64encode(token.encode()).decode("ascii")


def decode_continue(token: str, prefix: bytes) -> tuple[int, bytes]:
    """(revision, full key to continue after); 400 for a token this server did not issue."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        revision, after = data["rv"], data["after"]
        if not isinstance(revision, int) or revision <= 0 or not isinstance(after, str):
            raise ValueError("bad fields")
        if not after:
            raise ValueError("empty key")
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeError):
        raise ApiError(400, "BadRequest", "invalid continue token") from None
    return revision, prefix + after.encode("utf-8")
