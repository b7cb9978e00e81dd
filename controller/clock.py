"""Injected time for the controller runtime.

Everything in the pipeline (etcd watch → informer → handler → workqueue → workers → reconcile)
that waits — the workqueue's delaying heap, rate limiters, leader-election renewals, event
TTLs — asks a :class:`Clock` instead of the ``time`` module, so that tests can drive time by
hand with :class:`FakeClock` and stay both fast and deterministic.

Wall time (timestamps written into status) comes from the same clock, :meth:`Clock.wall`, so
a :class:`FakeClock` moves both together and durations between timestamps follow the steps.

Waiting is expressed as "wait on this ``threading.Condition`` until that *deadline* on this
clock" rather than "for that many seconds": a waiter that computes a timeout from ``now()``
and then starts waiting could miss a fake step made in between, a deadline cannot.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "FakeClock", "RealClock"]


class Clock(Protocol):
    """A monotonic clock, in seconds, that threads can sleep and wait on."""

    def now(self) -> float:
        """The current time; only differences between two readings mean anything."""
        ...

    def wall(self) -> datetime:
        """The current wall time (UTC), for timestamps that leave the process."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread until ``seconds`` have passed on this clock."""
        ...

    def wait_until(self, condition: threading.Condition, deadline: float | None) -> bool:
        """Wait on ``condition`` (whose lock the caller holds) until notified or ``deadline``.

        ``deadline`` is a ``now()`` reading; ``None`` waits until notified. Like
        ``Condition.wait`` this may wake early, so callers re-check their predicate. Returns
        ``False`` when the deadline has passed, ``True`` otherwise.
        """
        ...


class RealClock:
    """The process's monotonic clock."""

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wait_until(self, condition: threading.Condition, deadline: float | None) -> bool:
        if deadline is None:
            condition.wait()
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        condition.wait(remaining)
        return time.monotonic() < deadline


@dataclass(eq=False)  # compared by identity: two waiters may share a condition and deadline
class _Waiter:
    condition: threading.Condition
    deadline: float | None


class FakeClock:
    """A clock that only moves when a test calls :meth:`step` or :meth:`set`.

    Moving it wakes every thread whose deadline has been reached, so work scheduled for time
    ``t`` happens when the clock reaches ``t`` and never before, whatever the real scheduling.
    Its wall time starts at ``wall_start`` (default: the real wall time when it is made) and
    moves with it.
    """

    def __init__(self, start: float = 0.0, wall_start: datetime | None = None) -> None:
        self._now = start
        self._wall_offset = (wall_start or datetime.now(UTC)) - timedelta(seconds=start)
        # Guards _now and _waiters; notified whenever the set of waiters changes so that tests
        # can block until a background thread has parked itself (block_until_waiting).
        self._state = threading.Condition()
        self._waiters: list[_Waiter] = []

    def now(self) -> float:
        with self._state:
            return self._now

    def wall(self) -> datetime:
        return self._wall_offset + timedelta(seconds=self.now())

    def sleep(self, seconds: float) -> None:
        own_condition = threading.Condition()
        with own_condition:
            deadline = self.now() + seconds
            while self.wait_until(own_condition, deadline):
                pass

    def wait_until(self, condition: threading.Condition, deadline: float | None) -> bool:
        waiter = _Waiter(condition, deadline)
        with self._state:
            if deadline is not None and self._now >= deadline:
                return False
            self._waiters.append(waiter)
            self._state.notify_all()
        # The caller holds `condition`, and _wake_due takes it before notifying: a step made
        # after the registration above cannot notify before this thread is actually waiting.
        try:
            condition.wait()
        finally:
            with self._state:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                    self._state.notify_all()
        return deadline is None or self.now() < deadline

    def step(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` and wake the waiters that are now due."""
        if seconds < 0:
            raise ValueError(f"a clock cannot step backwards ({seconds} s)")
        with self._state:
            target = self._now + seconds
        self.set(target)

    def set(self, t: float) -> None:
        """Move the clock to time ``t`` (never backwards) and wake the waiters now due."""
        with self._state:
            if t < self._now:
                raise ValueError(f"a clock cannot go back from {self._now} to {t}")
            self._now = t
            due = [w for w in self._waiters if w.deadline is not None and w.deadline <= t]
            self._waiters = [w for w in self._waiters if w not in due]
            self._state.notify_all()
        # Notified outside _state: waiters take _state while holding their condition, so
        # taking a condition while holding _state could deadlock.
        for waiter in due:
            with waiter.condition:
                waiter.condition.notify_all()

    def block_until_waiting(self, deadline: float | None = None, timeout: float = 30.0) -> bool:
        """Block, in real time, until some thread waits on this clock.

        With ``deadline``, only a waiter for exactly that deadline counts: the caller then
        knows a background thread has seen everything up to now and parked until ``deadline``.
        Returns ``False`` if no such waiter appeared within ``timeout`` real seconds.
        """

        def matching_waiter() -> bool:
            return any(deadline is None or w.deadline == deadline for w in self._waiters)

        with self._state:
            return self._state.wait_for(matching_waiter, timeout)
