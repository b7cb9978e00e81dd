"""Sharding: several controller processes split the objects between them (DESIGN §4).

Where it sits: the manager of a sharded deployment (``skybroker controller --shards N``) runs
:meth:`ShardSet.run` in a thread instead of a single election; its workers skip the keys for
which :meth:`ShardSet.owns` is false and fence their writes with the shard's
:class:`~controller.leader.Leadership` (:meth:`ShardSet.leadership_for`).

Each shard ``i`` is an election ``{prefix}/leases/shard-{i}``. Every process announces itself
with ``{prefix}/leases/members/{identity}``; all its keys ride on one lease, so a dead process
drops its shards and its membership together when that lease expires.

Fair share: with ``M`` live members sorted by identity, the member of rank ``r`` wants
``N // M`` shards, plus one if ``r < N % M``. The targets sum to ``N``, so nobody waits for a
shard held by a process that wants fewer, and nobody wants more than ``ceil(N / M)``. A member
above its target releases its least preferred shards; one below takes free shards in its own
preference order (rendezvous hashing of identity and shard, so that members racing for free
shards mostly try different ones). Views of the membership may differ for an instant; etcd's
create-if-absent still gives each shard at most one holder.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable

from controller.clock import Clock
from controller.leader._holder import KeyHolder, Leadership
from controller.leader._session import KeyState, LeaseSession
from controller.store.etcd import EtcdClient
from controller.store.keys import KeyLayout

__all__ = ["ShardSet", "shard_of"]


def shard_of(namespace: str | None, name: str, total: int) -> int:
    """The shard of an object: crc32 of ``"namespace/name"`` (``"/name"`` when cluster-scoped)
    modulo ``total`` — the same in every process, unlike Python's salted ``hash()``."""
    if total < 1:
        raise ValueError(f"total shards must be >= 1: {total}")
    return zlib.crc32(f"{namespace or ''}/{name}".encode()) % total


class ShardSet(KeyHolder):
    """Holds this process's fair share of ``total_shards`` shard elections until stopped."""

    def __init__(
        self,
        client: EtcdClient,
        layout: KeyLayout,
        total_shards: int,
        identity: str,
        *,
        ttl: int = 15,
        renew_every: float = 5.0,
        safety_margin: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        if total_shards < 1:
            raise ValueError(f"total_shards must be >= 1: {total_shards}")
        if "/" in identity:
            raise ValueError(f"a shard member identity cannot contain '/': {identity!r}")
        super().__init__(
            client,
            layout,
            identity,
            watch_prefix=layout.lease_key(""),
            ttl=ttl,
            renew_every=renew_every,
            safety_margin=safety_margin,
            clock=clock,
        )
        self.total_shards = total_shards
        self._member_prefix = layout.lease_key("members/")
        self._member_key = self._member_prefix + identity.encode()
        self._names = [f"shard-{i}" for i in range(total_shards)]
        self._shard_numbers = {name: i for i, name in enumerate(self._names)}
        self._preference = sorted(
            self._shard_numbers, key=lambda name: zlib.crc32(f"{identity}/{name}".encode())
        )
        self._reported: frozenset[int] = frozenset()
        self._on_change: Callable[[frozenset[int]], None] = _ignore_change

    def run(
        self,
        stop: threading.Event,
        on_change: Callable[[frozenset[int]], None] | None = None,
    ) -> None:
        """Hold a fair share of the shards until ``stop`` is set; blocks (use a thread).

        ``on_change(shards)`` runs in this thread whenever the owned set changes: after an
        acquisition, and after a shard's leadership has become invalid but before its key is
        deleted (so draining that shard's in-flight work delays the next holder). It must
        return quickly.
        """
        self._on_change = on_change or _ignore_change
        self._loop(stop)

    def owned(self) -> frozenset[int]:
        """The shards this process holds right now (valid leaderships only)."""
        return frozenset(self._shard_numbers[name] for name in self._valid_held())

    def leadership(self, shard: int) -> Leadership | None:
        # Asked before every reconcile and every queued key: one lookup, not a copy of the set.
        if not 0 <= shard < self.total_shards:
            return None
        with self._lock:
            lead = self._held.get(self._names[shard])
        return lead if lead is not None and lead.is_valid() else None

    def leadership_for(self, namespace: str | None, name: str) -> Leadership | None:
        """The valid leadership of the object's shard, or None if another process owns it."""
        return self.leadership(shard_of(namespace, name, self.total_shards))

    def owns(self, namespace: str | None, name: str) -> bool:
        return self.leadership_for(namespace, name) is not None

    def _announce(self, session: LeaseSession, snapshot: dict[bytes, KeyState]) -> None:
        # Only when absent: re-putting a key held on another lease (our previous session, or
        # a process that reuses our identity) would make two processes overwrite each other.
        if self._member_key not in snapshot:
            self._call(
                session,
                lambda: self._client.put(
                    self._member_key, self.identity.encode(), lease=session.lease_id
                ),
            )

    def _wanted(self, snapshot: dict[bytes, KeyState]) -> tuple[int, list[str]]:
        prefix = self._member_prefix
        members = {key[len(prefix) :].decode() for key in snapshot if key.startswith(prefix)}
        ranked = sorted(members | {self.identity})
        base, extra = divmod(self.total_shards, len(ranked))
        count = base + (1 if ranked.index(self.identity) < extra else 0)
        return count, self._preference

    def _changed(self) -> None:
        owned = frozenset(self._shard_numbers[name] for name in self._held)
        if owned != self._reported:
            self._reported = owned
            self._on_change(owned)


def _ignore_change(shards: frozenset[int]) -> None:
    """Placeholder for a :meth:`ShardSet.run` without ``on_change``."""
