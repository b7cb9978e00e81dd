"""Per-client-address token buckets: the first thing every rendezvous request meets.

Where it sits: ``routes`` asks :meth:`RateLimiter.admit` before it reads a body or touches etcd,
so a client hammering the endpoints (guessing secrets, or a broken agent in a loop) costs one
dictionary lookup per request and gets 429 with ``Retry-After``. The address is the TCP peer's
(ASGI ``scope["client"]``); forwarding headers are not trusted, since any client can send them.
The defaults (``ApiOptions.rendezvous_rate`` / ``rendezvous_burst``) let some fifty agents
behind one NAT heartbeat and long-poll without ever meeting the limit.

Event loop only (no lock): uvicorn calls every request on one loop. Buckets of idle addresses
are dropped once :data:`MAX_TRACKED` addresses are known, so memory stays bounded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["MAX_TRACKED", "RateLimiter"]

#: Addresses tracked before idle (full) buckets are swept away.
MAX_TRACKED = 10_000


class RateLimiter:
    """``rate`` requests per second per address, in bursts of up to ``burst``."""

    def __init__(self, rate: float, burst: int, now: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rendezvous rate limit needs rate > 0 and burst ≥ 1")
        self.rate = rate
        self.burst = burst
        self._now = now
        #: address → (tokens left, when they were counted)
        self._buckets: dict[str, tuple[float, float]] = {}

    def admit(self, address: str) -> int:
        """0 when the request may go on (a token is taken), else the whole seconds after which
        a token will be there (the 429's ``Retry-After``, at least 1)."""
        now = self._now()
        tokens, then = self._buckets.get(address, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        if tokens >= 1.0:
            if address not in self._buckets and len(self._buckets) >= MAX_TRACKED:
                self._sweep(now)
            self._buckets[address] = (tokens - 1.0, now)
            return 0
        self._buckets[address] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / self.rate))

    def _sweep(self, now: float) -> None:
        """Forget the addresses whose bucket has refilled (they lose nothing: a new bucket is
        full); if every address is busy, forget them all rather than grow without bound."""
        full = [
            address
            for address, (tokens, then) in self._buckets.items()
            if tokens + (now - then) * self.rate >= self.burst
        ]
        for address in full:
            del self._buckets[address]
        if len(self._buckets) >= MAX_TRACKED:
            self._buckets.clear()

    def tracked(self) -> int:
        return len(self._buckets)
