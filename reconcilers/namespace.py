"""Namespace: Active while it lives; deleting it deletes everything in it (Kubernetes' way).

Where it sits: the Namespace controller. Every Namespace gets the finalizer
``skybroker.io/namespace`` and phase ``Active``. Once deletion is requested the phase becomes
``Terminating`` and every object of every namespaced kind in it is deleted through the store —
so each object's own finalizers still run (instances are deleted in the cloud, subnets wait
for their instances, volumes detach first). A value in it that does not decode or validate (a
bad direct write) has no finalizers to honour and is deleted as it stands. The finalizer is
removed, and the Namespace goes, only when nothing is left in it; until then condition
``ContentRemaining`` counts what is left per kind.

The namespace's contents are listed straight from the store rather than from informers: a
deletion is rare and must see every kind, including ones no controller of this process watches.
"""

from __future__ import annotations

from collections import Counter

from api_types import Namespace, NamespacePhase, registry
from api_types.meta import Resource
from controller.errors import ConflictError, NotFoundError
from controller.events import involved_for_key
from controller.passes import ACTOR, Pass
from controller.predicate import GenerationChanged
from controller.reconcile import Request, Result
from controller.store.results import InvalidValue
from reconcilers.deps import Deps

__all__ = ["FINALIZER", "NamespaceReconciler", "register"]

FINALIZER = "skybroker.io/namespace"
#: How often a terminating namespace looks again at what is left in it.
TERMINATING_POLL_SECONDS = 1.0
#: Kinds kept outside the object registry's keys (events are leased and expire on their own).
_NOT_CONTENT = frozenset({"Event"})


class NamespaceReconciler:
    """Keeps each Namespace ``Active``; once it is deleted, deletes everything in it and
    releases its finalizer when nothing is left (see the module)."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._namespaces = deps.manager.informer(Namespace)

    def reconcile(self, request: Request) -> Result:
        namespace = self._namespaces.get(request.key)
        if namespace is None:
            return Result()
        with Pass(self._deps.manager, namespace) as pass_:
            if namespace.metadata.deletion_timestamp is None:
                pass_.add_finalizer(FINALIZER)
                pass_.phase = NamespacePhase.ACTIVE
                pass_.observe_generation()
                return Result()
            pass_.phase = NamespacePhase.TERMINATING
            left = self._delete_contents(namespace.metadata.name)
            if not left:
                pass_.save()
                pass_.remove_finalizer(FINALIZER)
                return Result()
            summary = ", ".join(f"{count} {kind}" for kind, count in sorted(left.items()))
            pass_.condition(
                "ContentRemaining", True, "SomeResourcesRemain", f"waiting for: {summary}"
            )
            return Result(requeue_after=TERMINATING_POLL_SECONDS)

    def _delete_contents(self, name: str) -> Counter[str]:
        """Request deletion of everything in namespace ``name``; counts what is still there."""
        left: Counter[str] = Counter()
        for info in registry.all_kinds():
            if not info.model.namespaced() or info.kind in _NOT_CONTENT:
                continue
            listed = self._deps.store.list(info.model, name)
            for obj in listed.items:
                left[info.kind] += 1
                if obj.metadata.deletion_timestamp is None:
                    self._delete(obj)
            for invalid in listed.invalid:
                left[info.kind] += 1
                self._delete_invalid(invalid)
        return left

    def _delete(self, obj: Resource) -> None:
        try:
            self._deps.store.delete(
                type(obj), obj.metadata.name, obj.metadata.namespace, actor=ACTOR
            )
        except (NotFoundError, ConflictError):
            return  # gone or changing: the next look sees it again
        self._deps.recorder.record(
            obj, "Normal", "NamespaceTerminating", "deleted with its namespace"
        )

    def _delete_invalid(self, invalid: InvalidValue) -> None:
        try:
            self._deps.store.delete_invalid(invalid.key, actor=ACTOR)
        except (NotFoundError, ConflictError):
            return  # gone, or changed (perhaps into a valid object): the next look sees it
        self._deps.recorder.record(
            involved_for_key(invalid.key),
            "Normal",
            "NamespaceTerminating",
            "deleted with its namespace (its value was invalid)",
        )


def register(deps: Deps) -> None:
    deps.manager.add_controller(
        Namespace, NamespaceReconciler(deps), workers=1, predicates=[GenerationChanged()]
    )
