"""What a test wrote to etcd: the ``mod_revision`` of every key under the test's own prefix.

Tests that mean "nothing was written" compare two of these snapshots, never etcd's global
revision: the session's etcd is shared, and anything else alive in the process (a background
thread of an earlier test, a lease, another test's recorder flushing late) moves the global
revision without touching this test's keys.
"""

from __future__ import annotations

import time

from controller.store.etcd import EtcdClient

__all__ = ["key_revisions", "settled_revisions"]


def key_revisions(client: EtcdClient, prefix: str) -> dict[bytes, int]:
    """Every key under ``prefix`` with the revision of its last write."""
    kvs, _ = client.range_prefix(prefix.encode())
    return {bytes(kv.key): int(kv.mod_revision) for kv in kvs}


def settled_revisions(
    client: EtcdClient, prefix: str, quiet_for: float = 2.0, timeout: float = 60.0
) -> dict[bytes, int]:
    """The keys under ``prefix`` once nothing has written to them for ``quiet_for`` seconds.

    "Converged" is a condition on the store, not a duration: a loaded machine takes longer
    to get there, so this waits for it (up to ``timeout``) instead of sleeping a fixed time.
    """
    deadline = time.monotonic() + timeout
    seen = key_revisions(client, prefix)
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < quiet_for:
        if time.monotonic() > deadline:
            raise AssertionError(f"{prefix} was still being written after {timeout} s")
        time.sleep(0.1)
        now = key_revisions(client, prefix)
        if now != seen:
            seen, quiet_since = now, time.monotonic()
    return seen
