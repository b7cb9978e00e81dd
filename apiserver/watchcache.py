"""The watch cache: one etcd watch per watched resource plural, shared by every REST watch.

Where it sits: between etcd and ``watch`` (the ``?watch=true`` streams) and ``cachedreads``
(lists and gets that may be served from memory), in the API server process (Kubernetes'
cacher). The first watch or read of a plural starts its :class:`WatchCache`: ONE pump thread
that lists the plural (all namespaces) at a revision, then runs ONE
:class:`~controller.store.watch.PrefixWatch` on its prefix from the next revision, decodes each
event's new value once (its previous object is the copy's), applies it to the cache's copy of
the objects and keeps the newest ``capacity``
events in a ring buffer. The copy is the plural's state at :attr:`WatchCache.last_revision`;
it survives an etcd outage (the watch resumes when etcd answers), which is what lets reads go
on while etcd is down. A stream :meth:`~WatchCache.subscribe`\\ s from its start
revision: when the buffer covers it, the buffered events from there on are replayed and the
live ones follow, exactly once and in order (the replay and the registration happen under the
lock the pump delivers under); when it does not, ``subscribe`` says so and the stream watches
etcd itself (today's semantics: any non-compacted revision, 410 when compacted). So threads and
etcd watches grow with the watched plurals, never with the clients.

The objects, as the informer's, are shrunk by ``controller.compact`` as they are decoded (they
are read-only here: streams and reads only serialise them), which halves what each costs.

Compaction overtaking the cache's own watch hands every subscriber the ``WatchCompacted`` (its
stream ends with an ERROR 410, its client re-lists) and restarts the cache: a new list, an
empty buffer (the old copy keeps answering reads until the new one is complete).
"""

from __future__ import annotations

import asyncio
import threading
from asyncio import AbstractEventLoop
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import Gauge

from api_types.meta import Resource
from api_types.registry import KindInfo
from controller.compact import compact
from controller.errors import InvalidObjectError
from controller.labels import LabelSelector
from controller.store.objects import Store
from controller.store.results import InvalidValue, ObjectList
from controller.store.watch import PrefixWatch, WatchEvent

__all__ = [
    "CachedEvent",
    "Delivery",
    "Entry",
    "Subscription",
    "WatchCache",
    "WatchCaches",
    "decode_event",
]

#: Events the cache keeps by default (``ApiOptions.watch_cache_size``).
DEFAULT_CAPACITY = 10_000

_REVISION = Gauge(
    "apiserver_watch_cache_revision",
    "The revision a plural's watch cache holds every change up to (absent: not listed yet).",
    ["resource"],
)
_OBJECTS = Gauge(
    "apiserver_watch_cache_objects", "Objects in a plural's watch cache.", ["resource"]
)

#: What the cache holds under a key: the object, or the stored value that does not decode
#: (a bad direct write; lists show it as an invalid row, as they do when reading etcd).
Entry = Resource | InvalidValue


@dataclass(frozen=True)
class CachedEvent:
    """One etcd event with its objects decoded (None: gone, or not an object of the kind);
    ``invalid`` is the new value when it does not decode."""

    event: WatchEvent
    new: Resource | None
    old: Resource | None
    invalid: InvalidValue | None = None
    #: The event's lines as streams send them, encoded once for every stream that sends the
    #: same one (``watch`` fills it on the event loop): (type, of the new object, data hidden).
    encoded: dict[tuple[str, bool, bool], bytes] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def mod_revision(self) -> int:
        return self.event.mod_revision


#: What a subscriber is handed: ``(events, revision)`` — the events of one batch and the newest
#: revision all of whose events are in it or before it — or the exception that ended the watch,
#: or ``None`` when the cache stopped.
Delivery = tuple[list[CachedEvent], int] | BaseException | None


def _decode(store: Store, info: KindInfo, key: bytes, raw: bytes | None, rev: int) -> Entry | None:
    parsed = store.layout.parse_object_key(key)
    if parsed is None or raw is None:
        return None
    try:
        # Not remembered as the key's base: the API server's writes read their own base, and
        # an event's previous value is not the key's value at ``rev``.
        obj = store.decode(parsed, raw, rev, remember=False)
    except InvalidObjectError as exc:
        return InvalidValue(parsed, rev, exc.causes)
    if not isinstance(obj, info.model):
        return None
    compact(obj)  # held by the cache and its events, read-only
    return obj


def decode_event(store: Store, info: KindInfo, event: WatchEvent) -> CachedEvent:
    """Decode an event's new and previous objects (a stream's own watch, which holds no copy
    of the previous one; the cache decodes only the new: :meth:`WatchCache._cached_events`)."""
    old = _decode(store, info, event.key, event.prev_value, event.mod_revision)
    return _event(store, info, event, old if isinstance(old, Resource) else None)


