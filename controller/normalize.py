"""Direct writes: manifests put straight into etcd are validated and completed (DESIGN §2).

Where it sits: beside the informers, on its own watch of ``{prefix}/registry/``. Anyone may
``etcdctl put`` a manifest (JSON or YAML, without uid, generation or status) at an object's
key. This loop validates each written value:

- valid but incomplete (no uid, generation or creationTimestamp; YAML; a stored
  resourceVersion) → rewritten as canonical JSON with the missing metadata, by a CAS on the
  value's ``mod_revision`` (a concurrent write wins, and is then normalised in turn);
- a valid direct write that changed the spec without bumping ``generation`` → generation + 1
  and a history record, so observers of generation see the change;
- invalid (undecodable, YAML bomb, oversized, unknown kind, wrong types, key mismatch) → one
  Warning event per written revision naming the key and every error; the value is left alone
  and nothing else changes;
- valid, but new (no uid yet) in a namespace that does not exist or is being deleted → held:
  a Warning event naming the key and why, and the value is left alone, as the API would have
  refused the create (404 / 403). When the Namespace is created afterwards, the values held
  for it are normalised then (the direct write is taken as written when it became possible).
  A held value is never provisioned; namespace deletion removes it like any object.

The manager reconciles no object without a uid (``is_normalised``), however its key was queued:
such objects are seen again once normalised. A complete value (uid, generation and
creationTimestamp already there) is indistinguishable from an API server's write and is not
held: only the API's admission can refuse those.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

import structlog

from api_types import registry
from api_types.meta import Resource
from controller.errors import (
    ConflictError,
    FieldCause,
    InvalidObjectError,
    NotFoundError,
    StoreUnavailableError,
)
from controller.store.codec import DecodeError, decode_canonical, decode_value
from controller.store.history import HistoryRecord, diff_fields
from controller.store.keys import ObjectKey
from controller.store.objects import Store
from controller.store.results import spec_part
from controller.store.watch import PrefixWatch, WatchCompacted

__all__ = ["DirectWriteNormalizer", "InvalidValueReporter", "Outcome", "is_normalised"]

log = structlog.get_logger(__name__)

DIRECT_WRITE_ACTOR = "etcd-direct-write"
#: The plural of the kind that namespaced objects live in.
NAMESPACES = "namespaces"


def is_normalised(obj: Resource) -> bool:
    metadata = obj.metadata
    return bool(metadata.uid and metadata.generation and metadata.creation_timestamp)


class InvalidValueReporter(Protocol):
    """Called once per invalid stored value, with the validation causes."""

    def __call__(self, key: ObjectKey, mod_revision: int, causes: tuple[FieldCause, ...]) -> None:
        """Report an invalid stored value (the manager posts a Warning event)."""


class Outcome(StrEnum):
    """What :meth:`DirectWriteNormalizer.normalise` did with one stored value."""
    UNCHANGED = "Unchanged"
    NORMALISED = "Normalised"
    INVALID = "Invalid"
    HELD = "Held"  # valid, but its namespace is missing or terminating: not admitted yet
    SUPERSEDED = "Superseded"  # the key moved on while we looked; its next event handles it


@dataclass
class DirectWriteNormalizer:
    """Validates values written straight into etcd and completes their metadata by CAS."""
    store: Store
    report_invalid: InvalidValueReporter
    is_active: Callable[[], bool] = lambda: True
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    #: Keys of held values per namespace, to normalise once the namespace is there.
    held: dict[str, set[ObjectKey]] = field(default_factory=dict)

    def normalise(
        self, etcd_key: bytes, raw: bytes, mod_revision: int, prev_raw: bytes | None = None
    ) -> Outcome:
        key = self.store.layout.parse_object_key(etcd_key)
        if key is None:
            return Outcome.UNCHANGED
        outcome = self._normalise(key, raw, mod_revision, prev_raw)
        if key.plural == NAMESPACES and key.name in self.held:
            self._admit_held(key.name)
        return outcome

    def _normalise(
        self, key: ObjectKey, raw: bytes, mod_revision: int, prev_raw: bytes | None
    ) -> Outcome:
        if self.store.wrote(key, mod_revision):
            return Outcome.UNCHANGED  # the store writes only complete, canonical values
        try:
            raw = self.store.plain(key, raw)  # encrypted Secrets are read like any value
            wire = decode_value(raw)
            # JSON validates fastest by pydantic's own parser; YAML, or an invalid value (to
            # say exactly what is wrong), from the decoded wire form.
            obj = decode_canonical(key, raw)
            if obj is None:
                obj = self.store.validate_at_key(key, wire)
        except DecodeError as exc:
            self.report_invalid(key, mod_revision, (FieldCause("", str(exc)),))
            return Outcome.INVALID
        except InvalidObjectError as exc:
            self.report_invalid(key, mod_revision, exc.causes or (FieldCause("", exc.message),))
            return Outcome.INVALID
        given = obj.metadata
        missing = [
            name
            for name, value in (
                ("uid", given.uid),
                ("generation", given.generation),
                ("creationTimestamp", given.creation_timestamp),
            )
            if value is None
        ]
        stored_revision_field = "resourceVersion" in wire.get("metadata", {})
        is_json = raw.lstrip().startswith(b"{")
        spec_changes = self._unbumped_spec_changes(key, obj, wire, prev_raw)
        if not (missing or stored_revision_field or not is_json or spec_changes):
            return Outcome.UNCHANGED  # e.g. another process's write: no model dump, no diff
        canonical = obj.to_wire()
        metadata = canonical["metadata"]
        if "uid" in missing and key.namespace is not None:
            refusal = self._namespace_refusal(key.namespace)
            if refusal is not None:
                self.held.setdefault(key.namespace, set()).add(key)
                self.report_invalid(key, mod_revision, (FieldCause("metadata.namespace", refusal),))
                return Outcome.HELD
        metadata.pop("resourceVersion", None)
        metadata.setdefault("uid", str(uuid.uuid4()))
        metadata.setdefault("creationTimestamp", self.now().isoformat())
        metadata.setdefault("generation", 1)
        record = None
        if spec_changes:
            metadata["generation"] += 1
            record = HistoryRecord(
                "SpecChanged", DIRECT_WRITE_ACTOR, self.now(), metadata["generation"],
                tuple(spec_changes),
            )  # fmt: skip
        elif "uid" in missing:
            record = HistoryRecord(
                "Created", DIRECT_WRITE_ACTOR, self.now(), metadata["generation"],
                tuple(diff_fields({}, spec_part(canonical))),
            )  # fmt: skip
        try:
            self.store.replace(key, mod_revision, canonical, record)
        except ConflictError:
            return Outcome.SUPERSEDED
        log.info("normalised direct write", key=str(key), missing=missing)
        return Outcome.NORMALISED

    def _namespace_refusal(self, name: str) -> str | None:
        """Why no new object may enter namespace ``name`` now (None: it may)."""
        try:
            namespace = self.store.get(registry.by_plural(NAMESPACES).model, name)
        except NotFoundError:
            return f"namespace {name!r} does not exist: not admitted until it is created"
        except InvalidObjectError:
            return f"namespace {name!r} is not a valid Namespace: not admitted"
        if namespace.metadata.deletion_timestamp is not None:
            return f"namespace {name!r} is being terminated: not admitted"
        return None

    def _admit_held(self, name: str) -> None:
        """Normalise the values held for namespace ``name`` if it now admits them."""
        if self._namespace_refusal(name) is not None:
            return
        for key in self.held.pop(name, set()):
            response = self.store.client.range(self.store.layout.object_key(key))
            for kv in response.kvs:
                self.normalise(bytes(kv.key), bytes(kv.value), int(kv.mod_revision))

    def _unbumped_spec_changes(
        self, key: ObjectKey, obj: Resource, wire: dict[str, Any], prev_raw: bytes | None
    ) -> list[dict[str, Any]]:
        """Spec changes made by a direct write (``obj``, validated from ``wire``) that kept
        the previous generation."""
        generation = obj.metadata.generation
        if prev_raw is None or generation is None:
            return []
        try:
            previous = decode_value(self.store.plain(key, prev_raw))
        except (DecodeError, InvalidObjectError):
            return []
        if previous.get("metadata", {}).get("generation") != generation:
            return []
        before = spec_part(previous)
        if spec_part(wire) == before:
            return []  # the spec as written is the one before, so is its canonical form
        return diff_fields(before, spec_part(obj.to_wire()))

    def run(self, stop: threading.Event) -> None:
        """List then watch the whole registry, normalising every value, until ``stop``."""
        while not stop.is_set():
            try:
                kvs, revision = self.store.client.range_prefix(self.store.layout.registry_root)
                for kv in kvs:
                    if self.is_active():
                        self.normalise(bytes(kv.key), bytes(kv.value), int(kv.mod_revision))
                self._watch(revision + 1, stop)
            except WatchCompacted as exc:  # compacted, or etcd lost history it had sent
                log.info("normaliser watch ended; re-listing", error=str(exc))
            except StoreUnavailableError:
                stop.wait(1.0)
            except Exception:
                # Anything unexpected (an etcd error code we do not retry, a bug on one value):
                # this thread is the tenure's only normaliser, so it starts over from a fresh
                # list rather than ending and leaving direct writes alone until the next tenure.
                log.exception("normaliser failed; re-listing")
                stop.wait(1.0)

    def _watch(self, start_revision: int, stop: threading.Event) -> None:
        watch = PrefixWatch(
            self.store.client, self.store.layout.registry_root, start_revision, prev_kv=True
        )
        finished = threading.Event()

        def stop_watch_on_shutdown() -> None:
            while not finished.is_set():
                if stop.wait(0.5):
                    watch.stop()
                    return

        threading.Thread(target=stop_watch_on_shutdown, daemon=True).start()
        try:
            for batch in watch:
                for event in batch:
                    if event.deleted or not self.is_active():
                        continue
                    self.normalise(event.key, event.value, event.mod_revision, event.prev_value)
        finally:
            finished.set()
