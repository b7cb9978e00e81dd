"""A watch on a key prefix that survives etcd restarts: our own loop on the raw gRPC stream.

Where it sits: between etcd and the informer cache (``controller.cache``). The library's watch
thread dies silently when etcd goes away (DESIGN §2), so this loop owns the stream: it asks for
progress notifications, remembers the last revision it delivered, and after any stream error
reopens from ``last + 1`` — so no event is missed and none is delivered twice. When etcd has
compacted past that revision it raises ``WatchCompacted``; the caller re-lists and starts a new
watch from the list's revision.

Resuming assumes that etcd still has the history we delivered. An etcd that restarts from a
data dir behind what it served — a restored backup, or etcd 3.5.0 to 3.5.2 killed at the wrong
moment (it can persist its applied index before the write it covers: etcd-io/etcd#13766; we
ship 3.5.1) — hands the lost revision numbers to new writes, and a watch resumed from
``last + 1`` would never see those. So before reopening, the watch checks that etcd still has
the last event it delivered, at its revision, and it watches for a response older than what it
delivered; either mismatch raises ``WatchHistoryLost`` (a ``WatchCompacted``: the same re-list).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from etcd3 import etcdrpc
from etcd3.etcdrpc import kv_pb2

from controller.errors import SkybrokerError, StoreUnavailableError
from controller.store.etcd import EtcdClient, prefix_range_end

__all__ = ["PrefixWatch", "WatchCompacted", "WatchEvent", "WatchHistoryLost"]


class WatchCompacted(SkybrokerError):
    """The revision to resume from was compacted; re-list, then watch from the list revision."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"watch revision compacted (oldest available: {compact_revision})")
        self.compact_revision = compact_revision


class WatchHistoryLost(WatchCompacted):
    """etcd no longer has history this watch delivered (it restarted from an older state):
    revisions after ``current_revision`` may be reused by new writes; re-list."""

    def __init__(self, current_revision: int, delivered: int, why: str) -> None:
        SkybrokerError.__init__(
            self,
            f"etcd lost watched history: {why} (delivered up to revision {delivered}, "
            f"etcd is at {current_revision})",
        )
        self.compact_revision = current_revision


@dataclass(frozen=True)
class WatchEvent:
    """One change of one key, as the etcd watch reported it."""
    deleted: bool
    key: bytes
    value: bytes
    mod_revision: int
    create_revision: int
    prev_value: bytes | None = None


class PrefixWatch:
    """Iterate batches of events for a prefix, from ``start_revision`` on, until ``stop()``.

    Each yielded batch is one etcd response: a list of events, or an empty list for a progress
    notification (``last_revision`` has then advanced, so a consumer can record a bookmark).
    """

    def __init__(
        self,
        client: EtcdClient,
        prefix: bytes,
        start_revision: int,
        *,
        prev_kv: bool = False,
        max_backoff: float = 2.0,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._prev_kv = prev_kv
        self._max_backoff = max_backoff
        #: The newest revision whose events have all been delivered.
        self.last_revision = start_revision - 1
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._call: Any = None
        # Set when the current stream is over: gRPC keeps one thread per stream reading our
        # request iterator, which must then return, or every reconnect leaks that thread.
        self._stream_over = threading.Event()
        self.reconnects = 0
        #: The last event delivered: after a reconnect etcd must still have it at its revision.
        self._last_event: WatchEvent | None = None

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            if self._call is not None:
                self._call.cancel()
            self._stream_over.set()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def _requests(self, stream_over: threading.Event) -> Iterator[Any]:
        yield etcdrpc.WatchRequest(
            create_request=etcdrpc.WatchCreateRequest(
                key=self._prefix,
                range_end=prefix_range_end(self._prefix),
                start_revision=self.last_revision + 1,
                progress_notify=True,
                prev_kv=self._prev_kv,
            )
        )
        # Keep the send side open while the stream lasts: closing it would end the stream.
        stream_over.wait()

    def __iter__(self) -> Iterator[list[WatchEvent]]:
        backoff = 0.05
        while not self._stopped.is_set():
            try:
                if self.reconnects:
                    self._check_history()
                with self._lock:
                    if self._stopped.is_set():
                        return
                    self._stream_over = threading.Event()
                    self._call = self._client.watch_stream(self._requests(self._stream_over))
                for response in self._call:
                    backoff = 0.05
                    if response.compact_revision:
                        raise WatchCompacted(int(response.compact_revision))
                    if response.canceled:
                        break
                    current = int(response.header.revision)
                    if self.reconnects and current < self.last_revision:
                        raise WatchHistoryLost(current, self.last_revision, "it is behind")
                    if response.created and not response.events:
                        continue
                    batch = [self._event(e) for e in response.events]
                    if batch:
                        self.last_revision = max(self.last_revision, batch[-1].mod_revision)
                        self._last_event = batch[-1]
                    else:
                        self.last_revision = max(self.last_revision, int(response.header.revision))
                    yield batch
            except (grpc.RpcError, StoreUnavailableError):
                if self._stopped.is_set():
                    return
            finally:
                with self._lock:
                    call, self._call = self._call, None
                    self._stream_over.set()
                if call is not None:
                    call.cancel()
            if self._stopped.wait(backoff):
                return
            self.reconnects += 1
            backoff = min(backoff * 2, self._max_backoff)

    def _check_history(self) -> None:
        """Raise ``WatchHistoryLost`` unless etcd still holds the last event delivered, as it
        was, at its revision (``StoreUnavailableError`` or a gRPC error: etcd did not answer)."""
        event = self._last_event
        if event is None:
            # Still one call: a stream does not move the client off a dead member of a
            # cluster, a call does (a quiet watch would otherwise retry that member forever).
            self._client.current_revision()
            return
        try:
            response = self._client.range(event.key, revision=event.mod_revision)
        except grpc.RpcError as exc:
            details = exc.details() or ""
            if exc.code() == grpc.StatusCode.OUT_OF_RANGE and "future revision" in details:
                raise WatchHistoryLost(
                    self._client.current_revision(), self.last_revision, details
                ) from None
            if exc.code() == grpc.StatusCode.OUT_OF_RANGE:
                return  # compacted: too old to check; the watch itself says if it is gone
            raise
        kv = response.kvs[0] if response.kvs else None
        if event.deleted:
            unchanged = kv is None
        else:
            unchanged = (
                kv is not None
                and int(kv.mod_revision) == event.mod_revision
                and bytes(kv.value) == event.value
            )
        if not unchanged:
            raise WatchHistoryLost(
                int(response.header.revision),
                self.last_revision,
                f"{event.key!r} differs at revision {event.mod_revision}",
            )

    @staticmethod
    def _event(event: Any) -> WatchEvent:
        kv = event.kv
        deleted = event.type == kv_pb2.Event.DELETE
        prev = bytes(event.prev_kv.value) if event.HasField("prev_kv") else None
        return WatchEvent(
            deleted=deleted,
            key=bytes(kv.key),
            value=b"" if deleted else bytes(kv.value),
            mod_revision=int(kv.mod_revision),
            create_revision=int(kv.create_revision),
            prev_value=prev,
        )
