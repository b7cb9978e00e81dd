"""Workqueue metrics: depth, adds, retries and latencies, on a private registry."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

from controller.clock import FakeClock
from controller.workqueue import (
    ItemExponentialFailureRateLimiter,
    Queue,
    RateLimitingQueue,
    WorkqueueMetrics,
    default_workqueue_metrics,
)


def sample(registry: CollectorRegistry, metric: str, queue: str) -> float | None:
    return registry.get_sample_value(metric, {"name": queue})


def test_a_queue_reports_depth_adds_retries_and_latencies() -> None:
    registry = CollectorRegistry()
    clock = FakeClock()
    queue = RateLimitingQueue[str](
        "widgets",
        clock=clock,
        metrics=WorkqueueMetrics(registry),
        rate_limiter=ItemExponentialFailureRateLimiter(),
    )
    try:
        queue.add("a")
        queue.add("a")
        queue.add("b")
        assert sample(registry, "workqueue_adds_total", "widgets") == 2
        assert sample(registry, "workqueue_depth", "widgets") == 2

        clock.step(0.5)
        assert queue.get() == ("a", False)
        assert sample(registry, "workqueue_depth", "widgets") == 1
        assert sample(registry, "workqueue_queue_duration_seconds_count", "widgets") == 1
        assert sample(registry, "workqueue_queue_duration_seconds_sum", "widgets") == 0.5

        clock.step(0.25)
        queue.done("a")
        assert sample(registry, "workqueue_work_duration_seconds_sum", "widgets") == 0.25

        queue.add_rate_limited("a")
        assert sample(registry, "workqueue_retries_total", "widgets") == 1
        assert sample(registry, "workqueue_adds_total", "widgets") == 2, "not ready yet"
    finally:
        queue.shut_down()


def test_queues_sharing_the_families_are_told_apart_by_name() -> None:
    registry = CollectorRegistry()
    metrics = WorkqueueMetrics(registry)
    first, second = Queue[str]("first", metrics=metrics), Queue[str]("second", metrics=metrics)
    first.add("a")
    second.add("a")
    second.add("b")
    assert sample(registry, "workqueue_depth", "first") == 1
    assert sample(registry, "workqueue_depth", "second") == 2


def test_a_queue_without_metrics_records_nothing() -> None:
    queue = Queue[str]("unmeasured")
    queue.add("a")
    assert REGISTRY.get_sample_value("workqueue_adds_total", {"name": "unmeasured"}) is None


def test_the_default_families_are_created_once_on_the_global_registry() -> None:
    assert default_workqueue_metrics() is default_workqueue_metrics()
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        WorkqueueMetrics()  # the global registry refuses a second set
