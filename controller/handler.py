"""Event handlers: which reconcile requests a change to an object should cause.

Where it sits: etcd watch → informer cache → **handler** → workqueue → workers → reconcile →
status write → events/history. A controller watches its own kind with :class:`EnqueueObject`,
the objects it creates with :class:`EnqueueOwner` (a change to an owned volume reconciles its
instance), and objects it merely refers to with :class:`EnqueueMapped` (a change to a subnet
reconciles the instances placed in it). ``Controller.watch`` wires a handler, behind optional
predicates, to an informer: on an update it maps both the old and the new object, so a request
that stops applying (an owner reference removed, a reference moved) is still made once.

Handlers only compute keys; the workqueue collapses duplicates, so mapping generously is cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from api_types.meta import Resource
from controller.reconcile import Request
from controller.store.keys import ObjectKey

__all__ = ["EnqueueMapped", "EnqueueObject", "EnqueueOwner", "EventHandler", "request_for"]


def request_for(obj: Resource) -> Request:
    """The request that reconciles ``obj`` itself."""
    return Request(ObjectKey(obj.PLURAL, obj.metadata.namespace, obj.metadata.name))


class EventHandler(Protocol):
    """Maps one object (as it was, or as it is now) to the requests its change causes."""

    def requests(self, obj: Resource) -> Iterable[Request]: ...


class EnqueueObject:
    """Reconcile the changed object itself."""

    def requests(self, obj: Resource) -> Iterable[Request]:
        return (request_for(obj),)


class EnqueueOwner:
    """Reconcile the owners of kind ``owner`` named in the object's ownerReferences.

    An owner lives in the owned object's namespace, or in none if its kind is cluster-scoped
    (Kubernetes' rule: a namespaced object may be owned by a cluster-scoped one, not across
    namespaces). ``controller_only`` follows only the reference marked ``controller: true``.
    """

    def __init__(self, owner: type[Resource], *, controller_only: bool = False) -> None:
        self._owner = owner
        self._controller_only = controller_only

    def requests(self, obj: Resource) -> Iterable[Request]:
        namespace = obj.metadata.namespace if self._owner.namespaced() else None
        return [
            Request(ObjectKey(self._owner.PLURAL, namespace, ref.name))
            for ref in obj.metadata.owner_references
            if ref.kind == self._owner.KIND and (ref.controller or not self._controller_only)
        ]


class EnqueueMapped:
    """Reconcile whatever ``mapper(obj)`` names, e.g. the instances that reference a subnet.

    The mapper usually looks the dependants up in an informer index, which is why this exists
    instead of a reverse pointer stored on the referenced object.
    """

    def __init__(self, mapper: Callable[[Resource], Iterable[Request]]) -> None:
        self._mapper = mapper

    def requests(self, obj: Resource) -> Iterable[Request]:
        return self._mapper(obj)
