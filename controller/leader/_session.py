"""Lease sessions: one etcd lease, kept alive, and the local deadline that fences its holder.

Where it sits: under leader election and sharding (``controller.leader``), which the manager
uses to decide whether its workers may reconcile at all. Everything here talks to etcd only
through ``controller.store.etcd``.

The fencing rule lives here. etcd counts a lease's TTL from the moment it *processes* a grant
or keep-alive, which is after the moment we *sent* it; so the server cannot expire the lease
before ``sent + ttl``. The session therefore treats its keys as ours only until
``sent + ttl - safety_margin`` of the last successful request, whatever etcd says or fails to
say afterwards. The margin absorbs clock-rate differences and scheduling delays. Every etcd
call made on behalf of a session is bounded by that deadline (:func:`call_before`), because
the client itself retries an unreachable etcd for several seconds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import grpc
import structlog

from controller.clock import Clock
from controller.errors import SkybrokerError, StoreUnavailableError
from controller.store.etcd import EtcdClient, prefix_range_end
from controller.store.watch import PrefixWatch, WatchCompacted

__all__ = [
    "ChangeWatch",
    "DeadlinePassed",
    "KeyState",
    "LeaseExpired",
    "LeaseSession",
    "Wakeup",
    "call_before",
    "read_prefix",
    "revoke_lease",
]

log = structlog.get_logger(__name__)

T = TypeVar("T")


class DeadlinePassed(SkybrokerError):
    """The session's local deadline came before etcd answered; the session is over."""


class LeaseExpired(SkybrokerError):
    """etcd answered a keep-alive saying the lease no longer exists."""


@dataclass(frozen=True)
class KeyState:
    """The typed part of an etcd ``KeyValue`` that elections look at."""

    value: bytes
    create_revision: int
    mod_revision: int
    lease: int


def read_prefix(client: EtcdClient, prefix: bytes) -> dict[bytes, KeyState]:
    """Every key under ``prefix`` (election keys are few and small: one page is enough)."""
    response = client.range(prefix, prefix_range_end(prefix))
    return {
        bytes(kv.key): KeyState(
            value=bytes(kv.value),
            create_revision=int(kv.create_revision),
            mod_revision=int(kv.mod_revision),
            lease=int(kv.lease),
        )
        for kv in response.kvs
    }


class _Outcome(Generic[T]):
    """What a call running in another thread produced, once it has."""

    def __init__(self) -> None:
        self.values: list[T] = []
        self.error: Exception | None = None

    @property
    def done(self) -> bool:
        return bool(self.values) or self.error is not None


def call_before(clock: Clock, deadline: float, call: Callable[[], T]) -> T:
    """Run ``call`` but stop waiting for it (``DeadlinePassed``) when ``clock`` reaches deadline.

    The call runs in a daemon thread that is abandoned if late: a holder must give up its
    keys at its deadline even while the client is still retrying an etcd that went away.
    """
    if clock.now() >= deadline:
        raise DeadlinePassed(f"the deadline {deadline:.3f} has passed")
    outcome: _Outcome[T] = _Outcome()
    finished = threading.Condition()

    def target() -> None:
        try:
            value = call()
        except Exception as exc:  # handed over to the waiting thread, which re-raises it
            with finished:
                outcome.error = exc
                finished.notify_all()
            return
        with finished:
            outcome.values.append(value)
            finished.notify_all()

    threading.Thread(target=target, name="leader-etcd-call", daemon=True).start()
    with finished:
        while not outcome.done:
            if not clock.wait_until(finished, deadline) and not outcome.done:
                raise DeadlinePassed(f"no answer from etcd before the deadline {deadline:.3f}")
    if outcome.error is not None:
        raise outcome.error
    return outcome.values[0]


