"""Request bodies: size limit, JSON or YAML decoding without bombs (YAML aliases bounded).

Where it sits: between the HTTP request and admission. Bodies are read incrementally and
refused (413) as soon as they pass the limit, before anything is parsed. Decoding reuses the
store's defensive codec (``controller.store.codec``): YAML aliases bounded in how far they
expand (no "billion laughs"), a nesting-depth limit, a mapping at the top — so a hostile body
costs a bounded amount of work and always ends in a 4xx ``Status``.

Accepted content types: ``application/json``, ``application/yaml`` (and ``text/yaml``,
``application/x-yaml``), and for PATCH ``application/merge-patch+json``. A missing content type
is decoded by sniffing, as the codec does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from apiserver.status import ApiError
from controller.asgi import Receive
from controller.store.codec import MAX_VALUE_BYTES, decode_value

__all__ = ["MAX_BODY_BYTES", "MERGE_PATCH", "decode_body", "read_limited", "read_request_body"]

#: The default body limit: the largest value the store accepts.
MAX_BODY_BYTES = MAX_VALUE_BYTES
MERGE_PATCH = "application/merge-patch+json"
_JSON_TYPES = {"application/json", MERGE_PATCH}
_YAML_TYPES = {"application/yaml", "application/x-yaml", "text/yaml"}


async def read_limited(
    chunks: AsyncIterator[bytes], declared_length: str | None, limit: int
) -> bytes:
    """The whole body, or 413 as soon as it is known to exceed ``limit`` bytes."""
    too_large = ApiError(
        413, "RequestEntityTooLarge", f"the request body is larger than {limit} bytes"
    )
    if declared_length and declared_length.isdigit() and int(declared_length) > limit:
        raise too_large
    body = bytearray()
    async for chunk in chunks:
        body.extend(chunk)
        if len(body) > limit:
            raise too_large
    return bytes(body)


async def read_request_body(receive: Receive, declared_length: str | None, limit: int) -> bytes:
    """An ASGI request's whole body under ``limit`` (413 past it; 400 if the client leaves)."""

    async def chunks() -> AsyncIterator[bytes]:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ApiError(400, "BadRequest", "the client went away during the body")
            yield message.get("body", b"")
            if not message.get("more_body", False):
                return

    return await read_limited(chunks(), declared_length, limit)


def decode_body(raw: bytes, content_type: str | None, *, patch: bool = False) -> dict[str, Any]:
    """The body as a dict; 415 for an unsupported type, 400 for anything that does not decode."""
    media = (content_type or "").split(";")[0].strip().lower()
    allowed = (_JSON_TYPES | _YAML_TYPES) if not patch else {MERGE_PATCH, "application/json"}
    if media and media not in allowed:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"content type {media!r} is not supported; use one of {', '.join(sorted(allowed))}",
        )
    if not raw.strip():
        raise ApiError(400, "BadRequest", "the request body is empty")
    if media in _JSON_TYPES and not raw.lstrip().startswith(b"{"):
        raise ApiError(400, "BadRequest", "the body must be a JSON object")
    try:
        return decode_value(raw, max_bytes=len(raw))
    except (ValueError, RecursionError) as exc:  # DecodeError is a ValueError
        raise ApiError(400, "BadRequest", f"cannot decode the body: {exc}") from None
