"""Long-polls waiting for a BootConfig to change: asyncio futures woken by the informer.

Where it sits: between the API server's BootConfig informer (``controller.cache.Informer``,
started with its other caches) and ``routes``' long-poll. A waiting
``GET /rendezvous/v1/configs/{uuid}?afterRevision=N`` holds no thread and no etcd watch: it
awaits a future registered here under the BootConfig's key. The informer's thread calls
:meth:`RevisionWaiters.changed` when a BootConfig's ``status.revision`` moves or the
BootConfig goes, which hands each waiter's wake-up to its own event loop with
``loop.call_soon_threadsafe``. A woken poll re-reads the cache and decides (answer, 404, or
wait again), so a wake-up carries no data and a spurious one is harmless.
"""

from __future__ import annotations

import asyncio
import threading

from api_types.bootconfigs import BootConfig
from controller.cache import Informer
from controller.store.keys import ObjectKey

__all__ = ["RevisionWaiters", "boot_config_key"]


def boot_config_key(namespace: str, name: str) -> ObjectKey:
    return ObjectKey(BootConfig.PLURAL, namespace, name)


def _key_of(obj: BootConfig) -> ObjectKey:
    return boot_config_key(obj.metadata.namespace or "", obj.metadata.name)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class RevisionWaiters:
    """Futures by BootConfig key; thread-safe (registered on the loop, woken from the
    informer's thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[ObjectKey, set[asyncio.Future[None]]] = {}

    def follow(self, informer: Informer[BootConfig]) -> None:
        """Be woken by ``informer``: a new BootConfig (a poll may have found it in etcd before
        the cache), a revision that moved, one deleted."""

        def updated(old: BootConfig, new: BootConfig) -> None:
            if old.status.revision != new.status.revision:
                self.changed(_key_of(new))

        informer.add_handlers(
            on_add=lambda obj: self.changed(_key_of(obj)),
            on_update=updated,
            on_delete=lambda obj: self.changed(_key_of(obj)),
        )

    def wait(self, key: ObjectKey) -> asyncio.Future[None]:
        """A future done at the next change of ``key`` (on the running loop; register it
        before looking at the cache, so a change in between is not missed)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._waiting.setdefault(key, set()).add(future)
        return future

    def discard(self, key: ObjectKey, future: asyncio.Future[None]) -> None:
        """Forget a future that is done or no longer awaited."""
        with self._lock:
            futures = self._waiting.get(key)
            if futures is not None:
                futures.discard(future)
                if not futures:
                    del self._waiting[key]

    def changed(self, key: ObjectKey) -> None:
        """Wake every poll waiting on ``key`` (any thread)."""
        with self._lock:
            futures = self._waiting.pop(key, set())
        for future in futures:
            try:
                future.get_loop().call_soon_threadsafe(_wake, future)
            except RuntimeError:  # its loop has closed: nobody is waiting any more
                continue

    def wake_all(self) -> None:
        """Wake every waiting poll (the API server is shutting down)."""
        with self._lock:
            keys = list(self._waiting)
        for key in keys:
            self.changed(key)

    def waiting(self) -> int:
        """How many polls are waiting now."""
        with self._lock:
            return sum(len(futures) for futures in self._waiting.values())
