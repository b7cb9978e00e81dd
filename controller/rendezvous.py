"""The rendezvous records in etcd (DESIGN §11): who a boot uuid is, heartbeats, dynamic slots.

Where it sits: beside the event recorder, one layer above the store, shared by both sides of
the boot rendezvous — the API server's endpoints (``apiserver.rendezvous``: check a bearer
secret, write a heartbeat, claim a slot) and the controllers (``reconcilers``: pre-register an
Instance, free stale slots, turn heartbeats into ``Instance.status.agent``). Every key is
built by ``KeyLayout``; every value is a model of ``api_types.rendezvous`` as compact JSON.

- :meth:`RendezvousStore.register` / :meth:`~RendezvousStore.record` /
  :meth:`~RendezvousStore.forget`: the uuid → owner record (one read checks a secret);
- :meth:`RendezvousStore.beat`: a heartbeat is **one** etcd write, a put under a lease shared
  by every heartbeat of the same ``staleAfter`` in a time bucket (``controller.store.leases``):
  live for at least twice ``staleAfter`` after the beat, so a stale agent is seen as stale (its
  ``reportedAt`` is old) before etcd drops its key;
- :meth:`RendezvousStore.claim`: the first free slot of a dynamic BootConfig, taken by a
  create-if-absent transaction that also writes the claimant's record, so two claimants never
  share a slot and a claim is never half written; :meth:`~RendezvousStore.release` frees it;
- :class:`HeartbeatCache`: list + watch of every heartbeat, for the controllers (resumes from
  its last revision, re-lists on compaction, as ``controller.cache.Informer`` does for kinds);
  :class:`ClaimCache` the same of every claimed slot (claims are made by the API server: this
  is how the BootConfig reconciler hears of one before its claimant reports).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import pydantic
import structlog

from api_types.meta import WireModel
from api_types.rendezvous import EnrollmentRecord, Heartbeat, RendezvousRecord
from controller.errors import StoreUnavailableError
from controller.store.codec import DecodeError, decode_value, encode_value
from controller.store.etcd import cmp_create_revision, cmp_mod_revision, op_delete, op_put
from controller.store.leases import BucketedLease
from controller.store.listwatch import ListWatch
from controller.store.objects import Store
from controller.store.watch import WatchEvent

__all__ = [
    "ClaimCache",
    "ClaimHandler",
    "HeartbeatCache",
    "HeartbeatHandler",
    "RecordCache",
    "RendezvousStore",
]

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=WireModel)

#: How often a lost claim race is retried before the claimant is told to come back.
_CLAIM_ATTEMPTS = 8


def _encode(model: WireModel) -> bytes:
    return encode_value(model.model_dump(mode="json", by_alias=True, exclude_none=True))


def _decode(model: type[M], raw: bytes) -> M | None:
    """The stored model, or None for a value that is not one (logged, never raised)."""
    try:
        return model.model_validate(decode_value(raw))
    except (DecodeError, pydantic.ValidationError):
        log.warning("unreadable rendezvous value ignored", model=model.__name__)
        return None


class RendezvousStore:
    """Reads and writes of the rendezvous records over one store's client and key layout."""

    def __init__(self, store: Store, now: Callable[[], float] | None = None) -> None:
        self._client = store.client
        self._layout = store.layout
        self._now = now or (lambda: datetime.now(UTC).timestamp())
        self._lock = threading.Lock()
        self._leases: dict[int, BucketedLease] = {}

    # --- who a uuid is --------------------------------------------------------------------

    def register(self, uuid: str, record: RendezvousRecord) -> None:
        """Store (or overwrite with the same) the record of a pre-registered uuid."""
        self._client.put(self._layout.rendezvous_record_key(uuid), _encode(record))

    def record(self, uuid: str) -> RendezvousRecord | None:
        response = self._client.range(self._layout.rendezvous_record_key(uuid))
        return _decode(RendezvousRecord, bytes(response.kvs[0].value)) if response.kvs else None

    def forget(self, namespace: str, uuid: str) -> None:
        """Remove a uuid's record and heartbeat together (the seeds' remove)."""
        self._client.txn(
            [],
            [
                op_delete(self._layout.rendezvous_record_key(uuid)),
                op_delete(self._layout.heartbeat_key(namespace, uuid)),
            ],
        )

    # --- heartbeats -----------------------------------------------------------------------

    def _lease_for(self, stale_after_seconds: int) -> BucketedLease:
        with self._lock:
            lease = self._leases.get(stale_after_seconds)
            if lease is None:
                ttl = 2 * stale_after_seconds
                lease = BucketedLease(self._client, ttl, stale_after_seconds / 2, self._now)
                self._leases[stale_after_seconds] = lease
            return lease

    def beat(self, namespace: str, heartbeat: Heartbeat, stale_after_seconds: int) -> None:
        """Write one heartbeat: a single leased put."""
        key = self._layout.heartbeat_key(namespace, heartbeat.uuid)
        self._lease_for(stale_after_seconds).put(key, _encode(heartbeat))

    def heartbeat(self, namespace: str, uuid: str) -> Heartbeat | None:
        response = self._client.range(self._layout.heartbeat_key(namespace, uuid))
        return _decode(Heartbeat, bytes(response.kvs[0].value)) if response.kvs else None

    # --- enrollments ----------------------------------------------------------------------

    def enroll(self, digest: str, record: EnrollmentRecord) -> None:
        self._client.put(self._layout.enrollment_key(digest), _encode(record))

    def enrollment(self, digest: str) -> EnrollmentRecord | None:
        response = self._client.range(self._layout.enrollment_key(digest))
        return _decode(EnrollmentRecord, bytes(response.kvs[0].value)) if response.kvs else None

    def unenroll(self, digest: str) -> None:
        self._client.delete_range(self._layout.enrollment_key(digest))

    def enrollments_of(self, namespace: str, bootconfig: str) -> list[str]:
        """Digests enrolled for one BootConfig. A scan of every enrollment (one per dynamic
        BootConfig, about): for the rare moments an old one must be found — a rotated secret,
        a deleted BootConfig — so no digest of a secret need be kept where users read it."""
        prefix = self._layout.enrollments_prefix()
        kvs, _ = self._client.range_prefix(prefix)
        wanted = EnrollmentRecord(namespace=namespace, boot_config=bootconfig)
        return [
            bytes(kv.key)[len(prefix) :].decode("utf-8", errors="replace")
            for kv in kvs
            if _decode(EnrollmentRecord, bytes(kv.value)) == wanted
        ]

    # --- dynamic slots --------------------------------------------------------------------

    def claims(self, namespace: str, bootconfig: str) -> dict[int, str]:
        """Claimed slots of a dynamic BootConfig: slot → the claimant's uuid."""
        kvs, _ = self._client.range_prefix(self._layout.claims_prefix(namespace, bootconfig))
        prefix = self._layout.claims_prefix(namespace, bootconfig)
        taken: dict[int, str] = {}
        for kv in kvs:
            suffix = bytes(kv.key)[len(prefix) :]
            if suffix.isdigit():
                taken[int(suffix)] = bytes(kv.value).decode("utf-8", errors="replace")
        return taken

    def claim(self, slots: int, uuid: str, record: RendezvousRecord) -> int | None:
        """Take the first free slot (``record.slot`` is set to it) for ``uuid``, writing the
        slot and the record in one transaction; None when all ``slots`` are taken."""
        namespace, bootconfig = record.namespace, record.boot_config
        for _ in range(_CLAIM_ATTEMPTS):
            taken = self.claims(namespace, bootconfig)
            free = next((slot for slot in range(slots) if slot not in taken), None)
            if free is None:
                return None
            key = self._layout.claim_key(namespace, bootconfig, free)
            bound = record.model_copy(update={"slot": free})
            done = self._client.txn(
                [cmp_create_revision(key, 0)],
                [
                    op_put(key, uuid.encode()),
                    op_put(self._layout.rendezvous_record_key(uuid), _encode(bound)),
                ],
            )
            if done.succeeded:
                return free
        raise StoreUnavailableError("the slots kept being claimed under us; try again")

    def release(self, namespace: str, bootconfig: str, slot: int, uuid: str) -> bool:
        """Free ``slot`` if ``uuid`` still holds it, with its record and heartbeat (the
        seeds' remove_stale); False if someone else holds it now (nothing is touched)."""
        key = self._layout.claim_key(namespace, bootconfig, slot)
        response = self._client.range(key)
        if not response.kvs or bytes(response.kvs[0].value).decode() != uuid:
            return False
        done = self._client.txn(
            [cmp_mod_revision(key, int(response.kvs[0].mod_revision))],
            [
                op_delete(key),
                op_delete(self._layout.rendezvous_record_key(uuid)),
                op_delete(self._layout.heartbeat_key(namespace, uuid)),
            ],
        )
        return bool(done.succeeded)


