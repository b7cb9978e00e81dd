"""Owner-reference garbage collection: dependents go once all their owners are gone.

Where it sits: a periodic maintenance loop of the manager (leader only). Kubernetes'
background propagation: an object whose ``ownerReferences`` all name uids that no longer
exist is deleted through the store (so its own finalizers still run). Every kind is listed at
one pinned revision, so an owner created a moment before its dependent is never missed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog

from api_types import registry
from api_types.meta import Resource
from controller.errors import ConflictError, NotFoundError
from controller.store.keys import ObjectKey
from controller.store.objects import Store

__all__ = ["GarbageCollector"]

log = structlog.get_logger(__name__)


class GarbageCollector:
    """Deletes objects whose every owner (``ownerReferences`` by uid) is gone; one pass per call."""

    def __init__(
        self,
        store: Store,
        kinds: Sequence[type[Resource]] | None = None,
        *,
        is_active: Callable[[], bool] = lambda: True,
    ) -> None:
        self.store = store
        self.kinds = tuple(kinds or (info.model for info in registry.all_kinds()))
        self.is_active = is_active

    def collect_once(self) -> list[ObjectKey]:
        """One sweep; returns the keys of the dependents it deleted (or marked for deletion)."""
        revision = 0
        objects: list[Resource] = []
        for model in self.kinds:
            listing = self.store.list(model, revision=revision)
            revision = listing.resource_version
            objects.extend(listing.items)
        live_uids = {obj.metadata.uid for obj in objects if obj.metadata.uid}
        collected = []
        for obj in objects:
            references = obj.metadata.owner_references
            if not references or any(ref.uid in live_uids for ref in references):
                continue
            if obj.metadata.deletion_timestamp is not None or not self.is_active():
                continue
            try:
                self.store.delete(
                    type(obj),
                    obj.metadata.name,
                    obj.metadata.namespace,
                    resource_version=obj.metadata.resource_version,
                    actor="garbage-collector",
                )
            except (NotFoundError, ConflictError):
                continue  # changed since the sweep's snapshot; the next sweep decides again
            key = self.store.key_of(obj)
            log.info(
                "garbage-collected dependent", key=str(key), owners=[r.uid for r in references]
            )
            collected.append(key)
        return collected
