"""Which reconcilers run in the manager: the one place that lists every kind's controller.

Where it sits: ``skybroker.main`` builds the manager, then calls :func:`register_reconcilers`,
which builds the shared account registry and placement memory on the manager's clock and lets
each reconciler module add its controller.
"""

from __future__ import annotations

from pathlib import Path

from controller.manager import Manager
from reconcilers import (
    account,
    firewall,
    hardwareprofile,
    instance,
    namespace,
    pool,
    quota,
    subnet,
    sweeper,
    volume,
)
from reconcilers.accounts import ProviderRegistry
from reconcilers.deps import Deps
from reconcilers.placement import PlacementMemory

__all__ = ["register_reconcilers"]

_MODULES = (
    account,
    pool,
    hardwareprofile,
    quota,
    namespace,
    subnet,
    firewall,
    instance,
    volume,
    sweeper,
)


def register_reconcilers(manager: Manager, simulated_state_dir: Path | None) -> Deps:
    clock = manager.clock
    providers = ProviderRegistry(
        manager.store, simulated_state_dir=simulated_state_dir, clock=clock
    )
    deps = Deps(manager, providers, clock, PlacementMemory(clock))
    for module in _MODULES:
        module.register(deps)
    return deps
