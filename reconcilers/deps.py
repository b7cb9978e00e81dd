"""What every reconciler is built with: the manager's store, caches, events and clock, the clouds.

Where it sits: the composition root (``skybroker``) builds one ``Deps`` and hands it to each
reconciler module's ``register(deps)``, which adds its controller to the manager. Reconcilers
read desired state from ``deps.manager.informer(Kind)`` caches, write through ``deps.store``
(adding ``deps.manager.fence_for(key)`` to writes that must not outlive this process's shard),
report through ``deps.recorder``, reach clouds through ``deps.providers``, place instances
with ``deps.scheduler``, tell the time with ``deps.clock`` (never the ``time`` module or
``datetime.now``) and share what placements taught them in ``deps.memory``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from controller.clock import Clock
from controller.events import EventRecorder
from controller.manager import Manager
from controller.rendezvous import ClaimCache, HeartbeatCache, RendezvousStore
from controller.store.objects import Store
from reconcilers.accounts import ProviderRegistry

if TYPE_CHECKING:
    # Built by the composition root: the placement package itself builds on Deps.
    from reconcilers.placement.instance import Scheduler
    from reconcilers.placement.ledger import QuotaLedger
    from reconcilers.placement.memory import PlacementMemory

__all__ = ["Deps"]


@dataclass(frozen=True)
class Deps:
    """The reconcilers' shared services: the manager (store, caches, events, shard fences),
    the provider registry (one guarded provider and inventory per account), the placement
    memory (what recent placements taught this process, shared by every reconciler) and the
    clock — the manager's (``Manager.clock``), on which ``providers`` and ``memory`` are built.
    Building one subscribes ``providers`` to the manager's shard share (``set_share``).
    """

    manager: Manager
    providers: ProviderRegistry
    clock: Clock
    memory: PlacementMemory
    #: The rendezvous base URL written into boot strings (``--rendezvous-url``; ``up``: its
    #: API's URL); None: instances with a ``bootConfigRef`` wait, saying it is not set.
    rendezvous_url: str | None = None

    def __post_init__(self) -> None:
        # One API budget per account for the whole deployment: this process spends the share
        # of it that its shards are of all shards, re-split whenever they change.
        self.manager.on_share_change(self.providers.set_share)

    @property
    def store(self) -> Store:
        return self.manager.store

    @property
    def recorder(self) -> EventRecorder:
        return self.manager.recorder

    @cached_property
    def scheduler(self) -> Scheduler:
        """The process's one instance scheduler: the Instance reconciler places with it, and
        previews (a GitSource's plan) forecast with it, seeing the same pool turns and the
        decisions not cached yet."""
        from reconcilers.placement.instance import Scheduler  # builds on Deps itself

        return Scheduler(self, self.memory)

    @cached_property
    def ledger(self) -> QuotaLedger:
        """The process's one quota ledger: what each namespace uses, kept from the informers
        (the scheduler's first-come admission and the Quota reconciler's status read it). Take
        it at registration, like the informers it listens to."""
        from reconcilers.placement.ledger import QuotaLedger  # builds on Deps itself

        return QuotaLedger(self)

    @cached_property
    def rendezvous(self) -> RendezvousStore:
        """The boot rendezvous records (DESIGN §11), timestamped by the process clock."""
        return RendezvousStore(self.store, lambda: self.clock.wall().timestamp())

    @cached_property
    def heartbeats(self) -> HeartbeatCache:
        """The process's one cache of boot agents' heartbeats, run by the manager: take it at
        registration (the manager starts only what it was given before it runs)."""
        cache = HeartbeatCache(self.store)
        self.manager.add_source(cache)
        return cache

    @cached_property
    def claims(self) -> ClaimCache:
        """The process's one cache of claimed dynamic slots, run by the manager (take it at
        registration, as :attr:`heartbeats`): the BootConfig reconciler hears claims by it."""
        cache = ClaimCache(self.store)
        self.manager.add_source(cache)
        return cache
