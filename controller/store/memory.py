"""What one process's store remembers of its own reads and writes, per etcd key.

Where it sits: inside ``controller.store.objects.Store``, between the write paths and the
informers. Three memories per key, each dropped when the key is deleted or goes idle:

* **bases** — the newest (revision, raw value) this process read or wrote. A write based on
  that revision needs no read first, and ``Informer.get`` uses :meth:`WriteMemory.newer` to
  return what this process wrote before the watch delivers it (read-your-writes).
* **writes** — the revision of the last value this process wrote per key, so the direct-write
  normaliser can skip values it knows are canonical;
* **status writes** — base revision → written revision (None while the transaction is in
  flight) of the last few status writes, so ``NotOwnStatusWrite`` can tell a status write this
  process made from anyone else's change when it comes back through the watch.

A key nothing was remembered, written or status-written for in ``idle_seconds`` is forgotten,
by a sweep every half of that under the lock (15 ms per 100,000 keys kept, 40 ms forgotten).
All three memories serve the moments around a write; kept for every object, the bases alone
hold the newest raw value of each (1.7 KB per converged Instance, a seventh of a controller's
memory per object). A write to a forgotten key reads its base from etcd first, as for a key
never seen; a read-your-writes answer (``newer``) only ever concerns a recent write.

Values of a kilobyte are glibc ``malloc`` blocks, and glibc keeps freed blocks amid live ones
for the process instead of handing the pages back: after a sweep that forgot many keys,
``malloc_trim`` hands them back (bench.memory at 10,000 idle Instances: 7.7 -> 6.0 KB of RSS
per object; without it the RSS does not move). Where there is no glibc, nothing is asked.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable

__all__ = ["IDLE_SECONDS", "WriteMemory"]

try:
    _malloc_trim: Callable[[int], int] | None = ctypes.CDLL(None).malloc_trim
except (OSError, AttributeError):  # not glibc
    _malloc_trim = None
#: Keys a sweep must forget for the freed pages to be worth handing back.
_TRIM_AFTER = 1000

#: Status writes remembered per key: the watch may lag several writes behind.
_STATUS_WRITES_KEPT = 8
#: How long a key's memories outlive its last remember, write or status write.
IDLE_SECONDS = 120.0


class WriteMemory:
    """What this process last read and wrote per key: the base of CAS writes and own-write echo."""

    def __init__(
        self, idle_seconds: float = IDLE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lock = threading.Lock()
        self._idle_seconds = idle_seconds
        self._clock = clock
        self._next_sweep = clock() + idle_seconds / 2
        #: By key: (revision, raw value, when last touched).
        self._bases: dict[bytes, tuple[int, bytes, float]] = {}
        self._written: dict[bytes, int] = {}
        self._status_writes: dict[bytes, dict[int, int | None]] = {}

    def remember(self, etcd_key: bytes, revision: int, raw: bytes) -> None:
        """Keep (revision, raw) as the key's base unless a newer one is known."""
        with self._lock:
            now = self._clock()
            self._remember(etcd_key, revision, raw, now)
            forgotten = self._sweep_if_due(now)
        _hand_back(forgotten)

    def _remember(self, etcd_key: bytes, revision: int, raw: bytes, now: float) -> None:
        known = self._bases.get(etcd_key)
        if known is None or known[0] <= revision:
            self._bases[etcd_key] = (revision, raw, now)
        else:
            self._touch(etcd_key, now)

    def _touch(self, etcd_key: bytes, now: float) -> None:
        known = self._bases.get(etcd_key)
        if known is not None:
            self._bases[etcd_key] = (known[0], known[1], now)

    def _sweep_if_due(self, now: float) -> int:
        """Forget every key untouched for ``idle_seconds`` if a sweep is due (lock held);
        how many were forgotten."""
        if now < self._next_sweep:
            return 0
        horizon = now - self._idle_seconds
        idle = [key for key, base in self._bases.items() if base[2] <= horizon]
        idle.extend(key for key in self._status_writes if key not in self._bases)
        for key in idle:
            self._bases.pop(key, None)
            self._written.pop(key, None)
            self._status_writes.pop(key, None)
        self._next_sweep = now + self._idle_seconds / 2
        return len(idle)

    def wrote(self, etcd_key: bytes, revision: int, raw: bytes) -> None:
        """Note a value this process wrote (also remembered as the key's base)."""
        with self._lock:
            now = self._clock()
            self._remember(etcd_key, revision, raw, now)
            self._written[etcd_key] = max(revision, self._written.get(etcd_key, 0))
            forgotten = self._sweep_if_due(now)
        _hand_back(forgotten)

    def written_at(self, etcd_key: bytes, revision: int) -> bool:
        with self._lock:
            return self._written.get(etcd_key) == revision

    def base(self, etcd_key: bytes) -> tuple[int, bytes] | None:
        with self._lock:
            forgotten = self._sweep_if_due(self._clock())  # a process that only reads sweeps
            known = self._bases.get(etcd_key)
        _hand_back(forgotten)
        return None if known is None else (known[0], known[1])

    def newer(self, etcd_key: bytes, revision: int) -> tuple[int, bytes] | None:
        """The remembered (revision, raw) if it is newer than ``revision``."""
        known = self.base(etcd_key)
        return known if known is not None and known[0] > revision else None

    def forget(self, etcd_key: bytes) -> None:
        with self._lock:
            self._bases.pop(etcd_key, None)
            self._written.pop(etcd_key, None)
            self._status_writes.pop(etcd_key, None)

    def status_write(self, etcd_key: bytes, base: int, written: int | None) -> None:
        """Note a status write on ``base``: before its transaction (``written`` None), and
        again with the revision it produced."""
        with self._lock:
            self._touch(etcd_key, self._clock())
            writes = self._status_writes.setdefault(etcd_key, {})
            writes[base] = written
            while len(writes) > _STATUS_WRITES_KEPT:
                del writes[next(iter(writes))]

    def is_status_write(self, etcd_key: bytes, base: int, result: int) -> bool:
        """True if ``base`` → ``result`` is (or, still in flight, may be) a noted status write."""
        with self._lock:
            writes = self._status_writes.get(etcd_key)
            if writes is None or base not in writes:
                return False
            written = writes[base]
        return written is None or written == result


def _hand_back(forgotten: int) -> None:
    """Return freed heap pages to the OS after a sweep that forgot many keys (see the module)."""
    if forgotten >= _TRIM_AFTER and _malloc_trim is not None:
        _malloc_trim(0)
