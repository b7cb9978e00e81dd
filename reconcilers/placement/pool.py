"""The pool scheduler: placement decisions in a pool for every kind that names one.

Where it sits: the last step of the placement pipeline, after the inputs
(``reconcilers.placement.inputs``) and around the pure policy
(``reconcilers.placement.policy.place``). The Instance, Subnet and Volume reconcilers each hold
one :class:`PoolScheduler` (the Instance one through ``reconcilers.placement.instance``); the
Pool reconciler (``reconcilers.pool``) counts usage with the same :func:`placed_counts`.

It decides by the pool policy with load and rotation: LeastLoaded counts the kind's objects
already on each member (:func:`placed_counts`), RoundRobin takes turns, WeightedRandom, Priority
and LowestCost rank as the policy says. Decisions on a pool are serialised in the process and
remembered until the cache shows them, so objects scheduled at once by several workers see
each other: four subnets created together in a RoundRobin pool of two land two and two, and
LeastLoaded spreads them instead of piling them on the member that looked empty to everyone.
A turn is taken by a decision, not by an attempt: an object retried after a lost CAS race or a
stale read keeps its turn. ``maxInstances`` caps instances only, so it is not applied here.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

from api_types import Instance, InstancePlacement, Placement, PoolPolicy, Subnet, Volume
from api_types.meta import Resource
from controller.cache import Informer
from controller.errors import TransientError
from controller.store.keys import ObjectKey
from reconcilers._common import shared_index
from reconcilers.deps import Deps
from reconcilers.placement.inputs import Unschedulable, account_states, candidates
from reconcilers.placement.policy import AccountState, Candidate, Decision, Need, place

__all__ = [
    "BY_PLACEMENT",
    "PoolScheduler",
    "placed_counts",
    "placement_index",
    "pool_index",
]

#: Index of placed Instances, Subnets and Volumes by pool, member and (Instances) provider size:
#: load and usage read it as counts (``Informer.index_counts``), never walking the objects.
BY_PLACEMENT = "pool-placement"
#: Joins the parts of a ``BY_PLACEMENT`` value; no pool name, member key or size contains it.
_SEPARATOR = "\x00"
#: Decisions remembered beyond twice what the last sweep kept before sweeping again.
_SWEEP_SLACK = 64

P = TypeVar("P", bound=Instance | Subnet | Volume)


def pool_index(obj: Instance | Subnet | Volume) -> list[str]:
    """The pool an object names (none or one)."""
    return [obj.spec.pool] if obj.spec.pool else []


def placement_index(obj: Instance | Subnet | Volume) -> list[str]:
    """The ``BY_PLACEMENT`` index: ``pool``, member key and provider size ("" for a kind without
    one) of an object placed on a member of the pool it names."""
    placement = obj.status.placement
    if not obj.spec.pool or placement is None or not placement.member:
        return []
    size = placement.size if isinstance(placement, InstancePlacement) else ""
    return [_SEPARATOR.join((obj.spec.pool, placement.member, size))]


def placed_counts(objects: Informer[P], pool: str) -> dict[str, Counter[str]]:
    """The objects of ``pool`` placed on each member key, counted per provider size."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    prefix = pool + _SEPARATOR
    for value, count in objects.index_counts(BY_PLACEMENT).items():
        if value.startswith(prefix):
            _, member, size = value.split(_SEPARATOR)
            counts[member][size] += count
    return counts


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
        shared_index(self._objects, BY_PLACEMENT, placement_index)
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
        forecast: Sequence[str] | None = None,
    ) -> Decision:
        """``placement.place`` with ``pool``'s load (objects placed, and decided here but not
        cached yet) and ``obj``'s RoundRobin turn; remembers a decision that chose a member.
        ``counts_load=False`` skips counting where neither the policy nor a ``maxInstances``
        looks at load (counting walks the pool's objects).

        With ``forecast`` — the members chosen for the objects forecast before this one in
        ``pool`` — the decision is a preview (a GitSource's plan): those objects count as load
        and as turns taken, and nothing is remembered."""
        if pool is None:
            return place(need, members, states, policy=policy)
        with self._lock:
            load, turn = self._load_and_turn(pool, need.uid, counts_load)
            if forecast is not None:
                load.update(forecast)
                turn += len(forecast)
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
            if decision.chosen is not None and forecast is None:
                if need.uid not in self._decided:
                    self._turns[pool] += 1
                key = self._deps.store.key_of(obj)
                self._decided[need.uid] = _Decided(key, pool, decision.chosen.key, turn)
        return decision

    def load_and_turn(self, pool: str) -> tuple[Counter[str], int]:
        """Objects per member of ``pool`` (placed, or decided here and not cached yet) and the
        pool's next RoundRobin turn: what a group placement starts from."""
        with self._lock:
            return self._load_and_turn(pool, "", True)

    def remember(self, obj: Instance | Subnet | Volume, pool: str, member: str) -> None:
        """A placement decided elsewhere (a group's) and written: counted as load until the
        cache shows it, and a RoundRobin turn taken."""
        with self._lock:
            key = self._deps.store.key_of(obj)
            self._decided[str(obj.metadata.uid)] = _Decided(key, pool, member, self._turns[pool])
            self._turns[pool] += 1

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
            placed = placed_counts(self._objects, pool)
            load.update({member: sizes.total() for member, sizes in placed.items()})
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
