"""The controller's workqueue: a port of client-go's ``util/workqueue``.

It decouples the informers' event handlers from the reconcile workers (etcd watch → informer →
handler → workqueue → workers → reconcile): handlers add keys, N worker threads get them, and
the queue guarantees that duplicates collapse, that no key is reconciled by two workers at
once, that a key re-added mid-reconcile is replayed after it, and that failures are retried
with per-key exponential backoff under an overall budget. Time comes from an injected
:class:`~controller.clock.Clock`, so tests drive the delays with a ``FakeClock``.

* :class:`Queue` — de-duplicating FIFO with dirty and processing sets;
* :class:`DelayingQueue` — plus ``add_after(key, delay)``;
* :class:`RateLimitingQueue` — plus ``add_rate_limited``, ``forget``, ``num_requeues``;
* the rate limiters, and the Prometheus metrics (``WorkqueueMetrics``).
"""

from controller.workqueue._delaying import DelayingQueue, RateLimitingQueue
from controller.workqueue._metrics import WorkqueueMetrics, default_workqueue_metrics
from controller.workqueue._queue import Queue
from controller.workqueue._ratelimit import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    RateLimiter,
    default_controller_rate_limiter,
)

__all__ = [
    "BucketRateLimiter",
    "DelayingQueue",
    "ItemExponentialFailureRateLimiter",
    "MaxOfRateLimiter",
    "Queue",
    "RateLimiter",
    "RateLimitingQueue",
    "WorkqueueMetrics",
    "default_controller_rate_limiter",
    "default_workqueue_metrics",
]
