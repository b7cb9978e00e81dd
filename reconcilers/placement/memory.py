"""What a controller process learned from recent placements, shared by every reconciler.

Where it sits: the feedback loop of the placement pipeline; one :class:`PlacementMemory` per
process, in ``Deps.memory``, on the process's clock (``Deps.clock``). The Instance
reconciler feeds it (a create that failed on a member, an account whose API budget ran out);
placement reads it (the failure penalty, accounts to skip for a moment) and the Pool reconciler
shows the last failure per member in ``Pool.status``. It is deliberately not durable: a penalty
is a short-lived hint whose loss on restart only means one more attempt on a member that may
have recovered meanwhile, and each failure is also a Warning event on the object.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import datetime

from controller.clock import Clock
from reconcilers.placement.policy import Decision, RejectionCode

__all__ = ["SAME_MEMBER_BACKOFF_SECONDS", "PlacementMemory"]

#: After a failed create, the same object waits this long before trying the same member again.
SAME_MEMBER_BACKOFF_SECONDS = 10.0


class PlacementMemory:
    """What this controller learned from recent placements; thread-safe."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, dict[str, datetime]] = defaultdict(dict)
        self._own: dict[str, tuple[str, float]] = {}
        self._budget_until: dict[str, float] = {}

    def record_failure(self, pool: str | None, member: str, uid: str) -> None:
        """A create on ``member`` failed terminally for the object ``uid``."""
        with self._lock:
            if pool is not None:
                self._failures[pool][member] = self._clock.wall()
            self._own[uid] = (member, self._clock.now())

    def recently_failed(self, uid: str, member: str) -> float:
        """Seconds ``uid`` should still wait before trying ``member`` again (0 = go ahead).

        Keeps a pool without alternatives (or without a failure penalty) from retrying the
        member that just failed in a tight loop.
        """
        with self._lock:
            failed = self._own.get(uid)
        if failed is None or failed[0] != member:
            return 0.0
        return max(0.0, failed[1] + SAME_MEMBER_BACKOFF_SECONDS - self._clock.now())

    def failures(self, pool: str) -> dict[str, datetime]:
        with self._lock:
            return dict(self._failures.get(pool, {}))

    def record_budget_exhausted(self, account: str, delay: float | None) -> None:
        with self._lock:
            self._budget_until[account] = self._clock.now() + (delay or 1.0)

    def budget_exhausted(self, account: str) -> bool:
        return self.budget_wait(account) > 0.0

    def budget_wait(self, account: str) -> float:
        """Seconds until ``account``'s budget is expected back (0 = not known to be spent)."""
        with self._lock:
            return max(0.0, self._budget_until.get(account, 0.0) - self._clock.now())

    def retry_unplaced(self, decision: Decision, longest: float) -> float:
        """When an object that no member could take looks again: after ``longest``, or as soon
        as the first account skipped for its spent API budget (``AccountUnavailable`` while
        this memory holds it) is expected to have budget again. A budget refills in moments,
        and a process that has just regained its shards starts with an empty one."""
        waits = [
            self.budget_wait(rejection.account)
            for rejection in decision.rejections
            if rejection.code is RejectionCode.ACCOUNT_UNAVAILABLE
        ]
        return min([longest, *(wait for wait in waits if wait > 0)])
