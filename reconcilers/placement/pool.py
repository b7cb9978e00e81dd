"""The pool scheduler: placement decisions in a pool for every kind that names one.

Where it sits: the last step of the placement pipeline, after the inputs
(``reconcilers.placement.inputs``) and around the pure policy
(``reconcilers.placement.policy.place``). The Instance, Subnet and Volume reconcilers each hold
one :class:`PoolScheduler` (the Instance one through ``reconcilers.placement.instance``); the
Pool reconciler (``reconcilers.pool``) counts usage with :func:`placed_counts`, by the rule of
where an object is placed (:func:`placement_index`) that the scheduler's load follows too.

It decides by the pool policy with load and rotation: LeastLoaded counts the kind's objects
already on each member, RoundRobin takes turns, WeightedRandom, Priority and LowestCost rank as
the policy says. Decisions on a pool are serialised in the process and remembered until the
cache shows them, so objects scheduled at once by several workers see each other: four subnets
created together in a RoundRobin pool of two land two and two, and LeastLoaded spreads them
instead of piling them on the member that looked empty to everyone.

The load is the scheduler's own count, kept by the informer's events (Kubernetes' scheduler
cache with its assumed pods, in small): per pool and member, the objects the cache shows placed
there (:func:`placement_index`, what the Pool reconciler's usage counts too) plus the decisions
it does not show yet. The event that shows a decision's object placed moves it from one count
to the other under the scheduler's lock, so a decision never sees it twice or not at all, and
a decision costs O(members) however many objects the pool holds or the cache lags behind.
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
from controller.cache import Informer
from controller.errors import TransientError
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

#: Index of placed Instances and Volumes by pool, member and (Instances) provider size: the Pool
#: reconciler reads it as counts (``Informer.index_counts``), never walking the objects.
BY_PLACEMENT = "pool-placement"
#: Joins the parts of a ``BY_PLACEMENT`` value; no pool name, member key or size contains it.
_SEPARATOR = "\x00"

P = TypeVar("P", bound=Instance | Subnet | Volume)


def pool_index(obj: Instance | Subnet | Volume) -> list[str]:
    """The pool an object names (none or one)."""
    return [obj.spec.pool] if obj.spec.pool else []


def _placed_on(obj: Instance | Subnet | Volume) -> tuple[str, str] | None:
    """(pool, member key) of an object placed on a member of the pool it names."""
    placement = obj.status.placement
    if not obj.spec.pool or placement is None or not placement.member:
        return None
    return obj.spec.pool, placement.member


def placement_index(obj: Instance | Subnet | Volume) -> list[str]:
    """The ``BY_PLACEMENT`` index: ``pool``, member key and provider size ("" for a kind without
    one) of an object placed on a member of the pool it names."""
    where = _placed_on(obj)
    if where is None:
        return []
    placement = obj.status.placement
    size = placement.size if isinstance(placement, InstancePlacement) else ""
    return [_SEPARATOR.join((*where, size))]


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
    """A placement decided in this process that the cache does not show yet."""

    pool: str
    member: str
    turn: int


class PoolScheduler:
    """Decides where the objects of one kind (Instance, Subnet or Volume) go in their pools."""

    def __init__(self, deps: Deps, model: type[Instance] | type[Subnet] | type[Volume]) -> None:
        self._deps = deps
        self._lock = threading.Lock()
        self._placed: dict[str, tuple[str, str]] = {}  # by uid: (pool, member) the cache shows
        self._decided: dict[str, _Decided] = {}  # by uid: decisions the cache does not show yet
        self._load: dict[str, Counter[str]] = defaultdict(Counter)  # by pool: both, per member
        self._turns: dict[str, int] = defaultdict(int)  # by pool: decisions made there
        deps.manager.informer(model).add_handlers(
            on_add=lambda new: self._changed(None, new),
            on_update=self._changed,
            on_delete=lambda old: self._changed(old, None),
        )

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
        decision = self.decide(targets.pool, need, members, states, policy=targets.policy)
        if decision.chosen is None:
            raise Unschedulable(f"no member can take it: {decision.summary()}")
        if decision.chosen.zone is None:
            raise TransientError(f"account {decision.chosen.account} reports no zones", delay=10)
        return decision

    def decide(
        self,
        pool: str | None,
        need: Need,
        members: Sequence[Candidate],
        states: Mapping[str, AccountState],
        *,
        policy: PoolPolicy | None = None,
        failures: Mapping[str, datetime] | None = None,
        now: datetime | None = None,
        forecast: Sequence[str] | None = None,
    ) -> Decision:
        """``placement.place`` with ``pool``'s load (objects placed, and decided here but not
        cached yet) and ``obj``'s RoundRobin turn; remembers a decision that chose a member.

        With ``forecast`` — the members chosen for the objects forecast before this one in
        ``pool`` — the decision is a preview (a GitSource's plan): those objects count as load
        and as turns taken, and nothing is remembered."""
        if pool is None:
            return place(need, members, states, policy=policy)
        with self._lock:
            load, turn = self._load_and_turn(pool, need.uid)
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
                self._note(need.uid, _Decided(pool, decision.chosen.key, turn))
        return decision

    def load_and_turn(self, pool: str) -> tuple[Counter[str], int]:
        """Objects per member of ``pool`` (placed, or decided here and not cached yet) and the
        pool's next RoundRobin turn: what a group placement starts from."""
        with self._lock:
            return self._load_and_turn(pool, "")

    def remember(self, obj: Instance | Subnet | Volume, pool: str, member: str) -> None:
        """A placement decided elsewhere (a group's) and written: counted as load until the
        cache shows it, and a RoundRobin turn taken."""
        with self._lock:
            self._note(str(obj.metadata.uid), _Decided(pool, member, self._turns[pool]))
            self._turns[pool] += 1

    # --- the counts (callers hold _lock) ---------------------------------------------------

    def _load_and_turn(self, pool: str, uid: str) -> tuple[Counter[str], int]:
        """Objects per member of ``pool`` (placed, or decided here and not yet cached) besides
        ``uid``, and ``uid``'s RoundRobin turn."""
        load = Counter(self._load[pool])
        mine = self._decided.get(uid)
        if mine is not None and mine.pool == pool:
            load[mine.member] -= 1
        return +load, mine.turn if mine is not None else self._turns[pool]

    def _note(self, uid: str, decided: _Decided) -> None:
        """Count a decision as load until the cache shows it (unless it shows it already)."""
        self._settle(uid)
        if uid not in self._placed:
            self._decided[uid] = decided
            self._load[decided.pool][decided.member] += 1

    def _settle(self, uid: str) -> None:
        """Forget the decision about ``uid``: the cache shows it, or it no longer matters."""
        decided = self._decided.pop(uid, None)
        if decided is not None:
            self._load[decided.pool][decided.member] -= 1

    def _changed(self, old: P | None, new: P | None) -> None:
        """The informer's change ``old`` -> ``new`` of one object (None: absent), into the
        counts: where the cache shows it placed, and which decision it settles."""
        with self._lock:
            if old is not None:
                uid = str(old.metadata.uid)
                where = self._placed.pop(uid, None)
                if where is not None:
                    self._load[where[0]][where[1]] -= 1
                if new is None or str(new.metadata.uid) != uid:
                    self._settle(uid)  # deleted, or recreated under another uid
            if new is None:
                return
            uid = str(new.metadata.uid)
            where = _placed_on(new)
            decided = self._decided.get(uid)
            if decided is not None and (where is not None or new.spec.pool != decided.pool):
                self._settle(uid)  # placed (here or by anyone), or moved to another pool
            if where is not None:
                self._placed[uid] = where
                self._load[where[0]][where[1]] += 1
