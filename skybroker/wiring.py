"""Which reconcilers run in the manager: the one place that lists every kind's controller.

Where it sits: ``skybroker.main`` builds the manager, then calls :func:`register_reconcilers`,
which builds the shared account registry and placement memory on the manager's clock and lets
each reconciler module add its controller. The GitSource reconciler also gets the API's
resource operations in-process (:class:`GitOpsBackends`): it applies what git holds through
the same RBAC, admission and quota as a request to the API server, as the GitSource's
``serviceAccount`` — reconcilers may not import the API server, so the root hands it over.
"""

from __future__ import annotations

import threading
from pathlib import Path

from apiserver.auth import AUTHENTICATED_GROUP, User
from apiserver.handlers import Resources
from apiserver.local import LocalBackend
from apiserver.lookups import Lookups
from apiserver.rbac import Authorizer
from controller.apply import StagingBackend
from controller.manager import Manager
from controller.store.objects import Store
from reconcilers import (
    account,
    bootconfig,
    firewall,
    gitsource,
    hardwareprofile,
    instance,
    namespace,
    pool,
    quota,
    subnet,
    sweeper,
    virtualcluster,
    volume,
)
from reconcilers.accounts import ProviderRegistry
from reconcilers.deps import Deps
from reconcilers.placement import PlacementMemory

__all__ = ["GitOpsBackends", "register_reconcilers"]

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
    virtualcluster,
    bootconfig,
    sweeper,
)


class GitOpsBackends:
    """``(user, actor) -> LocalBackend``: the API's resource operations as ``user``.

    The RBAC caches start on first use (a process without GitSources never watches RBAC);
    admission's lookups read etcd (their caches are the API server's)."""

    #: How long the first apply waits for the RBAC caches.
    SYNC_TIMEOUT = 30.0

    def __init__(self, store: Store) -> None:
        self._authorizer = Authorizer(store)
        self._resources = Resources(store, self._authorizer, Lookups(store))
        self._lock = threading.Lock()
        self._started = False

    def __call__(self, user: str, actor: str) -> StagingBackend:
        with self._lock:
            if not self._started:
                self._authorizer.start()
                self._started = True
        self._authorizer.wait_for_sync(self.SYNC_TIMEOUT)
        return LocalBackend(
            self._resources, User(user, user, frozenset({AUTHENTICATED_GROUP}), actor=actor)
        )

    def stop(self) -> None:
        with self._lock:
            if self._started:
                self._authorizer.stop()


class _ClosedOnStop:
    """The account registry as a manager source: nothing to watch or sync, but stopped with
    the caches when the manager stops — which closes every provider, so the simulated cloud's
    boot agents end with the controllers (``Manager`` has no other shutdown hook)."""

    def __init__(self, providers: ProviderRegistry) -> None:
        self._providers = providers

    def start(self) -> None:
        return None

    def stop(self, timeout: float = 0.0) -> None:
        self._providers.close()

    def has_synced(self) -> bool:
        return True

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        return True


def register_reconcilers(
    manager: Manager,
    simulated_state_dir: Path | None,
    git_cache_dir: Path | None = None,
    rendezvous_url: str | None = None,
) -> Deps:
    """Every reconciler on ``manager``; GitSources fetch into ``git_cache_dir`` (default: a
    ``git-cache`` directory beside the simulated clouds' state, else none registered); boot
    strings name ``rendezvous_url``."""
    clock = manager.clock
    providers = ProviderRegistry(
        manager.store, simulated_state_dir=simulated_state_dir, clock=clock
    )
    manager.add_source(_ClosedOnStop(providers))
    deps = Deps(manager, providers, clock, PlacementMemory(clock), rendezvous_url)
    for module in _MODULES:
        module.register(deps)
    cache = git_cache_dir or (simulated_state_dir / "git-cache" if simulated_state_dir else None)
    if cache is not None:
        gitsource.register(deps, GitOpsBackends(manager.store), cache)
    return deps
