"""``?watch=true``: newline-delimited JSON events, resumable from any resourceVersion.

Where it sits: the list routes hand a watch request here after authorization. The stream is
``{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": …}`` per line:

- without a resourceVersion (or ``0``), the current objects come first as ADDED, then changes
  (unset: listed from etcd, or from the cache while etcd is unreachable; ``0``: from the
  cache — see ``cachedreads``);
- with ``resourceVersion=N``, every change after revision N, in order, exactly once; a client
  that lost its connection re-watches from the last resourceVersion it saw and misses nothing;
- a compacted N is refused with 410 before the stream starts; compaction overtaking a running
  stream ends it with an ERROR event carrying a 410 ``Status`` (the client re-lists);
- a BOOKMARK (an object carrying only ``metadata.resourceVersion``) is sent after every quiet
  ``bookmark_interval``; its revision is the newest one whose events were all sent, so it is
  always a safe place to resume from;
- with a label or field selector, an object that stops matching is sent as DELETED, one that
  starts matching as ADDED (Kubernetes' filtered-watch semantics).

Each stream subscribes to its plural's :class:`~apiserver.watchcache.WatchCache` (one etcd
watch and one thread per plural, each event decoded once) and filters what it is handed: its
namespace, its selection, what its user may see. A start revision older than the cache's buffer
reaches falls back to a :class:`~controller.store.watch.PrefixWatch` of the stream's own, on a
daemon thread (rare: a client resuming from far back). No thread-pool thread is held while a
client is connected, so idle watchers cost no request capacity. When the server shuts down,
:meth:`WatchRequest.stop` ends every stream at once (its client re-watches, from its last
revision, wherever the API is still served).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc

from api_types.meta import API_VERSION, Resource
from apiserver.auth import User
from apiserver.cachedreads import parse_resource_version
from apiserver.handlers import Resources, Selection, parse_selection, seen_as
from apiserver.paths import Target
from apiserver.status import ApiError, error_from, status_object
from apiserver.watchcache import CachedEvent, Delivery, WatchCache, WatchCaches, decode_event
from controller.store.codec import encode_value
from controller.store.etcd import prefix_range_end
from controller.store.watch import PrefixWatch, WatchCompacted

__all__ = ["WatchRequest", "open_watch"]

_QUEUE_LIMIT = 10_000
#: How long a watch waits for its plural's cache to list (a larger plural falls back to a
#: watch of its own meanwhile; nothing is lost either way).
_CACHE_READY_SECONDS = 5.0
_END = object()
#: An event loop may run a timer this much before its time (its clock's resolution).
_TIMER_SLACK = 0.01


def _line(event_type: str, obj: dict[str, Any]) -> bytes:
    """One event of the stream: the answers' own JSON (``codec.encode_value``) and a newline."""
    return encode_value({"type": event_type, "object": obj}) + b"\n"


class _Source(Protocol):
    """Where a stream's events come from: a cache subscription or its own etcd watch."""

    def stop(self) -> None: ...


class _OwnWatch:
    """The fallback: the stream's own etcd watch and pump thread (a start revision older than
    the cache's buffer reaches)."""

    def __init__(self, request: WatchRequest, deliver: Callable[[Delivery], None]) -> None:
        resources, info = request.resources, request.target.info
        self._watch = watch = PrefixWatch(
            resources.store.client, request.prefix, request.start_revision, prev_kv=True
        )

        def pump() -> None:
            try:
                try:
                    for batch in watch:
                        events = [decode_event(resources.store, info, e) for e in batch]
                        deliver((events, watch.last_revision))
                except (WatchCompacted, grpc.RpcError) as exc:
                    deliver(exc)
                    return
                deliver(None)
            except RuntimeError:
                return  # the event loop closed under us: the server has stopped

        threading.Thread(target=pump, name="api-watch", daemon=True).start()

    def stop(self) -> None:
        self._watch.stop()


