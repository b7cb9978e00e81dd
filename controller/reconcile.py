"""The reconcile contract: ``Request`` in, ``Result`` out, errors as retry decisions.

Where it sits: etcd watch → informer cache → handler → workqueue → workers →
**reconcile(request) -> Result** → status write → events/history. The worker loop
(``controller.controller``) calls a :class:`Reconciler` with one :class:`Request` at a time and
turns what comes back into the next step for that key:

* **Level-triggered.** A request is a key only — never the event that caused it, nor the old
  object. The reconciler reads the current desired state from the informer cache and the
  actual state from the provider, and acts on the difference. Duplicate or collapsed events
  therefore lose nothing, and a reconcile may run for no change at all (resync): it must be
  idempotent, and should write status only when something changed — a
  ``controller.passes.Pass`` over the object does exactly that.
* ``Result()`` — done; the key is forgotten by the rate limiter.
* ``Result(requeue_after=s)`` — done for now, call again in ``s`` seconds (polling a slow cloud
  operation); the failure count is reset.
* ``TransientError(msg, delay=s)`` — failed, retry in ``s`` to ``2s`` seconds (a Retry-After,
  spread); not counted as a failure by the backoff. With ``delay=None`` the per-key
  exponential backoff chooses.
* ``ConflictError`` (``controller.errors``) — a write lost a compare-and-swap race (the object
  changed since the cache copy was read, or this process no longer holds the key's shard):
  retried quietly with the per-key backoff, counted as ``transient``, no traceback. A
  reconciler lets it propagate; the next attempt reads the newer object.
* ``TerminalError(msg, reason=...)`` — retrying cannot help: no retry, a Warning event with
  ``reason`` and condition ``Ready=False`` with the same reason. A later change to the object
  (a new event) reconciles it again.
* Any other exception — a bug or an unexpected failure: logged with its traceback, counted,
  retried with the per-key exponential backoff (5 ms → 1000 s).

The error classes are defined once, in ``controller.errors``, and re-exported here so that a
reconciler needs a single import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from controller.errors import TerminalError, TransientError
from controller.store.keys import ObjectKey

__all__ = ["Reconciler", "Request", "Result", "TerminalError", "TransientError"]


@dataclass(frozen=True, order=True)
class Request:
    """The key of the object to reconcile (the workqueue holds the ``ObjectKey`` inside)."""

    key: ObjectKey

    @classmethod
    def of(cls, plural: str, namespace: str | None, name: str) -> Request:
        return cls(ObjectKey(plural, namespace, name))

    @property
    def plural(self) -> str:
        return self.key.plural

    @property
    def namespace(self) -> str | None:
        return self.key.namespace

    @property
    def name(self) -> str:
        return self.key.name

    def __str__(self) -> str:
        return str(self.key)


@dataclass(frozen=True)
class Result:
    """What a successful reconcile asks for next: nothing, or another look after a delay."""

    requeue_after: float | None = None


class Reconciler(Protocol):
    """Business logic of one kind: converge the object named by ``request``; see the module."""

    def reconcile(self, request: Request) -> Result: ...
