"""A thin, typed client over etcd's raw gRPC stubs (from ``python3-etcd3``'s ``etcdrpc``).

Where it sits: the only module that talks gRPC to etcd. The object store, the watch loop,
leases and leader election call it. It exists because the library's high-level client marks
an endpoint "failed" for 300 s after one UNAVAILABLE (so a single-member etcd that restarts
stays unusable for five minutes) and hides response headers; here every call returns the raw
response (with ``header.revision``), channels reconnect by themselves, and gRPC errors become
``StoreUnavailableError`` (retryable) after a short bounded retry.

Called from a greenlet of :func:`controller.store.bridge.run_bridged` (the API server's
single-object requests), a unary call goes out on gRPC's asyncio client, on a channel of the
running loop, and the greenlet waits for it while the loop serves others; retries pause there
too. Everywhere else calls block, on one channel per endpoint shared by every thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import grpc
from etcd3 import etcdrpc
from tenacity import (
    retry,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from controller.errors import StoreUnavailableError
from controller.store.bridge import bridged, sleep, wait

__all__ = [
    "EtcdClient",
    "cmp_create_revision",
    "cmp_mod_revision",
    "cmp_prefix_unchanged_since",
    "op_delete",
    "op_get",
    "op_put",
    "prefix_range_end",
]

T = TypeVar("T")

#: Large ranges must not fail at gRPC's 4 MB default (DESIGN §2).
_GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
]
_RETRYABLE_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def prefix_range_end(prefix: bytes) -> bytes:
    """The exclusive end of the range holding every key that starts with ``prefix``."""
    end = bytearray(prefix)
    for i in reversed(range(len(end))):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


class _Unavailable(Exception):
    """Internal marker so tenacity retries only connection-level failures."""


class _Stubs:
    """One channel and its service stubs, built once (a stub builds a callable per method):
    blocking, or (``on_loop``) gRPC's asyncio client on one event loop."""

    def __init__(self, channel: Any, *, on_loop: bool = False) -> None:
        self.channel = channel
        self.on_loop = on_loop
        self.kv = etcdrpc.KVStub(channel)
        self.lease = etcdrpc.LeaseStub(channel)
        self.watch = etcdrpc.WatchStub(channel)

    def call(self, method: Any, request: Any, timeout: float) -> Any:
        """One unary call of ``method`` (a stub's): its answer, awaited on the loop if bridged."""
        answer = method(request, timeout=timeout)
        return wait(answer) if self.on_loop else answer


#: While etcd is known to be down, a fail-fast client lets one call through this often to see
#: whether it is back; the others fail at once.
_PROBE_EVERY = 0.25


