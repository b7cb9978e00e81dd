"""What each namespace uses of its quota, kept from the informers' events.

Where it sits: one per process (``Deps.ledger``), read by three callers:

* the instance scheduler (``reconcilers.placement.instance``): ``Scheduler.quota`` asks
  :meth:`QuotaLedger.used`, for an instance not placed yet, what its namespace uses without it
  in the first-come order of direct writes (that module's docstring): the instances placed
  there, the unplaced ones older than it (creation time, then name) and the volumes, each only
  while it counts (``reconcilers.quota.counts_against_quota``) and, for an instance, while it
  is not being deleted;
* the Quota reconciler (``reconcilers.quota``): ``status.used`` is :meth:`QuotaLedger.total`,
  everything of the namespace that counts, instances being deleted included (they still run);
* the Volume reconciler (``reconcilers.volume``): admission of an unplaced volume is
  ``total`` without that volume (``without_volume``).

All once walked every object of the namespace — the scheduler for every unplaced instance, the
Volume reconciler for every unplaced volume, the Quota reconciler once a second — so N instances
created at once under a Quota cost O(N²): 3,000 took 370 s. The ledger keeps per namespace (and
apart, the instances being deleted), from the Instance and Volume informers' events:

* placed instances counted per (account, provider size), and within that per demand;
* unplaced instances per demand, each demand a sorted list of queue positions, so those older
  than the asker are one bisect away;
* the volumes' usage, as a running sum.

A demand is what ``api_types.usage_of`` charges an instance without a known provider size — the
fields of ``spec.hardware`` it reads — and one instance per demand stands for all of them. Sizes
and hardware profiles are looked up when asked, since they change without any instance changing:
the provider sizes of the accounts the namespace has instances on, from their catalogues, before
the ledger's lock is taken (a catalogue past its age asks the cloud, and the informers' handlers
wait on that lock); an account that appears in between is charged by declared minimum until the
next answer. An answer costs O(sizes + demands) lookups and a bisect per demand, however many
instances the namespace holds.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, insort
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from api_types import HardwareProfile, Instance, QuotaUsage, Volume, usage_of
from api_types.common import as_range
from providers import CloudSize
from reconcilers._common import account_sizes
from reconcilers.deps import Deps
from reconcilers.quota import counts_against_quota, profile_of

__all__ = ["QuotaLedger"]

Position = tuple[datetime, str]
#: (profile, inline cpu minimum, inline memory minimum): every field ``usage_of`` reads of an
#: instance it has no provider size for.
Demand = tuple[str | None, int | None, int | None]
#: Provider sizes by account, then by size id.
Sizes = Mapping[str, Mapping[str, CloudSize]]


def _queue_position(instance: Instance) -> Position:
    """An instance's place in the first-come order: creation time, then name."""
    created = instance.metadata.creation_timestamp or datetime.max.replace(tzinfo=UTC)
    return created, instance.metadata.name


def _demand(instance: Instance) -> Demand:
    hardware = instance.spec.hardware
    cpu, memory = as_range(hardware.cpu), as_range(hardware.memory_mib)
    return hardware.profile, cpu.min if cpu else None, memory.min if memory else None


@dataclass(frozen=True)
class _Counted:
    """How one instance is counted: in whose books, placed (account, size) or pending."""

    books: tuple[str, bool]  # (namespace, being deleted)
    demand: Demand
    position: Position
    placed: tuple[str, str] | None


@dataclass
class _Namespace:
    placed: dict[tuple[str, str], Counter[Demand]] = field(default_factory=dict)
    pending: dict[Demand, list[Position]] = field(default_factory=dict)
    volumes: QuotaUsage = field(default_factory=QuotaUsage)


