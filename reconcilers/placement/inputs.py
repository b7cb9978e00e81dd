"""Inputs of placement gathered from the caches and the clouds.

Where it sits: the second step of the placement pipeline, between the pure policy
(``reconcilers.placement.policy``) and the schedulers that bind an object to a pool member
(``reconcilers.placement.pool.PoolScheduler`` for every pooled kind, with the Instance
scheduler's richer ``Need`` in ``reconcilers.placement.instance``):

* :func:`account_states` — ``AccountState`` per account: region, zones and sizes from the
  account's catalogue (``AccountHandle.catalogue``, listed once per ``CATALOGUE_TTL`` through
  the guarded provider), images from the spec, and ``problem`` when the account must not be
  scheduled on: its ``Ready`` condition is False (the ProviderAccount health probe), its
  circuit is open, or its catalogue cannot be read.
* :func:`candidates` — a pool's members (honouring ``allowedNamespaces``) or the one account a
  spec names, plus the pool policy; :class:`Unschedulable` when the pool is missing or closed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from api_types import Pool, PoolPolicy, ProviderAccount
from api_types.common import TargetSpec
from api_types.meta import ConditionStatus
from controller.errors import ReconcileError, Unschedulable
from controller.store.keys import ObjectKey
from providers.budget import BreakerState
from reconcilers._common import account_handle
from reconcilers.deps import Deps
from reconcilers.placement.policy import AccountState, Candidate, candidates_of_pool

__all__ = ["Targets", "Unschedulable", "account_states", "candidates"]


@dataclass(frozen=True)
class Targets:
    """Where an object may go: the candidates, the pool's policy and the pool (None without)."""

    candidates: list[Candidate]
    policy: PoolPolicy | None
    pool: str | None


def _account_problem(account: ProviderAccount) -> str | None:
    ready = account.status.condition("Ready")
    if ready is not None and ready.status == ConditionStatus.FALSE:
        return f"account {account.metadata.name} is not ready: {ready.reason} {ready.message}"
    return None


def account_states(deps: Deps, names: Iterable[str]) -> dict[str, AccountState]:
    """The placement view of each named account that exists (missing ones are left out)."""
    informer = deps.manager.informer(ProviderAccount)
    states: dict[str, AccountState] = {}
    for name in sorted(set(names)):
        account = informer.peek(ObjectKey(ProviderAccount.PLURAL, None, name))
        if account is None:
            continue
        driver = account.spec.driver
        state = AccountState(
            name=name, region=account.spec.region, images=dict(account.spec.images), driver=driver
        )
        problem = _account_problem(account)
        if problem is None:
            try:
                handle = account_handle(deps, name)
                gate = handle.provider.gate
                if gate.breaker.state is BreakerState.OPEN:
                    problem = gate.circuit_message()
                else:
                    offer = handle.catalogue.offer()
                    state = AccountState(
                        name=name,
                        region=account.spec.region,
                        zones=offer.zones,
                        sizes=offer.sizes,
                        images=dict(account.spec.images),
                        driver=driver,
                    )
            except ReconcileError as exc:
                problem = f"account {name}: {exc.message}"
        states[name] = (
            state
            if problem is None
            else AccountState(name=name, region=account.spec.region, problem=problem, driver=driver)
        )
    return states


def candidates(deps: Deps, spec: TargetSpec, namespace: str | None) -> Targets:
    """Where ``spec`` (pool xor account) may go; Unschedulable if its pool forbids it."""
    if spec.account is not None:
        return Targets([Candidate.for_account(spec.account)], None, None)
    assert spec.pool is not None
    pool = deps.manager.informer(Pool).peek(ObjectKey(Pool.PLURAL, None, spec.pool))
    if pool is None:
        raise Unschedulable(f"pool {spec.pool} does not exist")
    allowed = pool.spec.allowed_namespaces
    if allowed is not None and namespace not in allowed:
        raise Unschedulable(f"pool {spec.pool} does not allow namespace {namespace}")
    return Targets(candidates_of_pool(pool.spec), pool.spec.policy, spec.pool)
