"""Prometheus metrics of the workqueues.

The workqueue sits between the informers' event handlers and the reconcile workers (etcd watch
→ informer → handler → workqueue → workers → reconcile); its depth, add rate, retry rate and
latencies tell whether the workers keep up. The metric families are labelled by queue name
and created once per registry: the process-wide set on ``prometheus_client.REGISTRY`` comes
from :func:`default_workqueue_metrics`, while tests build their own :class:`WorkqueueMetrics`
on a private ``CollectorRegistry`` so that they never collide on the global one.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from controller.clock import Clock

__all__ = ["WorkqueueMetrics", "default_workqueue_metrics"]

# From a millisecond (an idle queue) to minutes (a backlog, or a slow cloud call).
_DURATION_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, float("inf"),
)  # fmt: skip


class WorkqueueMetrics:
    """The workqueue metric families of one registry, shared by every queue, keyed by name."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.depth = Gauge(
            "workqueue_depth", "Items waiting to be processed.", ["name"], registry=registry
        )
        self.adds = Counter(
            "workqueue_adds", "Items added (not counting duplicates).", ["name"], registry=registry
        )
        self.retries = Counter(
            "workqueue_retries", "Delayed or rate-limited re-adds.", ["name"], registry=registry
        )
        self.queue_duration = Histogram(
            "workqueue_queue_duration_seconds",
            "Time an item waits in the queue before a worker gets it.",
            ["name"],
            registry=registry,
            buckets=_DURATION_BUCKETS,
        )
        self.work_duration = Histogram(
            "workqueue_work_duration_seconds",
            "Time a worker holds an item, from get to done.",
            ["name"],
            registry=registry,
            buckets=_DURATION_BUCKETS,
        )


_default_lock = threading.Lock()
_default_metrics: WorkqueueMetrics | None = None


def default_workqueue_metrics() -> WorkqueueMetrics:
    """The families on ``prometheus_client.REGISTRY``, created on first use, once per process.

    Registering the same metric name twice on a registry raises, so every queue of the
    process must share this one instance.
    """
    global _default_metrics
    with _default_lock:
        if _default_metrics is None:
            _default_metrics = WorkqueueMetrics()
        return _default_metrics


class QueueMetricsRecorder:
    """Records one queue's life cycle events into the families, under the queue's name.

    Not thread-safe on its own: the queue calls it while holding its lock.
    """

    def __init__(self, metrics: WorkqueueMetrics, name: str, clock: Clock) -> None:
        self._clock = clock
        self._depth = metrics.depth.labels(name=name)
        self._adds = metrics.adds.labels(name=name)
        self._retries = metrics.retries.labels(name=name)
        self._queue_duration = metrics.queue_duration.labels(name=name)
        self._work_duration = metrics.work_duration.labels(name=name)
        self._added_at: dict[Hashable, float] = {}
        self._started_at: dict[Hashable, float] = {}

    def added(self, item: Hashable) -> None:
        self._adds.inc()
        self._depth.inc()
        self._added_at[item] = self._clock.now()

    def got(self, item: Hashable) -> None:
        now = self._clock.now()
        self._depth.dec()
        added_at = self._added_at.pop(item, None)
        if added_at is not None:
            self._queue_duration.observe(now - added_at)
        self._started_at[item] = now

    def done(self, item: Hashable) -> None:
        started_at = self._started_at.pop(item, None)
        if started_at is not None:
            self._work_duration.observe(self._clock.now() - started_at)

    def retried(self) -> None:
        self._retries.inc()


class NoQueueMetrics:
    """Stands in for :class:`QueueMetricsRecorder` when a queue is not measured."""

    def added(self, item: Hashable) -> None:
        pass

    def got(self, item: Hashable) -> None:
        pass

    def done(self, item: Hashable) -> None:
        pass

    def retried(self) -> None:
        pass
