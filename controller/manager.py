"""The manager: runs informers, controllers, leadership, maintenance and the health endpoints.

Where it sits: on top of the runtime, below the composition root (``skybroker/``), which
registers one reconciler per kind with :meth:`Manager.add_controller` and calls
:meth:`Manager.run`. The manager

- shares one informer per kind between every controller that watches it;
- holds its share of the shards (:class:`~controller.leader.ShardSet`; one shard = plain
  leader election); a worker reconciles a key only while this process validly holds the key's
  shard — and only once its object was normalised (a direct write the normaliser has not
  completed, or holds because its namespace is missing, waits whichever way it was queued:
  event, watched kind or periodic resync) — and the holder of shard 0 runs the maintenance
  loops (direct-write normaliser, owner garbage collection, history trimming, etcd compaction);
- tells whoever subscribed with :meth:`Manager.on_share_change` the fraction of the shards it
  holds whenever that changes (the per-account API budgets are split by it);
- turns a ``TerminalError`` into a Warning event and condition ``Ready=False``;
- serves ``/healthz``, ``/readyz`` and ``/metrics`` and shuts down cleanly on SIGTERM.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

import grpc
import structlog

from api_types.meta import Resource
from controller.asgi import AsgiServer
from controller.cache import Informer
from controller.clock import Clock, RealClock
from controller.controller import Controller
from controller.errors import (
    ConflictError,
    FieldCause,
    StoreError,
    TerminalError,
)
from controller.events import EventRecorder, involved_for_key
from controller.gc import GarbageCollector
from controller.handler import EnqueueObject, EventHandler
from controller.health import health_app
from controller.leader import ShardSet, default_identity
from controller.normalize import DirectWriteNormalizer, is_normalised
from controller.predicate import NotOwnStatusWrite, Predicate
from controller.reconcile import Reconciler, Request
from controller.signals import stop_on_signals, wait_for_stop
from controller.store.compaction import Compactor
from controller.store.history import trim_history
from controller.store.keys import ObjectKey
from controller.store.objects import Store
from controller.workqueue import RateLimitingQueue, default_workqueue_metrics

__all__ = ["Manager", "ManagerOptions", "Normalised"]

log = structlog.get_logger(__name__)

R = TypeVar("R", bound=Resource)


@dataclass(frozen=True)
class ManagerOptions:
    """How one manager process runs: identity, workers, shards, leases, resync, maintenance."""

    identity: str = field(default_factory=default_identity)
    workers: int = 4
    shards: int = 1
    lease_ttl: int = 15
    renew_every: float = 5.0
    resync_period: float = 600.0
    #: ``host:port`` for /healthz, /readyz and /metrics; None = no HTTP server.
    health_listen: str | None = None
    maintenance_interval: float = 60.0
    history_limit: int = 200
    #: etcd keeps at least this much history (watches resume within it); 0 = never compact
    #: (another process or etcd's own --auto-compaction does it). See controller.store.compaction.
    compaction_interval: float = 300.0


class Normalised:
    """Predicate: skip objects written straight into etcd until the normaliser completed them."""

    def create(self, obj: Resource) -> bool:
        return is_normalised(obj)

    def update(self, old: Resource, new: Resource) -> bool:
        return is_normalised(new)

    def delete(self, obj: Resource) -> bool:
        return True


def _normalised_or_gone(informer: Informer[Any], key: ObjectKey) -> bool:
    """True unless the cache holds ``key``'s object as a direct write not yet normalised."""
    obj = informer.peek(key)
    return obj is None or is_normalised(obj)


