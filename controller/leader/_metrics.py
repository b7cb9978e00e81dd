"""The Prometheus gauge of leader election: ``leader_is_leader{name}``.

Where it sits: set by the election loop (``controller.leader._holder``) and exported on the
manager's ``/metrics``; ``name`` is the election (``controller``, ``shard-3``, …). A metric
name can be registered only once per registry, so the gauge is created on first use, once per
process, and every elector of the process shares it.
"""

from __future__ import annotations

import threading

from prometheus_client import Gauge

__all__ = ["leader_gauge"]

_lock = threading.Lock()
_gauge: Gauge | None = None


def leader_gauge() -> Gauge:
    global _gauge
    with _lock:
        if _gauge is None:
            _gauge = Gauge(
                "leader_is_leader",
                "1 while this process holds the election (leader or shard), else 0.",
                ["name"],
            )
        return _gauge
