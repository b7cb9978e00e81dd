"""Pool status (usage and health per member, recounted from the caches); pool placement.

Where it sits: the Pool controller, fed by the Pool, Instance, Volume and ProviderAccount
caches. For each member of ``spec.members`` it writes a ``status.members`` entry:

* usage — instances and volumes of this pool placed on the member (``status.placement.member``),
  with the vCPUs and memory of the instances' sizes (from the account's size catalogue);
* health — the account's ``Ready`` condition (missing account = unhealthy), which is also what
  placement filters on;
* last failure — when a placement on the member last failed, from the process's
  ``Deps.memory`` (fed by the Instance reconciler; ``failures`` overrides the lookup). A
  failure already in status is kept.

Recounting sums over every object of the pool, so the controller reconciles a pool at most
once a second (the runtime's ``min_interval``) however many instances change meanwhile.

Beside it, :class:`PoolScheduler` decides placements in a pool for every kind that names one
(the Instance, Subnet and Volume reconcilers each hold one) by the pool policy with load and
rotation:
LeastLoaded counts the kind's objects already on each member (:func:`per_member`, the same
grouping as the usage above), RoundRobin takes turns, WeightedRandom, Priority and LowestCost
rank as ``reconcilers.placement`` says. Decisions on a pool are serialised in the process and
remembered until the cache shows them, so objects scheduled at once by several workers see
each other: four subnets created together in a RoundRobin pool of two land two and two, and
LeastLoaded spreads them instead of piling them on the member that looked empty to everyone.
A turn is taken by a decision, not by an attempt: an object retried after a lost CAS race or a
stale read keeps its turn. ``maxInstances`` caps instances only, so it is not applied here.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

from api_types import (
    Instance,
    Placement,
    Pool,
    PoolMember,
    PoolMemberStatus,
    PoolPolicy,
    ProviderAccount,
    Subnet,
    Volume,
)
from api_types.meta import ConditionStatus, Resource
from controller.errors import TransientError
from controller.handler import EnqueueMapped
from controller.passes import Pass
from controller.reconcile import Request, Result
from controller.store.keys import ObjectKey
from reconcilers._common import install_indexes, shared_index
from reconcilers.deps import Deps
from reconcilers.placement import AccountState, Candidate, Decision, Need, place
from reconcilers.scheduling import Unschedulable, account_sizes, account_states, candidates

__all__ = ["BY_POOL", "PoolReconciler", "PoolScheduler", "per_member", "register"]

#: Index of Instances, Subnets and Volumes by ``spec.pool``.
BY_POOL = "pool"
MIN_RECOUNT_SECONDS = 1.0
#: Decisions remembered beyond twice what the last sweep kept before sweeping again.
_SWEEP_SLACK = 64

FailureLookup = Callable[[str], Mapping[str, datetime]]
P = TypeVar("P", bound=Instance | Subnet | Volume)


def _pool_of(obj: Instance | Subnet | Volume) -> list[str]:
    return [obj.spec.pool] if obj.spec.pool else []


def per_member(objects: Iterable[P]) -> dict[str, list[P]]:
    """``objects`` (of one pool) that are placed, grouped by their member key."""
    grouped: dict[str, list[P]] = defaultdict(list)
    for obj in objects:
        placement = obj.status.placement
        if placement is not None and placement.member:
            grouped[placement.member].append(obj)
    return grouped


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

    def reconcile(self, request: Request) -> Result:
        pool = self._pools.get(request.key)
        if pool is None:
            return Result()
        name = pool.metadata.name
        known = {m.member: m for m in pool.status.members}
        failures = self._failures(name) if self._failures is not None else {}
        instances = per_member(self._instances.by_index(BY_POOL, name))
        volumes = per_member(self._volumes.by_index(BY_POOL, name))
        with Pass(self._deps.manager, pool) as pass_:
            pool.status.members = [
                self._member(
                    member,
                    known.get(member.key),
                    failures.get(member.key),
                    instances.get(member.key, []),
                    len(volumes.get(member.key, [])),
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
        placed: list[Instance],
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
        found = [sizes.get(i.status.placement.size) for i in placed if i.status.placement]
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
            volumes=volumes,
            cpu=sum(s.cpu for s in found if s is not None),
            memory_mib=sum(s.memory_mib for s in found if s is not None),
            last_failure_time=last_time,
            last_failure_reason=last_reason,
        )


@dataclass(frozen=True)
class _Decided:
    """A placement decided in this process that the cache may not show yet."""

    key: ObjectKey
    pool: str
    member: str
    turn: int


class PoolScheduler:
    """Decides where the objects of one kind (Instance, Subnet or Volume) go in their pools."""

    def __init__(self, deps: Deps, model: type[Instance] | type[Subnet] | type[Volume]) -> None:
        self._deps = deps
        self._objects = deps.manager.informer(model)
        shared_index(self._objects, BY_POOL, _pool_of)
        self._lock = threading.Lock()
        self._decided: dict[str, _Decided] = {}  # by uid
        self._turns: dict[str, int] = defaultdict(int)  # by pool: decisions made there
        self._kept_after_sweep = 0

    def schedule(
        self, obj: Subnet | Volume, *, zone: str | None, bound_to: Placement | None = None
    ) -> Decision:
        """Place a subnet or volume within ``zone`` if given and where ``bound_to`` is (a volume
        goes where its instance is); Unschedulable when no member can take it."""
        targets = candidates(self._deps, obj.spec, obj.metadata.namespace)
        states = account_states(self._deps, (c.account for c in targets.candidates))
        members = [replace(c, max_instances=None) for c in targets.candidates]
        need = Need(
            uid=str(obj.metadata.uid),
            zone=zone,
            location_account=bound_to.account if bound_to else None,
            location_region=bound_to.region if bound_to else None,
            location_zone=bound_to.zone if bound_to else None,
        )
        decision = self.decide(obj, targets.pool, need, members, states, policy=targets.policy)
        if decision.chosen is None:
            raise Unschedulable(f"no member can take it: {decision.summary()}")
        if decision.chosen.zone is None:
            raise TransientError(f"account {decision.chosen.account} reports no zones", delay=10)
        return decision

    def decide(
        self,
        obj: Resource,
        pool: str | None,
        need: Need,
        members: Sequence[Candidate],
        states: Mapping[str, AccountState],
        *,
        policy: PoolPolicy | None = None,
        counts_load: bool = True,
        failures: Mapping[str, datetime] | None = None,
        now: datetime | None = None,
    ) -> Decision:
        """``placement.place`` with ``pool``'s load (objects placed, and decided here but not
        cached yet) and ``obj``'s RoundRobin turn; remembers a decision that chose a member.
        ``counts_load=False`` skips counting where neither the policy nor a ``maxInstances``
        looks at load (counting walks the pool's objects)."""
        if pool is None:
            return place(need, members, states, policy=policy)
        with self._lock:
            load, turn = self._load_and_turn(pool, need.uid, counts_load)
            decision = place(
                need,
                members,
                states,
                policy=policy,
                load=load,
                rotation=turn,
                failures=failures,
                now=now,
            )
            if decision.chosen is not None:
                if need.uid not in self._decided:
                    self._turns[pool] += 1
                key = self._deps.store.key_of(obj)
                self._decided[need.uid] = _Decided(key, pool, decision.chosen.key, turn)
        return decision

    def _load_and_turn(self, pool: str, uid: str, counts_load: bool) -> tuple[Counter[str], int]:
        """Objects per member of ``pool`` (placed, or decided here and not yet cached) besides
        ``uid``, and ``uid``'s RoundRobin turn. Call with the lock held."""
        # Counting load needs exactly the decisions the cache does not show yet; otherwise
        # they only keep retried objects' turns, and a sweep per decision would cost
        # O(decisions in flight) each time: then sweep when the memory has doubled.
        if counts_load or len(self._decided) > 2 * self._kept_after_sweep + _SWEEP_SLACK:
            self._decided = {u: d for u, d in self._decided.items() if self._unseen(u, d)}
            self._kept_after_sweep = len(self._decided)
        load: Counter[str] = Counter()
        if counts_load:
            placed = per_member(self._objects.by_index(BY_POOL, pool))
            load.update({member: len(objects) for member, objects in placed.items()})
            load.update(d.member for u, d in self._decided.items() if d.pool == pool and u != uid)
        mine = self._decided.get(uid)
        return load, mine.turn if mine is not None else self._turns[pool]

    def _unseen(self, uid: str, decided: _Decided) -> bool:
        """The decision is still to be shown by the cache: its object is there, unplaced, in
        that pool (not deleted, recreated under another uid, or moved to another pool)."""
        obj: Instance | Subnet | Volume | None = self._objects.peek(decided.key)
        return (
            obj is not None
            and str(obj.metadata.uid) == uid
            and obj.spec.pool == decided.pool
            and obj.status.placement is None
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