class QuotaLedger:
    """Per-namespace quota usage, kept by the Instance and Volume informers' events."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._lock = threading.Lock()
        #: By (namespace, being deleted): the volumes are all in the books of (namespace, False).
        self._namespaces: dict[tuple[str, bool], _Namespace] = defaultdict(_Namespace)
        self._instances: dict[str, _Counted] = {}  # by uid
        self._volumes: dict[str, tuple[str, QuotaUsage]] = {}  # by uid: namespace, usage
        self._example: dict[Demand, Instance] = {}  # one instance standing for each demand
        deps.manager.informer(Instance).add_handlers(
            on_add=lambda new: self._instance(None, new),
            on_update=self._instance,
            on_delete=lambda old: self._instance(old, None),
        )
        deps.manager.informer(Volume).add_handlers(
            on_add=lambda new: self._volume(None, new),
            on_update=self._volume,
            on_delete=lambda old: self._volume(old, None),
        )

    def used(self, instance: Instance, profiles: Mapping[str, HardwareProfile]) -> QuotaUsage:
        """What ``instance``'s namespace uses without it, counting the unplaced instances
        older than it."""
        namespace = instance.metadata.namespace or ""
        sizes = self._sizes(namespace)
        with self._lock:
            books = self._namespaces.get((namespace, False))
            if books is None:
                return QuotaUsage()
            own = self._instances.get(str(instance.metadata.uid))
            return self._sum(books, profiles, sizes, _queue_position(instance), own)

    def total(
        self,
        namespace: str,
        profiles: Mapping[str, HardwareProfile],
        *,
        without_volume: str | None = None,
    ) -> QuotaUsage:
        """Everything of ``namespace`` that counts, instances being deleted included; less the
        volume of uid ``without_volume`` (one asking for admission) if it counts."""
        sizes = self._sizes(namespace)
        with self._lock:
            total = QuotaUsage()
            for deleting in (False, True):
                books = self._namespaces.get((namespace, deleting))
                if books is not None:
                    total += self._sum(books, profiles, sizes, None, None)
            asking = self._volumes.get(without_volume) if without_volume is not None else None
            if asking is not None and asking[0] == namespace:
                total -= asking[1]
            return total

    def _sizes(self, namespace: str) -> dict[str, dict[str, CloudSize]]:
        """The catalogue sizes of the accounts ``namespace`` has instances placed on (looked
        up without the lock: see the module)."""
        with self._lock:
            accounts = {
                account
                for deleting in (False, True)
                if (books := self._namespaces.get((namespace, deleting))) is not None
                for account, _ in books.placed
            }
        return {account: account_sizes(self._deps, account) for account in sorted(accounts)}

    def _sum(
        self,
        books: _Namespace,
        profiles: Mapping[str, HardwareProfile],
        sizes: Sizes,
        before: Position | None,
        own: _Counted | None,
    ) -> QuotaUsage:
        """The books' usage: placed instances (less ``own``), unplaced ones (only those older
        than ``before`` when given) and volumes. Call with the lock held."""
        total = books.volumes
        for (account, size_name), demands in books.placed.items():
            counts = Counter(demands)
            if own is not None and own.placed == (account, size_name):
                counts[own.demand] -= 1
            known = sizes.get(account, {}).get(size_name)
            for demand, count in counts.items():
                if count > 0:
                    example = self._example[demand]
                    charged = usage_of(example, profile_of(example, profiles), known)
                    total += charged * count
        for demand, positions in books.pending.items():
            counted = len(positions) if before is None else bisect_left(positions, before)
            if counted:
                example = self._example[demand]
                total += usage_of(example, profile_of(example, profiles)) * counted
        return total

    # --- the informers' events -------------------------------------------------------------

    def _instance(self, old: Instance | None, new: Instance | None) -> None:
        with self._lock:
            if old is not None:
                self._uncount(str(old.metadata.uid))
            if new is None or not counts_against_quota(new):
                return
            placement = new.status.placement
            counted = _Counted(
                (new.metadata.namespace or "", new.metadata.deletion_timestamp is not None),
                _demand(new),
                _queue_position(new),
                None if placement is None else (placement.account, placement.size),
            )
            self._instances[str(new.metadata.uid)] = counted
            self._example.setdefault(counted.demand, new)
            books = self._namespaces[counted.books]
            if counted.placed is not None:
                books.placed.setdefault(counted.placed, Counter())[counted.demand] += 1
            else:
                insort(books.pending.setdefault(counted.demand, []), counted.position)

    def _uncount(self, uid: str) -> None:
        counted = self._instances.pop(uid, None)
        if counted is None:
            return
        books = self._namespaces[counted.books]
        if counted.placed is not None:
            demands = books.placed[counted.placed]
            demands[counted.demand] -= 1
            if demands[counted.demand] <= 0:
                del demands[counted.demand]
            if not demands:
                del books.placed[counted.placed]
        else:
            positions = books.pending[counted.demand]
            index = bisect_left(positions, counted.position)
            if index < len(positions) and positions[index] == counted.position:
                del positions[index]
            if not positions:
                del books.pending[counted.demand]

    def _volume(self, old: Volume | None, new: Volume | None) -> None:
        with self._lock:
            if old is not None:
                counted = self._volumes.pop(str(old.metadata.uid), None)
                if counted is not None:
                    books = self._namespaces[(counted[0], False)]
                    books.volumes -= counted[1]
            if new is not None and counts_against_quota(new):
                namespace, usage = new.metadata.namespace or "", usage_of(new)
                self._volumes[str(new.metadata.uid)] = (namespace, usage)
                books = self._namespaces[(namespace, False)]
                books.volumes += usage
