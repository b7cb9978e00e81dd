"""Predicates: which informer events are worth a reconcile at all.

Where it sits: etcd watch → informer cache → **predicates** → handler → workqueue → workers →
reconcile. ``Controller.watch(informer, handler, *predicates)`` passes an event on only when
every predicate accepts it (use :func:`any_of` for "either"). The usual reason is a controller
that writes status: each status write comes back as an update event, and without a filter it
would reconcile every object once more after every reconcile. ``GenerationChanged`` lets
through only what the user changed; ``NotOwnStatusWrite`` (which the manager puts on every
controller's own kind) drops exactly the status writes this process made itself.

Creates and deletes always pass the predicates here: an object that appears or disappears
always needs a look. Periodic resync does not go through predicates (it enqueues directly).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Protocol

from api_types.meta import Resource

__all__ = [
    "AnnotationsChanged",
    "GenerationChanged",
    "LabelsChanged",
    "NotOwnStatusWrite",
    "Predicate",
    "UpdatePredicate",
    "any_of",
]


class Predicate(Protocol):
    """Which informer events of a kind enqueue a request (``True``) and which are dropped."""

    def create(self, obj: Resource) -> bool: ...

    def update(self, old: Resource, new: Resource) -> bool: ...

    def delete(self, obj: Resource) -> bool: ...


class UpdatePredicate(ABC):
    """Base of predicates that only filter updates; creates and deletes pass."""

    def create(self, obj: Resource) -> bool:
        return True

    @abstractmethod
    def update(self, old: Resource, new: Resource) -> bool: ...

    def delete(self, obj: Resource) -> bool:
        return True


class GenerationChanged(UpdatePredicate):
    """The spec changed (generation moved) — or deletion was requested.

    The store sets ``deletionTimestamp`` without bumping ``generation``; a controller filtering
    on generation alone would never see its objects being deleted, so that change passes too.
    """

    def update(self, old: Resource, new: Resource) -> bool:
        return (
            old.metadata.generation != new.metadata.generation
            or old.metadata.deletion_timestamp != new.metadata.deletion_timestamp
        )


class NotOwnStatusWrite(UpdatePredicate):
    """Drop an update that is exactly a status write this process made itself.

    The reconcile that wrote it already acted on that state and asked for its own requeue, so
    reconciling it again is pure waste (at scale, one extra reconcile per write). The store
    identifies the write by its base and resulting revisions (``Store.wrote_status``), so any
    other change — even one folded into the same update by a re-list — passes.
    """

    def __init__(self, written_here: Callable[[Resource, Resource], bool]) -> None:
        self._written_here = written_here

    def update(self, old: Resource, new: Resource) -> bool:
        return not self._written_here(old, new)


class LabelsChanged(UpdatePredicate):
    """Passes updates that change ``metadata.labels``."""

    def update(self, old: Resource, new: Resource) -> bool:
        return old.metadata.labels != new.metadata.labels


class AnnotationsChanged(UpdatePredicate):
    """Passes updates that change ``metadata.annotations``."""

    def update(self, old: Resource, new: Resource) -> bool:
        return old.metadata.annotations != new.metadata.annotations


class _AnyOf:
    def __init__(self, predicates: tuple[Predicate, ...]) -> None:
        self._predicates = predicates

    def create(self, obj: Resource) -> bool:
        return any(p.create(obj) for p in self._predicates)

    def update(self, old: Resource, new: Resource) -> bool:
        return any(p.update(old, new) for p in self._predicates)

    def delete(self, obj: Resource) -> bool:
        return any(p.delete(obj) for p in self._predicates)


def any_of(*predicates: Predicate) -> Predicate:
    """A predicate that accepts an event when at least one of ``predicates`` does."""
    return _AnyOf(predicates)
