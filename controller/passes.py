"""One reconcile pass over one object: snapshot, finalizers, conditions, one status save.

Where it sits: inside ``reconcile(request)`` — etcd watch → informer cache → handler →
workqueue → workers → **reconcile → status write** → events/history. A reconciler reads its
object from the cache, opens a :class:`Pass` over it and changes ``pass_.obj.status`` in
memory; leaving the block writes the status once, fenced by the lease of the key's shard
(``Manager.fence_for``), and only if status or finalizers differ from what was read — so a
converged resync writes nothing. It knows only the envelope (``api_types.meta``: metadata, a
status with phase and conditions), so every kind's reconciler uses it.

A worked example — a kind with a finalizer that creates something in a cloud::

    def reconcile(self, request: Request) -> Result:
        disk = self._disks.get(request.key)
        if disk is None:
            return Result()
        with Pass(self._manager, disk) as pass_:
            if disk.metadata.deletion_timestamp is not None:
                self._cloud.delete(disk.status.provider_id)
                pass_.remove_finalizer(FINALIZER)
                return Result()
            pass_.add_finalizer(FINALIZER)      # durable before anything exists in a cloud
            pass_.obj.status.create_token = token_of(disk)
            pass_.save()                        # the create intent too, before the call
            with pass_.failed_on_terminal():    # a final refusal: phase Failed, Ready=False
                created = self._cloud.create(pass_.obj.status.create_token)
            pass_.obj.status.provider_id = created.id
            pass_.phase = "Ready"
            pass_.condition("Ready", True, "Provisioned", created.id)
            pass_.observe_generation()
            return Result()                     # the status is written here, once

Leaving the block saves also when an error propagates — the conditions saying why are then
stored — except a ``ConflictError``: the object changed meanwhile (the save would lose the same
race), and the controller runtime retries the key. ``pass_.obj`` is the object as of the last
save: each write replaces it with the stored copy, so read ``pass_.obj`` again after ``save``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import TracebackType
from typing import Generic, Literal, Self, TypeVar

from api_types.meta import ConditionStatus, Resource, Status
from controller.errors import ConflictError, NotFoundError, TerminalError
from controller.manager import Manager
from controller.reconcile import Result
from controller.store.results import TxnExtras

__all__ = ["ACTOR", "Pass", "finalized"]

R = TypeVar("R", bound=Resource)

#: The actor named in history records of writes made by reconcilers.
ACTOR = "controller"


def _status_of(obj: Resource) -> Status:
    status = getattr(obj, "status", None)
    if not isinstance(status, Status):
        raise TypeError(f"{obj.KIND} has no status with phase and conditions")
    return status


class _Snapshot:
    """What the save compares with: status and finalizers as last read or written."""

    def __init__(self, obj: Resource) -> None:
        # The status alone, in its wire form: dumping the whole object (spec, metadata) for a
        # comparison of statuses cost a third of each save's serialisation.
        self.status: object = _status_of(obj).model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
        self.finalizers = list(obj.metadata.finalizers)

    def differs(self, obj: Resource) -> tuple[bool, bool]:
        """(anything to write, finalizers among it) for ``obj`` against this snapshot."""
        now = _Snapshot(obj)
        finalizers = now.finalizers != self.finalizers
        return finalizers or now.status != self.status, finalizers


class Pass(Generic[R]):
    """One reconcile pass over one object ``obj``: a context manager whose exit is the pass's
    one status save (see the module for an example)."""

    def __init__(self, manager: Manager, obj: R) -> None:
        _status_of(obj)  # a kind without a status cannot be reconciled through a pass
        self._manager = manager
        self.obj = obj
        self._before = _Snapshot(obj)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not isinstance(exc, ConflictError):
            self.save()

    # --- reading --------------------------------------------------------------------------

    @property
    def generation(self) -> int | None:
        return self.obj.metadata.generation

    @property
    def uid(self) -> str:
        return str(self.obj.metadata.uid)

    @property
    def status(self) -> Status:
        """``obj``'s status as the envelope sees it (the kind's own fields: ``obj.status``)."""
        return _status_of(self.obj)

    # --- status ---------------------------------------------------------------------------

    @property
    def phase(self) -> str | None:
        return self.status.phase

    @phase.setter
    def phase(self, phase: str | None) -> None:
        self.status.phase = phase

    def condition(
        self, type_: str, value: bool | ConditionStatus, reason: str, message: str = ""
    ) -> bool:
        """Set condition ``type_`` for this generation; True if anything about it changed."""
        return self.status.set_condition(type_, value, reason, message, generation=self.generation)

    def observe_generation(self) -> None:
        """Record that the status describes this generation of the spec."""
        self.status.observed_generation = self.generation

    def event(self, type_: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        self._manager.recorder.record(self.obj, type_, reason, message)

    def save(self) -> R:
        """Write status (and finalizers added in memory) now if they differ from the last
        read or write; ``obj`` becomes the stored copy."""
        changed, with_finalizers = self._before.differs(self.obj)
        if changed:
            self.obj = self._manager.store.update_status(
                self.obj, actor=ACTOR, extras=self._fence(), with_finalizers=with_finalizers
            )
            self._before = _Snapshot(self.obj)
        return self.obj

    @contextmanager
    def failed_on_terminal(self) -> Iterator[None]:
        """Around a cloud create: a ``TerminalError`` inside sets phase ``Failed`` and
        ``Ready=False`` with its reason and message, saves, and propagates (not retried; the
        runtime records the Warning event)."""
        try:
            yield
        except TerminalError as exc:
            self.phase = "Failed"
            self.condition("Ready", False, exc.reason, exc.message)
            self.save()
            raise

    # --- finalizers -----------------------------------------------------------------------

    def add_finalizer(self, finalizer: str) -> None:
        """Put ``finalizer`` on the object now (before any cloud resource exists for it).
        Call it before changing the status: the write returns the stored status."""
        if finalizer in self.obj.metadata.finalizers:
            return
        self.obj.metadata.finalizers.append(finalizer)
        self.obj = self._manager.store.update(self.obj, actor=ACTOR, extras=self._fence())
        self._before = _Snapshot(self.obj)

    def finalizer_on_next_save(self, finalizer: str) -> None:
        """Put ``finalizer`` on the object in memory; the next save writes it with the status.
        For reconcilers whose first cloud call always follows a save (the one that records
        the create token), so the finalizer is durable before anything exists."""
        if finalizer not in self.obj.metadata.finalizers:
            self.obj.metadata.finalizers.append(finalizer)

    def remove_finalizer(self, finalizer: str) -> None:
        """Drop ``finalizer`` (once the cloud resource is confirmed gone), which may delete
        the object; status changed in memory and not saved before is not written."""
        if finalizer not in self.obj.metadata.finalizers:
            return
        self.obj.metadata.finalizers = [f for f in self.obj.metadata.finalizers if f != finalizer]
        # Already deleted: nothing left to release, nothing to save.
        with suppress(NotFoundError):
            self.obj = self._manager.store.update(self.obj, actor=ACTOR, extras=self._fence())
        self._before = _Snapshot(self.obj)

    def _fence(self) -> TxnExtras:
        return TxnExtras(compares=self._manager.fence_for(self._manager.store.key_of(self.obj)))


def finalized(
    manager: Manager,
    obj: R | None,
    finalizer: str,
    *,
    converge: Callable[[Pass[R]], Result],
    delete: Callable[[Pass[R]], Result],
) -> Result:
    """One pass over a kind whose object holds something outside the store (a cloud resource):
    ``finalizer`` goes on before ``converge`` runs, so the object cannot go before ``delete``
    has released what it holds. ``obj`` is the cache's (None: gone, nothing to do; anything it
    left in a cloud is the leak sweeper's)."""
    if obj is None:
        return Result()
    with Pass(manager, obj) as pass_:
        if obj.metadata.deletion_timestamp is not None:
            return delete(pass_)
        pass_.add_finalizer(finalizer)
        return converge(pass_)
