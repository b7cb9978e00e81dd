"""Per-account API budget: a token bucket with a delete reserve, and a circuit breaker.

Where it sits: ``GuardedProvider`` consults one ``ApiGate`` per account before every cloud
call; all worker threads of every controller using the account share it. Neither part blocks:
when the budget is spent or the circuit is open the gate raises ``TransientError`` with the
delay after which the call may succeed, and the workqueue requeues the item for then.

Deletes go first: a slice of the bucket (``ApiBudget.delete_reserve``) is spendable only by
deletes, so under pressure teardown keeps flowing while creates and reads wait.
"""

from __future__ import annotations

import threading
from enum import StrEnum

from controller.errors import TransientError
from providers.clock import Clock
from providers.config import ApiBudget

__all__ = ["ApiGate", "BreakerState", "CircuitBreaker", "TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second into a bucket of ``burst``; thread-safe, never blocks."""

    def __init__(self, rate: float, burst: int, clock: Clock) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock.now()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock.now()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def try_take(self, reserve: float = 0.0) -> float:
        """Take one token, leaving at least ``reserve`` behind; else the seconds to wait."""
        with self._lock:
            self._refill()
            if self._tokens - 1.0 >= reserve - 1e-9:
                self._tokens -= 1.0
                return 0.0
            return (reserve + 1.0 - self._tokens) / self._rate

    @property
    def tokens(self) -> float:
        with self._lock:
            self._refill()
            return self._tokens


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; after ``cooldown`` one probe decides."""

    def __init__(self, threshold: int, cooldown: float, clock: Clock) -> None:
        self._threshold = threshold
        self._cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self._lock = threading.Lock()

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state()

    def _state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock.now() - self._opened_at < self._cooldown:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def admit(self) -> float:
        """0.0 when a call may go ahead (claiming the probe if half-open), else seconds to wait."""
        with self._lock:
            state = self._state()
            if state is BreakerState.CLOSED:
                return 0.0
            assert self._opened_at is not None
            if state is BreakerState.OPEN:
                return self._opened_at + self._cooldown - self._clock.now()
            if self._probing:  # another worker holds the probe; look again shortly
                return min(1.0, self._cooldown) or 0.1
            self._probing = True
            return 0.0

    def release(self) -> None:
        """Give back an admitted call that never reached the cloud."""
        with self._lock:
            self._probing = False

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._probing = False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._probing or self._failures >= self._threshold:
                self._opened_at = self._clock.now()
            self._probing = False


class ApiGate:
    """The budget and the breaker of one account, in the order a call meets them."""

    def __init__(self, account: str, budget: ApiBudget, clock: Clock) -> None:
        self.account = account
        self.bucket = TokenBucket(budget.rate, budget.burst, clock)
        self.breaker = CircuitBreaker(budget.breaker_threshold, budget.breaker_cooldown, clock)
        self._reserve = budget.delete_reserve * budget.burst

    def enter(self, *, is_delete: bool) -> None:
        """Admit one call or raise ``TransientError`` (code CircuitOpen / BudgetExhausted)."""
        wait = self.breaker.admit()
        if wait > 0:
            raise TransientError(
                f"circuit open for account {self.account}", delay=wait, code="CircuitOpen"
            )
        wait = self.bucket.try_take(0.0 if is_delete else self._reserve)
        if wait > 0:
            self.breaker.release()
            raise TransientError(
                f"API budget of account {self.account} exhausted",
                delay=wait,
                code="BudgetExhausted",
            )
