"""What one process's store remembers of its own reads and writes, per etcd key.

Where it sits: inside ``controller.store.objects.Store``, between the write paths and the
informers. Two memories, both bounded by the number of live keys and dropped on delete:

* **bases** — the newest (revision, raw value) this process read or wrote. A write based on
  that revision needs no read first, and ``Informer.get`` uses :meth:`WriteMemory.newer` to
  return what this process wrote before the watch delivers it (read-your-writes).
* **writes** — the revision of the last value this process wrote per key, so the direct-write
  normaliser can skip values it knows are canonical;
* **status writes** — base revision → written revision (None while the transaction is in
  flight) of the last few status writes, so ``NotOwnStatusWrite`` can tell a status write this
  process made from anyone else's change when it comes back through the watch.
"""

from __future__ import annotations

import threading

__all__ = ["WriteMemory"]

#: Status writes remembered per key: the watch may lag several writes behind.
_STATUS_WRITES_KEPT = 8


class WriteMemory:
    """What this process last read and wrote per key: the base of CAS writes and own-write echo."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bases: dict[bytes, tuple[int, bytes]] = {}
        self._written: dict[bytes, int] = {}
        self._status_writes: dict[bytes, dict[int, int | None]] = {}

    def remember(self, etcd_key: bytes, revision: int, raw: bytes) -> None:
        """Keep (revision, raw) as the key's base unless a newer one is known."""
        with self._lock:
            known = self._bases.get(etcd_key)
            if known is None or known[0] <= revision:
                self._bases[etcd_key] = (revision, raw)

    def wrote(self, etcd_key: bytes, revision: int, raw: bytes) -> None:
        """Note a value this process wrote (also remembered as the key's base)."""
        self.remember(etcd_key, revision, raw)
        with self._lock:
            self._written[etcd_key] = max(revision, self._written.get(etcd_key, 0))

    def written_at(self, etcd_key: bytes, revision: int) -> bool:
        with self._lock:
            return self._written.get(etcd_key) == revision

    def base(self, etcd_key: bytes) -> tuple[int, bytes] | None:
        with self._lock:
            return self._bases.get(etcd_key)

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
