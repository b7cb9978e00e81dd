"""The event recorder: non-blocking, aggregated, leased notes about objects (DESIGN §2).

Where it sits: at the end of the pipeline (etcd watch → informer cache → handler → workqueue →
workers → reconcile → status write → **events**/history). Reconcilers, the worker loop's
``on_terminal`` hook and the direct-write normaliser call :meth:`EventRecorder.record`; ``skyctl
events`` and ``describe`` read them back with :meth:`EventRecorder.list_events`.

* **Never blocks the caller.** ``record`` appends to a bounded in-memory queue and returns; a
  background writer thread does the etcd I/O. When the queue is full (etcd down for long, or a
  storm) the record is dropped and counted in ``events_dropped_total``. While etcd is
  unreachable the writer keeps what it has and retries with backoff.
* **Aggregated.** An event's name is derived from (kind, namespace, name, reason) of the object,
  so repeats of one reason land on one key: the writer bumps ``count``, ``lastTimestamp``,
  ``message`` and ``type`` by a compare-and-swap on the key's ``mod_revision`` (re-read and
  retry on conflict, as several processes may record the same event). Records of one event
  queued together are merged first, so a burst costs one write.
* **Batched.** The writer reads up to ``_BATCH`` pending events in one read-only transaction
  and writes them in one compare-and-swap transaction (one etcd revision for all of them). If
  any compare fails — another process touched one of those events — that batch falls back to
  one read-and-CAS per event. Woken by fewer records than a batch, the writer waits up to
  ``_LINGER`` (50 ms) for more unless a caller is in :meth:`EventRecorder.flush`.
* **Leased.** Events live at ``{prefix}/events/{namespace}/{name}`` — cluster-scoped objects'
  events in namespace ``default`` — each attached to an etcd lease so that etcd deletes them
  after ``ttl`` (24 h). One lease is shared by all events written in the same ``lease_bucket``
  (an hour) with a TTL of ``ttl + lease_bucket``, instead of one lease per event; every update
  re-attaches the current bucket's lease, so an event that keeps happening lives on
  (``controller.store.leases``).
"""

from __future__ import annotations

import hashlib
import random
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import grpc
import pydantic
import structlog

from api_types import registry
from api_types.events import Event, EventSource, EventType, InvolvedObject
from api_types.meta import ObjectMeta, Resource
from api_types.validation import validate_dns1123_label
from controller.errors import ConflictError, StoreUnavailableError
from controller.metrics import RuntimeMetrics, runtime_metrics
from controller.store.codec import DecodeError, decode_value, encode_value
from controller.store.etcd import cmp_create_revision, cmp_mod_revision, op_get, op_put
from controller.store.keys import ObjectKey
from controller.store.leases import BucketedLease
from controller.store.objects import Store

__all__ = ["EventRecorder", "event_name", "involved_for_key"]

log = structlog.get_logger(__name__)

#: Where the events of cluster-scoped objects (and of unparseable namespaces) are kept.
DEFAULT_NAMESPACE = "default"
_CAS_RETRIES = 10
#: Events per transaction: two operations each, well under etcd's default --max-txn-ops 128.
_BATCH = 50
#: How long the writer, woken by a queue shorter than a batch, waits for more records (unless
#: someone flushes): a steady stream is then written some twenty at a time at 350 events/s,
#: not one or two per pair of transactions.
_LINGER = 0.05
#: Upper bound of the random pause after a lost race, times the attempt number.
_CONFLICT_PAUSE = 0.005
_MAX_BACKOFF = 2.0
_NOT_NAME_CHARACTERS = re.compile(r"[^a-z0-9.-]+")
_EPOCH = datetime.fromtimestamp(0, UTC)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def event_name(involved: InvolvedObject, reason: str) -> str:
    """The deterministic event name for (kind, namespace, name, reason): ``{name}.{hash}``."""
    identity = f"{involved.kind}/{involved.namespace or ''}/{involved.name}/{reason}"
    digest = hashlib.sha1(identity.encode("utf-8")).hexdigest()[:10]
    # The involved name may be anything a direct write used; the hash keeps the name unique.
    readable = _NOT_NAME_CHARACTERS.sub("-", involved.name.lower()).strip(".-")[:200]
    return f"{readable.rstrip('.-')}.{digest}" if readable else digest


def involved_for_key(key: ObjectKey) -> InvolvedObject:
    """Describe an object known only by its key (an invalid direct write has no model)."""
    try:
        kind = registry.by_plural(key.plural).kind
    except registry.UnknownKindError:
        kind = key.plural
    return InvolvedObject(kind=kind, namespace=key.namespace, name=key.name)


