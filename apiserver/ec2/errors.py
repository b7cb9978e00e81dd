"""EC2's error vocabulary: one exception for every refusal, and the REST errors mapped onto it.

Where it sits: at the edge of the EC2 front door (``apiserver.ec2``). Parsing (``params``),
signature checks (``sigv4``) and actions raise :class:`Ec2Error`; whatever else an action lets
through — the REST pipeline's :class:`~controller.errors.ApiError` (RBAC, admission, quota) or
a store error — becomes one by :func:`ec2_error_from`, which goes through ``apiserver.status``
first so both front doors classify a failure the same way. ``routes`` renders it with
``xmlwriter.error_document``. The REST → EC2 mapping::

    400 BadRequest, 422 Invalid         400 InvalidParameterValue (field causes in the message)
    401 Unauthorized                    401 AuthFailure
    403 Forbidden                       403 UnauthorizedOperation
    404 NotFound                        400 InvalidParameterValue (actions that know which id
                                        was missing raise their own ``…NotFound`` code first)
    409 AlreadyExists                   400 InvalidParameterValue
    409 Conflict                        503 Unavailable (a lost compare-and-swap: retry)
    413 RequestEntityTooLarge           413 RequestEntityTooLarge
    415 UnsupportedMediaType            400 InvalidParameterValue
    429, 503, 504                       503 Unavailable
    anything else                       500 InternalError (never echoed; logged by ``status``)
"""

from __future__ import annotations

from apiserver.status import ApiError, error_from

__all__ = [
    "Ec2Error",
    "auth_failure",
    "dry_run_succeeded",
    "ec2_error_from",
    "invalid_parameter",
    "missing_parameter",
]


class Ec2Error(Exception):
    """A refused EC2 request: EC2's error ``code``, its ``message`` and the HTTP ``status``."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def __repr__(self) -> str:
        return f"Ec2Error({self.code!r}, {self.message!r}, {self.status})"


def missing_parameter(name: str) -> Ec2Error:
    return Ec2Error("MissingParameter", f"The request must contain the parameter {name}")


def invalid_parameter(name: str, why: str) -> Ec2Error:
    return Ec2Error("InvalidParameterValue", f"Value for parameter {name} is invalid: {why}")


def auth_failure(message: str = "") -> Ec2Error:
    default = "AWS was not able to validate the provided access credentials"
    return Ec2Error("AuthFailure", message or default, 401)


def dry_run_succeeded() -> Ec2Error:
    """EC2's answer to ``DryRun=true`` when the request would have succeeded."""
    return Ec2Error("DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412)


def _with_causes(error: ApiError) -> str:
    causes = "; ".join(f"{c.field}: {c.message}" if c.field else c.message for c in error.causes)
    if not causes or causes in error.message:
        return error.message
    return f"{error.message} ({causes})"


def ec2_error_from(exc: BaseException) -> Ec2Error:
    """The EC2 answer for an exception an action raised (the module docstring's table)."""
    if isinstance(exc, Ec2Error):
        return exc
    error = error_from(exc)
    code = error.code
    if code == 401:
        return auth_failure(error.message)
    if code == 403:
        return Ec2Error("UnauthorizedOperation", error.message, 403)
    if code == 413:
        return Ec2Error("RequestEntityTooLarge", error.message, 413)
    if code in (400, 404, 415, 422) or error.reason == "AlreadyExists":
        return Ec2Error("InvalidParameterValue", _with_causes(error))
    if code in (409, 429, 503, 504):
        return Ec2Error("Unavailable", error.message, 503)
    return Ec2Error("InternalError", "An internal error has occurred", 500)