class EtcdClient:
    """Calls one of several endpoints; rotates to the next on UNAVAILABLE.

    A call that finds etcd unavailable retries for ``retry_for`` seconds, riding over a
    restart. With ``fail_fast`` (the API server: a request must not hold a worker for seconds)
    that happens once: after a call gave up, etcd is known to be down and calls raise
    :class:`StoreUnavailableError` at once, except one every ``_PROBE_EVERY`` seconds that
    tries a single time; the first that reaches etcd ends the outage for everyone.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout: float = 10.0,
        retry_for: float = 5.0,
        fail_fast: bool = False,
    ) -> None:
        if not endpoints:
            raise ValueError("at least one etcd endpoint is required")
        self._netlocs = [self._netloc(e) for e in endpoints]
        self.endpoints = tuple(endpoints)
        self.timeout = timeout
        self._retry_for = retry_for
        self._fail_fast = fail_fast
        self._lock = threading.Lock()
        self._index = 0
        self._channels: dict[int, _Stubs] = {}
        #: The asyncio channels of bridged calls, per event loop (a channel serves one loop).
        self._loop_channels: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[int, _Stubs]
        ] = weakref.WeakKeyDictionary()
        #: Monotonic time from which the next probe may go out; None while etcd answers.
        self._next_probe: float | None = None

    @staticmethod
    def _netloc(endpoint: str) -> str:
        parsed = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
        if parsed.scheme not in ("http", ""):
            raise ValueError(f"etcd endpoint {endpoint!r}: only http:// endpoints are supported")
        if not parsed.hostname or not parsed.port:
            raise ValueError(f"etcd endpoint {endpoint!r}: expected host:port")
        return f"{parsed.hostname}:{parsed.port}"

    def _channel(self) -> tuple[int, _Stubs]:
        with self._lock:
            index = self._index
            stubs = self._channels.get(index)
            if stubs is None:
                channel = grpc.insecure_channel(self._netlocs[index], options=_GRPC_OPTIONS)
                stubs = self._channels[index] = _Stubs(channel)
            return index, stubs

    def _loop_channel(self) -> tuple[int, _Stubs]:
        loop = asyncio.get_running_loop()
        with self._lock:
            index = self._index
            channels = self._loop_channels.setdefault(loop, {})
            stubs = channels.get(index)
            if stubs is None:
                channel = grpc.aio.insecure_channel(self._netlocs[index], options=_GRPC_OPTIONS)
                stubs = channels[index] = _Stubs(channel, on_loop=True)
            return index, stubs

    def _rotate(self, failed_index: int) -> None:
        with self._lock:
            if self._index == failed_index:
                self._index = (self._index + 1) % len(self._netlocs)

    def _attempt(self, make_call: Callable[[_Stubs], T]) -> T:
        index, stubs = self._loop_channel() if bridged() else self._channel()
        try:
            return make_call(stubs)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            if code in _RETRYABLE_CODES:
                self._rotate(index)
                raise _Unavailable(f"{self._netlocs[index]}: {code}") from exc
            raise

    @property
    def known_down(self) -> bool:
        """Whether the last attempt found etcd unavailable (fail-fast clients only)."""
        return self._next_probe is not None

    def _probing(self) -> bool:
        """``True`` if etcd answered last time, or this caller takes the next probe."""
        with self._lock:
            if self._next_probe is None:
                return True
            now = time.monotonic()
            if now < self._next_probe:
                return False
            self._next_probe = now + _PROBE_EVERY
            return True

    def _outage(self, up: bool) -> None:
        with self._lock:
            self._next_probe = None if up else time.monotonic() + _PROBE_EVERY

    def _call(self, make_call: Callable[[_Stubs], T]) -> T:
        if not self._fail_fast:
            return self._riding(make_call)
        if not self._probing():
            raise StoreUnavailableError("etcd unavailable (failing fast until it answers)")
        try:
            result = self._probe(make_call) if self.known_down else self._riding(make_call)
        except StoreUnavailableError:
            self._outage(up=False)
            raise
        except grpc.RpcError:
            self._outage(up=True)  # etcd answered, if with an error
            raise
        self._outage(up=True)
        return result

    def _riding(self, make_call: Callable[[_Stubs], T]) -> T:
        try:
            return self._attempt(make_call)  # the common case, without building a retrier
        except _Unavailable:
            return self._retrying(make_call)

    def _probe(self, make_call: Callable[[_Stubs], T]) -> T:
        try:
            return self._attempt(make_call)
        except _Unavailable as exc:
            raise StoreUnavailableError(f"etcd unavailable: {exc}") from exc

    def _retrying(self, make_call: Callable[[_Stubs], T]) -> T:
        retrying = retry(
            retry=retry_if_exception_type(_Unavailable),
            stop=stop_after_delay(self._retry_for),
            wait=wait_exponential(multiplier=0.05, max=1.0),
            sleep=sleep,
            reraise=True,
        )
        try:
            return retrying(self._attempt)(make_call)
        except _Unavailable as exc:
            raise StoreUnavailableError(f"etcd unavailable: {exc}") from exc

    # --- KV -------------------------------------------------------------------------------

    def range(
        self,
        key: bytes,
        range_end: bytes | None = None,
        *,
        revision: int = 0,
        limit: int = 0,
        keys_only: bool = False,
        count_only: bool = False,
    ) -> Any:
        request = etcdrpc.RangeRequest(
            key=key,
            range_end=range_end or b"",
            revision=revision,
            limit=limit,
            keys_only=keys_only,
            count_only=count_only,
        )
        return self._call(lambda ch: ch.call(ch.kv.Range, request, self.timeout))

    def txn(self, compare: list[Any], success: list[Any], failure: list[Any] | None = None) -> Any:
        request = etcdrpc.TxnRequest(compare=compare, success=success, failure=failure or [])
        return self._call(lambda ch: ch.call(ch.kv.Txn, request, self.timeout))

    def put(self, key: bytes, value: bytes, lease: int = 0) -> Any:
        request = etcdrpc.PutRequest(key=key, value=value, lease=lease)
        return self._call(lambda ch: ch.call(ch.kv.Put, request, self.timeout))

    def delete_range(self, key: bytes, range_end: bytes | None = None) -> Any:
        request = etcdrpc.DeleteRangeRequest(key=key, range_end=range_end or b"")
        return self._call(lambda ch: ch.call(ch.kv.DeleteRange, request, self.timeout))

    def compact(self, revision: int, physical: bool = True) -> Any:
        request = etcdrpc.CompactionRequest(revision=revision, physical=physical)
        return self._call(lambda ch: ch.call(ch.kv.Compact, request, self.timeout))

    def range_pages(
        self,
        prefix: bytes,
        *,
        revision: int = 0,
        start_after: bytes | None = None,
        page_size: int = 1000,
    ) -> Iterator[tuple[Sequence[Any], int, bool]]:
        """Yield (kvs, revision, more) pages over a prefix, every page at the same revision.

        No sort order: etcd returns keys in order anyway, and asking for a sort makes it re-read
        the rest of the range on every page (DESIGN §2).
        """
        end = prefix_range_end(prefix)
        start = start_after + b"\0" if start_after else prefix
        while True:
            response = self.range(start, end, revision=revision, limit=page_size)
            revision = revision or int(response.header.revision)
            yield response.kvs, revision, bool(response.more)
            if not response.more or not response.kvs:
                return
            start = bytes(response.kvs[-1].key) + b"\0"

    def range_prefix(self, prefix: bytes, *, revision: int = 0) -> tuple[list[Any], int]:
        """Every kv under a prefix, read page by page at one revision, and that revision."""
        kvs: list[Any] = []
        for page, pinned, _ in self.range_pages(prefix, revision=revision):
            kvs.extend(page)
            revision = pinned
        return kvs, revision

    def reachable(self) -> bool:
        """True if etcd answers now (readiness probes: no retrying for seconds)."""
        request = etcdrpc.RangeRequest(key=b"\0", count_only=True)
        _, stubs = self._channel()
        try:
            stubs.kv.Range(request, min(self.timeout, 2.0))
        except grpc.RpcError:
            return False
        return True

    def current_revision(self) -> int:
        return int(self.range(b"\0", count_only=True).header.revision)

    # --- leases ---------------------------------------------------------------------------

    def lease_grant(self, ttl: int) -> int:
        request = etcdrpc.LeaseGrantRequest(TTL=ttl, ID=0)
        response = self._call(lambda ch: ch.call(ch.lease.LeaseGrant, request, self.timeout))
        return int(response.ID)

    def lease_keepalive_once(self, lease_id: int) -> int:
        """Refresh a lease; returns the remaining TTL (<= 0 means the lease is gone)."""
        request = etcdrpc.LeaseKeepAliveRequest(ID=lease_id)

        def call(ch: _Stubs) -> Any:
            responses = ch.lease.LeaseKeepAlive(iter([request]), timeout=self.timeout)
            return wait(responses.read()) if ch.on_loop else next(iter(responses))

        return int(self._call(call).TTL)

    def lease_revoke(self, lease_id: int) -> None:
        request = etcdrpc.LeaseRevokeRequest(ID=lease_id)
        try:
            self._call(lambda ch: ch.call(ch.lease.LeaseRevoke, request, self.timeout))
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise

    # --- watch ----------------------------------------------------------------------------

    def watch_stream(self, requests: Iterator[Any]) -> Any:
        """Open a raw bidirectional watch stream; the caller owns reconnection (see watch.py)."""
        _, stubs = self._channel()
        return stubs.watch.Watch(requests)

    def close(self) -> None:
        with self._lock:
            for stubs in self._channels.values():
                stubs.channel.close()
            self._channels.clear()
            for loop, channels in list(self._loop_channels.items()):
                if loop.is_running():  # else nothing can close it: dropped with the loop
                    for stubs in channels.values():
                        asyncio.run_coroutine_threadsafe(stubs.channel.close(), loop)
            self._loop_channels.clear()


# Builders for transaction operations, kept here so no other module touches etcdrpc.


def cmp_mod_revision(key: bytes, revision: int) -> Any:
    return etcdrpc.Compare(
        key=key,
        result=etcdrpc.Compare.EQUAL,
        target=etcdrpc.Compare.MOD,
        mod_revision=revision,
    )


def cmp_create_revision(key: bytes, revision: int) -> Any:
    return etcdrpc.Compare(
        key=key,
        result=etcdrpc.Compare.EQUAL,
        target=etcdrpc.Compare.CREATE,
        create_revision=revision,
    )


def cmp_prefix_unchanged_since(prefix: bytes, revision: int) -> Any:
    """Holds while no key under ``prefix`` was written after ``revision`` (none existing passes;
    a key deleted since is not seen: compare each key known to exist as well)."""
    return etcdrpc.Compare(
        key=prefix,
        range_end=prefix_range_end(prefix),
        result=etcdrpc.Compare.LESS,
        target=etcdrpc.Compare.MOD,
        mod_revision=revision + 1,
    )


def op_put(key: bytes, value: bytes, lease: int = 0) -> Any:
    return etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(key=key, value=value, lease=lease))


def op_get(key: bytes) -> Any:
    return etcdrpc.RequestOp(request_range=etcdrpc.RangeRequest(key=key))


def op_delete(key: bytes, range_end: bytes | None = None) -> Any:
    return etcdrpc.RequestOp(
        request_delete_range=etcdrpc.DeleteRangeRequest(key=key, range_end=range_end or b"")
    )
