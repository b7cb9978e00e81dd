"""The instance scheduler: quota for direct writes, then placement with the pool's memory.

Where it sits: the placement pipeline's entry for Instances, called by the Instance reconciler
(``reconcilers.instance.reconciler``) while an instance has no ``status.placement``. It gathers
the inputs of ``reconcilers.placement.policy.place`` — candidates and account states through
``reconcilers.placement.inputs``, image architectures from the account's catalogue, hardware
profiles, the instance's subnet location, the namespace quota — and decides through the
``reconcilers.placement.pool.PoolScheduler`` every pooled kind uses (per-member load counted
from the cache plus decisions not cached yet, RoundRobin turns), adding what the process's
``Deps.memory`` (``reconcilers.placement.memory.PlacementMemory``) knows:

* recent failures per (pool, member) for the failure penalty (also shown in ``Pool.status``);
* accounts whose API budget ran out recently (``BudgetExhausted``): skipped for the delay the
  gate asked for, so a busy account sheds new placements to the other members.

The same scheduler serves two more callers: :meth:`Scheduler.schedule_group` gathers these
inputs for a VirtualCluster's replicas and hands them to the group scheduler
(``reconcilers.placement.group``), and :meth:`Scheduler.forecast` previews where new instances
would go without remembering anything (a GitSource's plan). ``Deps.scheduler`` is the one
instance of it a process has, so all three see the same pool turns and pending decisions.

Quota for objects written straight into the store (DESIGN §3): an instance counts against its
namespace once placed, or while it is unplaced, not blocked itself and older than the instance
asking (creation time, then name). This first-come order is the same in every worker, so three
direct writes under a limit of two admit the two oldest and block the third — and the third is
admitted once one of the others is deleted — instead of all blocking each other (or none). What
a namespace uses in that order is kept by ``reconcilers.placement.ledger.QuotaLedger`` from the
informers' events, so asking costs the same with ten instances in the namespace or ten
thousand.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from api_types import (
    HardwareProfile,
    HardwareProfileSpec,
    Instance,
    Quota,
    QuotaLimits,
    QuotaUsage,
    Subnet,
    usage_of,
)
from api_types.clusters import HOST_TOPOLOGY_DRIVERS
from api_types.common import Placement, TargetSpec
from controller.errors import ReconcileError
from controller.store.keys import ObjectKey
from providers import CloudSize
from reconcilers._common import account_handle, account_sizes
from reconcilers.deps import Deps
from reconcilers.hardware import HardwareConstraints, UnknownProfileError
from reconcilers.placement.group import Fixed, GroupDecision, Replica, Rule, Site, place_group
from reconcilers.placement.inputs import Unschedulable, account_states, candidates
from reconcilers.placement.memory import PlacementMemory
from reconcilers.placement.policy import AccountState, Decision, Need, Option
from reconcilers.placement.pool import PoolScheduler
from reconcilers.quota import namespace_usage, profile_of

__all__ = [
    "Forecast",
    "QuotaVerdict",
    "Scheduler",
    "tightest",
]


class QuotaVerdict:
    """The namespace's tightest limits, what it uses without the instance, and the excess."""

    def __init__(self, hard: QuotaLimits | None, used: QuotaUsage, over: list[str]) -> None:
        self.hard = hard
        self.used = used
        self.over = over

    def message(self) -> str:
        used = ", ".join(f"{k}={v}" for k, v in self.used.model_dump(by_alias=True).items() if v)
        return f"namespace quota exceeded for {', '.join(self.over)} (in use: {used or 'nothing'})"


def tightest(quotas: list[Quota]) -> QuotaLimits | None:
    """One set of limits holding the smallest limit of every resource over ``quotas``."""
    if not quotas:
        return None
    merged: dict[str, int] = {}
    for quota in quotas:
        for name in QuotaLimits.model_fields:
            limit = getattr(quota.spec.hard, name)
            if limit is not None:
                merged[name] = min(limit, merged.get(name, limit))
    return QuotaLimits.model_validate(
        {QuotaLimits.model_fields[n].alias or n: v for n, v in merged.items()}
    )