class Source(Protocol):
    """A watched cache that is started, waited for and stopped with the others: what
    :meth:`Manager.add_source` takes beside the informers (and the API server's caches)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def has_synced(self) -> bool: ...

    def wait_for_sync(self, timeout: float) -> bool: ...


class Manager:
    """Runs the informers and controllers of one process; see the module.

    ``clock`` is the process's one clock: the controllers' delays and resyncs, the maintenance
    timing and the event and normaliser timestamps run on it, and the reconcilers get it as
    ``Deps.clock``. Shard leases keep real time: their TTLs are etcd's.
    """

    def __init__(
        self, store: Store, options: ManagerOptions | None = None, *, clock: Clock | None = None
    ) -> None:
        self.store = store
        self.options = options or ManagerOptions()
        self.clock: Clock = clock or RealClock()
        self.shards = ShardSet(
            store.client,
            store.layout,
            self.options.shards,
            self.options.identity,
            ttl=self.options.lease_ttl,
            renew_every=self.options.renew_every,
        )
        self.recorder = EventRecorder(store, now=self.clock.wall)
        self.normaliser = DirectWriteNormalizer(
            store, self._report_invalid, is_active=self.is_maintainer, now=self.clock.wall
        )
        self.garbage_collector = GarbageCollector(store, is_active=self.is_maintainer)
        self.compactor = Compactor(store.client, store.layout)
        self._informers: dict[str, Informer[Any]] = {}
        self._sources: list[Source] = []
        self._controllers: list[Controller] = []
        self._share_listeners: list[Callable[[float], None]] = []
        self._stop = threading.Event()
        self._health: AsgiServer | None = None
        self.health_address: tuple[str, int] | None = None

    # --- wiring ---------------------------------------------------------------------------

    def informer(self, model: type[R]) -> Informer[R]:
        """The shared informer of a kind (created on first use, started by :meth:`run`)."""
        informer = self._informers.get(model.PLURAL)
        if informer is None:
            created = Informer(self.store, model)
            self._informers[model.PLURAL] = created
            return created
        # One informer per plural, created above from the kind's own model.
        return cast(Informer[R], informer)

    def add_source(self, source: Source) -> None:
        """A cache that is not a kind's informer (the boot agents' heartbeats): started, synced
        and stopped with the informers by :meth:`run`, and counted by :meth:`ready`."""
        self._sources.append(source)

    def _caches(self) -> list[Source]:
        return [*self._informers.values(), *self._sources]

    @property
    def controllers(self) -> tuple[Controller, ...]:
        """The controllers added so far (for introspection: names, queues, a forced resync)."""
        return tuple(self._controllers)

    def add_controller(
        self,
        model: type[Any],
        reconciler: Reconciler,
        *,
        workers: int | None = None,
        watches: Sequence[tuple[type[Any], EventHandler]] = (),
        predicates: Sequence[Predicate] = (),
        min_interval: float | None = None,
        name: str | None = None,
    ) -> Controller:
        """Reconcile ``model`` objects; ``watches`` maps other kinds' events to its keys.

        ``min_interval``: reconcile a key at most once per that many seconds (see
        ``controller.controller``), for controllers that aggregate over many objects.
        ``name``: for a second controller of one kind — names its workqueue and is the
        ``kind`` label of its metrics and logs instead of the kind's plural and name, so the
        two controllers' series stay apart.
        """
        informer = self.informer(model)
        controller = Controller(
            name or model.PLURAL,
            reconciler,
            RateLimitingQueue(
                name or model.PLURAL, clock=self.clock, metrics=default_workqueue_metrics()
            ),
            workers=workers or self.options.workers,
            kind=name or model.KIND,
            is_active=lambda key: self.owns(key) and _normalised_or_gone(informer, key),
            on_terminal=self._on_terminal,
            resync_source=informer,
            resync_period=self.options.resync_period,
            min_interval=min_interval,
            clock=self.clock,
        )
        own_kind: tuple[Predicate, ...] = (
            Normalised(),
            NotOwnStatusWrite(self.store.wrote_status),
            *predicates,
        )
        controller.watch(informer, EnqueueObject(), *own_kind)
        for watched, handler in watches:
            controller.watch(self.informer(watched), handler, Normalised())
        self._controllers.append(controller)
        return controller

    # --- leadership -----------------------------------------------------------------------

    def owns(self, key: ObjectKey) -> bool:
        """True while this process validly holds the shard of ``key``."""
        return self.shards.owns(key.namespace, key.name)

    def shard_share(self) -> float:
        """The fraction of all shards this process validly holds now (0 before it holds any)."""
        return len(self.shards.owned()) / self.options.shards

    def on_share_change(self, listener: Callable[[float], None]) -> None:
        """Call ``listener(held shards ÷ all shards)`` now and whenever the held shards change:
        a shard is reported lost before its lease is released (so before another process can
        report it won) and won once held. Runs in the shards thread: return quickly."""
        self._share_listeners.append(listener)
        listener(self.shard_share())

    def _shards_changed(self, owned: frozenset[int]) -> None:
        # The share first: a key woken before its process's budget share is restored would be
        # refused by a budget of rate 0 and wait out its IDLE_WAIT.
        share = len(owned) / self.options.shards
        for listener in self._share_listeners:
            try:
                listener(share)
            except Exception:  # a listener's bug must not end the shards thread
                log.exception("shard share listener failed", share=share)
        for controller in self._controllers:
            controller.wake_parked()  # keys of a shard won are parked: reconcile them now

    def is_maintainer(self) -> bool:
        return self.shards.leadership(0) is not None

    def fence_for(self, key: ObjectKey) -> list[Any]:
        """Txn compares that fail if this process no longer holds the key's shard."""
        leadership = self.shards.leadership_for(key.namespace, key.name)
        if leadership is None:
            raise ConflictError(f"{key}: this process does not hold its shard")
        return leadership.fence()

    # --- hooks ----------------------------------------------------------------------------

    def _report_invalid(
        self, key: ObjectKey, mod_revision: int, causes: tuple[FieldCause, ...]
    ) -> None:
        errors = "; ".join(str(c) for c in causes)
        key_text = self.store.layout.object_key(key).decode(errors="replace")
        self.recorder.record(
            involved_for_key(key),
            "Warning",
            "InvalidObject",
            f"{key_text} (revision {mod_revision}) is invalid and was left alone: {errors}",
        )

    def _on_terminal(self, request: Request, error: TerminalError) -> None:
        informer = self._informers.get(request.plural)
        obj = informer.get(request.key) if informer else None
        if obj is None:
            return
        self.recorder.record(obj, "Warning", error.reason, error.message)
        if obj.HAS_STATUS:
            self._set_not_ready(obj, error)

    def _set_not_ready(self, obj: Any, error: TerminalError) -> None:
        for _ in range(3):
            try:
                current = self.store.get(type(obj), obj.metadata.name, obj.metadata.namespace)
                current.status.set_condition(
                    "Ready",
                    False,
                    error.reason,
                    error.message,
                    generation=current.metadata.generation,
                )
                self.store.update_status(current, actor="controller")
                return
            except ConflictError:
                continue
            except StoreError:
                return

    # --- running --------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the manager (main thread only; see ``controller.signals``)."""
        stop_on_signals(self._stop)

    def stop(self) -> None:
        self._stop.set()

    def run(self, ready: Callable[[], None] | None = None) -> None:
        """Run until :meth:`stop` (or SIGTERM with the handlers installed); blocks."""
        self._start_http()
        for cache in self._caches():
            cache.start()
        for cache in self._caches():
            while not cache.wait_for_sync(0.5):
                if self._stop.is_set():
                    break
        threads = [
            threading.Thread(
                target=self.shards.run, args=(self._stop, self._shards_changed), name="shards"
            ),
            threading.Thread(target=self._maintain, name="maintenance"),
        ]
        for thread in threads:
            thread.start()
        for controller in self._controllers:
            controller.start()
        log.info(
            "manager running",
            identity=self.options.identity,
            controllers=[c.name for c in self._controllers],
            shards=self.options.shards,
        )
        if ready is not None:
            ready()
        wait_for_stop(self._stop)
        log.info("manager stopping")
        for controller in self._controllers:
            controller.stop()
        for thread in threads:
            thread.join(timeout=self.options.lease_ttl)
        for cache in self._caches():
            cache.stop()
        self.recorder.stop()
        if self._health is not None:
            self._health.stop()
        log.info("manager stopped")

    def _maintain(self) -> None:
        """While holding shard 0: normalise direct writes, collect garbage, trim history,
        compact etcd.

        A tenure is one Leadership of shard 0, not a stretch of time in which some leadership
        was held: a lease lost and won again between two looks here is a new tenure, whose
        normaliser lists everything again — the one of the old tenure skipped what was written
        while it was not the maintainer. Compaction keeps its own pace across tenures, so that
        winning shard 0 again does not shorten the history window.
        """
        next_compaction = 0.0
        compacting = self.options.compaction_interval > 0
        while not self._stop.is_set():
            lead = self.shards.leadership(0)
            if lead is None:
                self._stop.wait(0.2)
                continue
            tenure = threading.Event()
            normaliser = threading.Thread(
                target=self.normaliser.run, args=(tenure,), name="normaliser", daemon=True
            )
            normaliser.start()
            next_sweep = 0.0
            while self.shards.leadership(0) is lead and not self._stop.is_set():
                if self.clock.now() >= next_sweep:
                    self._sweep()
                    next_sweep = self.clock.now() + self.options.maintenance_interval
                if compacting and self.clock.now() >= next_compaction:
                    self._compact()
                    next_compaction = self.clock.now() + self.options.compaction_interval
                self._stop.wait(0.2)
            tenure.set()
            normaliser.join(timeout=5)

    def _compact(self) -> None:
        try:
            self.compactor.round()
        except (StoreError, grpc.RpcError) as exc:
            log.warning("compaction round failed; will retry", error=str(exc))

    def _sweep(self) -> None:
        # gRPC errors too (a pinned list compacted meanwhile): this thread also starts and
        # ends each tenure's normaliser, so a failed sweep must never end it.
        try:
            self.garbage_collector.collect_once()
            trim_history(self.store.client, self.store.layout, self.options.history_limit)
        except (StoreError, grpc.RpcError) as exc:
            log.warning("maintenance sweep failed; will retry", error=str(exc))

    # --- health endpoints -----------------------------------------------------------------

    def ready(self) -> bool:
        """Ready = able to reconcile its share now: caches synced, etcd answering, and every
        shard this process should hold held (not still waiting out a dead holder's lease)."""
        if not all(cache.has_synced() for cache in self._caches()):
            return False
        return self.store.client.reachable() and self.shards.holds_its_share()

    def _start_http(self) -> None:
        """Serve the health port (``controller.health``); :class:`~controller.asgi.ListenError`
        if its address cannot be bound."""
        if not self.options.health_listen:
            return
        self._health = AsgiServer(
            health_app(self.ready), self.options.health_listen, name="health-http"
        )
        self.health_address = self._health.address
        self._health.start()
