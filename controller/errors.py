"""The exception tree of skybroker, shared by the store, the runtime, the API and the providers.

Where it sits: every layer raises these; the controller worker loop (``controller.controller``)
turns them into retry decisions, the REST API turns them into Kubernetes-style ``Status``
objects, and reconcilers choose what to do by the class of an error, never by its text or
code. Providers import only this module from the runtime (DESIGN §1).

Classes are defined here unless a module is named in parentheses (beside the code that
raises them)::

    SkybrokerError
    ├── StoreError                   problems talking to or with the object store
    │   ├── NotFoundError            the object does not exist
    │   ├── AlreadyExistsError       create of a name that is taken
    │   ├── ConflictError            a compare-and-swap lost a race (stale resourceVersion);
    │   │                            re-read and retry
    │   ├── InvalidObjectError       the object fails validation; ``causes`` name the fields
    │   └── StoreUnavailableError    etcd could not be reached (transient)
    ├── ReconcileError               outcomes of a reconcile (also raised by providers)
    │   ├── TransientError           retry later; ``delay`` chooses when (None = backoff)
    │   │   ├── BudgetExhausted      the account's API budget is spent until ``delay``:
    │   │   │                        placement avoids the account meanwhile
    │   │   ├── CircuitOpen          the account's circuit breaker is open until ``delay``
    │   │   └── ResourceBusyError    a healthy cloud: one resource is in a passing state (in
    │   │                            use, mid-transition); never counts against the breaker
    │   └── TerminalError            retrying will not help: no retry, Warning event,
    │       │                        condition Ready=False with ``reason``
    │       ├── CapacityError        no room on this placement (capacity, provider quota):
    │       │                        an Instance is placed again elsewhere
    │       └── UnsupportedError     (providers.errors) the provider cannot do it at all
    │                                (placement groups on the simulated cloud)
    ├── Unschedulable                no member or account can take the object (or its pool
    │                                forbids it): condition Scheduled=False, retried later
    ├── ApiError                     a request answered with a ``Status``: raised by the API
    │                                server's handlers, and by skyctl for any failed request
    ├── ListenError                  (controller.asgi) an address cannot be bound
    ├── StartupError                 (skybroker.main) a command cannot start
    ├── WatchCompacted               (controller.store.watch) re-list: the revision is gone
    ├── DeadlinePassed, LeaseExpired (controller.leader._session) an election session ended
    ├── Ec2ApiError                  (providers.ec2.driver) an EC2 error answer, before
    │                                ``providers.errors.classify`` turns it into the above
    └── unusable input or setup; each also a ValueError, LookupError or RuntimeError, as the
        callers that catch it (and the standard library's conventions) expect:
        DecodeError (controller.store.codec), CipherError (controller.store.encryption),
        EtcdNotFoundError (controller.store.embedded), SelectorError (controller.labels),
        TokenFileError (apiserver.auth), UnknownProfileError (reconcilers.hardware),
        ManifestError, EditError, ConfigError, UsageError, UnknownKind, JsonPathError,
        JsonPatchError, ExplainError (skyctl)

``api_types.registry.UnknownKindError`` (a ``LookupError``) is the one error outside the tree:
``api_types`` imports nothing local. Exceptions whose names start with ``_`` never leave their
module. A reconcile that raises anything else is retried with the per-item exponential backoff.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AlreadyExistsError",
    "ApiError",
    "BudgetExhausted",
    "CapacityError",
    "CircuitOpen",
    "ConflictError",
    "FieldCause",
    "InvalidObjectError",
    "NotFoundError",
    "ReconcileError",
    "ResourceBusyError",
    "SkybrokerError",
    "StoreError",
    "StoreUnavailableError",
    "TerminalError",
    "TransientError",
    "Unschedulable",
]


class SkybrokerError(Exception):
    """Root of every error skybroker raises on purpose."""


class StoreError(SkybrokerError):
    """A store operation failed."""


class NotFoundError(StoreError):
    """The object (or key) does not exist."""


class AlreadyExistsError(StoreError):
    """A create found the name already taken."""


class ConflictError(StoreError):
    """A compare-and-swap write lost a race: the object changed since it was read."""


@dataclass(frozen=True)
class FieldCause:
    """One validation failure: the dotted path of the field and what is wrong with it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class InvalidObjectError(StoreError):
    """The object fails validation; ``causes`` names every offending field."""

    def __init__(self, message: str, causes: tuple[FieldCause, ...] = ()) -> None:
        detail = "; ".join(str(c) for c in causes)
        super().__init__(f"{message}: {detail}" if detail else message)
        self.message = message
        self.causes = causes


class StoreUnavailableError(StoreError):
    """etcd could not be reached or timed out; the operation may be retried."""


class ReconcileError(SkybrokerError):
    """Base of the errors that tell the worker loop what to do next."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.request_id = request_id


class TransientError(ReconcileError):
    """Retry later. ``delay`` (seconds) overrides the backoff, e.g. from a Retry-After header."""

    def __init__(
        self,
        message: str,
        *,
        delay: float | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, code=code, request_id=request_id)
        self.delay = delay


class TerminalError(ReconcileError):
    """Retrying cannot help (bad input, auth failure, provider quota): surface it and stop.

    ``reason`` is a CamelCase word used as the condition reason and the event reason.
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str = "TerminalError",
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, code=code, request_id=request_id)
        self.reason = reason


class BudgetExhausted(TransientError):
    """The account's API budget is spent; a call may succeed after ``delay`` seconds."""

    def __init__(self, message: str, *, delay: float) -> None:
        super().__init__(message, delay=delay, code="BudgetExhausted")


class CircuitOpen(TransientError):
    """The account's circuit breaker refuses calls; it admits a probe after ``delay``."""

    def __init__(self, message: str, *, delay: float) -> None:
        super().__init__(message, delay=delay, code="CircuitOpen")


class ResourceBusyError(TransientError):
    """The cloud answered, healthy: this one resource is in a state that will change (in use,
    a dependency left, mid-transition). Retried like any transient error, but never counted
    against the account's circuit breaker."""


class CapacityError(TerminalError):
    """The cloud has no room for the request where it was placed: no capacity of the size in
    the zone (``reason`` InsufficientCapacity) or the account's provider quota is used up
    (ProviderQuotaExceeded). Retrying there will not help; another placement may."""


class Unschedulable(SkybrokerError):
    """No member or account can take the object, or its pool does not exist or forbids its
    namespace; the message says why."""


@dataclass
class ApiError(SkybrokerError):
    """A failed request, in the shape of Kubernetes' ``Status``: HTTP ``code``, CamelCase
    ``reason``, ``message``, field ``causes`` and further ``details`` (``retryAfterSeconds``).

    The API server raises it (``apiserver.status`` maps the store's errors onto it and renders
    it); skyctl raises it for every failed request, parsed from the ``Status`` the server sent
    or mapped from the store's errors the same way in ``--etcd`` mode.
    """

    code: int
    reason: str
    message: str
    causes: tuple[FieldCause, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message

    @property
    def not_found(self) -> bool:
        return self.code == 404

    @property
    def retryable(self) -> bool:
        """Transient: throttled, or the server or the connection to it failed (503 is also what
        skyctl answers for a transport error such as a dropped connection)."""
        return self.code in (429, 502, 503, 504)

    @property
    def conflict(self) -> bool:
        """A lost compare-and-swap (stale resourceVersion), not a name already taken."""
        return self.code == 409 and self.reason == "Conflict"
