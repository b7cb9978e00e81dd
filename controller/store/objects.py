"""The object store: typed CRUD over etcd with compare-and-swap on every write (DESIGN §2).

Where it sits: the only writer of ``{prefix}/registry/…`` and ``{prefix}/history/…``. The
informer lists and watches through it, reconcilers write status through it, the API server and
``skyctl --etcd`` create and update through it.

Rules it enforces, so no caller has to:
- every write is a CAS on ``mod_revision`` (create: ``create_revision == 0``); a lost race is
  a ``ConflictError`` and the caller re-reads;
- ``update`` writes the spec part and user metadata and never status; ``update_status`` writes
  status (and, if asked, finalizers added) and never spec; ``generation`` moves only when the
  spec part changes;
- a write that changes nothing is not sent (a converged system writes nothing);
- finalizers: ``delete`` of an object with finalizers only sets ``deletionTimestamp``; the
  update that removes the last finalizer deletes the key in the same transaction;
- a history record goes into the same transaction as the change it describes;
- a value that does not decode or validate is listed apart and can still be deleted.

To avoid a read before every write, the store remembers the last value it saw per key
(``controller.store.memory``); a stale memory can cost a conflict, never a lost update.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from api_types import registry
from api_types.meta import Resource, Scope
from controller.errors import (
    AlreadyExistsError,
    ConflictError,
    FieldCause,
    InvalidObjectError,
    NotFoundError,
)
from controller.labels import LabelSelector
from controller.store.codec import (
    DecodeError,
    decode_canonical,
    decode_value,
    encode_value,
    validate_at_key,
)
from controller.store.encryption import ENCRYPTED_PLURALS, CipherError, SecretCipher
from controller.store.etcd import (
    EtcdClient,
    cmp_create_revision,
    cmp_mod_revision,
    op_delete,
    op_get,
    op_put,
)
from controller.store.history import HistoryRecord, diff_fields, read_history
from controller.store.keys import KeyLayout, ObjectKey
from controller.store.memory import WriteMemory
from controller.store.results import (
    InvalidValue,
    ObjectList,
    StatusWrite,
    TxnExtras,
    refuse_added_finalizers_while_deleting,
    spec_part,
)
from controller.store.status_writes import Rider, status_record, status_value

__all__ = ["Store"]

R = TypeVar("R", bound=Resource)

_USER_METADATA = ("labels", "annotations", "finalizers", "ownerReferences")
_DELETE_RETRIES = 5


def _now() -> datetime:
    return datetime.now(UTC)


class Store:
    """Typed CRUD, list and delete of every registered kind over one etcd key layout; see the
    module for the rules it enforces. ``now`` gives the timestamps it writes (metadata, history);
    ``memory`` is what it remembers of its reads and writes (``controller.store.memory``).
    """

    def __init__(
        self,
        client: EtcdClient,
        layout: KeyLayout | None = None,
        *,
        now: Callable[[], datetime] = _now,
        cipher: SecretCipher | None = None,
        memory: WriteMemory | None = None,
    ) -> None:
        self.client = client
        self.layout = layout or KeyLayout()
        self._now = now
        self._cipher = cipher
        self._memory = memory if memory is not None else WriteMemory()
        self._last_revision = 0

    def _saw_revision(self, revision: int) -> None:
        self._last_revision = max(self._last_revision, revision)

    # --- keys and decoding ----------------------------------------------------------------

    def key_of(self, obj: Resource) -> ObjectKey:
        info = registry.by_kind(obj.kind)
        namespace = obj.metadata.namespace
        if info.scope is Scope.NAMESPACED and not namespace:
            raise InvalidObjectError(
                f"{info.kind} is namespaced",
                (FieldCause("metadata.namespace", "required for a namespaced kind"),),
            )
        if info.scope is Scope.CLUSTER and namespace:
            raise InvalidObjectError(
                f"{info.kind} is cluster-scoped",
                (FieldCause("metadata.namespace", "must be empty for a cluster-scoped kind"),),
            )
        return ObjectKey(info.plural, namespace, obj.metadata.name)

    def plain(self, key: ObjectKey, raw: bytes) -> bytes:
        """The stored value as written by the user: encrypted kinds are opened (see encryption)."""
        if self._cipher is None or key.plural not in ENCRYPTED_PLURALS:
            return raw
        try:
            return self._cipher.open(raw, str(key).encode())
        except CipherError as exc:
            cause = FieldCause("", str(exc))
            raise InvalidObjectError(f"{key}: cannot decrypt", (cause,)) from None

    def _sealed(self, key: ObjectKey, raw: bytes) -> bytes:
        if self._cipher is None or key.plural not in ENCRYPTED_PLURALS:
            return raw
        return self._cipher.seal(raw, str(key).encode())

    def decode(
        self, key: ObjectKey, raw: bytes, mod_revision: int, *, remember: bool = True
    ) -> Resource:
        """Decode and validate one stored value; ``remember`` it as the base of later writes
        (not a watch event's previous value: it is not the key's value at ``mod_revision``)."""
        raw = self.plain(key, raw)
        obj = decode_canonical(key, raw)
        if obj is None:
            try:
                wire = decode_value(raw)
            except DecodeError as exc:
                cause = FieldCause("", str(exc))
                raise InvalidObjectError(f"{key}: cannot decode", (cause,)) from None
            obj = self.validate_at_key(key, wire)
        obj.metadata.resource_version = str(mod_revision)
        if remember:
            self._memory.remember(self.layout.object_key(key), mod_revision, raw)
        return obj

    def validate_at_key(self, key: ObjectKey, wire: dict[str, Any]) -> Resource:
        """Validate a wire dict and check it belongs at ``key`` (see ``codec``)."""
        return validate_at_key(key, wire)

    def wrote_status(self, old: Resource, new: Resource) -> bool:
        """True if the change ``old`` → ``new`` of one object is a status write made here
        (noted before its transaction is sent: the watch may deliver it before the writer hears
        back; if one in flight loses to someone else's write, the writer's ConflictError retry
        sees that change)."""
        base, result = old.metadata.resource_version, new.metadata.resource_version
        if not base or not base.isdigit() or not result or not result.isdigit():
            return False
        etcd_key = self.layout.object_key(self.key_of(new))
        return self._memory.is_status_write(etcd_key, int(base), int(result))

    def wrote(self, key: ObjectKey, revision: int) -> bool:
        """True if this store wrote ``key``'s value at ``revision`` (so it is canonical)."""
        return self._memory.written_at(self.layout.object_key(key), revision)

    def newer_than(self, key: ObjectKey, revision: int) -> Resource | None:
        """The object at the newest revision this store knows for ``key``, if above
        ``revision`` (a cache lagging behind this process's own writes asks this)."""
        known = self._memory.newer(self.layout.object_key(key), revision)
        if known is None:
            return None
        try:
            return self.decode(key, known[1], known[0])
        except InvalidObjectError:
            return None

    def forget(self, key: ObjectKey) -> None:
        """Drop what is remembered of a key deleted elsewhere (informers call it on deletes)."""
        self._memory.forget(self.layout.object_key(key))

    def _base(
        self, key: ObjectKey, resource_version: str | None
    ) -> tuple[int, bytes, dict[str, Any]]:
        """(revision, raw, wire) of the stored value a write is based on; ConflictError if moved."""
        if not resource_version or not resource_version.isdigit():
            raise InvalidObjectError(
                f"{key}: update needs the resourceVersion it is based on",
                (FieldCause("metadata.resourceVersion", "required for an update"),),
            )
        wanted = int(resource_version)
        etcd_key = self.layout.object_key(key)
        known = self._memory.base(etcd_key)
        if known is None or known[0] != wanted:
            response = self.client.range(etcd_key)
            if not response.kvs:
                raise NotFoundError(key.said("not found"))
            kv = response.kvs[0]
            known = (int(kv.mod_revision), self.plain(key, bytes(kv.value)))
            self._memory.remember(etcd_key, *known)
        if known[0] != wanted:
            raise ConflictError(
                f"{key}: resourceVersion {wanted} is stale (stored: {known[0]}); re-read and retry"
            )
        try:
            return known[0], known[1], decode_value(known[1])
        except DecodeError as exc:
            cause = FieldCause("", str(exc))
            raise InvalidObjectError(f"{key}: stored value", (cause,)) from None

    # --- reads ----------------------------------------------------------------------------

    def get(self, model: type[R], name: str, namespace: str | None = None) -> R:
        key = ObjectKey(model.PLURAL, namespace, name)
        response = self.client.range(self.layout.object_key(key))
        if not response.kvs:
            raise NotFoundError(key.said("not found"))
        kv = response.kvs[0]
        obj = self.decode(key, kv.value, int(kv.mod_revision))
        if not isinstance(obj, model):
            raise InvalidObjectError(f"{key}: stored kind {obj.kind} is not {model.KIND}")
        return obj

    def list(
        self,
        model: type[R],
        namespace: str | None = None,
        selector: LabelSelector | None = None,
        *,
        limit: int = 0,
        continue_after: bytes | None = None,
        revision: int = 0,
        page_size: int = 1000,
    ) -> ObjectList[R]:
        """List a kind, pinned to one revision; ``limit`` > 0 returns one page to continue."""
        items: list[R] = []
        invalid: list[InvalidValue] = []
        pinned = revision
        for kvs, pinned, more in self.client.range_pages(
            self.layout.kind_prefix(model.PLURAL, namespace),
            revision=revision,
            start_after=continue_after,
            page_size=min(page_size, limit) if limit else page_size,
        ):
            self._saw_revision(pinned)
            for index, kv in enumerate(kvs):
                key = self.layout.parse_object_key(bytes(kv.key))
                if key is None:
                    continue
                try:
                    obj = self.decode(key, kv.value, int(kv.mod_revision))
                except InvalidObjectError as exc:
                    invalid.append(InvalidValue(key, int(kv.mod_revision), exc.causes))
                    continue
                if not isinstance(obj, model):
                    continue
                if selector is None or selector.matches(obj.metadata.labels):
                    items.append(obj)
                if limit and len(items) >= limit:
                    has_more = more or index < len(kvs) - 1
                    return ObjectList(items, pinned, invalid, bytes(kv.key) if has_more else None)
        return ObjectList(items, pinned, invalid, None)

    def history(self, key: ObjectKey) -> builtins.list[HistoryRecord]:
        """The object's durable history, oldest first (by the revision of each record)."""
        return read_history(self.client, self.layout, key)

    # --- writes ---------------------------------------------------------------------------

    def _history_op(
        self, key: ObjectKey, sequence: int, record: HistoryRecord | None
    ) -> builtins.list[Any]:
        if record is None:
            return []
        if key.plural in ENCRYPTED_PLURALS:
            record = record.redacted()  # history is at rest too: which keys changed, no values
        return [op_put(self.layout.history_key(key, sequence), encode_value(record.to_wire()))]

    def _txn(
        self,
        compares: Sequence[Any],
        operations: Sequence[Any],
        extras: TxnExtras | None,
        failure: Sequence[Any] = (),
    ) -> Any:
        """One etcd transaction of a write, with the caller's extras (status writes riding
        along are prepared here and remembered as written once it committed)."""
        extras = extras or TxnExtras()
        riders = [self._rider(write) for write in extras.status_writes]
        response = self.client.txn(
            [*compares, *extras.compares, *(c for rider in riders for c in rider.compares)],
            [*operations, *extras.operations, *(o for r in riders for o in r.operations)],
            list(failure),
        )
        self._saw_revision(revision := int(response.header.revision))
        for rider in riders:
            if response.succeeded and rider.committed is not None:
                rider.committed(revision)
        return response

    def _rider(self, write: StatusWrite) -> Rider:
        """``write`` prepared as :meth:`update_status` would write it (a history record of
        every status field it changes); an object gone meanwhile is a lost race."""
        key = self.key_of(write.obj)
        try:
            base_revision, _, base = self._base(key, write.obj.metadata.resource_version)
        except NotFoundError:
            raise ConflictError(key.said("is gone; re-read and retry")) from None
        etcd_key = self.layout.object_key(key)
        compares = [cmp_mod_revision(etcd_key, base_revision)]
        new = status_value(key, base, write.obj.to_wire(), with_finalizers=False)
        if new is None:
            return Rider(compares, [])
        self.validate_at_key(key, new)
        record = status_record(base, new, write.actor, self._now(), every_field=True)
        raw = encode_value(new)
        put = op_put(etcd_key, self._sealed(key, raw))
        return Rider(
            compares,
            [put, *self._history_op(key, base_revision, record)],
            lambda revision: self._memory.wrote(etcd_key, revision, raw),
        )

    def create(
        self,
        obj: R,
        *,
        actor: str = "system",
        dry_run: bool = False,
        extras: TxnExtras | None = None,
    ) -> R:
        """Create ``obj`` with a uid, generation 1 and a creationTimestamp (AlreadyExistsError)."""
        key = self.key_of(obj)
        wire = obj.to_wire()
        metadata = wire["metadata"]
        for system_field in ("resourceVersion", "deletionTimestamp"):
            metadata.pop(system_field, None)
        metadata.setdefault("uid", str(uuid.uuid4()))
        metadata["generation"] = 1
        metadata["creationTimestamp"] = self._now().isoformat()
        created = self.validate_at_key(key, wire)
        if dry_run:
            return created  # type: ignore[return-value]
        changes = tuple(diff_fields({}, spec_part(wire)))
        record = HistoryRecord("Created", actor, self._now(), 1, changes)
        etcd_key = self.layout.object_key(key)
        # Later writes key their history record by the revision they replace; a create has none,
        # so it uses the newest revision this store has seen, guarded against reuse by a compare.
        sequence = self._last_revision
        history_key = self.layout.history_key(key, sequence)
        response = self._txn(
            [cmp_create_revision(etcd_key, 0), cmp_create_revision(history_key, 0)],
            [
                op_put(etcd_key, self._sealed(key, raw := encode_value(wire))),
                *self._history_op(key, sequence, record),
            ],
            extras,
            [op_get(etcd_key)],
        )
        if not response.succeeded:
            if response.responses[0].response_range.kvs:
                raise AlreadyExistsError(key.said("already exists"))
            raise ConflictError(f"{key}: a precondition of the create failed; retry")
        return self._stored(key, created, raw, int(response.header.revision))  # type: ignore[return-value]

    def update(
        self,
        obj: R,
        *,
        actor: str = "system",
        dry_run: bool = False,
        extras: TxnExtras | None = None,
    ) -> R:
        """Write spec and user metadata (labels, annotations, finalizers, ownerReferences)."""
        key = self.key_of(obj)
        base_revision, base_raw, base = self._base(key, obj.metadata.resource_version)
        wire = obj.to_wire()
        new_metadata = dict(base["metadata"])
        for name in _USER_METADATA:
            if name in wire["metadata"]:
                new_metadata[name] = wire["metadata"][name]
            else:
                new_metadata.pop(name, None)
        refuse_added_finalizers_while_deleting(key, base["metadata"], new_metadata)
        new = {"apiVersion": base.get("apiVersion"), "kind": base.get("kind")}
        new.update(spec_part(wire))
        new["metadata"] = new_metadata
        if "status" in base:
            new["status"] = base["status"]
        spec_changes = diff_fields(spec_part(base), spec_part(new))
        if spec_changes:
            new_metadata["generation"] = int(base["metadata"].get("generation") or 0) + 1
        new_metadata.pop("resourceVersion", None)
        base_metadata = {k: v for k, v in base["metadata"].items() if k != "resourceVersion"}
        if not spec_changes and new_metadata == base_metadata:
            return self.decode(key, base_raw, base_revision)  # type: ignore[return-value]
        validated = self.validate_at_key(key, new)
        if dry_run:
            validated.metadata.resource_version = str(base_revision)
            return validated  # type: ignore[return-value]
        if new_metadata.get("deletionTimestamp") and not new_metadata.get("finalizers"):
            return self._finalize(key, base_revision, new, actor, extras)  # type: ignore[return-value]
        record = None
        if spec_changes:
            changes, generation = tuple(spec_changes), new_metadata.get("generation")
            record = HistoryRecord("SpecChanged", actor, self._now(), generation, changes)
        return self._cas_put(key, base_revision, new, validated, record, extras)  # type: ignore[return-value]

    def update_status(
        self,
        obj: R,
        *,
        actor: str = "system",
        request_id: str | None = None,
        dry_run: bool = False,
        extras: TxnExtras | None = None,
        with_finalizers: bool = False,
    ) -> R:
        """Write ``status`` only; spec, metadata and generation stay as stored.

        ``with_finalizers``: also write ``metadata.finalizers`` — a controller adding its
        finalizer in the same transaction as the status that records its intent (one write
        instead of two; adding one is refused once deletion started, as in :meth:`update`).
        """
        key = self.key_of(obj)
        if not obj.HAS_STATUS:
            raise InvalidObjectError(f"{obj.kind} has no status subresource")
        base_revision, base_raw, base = self._base(key, obj.metadata.resource_version)
        new = status_value(key, base, obj.to_wire(), with_finalizers=with_finalizers)
        if new is None:
            return self.decode(key, base_raw, base_revision)  # type: ignore[return-value]
        validated = self.validate_at_key(key, new)
        if dry_run:
            validated.metadata.resource_version = str(base_revision)
            return validated  # type: ignore[return-value]
        record = status_record(base, new, actor, self._now(), request_id)
        etcd_key = self.layout.object_key(key)
        self._memory.status_write(etcd_key, base_revision, None)
        written = self._cas_put(key, base_revision, new, validated, record, extras)
        self._memory.status_write(
            etcd_key, base_revision, int(written.metadata.resource_version or 0)
        )
        return written  # type: ignore[return-value]

    def replace(
        self,
        key: ObjectKey,
        base_revision: int,
        wire: dict[str, Any],
        record: HistoryRecord | None,
    ) -> Resource:
        """Write a whole value over ``base_revision`` by CAS (direct-write normalisation)."""
        validated = self.validate_at_key(key, wire)
        return self._cas_put(key, base_revision, wire, validated, record, None)

    def _cas_put(
        self,
        key: ObjectKey,
        base_revision: int,
        new: dict[str, Any],
        validated: Resource,
        record: HistoryRecord | None,
        extras: TxnExtras | None,
    ) -> Resource:
        """Write ``new`` over ``base_revision``; returns ``validated`` (its model) as stored."""
        etcd_key = self.layout.object_key(key)
        response = self._txn(
            [cmp_mod_revision(etcd_key, base_revision)],
            [
                op_put(etcd_key, self._sealed(key, raw := encode_value(new))),
                *self._history_op(key, base_revision, record),
            ],
            extras,
        )
        if not response.succeeded:
            self._memory.forget(etcd_key)
            raise ConflictError(f"{key} was modified since resourceVersion {base_revision}; retry")
        return self._stored(key, validated, raw, int(response.header.revision))

    def _stored(self, key: ObjectKey, validated: Resource, raw: bytes, revision: int) -> Resource:
        """``validated`` as now stored at ``revision``: remembered as the base of later writes,
        without decoding the value just encoded from it once more."""
        validated.metadata.resource_version = str(revision)
        self._memory.wrote(self.layout.object_key(key), revision, raw)
        return validated

    def _finalize(
        self,
        key: ObjectKey,
        base_revision: int,
        last: dict[str, Any],
        actor: str,
        extras: TxnExtras | None,
    ) -> Resource:
        """Delete the key: its last finalizer is gone (or it never had one)."""
        etcd_key = self.layout.object_key(key)
        record = HistoryRecord("Deleted", actor, self._now(), last["metadata"].get("generation"))
        response = self._txn(
            [cmp_mod_revision(etcd_key, base_revision)],
            [op_delete(etcd_key), *self._history_op(key, base_revision, record)],
            extras,
        )
        self._memory.forget(etcd_key)
        if not response.succeeded:
            raise ConflictError(f"{key} was modified since resourceVersion {base_revision}; retry")
        last["metadata"]["resourceVersion"] = str(response.header.revision)
        return self.validate_at_key(key, last)

    def delete(
        self,
        model: type[R],
        name: str,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        actor: str = "system",
        dry_run: bool = False,
        extras: TxnExtras | None = None,
    ) -> tuple[R, bool]:
        """Delete, honouring finalizers. Returns (object as last seen, gone-from-store)."""
        key = ObjectKey(model.PLURAL, namespace, name)
        for _ in range(_DELETE_RETRIES):
            current = self.get(model, name, namespace)
            revision = current.metadata.resource_version
            if resource_version is not None and resource_version != revision:
                raise ConflictError(
                    f"{key}: precondition resourceVersion {resource_version} != stored {revision}"
                )
            wire = current.to_wire()
            if dry_run:
                return current, not wire["metadata"].get("finalizers")
            try:
                if not wire["metadata"].get("finalizers"):
                    wire["metadata"].pop("resourceVersion", None)
                    gone = self._finalize(key, int(str(revision)), wire, actor, extras)
                    return gone, True  # type: ignore[return-value]
                if wire["metadata"].get("deletionTimestamp"):
                    return current, False
                wire["metadata"]["deletionTimestamp"] = self._now().isoformat()
                wire["metadata"].pop("resourceVersion", None)
                record = HistoryRecord(
                    "DeletionRequested", actor, self._now(), wire["metadata"].get("generation")
                )
                marked = self._cas_put(
                    key, int(str(revision)), wire, self.validate_at_key(key, wire), record, extras
                )
                return marked, False  # type: ignore[return-value]
            except ConflictError:
                if resource_version is not None:
                    raise
        raise ConflictError(f"{key}: kept changing during delete; retry")

    def invalid_value(self, key: ObjectKey) -> InvalidValue:
        """The value at ``key`` and why it does not decode or validate (a bad direct write);
        NotFoundError if there is none, ConflictError if it is a valid object."""
        response = self.client.range(self.layout.object_key(key))
        if not response.kvs:
            raise NotFoundError(key.said("not found"))
        revision = int(response.kvs[0].mod_revision)
        try:
            self.decode(key, bytes(response.kvs[0].value), revision)
        except InvalidObjectError as exc:
            return InvalidValue(key, revision, exc.causes or (FieldCause("", exc.message),))
        raise ConflictError(key.said("is a valid object now; read it as one"))

    def delete_invalid(
        self, key: ObjectKey, *, actor: str = "system", dry_run: bool = False
    ) -> InvalidValue:
        """Delete the :meth:`invalid_value` at ``key`` as it stands (ConflictError if it moves).
        Its finalizers cannot be read, so none are honoured; what a valid earlier version
        created in a cloud is left to the leak sweeper, as for a key deleted straight from etcd.
        """
        invalid = self.invalid_value(key)
        if dry_run:
            return invalid
        etcd_key, revision = self.layout.object_key(key), invalid.mod_revision
        record = HistoryRecord("Deleted", actor, self._now(), None)
        deleted = self._txn(
            [cmp_mod_revision(etcd_key, revision)],
            [op_delete(etcd_key), *self._history_op(key, revision, record)],
            None,
        )
        self._memory.forget(etcd_key)
        if not deleted.succeeded:
            raise ConflictError(f"{key} was modified since revision {revision}; retry")
        return invalid
