"""Prometheus metrics of the controller runtime, defined once and shared by every module.

Where it sits: beside the pipeline (etcd watch → informer cache → handler → workqueue → workers
→ reconcile → status write → events/history), counting what passes through it; the manager
serves ``prometheus_client.REGISTRY`` on ``/metrics``. Registering a metric name twice on a
registry raises, so the process-wide families are created on first use by
:func:`runtime_metrics` and every controller, informer and recorder shares them; tests build a
private :class:`RuntimeMetrics` on their own ``CollectorRegistry``.

The workqueue families (``workqueue_depth`` and friends) belong to the workqueue package
(``controller.workqueue.default_workqueue_metrics``) and are not redefined here.

``thread_cpu_seconds`` says which loop burns the process's CPU: the CPU time of each live
Python thread, read from ``/proc`` at scrape time and summed by thread name less its number
(``instances-worker-3`` → ``instances-worker``), and ``native`` for the rest of the process (the
threads Python did not start, such as gRPC's pollers, and threads that ended). A gauge: a thread
that ends moves its time to ``native``. It is how ``bench.converge --processes`` tells what a
second controller process repeats.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

__all__ = [
    "RECONCILE_RESULTS",
    "RuntimeMetrics",
    "runtime_metrics",
    "stat_cpu_seconds",
    "thread_cpu_seconds",
]

#: Values of the ``result`` label of ``reconcile_total``.
RECONCILE_RESULTS = ("success", "requeue", "error", "transient", "terminal")

# A reconcile is a cache read plus, at worst, a few cloud calls: milliseconds to a minute.
_RECONCILE_BUCKETS = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, float("inf"),
)  # fmt: skip


class RuntimeMetrics:
    """The runtime's metric families on one registry."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.reconcile_total = Counter(
            "reconcile_total",
            "Reconciles by kind and outcome (success|requeue|error|transient|terminal).",
            ["kind", "result"],
            registry=registry,
        )
        self.reconcile_duration = Histogram(
            "reconcile_duration_seconds",
            "Time spent in one reconcile call.",
            ["kind"],
            registry=registry,
            buckets=_RECONCILE_BUCKETS,
        )
        self.informer_events = Counter(
            "informer_events_total",
            "Watch events applied to an informer cache, by kind and type "
            "(add|update|delete|invalid).",
            ["kind", "type"],
            registry=registry,
        )
        self.informer_relists = Counter(
            "informer_relists_total",
            "Full re-lists after the watch revision was compacted.",
            ["kind"],
            registry=registry,
        )
        self.events_written = Counter(
            "events_written_total",
            "Event writes to etcd (one write may aggregate several records).",
            registry=registry,
        )
        self.events_dropped = Counter(
            "events_dropped_total",
            "Event records dropped: the recorder's queue was full, or the write failed for good.",
            registry=registry,
        )
        registry.register(_ThreadCpu())


_THREAD_NUMBER = re.compile(r"[-_]\d+$")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def stat_cpu_seconds(stat_path: str) -> tuple[float, float]:
    """(user, system) CPU seconds from a ``/proc`` ``stat`` file of a process or a thread
    (fields 14 and 15); OSError where there is none."""
    with open(stat_path, encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / _TICKS, int(fields[12]) / _TICKS


def thread_cpu_seconds() -> dict[str, float]:
    """CPU seconds of this process's live threads by name less its number, and ``native`` for
    the rest of the process (so they add up to its CPU); empty without ``/proc`` (see the
    module)."""
    try:
        total = sum(stat_cpu_seconds("/proc/self/stat"))
    except OSError:
        return {}
    groups: dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            seconds = sum(stat_cpu_seconds(f"/proc/self/task/{thread.native_id}/stat"))
        except OSError:  # it ended meanwhile
            continue
        group = _THREAD_NUMBER.sub("", thread.name)
        groups[group] = groups.get(group, 0.0) + seconds
    groups["native"] = max(0.0, total - sum(groups.values()))
    return groups


class _ThreadCpu:
    """The ``thread_cpu_seconds`` collector."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "thread_cpu_seconds",
            "CPU seconds of this process's live threads, by thread name less its number "
            "(native: the rest of the process, threads Python did not start or that ended).",
            labels=["thread"],
        )
        for group, seconds in sorted(thread_cpu_seconds().items()):
            family.add_metric([group], seconds)
        yield family


_default_lock = threading.Lock()
_default_metrics: RuntimeMetrics | None = None


def runtime_metrics() -> RuntimeMetrics:
    """The families on ``prometheus_client.REGISTRY``, created once per process."""
    global _default_metrics
    with _default_lock:
        if _default_metrics is None:
            _default_metrics = RuntimeMetrics()
        return _default_metrics
