"""The exception tree of skybroker, shared by the store, the runtime and the providers.

Where it sits: every layer raises these; the controller worker loop (``controller.controller``)
turns them into retry decisions, and the REST API turns them into Kubernetes-style ``Status``
objects. Providers import only this module from the runtime (DESIGN §1).

::

    SkybrokerError
    ├── StoreError                   problems talking to or with the object store
    │   ├── NotFoundError            the object does not exist
    │   ├── AlreadyExistsError       create of a name that is taken
    │   ├── ConflictError            a compare-and-swap lost a race (stale resourceVersion);
    │   │                            re-read and retry
    │   ├── InvalidObjectError       the object fails validation; ``causes`` name the fields
    │   └── StoreUnavailableError    etcd could not be reached (transient)
    └── ReconcileError               outcomes of a reconcile (also raised by providers)
        ├── TransientError           retry later; ``delay`` chooses when (None = backoff)
        └── TerminalError            retrying will not help: no retry, Warning event,
                                     condition Ready=False with ``reason``

A reconcile that raises anything else is retried with the per-item exponential backoff.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AlreadyExistsError",
    "ConflictError",
    "FieldCause",
    "InvalidObjectError",
    "NotFoundError",
    "ReconcileError",
    "SkybrokerError",
    "StoreError",
    "StoreUnavailableError",
    "TerminalError",
    "TransientError",
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
