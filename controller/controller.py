"""The worker loop: N threads take keys from a workqueue and reconcile them.

Where it sits: etcd watch → informer cache → handler → workqueue → **workers → reconcile** →
status write → events/history. One :class:`Controller` per kind: ``watch`` connects informers
to its queue through handlers and predicates, ``start`` runs the workers. Each worker loops
``get → reconcile → done``; the queue hands a key to one worker at a time, so a reconciler
never races itself on one object. The outcome decides what happens to the key next (the
contract is in ``controller.reconcile``):

* ``Result()`` → forget (reset the backoff); counted as ``success``;
* ``Result(requeue_after=s)`` → forget, ``add_after(s)``; ``requeue``;
* ``TransientError(delay=s)`` → ``add_when_asked(s)``: ``s`` plus a random part of it (so keys
  waiting for the same refill spread out), not counted as a failure by the backoff; without a
  delay, plain backoff; ``transient``;
* ``ConflictError`` (a write lost a compare-and-swap race: the object changed since it was
  read) → plain backoff, logged quietly without a traceback; ``transient`` — the next attempt
  reads the newer object from the cache;
* ``TerminalError`` → forget, no retry, the ``on_terminal(request, error)`` hook (the manager
  posts the Warning event and sets Ready=False); ``terminal``;
* any other exception → ``add_rate_limited``, logged with its traceback; ``error``.

Exceptions never end a worker thread. The counts are ``reconcile_total{kind,result}``.

``is_active(key)`` is asked when a key is queued and again before its reconcile: leader
election and sharding plug in there (does this process hold the lease of the key's shard?). A
key this process may not reconcile is parked instead, and a housekeeping thread re-queues it
once ``is_active(key)`` is true again — a process that lost its lease stops at once and
resumes where it left off. Parked keys are looked at again when ``wake_parked`` is called (the
manager calls it on every change of the process's shards) and at least every
``_PARKED_RECHECK`` seconds, for an ``is_active`` that turns true unannounced. The same thread
drives the periodic resync: every key of ``resync_source`` (the kind's informer) is re-queued
once per ``resync_period`` ± 10 %, counted from its last successful reconcile, so
the actual state of every object is re-checked even when nothing changes in etcd.

``min_interval`` coalesces: a key is reconciled at most once per that many seconds, and the
events that arrive in between become one delayed add (the delaying queue keeps one entry per
key). Aggregating controllers use it — a Pool or Quota sums over thousands of instances and is
enqueued by every change of any of them; reconciling (or even waking) on each would cost
O(n) per event.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import structlog

from api_types.meta import Resource
from controller.cache import Informer
from controller.clock import Clock, RealClock
from controller.errors import ConflictError
from controller.handler import EventHandler
from controller.metrics import RECONCILE_RESULTS, RuntimeMetrics, runtime_metrics
from controller.predicate import Predicate
from controller.reconcile import Reconciler, Request, TerminalError, TransientError
from controller.store.keys import ObjectKey
from controller.workqueue import RateLimitingQueue

__all__ = ["Controller", "KeySource", "TerminalHook"]

log = structlog.get_logger(__name__)

TerminalHook = Callable[[Request, TerminalError], None]

_RESYNC_JITTER = 0.1
#: How often the housekeeping thread wakes (parked keys on request, resync scans).
_INACTIVE_POLL = 0.5
#: Parked keys are looked at again when :meth:`Controller.wake_parked` asks (the manager does
#: whenever this process's shards change), and at least this often: asking ``is_active`` of
#: every parked key twice a second cost a sharded process a tenth of its CPU at 10,000 keys.
_PARKED_RECHECK = 5.0
#: A resync scan looks at every key; this many scans per period bounds the timing error.
_SCANS_PER_RESYNC_PERIOD = 20


class KeySource(Protocol):
    """What periodic resync iterates over (an :class:`~controller.cache.Informer`)."""

    def keys(self) -> list[ObjectKey]: ...


class Controller:
    """Reconciles the keys of ``queue`` with ``reconciler`` on ``workers`` threads.

    ``kind`` labels metrics and logs (default: ``name``). The controller owns ``queue`` from
    ``start`` on: ``stop`` shuts it down.
    """

    def __init__(
        self,
        name: str,
        reconciler: Reconciler,
        queue: RateLimitingQueue[ObjectKey],
        *,
        workers: int = 1,
        kind: str | None = None,
        is_active: Callable[[ObjectKey], bool] = lambda key: True,
        on_terminal: TerminalHook | None = None,
        resync_source: KeySource | None = None,
        resync_period: float = 600.0,
        min_interval: float | None = None,
        clock: Clock | None = None,
        metrics: RuntimeMetrics | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"controller {name}: workers must be >= 1, not {workers}")
        self.name = name
        self.kind = kind or name
        self.queue = queue
        self._reconciler = reconciler
        self._workers = workers
        self._is_active = is_active
        self._on_terminal = on_terminal
        self._resync_source = resync_source
        self._resync_period = resync_period
        self._min_interval = min_interval
        self._last_started: dict[ObjectKey, float] = {}
        self._clock: Clock = clock or RealClock()
        self._metrics = metrics or runtime_metrics()
        # Every outcome is exported from the start (as 0), so rate() and alerts see the series.
        for result in RECONCILE_RESULTS:
            self._metrics.reconcile_total.labels(kind=self.kind, result=result)
        self._tick = min(_INACTIVE_POLL, resync_period / _SCANS_PER_RESYNC_PERIOD)
        self._lock = threading.Lock()
        self._parked: set[ObjectKey] = set()
        self._parked_woken = False
        self._resync_due: dict[ObjectKey, float] = {}
        self._wake = threading.Condition()
        self._stopping = False
        self._threads: list[threading.Thread] = []

    # --- wiring ---------------------------------------------------------------------------

    def watch(self, informer: Informer[Any], handler: EventHandler, *predicates: Predicate) -> None:
        """Enqueue ``handler``'s requests for every event of ``informer`` all predicates pass."""

        def on_add(obj: Resource) -> None:
            if all(p.create(obj) for p in predicates):
                self._enqueue_all(handler.requests(obj))

        def on_update(old: Resource, new: Resource) -> None:
            if all(p.update(old, new) for p in predicates):
                self._enqueue_all(handler.requests(old))
                self._enqueue_all(handler.requests(new))

        def on_delete(obj: Resource) -> None:
            if all(p.delete(obj) for p in predicates):
                self._enqueue_all(handler.requests(obj))

        informer.add_handlers(on_add=on_add, on_update=on_update, on_delete=on_delete)

    def enqueue(self, request: Request) -> None:
        self._enqueue(request.key)

    def wake_parked(self) -> None:
        """Look at the parked keys now (``is_active`` may have turned true: shards moved)."""
        with self._wake:
            self._parked_woken = True
            self._wake.notify_all()

    def _enqueue_all(self, requests: Iterable[Request]) -> None:
        for request in requests:
            self._enqueue(request.key)

    def _enqueue(self, key: ObjectKey) -> None:
        if not self._may_reconcile(key):
            # Parked at once: with several processes most events name keys of other shards,
            # and queueing each only for a worker to wake up and park it costs more than this.
            with self._lock:
                self._parked.add(key)
            return
        if self._min_interval is not None:
            with self._lock:
                last = self._last_started.get(key)
            if last is not None:
                wait = last + self._min_interval - self._clock.now()
                if wait > 0:
                    self.queue.add_after(key, wait)
                    return
        self.queue.add(key)

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._work, name=f"{self.name}-worker-{i}", daemon=True)
            for i in range(self._workers)
        ]
        self._threads.append(
            threading.Thread(target=self._housekeep, name=f"{self.name}-housekeeping", daemon=True)
        )
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop at once: in-flight reconciles finish, queued keys are not reconciled."""
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        self.queue.shut_down()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # --- workers --------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            key, shutdown = self.queue.get()
            if shutdown or key is None:
                return
            try:
                self._process(key)
            finally:
                self.queue.done(key)

    def _process(self, key: ObjectKey) -> None:
        if self._stopping:
            return
        if not self._may_reconcile(key):
            with self._lock:
                self._parked.add(key)
            return
        context = structlog.contextvars.bound_contextvars(
            controller=self.name,
            kind=self.kind,
            namespace=key.namespace,
            name=key.name,
            reconcile_id=uuid.uuid4().hex[:8],
        )
        if self._min_interval is not None:
            with self._lock:
                self._last_started[key] = self._clock.now()
        with context:
            started = time.monotonic()
            result = self._reconcile(Request(key))
            elapsed = time.monotonic() - started
            self._metrics.reconcile_duration.labels(kind=self.kind).observe(elapsed)
            self._metrics.reconcile_total.labels(kind=self.kind, result=result).inc()
            log.debug("reconciled", result=result, seconds=round(elapsed, 4))

    def _reconcile(self, request: Request) -> str:
        """Run one reconcile and schedule the key's next one; returns the metric's result."""
        key = request.key
        try:
            outcome = self._reconciler.reconcile(request)
        except TransientError as exc:
            if exc.delay:
                self.queue.add_when_asked(key, exc.delay)
            else:
                self.queue.add_rate_limited(key)
            log.info("reconcile will be retried", error=exc.message, delay=exc.delay)
            return "transient"
        except ConflictError as exc:
            self.queue.add_rate_limited(key)
            log.info("reconcile will be retried", error=f"changed meanwhile: {exc}", delay=None)
            return "transient"
        except TerminalError as exc:
            self.queue.forget(key)
            log.warning("reconcile failed terminally", reason=exc.reason, error=exc.message)
            if self._on_terminal is not None:
                try:
                    self._on_terminal(request, exc)
                except Exception:
                    log.exception("on_terminal hook failed")
            return "terminal"
        except Exception:
            self.queue.add_rate_limited(key)
            log.exception("reconcile failed", requeues=self.queue.num_requeues(key))
            return "error"
        self.queue.forget(key)
        if outcome.requeue_after is not None:
            self.queue.add_after(key, outcome.requeue_after)
            return "requeue"
        self._postpone_resync(key)
        return "success"

    # --- housekeeping: parked keys and periodic resync ------------------------------------

    def _housekeep(self) -> None:
        next_scan = self._clock.now()
        next_parked = self._clock.now()
        while True:
            with self._wake:
                if self._stopping:
                    return
                if not self._parked_woken:
                    self._clock.wait_until(self._wake, self._clock.now() + self._tick)
                if self._stopping:
                    return
                woken, self._parked_woken = self._parked_woken, False
            if woken or self._clock.now() >= next_parked:
                next_parked = self._clock.now() + _PARKED_RECHECK
                self._unpark()
            if self._resync_source is not None and self._clock.now() >= next_scan:
                next_scan = self._clock.now() + self._resync_period / _SCANS_PER_RESYNC_PERIOD
                self._resync(self._resync_source.keys())

    def _unpark(self) -> None:
        """Queue the parked keys that may be reconciled now; the others stay parked."""
        with self._lock:
            parked, self._parked = self._parked, set()
        still_parked = set()
        for key in parked:
            if self._may_reconcile(key):
                self.queue.add(key)
            else:
                still_parked.add(key)
        with self._lock:
            self._parked |= still_parked

    def _may_reconcile(self, key: ObjectKey) -> bool:
        """Ask ``is_active``; an error there counts as "not now", never as a dead worker."""
        try:
            return self._is_active(key)
        except Exception:
            log.exception("is_active failed; treating the key as inactive", key=str(key))
            return False

    def _next_resync(self) -> float:
        jitter = random.uniform(1.0 - _RESYNC_JITTER, 1.0 + _RESYNC_JITTER)
        return self._clock.now() + self._resync_period * jitter

    def _resync(self, keys: list[ObjectKey]) -> None:
        """Queue the keys whose resync is due; start the schedule of new keys."""
        now = self._clock.now()
        due = []
        with self._lock:
            present = set(keys)
            for gone in [k for k in self._resync_due if k not in present]:
                del self._resync_due[gone]
                self._last_started.pop(gone, None)
            for key in keys:
                when = self._resync_due.get(key)
                if when is None or when <= now:
                    self._resync_due[key] = self._next_resync()
                if when is not None and when <= now:
                    due.append(key)
        for key in due:
            if self._may_reconcile(key):  # another process resyncs the keys it owns
                self.queue.add(key)

    def _postpone_resync(self, key: ObjectKey) -> None:
        """A successful reconcile has just checked the object: its next resync can wait."""
        with self._lock:
            if key in self._resync_due:
                self._resync_due[key] = self._next_resync()
