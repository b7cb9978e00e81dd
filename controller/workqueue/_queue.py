"""The basic workqueue: a de-duplicating FIFO that never hands one key to two workers at once.

In the pipeline (etcd watch → informer → handler → workqueue → workers → reconcile) the event
handlers add keys here and the N worker threads of a controller take them out. It is a port of
client-go's ``workqueue.Type`` and keeps its guarantees:

* **Fair**: keys come out in the order they were first added.
* **Stingy**: a key added several times before a worker gets it is handed out once (the
  *dirty* set); a key is never handed to a second worker while a first one holds it (the
  *processing* set). A key re-added while it is being processed is handed out again, once,
  after the first worker calls :meth:`Queue.done`.
* **Shutdown**: :meth:`Queue.shut_down` wakes every blocked :meth:`Queue.get`; adds are dropped
  from then on, and :meth:`Queue.shut_down_with_drain` also waits for in-flight keys.

Because reconciliation is level-triggered, a key is all a worker needs: collapsing duplicates
loses nothing.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Hashable
from typing import Generic, Literal, TypeVar

from controller.clock import Clock, RealClock
from controller.workqueue._metrics import NoQueueMetrics, QueueMetricsRecorder, WorkqueueMetrics

__all__ = ["Queue"]

T = TypeVar("T", bound=Hashable)


class Queue(Generic[T]):
    """A thread-safe work queue of hashable keys with client-go's semantics.

    A worker loop reads::

        while True:
            key, shutdown = queue.get()
            if shutdown:
                return
            try:
                reconcile(key)
            finally:
                queue.done(key)
    """

    def __init__(
        self,
        name: str = "",
        *,
        clock: Clock | None = None,
        metrics: WorkqueueMetrics | None = None,
    ) -> None:
        """Create an empty queue.

        ``name`` labels the metrics; ``metrics`` (e.g. ``default_workqueue_metrics()``) turns
        them on, and leaving it out keeps the queue unmeasured. ``clock`` times the latencies.
        """
        self.name = name
        self._clock: Clock = clock if clock is not None else RealClock()
        self._metrics: QueueMetricsRecorder | NoQueueMetrics = (
            QueueMetricsRecorder(metrics, name, self._clock)
            if metrics is not None
            else NoQueueMetrics()
        )
        # Invariant: every key in _fifo is in _dirty and not in _processing; a key in both
        # _dirty and _processing waits for done() to be put back in _fifo.
        self._fifo: deque[T] = deque()
        self._dirty: set[T] = set()
        self._processing: set[T] = set()
        self._shutting_down = False
        self._draining = False
        self._cond = threading.Condition()

    def add(self, item: T) -> None:
        """Mark ``item`` as needing processing; a no-op if it already waits or we shut down."""
        with self._cond:
            if self._shutting_down or item in self._dirty:
                return
            self._metrics.added(item)
            self._dirty.add(item)
            if item in self._processing:
                return  # done() re-queues it: one worker per key at a time
            self._fifo.append(item)
            self._cond.notify()

    def __len__(self) -> int:
        """The number of keys waiting for a worker (not counting those being processed)."""
        with self._cond:
            return len(self._fifo)

    def get(self) -> tuple[T, Literal[False]] | tuple[None, Literal[True]]:
        """Block until a key is ready and hand it to the caller, who must call :meth:`done`.

        Returns ``(key, False)``, or ``(None, True)`` once the queue is shutting down and no
        key is left: after a shutdown, keys still queued are handed out first.
        """
        with self._cond:
            while not self._fifo and not self._shutting_down:
                self._cond.wait()
            if not self._fifo:
                return None, True
            item = self._fifo.popleft()
            self._metrics.got(item)
            self._processing.add(item)
            self._dirty.discard(item)
            return item, False

    def done(self, item: T) -> None:
        """Release ``item``; if it was added again meanwhile, queue it for another worker.

        Releasing a key that no worker holds does nothing (client-go would queue it twice).
        """
        with self._cond:
            if item not in self._processing:
                return
            self._metrics.done(item)
            self._processing.remove(item)
            if item in self._dirty:
                self._fifo.append(item)
                self._cond.notify()
            elif not self._processing:
                self._cond.notify_all()  # a shut_down_with_drain may be waiting for this

    def shut_down(self) -> None:
        """Drop further adds and wake every blocked :meth:`get`; keys still queued go first.

        Called while another thread is in :meth:`shut_down_with_drain`, it ends that wait.
        """
        with self._cond:
            self._draining = False
            self._shutting_down = True
            self._cond.notify_all()

    def shut_down_with_drain(self) -> None:
        """Shut down like :meth:`shut_down`, then block until every in-flight key is done.

        Workers must keep calling :meth:`done` (and :meth:`get`, which hands out what is still
        queued) or this blocks forever; a concurrent :meth:`shut_down` bounds the wait.
        """
        with self._cond:
            self._draining = True
            self._shutting_down = True
            self._cond.notify_all()
            while self._processing and self._draining:
                self._cond.wait()

    def shutting_down(self) -> bool:
        """Whether a shutdown has started."""
        with self._cond:
            return self._shutting_down