#: Called with (namespace, uuid, the heartbeat now or None when its key is gone).
HeartbeatHandler = Callable[[str, str, Heartbeat | None], None]
#: Called with (namespace, bootconfig, slot, the claimant's uuid now or None when freed).
ClaimHandler = Callable[[str, str, int, str | None], None]

W = TypeVar("W")
V = TypeVar("V")


class _PrefixCache(ListWatch, Generic[W, V]):
    """Every value under one prefix, kept current by list + watch
    (``controller.store.listwatch``); each change is told to the listeners as (where, value
    or None). ``W`` is where a key points (parsed from it), ``V`` its decoded value."""

    name = "prefix"

    def __init__(self, store: Store, prefix: bytes) -> None:
        super().__init__(store.client, prefix, self.name)
        self._store = store
        self._lock = threading.Lock()
        self._items: dict[W, V] = {}
        self._listeners: list[Callable[[W, V | None], None]] = []

    def _parse(self, raw_key: bytes) -> W | None:
        raise NotImplementedError

    def _decode(self, raw: bytes) -> V | None:
        raise NotImplementedError

    def _listen(self, listener: Callable[[W, V | None], None]) -> None:
        self._listeners.append(listener)

    def _relist(self) -> None:
        listed: tuple[list[Any], int] = self._store.client.range_prefix(self._prefix)
        kvs, revision = listed
        fresh: dict[W, V] = {}
        for kv in kvs:
            where = self._parse(bytes(kv.key))
            value = self._decode(bytes(kv.value)) if where is not None else None
            if where is not None and value is not None:
                fresh[where] = value
        with self._lock:
            old = self._items
            self._items = fresh
            self.last_revision = revision
        for where in [w for w in old if w not in fresh] + list(fresh):
            if old.get(where) != fresh.get(where):
                self._notify(where, fresh.get(where))

    def _apply(self, batch: list[WatchEvent], revision: int) -> None:
        for event in batch:
            where = self._parse(event.key)
            if where is None:
                continue
            value = None if event.deleted else self._decode(event.value)
            with self._lock:
                if value is None:
                    self._items.pop(where, None)
                else:
                    self._items[where] = value
            self._notify(where, value)
        with self._lock:
            self.last_revision = max(self.last_revision, revision)

    def _notify(self, where: W, value: V | None) -> None:
        for listener in self._listeners:
            try:
                listener(where, value)
            except Exception:
                log.exception(f"{self.name} handler failed")


