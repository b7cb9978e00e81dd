"""The time source the providers need: a ``now()`` in seconds.

Where it sits: the API budget (token bucket, circuit breaker), the inventory cache and the
simulated cloud's asynchronous transitions read time through this protocol, so tests drive
them with a fake clock instead of sleeping. Any object with ``now()`` fits, including the
runtime's ``controller.clock`` clocks, which providers must not import (DESIGN §1).
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "MonotonicClock", "WallClock"]


class Clock(Protocol):
    """Anything that tells the time in seconds."""

    def now(self) -> float: ...


class MonotonicClock:
    """Monotonic seconds: for rates, timeouts and cache ages inside one process."""

    def now(self) -> float:
        return time.monotonic()


class WallClock:
    """Epoch seconds: for timestamps persisted across processes (the simulated cloud's state)."""

    def now(self) -> float:
        return time.time()
