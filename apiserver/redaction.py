"""What the log may say about a request that failed inside the API server.

Where it sits: ``status.error_from`` logs every internal error (a 500) with
:func:`failure_fields`: the method and path, the body with its secrets replaced, and the
traceback with every secret value of the request cut out of it (an exception message may quote
the body it choked on). Secrets are a Secret's ``data`` and ``stringData`` values (as sent and
decoded), the string value of any field whose name says it holds one (token, password,
secret, credentials, authorization), and the bearer token of the ``Authorization`` header.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import traceback
from dataclasses import dataclass
from typing import Any

__all__ = ["REDACTED", "RequestFacts", "failure_fields"]

REDACTED = "<redacted>"
_SECRET_NAME = re.compile(r"token|password|secret|credential|authorization", re.IGNORECASE)
#: Shorter values are not cut from a traceback: they would blank out unrelated words.
_MIN_CUT = 4


@dataclass(frozen=True)
class RequestFacts:
    """The request an internal error happened in: ``method`` and ``path`` are logged; the
    ``body`` only scrubbed, and ``authorization`` never (it is only cut from the traceback)."""

    method: str
    path: str
    body: bytes = b""
    authorization: str | None = None


def _decoded(value: str) -> str | None:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def _scrub(value: Any, secrets: set[str], *, in_secret: bool = False) -> Any:
    """``value`` with secret strings replaced by :data:`REDACTED` (each one added to
    ``secrets``); ``in_secret``: the mapping is a Secret's data, every value is one."""
    if isinstance(value, dict):
        secret_kind = value.get("kind") == "Secret"
        scrubbed: dict[str, Any] = {}
        for name, item in value.items():
            holds = in_secret or (secret_kind and name in ("data", "stringData"))
            if isinstance(item, str) and (in_secret or _SECRET_NAME.search(str(name))):
                secrets.add(item)
                secrets.add(_decoded(item) or item)
                scrubbed[name] = REDACTED
            else:
                scrubbed[name] = _scrub(item, secrets, in_secret=holds and isinstance(item, dict))
        return scrubbed
    if isinstance(value, list):
        return [_scrub(item, secrets) for item in value]
    return value


def _body(raw: bytes, secrets: set[str]) -> Any:
    if not raw:
        return None
    try:
        return _scrub(json.loads(raw), secrets)
    except (ValueError, RecursionError):
        return f"({len(raw)} bytes, not JSON: not logged)"


def failure_fields(exc: BaseException, request: RequestFacts | None) -> dict[str, Any]:
    """Log fields of an internal error: the request (scrubbed) and the traceback without any
    secret value of the request in it."""
    secrets: set[str] = set()
    fields: dict[str, Any] = {}
    if request is not None:
        fields.update(method=request.method, path=request.path)
        body = _body(request.body, secrets)
        if body is not None:
            fields["body"] = body
        if request.authorization:
            secrets.add(request.authorization)
            secrets.add(request.authorization.partition(" ")[2])
    text = "".join(traceback.format_exception(exc))
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= _MIN_CUT:
            text = text.replace(secret, REDACTED)
    fields["traceback"] = text
    return fields
