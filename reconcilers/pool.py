"""Pool status: usage and health per member, recounted from the caches.

Where it sits: the Pool controller, fed by the Pool, Instance, Volume and ProviderAccount
caches. For each member of ``spec.members`` it writes a ``status.members`` entry:

* usage — instances and volumes of this pool placed on the member (``status.placement.member``),
  with the vCPUs and memory of the instances' sizes (from the account's size catalogue);
* health — the account's ``Ready`` condition (missing account = unhealthy), which is also what
  placement filters on;
* last failure — when a placement on the member last failed, from the process's
  ``Deps.memory`` (fed by the Instance reconciler; ``failures`` overrides the lookup). A
  failure already in status is kept.

Usage is read from the caches' placement index as counts per member and size
(:func:`~reconcilers.placement.pool.placed_counts`), by the rule of where an object is placed
that ``PoolScheduler``'s load follows too (``placement_index``), so both count the same
objects: a recount costs O(members * sizes), not O(objects). The
controller still reconciles a pool at most once a second (the runtime's ``min_interval``)
however many instances change meanwhile, since each recount that changes a number is a write.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime

from api_types import (
    Instance,
    Pool,
    PoolMember,
    PoolMemberStatus,
    ProviderAccount,
    Volume,
)
from api_types.meta import ConditionStatus, Resource
from controller.handler import EnqueueMapped
from controller.passes import Pass
from controller.reconcile import Request, Result
from controller.store.keys import ObjectKey
from reconcilers._common import account_sizes, install_indexes, shared_index
from reconcilers.deps import Deps
from reconcilers.placement import BY_PLACEMENT, placed_counts, placement_index, pool_index

__all__ = ["PoolReconciler", "register"]

MIN_RECOUNT_SECONDS = 1.0

FailureLookup = Callable[[str], Mapping[str, datetime]]


class PoolReconciler:
    """Writes each Pool's ``status.members``: per member, health (its account's Ready, recent
    placement failures) and load (instances and volumes placed there); ``Ready`` while at least
    one member is healthy. Aggregates over the pool's objects, so it is coalesced
    (``min_interval``)."""

    def __init__(self, deps: Deps, failures: FailureLookup | None = None) -> None:
        self._deps = deps
        self._failures = failures
        self._pools = deps.manager.informer(Pool)
        self._accounts = deps.manager.informer(ProviderAccount)
        self._instances = deps.manager.informer(Instance)
        self._volumes = deps.manager.informer(Volume)
        install_indexes(deps)
        shared_index(self._instances, BY_PLACEMENT, placement_index)
        shared_index(self._volumes, BY_PLACEMENT, placement_index)

    def pool_of(self, obj: Resource) -> list[Request]:
        assert isinstance(obj, Instance | Volume)
        return [Request.of(Pool.PLURAL, None, name) for name in pool_index(obj)]

    def pools_of_account(self, obj: Resource) -> list[Request]:
        return [
            Request.of(Pool.PLURAL, None, pool.metadata.name)
            for pool in self._pools.list()
            if any(m.account == obj.metadata.name for m in pool.spec.members)
        ]

    def reconcile(self, request: Request) -> Result:
        pool = self._pools.get(request.key)
        if pool is None:
            return Result()
        name = pool.metadata.name
        known = {m.member: m for m in pool.status.members}
        failures = self._failures(name) if self._failures is not None else {}
        instances = placed_counts(self._instances, name)
        volumes = placed_counts(self._volumes, name)
        with Pass(self._deps.manager, pool) as pass_:
            pool.status.members = [
                self._member(
                    member,
                    known.get(member.key),
                    failures.get(member.key),
                    instances.get(member.key, Counter()),
                    volumes.get(member.key, Counter()).total(),
                )
                for member in pool.spec.members
            ]
            healthy = sum(1 for m in pool.status.members if m.healthy)
            pass_.condition(
                "Ready",
                healthy > 0,
                "MembersHealthy" if healthy else "NoHealthyMember",
                f"{healthy}/{len(pool.status.members)} member(s) healthy",
            )
            pass_.observe_generation()
        return Result()

    def _member(
        self,
        member: PoolMember,
        known: PoolMemberStatus | None,
        failed_at: datetime | None,
        placed: Counter[str],
        volumes: int,
    ) -> PoolMemberStatus:
        key = member.key
        account = self._accounts.peek(ObjectKey(ProviderAccount.PLURAL, None, member.account))
        healthy, message = True, ""
        if account is None:
            healthy, message = False, f"account {member.account} does not exist"
        else:
            ready = account.status.condition("Ready")
            if ready is not None and ready.status == ConditionStatus.FALSE:
                healthy, message = False, f"{ready.reason}: {ready.message}"
        sizes = account_sizes(self._deps, member.account) if placed and account else {}
        found = [(sizes.get(size), count) for size, count in placed.items()]
        last_time = known.last_failure_time if known else None
        last_reason = known.last_failure_reason if known else None
        if failed_at is not None and (last_time is None or failed_at > last_time):
            last_time, last_reason = failed_at, "a placement on this member failed"
        return PoolMemberStatus(
            member=key,
            account=member.account,
            region=member.region or (account.spec.region if account else None),
            healthy=healthy,
            message=message,
            instances=placed.total(),
            volumes=volumes,
            cpu=sum(s.cpu * count for s, count in found if s is not None),
            memory_mib=sum(s.memory_mib * count for s, count in found if s is not None),
            last_failure_time=last_time,
            last_failure_reason=last_reason,
        )


def register(deps: Deps, *, failures: FailureLookup | None = None) -> None:
    """``failures``: where placements failed per pool (default: the process's shared memory)."""
    reconciler = PoolReconciler(deps, failures or deps.memory.failures)
    deps.manager.add_controller(
        Pool,
        reconciler,
        workers=1,
        min_interval=MIN_RECOUNT_SECONDS,
        watches=[
            (Instance, EnqueueMapped(reconciler.pool_of)),
            (Volume, EnqueueMapped(reconciler.pool_of)),
            (ProviderAccount, EnqueueMapped(reconciler.pools_of_account)),
        ],
    )
