"""Per-account API budget: a token bucket with a delete reserve, and a circuit breaker.

Where it sits: ``GuardedProvider`` consults one ``ApiGate`` per account before every cloud
call; all worker threads of every controller using the account share it. Neither part blocks:
when the budget is spent or the circuit is open the gate raises ``BudgetExhausted`` /
``CircuitOpen`` (both ``TransientError``) with the delay after which the call may succeed, and
the workqueue requeues the item for then.

Deletes go first: a slice of the bucket (``ApiBudget.delete_reserve``) is spendable only by
deletes, so under pressure teardown keeps flowing while creates and reads wait.

Across processes: an account's budget is for the whole deployment, yet each controller
process has its own gate. Each process therefore spends the slice of it that matches the
work it holds — ``ApiGate.set_share(held shards ÷ total shards)``, called whenever the
process's shards change (``Manager.on_share_change``, wired by ``reconcilers.deps``) — so the
rates of all processes add up to at most the account's rate (:func:`budget_share` has the
arithmetic). A shard is reported lost before another process can take it, so the slices never
overlap; a process holding nothing spends nothing.
"""

from __future__ import annotations

import threading
from collections import deque
from enum import StrEnum

from controller.errors import BudgetExhausted, CircuitOpen
from providers.clock import Clock
from providers.config import ApiBudget

__all__ = [
    "ApiGate",
    "BreakerState",
    "CircuitBreaker",
    "TokenBucket",
    "budget_share",
]

#: What a bucket with no rate (a process holding no shard) answers: look again after this.
IDLE_WAIT = 1.0


def budget_share(budget: ApiBudget, share: float) -> tuple[float, float]:
    """(rate, burst) of the slice ``share`` (0…1, this process's part of the shards) of an
    account's ``budget``. The burst never drops below what one non-delete call needs beside
    the delete reserve (``1 / (1 - delete_reserve)`` tokens), or a thin slice could never
    create; a zero share is no budget at all."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"a budget share is a fraction in [0, 1], not {share}")
    if share == 0.0:
        return 0.0, 0.0
    return budget.rate * share, max(budget.burst * share, 1.0 / (1.0 - budget.delete_reserve))


class TokenBucket:
    """``rate`` tokens per second into a bucket of ``burst``; thread-safe, never blocks.
    ``rescale`` changes both; a bucket of rate 0 admits nothing it does not hold."""

    def __init__(self, rate: float, burst: float, clock: Clock) -> None:
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
            if self._rate <= 0.0:
                return IDLE_WAIT
            return (reserve + 1.0 - self._tokens) / self._rate

    def rescale(self, rate: float, burst: float) -> None:
        """New rate and burst from now on; tokens above the new burst are dropped, and a
        larger bucket fills at the new rate (no tokens appear at once) — except a bucket of
        rate 0, which was out of use: given a rate again it starts full, as a new one would.
        (A process back from holding no shard, or starting with none, is owed its burst as
        much as a freshly started one; an empty bucket would turn its first calls away.)"""
        with self._lock:
            self._refill()
            out_of_use = self._rate <= 0.0
            self._rate = rate
            self._burst = float(burst)
            self._tokens = self._burst if out_of_use else min(self._tokens, self._burst)

    @property
    def rate(self) -> float:
        with self._lock:
            return self._rate

    @property
    def burst(self) -> float:
        with self._lock:
            return self._burst

    @property
    def tokens(self) -> float:
        with self._lock:
            self._refill()
            return self._tokens


class BreakerState(StrEnum):
    """Where a circuit breaker is: passing calls, refusing them, or letting one probe through."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; after ``cooldown`` one probe decides.

    It remembers the last ``threshold`` failures (``recent_failures``), so whoever reports an
    open circuit can say why it opened.
    """

    def __init__(self, threshold: int, cooldown: float, clock: Clock) -> None:
        self._threshold = threshold
        self._cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._recent: deque[str] = deque(maxlen=threshold)
        self._opened_at: float | None = None
        self._probing = False
        self._lock = threading.Lock()

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state()

    @property
    def recent_failures(self) -> tuple[str, ...]:
        """The failures since the last success, oldest first (at most ``threshold``)."""
        with self._lock:
            return tuple(self._recent)

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
            self._recent.clear()
            self._opened_at = None
            self._probing = False

    def record_failure(self, cause: str) -> bool:
        """Count one failure of the provider (``cause`` says what failed); True when this one
        opened the circuit — from closed, or again after a failed half-open probe."""
        with self._lock:
            was_open = self._state() is BreakerState.OPEN
            self._failures += 1
            self._recent.append(cause)
            opens = self._probing or self._failures >= self._threshold
            if opens:
                self._opened_at = self._clock.now()
            self._probing = False
            return opens and not was_open


class ApiGate:
    """The budget and the breaker of one account, in the order a call meets them; the bucket
    holds this process's ``share`` of the budget (see the module)."""

    def __init__(self, account: str, budget: ApiBudget, clock: Clock, share: float = 1.0) -> None:
        self.account = account
        self.budget = budget
        rate, burst = budget_share(budget, share)
        self.bucket = TokenBucket(rate, burst, clock)
        self.breaker = CircuitBreaker(budget.breaker_threshold, budget.breaker_cooldown, clock)
        self.cooldown = budget.breaker_cooldown
        self._reserve = budget.delete_reserve * burst

    def set_share(self, share: float) -> None:
        """Spend ``share`` of the account's budget from now on (this process's shards ÷ all)."""
        rate, burst = budget_share(self.budget, share)
        self.bucket.rescale(rate, burst)
        self._reserve = self.budget.delete_reserve * burst

    def circuit_message(self) -> str:
        """Why calls are refused while the circuit is open: the failure that opened it."""
        recent = self.breaker.recent_failures
        cause = f" after repeated cloud failures, the last: {recent[-1]}" if recent else ""
        return f"circuit open for account {self.account}{cause}"

    def enter(self, *, is_delete: bool) -> None:
        """Admit one call or raise ``CircuitOpen`` / ``BudgetExhausted``."""
        wait = self.breaker.admit()
        if wait > 0:
            raise CircuitOpen(self.circuit_message(), delay=wait)
        wait = self.bucket.try_take(0.0 if is_delete else self._reserve)
        if wait > 0:
            self.breaker.release()
            raise BudgetExhausted(f"API budget of account {self.account} exhausted", delay=wait)
