"""Turns whatever the EC2 path raises into the runtime's ``TransientError``/``TerminalError``.

Where it sits: every ``Ec2Provider`` method runs inside ``ec2_errors()``. API error answers
(``Ec2ApiError``, from ``driver.py``) go through the shared table in ``providers.errors``;
transport failures (timeouts, refused or reset connections, other socket errors) are
transient; other libcloud errors (e.g. a malformed answer) are a terminal ``ProviderError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import requests
from libcloud.common.exceptions import BaseHTTPError
from libcloud.common.types import LibcloudError

from controller.errors import ReconcileError, TerminalError, TransientError
from providers.ec2.driver import Ec2ApiError
from providers.errors import classify, is_not_found

__all__ = ["ec2_errors", "missing_ok", "translate"]


def translate(exc: BaseException) -> ReconcileError | None:
    """The runtime error for ``exc``, or None when it is not an error of the EC2 path."""
    if isinstance(exc, ReconcileError):
        return exc
    if isinstance(exc, Ec2ApiError):
        return classify(
            exc.code,
            exc.message,
            status=exc.status,
            request_id=exc.request_id,
            retry_after=exc.retry_after,
        )
    if isinstance(exc, requests.Timeout | TimeoutError):
        return TransientError(f"EC2 request timed out: {exc}", code="Timeout")
    if isinstance(exc, requests.ConnectionError | ConnectionError):
        return TransientError(f"EC2 endpoint unreachable: {exc}", code="ConnectionError")
    if isinstance(exc, BaseHTTPError):
        status = int(exc.code) if str(exc.code).isdigit() else None
        return classify(f"HTTP{exc.code}", str(exc.message), status=status)
    if isinstance(exc, OSError):
        return TransientError(f"EC2 transport error: {exc}", code="ConnectionError")
    if isinstance(exc, LibcloudError):
        return TerminalError(f"EC2 driver error: {exc}", reason="ProviderError", code="DriverError")
    return None


@contextmanager
def ec2_errors() -> Iterator[None]:
    """Re-raise EC2-path failures as ``TransientError``/``TerminalError``."""
    try:
        yield
    except Exception as exc:
        error = translate(exc)
        if error is None or error is exc:
            raise
        raise error from exc


@contextmanager
def missing_ok() -> Iterator[None]:
    """Swallow EC2's ``*.NotFound`` answers: for deletes, which succeed on what is gone."""
    try:
        yield
    except Ec2ApiError as exc:
        if not is_not_found(exc.code):
            raise