def _involved(obj: Resource | InvolvedObject) -> InvolvedObject:
    if isinstance(obj, InvolvedObject):
        return obj
    metadata = obj.metadata
    return InvolvedObject(
        kind=obj.kind,
        namespace=metadata.namespace,
        name=metadata.name,
        uid=metadata.uid,
        api_version=obj.api_version,
        resource_version=metadata.resource_version,
    )


def _event_namespace(involved: InvolvedObject) -> str:
    try:
        return validate_dns1123_label(involved.namespace or DEFAULT_NAMESPACE)
    except ValueError:
        return DEFAULT_NAMESPACE


@dataclass
class _Pending:
    """Records of one event not yet written, merged."""

    namespace: str
    name: str
    involved: InvolvedObject
    type: EventType
    reason: str
    message: str
    first: datetime
    last: datetime
    count: int = 1


class EventRecorder:
    """Writes events for ``store``'s key layout from a background thread started at once."""

    def __init__(
        self,
        store: Store,
        *,
        component: str = "skybroker-controller",
        ttl: float = 24 * 3600.0,
        lease_bucket: float = 3600.0,
        max_queue: int = 1000,
        now: Callable[[], datetime] = _utc_now,
        metrics: RuntimeMetrics | None = None,
    ) -> None:
        self._client = store.client
        self._layout = store.layout
        self._store = store
        self._source = EventSource(component=component, host=socket.gethostname())
        self._leases = BucketedLease(
            self._client, ttl, lease_bucket, lambda: self._now().timestamp()
        )
        self._max_queue = max_queue
        self._now = now
        self._metrics = metrics or runtime_metrics()
        # _cond guards the queue and the count of records not yet written or dropped.
        self._cond = threading.Condition()
        self._queue: deque[_Pending] = deque()
        self._unsettled = 0
        self._flushing = 0  # callers waiting in flush(): the writer does not linger for them
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="event-recorder", daemon=True)
        self._thread.start()

    # --- callers' side --------------------------------------------------------------------

    def record(
        self,
        obj: Resource | InvolvedObject,
        type: Literal["Normal", "Warning"],
        reason: str,
        message: str,
    ) -> bool:
        """Queue an event about ``obj`` and return at once; False if it had to be dropped."""
        involved = _involved(obj)
        now = self._now()
        pending = _Pending(
            namespace=_event_namespace(involved),
            name=event_name(involved, reason),
            involved=involved,
            type=EventType(type),
            reason=reason,
            message=message,
            first=now,
            last=now,
        )
        with self._cond:
            if len(self._queue) >= self._max_queue or self._stopping:
                self._metrics.events_dropped.inc()
                return False
            self._queue.append(pending)
            self._unsettled += 1
            if len(self._queue) in (1, _BATCH):  # the writer waits for the first, or lingers
                self._cond.notify_all()
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every accepted record is written (or dropped); False on timeout."""
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: self._unsettled == 0, timeout)
            finally:
                self._flushing -= 1

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is queued (for up to ``timeout``), then stop the writer."""
        self.flush(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def list_events(
        self, namespace: str | None = None, involved: ObjectKey | None = None
    ) -> list[Event]:
        """Events (of one namespace, about one object), oldest last occurrence first."""
        if involved is not None:
            about = involved_for_key(involved)
            namespace = _event_namespace(about)
        listed: tuple[list[Any], int] = self._client.range_prefix(
            self._layout.events_prefix(namespace)
        )
        events = []
        for kv in listed[0]:
            try:
                event = Event.model_validate(decode_value(bytes(kv.value)))
            except (DecodeError, pydantic.ValidationError):
                continue
            if involved is not None and (
                event.involved_object.kind != about.kind
                or event.involved_object.name != about.name
                or event.involved_object.namespace != about.namespace
            ):
                continue
            event.metadata.resource_version = str(kv.mod_revision)
            events.append(event)
        return sorted(events, key=lambda e: (e.last_timestamp or _EPOCH, e.metadata.name))

    # --- the writer thread ----------------------------------------------------------------

    def _run(self) -> None:
        pending: dict[tuple[str, str], _Pending] = {}
        backoff = 0.05
        while True:
            with self._cond:
                while not self._queue and not pending and not self._stopping:
                    self._cond.wait()
                lingering_until = time.monotonic() + _LINGER
                while len(self._queue) < _BATCH and not self._stopping and not self._flushing:
                    left = lingering_until - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                if self._stopping and not pending and not self._queue:
                    return
                # Bounded like the queue, so an etcd outage cannot grow memory without limit.
                while self._queue and len(pending) < self._max_queue:
                    self._merge(pending, self._queue.popleft())
            try:
                self._write_all(pending)
                backoff = 0.05
            except StoreUnavailableError as exc:
                log.warning("events not written: etcd unavailable", error=str(exc))
                with self._cond:
                    self._cond.wait(backoff)
                    if self._stopping:
                        return
                backoff = min(backoff * 2, _MAX_BACKOFF)

    @staticmethod
    def _merge(pending: dict[tuple[str, str], _Pending], record: _Pending) -> None:
        known = pending.get((record.namespace, record.name))
        if known is None:
            pending[(record.namespace, record.name)] = record
            return
        known.count += record.count
        known.last, known.message, known.type = record.last, record.message, record.type

    def _write_all(self, pending: dict[tuple[str, str], _Pending]) -> None:
        """Write every pending event; raises StoreUnavailableError, keeping the unwritten."""
        while pending:
            batch = dict(list(pending.items())[:_BATCH])
            try:
                if self._write_batch(list(batch.values())):
                    for slot, entry in batch.items():
                        self._settle(pending, slot, entry, written=True)
                    continue
            except StoreUnavailableError:
                raise
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    raise
                self._leases.reset()  # the lease expired or was revoked: grant a new one
            for slot, entry in batch.items():
                try:
                    self._write(entry)
                    written = True
                except StoreUnavailableError:
                    raise
                except Exception:
                    log.exception("event dropped", event_key=f"{entry.namespace}/{entry.name}")
                    written = False
                self._settle(pending, slot, entry, written=written)

    def _settle(
        self,
        pending: dict[tuple[str, str], _Pending],
        slot: tuple[str, str],
        entry: _Pending,
        *,
        written: bool,
    ) -> None:
        if written:
            self._metrics.events_written.inc()
        else:
            self._metrics.events_dropped.inc(entry.count)
        del pending[slot]
        with self._cond:
            self._unsettled -= entry.count
            self._cond.notify_all()

    def _write_batch(self, entries: list[_Pending]) -> bool:
        """Read and write ``entries`` in two transactions; False if one changed in between."""
        keys = [self._layout.event_key(entry.namespace, entry.name) for entry in entries]
        read = self._client.txn([], [op_get(key) for key in keys])
        guards, puts = [], []
        lease = self._leases.current()
        for key, entry, response in zip(keys, entries, read.responses, strict=True):
            kvs = response.response_range.kvs
            stored = kvs[0] if kvs else None
            guards.append(
                cmp_mod_revision(key, int(stored.mod_revision))
                if stored is not None
                else cmp_create_revision(key, 0)
            )
            puts.append(op_put(key, self._updated(entry, stored), lease))
        return bool(self._client.txn(guards, puts).succeeded)

    def _write(self, entry: _Pending) -> None:
        etcd_key = self._layout.event_key(entry.namespace, entry.name)
        for attempt in range(_CAS_RETRIES):
            response = self._client.range(etcd_key)
            stored = response.kvs[0] if response.kvs else None
            wire = self._updated(entry, stored)
            guard = (
                cmp_mod_revision(etcd_key, int(stored.mod_revision))
                if stored is not None
                else cmp_create_revision(etcd_key, 0)
            )
            try:
                result = self._client.txn([guard], [op_put(etcd_key, wire, self._leases.current())])
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    raise
                self._leases.reset()  # the lease expired or was revoked: grant a new one
                continue
            if result.succeeded:
                return
            # Lost a race with another recorder: pause at random so the two stop colliding.
            time.sleep(random.uniform(0, _CONFLICT_PAUSE * (attempt + 1)))
        raise ConflictError(f"event {entry.namespace}/{entry.name} kept changing")

    def _updated(self, entry: _Pending, stored: Any) -> bytes:
        """The event to store: ``stored`` (a raw kv or None) with ``entry`` merged in."""
        event: Event | None = None
        if stored is not None:
            try:
                event = Event.model_validate(decode_value(bytes(stored.value)))
            except (DecodeError, pydantic.ValidationError):
                event = None  # an unreadable value is replaced
        if event is None:
            event = Event(
                metadata=ObjectMeta(
                    name=entry.name,
                    namespace=entry.namespace,
                    uid=str(uuid.uuid4()),
                    creation_timestamp=entry.first,
                ),
                involved_object=entry.involved,
                reason=entry.reason,
                message=entry.message,
                type=entry.type,
                count=entry.count,
                first_timestamp=entry.first,
                last_timestamp=entry.last,
                source=self._source,
            )
        else:
            event.count += entry.count
            # Another process may have written firstTimestamp by a clock slightly ahead.
            first = event.first_timestamp
            event.last_timestamp = max(entry.last, first) if first is not None else entry.last
            event.message, event.type = entry.message, entry.type
            event.involved_object = entry.involved
            event.metadata.resource_version = None
        return encode_value(event.to_wire())
