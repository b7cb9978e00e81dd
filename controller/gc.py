"""Owner-reference garbage collection: dependents go once all their owners are gone.

Where it sits: a periodic maintenance loop of the manager (leader only). Kubernetes'
background propagation: an object whose ``ownerReferences`` all name uids that no longer
exist is deleted through the store (so its own finalizers still run). Every kind is listed at
one pinned revision, so an owner created a moment before its dependent is never missed.

A sweep reads only what it decides on — each value's uid, owners and deletion mark — from the
JSON, a page at a time, instead of validating every stored object into a model and holding
them all at once (at 10,000 Instances and their Events that cost about a second per sweep and
left its peak in the process's RSS). A value that is not JSON with that metadata (YAML not
normalised yet, an unreadable Secret) is decoded by the store as before, and a dependent is
decoded and validated before it is deleted, so an invalid value is never collected. An owner
whose stored value exists but does not validate still exists: its dependents stay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from api_types import registry
from api_types.meta import Resource
from controller.errors import ConflictError, InvalidObjectError, NotFoundError
from controller.store.keys import ObjectKey
from controller.store.objects import Store

__all__ = ["GarbageCollector"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class _Stored:
    """What a sweep knows of one stored value."""

    key: ObjectKey
    model: type[Resource]
    revision: int
    uid: str | None
    owners: tuple[str, ...]
    deleting: bool


class GarbageCollector:
    """Deletes objects whose every owner (``ownerReferences`` by uid) is gone; one pass per call."""

    def __init__(
        self,
        store: Store,
        kinds: Sequence[type[Resource]] | None = None,
        *,
        is_active: Callable[[], bool] = lambda: True,
    ) -> None:
        self.store = store
        self.kinds = tuple(kinds or (info.model for info in registry.all_kinds()))
        self.is_active = is_active

    def collect_once(self) -> list[ObjectKey]:
        """One sweep; returns the keys of the dependents it deleted (or marked for deletion)."""
        stored = list(self._scan())
        live_uids = {entry.uid for entry in stored if entry.uid}
        collected = []
        for entry in stored:
            if not entry.owners or any(uid in live_uids for uid in entry.owners):
                continue
            if entry.deleting or not self.is_active():
                continue
            if self._delete(entry):
                log.info("garbage-collected dependent", key=str(entry.key), owners=entry.owners)
                collected.append(entry.key)
        return collected

    def _scan(self) -> Iterator[_Stored]:
        pinned = 0  # the first page's revision, for every kind
        for model in self.kinds:
            prefix = self.store.layout.kind_prefix(model.PLURAL, None)
            for kvs, page_revision, _ in self.store.client.range_pages(prefix, revision=pinned):
                pinned = page_revision
                for kv in kvs:
                    key = self.store.layout.parse_object_key(bytes(kv.key))
                    if key is not None:
                        entry = self._read(key, model, bytes(kv.value), int(kv.mod_revision))
                        if entry is not None:
                            yield entry

    def _read(
        self, key: ObjectKey, model: type[Resource], raw: bytes, revision: int
    ) -> _Stored | None:
        """The value's uid, owners and deletion mark; None if it cannot be read at all."""
        try:
            metadata = _json_metadata(self.store.plain(key, raw))
            if metadata is None:
                meta = self.store.decode(key, raw, revision, remember=False).metadata
                owners = tuple(ref.uid for ref in meta.owner_references)
                deleting = meta.deletion_timestamp is not None
                return _Stored(key, model, revision, meta.uid, owners, deleting)
        except InvalidObjectError:
            return None
        owners = tuple(ref["uid"] for ref in metadata.get("ownerReferences", ()))
        deleting = metadata.get("deletionTimestamp") is not None
        return _Stored(key, model, revision, metadata["uid"], owners, deleting)

    def _delete(self, entry: _Stored) -> bool:
        """Delete a dependent whose owners are gone, if it is still the value the sweep read
        (else the next sweep decides again) and a valid object: the store's delete reads and
        validates it first, so an invalid value is never collected."""
        try:
            self.store.delete(
                entry.model,
                entry.key.name,
                entry.key.namespace,
                resource_version=str(entry.revision),
                actor="garbage-collector",
            )
        except (NotFoundError, ConflictError, InvalidObjectError):
            return False
        return True


def _json_metadata(raw: bytes) -> dict[str, Any] | None:
    """``metadata`` of a JSON value if every field a sweep reads has its stored shape, else
    None (the store's full decode then says what the value is)."""
    if not raw.startswith(b"{"):
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    metadata = value.get("metadata") if isinstance(value, dict) else None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("uid"), str):
        return None
    references = metadata.get("ownerReferences", [])
    if not isinstance(references, list) or not all(
        isinstance(ref, dict) and isinstance(ref.get("uid"), str) for ref in references
    ):
        return None
    return metadata
