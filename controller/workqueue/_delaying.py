"""Deferred adds: the delaying queue and the rate-limited queue built on it.

In the pipeline (etcd watch → informer → handler → workqueue → workers → reconcile) a worker
whose reconcile failed, or asked to be called again later (``Result(requeue_after=…)``,
``TransientError(delay)``), puts its key back here with a delay instead of right away. Ports
of client-go's ``DelayingInterface`` and ``RateLimitingInterface``:

* :class:`DelayingQueue` keeps the delayed keys in a heap ordered by ready time; one background
  thread moves each key into the queue when the injected :class:`~controller.clock.Clock`
  reaches its time. A key delayed again keeps the earlier of its two times: a shorter delay
  moves it earlier, a longer one never moves it later.
* :class:`RateLimitingQueue` asks a :class:`~controller.workqueue.RateLimiter` for the delay,
  so a failing key backs off exponentially while the whole controller stays under a budget;
  a wait the failure asked for (:meth:`RateLimitingQueue.add_when_asked`) is not a failure.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
from collections.abc import Callable, Hashable
from typing import TypeVar

from controller.clock import Clock
from controller.workqueue._metrics import WorkqueueMetrics
from controller.workqueue._queue import Queue
from controller.workqueue._ratelimit import RateLimiter, default_controller_rate_limiter

__all__ = ["DelayingQueue", "RateLimitingQueue"]

T = TypeVar("T", bound=Hashable)


class DelayingQueue(Queue[T]):
    """A :class:`Queue` that can also add a key once a delay has passed on its clock.

    It owns a background thread from construction on: shut the queue down to stop it.
    """

    def __init__(
        self,
        name: str = "",
        *,
        clock: Clock | None = None,
        metrics: WorkqueueMetrics | None = None,
    ) -> None:
        super().__init__(name, clock=clock, metrics=metrics)
        self._waiting = threading.Condition()
        # Heap entries are (ready_at, sequence, key): the sequence breaks ties in insertion
        # order and keeps keys, which need not be orderable, out of the comparison. A key
        # moved earlier leaves its old entry behind; only the one named in _scheduled counts.
        self._heap: list[tuple[float, int, T]] = []
        self._scheduled: dict[T, tuple[float, int]] = {}
        self._sequence = itertools.count()
        self._stopped = False
        self._waiting_loop = threading.Thread(
            target=self._run_waiting_loop, name=f"workqueue-delay[{name}]", daemon=True
        )
        self._waiting_loop.start()

    def add_after(self, item: T, delay: float) -> None:
        """Add ``item`` once ``delay`` seconds have passed; at once if ``delay <= 0``."""
        if self.shutting_down():
            return
        self._metrics.retried()
        if delay <= 0:
            self.add(item)
            return
        ready_at = self._clock.now() + delay
        with self._waiting:
            scheduled = self._scheduled.get(item)
            if scheduled is not None and scheduled[0] <= ready_at:
                return
            entry = (ready_at, next(self._sequence), item)
            self._scheduled[item] = (ready_at, entry[1])
            heapq.heappush(self._heap, entry)
            self._waiting.notify()

    def shut_down(self) -> None:
        self._stop_waiting_loop()
        super().shut_down()

    def shut_down_with_drain(self) -> None:
        self._stop_waiting_loop()
        super().shut_down_with_drain()

    def _stop_waiting_loop(self) -> None:
        """Stop the background thread and forget the keys it still held back."""
        with self._waiting:
            self._stopped = True
            self._heap.clear()
            self._scheduled.clear()
            self._waiting.notify()
        self._waiting_loop.join()

    def _run_waiting_loop(self) -> None:
        while True:
            with self._waiting:
                if self._stopped:
                    return
                due = self._pop_due(self._clock.now())
                if not due:
                    self._clock.wait_until(self._waiting, self._next_ready_at())
                    continue
            # Added outside _waiting so that the two locks are never held together.
            for item in due:
                self.add(item)

    def _pop_due(self, now: float) -> list[T]:
        """Remove and return, in ready order, the keys whose time has come."""
        due: list[T] = []
        while self._heap and self._heap[0][0] <= now:
            ready_at, sequence, item = heapq.heappop(self._heap)
            if self._scheduled.get(item) == (ready_at, sequence):
                del self._scheduled[item]
                due.append(item)
        return due

    def _next_ready_at(self) -> float | None:
        """The time the earliest live entry becomes ready, dropping stale entries on top."""
        while self._heap:
            ready_at, sequence, item = self._heap[0]
            if self._scheduled.get(item) == (ready_at, sequence):
                return ready_at
            heapq.heappop(self._heap)
        return None


class RateLimitingQueue(DelayingQueue[T]):
    """A :class:`DelayingQueue` whose re-adds are delayed by a rate limiter.

    A worker calls :meth:`add_rate_limited` when a reconcile fails and :meth:`forget` when it
    succeeds, so that the next failure starts again from the shortest delay.
    """

    def __init__(
        self,
        name: str = "",
        *,
        rate_limiter: RateLimiter[T] | None = None,
        clock: Clock | None = None,
        metrics: WorkqueueMetrics | None = None,
        spread: Callable[[], float] = random.random,
    ) -> None:
        """``rate_limiter`` defaults to :func:`default_controller_rate_limiter` on ``clock``;
        ``spread`` draws the random part (0…1) of :meth:`add_when_asked`'s waits."""
        super().__init__(name, clock=clock, metrics=metrics)
        self._spread = spread
        self._rate_limiter: RateLimiter[T] = (
            rate_limiter
            if rate_limiter is not None
            else default_controller_rate_limiter(self._clock)
        )

    def add_rate_limited(self, item: T) -> None:
        """Add ``item`` after the delay the rate limiter gives it now (a failure)."""
        self.add_after(item, self._rate_limiter.when(item))

    def add_when_asked(self, item: T, delay: float) -> None:
        """Add ``item`` after ``delay``, a wait its failure asked for (until the API budget
        refills, a cloud's Retry-After), plus a random part of it up to as much again.

        The spread keeps keys that waited for the same refill from returning in lockstep (a
        retry that needs two tokens would otherwise always find one); the wait is never more
        than twice the hint. It is flow control, not a failure: the rate limiter is not
        consulted, so a burst of such waits neither pushes the key's next real failure to an
        exponential backoff of minutes nor runs the controller's overall retry bucket into
        a debt that every other key's retries would pay for.
        """
        self.add_after(item, delay * (1.0 + self._spread()))

    def forget(self, item: T) -> None:
        """Stop tracking ``item``'s failures; it does not remove the key from the queue."""
        self._rate_limiter.forget(item)

    def num_requeues(self, item: T) -> int:
        """How many times ``item`` has been rate-limited since it was last forgotten."""
        return self._rate_limiter.num_requeues(item)