def _event(store: Store, info: KindInfo, event: WatchEvent, old: Resource | None) -> CachedEvent:
    revision = event.mod_revision
    new = None if event.deleted else _decode(store, info, event.key, event.value, revision)
    return CachedEvent(
        event,
        new if isinstance(new, Resource) else None,
        old,
        new if isinstance(new, InvalidValue) else None,
    )


def _as_of(previous: Entry | None, revision: int) -> Resource | None:
    """The previous object as an event at ``revision`` shows it: with that resourceVersion, as
    etcd's previous value decoded at the event's revision is (a DELETED carries the revision of
    the delete); a shallow copy, the cached object stays as it is."""
    if not isinstance(previous, Resource):
        return None
    metadata = previous.metadata.model_copy(update={"resource_version": str(revision)})
    return previous.model_copy(update={"metadata": metadata})


class Subscription:
    """One stream's place in a cache: :meth:`stop` unsubscribes (no delivery follows).
    ``offer`` is called on ``loop``, the event loop the stream runs on."""

    def __init__(
        self, cache: WatchCache, offer: Callable[[Delivery], None], loop: AbstractEventLoop
    ) -> None:
        self._cache = cache
        self.offer = offer
        self.loop = loop

    def stop(self) -> None:
        self._cache.unsubscribe(self)


def _fan_out(subscribers: list[Subscription], item: Delivery) -> None:
    """On an event loop: hand ``item`` to each of its streams."""
    for subscriber in subscribers:
        subscriber.offer(item)


