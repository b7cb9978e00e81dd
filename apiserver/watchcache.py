"""The watch cache: one etcd watch per watched resource plural, shared by every REST watch.

Where it sits: between etcd and ``watch`` (the ``?watch=true`` streams), in the API server
process (Kubernetes' cacher). The first watch of a plural starts its :class:`WatchCache`: ONE
:class:`~controller.store.watch.PrefixWatch` on the plural's prefix (all namespaces) from the
revision current then, and ONE pump thread that decodes each event once and keeps the newest
``capacity`` of them in a ring buffer. A stream :meth:`~WatchCache.subscribe`\\ s from its start
revision: when the buffer covers it, the buffered events from there on are replayed and the
live ones follow, exactly once and in order (the replay and the registration happen under the
lock the pump delivers under); when it does not, ``subscribe`` says so and the stream watches
etcd itself (today's semantics: any non-compacted revision, 410 when compacted). So threads and
etcd watches grow with the watched plurals, never with the clients.

Compaction overtaking the cache's own watch hands every subscriber the ``WatchCompacted`` (its
stream ends with an ERROR 410, its client re-lists) and restarts the cache from the current
revision with an empty buffer.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from api_types.meta import Resource
from api_types.registry import KindInfo
from controller.errors import InvalidObjectError
from controller.store.objects import Store
from controller.store.watch import PrefixWatch, WatchEvent

__all__ = ["CachedEvent", "Delivery", "Subscription", "WatchCache", "WatchCaches", "decode_event"]

#: Events the cache keeps by default (``ApiOptions.watch_cache_size``).
DEFAULT_CAPACITY = 10_000


@dataclass(frozen=True)
class CachedEvent:
    """One etcd event with its objects decoded (None: gone, or not an object of the kind)."""

    event: WatchEvent
    new: Resource | None
    old: Resource | None

    @property
    def mod_revision(self) -> int:
        return self.event.mod_revision


#: What a subscriber is handed: ``(events, revision)`` — the events of one batch and the newest
#: revision all of whose events are in it or before it — or the exception that ended the watch,
#: or ``None`` when the cache stopped.
Delivery = tuple[list[CachedEvent], int] | BaseException | None


def _decode(
    store: Store, info: KindInfo, key: bytes, raw: bytes | None, rev: int
) -> Resource | None:
    parsed = store.layout.parse_object_key(key)
    if parsed is None or raw is None:
        return None
    try:
        obj = store.decode(parsed, raw, rev)
    except InvalidObjectError:
        return None  # a bad direct write is not an object; the normaliser reports it
    return obj if isinstance(obj, info.model) else None


def decode_event(store: Store, info: KindInfo, event: WatchEvent) -> CachedEvent:
    """Decode an event's new and previous objects (done once per event, by the cache)."""
    key, revision = event.key, event.mod_revision
    new = None if event.deleted else _decode(store, info, key, event.value, revision)
    old = _decode(store, info, key, event.prev_value, revision)
    return CachedEvent(event, new, old)


class Subscription:
    """One stream's place in a cache: :meth:`stop` unsubscribes (no delivery follows)."""

    def __init__(self, cache: WatchCache, deliver: Callable[[Delivery], None]) -> None:
        self._cache = cache
        self.deliver = deliver

    def stop(self) -> None:
        self._cache.unsubscribe(self)


class WatchCache:
    """The recent events of one plural (all namespaces), fanned out to subscribers."""

    def __init__(self, store: Store, info: KindInfo, capacity: int = DEFAULT_CAPACITY) -> None:
        self.store = store
        self.info = info
        self.capacity = capacity
        self.prefix = store.layout.kind_prefix(info.plural)
        self._lock = threading.Lock()
        self._buffer: deque[CachedEvent] = deque()
        self._subscribers: set[Subscription] = set()
        #: Every event after this revision is in the buffer (or still to come from etcd).
        self.origin = 0
        #: The newest revision all of whose events are in the buffer.
        self.last_revision = 0
        self._watch: PrefixWatch | None = None
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._restart()
        self._thread = threading.Thread(
            target=self._pump, name=f"api-watch-cache-{self.info.plural}", daemon=True
        )
        self._thread.start()

    def _restart(self) -> None:
        """Watch from the current revision with an empty buffer (subscribers already ended)."""
        revision = self.store.client.current_revision()
        with self._lock:
            self._buffer.clear()
            self.origin = self.last_revision = revision
            self._watch = PrefixWatch(self.store.client, self.prefix, revision + 1, prev_kv=True)
            if self._stopped.is_set():
                self._watch.stop()

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            if self._watch is not None:
                self._watch.stop()

    def _pump(self) -> None:
        while not self._stopped.is_set():
            watch = self._watch
            assert watch is not None
            try:
                for batch in watch:
                    self._publish([decode_event(self.store, self.info, e) for e in batch], watch)
                break  # stopped
            except Exception as exc:  # compacted, etcd gone, or a bug: never leave streams hanging
                self._end_all(exc)
            # Restart from the current revision (streams wanting older ones fall back meanwhile).
            while not self._stopped.wait(0.05):
                try:
                    self._restart()
                    break
                except Exception:  # etcd unreachable: try again
                    if self._stopped.wait(1.0):
                        break
        self._end_all(None)

    def _publish(self, events: list[CachedEvent], watch: PrefixWatch) -> None:
        with self._lock:
            self._buffer.extend(events)
            while len(self._buffer) > self.capacity:
                self.origin = self._buffer.popleft().mod_revision
            self.last_revision = watch.last_revision
            for subscriber in list(self._subscribers):
                self._send(subscriber, (events, self.last_revision))

    def _send(self, subscriber: Subscription, item: Delivery) -> None:
        """Hand over (lock held); a subscriber whose event loop has closed is dropped."""
        try:
            subscriber.deliver(item)
        except RuntimeError:
            self._subscribers.discard(subscriber)

    def _end_all(self, item: BaseException | None) -> None:
        with self._lock:
            subscribers, self._subscribers = self._subscribers, set()
            for subscriber in subscribers:
                self._send(subscriber, item)

    # --- subscribers ----------------------------------------------------------------------

    def subscribe(
        self, start_revision: int, deliver: Callable[[Delivery], None]
    ) -> Subscription | None:
        """Replay the buffered events from ``start_revision`` on and deliver the live ones
        after them; None when the buffer does not reach back that far (or the cache stopped).
        The caller still drops live events older than ``start_revision``: the cache may not
        have caught up with a revision the client already saw."""
        with self._lock:
            if self._stopped.is_set() or start_revision - 1 < self.origin:
                return None
            subscription = Subscription(self, deliver)
            replay = [e for e in self._buffer if e.mod_revision >= start_revision]
            deliver((replay, self.last_revision))
            self._subscribers.add(subscription)
            return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(subscription)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)


class WatchCaches:
    """The API server's watch caches, one per plural, each started by its first watch."""

    def __init__(self, store: Store, capacity: int = DEFAULT_CAPACITY) -> None:
        self.store = store
        self.capacity = capacity
        self._lock = threading.Lock()
        self._caches: dict[str, WatchCache] = {}
        self._stopped = False

    def get(self, info: KindInfo) -> WatchCache | None:
        """The plural's cache, started now if it is the first watch (None once stopped)."""
        with self._lock:
            if self._stopped:
                return None
            cache = self._caches.get(info.plural)
            if cache is None:
                cache = WatchCache(self.store, info, self.capacity)
                cache.start()
                self._caches[info.plural] = cache
            return cache

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            caches = list(self._caches.values())
        for cache in caches:
            cache.stop()