class LeaseSession:
    """One etcd lease and the local deadline until which the keys attached to it are ours.

    The run loop of an elector renews it; worker threads read :meth:`alive` (a float read,
    atomic under the GIL, so no lock).
    """

    def __init__(
        self, client: EtcdClient, clock: Clock, ttl: int, margin: float, lease_id: int, sent: float
    ) -> None:
        self._client = client
        self._clock = clock
        self._ttl = ttl
        self._margin = margin
        self.lease_id = lease_id
        self._deadline = sent + ttl - margin
        self._closed = False

    @classmethod
    def grant(cls, client: EtcdClient, clock: Clock, ttl: int, margin: float) -> LeaseSession:
        """Grant a new lease (raises ``StoreUnavailableError`` if etcd cannot be reached)."""
        sent = clock.now()
        lease_id = client.lease_grant(ttl)
        return cls(client, clock, ttl, margin, lease_id, sent)

    @property
    def deadline(self) -> float:
        """Clock time at which the keys stop being ours unless a renewal succeeds first."""
        return self._deadline

    def alive(self) -> bool:
        return not self._closed and self._clock.now() < self._deadline

    def renew(self) -> None:
        """One keep-alive, bounded by the deadline; moves the deadline on success.

        Raises ``LeaseExpired`` if etcd says the lease is gone, ``DeadlinePassed`` or
        ``StoreUnavailableError`` if it did not answer (the caller retries until the deadline).
        """
        sent = self._clock.now()
        remaining = call_before(
            self._clock, self._deadline, lambda: self._client.lease_keepalive_once(self.lease_id)
        )
        if remaining <= 0:
            self._deadline = float("-inf")
            raise LeaseExpired(f"lease {self.lease_id:x} is gone")
        # A server that grants more than we asked for expires later: counting our own TTL
        # keeps the local deadline on the safe side.
        self._deadline = max(self._deadline, sent + min(self._ttl, remaining) - self._margin)

    def close(self, wait: float) -> bool:
        """End the session and revoke the lease so its keys vanish now, not at expiry.

        Waits at most ``wait`` seconds for etcd. ``False`` if etcd did not answer: the lease
        then lives on (etcd even renews every lease when it restarts), and the caller revokes
        it with :func:`revoke_lease` once etcd answers again.
        """
        self._closed = True
        revoked = revoke_lease(self._client, self._clock, self.lease_id, wait)
        if not revoked:
            log.warning("lease not revoked yet; will retry", lease=f"{self.lease_id:x}")
        return revoked


def revoke_lease(client: EtcdClient, clock: Clock, lease_id: int, wait: float) -> bool:
    """Revoke ``lease_id`` within ``wait`` seconds; ``True`` once it is gone (or was already)."""
    try:
        call_before(clock, clock.now() + wait, lambda: client.lease_revoke(lease_id))
    except (StoreUnavailableError, DeadlinePassed, grpc.RpcError):
        return False
    return True


class Wakeup:
    """A one-bit doorbell on the injected clock: ``wake()`` ends the current or next ``wait``."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._condition = threading.Condition()
        self._rung = False

    def wake(self) -> None:
        with self._condition:
            self._rung = True
            self._condition.notify_all()

    def wait(self, deadline: float) -> None:
        """Return when woken or when the clock reaches ``deadline``, whichever comes first."""
        with self._condition:
            while not self._rung:
                if not self._clock.wait_until(self._condition, deadline):
                    break
            self._rung = False


class ChangeWatch:
    """Rings a :class:`Wakeup` whenever a key under a prefix changes.

    Only a hint that makes hand-over immediate (a released key is taken as soon as etcd
    announces its deletion): the elector also looks at etcd on every renewal, so a watch that
    lags or reconnects costs latency, never correctness.
    """

    def __init__(self, client: EtcdClient, prefix: bytes, wakeup: Wakeup) -> None:
        self._client = client
        self._prefix = prefix
        self._wakeup = wakeup
        self._lock = threading.Lock()
        self._stopped = False
        self._watch: PrefixWatch | None = None
        self._thread = threading.Thread(target=self._run, name="leader-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            watch = self._watch
        if watch is not None:
            watch.stop()

    def _run(self) -> None:
        while True:
            # Revision 0 = from now: past changes are already in the snapshot of the next tick.
            watch = PrefixWatch(self._client, self._prefix, 0)
            with self._lock:
                if self._stopped:
                    return
                self._watch = watch
            try:
                for batch in watch:
                    if batch:  # an empty batch is a progress notification: nothing changed
                        self._wakeup.wake()
                return  # the watch ends only when stopped
            except WatchCompacted:
                self._wakeup.wake()