class WatchCache:
    """The objects and recent events of one plural (all namespaces), fanned out to
    subscribers; :meth:`ready` once its first list is in."""

    def __init__(self, store: Store, info: KindInfo, capacity: int = DEFAULT_CAPACITY) -> None:
        self.store = store
        self.info = info
        self.capacity = capacity
        self.prefix = store.layout.kind_prefix(info.plural)
        self._lock = threading.Lock()
        self._progress = threading.Condition(self._lock)
        self._buffer: deque[CachedEvent] = deque()
        self._subscribers: set[Subscription] = set()
        #: The plural's objects at ``last_revision``, by etcd key.
        self._objects: dict[bytes, Entry] = {}
        #: Every event after this revision is in the buffer (or still to come from etcd).
        self.origin = 0
        #: The newest revision all of whose events are in the buffer and the objects.
        self.last_revision = 0
        self._ready = threading.Event()
        self._watch: PrefixWatch | None = None
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the pump; it lists first (:meth:`wait_ready` waits for that)."""
        self._thread = threading.Thread(
            target=self._pump, name=f"api-watch-cache-{self.info.plural}", daemon=True
        )
        self._thread.start()

    def ready(self) -> bool:
        return self._ready.is_set()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def _restart(self) -> PrefixWatch:
        """List the plural, then watch from the list's revision on with an empty buffer
        (subscribers already ended)."""
        objects: dict[bytes, Entry] = {}
        revision = 0
        # A page at a time, all at the first page's revision: the raw values of the whole
        # plural are never held beside its models.
        for page, pinned, _ in self.store.client.range_pages(self.prefix):
            revision = pinned
            for kv in page:
                key, rev = bytes(kv.key), int(kv.mod_revision)
                entry = _decode(self.store, self.info, key, bytes(kv.value), rev)
                if entry is not None:
                    objects[key] = entry
        with self._lock:
            self._buffer.clear()
            self._objects = objects
            self.origin = self.last_revision = revision
            # Without etcd's previous values: the copy holds them (``_cached_events``).
            self._watch = PrefixWatch(self.store.client, self.prefix, revision + 1)
            if self._stopped.is_set():
                self._watch.stop()
            self._progress.notify_all()
            self._measure()
        self._ready.set()
        return self._watch

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            if self._watch is not None:
                self._watch.stop()

    def _pump(self) -> None:
        while not self._stopped.is_set():
            try:
                watch = self._restart()
            except Exception:  # etcd unreachable: try again (reads keep the old copy)
                if self._stopped.wait(1.0):
                    break
                continue
            try:
                for batch in watch:
                    self._publish(self._cached_events(batch), watch)
                break  # stopped
            except Exception as exc:  # compacted, history lost, or a bug: never leave streams
                self._end_all(exc)
            self._stopped.wait(0.05)
        self._end_all(None)

    def _cached_events(self, batch: list[WatchEvent]) -> list[CachedEvent]:
        """A batch decoded: each event's previous object is the one the cache holds (or an
        earlier event of the batch made), the value etcd sends as previous, so only the new
        value is decoded — one validation per event instead of two."""
        made: dict[bytes, Entry | None] = {}
        events = []
        for event in batch:
            if event.key in made:
                previous = made[event.key]
            else:
                with self._lock:
                    previous = self._objects.get(event.key)
            cached = _event(self.store, self.info, event, _as_of(previous, event.mod_revision))
            made[event.key] = cached.new if cached.new is not None else cached.invalid
            events.append(cached)
        return events

    def _publish(self, events: list[CachedEvent], watch: PrefixWatch) -> None:
        with self._lock:
            self._buffer.extend(events)
            while len(self._buffer) > self.capacity:
                self.origin = self._buffer.popleft().mod_revision
            for cached in events:
                entry = cached.new or cached.invalid
                if entry is None:
                    self._objects.pop(cached.event.key, None)
                else:
                    self._objects[cached.event.key] = entry
            self.last_revision = watch.last_revision
            self._progress.notify_all()
            self._measure()
            self._send(self._subscribers, (events, self.last_revision))

    def _measure(self) -> None:
        """The gauges (lock held)."""
        _REVISION.labels(self.info.plural).set(self.last_revision)
        _OBJECTS.labels(self.info.plural).set(len(self._objects))

    def _send(self, subscribers: set[Subscription], item: Delivery) -> None:
        """Hand over (lock held): one wake-up per event loop, however many streams it runs
        (a thousand watchers cost one cross-thread call, not a thousand); the subscribers of
        a loop that has closed are dropped."""
        by_loop: dict[AbstractEventLoop, list[Subscription]] = {}
        for subscriber in subscribers:
            by_loop.setdefault(subscriber.loop, []).append(subscriber)
        for loop, streams in by_loop.items():
            try:
                loop.call_soon_threadsafe(_fan_out, streams, item)
            except RuntimeError:
                self._subscribers.difference_update(streams)

    def _end_all(self, item: BaseException | None) -> None:
        with self._lock:
            subscribers, self._subscribers = self._subscribers, set()
            self._send(subscribers, item)

    # --- reads ----------------------------------------------------------------------------

    def wait_for(self, revision: int, timeout: float) -> bool:
        """Wait until the cache holds every change up to ``revision`` (False: not in time)."""
        with self._progress:
            return self._progress.wait_for(
                lambda: self._ready.is_set() and self.last_revision >= revision, timeout
            )

    def list(
        self,
        namespace: str | None,
        selector: LabelSelector | None,
        *,
        limit: int = 0,
        continue_after: bytes | None = None,
    ) -> ObjectList[Resource]:
        """What :meth:`Store.list <controller.store.objects.Store.list>` answers, from memory:
        the objects in key order at ``last_revision``, one page when ``limit`` > 0."""
        prefix = self.store.layout.kind_prefix(self.info.plural, namespace)
        with self._lock:
            revision = self.last_revision
            keys = sorted(
                key
                for key in self._objects
                if key.startswith(prefix) and (continue_after is None or key > continue_after)
            )
            entries = [self._objects[key] for key in keys]
        items: list[Resource] = []
        invalid: list[InvalidValue] = []
        for index, entry in enumerate(entries):
            if isinstance(entry, InvalidValue):
                invalid.append(entry)
                continue
            if selector is None or selector.matches(entry.metadata.labels):
                items.append(entry)
            if limit and len(items) >= limit:
                more = keys[index] if index < len(entries) - 1 else None
                return ObjectList(items, revision, invalid, more)
        return ObjectList(items, revision, invalid, None)

    def get(self, key: bytes) -> Entry | None:
        """The entry under an etcd key (None: no such object)."""
        with self._lock:
            return self._objects.get(key)

    # --- subscribers ----------------------------------------------------------------------

    def subscribe(
        self, start_revision: int, offer: Callable[[Delivery], None]
    ) -> Subscription | None:
        """Replay the buffered events from ``start_revision`` on and offer the live ones after
        them, on the calling stream's event loop; None when the buffer does not reach back
        that far (or the cache stopped, or has not listed yet).
        The caller still drops live events older than ``start_revision``: the cache may not
        have caught up with a revision the client already saw."""
        with self._lock:
            if (
                self._stopped.is_set()
                or not self._ready.is_set()
                or start_revision - 1 < self.origin
            ):
                return None
            subscription = Subscription(self, offer, asyncio.get_running_loop())
            replay = [e for e in self._buffer if e.mod_revision >= start_revision]
            offer((replay, self.last_revision))
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
    """The API server's watch caches, one per plural, each started by its first watch or
    read."""

    def __init__(self, store: Store, capacity: int = DEFAULT_CAPACITY) -> None:
        self.store = store
        self.capacity = capacity
        self._lock = threading.Lock()
        self._caches: dict[str, WatchCache] = {}
        self._stopped = False

    def get(self, info: KindInfo) -> WatchCache | None:
        """The plural's cache, started now if this is its first use (None once stopped); it
        serves once :meth:`WatchCache.ready`."""
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