class Scheduler:
    """Decides where an Instance goes: its namespace quota first, then placement in its pool."""

    def __init__(self, deps: Deps, memory: PlacementMemory) -> None:
        self._deps = deps
        self.memory = memory
        self._pools = PoolScheduler(deps, Instance)
        self._ledger = deps.ledger
        self._profiles = deps.manager.informer(HardwareProfile)
        self._quotas = deps.manager.informer(Quota)
        self._subnets = deps.manager.informer(Subnet)

    def subnet_of(self, instance: Instance) -> Subnet | None:
        """The Subnet ``spec.subnetRef`` names, from the cache (None without one, or missing)."""
        ref = instance.spec.subnet_ref
        if ref is None:
            return None
        return self._subnets.peek(ObjectKey(Subnet.PLURAL, instance.metadata.namespace, ref))

    def profile(self, name: str) -> HardwareProfile | None:
        return self._profiles.peek(ObjectKey(HardwareProfile.PLURAL, None, name))

    def _profile_spec(self, name: str) -> HardwareProfileSpec | None:
        found = self.profile(name)
        return None if found is None else found.spec

    def hardware(self, instance: Instance) -> HardwareConstraints:
        """``spec.hardware`` resolved (UnknownProfileError for a missing profile)."""
        return HardwareConstraints.from_spec(instance.spec.hardware, self._profile_spec)

    def _size_of(self, instance: Instance) -> CloudSize | None:
        placement = instance.status.placement
        if placement is None:
            return None
        return account_sizes(self._deps, placement.account).get(placement.size)

    def quota(self, instance: Instance, ahead: Sequence[Instance] = ()) -> QuotaVerdict:
        """Would admitting ``instance`` exceed a Quota of its namespace (first come first)?
        ``ahead``: instances not in the store yet that count before it (a forecast's)."""
        namespace = instance.metadata.namespace
        quotas = self._quotas.list(namespace)
        if not quotas:
            return QuotaVerdict(None, QuotaUsage(), [])
        profiles = {p.metadata.name: p for p in self._profiles.list()}
        used = self._ledger.used(instance, profiles)
        before = [other for other in ahead if other.metadata.namespace == namespace]
        used += namespace_usage(before, (), profiles, sizes=self._size_of)
        hard = tightest(quotas)
        assert hard is not None
        wanted = usage_of(instance, profile_of(instance, profiles))
        return QuotaVerdict(hard, used, (used + wanted).exceeds(hard))

    def _image_arch(self, account: str) -> dict[str, str] | None:
        """Architecture per image id of ``account`` (None while the cloud cannot say)."""
        try:
            return account_handle(self._deps, account).catalogue.image_arch()
        except ReconcileError:
            return None

    def _complete(self, states: dict[str, AccountState]) -> dict[str, AccountState]:
        """Add image architectures and this controller's view of exhausted API budgets."""
        completed = {}
        for name, state in states.items():
            if state.problem is None and self.memory.budget_exhausted(name):
                state = replace(state, problem=f"{name}: API budget exhausted")
            elif state.problem is None:
                arch = self._image_arch(name)
                state = (
                    replace(state, image_arch=arch)
                    if arch is not None
                    else replace(state, problem=f"{name}: images unlistable now")
                )
            completed[name] = state
        return completed

    def _need(self, instance: Instance, subnet: Subnet | None, quota: QuotaVerdict) -> Need:
        spec = instance.spec
        hints = spec.placement
        location = subnet.status.placement if subnet is not None else None
        return Need(
            uid=str(instance.metadata.uid),
            hardware=self.hardware(instance),
            image=spec.image,
            account=hints.account if hints else None,
            region=hints.region if hints else None,
            zone=hints.zone if hints else None,
            location_account=location.account if location else None,
            location_region=location.region if location else None,
            location_zone=location.zone if location else None,
            quota=quota.hard,
            used=quota.used,
            adds=QuotaUsage(instances=1),
        )

    def schedule(
        self,
        instance: Instance,
        subnet: Subnet | None,
        quota: QuotaVerdict,
        forecast: Mapping[str, Sequence[str]] | None = None,
    ) -> tuple[Decision, str | None]:
        """The placement decision and the pool it was made in (Unschedulable: pool problems).
        With ``forecast`` (members chosen so far per pool by :meth:`forecast`) it is a
        preview: nothing is remembered."""
        spec = instance.spec
        targets = candidates(self._deps, spec, instance.metadata.namespace)
        states = self._complete(account_states(self._deps, (c.account for c in targets.candidates)))
        need = self._need(instance, subnet, quota)
        pool = targets.pool
        policy = targets.policy
        decision = self._pools.decide(
            pool,
            need,
            targets.candidates,
            states,
            policy=policy,
            failures=self.memory.failures(pool) if pool else {},
            now=self._deps.clock.wall(),
            forecast=None if forecast is None or pool is None else forecast.get(pool, ()),
        )
        return decision, pool

    def schedule_group(
        self,
        pool: str,
        namespace: str,
        replicas: Sequence[tuple[str, int, Instance]],
        fixed: Sequence[tuple[str, int, Placement]],
        rules: Sequence[Rule],
    ) -> GroupDecision:
        """Place ``replicas`` — (member, ordinal, the Instance to be, or the unplaced one that
        exists) — together in ``pool`` under ``rules``, the ``fixed`` ones (member, ordinal,
        placement) staying where they are: ``placement.place_group`` over the pool's candidates
        with the load, failures and RoundRobin turn the pool scheduler keeps. Each replica's
        quota counts the replicas before it. Nothing is remembered: the caller writes the
        placements, then has the pool scheduler remember them (:meth:`remember_group`).
        Unschedulable: the pool is missing or closed to ``namespace``."""
        targets = candidates(self._deps, TargetSpec(pool=pool), namespace)
        names = {c.account for c in targets.candidates}
        names.update(placement.account for _, _, placement in fixed)
        states = self._complete(account_states(self._deps, names))
        needs: list[Replica] = []
        ahead: list[Instance] = []
        for member, ordinal, instance in replicas:
            need = self._need(instance, self.subnet_of(instance), self.quota(instance, ahead))
            needs.append(Replica(member, ordinal, need))
            ahead.append(instance)
        load, turn = self._pools.load_and_turn(pool)
        return place_group(
            needs,
            targets.candidates,
            states,
            rules=rules,
            fixed=[
                Fixed(member, ordinal, Site.of(p.account, p.region, p.zone, states))
                for member, ordinal, p in fixed
            ],
            host_accounts={
                name for name, state in states.items() if state.driver in HOST_TOPOLOGY_DRIVERS
            },
            policy=targets.policy,
            load=load,
            failures=self.memory.failures(pool),
            now=self._deps.clock.wall(),
            rotation=turn,
        )

    def remember_group(self, pool: str, placed: Sequence[tuple[Instance, str]]) -> None:
        """Group placements written: (instance, member key), load until the cache shows them."""
        for instance, member in placed:
            self._pools.remember(instance, pool, member)

    def forecast(self, instances: Sequence[Instance]) -> list[Forecast]:
        """Where each of ``instances`` (not in the store yet, in the order they would be
        created) would be placed now — nothing remembered, nothing written. Each counts for
        the quota and the pool load of those after it, and takes its RoundRobin turn, as if
        created in that order. A forecast, not a promise: the account states, the load and
        the turns may move before the instances are created, and a WeightedRandom draw is
        seeded by a uid the server has not given yet."""
        forecasts: list[Forecast] = []
        placed: list[Instance] = []
        chosen: dict[str, list[str]] = defaultdict(list)
        for instance in instances:
            try:
                verdict = self.quota(instance, placed)
                if verdict.over:
                    forecasts.append(Forecast(instance, None, verdict.message()))
                    continue
                decision, pool = self.schedule(instance, self.subnet_of(instance), verdict, chosen)
            except (Unschedulable, UnknownProfileError) as exc:
                forecasts.append(Forecast(instance, None, str(exc)))
                continue
            if decision.chosen is None:
                why = decision.summary() or "the pool is empty"
                forecasts.append(Forecast(instance, None, f"no member can take it: {why}"))
                continue
            forecasts.append(Forecast(instance, decision.chosen, None))
            placed.append(instance)
            if pool is not None:
                chosen[pool].append(decision.chosen.key)
        return forecasts


@dataclass(frozen=True)
class Forecast:
    """Where a new instance would go (``option``), or why it could not be placed."""

    instance: Instance
    option: Option | None
    unplaced: str | None
