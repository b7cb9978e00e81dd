"""The reads admission makes on every write, served from watched caches where that is safe.

Where it sits: under ``admission`` and ``quota``. Namespaces, pools, provider accounts,
hardware profiles and quotas are listed and watched into informer caches
(``controller.cache.Informer``) when the API server starts, so checking a write's namespace and
references and reserving its quota cost no etcd read:

- a reference found in the cache exists (it may have been deleted a moment ago — as it may be
  right after any check; the controllers check again before acting); one missing from the
  cache is read from etcd before the write is refused, so an object created a moment ago (by
  this or another API server) is never reported missing. Subnets, firewalls and BootConfigs,
  namespaced and numerous, are always read from etcd;
- a namespace the cache holds no Quota for is answered from the cache with the revision the
  cache had reached before it looked; ``quota`` makes its transaction compare that no Quota of
  the namespace was written after it, so a Quota the cache has not seen yet fails the
  transaction, which is then retried on quotas read from etcd — as strict as reading etcd
  first, one read less. A namespace with quotas is read from etcd: its Quotas move with every
  reservation, faster than a watch follows, and a stale copy would only cost a failed
  transaction.

Cached objects are shared: callers treat them as read-only. Before :meth:`Lookups.start` (and in
``skyctl --etcd``, which never starts it) every read goes to etcd. :meth:`Lookups.staged` is a
view in which objects not yet written exist: the apply engine dry-runs a set of writes with it,
each admitted as if the ones before it had been written (an Instance naming a HardwareProfile of
the same revision); ``quota`` counts the staged objects of a namespace against its Quotas
(:meth:`Lookups.staged_in`), and a staged Quota limits the documents after it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from api_types.accounts import HardwareProfile, ProviderAccount
from api_types.meta import Resource
from api_types.pools import Pool
from api_types.tenancy import Namespace, Quota
from controller.cache import Informer
from controller.store.keys import ObjectKey
from controller.store.objects import Store

__all__ = ["Lookups", "QuotaSnapshot"]

R = TypeVar("R", bound=Resource)


@dataclass(frozen=True)
class QuotaSnapshot:
    """A namespace's quotas and a revision no Quota of the namespace was written after."""

    quotas: list[Quota]
    revision: int
    cached: bool = False

    def revisions(self) -> dict[str, str | None]:
        return {quota.metadata.name: quota.metadata.resource_version for quota in self.quotas}


_CACHED: tuple[type[Resource], ...] = (Namespace, Pool, ProviderAccount, HardwareProfile, Quota)


class Lookups:
    """The reads of admission and quota (the module docstring says when a cache answers and
    when etcd does); :meth:`start` fills the caches, and until then etcd answers all."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._informers: dict[type[Resource], Informer[Any]] = {
            model: Informer(store, model) for model in _CACHED
        }
        self._started = False
        self._staged: dict[ObjectKey, Resource] = {}

    def start(self) -> None:
        for informer in self._informers.values():
            informer.start()
        self._started = True

    def stop(self) -> None:
        for informer in self._informers.values():
            informer.stop()

    def wait_for_sync(self, timeout: float) -> bool:
        return all(informer.wait_for_sync(timeout) for informer in self._informers.values())

    def has_synced(self) -> bool:
        return all(informer.has_synced() for informer in self._informers.values())

    def _synced(self, model: type[Resource]) -> Informer[Any] | None:
        informer = self._informers.get(model)
        return informer if self._started and informer and informer.has_synced() else None

    def staged(self, objects: Iterable[Resource]) -> Lookups:
        """A view of these lookups in which ``objects`` exist, over what the store holds (the
        caches are shared), for dry-runs only: ``quota`` counts the staged objects too."""
        view = copy.copy(self)
        view._staged = dict(self._staged)
        for obj in objects:
            key = ObjectKey(obj.PLURAL, obj.metadata.namespace, obj.metadata.name)
            view._staged[key] = obj
        return view

    def staged_in(self, namespace: str) -> list[Resource]:
        """The staged objects of ``namespace`` (none outside a :meth:`staged` view), in the
        order they were staged."""
        return [obj for key, obj in self._staged.items() if key.namespace == namespace]

    def get(self, model: type[R], name: str, namespace: str | None = None) -> R:
        """The object (read-only if cached); NotFoundError when etcd does not have it either."""
        staged = self._staged.get(ObjectKey(model.PLURAL, namespace, name))
        if isinstance(staged, model):
            return staged
        informer = self._synced(model)
        cached = informer.peek(ObjectKey(model.PLURAL, namespace, name)) if informer else None
        if isinstance(cached, model):
            return cached
        return self.store.get(model, name, namespace)

    def list(self, model: type[R]) -> list[R]:
        """Every object of a cluster-scoped ``model`` (read-only if cached; else from etcd)."""
        informer = self._synced(model)
        if informer is not None:
            return [obj for obj in informer.list() if isinstance(obj, model)]
        return self.store.list(model).items

    def quotas(self, namespace: str) -> QuotaSnapshot:
        """The namespace's quotas: none, from the cache, if it has none; else read from etcd."""
        informer = self._synced(Quota)
        if informer is not None:
            revision = informer.last_revision  # first: what is listed next is at least this new
            if not informer.list(namespace):
                return QuotaSnapshot([], revision, cached=True)
        return self.stored_quotas(namespace)

    def stored_quotas(self, namespace: str) -> QuotaSnapshot:
        """The namespace's quotas read from etcd, at the revision of the read."""
        listed = self.store.list(Quota, namespace)
        return QuotaSnapshot(listed.items, listed.resource_version)
