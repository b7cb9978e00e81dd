"""Rate limiters: how long a key waits before it is retried.

In the pipeline (etcd watch → informer → handler → workqueue → workers → reconcile) every failed
reconcile puts its key back through a :class:`RateLimiter`. Ports of client-go's limiters:

* :class:`ItemExponentialFailureRateLimiter` — per key, ``base * 2**failures`` capped at a
  maximum, so one broken object backs off without slowing the others;
* :class:`BucketRateLimiter` — one token bucket for every key together, so a mass failure
  (a cloud outage) cannot turn into a retry storm;
* :class:`MaxOfRateLimiter` — the longest delay of several limiters;
* :func:`default_controller_rate_limiter` — exponential 5 ms → 1000 s per key combined with a
  10 qps / burst 100 bucket, client-go's default for controllers.

Delays are in seconds. Every limiter is thread-safe: all workers of a controller share one.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar

from controller.clock import Clock, RealClock

__all__ = [
    "BucketRateLimiter",
    "ItemExponentialFailureRateLimiter",
    "MaxOfRateLimiter",
    "RateLimiter",
    "default_controller_rate_limiter",
]

T = TypeVar("T", bound=Hashable)
T_contra = TypeVar("T_contra", bound=Hashable, contravariant=True)


class RateLimiter(Protocol[T_contra]):
    """Decides the delay of each retry of a key, and forgets keys that succeeded."""

    def when(self, item: T_contra) -> float:
        """Record one more retry of ``item`` and return how long to wait before it."""
        ...

    def forget(self, item: T_contra) -> None:
        """Clear ``item``'s history: its next retry is treated as the first."""
        ...

    def num_requeues(self, item: T_contra) -> int:
        """How many retries of ``item`` were recorded since it was last forgotten."""
        ...


class ItemExponentialFailureRateLimiter(Generic[T]):
    """Per key: ``base_delay * 2**failures``, never more than ``max_delay``."""

    def __init__(self, base_delay: float = 0.005, max_delay: float = 1000.0) -> None:
        if base_delay <= 0 or max_delay < base_delay:
            raise ValueError(f"need 0 < base_delay <= max_delay, got {base_delay}, {max_delay}")
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._failures: dict[T, int] = {}
        self._lock = threading.Lock()

    def when(self, item: T) -> float:
        with self._lock:
            failures = self._failures.get(item, 0)
            self._failures[item] = failures + 1
        try:
            backoff = math.ldexp(self._base_delay, failures)
        except OverflowError:  # a key failing thousands of times in a row
            return self._max_delay
        return min(backoff, self._max_delay)

    def forget(self, item: T) -> None:
        with self._lock:
            self._failures.pop(item, None)

    def num_requeues(self, item: T) -> int:
        with self._lock:
            return self._failures.get(item, 0)


class BucketRateLimiter:
    """One token bucket for every key: ``qps`` tokens a second, holding at most ``burst``.

    Like golang.org/x/time/rate's ``Reserve``, each call takes a token even when none is left,
    running the bucket into debt, and returns the wait until that token would have been
    earned: retries are spaced ``1/qps`` apart once the burst is spent. It keeps no per-key
    state, so it never counts requeues and has nothing to forget.
    """

    def __init__(self, qps: float = 10.0, burst: int = 100, *, clock: Clock | None = None) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError(f"need qps > 0 and burst >= 1, got {qps}, {burst}")
        self._qps = qps
        self._burst = burst
        self._clock: Clock = clock if clock is not None else RealClock()
        self._tokens = float(burst)
        self._refilled_at = self._clock.now()
        self._lock = threading.Lock()

    def when(self, item: Hashable) -> float:
        with self._lock:
            now = self._clock.now()
            earned = (now - self._refilled_at) * self._qps
            self._tokens = min(float(self._burst), self._tokens + earned)
            self._refilled_at = now
            self._tokens -= 1
            return 0.0 if self._tokens >= 0 else -self._tokens / self._qps

    def forget(self, item: Hashable) -> None:
        pass

    def num_requeues(self, item: Hashable) -> int:
        return 0


class MaxOfRateLimiter(Generic[T]):
    """The longest delay that any of several limiters gives; every one of them is consulted."""

    def __init__(self, *limiters: RateLimiter[T]) -> None:
        if not limiters:
            raise ValueError("MaxOfRateLimiter needs at least one limiter")
        self._limiters = limiters

    def when(self, item: T) -> float:
        return max(limiter.when(item) for limiter in self._limiters)

    def forget(self, item: T) -> None:
        for limiter in self._limiters:
            limiter.forget(item)

    def num_requeues(self, item: T) -> int:
        return max(limiter.num_requeues(item) for limiter in self._limiters)


def default_controller_rate_limiter(clock: Clock | None = None) -> MaxOfRateLimiter[Hashable]:
    """Exponential 5 ms → 1000 s per key, and 10 retries/s (burst 100) overall, on ``clock``."""
    return MaxOfRateLimiter(
        ItemExponentialFailureRateLimiter(base_delay=0.005, max_delay=1000.0),
        BucketRateLimiter(qps=10.0, burst=100, clock=clock),
    )
