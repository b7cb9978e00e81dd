"""Per-account inventory: one batched list per resource kind per interval, shared by everyone.

Where it sits: between the reconcilers and a ``CloudProvider``. A resync of 10,000 Instances
on one account reads ``Inventory.instances()`` 10,000 times but costs one ``list_instances``
call per interval; concurrent readers of a stale kind wait for a single refresh rather than
each calling the cloud. The leak sweeper (DESIGN §5) reads the same views through
``LeakTracker``, which reports resources tagged with a skybroker uid that has been absent from
the store for longer than the grace period.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from providers.clock import Clock
from providers.protocol import CloudProvider
from providers.types import (
    CloudFirewall,
    CloudInstance,
    CloudNetwork,
    CloudSubnet,
    CloudVolume,
    ResourceKind,
    Tagged,
)

__all__ = ["Inventory", "KindView", "LeakTracker"]

R = TypeVar("R", bound=Tagged)


@dataclass(frozen=True)
class KindView(Generic[R]):
    """One kind's resources as of ``fetched_at``, indexed by id, create token and owner uid."""

    by_id: Mapping[str, R]
    fetched_at: float
    _by_token: Mapping[str, R] = field(repr=False)
    _by_uid: Mapping[str, tuple[R, ...]] = field(repr=False)

    @classmethod
    def build(cls, items: Iterable[R], fetched_at: float) -> KindView[R]:
        by_id: dict[str, R] = {}
        by_token: dict[str, R] = {}
        by_uid: dict[str, list[R]] = {}
        for item in items:
            by_id[item.id] = item
            if item.token is not None:
                by_token.setdefault(item.token, item)
            if item.uid is not None:
                by_uid.setdefault(item.uid, []).append(item)
        frozen_uid = {uid: tuple(found) for uid, found in by_uid.items()}
        return cls(by_id, fetched_at, by_token, frozen_uid)

    def get(self, resource_id: str) -> R | None:
        return self.by_id.get(resource_id)

    def by_token(self, token: str) -> R | None:
        return self._by_token.get(token)

    def by_uid(self, uid: str) -> tuple[R, ...]:
        return self._by_uid.get(uid, ())

    def __len__(self) -> int:
        return len(self.by_id)


class _KindCache(Generic[R]):
    def __init__(self, fetch: Callable[[], list[R]]) -> None:
        self.fetch = fetch
        self.view: KindView[R] | None = None
        self.lock = threading.Lock()


class Inventory:
    """The cached resources of one account; thread-safe; refreshes lazily per kind."""

    def __init__(self, provider: CloudProvider, *, clock: Clock, interval: float = 30.0) -> None:
        self.provider = provider
        self._clock = clock
        self._interval = interval
        self._instances = _KindCache(provider.list_instances)
        self._networks = _KindCache(provider.list_networks)
        self._subnets = _KindCache(provider.list_subnets)
        self._firewalls = _KindCache(provider.list_firewalls)
        self._volumes = _KindCache(provider.list_volumes)
        self._caches: dict[ResourceKind, _KindCache[Any]] = {
            ResourceKind.INSTANCE: self._instances,
            ResourceKind.NETWORK: self._networks,
            ResourceKind.SUBNET: self._subnets,
            ResourceKind.FIREWALL: self._firewalls,
            ResourceKind.VOLUME: self._volumes,
        }

    def _view(self, cache: _KindCache[R], max_age: float | None) -> KindView[R]:
        limit = self._interval if max_age is None else max_age
        with cache.lock:  # single flight: late arrivals reuse the refresh they waited for
            view = cache.view
            if view is None or self._clock.now() - view.fetched_at >= limit:
                started = self._clock.now()
                view = KindView.build(cache.fetch(), started)
                cache.view = view
            return view

    def instances(self, max_age: float | None = None) -> KindView[CloudInstance]:
        return self._view(self._instances, max_age)

    def networks(self, max_age: float | None = None) -> KindView[CloudNetwork]:
        return self._view(self._networks, max_age)

    def subnets(self, max_age: float | None = None) -> KindView[CloudSubnet]:
        return self._view(self._subnets, max_age)

    def firewalls(self, max_age: float | None = None) -> KindView[CloudFirewall]:
        return self._view(self._firewalls, max_age)

    def volumes(self, max_age: float | None = None) -> KindView[CloudVolume]:
        return self._view(self._volumes, max_age)

    def invalidate(self, kind: ResourceKind | None = None) -> None:
        """Forget cached views (one kind, or all) so the next read lists again."""
        for key, cache in self._caches.items():
            if kind is None or key is kind:
                with cache.lock:
                    cache.view = None

    def managed(self, max_age: float | None = None) -> list[Tagged]:
        """Every resource carrying a skybroker uid, dependents before what they depend on
        (volumes, instances, firewalls, subnets, networks): five list calls at most."""
        views: list[KindView[Any]] = [
            self.volumes(max_age),
            self.instances(max_age),
            self.firewalls(max_age),
            self.subnets(max_age),
            self.networks(max_age),
        ]
        return [item for view in views for item in view.by_id.values() if item.uid is not None]


class LeakTracker:
    """Remembers when each managed resource's owner was first seen missing from the store."""

    def __init__(self, clock: Clock, grace: float = 120.0) -> None:
        self._clock = clock
        self._grace = grace
        self._missing_since: dict[str, float] = {}
        self._lock = threading.Lock()

    def leaked(self, resources: Iterable[Tagged], live_uids: Container[str]) -> list[Tagged]:
        """Resources whose ``skybroker/uid`` has been absent from ``live_uids`` for ``grace``.

        Resources without the uid tag (never managed, or orphaned on purpose) are ignored;
        the order of ``resources`` is kept (``Inventory.managed`` gives a safe delete order).
        """
        now = self._clock.now()
        leaks: list[Tagged] = []
        seen: set[str] = set()
        with self._lock:
            for resource in resources:
                if resource.uid is None or resource.uid in live_uids:
                    continue
                seen.add(resource.id)
                since = self._missing_since.setdefault(resource.id, now)
                if now - since >= self._grace:
                    leaks.append(resource)
            for rid in set(self._missing_since) - seen:
                del self._missing_since[rid]
        return leaks
