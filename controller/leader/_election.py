"""Leader election: one process of many runs the controllers (DESIGN §4).

Where it sits: the manager runs :meth:`LeaderElector.run` in a thread; ``on_started`` starts
the controllers' workers with the :class:`~controller.leader.Leadership`, which the workers
check before each reconcile and whose fence goes into their writes; ``on_stopped`` stops them.
The election key is ``{prefix}/leases/{name}``, its value the holder's identity, attached to
the holder's lease.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from controller.clock import Clock
from controller.leader._holder import KeyHolder, Leadership
from controller.leader._session import KeyState
from controller.store.etcd import EtcdClient
from controller.store.keys import KeyLayout

__all__ = ["LeaderElector"]


class LeaderElector(KeyHolder):
    """Campaigns for one election key until stopped; leads whenever it holds it."""

    def __init__(
        self,
        client: EtcdClient,
        layout: KeyLayout,
        name: str,
        identity: str,
        *,
        ttl: int = 15,
        renew_every: float = 5.0,
        safety_margin: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(
            client,
            layout,
            identity,
            watch_prefix=layout.lease_key(name),
            ttl=ttl,
            renew_every=renew_every,
            safety_margin=safety_margin,
            clock=clock,
        )
        self.name = name
        self._leading: Leadership | None = None
        self._on_started: Callable[[Leadership], None] = _ignore_started
        self._on_stopped: Callable[[], None] = _ignore_stopped

    def run(
        self,
        on_started: Callable[[Leadership], None],
        on_stopped: Callable[[], None],
        stop: threading.Event,
    ) -> None:
        """Campaign, lead, lose, campaign again… until ``stop`` is set; blocks (use a thread).

        ``on_started(leadership)`` runs when the key is won; ``on_stopped()`` once per tenure,
        after ``leadership.is_valid()`` has turned false and, on stop, before the lease is
        revoked (so if it waits for in-flight reconciles, the successor starts after them).
        Both run in this loop's thread and must return quickly: a slow callback delays
        renewals (safely: the deadline still ends the tenure in time).
        """
        self._on_started, self._on_stopped = on_started, on_stopped
        self._loop(stop)

    def leadership(self) -> Leadership | None:
        """The current tenure if it is still valid, else None."""
        return self._valid_held().get(self.name)

    def _wanted(self, snapshot: dict[bytes, KeyState]) -> tuple[int, list[str]]:
        return 1, [self.name]

    def _changed(self) -> None:
        current = self._held.get(self.name)
        if current is not None and self._leading is None:
            self._leading = current
            self._on_started(current)
        elif current is None and self._leading is not None:
            self._leading = None
            self._on_stopped()


def _ignore_started(leadership: Leadership) -> None:
    """Placeholder until :meth:`LeaderElector.run` installs the caller's callback."""


def _ignore_stopped() -> None:
    """Placeholder until :meth:`LeaderElector.run` installs the caller's callback."""
