"""Classification of cloud errors into the runtime's ``TransientError`` / ``TerminalError``.

Where it sits: every driver funnels its failures through ``classify`` so that one table decides
what is retried and what is surfaced. Both drivers speak EC2's error codes (the simulated cloud
raises the codes EC2 would), so a reconciler sees the same class, ``code`` and ``reason``
whichever cloud answered. Terminal: authentication, unknown image or size, malformed requests,
missing resources, and — as ``CapacityError``, no room here but maybe elsewhere — provider
quota and capacity. Transient: throttling (honouring Retry-After), 5xx, timeouts, connection
failures, and — as ``ResourceBusyError`` — resources in a state that will change.

What a failure says about the cloud is decided here too, once: the account's circuit breaker
(``providers.budget``) is for the provider's health, so only :func:`counts_against_provider`
failures — throttling, 5xx, timeouts, unreachable endpoints — count toward it. An answer about
one resource (terminal: not found, invalid parameter…; or :class:`ResourceBusyError`: in use,
dependency left, wrong state) shows a healthy cloud, whichever tenant's request provoked it.
"""

from __future__ import annotations

from controller.errors import (
    CapacityError,
    ReconcileError,
    ResourceBusyError,
    TerminalError,
    TransientError,
)

__all__ = [
    "DEFAULT_THROTTLE_DELAY",
    "UnsupportedError",
    "classify",
    "counts_against_provider",
    "is_not_found",
]

DEFAULT_THROTTLE_DELAY = 1.0
"""Seconds to wait after throttling when the cloud gave no Retry-After."""

_TERMINAL_REASONS: dict[str, str] = {
    "AuthFailure": "AuthFailure",
    "InvalidClientTokenId": "AuthFailure",
    "SignatureDoesNotMatch": "AuthFailure",
    "OptInRequired": "AuthFailure",
    "UnauthorizedOperation": "Unauthorized",
    "InvalidInstanceType": "InvalidSize",
}

#: "No room here" rather than "never": a ``CapacityError``, so the object may go elsewhere.
_CAPACITY_REASONS: dict[str, str] = {
    "InstanceLimitExceeded": "ProviderQuotaExceeded",
    "VcpuLimitExceeded": "ProviderQuotaExceeded",
    "VolumeLimitExceeded": "ProviderQuotaExceeded",
    "VpcLimitExceeded": "ProviderQuotaExceeded",
    "SecurityGroupLimitExceeded": "ProviderQuotaExceeded",
    "RulesPerSecurityGroupLimitExceeded": "ProviderQuotaExceeded",
    "ResourceLimitExceeded": "ProviderQuotaExceeded",
    "InsufficientInstanceCapacity": "InsufficientCapacity",
    "InsufficientVolumeCapacity": "InsufficientCapacity",
    "InsufficientFreeAddressesInSubnet": "InsufficientCapacity",
}

_TRANSIENT_CODES = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "TooManyRequests",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "Unavailable",
        "Timeout",
        "ConnectionError",
    }
)

_BUSY_CODES = frozenset(
    {
        "DependencyViolation",
        "IncorrectState",
        "IncorrectInstanceState",
        "VolumeInUse",
        "InvalidGroup.InUse",
        "InvalidPlacementGroup.InUse",
    }
)

#: Missing resources whose code does not end in ``NotFound``.
_NOT_FOUND_CODES = frozenset({"InvalidPlacementGroup.Unknown"})

_THROTTLE_CODES = frozenset(
    {"RequestLimitExceeded", "Throttling", "ThrottlingException", "TooManyRequests"}
)

# Prefix families: checked after the exact tables, first match wins.
_TERMINAL_PREFIXES: tuple[tuple[str, str], ...] = (
    ("InvalidAMIID.", "InvalidImage"),
    ("InvalidInstanceType", "InvalidSize"),
    ("InvalidParameter", "InvalidRequest"),
    ("MissingParameter", "InvalidRequest"),
    ("InvalidSubnet.", "InvalidRequest"),
    ("InvalidVpc.", "InvalidRequest"),
    ("InvalidPermission.", "InvalidRequest"),
    ("InvalidVolume.ZoneMismatch", "InvalidRequest"),
)


class UnsupportedError(TerminalError):
    """The provider (or the endpoint an account points at) cannot do what was asked, e.g.
    placement groups on the simulated cloud: retrying will not help, nor will another
    object of the same account. Callers check the capability first (``supports_*``)."""

    def __init__(self, message: str, *, code: str = "UnsupportedOperation") -> None:
        super().__init__(message, reason="Unsupported", code=code)


def is_not_found(code: str | None) -> bool:
    """True for EC2's ``*.NotFound`` family (``InvalidInstanceID.NotFound``, …) and the few
    missing-resource codes named otherwise (``InvalidPlacementGroup.Unknown``)."""
    return code is not None and (code.endswith("NotFound") or code in _NOT_FOUND_CODES)


def classify(
    code: str,
    message: str,
    *,
    status: int | None = None,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> ReconcileError:
    """The runtime error for one cloud error (returned, for the caller to raise ``from``)."""
    text = f"{code}: {message}" if message else code
    if code in _THROTTLE_CODES or status == 429:
        delay = retry_after if retry_after is not None else DEFAULT_THROTTLE_DELAY
        return TransientError(text, delay=delay, code=code, request_id=request_id)
    if code in _TRANSIENT_CODES:
        return TransientError(text, delay=retry_after, code=code, request_id=request_id)
    if code in _BUSY_CODES:
        return ResourceBusyError(text, delay=retry_after, code=code, request_id=request_id)
    capacity = _CAPACITY_REASONS.get(code)
    if capacity is not None:
        return CapacityError(text, reason=capacity, code=code, request_id=request_id)
    reason = _TERMINAL_REASONS.get(code)
    if reason is None:
        reason = next((r for prefix, r in _TERMINAL_PREFIXES if code.startswith(prefix)), None)
    if reason is None and is_not_found(code):
        reason = "NotFound"
    if reason is None and status is not None and status >= 500:
        return TransientError(text, delay=retry_after, code=code, request_id=request_id)
    if reason is None and status in (401, 403):
        reason = "AuthFailure"
    return TerminalError(text, reason=reason or "ProviderError", code=code, request_id=request_id)


def counts_against_provider(error: BaseException) -> bool:
    """True when ``error`` says the provider itself is unwell (throttling, 5xx, timeouts,
    unreachable): a transient failure that is not about one resource's state. Terminal
    answers and :class:`ResourceBusyError` come from a cloud that works."""
    return isinstance(error, TransientError) and not isinstance(error, ResourceBusyError)