@dataclass(eq=False)  # identity: open streams are kept in a set
class WatchRequest:
    """One positioned watch (authorized, its initial objects listed): :meth:`stream` yields its
    lines, :meth:`stop` ends it."""

    resources: Resources
    user: User
    target: Target
    selection: Selection
    prefix: bytes
    start_revision: int
    initial: list[Resource]
    bookmark_interval: float
    cache: WatchCache | None = None
    _stopping: bool = field(default=False, init=False)
    _source: _Source | None = field(default=None, init=False)
    _end: Callable[[], None] | None = field(default=None, init=False)

    def stop(self) -> None:
        """End the stream now (called on the event loop, like :meth:`stream`)."""
        self._stopping = True
        if self._source is not None:
            self._source.stop()
        if self._end is not None:
            self._end()

    def _matches(self, obj: Resource | None) -> bool:
        return obj is not None and self.selection.matches(obj)

    def _lines(self, cached: CachedEvent) -> bytes:
        # The cache watches every namespace and may be behind a revision the client saw.
        event = cached.event
        if event.mod_revision < self.start_revision or not event.key.startswith(self.prefix):
            return b""
        new, old = cached.new, cached.old
        if self._matches(new):
            entered = not self.selection.empty and not self._matches(old)
            created = event.create_revision == event.mod_revision or entered
            assert new is not None
            return self._encoded(cached, "ADDED" if created else "MODIFIED", new)
        if (event.deleted or not self.selection.empty) and self._matches(old):
            assert old is not None
            return self._encoded(cached, "DELETED", old)
        return b""

    def _encoded(self, cached: CachedEvent, event_type: str, obj: Resource) -> bytes:
        """The line, encoded once per event for all the streams that send the same one."""
        hide = self.resources.hides_data(self.user, obj)
        key = (event_type, obj is cached.new, hide)
        line = cached.encoded.get(key)
        if line is None:
            line = cached.encoded[key] = _line(event_type, seen_as(obj, hide))
        return line

    def _bookmark(self, revision: int) -> bytes:
        obj = {
            "apiVersion": API_VERSION,
            "kind": self.target.info.kind,
            "metadata": {"resourceVersion": str(revision)},
        }
        return _line("BOOKMARK", obj)

    async def stream(self) -> AsyncGenerator[bytes, None]:
        for obj in self.initial:
            yield _line("ADDED", self.resources.visible(self.user, obj))
        if self._stopping:
            return
        loop = asyncio.get_running_loop()
        inbox = _Inbox(loop, self.bookmark_interval)
        source: _Source | None = None

        def offer(item: Delivery) -> None:
            if len(inbox) >= _QUEUE_LIMIT:
                if source is not None:
                    source.stop()  # a client this far behind re-watches from its last revision
                inbox.put(_END)
            else:
                inbox.put(_END if item is None else item)

        def deliver(item: Delivery) -> None:
            loop.call_soon_threadsafe(offer, item)

        self._end = lambda: inbox.put(_END)
        if self.cache is not None:
            source = self.cache.subscribe(self.start_revision, offer)
        if source is None:
            source = _OwnWatch(self, deliver)
        self._source = source
        sent = self.start_revision - 1
        try:
            while True:
                items = await inbox.take()
                if not items:  # quiet for a whole interval
                    yield self._bookmark(sent)
                    continue
                # Everything queued goes out as one chunk: one socket write, not one per batch.
                lines: list[bytes] = []
                ended = False
                for item in items:
                    if item is _END:
                        ended = True
                        break
                    if isinstance(item, BaseException):
                        error = (
                            ApiError(410, "Gone", str(item))
                            if isinstance(item, WatchCompacted)
                            else error_from(item)
                        )
                        lines.append(_line("ERROR", status_object(error)))
                        ended = True
                        break
                    batch, revision = item
                    lines.extend(self._lines(event) for event in batch)
                    sent = max(sent, revision)
                chunk = b"".join(lines)
                if chunk:
                    yield chunk
                if ended:
                    return
        finally:
            inbox.close()
            source.stop()


class _Inbox:
    """What a stream has been handed and not sent yet, on its event loop.

    Built for many streams on one loop: handing over an item sets one future (the stream's
    task wakes once), and the bookmark timer is one handle per stream that re-arms itself
    when it fires — instead of a task, a timer and two extra loop turns per delivery, which
    is what waiting on ``asyncio.Queue.get`` under ``asyncio.wait_for`` costs (Python 3.11).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, quiet: float) -> None:
        self._loop = loop
        self._quiet = quiet
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None
        self._taken_at = loop.time()
        self._bookmark_due = False
        self._timer = loop.call_at(self._taken_at + quiet, self._tick)

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Any) -> None:
        self._items.append(item)
        self._wake()

    async def take(self) -> list[Any]:
        """Everything handed over so far, waiting for it if nothing is; an empty list when
        the stream was quiet for the whole interval (time for a bookmark)."""
        while not self._items and not self._bookmark_due:
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self._bookmark_due = False
        items, self._items = self._items, []
        self._taken_at = self._loop.time()
        return items

    def close(self) -> None:
        self._timer.cancel()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _tick(self) -> None:
        due = self._taken_at + self._quiet
        if self._loop.time() >= due - _TIMER_SLACK:
            self._bookmark_due = True
            self._wake()
            due = self._loop.time() + self._quiet
        self._timer = self._loop.call_at(due, self._tick)


def open_watch(
    resources: Resources,
    user: User,
    target: Target,
    selector_text: str | None,
    fields_text: str | None,
    resource_version: str | None,
    bookmark_interval: float,
    caches: WatchCaches | None = None,
) -> WatchRequest:
    """Authorize and position a watch (400/403/410 here, before the response starts)."""
    resources.authorize(user, "watch", target)
    selection = parse_selection(selector_text, fields_text)
    store, info = resources.store, target.info
    prefix = store.layout.kind_prefix(info.plural, target.namespace)
    revision = parse_resource_version(resource_version) or 0
    # Started here, on a worker thread, and ready before the list: the list's revision is then
    # inside the cache's window, so this stream shares the cache's etcd watch.
    cache = caches.get(info) if caches is not None else None
    if cache is not None and not store.client.known_down:
        cache.wait_ready(_CACHE_READY_SECONDS)
    initial: list[Resource] = []
    if revision == 0:
        # Unset: a consistent list (the cache's copy while etcd is down); 0: the cache's copy.
        listed = resources.reads.list(
            info,
            target.namespace,
            selection.labels,
            resource_version=parse_resource_version(resource_version),
        )
        initial = [obj for obj in listed.items if selection.matches(obj)]
        revision = listed.resource_version
    else:
        current = store.client.current_revision()
        if revision > current:
            raise ApiError(400, "BadRequest", f"resourceVersion {revision} is in the future")
        # A read at the revision fails when etcd has compacted past it: answer 410 now.
        store.client.range(prefix, prefix_range_end(prefix), revision=revision, count_only=True)
    return WatchRequest(
        resources, user, target, selection, prefix, revision + 1, initial, bookmark_interval, cache
    )
