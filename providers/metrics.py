"""Prometheus metrics of cloud calls: ``provider_calls_total`` and ``provider_call_seconds``.

Where it sits: ``GuardedProvider`` records every call (including the ones the API budget or
the circuit breaker refused, with their code) here; the manager serves them on ``/metrics``.
The collectors are registered once per process on the default registry (``default_metrics``);
tests and tools that want isolation pass their own ``CollectorRegistry``.
"""

from __future__ import annotations

import threading

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

__all__ = ["ProviderMetrics", "default_metrics"]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ProviderMetrics:
    """The two collectors, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.calls = Counter(
            "provider_calls",
            "Cloud API calls by account, operation and result code (OK on success).",
            ("account", "op", "code"),
            registry=registry,
        )
        self.seconds = Histogram(
            "provider_call_seconds",
            "Latency of cloud API calls that reached the cloud.",
            ("account", "op"),
            buckets=_BUCKETS,
            registry=registry,
        )

    def record(self, account: str, op: str, code: str, seconds: float | None) -> None:
        self.calls.labels(account, op, code).inc()
        if seconds is not None:
            self.seconds.labels(account, op).observe(seconds)


_default: ProviderMetrics | None = None
_default_lock = threading.Lock()


def default_metrics() -> ProviderMetrics:
    """The process-wide collectors on prometheus-client's default registry, made once."""
    global _default
    with _default_lock:
        if _default is None:
            _default = ProviderMetrics(REGISTRY)
        return _default
