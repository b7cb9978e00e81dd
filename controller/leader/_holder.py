"""The loop shared by leader election and sharding: hold election keys on a lease session.

Where it sits: below ``LeaderElector`` and ``ShardSet`` (``controller.leader``), which the
manager runs in a thread each; the manager's workers ask the resulting :class:`Leadership`
whether they may reconcile, and add its fence to their writes.

One loop per elector: grant a session lease, then every ``renew_every`` — and at once
whenever a key under the watched prefix changes — renew the lease, read the election keys and
bring what we hold in line with what we want:

1. verify: a held key must still exist with the create_revision we created it with and our
   lease, or that leadership is lost now;
2. sweep: keys on our lease that we do not hold (a release whose delete failed, an acquire
   whose answer was lost) are deleted, so they never block anyone until the lease expires;
3. release the least preferred keys beyond the wanted count, losing them *before* deleting;
4. acquire free wanted keys, each with a txn that creates the key only if it does not exist.

A leadership ends — ``is_valid()`` turns false and the subclass's callback runs — when its key
is lost, when the session's local deadline passes without a successful renewal (see
``_session``), or on stop, always before the lease is revoked.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
import structlog

from controller.clock import Clock, RealClock
from controller.errors import StoreUnavailableError
from controller.leader._metrics import leader_gauge
from controller.leader._session import (
    ChangeWatch,
    DeadlinePassed,
    KeyState,
    LeaseExpired,
    LeaseSession,
    Wakeup,
    call_before,
    read_prefix,
    revoke_lease,
)
from controller.store.etcd import EtcdClient, cmp_create_revision, op_delete, op_put
from controller.store.keys import KeyLayout

__all__ = ["KeyHolder", "Leadership"]

log = structlog.get_logger(__name__)

T = TypeVar("T")


class Leadership:
    """Holding one election key: check :meth:`is_valid` before each reconcile, and put
    :meth:`fence` into every write so that a write from a holder that has lost the key (a
    paused or partitioned process) fails in etcd."""

    def __init__(
        self, name: str, key: bytes, identity: str, create_revision: int, session: LeaseSession
    ) -> None:
        self.name = name
        self.key = key
        self.identity = identity
        #: The revision that created the key: it names this tenure and no other.
        self.create_revision = create_revision
        self._session = session
        self._lost = False

    @property
    def lease_id(self) -> int:
        return self._session.lease_id

    def is_valid(self) -> bool:
        """True until the key is lost or the local deadline passes, even if nobody noticed."""
        return not self._lost and self._session.alive()

    def fence(self) -> list[Any]:
        """Txn compares that hold only while this tenure lasts (``TxnExtras(compares=...)``).

        A successor can only create the key after it was deleted, which gives it another
        create_revision; so these compares fail from the moment anyone else could lead.
        """
        return [cmp_create_revision(self.key, self.create_revision)]

    def _lose(self) -> None:
        self._lost = True

    def __repr__(self) -> str:
        return (
            f"Leadership({self.name!r}, identity={self.identity!r}, "
            f"create_revision={self.create_revision}, valid={self.is_valid()})"
        )


class KeyHolder:
    """Base of the electors: subclasses say which keys they want and hear about changes."""

    def __init__(
        self,
        client: EtcdClient,
        layout: KeyLayout,
        identity: str,
        *,
        watch_prefix: bytes,
        ttl: int,
        renew_every: float,
        safety_margin: float | None,
        clock: Clock | None,
    ) -> None:
        if not isinstance(ttl, int) or ttl < 1:
            raise ValueError(f"ttl must be a whole number of seconds >= 1 (etcd's unit): {ttl!r}")
        margin = ttl / 5 if safety_margin is None else safety_margin
        if renew_every <= 0 or margin < 0 or renew_every + margin >= ttl:
            # Otherwise the local deadline would pass between two renewals of a healthy lease.
            raise ValueError(
                f"need 0 < renew_every ({renew_every}) and renew_every + safety_margin "
                f"({margin}) < ttl ({ttl})"
            )
        if not identity:
            raise ValueError("identity must not be empty")
        self.identity = identity
        self._client = client
        self._layout = layout
        self._watch_prefix = watch_prefix
        self._ttl = ttl
        self._renew_every = renew_every
        self._margin = margin
        # After a failed etcd call: soon enough to renew several times before the deadline.
        self._retry_every = renew_every / 4
        self._clock: Clock = clock or RealClock()
        self._lock = threading.Lock()  # guards _held for readers in other threads
        self._held: dict[str, Leadership] = {}
        # Leases of ended sessions that etcd did not hear revoked (it was down). A restarted
        # etcd renews every lease, so their keys would block this process's new session for a
        # whole TTL: they are revoked as soon as etcd answers again.
        self._unrevoked: set[int] = set()
        #: How many keys the last look at etcd said this holder should hold (None: no look yet).
        self._target: int | None = None

    # --- subclass hooks -------------------------------------------------------------------

    def _wanted(self, snapshot: dict[bytes, KeyState]) -> tuple[int, list[str]]:
        """How many keys to hold now, and every key name this holder manages, best first."""
        raise NotImplementedError

    def _announce(self, session: LeaseSession, snapshot: dict[bytes, KeyState]) -> None:
        """Write keys that live and die with the session (shard membership); none by default."""

    def _changed(self) -> None:
        """Called in the loop thread each time the held set changed."""
        raise NotImplementedError

    # --- state for other threads ----------------------------------------------------------

    def holds_its_share(self) -> bool:
        """Whether this holder validly holds every key it should (readiness: a process whose
        shards are still held by a dead one's lease cannot reconcile their objects yet)."""
        target = self._target
        return target is not None and len(self._valid_held()) >= target

    def _valid_held(self) -> dict[str, Leadership]:
        with self._lock:
            held = dict(self._held)
        return {name: lead for name, lead in held.items() if lead.is_valid()}

    # --- the loop -------------------------------------------------------------------------

    def _loop(self, stop: threading.Event) -> None:
        wakeup = Wakeup(self._clock)
        watch = ChangeWatch(self._client, self._watch_prefix, wakeup)
        watch.start()

        def ring_on_stop() -> None:
            stop.wait()
            wakeup.wake()

        threading.Thread(target=ring_on_stop, name="leader-stop", daemon=True).start()
        try:
            while not stop.is_set():
                session = self._open(stop, wakeup)
                if session is None:
                    return
                try:
                    self._serve(session, stop, wakeup)
                finally:
                    self._remove(list(self._held), "session ended")
                    if not session.close(wait=self._renew_every):
                        self._unrevoked.add(session.lease_id)
        finally:
            watch.stop()

    def _open(self, stop: threading.Event, wakeup: Wakeup) -> LeaseSession | None:
        while not stop.is_set():
            try:
                session = LeaseSession.grant(self._client, self._clock, self._ttl, self._margin)
            except (StoreUnavailableError, grpc.RpcError) as exc:
                log.warning(
                    "cannot grant an election lease", identity=self.identity, error=str(exc)
                )
                wakeup.wait(self._clock.now() + self._retry_every)
                continue
            log.debug(
                "election lease granted", identity=self.identity, lease=f"{session.lease_id:x}"
            )
            self._revoke_unrevoked()
            return session
        return None

    def _revoke_unrevoked(self) -> None:
        """etcd answers again: free the keys our earlier sessions still hold, at once."""
        for lease_id in sorted(self._unrevoked):
            if revoke_lease(self._client, self._clock, lease_id, self._renew_every):
                self._unrevoked.discard(lease_id)
                log.info("earlier election lease revoked", lease=f"{lease_id:x}")

    def _serve(self, session: LeaseSession, stop: threading.Event, wakeup: Wakeup) -> None:
        next_renew = self._clock.now() + self._renew_every
        while not stop.is_set():
            if not session.alive():
                log.warning("election lease deadline passed", identity=self.identity)
                return
            now = self._clock.now()
            try:
                if now >= next_renew:
                    session.renew()
                    next_renew = now + self._renew_every
                self._tick(session)
            except (LeaseExpired, StoreUnavailableError, DeadlinePassed, grpc.RpcError) as exc:
                if _lease_gone(exc):
                    log.warning("election lease lost", identity=self.identity, error=str(exc))
                    return
                # Keep what we hold until the deadline: etcd may answer again in time.
                log.warning("election: etcd call failed", identity=self.identity, error=str(exc))
                next_renew = now + self._retry_every
            wakeup.wait(min(next_renew, session.deadline))

    def _tick(self, session: LeaseSession) -> None:
        snapshot = self._call(session, lambda: read_prefix(self._client, self._watch_prefix))
        self._announce(session, snapshot)
        count, managed = self._wanted(snapshot)
        keys = {name: self._layout.lease_key(name) for name in managed}

        lost = [
            name
            for name, lead in self._held.items()
            if not self._still_ours(snapshot.get(lead.key), lead, session)
        ]
        self._remove(lost, "key deleted or taken over")

        for name, key in keys.items():
            state = snapshot.get(key)
            if state is not None and state.lease == session.lease_id and name not in self._held:
                self._delete(session, key, state.create_revision)

        held_by_preference = [name for name in managed if name in self._held]
        for name in held_by_preference[count:]:
            (released,) = self._remove([name], "rebalancing")
            self._delete(session, released.key, released.create_revision)

        missing = count - len(self._held)
        for name in managed:
            if missing <= 0:
                break
            if keys[name] not in snapshot and self._acquire(session, name, keys[name]):
                missing -= 1
        self._target = count

    @staticmethod
    def _still_ours(state: KeyState | None, lead: Leadership, session: LeaseSession) -> bool:
        return (
            state is not None
            and state.create_revision == lead.create_revision
            and state.lease == session.lease_id
        )

    def _acquire(self, session: LeaseSession, name: str, key: bytes) -> bool:
        response = self._call(
            session,
            lambda: self._client.txn(
                [cmp_create_revision(key, 0)],
                [op_put(key, self.identity.encode(), lease=session.lease_id)],
            ),
        )
        if not response.succeeded:
            return False
        # A txn's writes all carry the revision of its response header.
        lead = Leadership(name, key, self.identity, int(response.header.revision), session)
        with self._lock:
            self._held[name] = lead
        leader_gauge().labels(name=name).set(1)
        log.info(
            "election won", election=name, identity=self.identity, revision=lead.create_revision
        )
        self._changed()
        return True

    def _remove(self, names: list[str], reason: str) -> list[Leadership]:
        """Lose these leaderships now and tell the subclass, before etcd hears of it."""
        if not names:
            return []
        with self._lock:
            removed = [self._held.pop(name) for name in names]
        for lead in removed:
            lead._lose()
            leader_gauge().labels(name=lead.name).set(0)
            log.info("leadership ended", election=lead.name, identity=self.identity, reason=reason)
        self._changed()
        return removed

    def _delete(self, session: LeaseSession, key: bytes, create_revision: int) -> None:
        self._call(
            session,
            lambda: self._client.txn([cmp_create_revision(key, create_revision)], [op_delete(key)]),
        )

    def _call(self, session: LeaseSession, call: Callable[[], T]) -> T:
        return call_before(self._clock, session.deadline, call)


def _lease_gone(exc: Exception) -> bool:
    """Whether etcd answered that our lease no longer exists (expired, or revoked by someone)."""
    if isinstance(exc, grpc.RpcError):
        return bool(exc.code() == grpc.StatusCode.NOT_FOUND)  # "requested lease not found"
    return isinstance(exc, LeaseExpired)
