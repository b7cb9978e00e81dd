"""Prometheus metrics of the rendezvous endpoints (served on the API server's ``/metrics``).

Where it sits: ``routes`` counts every request it answers, by endpoint (``config``,
``report``, ``claims``, ``other``: bounded label values) and status code, times it, and keeps
the number of long-polls waiting. Created once per process on the default registry, like the
API's own ``_Metrics`` (``skybroker up`` runs several API servers' worth of code in one
process, and tests start many servers).
"""

from __future__ import annotations

import threading

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["RendezvousMetrics"]


class RendezvousMetrics:
    """The rendezvous counters, created once (:meth:`get`)."""

    _lock = threading.Lock()
    _instance: RendezvousMetrics | None = None

    def __init__(self) -> None:
        self.requests = Counter(
            "apiserver_rendezvous_requests_total",
            "Rendezvous requests by endpoint (config, report, claims, other) and status code.",
            ["endpoint", "code"],
        )
        self.duration = Histogram(
            "apiserver_rendezvous_request_duration_seconds",
            "Time to answer a rendezvous request (a long-poll: including its wait).",
            ["endpoint"],
        )
        self.waiting = Gauge(
            "apiserver_rendezvous_waiting_polls",
            "Config long-polls waiting for their BootConfig to change.",
        )

    @classmethod
    def get(cls) -> RendezvousMetrics:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance
