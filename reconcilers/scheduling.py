"""Inputs of placement gathered from the caches and the clouds, and the call to ``place``.

Where it sits: between ``reconcilers.placement`` (pure policy) and the reconcilers that bind an
object to a pool member (``reconcilers.pool.PoolScheduler`` for every pooled kind, with the
Instance scheduler's richer ``Need``): :func:`account_states` and :func:`candidates`.

* :func:`account_states` — ``placement.AccountState`` per account: region, zones and sizes
  from a per-account catalogue (listed once per ``CATALOGUE_TTL`` through the guarded
  provider), images from the spec, and ``problem`` when the account must not be scheduled on:
  its ``Ready`` condition is False (the ProviderAccount health probe), its circuit is open,
  or its catalogue cannot be read.
* :func:`candidates` — a pool's members (honouring ``allowedNamespaces``) or the one account a
  spec names, plus the pool policy; :class:`Unschedulable` when the pool is missing or closed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from api_types import Pool, PoolPolicy, ProviderAccount
from api_types.common import TargetSpec
from api_types.meta import ConditionStatus
from controller.errors import ReconcileError, Unschedulable
from controller.store.keys import ObjectKey
from providers import CloudSize
from providers.budget import BreakerState
from reconcilers._common import account_handle
from reconcilers.deps import Deps
from reconcilers.placement import AccountState, Candidate, candidates_of_pool

__all__ = [
    "CATALOGUE_TTL",
    "Targets",
    "Unschedulable",
    "account_sizes",
    "account_states",
    "candidates",
]

#: Zones and sizes of a cloud change rarely: one list per account per this many seconds.
CATALOGUE_TTL = 600.0


@dataclass(frozen=True)
class Targets:
    candidates: list[Candidate]
    policy: PoolPolicy | None
    pool: str | None


@dataclass(frozen=True)
class _Catalogue:
    version: tuple[str, int, str]
    fetched: float
    zones: tuple[str, ...]
    sizes: tuple[CloudSize, ...]


_catalogues: dict[str, _Catalogue] = {}
_catalogues_lock = threading.Lock()


def _catalogue(deps: Deps, name: str) -> _Catalogue:
    handle = account_handle(deps, name)
    with _catalogues_lock:
        known = _catalogues.get(name)
    if (
        known is not None
        and known.version == handle.version
        and time.monotonic() - known.fetched < CATALOGUE_TTL
    ):
        return known
    zones = tuple(z.name for z in handle.provider.list_zones() if z.available)
    sizes = tuple(handle.provider.list_sizes())
    fresh = _Catalogue(handle.version, time.monotonic(), zones, sizes)
    with _catalogues_lock:
        _catalogues[name] = fresh
    return fresh


def account_sizes(deps: Deps, name: str) -> dict[str, CloudSize]:
    """The account's sizes by id, from the catalogue (empty if the cloud cannot say now)."""
    try:
        return {size.id: size for size in _catalogue(deps, name).sizes}
    except ReconcileError:
        return {}


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
        state = AccountState(
            name=name, region=account.spec.region, images=dict(account.spec.images)
        )
        problem = _account_problem(account)
        if problem is None:
            try:
                gate = account_handle(deps, name).provider.gate
                if gate.breaker.state is BreakerState.OPEN:
                    problem = gate.circuit_message()
                else:
                    catalogue = _catalogue(deps, name)
                    state = AccountState(
                        name=name,
                        region=account.spec.region,
                        zones=catalogue.zones,
                        sizes=catalogue.sizes,
                        images=dict(account.spec.images),
                    )
            except ReconcileError as exc:
                problem = f"account {name}: {exc.message}"
        states[name] = (
            state
            if problem is None
            else AccountState(name=name, region=account.spec.region, problem=problem)
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
