"""Pool status: usage and health per member, recounted from the caches.

Where it sits: the Pool controller, fed by the Pool, Instance, Volume and ProviderAccount
caches. For each member of ``spec.members`` it writes a ``status.members`` entry:

* usage — instances and volumes of this pool placed on the member (``status.placement.member``),
  with the vCPUs and memory of the instances' sizes (from the account's size catalogue);
* health — the account's ``Ready`` condition (missing account = unhealthy), which is also what
  placement filters on;
* last failure — when a placement on the member last failed and why; the Instance scheduler
  keeps those in memory, and the composition root passes its lookup as ``failures``
  (``pool name -> {member key: time}``). A failure already in status is kept.

Recounting sums over every object of the pool, so the controller reconciles a pool at most
once a second (the runtime's ``min_interval``) however many instances change meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from api_types import Instance, Pool, PoolMember, PoolMemberStatus, ProviderAccount, Volume
from api_types.meta import ConditionStatus, Resource
from controller.handler import EnqueueMapped
from controller.reconcile import Request, Result
from controller.store.keys import ObjectKey
from reconcilers._common import (
    conflicts_retry,
    install_indexes,
    shared_index,
    snapshot,
    write_status,
)
from reconcilers.deps import Deps
from reconcilers.scheduling import account_sizes

__all__ = ["BY_POOL", "PoolReconciler", "register"]

#: Index of Instances and Volumes by ``spec.pool``.
BY_POOL = "pool"
MIN_RECOUNT_SECONDS = 1.0

FailureLookup = Callable[[str], Mapping[str, datetime]]


def _pool_of(obj: Instance | Volume) -> list[str]:
    return [obj.spec.pool] if obj.spec.pool else []


class PoolReconciler:
    def __init__(self, deps: Deps, failures: FailureLookup | None = None) -> None:
        self._deps = deps
        self._failures = failures
        self._pools = deps.manager.informer(Pool)
        self._accounts = deps.manager.informer(ProviderAccount)
        self._instances = deps.manager.informer(Instance)
        self._volumes = deps.manager.informer(Volume)
        install_indexes(deps)
        shared_index(self._instances, BY_POOL, _pool_of)
        shared_index(self._volumes, BY_POOL, _pool_of)

    def pool_of(self, obj: Resource) -> list[Request]:
        assert isinstance(obj, Instance | Volume)
        return [Request.of(Pool.PLURAL, None, name) for name in _pool_of(obj)]

    def pools_of_account(self, obj: Resource) -> list[Request]:
        return [
            Request.of(Pool.PLURAL, None, pool.metadata.name)
            for pool in self._pools.list()
            if any(m.account == obj.metadata.name for m in pool.spec.members)
        ]

    @conflicts_retry
    def reconcile(self, request: Request) -> Result:
        pool = self._pools.get(request.key)
        if pool is None:
            return Result()
        before = snapshot(pool)
        name = pool.metadata.name
        known = {m.member: m for m in pool.status.members}
        failures = self._failures(name) if self._failures is not None else {}
        pool.status.members = [
            self._member(name, member, known.get(member.key), failures.get(member.key))
            for member in pool.spec.members
        ]
        healthy = sum(1 for m in pool.status.members if m.healthy)
        generation = pool.metadata.generation
        pool.status.set_condition(
            "Ready",
            healthy > 0,
            "MembersHealthy" if healthy else "NoHealthyMember",
            f"{healthy}/{len(pool.status.members)} member(s) healthy",
            generation=generation,
        )
        pool.status.observed_generation = generation
        write_status(self._deps, pool, before)
        return Result()

    def _member(
        self,
        pool: str,
        member: PoolMember,
        known: PoolMemberStatus | None,
        failed_at: datetime | None,
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
        placed = [
            i
            for i in self._instances.by_index(BY_POOL, pool)
            if i.status.placement is not None and i.status.placement.member == key
        ]
        sizes = account_sizes(self._deps, member.account) if placed and account else {}
        found = [sizes.get(i.status.placement.size) for i in placed if i.status.placement]
        volumes = [
            v
            for v in self._volumes.by_index(BY_POOL, pool)
            if v.status.placement is not None and v.status.placement.member == key
        ]
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
            instances=len(placed),
            volumes=len(volumes),
            cpu=sum(s.cpu for s in found if s is not None),
            memory_mib=sum(s.memory_mib for s in found if s is not None),
            last_failure_time=last_time,
            last_failure_reason=last_reason,
        )


def register(deps: Deps, *, failures: FailureLookup | None = None) -> None:
    reconciler = PoolReconciler(deps, failures)
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
