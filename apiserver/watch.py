"""``?watch=true``: newline-delimited JSON events, resumable from any resourceVersion.

Where it sits: the list routes hand a watch request here after authorization. The stream is
``{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": …}`` per line:

- without a resourceVersion (or ``0``), the current objects come first as ADDED, then changes;
- with ``resourceVersion=N``, every change after revision N, in order, exactly once; a client
  that lost its connection re-watches from the last resourceVersion it saw and misses nothing;
- a compacted N is refused with 410 before the stream starts; compaction overtaking a running
  stream ends it with an ERROR event carrying a 410 ``Status`` (the client re-lists);
- a BOOKMARK (an object carrying only ``metadata.resourceVersion``) is sent after every quiet
  ``bookmark_interval``; its revision is the newest one whose events were all sent, so it is
  always a safe place to resume from;
- with a label or field selector, an object that stops matching is sent as DELETED, one that
  starts matching as ADDED (Kubernetes' filtered-watch semantics).

Each stream owns a :class:`~controller.store.watch.PrefixWatch` (which itself survives etcd
restarts) on a daemon thread that hands batches to the event loop; no thread-pool thread is
held while a client is connected, so idle watchers cost no request capacity. When the server
shuts down, :meth:`WatchRequest.stop` ends every stream at once (its client re-watches, from
its last revision, wherever the API is still served).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import grpc

from api_types.meta import API_VERSION, Resource
from apiserver.auth import User
from apiserver.handlers import Resources, Selection, parse_selection
from apiserver.paths import Target
from apiserver.status import ApiError, error_from, status_object
from controller.errors import InvalidObjectError
from controller.store.etcd import prefix_range_end
from controller.store.watch import PrefixWatch, WatchCompacted, WatchEvent

__all__ = ["WatchRequest", "open_watch"]

_QUEUE_LIMIT = 10_000
_END = object()


def _line(event_type: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"


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
    _stopping: bool = field(default=False, init=False)
    _watch: PrefixWatch | None = field(default=None, init=False)

    def stop(self) -> None:
        """End the stream now (called on the event loop, like :meth:`stream`)."""
        self._stopping = True
        if self._watch is not None:
            self._watch.stop()

    def _decode(self, key_bytes: bytes, raw: bytes | None, revision: int) -> Resource | None:
        store = self.resources.store
        key = store.layout.parse_object_key(key_bytes)
        if key is None or raw is None:
            return None
        try:
            obj = store.decode(key, raw, revision)
        except InvalidObjectError:
            return None  # a bad direct write is not an object; the normaliser reports it
        return obj if isinstance(obj, self.target.info.model) else None

    def _matches(self, obj: Resource | None) -> bool:
        return obj is not None and self.selection.matches(obj)

    def _lines(self, event: WatchEvent) -> bytes:
        new = None if event.deleted else self._decode(event.key, event.value, event.mod_revision)
        old = None
        if event.deleted or not self.selection.empty:
            old = self._decode(event.key, event.prev_value, event.mod_revision)
        if self._matches(new):
            entered = not self.selection.empty and not self._matches(old)
            created = event.create_revision == event.mod_revision or entered
            assert new is not None
            return _line("ADDED" if created else "MODIFIED", self.resources.visible(self.user, new))
        if self._matches(old):
            assert old is not None
            return _line("DELETED", self.resources.visible(self.user, old))
        return b""

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
        queue: asyncio.Queue[Any] = asyncio.Queue()
        watch = PrefixWatch(
            self.resources.store.client, self.prefix, self.start_revision, prev_kv=True
        )
        self._watch = watch

        def offer(item: Any) -> None:
            if queue.qsize() >= _QUEUE_LIMIT:
                watch.stop()  # a client this far behind re-watches from its last revision
                queue.put_nowait(_END)
            else:
                queue.put_nowait(item)

        def pump() -> None:
            try:
                try:
                    for batch in watch:
                        loop.call_soon_threadsafe(offer, (batch, watch.last_revision))
                except (WatchCompacted, grpc.RpcError) as exc:
                    loop.call_soon_threadsafe(offer, exc)
                    return
                loop.call_soon_threadsafe(offer, _END)
            except RuntimeError:
                return  # the event loop closed under us: the server has stopped

        threading.Thread(target=pump, name="api-watch", daemon=True).start()
        sent = self.start_revision - 1
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), self.bookmark_interval)
                except TimeoutError:
                    yield self._bookmark(sent)
                    continue
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    error = (
                        ApiError(410, "Gone", str(item))
                        if isinstance(item, WatchCompacted)
                        else error_from(item)
                    )
                    yield _line("ERROR", status_object(error))
                    return
                batch, revision = item
                chunk = b"".join(self._lines(event) for event in batch)
                if chunk:
                    yield chunk
                sent = max(sent, revision)
        finally:
            watch.stop()


def open_watch(
    resources: Resources,
    user: User,
    target: Target,
    selector_text: str | None,
    fields_text: str | None,
    resource_version: str | None,
    bookmark_interval: float,
) -> WatchRequest:
    """Authorize and position a watch (400/403/410 here, before the response starts)."""
    resources.authorize(user, "watch", target)
    selection = parse_selection(selector_text, fields_text)
    store, info = resources.store, target.info
    prefix = store.layout.kind_prefix(info.plural, target.namespace)
    text = (resource_version or "0").strip()
    if not text.isdigit():
        raise ApiError(400, "BadRequest", f"resourceVersion {text!r} is not a number")
    revision = int(text)
    initial: list[Resource] = []
    if revision == 0:
        listed = store.list(info.model, target.namespace, selection.labels)
        initial = [obj for obj in listed.items if selection.matches(obj)]
        revision = listed.resource_version
    else:
        current = store.client.current_revision()
        if revision > current:
            raise ApiError(400, "BadRequest", f"resourceVersion {revision} is in the future")
        # A read at the revision fails when etcd has compacted past it: answer 410 now.
        store.client.range(prefix, prefix_range_end(prefix), revision=revision, count_only=True)
    return WatchRequest(
        resources, user, target, selection, prefix, revision + 1, initial, bookmark_interval
    )
