"""Kubernetes-style ``Status`` answers: every error of the REST API, and successful deletes.

Where it sits: at the edge of the API server. Handlers raise
:class:`~controller.errors.ApiError` (the one class skyctl raises too; re-exported here as the
API's error vocabulary) or let the store's exceptions through; :func:`error_from` maps both to
one ``ApiError``, which :func:`status_object` and :func:`error_headers` render. The mapping is
the contract clients
rely on::

    NotFoundError, unknown kind       404 NotFound
    AlreadyExistsError                409 AlreadyExists
    ConflictError                     409 Conflict
    InvalidObjectError                422 Invalid (details.causes: every offending field)
    StoreUnavailableError             503 ServiceUnavailable (Retry-After, retryAfterSeconds)
    compacted revision (etcd)         410 Gone
    anything else                     500 InternalError (never echoed; logged with its
                                      traceback and the request, scrubbed of secrets)

Bad requests (400 BadRequest), 401 Unauthorized, 403 Forbidden, 413 RequestEntityTooLarge and
415 UnsupportedMediaType are raised as ``ApiError`` by the modules that detect them.
"""

from __future__ import annotations

from typing import Any

import grpc
import structlog

from api_types.registry import UnknownKindError
from apiserver.redaction import RequestFacts, failure_fields
from controller.errors import (
    AlreadyExistsError,
    ApiError,
    ConflictError,
    FieldCause,
    InvalidObjectError,
    NotFoundError,
    StoreUnavailableError,
)

__all__ = [
    "ApiError",
    "error_from",
    "error_headers",
    "status_object",
    "success_status",
]

log = structlog.get_logger(__name__)


#: Seconds a client is told to wait while the store is down (the API server probes it far more
#: often: the first request after its return succeeds).
STORE_RETRY_AFTER = 1


def _is_compacted(exc: grpc.RpcError) -> bool:
    # etcd answers a read at a compacted revision with OUT_OF_RANGE ("required revision has
    # been compacted").
    code = exc.code() if hasattr(exc, "code") else None
    return bool(code == grpc.StatusCode.OUT_OF_RANGE)


def error_from(exc: BaseException, request: RequestFacts | None = None) -> ApiError:
    """The API answer for an exception raised while serving ``request``."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, NotFoundError | UnknownKindError):
        return ApiError(404, "NotFound", str(exc))
    if isinstance(exc, AlreadyExistsError):
        return ApiError(409, "AlreadyExists", str(exc))
    if isinstance(exc, ConflictError):
        return ApiError(409, "Conflict", str(exc))
    if isinstance(exc, InvalidObjectError):
        causes = exc.causes or (FieldCause("", exc.message),)
        return ApiError(422, "Invalid", exc.message, causes)
    if isinstance(exc, StoreUnavailableError):
        return ApiError(
            503,
            "ServiceUnavailable",
            "the object store is unavailable; retry",
            details={"retryAfterSeconds": STORE_RETRY_AFTER},
        )
    if isinstance(exc, grpc.RpcError) and _is_compacted(exc):
        return ApiError(410, "Gone", "the requested resourceVersion is too old (compacted)")
    # Never echo the exception: it may quote a request body (a Secret).
    log.error(
        "internal error serving a request",
        error_type=type(exc).__name__,
        **failure_fields(exc, request),
    )
    return ApiError(500, "InternalError", "internal error")


def status_object(error: ApiError) -> dict[str, Any]:
    details = dict(error.details)
    if error.causes:
        details["causes"] = [{"field": c.field, "message": c.message} for c in error.causes]
    status: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "message": error.message,
        "reason": error.reason,
        "code": error.code,
    }
    if details:
        status["details"] = details
    return status


def error_headers(error: ApiError) -> dict[str, str]:
    """The HTTP headers an error answer carries besides its ``Status`` body."""
    headers = {"WWW-Authenticate": "Bearer"} if error.code == 401 else {}
    retry_after = error.details.get("retryAfterSeconds")
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return headers


def success_status(kind: str, name: str, uid: str | None) -> dict[str, Any]:
    """What a delete that removed the object answers (Kubernetes' shape)."""
    details: dict[str, Any] = {"name": name, "kind": kind}
    if uid:
        details["uid"] = uid
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Success",
        "details": details,
        "code": 200,
    }