class HeartbeatCache(_PrefixCache[tuple[str, str], Heartbeat]):
    """Every heartbeat of the store, kept current by a watch; handlers hear each change."""

    name = "heartbeats"

    def __init__(self, store: Store) -> None:
        super().__init__(store, store.layout.heartbeats_prefix())

    def add_handler(self, handler: HeartbeatHandler) -> None:
        """Register before :meth:`start`: every heartbeat listed or changed reaches it."""
        self._listen(lambda where, beat: handler(where[0], where[1], beat))

    def get(self, namespace: str, uuid: str) -> Heartbeat | None:
        with self._lock:
            return self._items.get((namespace, uuid))

    def _parse(self, raw_key: bytes) -> tuple[str, str] | None:
        return self._store.layout.parse_heartbeat_key(raw_key)

    def _decode(self, raw: bytes) -> Heartbeat | None:
        return _decode(Heartbeat, raw)


class ClaimCache(_PrefixCache[tuple[str, str, int], str]):
    """Every claimed dynamic slot of the store (slot → the claimant's uuid), kept current by a
    watch: how the BootConfig reconciler hears of a claim made by the API server at once,
    before the claimant ever reports."""

    name = "claims"

    def __init__(self, store: Store) -> None:
        super().__init__(store, store.layout.claims_root())

    def add_handler(self, handler: ClaimHandler) -> None:
        """Register before :meth:`start`: every claim listed, made or freed reaches it."""
        self._listen(lambda where, uuid: handler(where[0], where[1], where[2], uuid))

    def claims(self, namespace: str, bootconfig: str) -> dict[int, str]:
        with self._lock:
            return {
                slot: uuid
                for (ns, bc, slot), uuid in self._items.items()
                if (ns, bc) == (namespace, bootconfig)
            }

    def _parse(self, raw_key: bytes) -> tuple[str, str, int] | None:
        return self._store.layout.parse_claim_key(raw_key)

    def _decode(self, raw: bytes) -> str | None:
        return raw.decode("utf-8", errors="replace") or None


class RecordCache(_PrefixCache[str, RendezvousRecord]):
    """Every uuid's record, kept current by a watch: the API server checks a report's secret
    against it without an etcd read (a record missing from it is read from etcd, so one
    registered a moment ago is never refused)."""

    name = "rendezvous-records"

    def __init__(self, store: Store) -> None:
        super().__init__(store, store.layout.rendezvous_records_prefix())

    def get(self, uuid: str) -> RendezvousRecord | None:
        with self._lock:
            return self._items.get(uuid)

    def _parse(self, raw_key: bytes) -> str | None:
        return self._store.layout.parse_rendezvous_record_key(raw_key)

    def _decode(self, raw: bytes) -> RendezvousRecord | None:
        return _decode(RendezvousRecord, raw)
