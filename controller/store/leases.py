"""Leases shared by time bucket: one etcd lease for every key written in the same window.

Where it sits: under the writers of short-lived keys — the event recorder (``controller.events``)
and the rendezvous heartbeats (``controller.rendezvous``). A lease per key would cost a second
etcd request per write; instead every key written within one ``bucket`` seconds shares a lease
granted at its first use with a TTL of ``ttl + bucket``, so each key lives at least ``ttl``
after its last write and at most ``bucket`` longer. A key written again is re-attached to the
current bucket's lease, so a key that keeps being written lives on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import grpc

from controller.store.etcd import EtcdClient

__all__ = ["BucketedLease"]


class BucketedLease:
    """The lease of the current time bucket, granted on first use (thread-safe)."""

    def __init__(
        self, client: EtcdClient, ttl: float, bucket: float, now: Callable[[], float]
    ) -> None:
        if bucket <= 0:
            raise ValueError("a lease bucket must be positive")
        self._client = client
        self._ttl = int(ttl + bucket)
        self._bucket = bucket
        self._now = now
        self._lock = threading.Lock()
        self._lease: tuple[int, int] | None = None  # (bucket, lease id)

    def current(self) -> int:
        """The current bucket's lease id (one grant per bucket)."""
        bucket = int(self._now() // self._bucket)
        with self._lock:
            if self._lease is None or self._lease[0] != bucket:
                self._lease = (bucket, self._client.lease_grant(self._ttl))
            return self._lease[1]

    def reset(self) -> None:
        """The lease is gone (expired or revoked: etcd answered NOT_FOUND): the next
        :meth:`current` grants a new one."""
        with self._lock:
            self._lease = None

    def put(self, key: bytes, value: bytes) -> None:
        """Write ``key`` under the current lease, granting a new one if it has gone."""
        lease = self.current()
        try:
            self._client.put(key, value, lease)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            self.reset()
            self._client.put(key, value, self.current())
