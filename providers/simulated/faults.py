"""Fault injection and latency for the simulated cloud.

Where it sits: ``SimulatedProvider`` runs every operation inside ``around(op)``. Random
faults come from rates (server errors, throttling with a Retry-After, timeouts); scripted
faults (``fail_next``) make tests exact.
A timeout may strike after the cloud applied the change — the crash window that idempotent
creates exist for — so a retried create must adopt what the first attempt made.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from controller.errors import ReconcileError
from providers.errors import classify

__all__ = ["FaultInjector", "FaultRates", "sim_error"]


@dataclass(frozen=True)
class FaultRates:
    """Probabilities per call (0..1) and a fixed latency in seconds."""

    error_rate: float = 0.0
    throttle_rate: float = 0.0
    timeout_rate: float = 0.0
    latency: float = 0.0
    retry_after: float = 1.0


def sim_error(code: str, message: str, *, retry_after: float | None = None) -> ReconcileError:
    """A classified error as the simulated cloud raises it, with a fresh request id."""
    status = 503 if code == "RequestLimitExceeded" else None
    return classify(
        code,
        message,
        status=status,
        request_id=f"sim-{uuid.uuid4().hex[:16]}",
        retry_after=retry_after,
    )


@dataclass(frozen=True)
class _Scripted:
    op: str | None
    code: str
    after_apply: bool


class FaultInjector:
    """Thread-safe source of injected faults for one simulated account."""

    def __init__(self, rates: FaultRates, seed: int | None = None) -> None:
        self._rates = rates
        self._random = random.Random(seed)
        self._script: deque[_Scripted] = deque()
        self._lock = threading.Lock()

    @property
    def rates(self) -> FaultRates:
        return self._rates

    def configure(self, **changes: float) -> None:
        """Change rates at run time, e.g. ``configure(error_rate=0.1, latency=0.02)``."""
        with self._lock:
            self._rates = replace(self._rates, **changes)

    def fail_next(
        self, code: str, *, op: str | None = None, count: int = 1, after_apply: bool = False
    ) -> None:
        """Make the next ``count`` calls (of ``op``, or of any op) fail with ``code``.

        ``after_apply=True`` raises only once the operation has taken effect.
        """
        with self._lock:
            self._script.extend(_Scripted(op, code, after_apply) for _ in range(count))

    def clear(self) -> None:
        with self._lock:
            self._script.clear()
            self._rates = FaultRates()

    def _take_scripted(self, op: str, after_apply: bool) -> _Scripted | None:
        for fault in self._script:
            if fault.after_apply == after_apply and fault.op in (None, op):
                self._script.remove(fault)
                return fault
        return None

    @contextmanager
    def around(self, op: str) -> Iterator[None]:
        """Wrap one operation: faults due before it raise first, faults due after it raise
        once the body has applied its change."""
        with self._lock:
            rates = self._rates
            before = self._take_scripted(op, after_apply=False)
            after = None if before else self._take_scripted(op, after_apply=True)
            draw = self._random.random()
            timeout_after_apply = self._random.random() < 0.5
        if rates.latency > 0:
            time.sleep(rates.latency)
        late_code = after.code if after is not None else None
        if before is not None:
            raise self._error(before.code, op, rates)
        if draw < rates.error_rate:
            raise self._error("InternalError", op, rates)
        draw -= rates.error_rate
        if draw < rates.throttle_rate:
            raise self._error("RequestLimitExceeded", op, rates)
        draw -= rates.throttle_rate
        if draw < rates.timeout_rate:
            if not timeout_after_apply:
                raise self._error("Timeout", op, rates)
            late_code = late_code or "Timeout"
        yield
        if late_code is not None:
            raise self._error(late_code, op, rates)

    @staticmethod
    def _error(code: str, op: str, rates: FaultRates) -> ReconcileError:
        retry_after = rates.retry_after if code == "RequestLimitExceeded" else None
        return sim_error(code, f"injected fault on {op}", retry_after=retry_after)
