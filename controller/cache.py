"""The informer: one kind listed and watched from etcd into an indexed in-memory cache.

Where it sits: etcd watch → **informer cache** → handler → workqueue → workers → reconcile →
status write → events/history. Reconcilers read desired state from here, never from etcd, and
handlers registered here turn each change into workqueue keys.

How it stays exact:

* **List, then watch from the list's revision + 1.** The list is paged and pinned to one
  revision by the store, so the cache starts from a consistent snapshot and the watch delivers
  every later change exactly once, in revision order. ``PrefixWatch`` resumes from the last
  delivered revision after any stream error, so an etcd restart is invisible here.
* **Compaction.** When etcd has compacted past the watch's revision (``WatchCompacted``), the
  informer re-lists and compares the fresh snapshot with its cache, emitting the differences as
  synthetic adds, updates and deletes: handlers never miss a change, they may only see several
  changes of one object collapsed into one (harmless: reconciliation is level-triggered).
* **Invalid values.** A stored value that does not decode or validate (a bad direct write) is
  not an object: ``on_invalid(key, mod_revision, causes, raw)`` is called once per written
  revision, and if the key held a valid object before, that object leaves the cache with an
  ``on_delete`` — reconcilers then see it as absent and leave it (and its cloud resources)
  alone until a valid value is written again.

Reads are thread-safe. :meth:`Informer.get` returns a private deep copy, safe to modify and
write back; :meth:`Informer.list` and :meth:`Informer.by_index` return the cached models
themselves, which callers must treat as read-only (copying every object of a large list on
every scan would cost more than the scan).

Memory: a relist decodes a page at a time, so it never holds the whole prefix's raw values
beside their models, and each model entering the cache is shrunk by ``controller.compact``
(safe because cached models are read-only): a cached Instance costs about half of what a
freshly validated one does.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import structlog

from api_types.meta import Resource
from controller.compact import compact
from controller.errors import FieldCause, InvalidObjectError
from controller.labels import LabelSelector
from controller.metrics import RuntimeMetrics, runtime_metrics
from controller.store.keys import ObjectKey
from controller.store.listwatch import ListWatch
from controller.store.objects import Store
from controller.store.watch import WatchCompacted, WatchEvent

__all__ = ["NAMESPACE_INDEX", "Informer", "InvalidHandler"]

R = TypeVar("R", bound=Resource)

log = structlog.get_logger(__name__)

#: The built-in index: namespace → keys ("" for cluster-scoped objects).
NAMESPACE_INDEX = "namespace"


class InvalidHandler(Protocol):
    """Called for a stored value that fails validation (the manager posts a Warning for it)."""

    def __call__(
        self, key: ObjectKey, mod_revision: int, causes: tuple[FieldCause, ...], raw: bytes
    ) -> None: ...


@dataclass(frozen=True)
class _Handlers(Generic[R]):
    on_add: Callable[[R], None] | None
    on_update: Callable[[R, R], None] | None
    on_delete: Callable[[R], None] | None
    on_invalid: InvalidHandler | None


@dataclass(frozen=True)
class _Change(Generic[R]):
    """One notification: an add (no old), update, delete (no new), or invalid value (neither)."""

    key: ObjectKey
    old: R | None
    new: R | None
    revision: int = 0
    causes: tuple[FieldCause, ...] = ()
    raw: bytes = b""


class Informer(ListWatch, Generic[R]):
    """List + watch of one kind (``model.PLURAL``) into an indexed cache; one per kind (the
    loop is ``controller.store.listwatch``'s)."""

    def __init__(
        self, store: Store, model: type[R], *, metrics: RuntimeMetrics | None = None
    ) -> None:
        super().__init__(
            store.client, store.layout.kind_prefix(model.PLURAL), f"informer[{model.PLURAL}]"
        )
        self.model = model
        self._store = store
        self._metrics = metrics or runtime_metrics()
        # _lock guards the cache and indexes (held briefly, by readers too); _dispatch orders
        # notifications and handler registration, so a new handler's replayed adds come
        # before any update it is sent afterwards.
        self._lock = threading.RLock()
        self._dispatch = threading.RLock()
        self._items: dict[ObjectKey, R] = {}
        self._invalid_revisions: dict[ObjectKey, int] = {}
        self._indexers: dict[str, Callable[[R], list[str]]] = {
            NAMESPACE_INDEX: lambda obj: [obj.metadata.namespace or ""]
        }
        self._indices: dict[str, dict[str, set[ObjectKey]]] = {NAMESPACE_INDEX: {}}
        self._handlers: list[_Handlers[R]] = []

    # --- registration ---------------------------------------------------------------------

    def add_handlers(
        self,
        *,
        on_add: Callable[[R], None] | None = None,
        on_update: Callable[[R, R], None] | None = None,
        on_delete: Callable[[R], None] | None = None,
        on_invalid: InvalidHandler | None = None,
    ) -> None:
        """Register handlers; objects already cached are replayed to ``on_add`` first.

        Invalid values seen before registration are not replayed (the informer keeps no raw
        bytes): register ``on_invalid`` before :meth:`start`.
        """
        handlers = _Handlers(on_add, on_update, on_delete, on_invalid)
        with self._dispatch:
            if on_add is not None:
                for obj in self.list():
                    self._call(on_add, obj)
            self._handlers.append(handlers)

    def add_index(self, name: str, index: Callable[[R], list[str]]) -> None:
        """Index the cache by ``index(obj)`` values; :meth:`by_index` looks them up."""
        with self._lock:
            if name in self._indexers:
                raise ValueError(f"index {name!r} already exists on {self.model.PLURAL}")
            self._indexers[name] = index
            self._indices[name] = {}
            for key, obj in self._items.items():
                self._index_one(name, key, obj)

    # --- reads ----------------------------------------------------------------------------

    def get(self, key: ObjectKey) -> R | None:
        """A deep copy of the cached object, or None if absent.

        Read-your-writes: when this process's store has written (or read) a newer revision of
        the key than the watch has delivered yet, that one is returned, so a reconcile right
        after a write starts from what it wrote instead of losing a CAS race against itself.
        """
        with self._lock:
            obj = self._items.get(key)
        cached = int(obj.metadata.resource_version or 0) if obj is not None else 0
        newer = self._store.newer_than(key, cached) if obj is not None else None
        if isinstance(newer, self.model):
            return newer
        return None if obj is None else obj.clone()

    def peek(self, key: ObjectKey) -> R | None:
        """The cached object itself (read-only, like :meth:`list`), as the watch delivered it:
        for looking at other objects; :meth:`get` the one a reconcile changes."""
        with self._lock:
            return self._items.get(key)

    def list(self, namespace: str | None = None, selector: LabelSelector | None = None) -> list[R]:
        """Cached objects (read-only), sorted by key, optionally in a namespace and selected."""
        with self._lock:
            if namespace is None:
                objects = [self._items[k] for k in sorted(self._items)]
            else:
                keys = self._indices[NAMESPACE_INDEX].get(namespace, set())
                objects = [self._items[k] for k in sorted(keys)]
        if selector is None or selector.empty:
            return objects
        return [obj for obj in objects if selector.matches(obj.metadata.labels)]

    def by_index(self, name: str, value: str) -> builtins.list[R]:
        """Cached objects (read-only) whose index ``name`` yields ``value``, sorted by key."""
        with self._lock:
            if name not in self._indices:
                raise KeyError(f"no index {name!r} on {self.model.PLURAL}")
            return [self._items[k] for k in sorted(self._indices[name].get(value, set()))]

    def index_counts(self, name: str) -> dict[str, int]:
        """How many cached objects yield each value of index ``name`` (values none yields are
        absent): an aggregate in O(values), where :meth:`by_index` copies and sorts objects."""
        with self._lock:
            if name not in self._indices:
                raise KeyError(f"no index {name!r} on {self.model.PLURAL}")
            return {value: len(keys) for value, keys in self._indices[name].items()}

    def keys(self) -> builtins.list[ObjectKey]:
        with self._lock:
            return list(self._items)

    # --- indexes (callers hold _lock) -----------------------------------------------------

    def _index_one(self, name: str, key: ObjectKey, obj: R) -> None:
        for value in self._indexers[name](obj):
            self._indices[name].setdefault(value, set()).add(key)

    def _unindex_one(self, name: str, key: ObjectKey, obj: R) -> None:
        index = self._indices[name]
        for value in self._indexers[name](obj):
            keys = index.get(value)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del index[value]

    def _put(self, key: ObjectKey, obj: R | None) -> R | None:
        """Store (or with None remove) one object, keeping every index in step; returns old."""
        old = self._items.pop(key, None)
        for name in self._indexers:
            if old is not None:
                self._unindex_one(name, key, old)
            if obj is not None:
                self._index_one(name, key, obj)
        if obj is not None:
            self._items[key] = obj
        return old

    # --- the list/watch loop --------------------------------------------------------------

    def _compacted(self, error: WatchCompacted) -> None:
        log.info("watch compacted; re-listing", kind=self.model.KIND, error=str(error))
        self._metrics.informer_relists.labels(kind=self.model.KIND).inc()

    def _decode(self, key: ObjectKey, raw: bytes, revision: int) -> R | _Change[R]:
        """The model stored at ``key``, or the invalid-value notification describing why not."""
        try:
            obj = self._store.decode(key, raw, revision)
        except InvalidObjectError as exc:
            causes = exc.causes or (FieldCause("", exc.message),)
            return _Change(key, None, None, revision, causes, raw)
        if not isinstance(obj, self.model):
            return _Change(key, None, None, revision, (FieldCause("kind", "wrong kind"),), raw)
        compact(obj)  # it is cached from here on, so read-only
        return obj

    def _relist(self) -> None:
        # Only this thread changes _items, so it reads them without the lock; a key whose cached
        # object is at the listed mod_revision costs a parse, a lookup and a set insert.
        items = self._items
        kept: set[ObjectKey] = set()
        decoded: dict[ObjectKey, R] = {}
        invalid: dict[ObjectKey, int] = {}
        changes: builtins.list[_Change[R]] = []
        revision = 0
        parse_key = self._store.layout.parse_object_key
        # Decoded a page at a time (every page at the first one's revision): the raw values are
        # not kept, so a relist never holds the whole prefix's bytes beside its models.
        for page, pinned, _ in self._store.client.range_pages(self._prefix):
            revision = pinned
            for kv in page:
                key = parse_key(kv.key)
                if key is None:
                    continue
                cached = items.get(key)
                if cached is not None and cached.metadata.resource_version == str(kv.mod_revision):
                    # A key's value at one mod_revision never changes: what the cache holds for
                    # it is that value decoded, so a re-list after a broken watch decodes only
                    # what changed while it was broken.
                    kept.add(key)
                    continue
                result = self._decode(key, kv.value, int(kv.mod_revision))
                if isinstance(result, _Change):
                    invalid[key] = result.revision
                    if self._invalid_revisions.get(key) != result.revision:
                        changes.append(result)
                else:
                    decoded[key] = result
        self._invalid_revisions = invalid
        with self._dispatch:
            with self._lock:
                # Neither kept nor decoded: deleted, or now invalid (gone from the cache too).
                gone = items.keys() - kept - decoded.keys()
                for key in sorted(decoded.keys() | gone):
                    old, new = items.get(key), decoded.get(key)
                    self._put(key, new)
                    changes.append(_Change(key, old, new))
                    if new is None:
                        self._store.forget(key)
                self.last_revision = revision
            self._notify(changes)

    def _apply(self, batch: builtins.list[WatchEvent], revision: int) -> None:
        changes: builtins.list[_Change[R]] = []
        with self._dispatch:
            for event in batch:
                key = self._store.layout.parse_object_key(event.key)
                if key is None:
                    continue
                new: R | None = None
                if event.deleted:
                    self._invalid_revisions.pop(key, None)
                    self._store.forget(key)
                else:
                    decoded = self._decode(key, event.value, event.mod_revision)
                    if isinstance(decoded, _Change):
                        self._invalid_revisions[key] = event.mod_revision
                        changes.append(decoded)
                    else:
                        self._invalid_revisions.pop(key, None)
                        new = decoded
                with self._lock:
                    old = self._items.get(key)
                    if old is None and new is None:
                        continue
                    if old is not None and new is not None and _same_revision(old, new):
                        continue  # a re-delivered event
                    self._put(key, new)
                changes.append(_Change(key, old, new))
            with self._lock:
                self.last_revision = max(self.last_revision, revision)
            self._notify(changes)

    # --- notifications --------------------------------------------------------------------

    def _notify(self, changes: builtins.list[_Change[R]]) -> None:
        for change in changes:
            kind = _change_type(change)
            self._metrics.informer_events.labels(kind=self.model.KIND, type=kind).inc()
            for handlers in list(self._handlers):
                if kind == "invalid" and handlers.on_invalid is not None:
                    self._call(
                        handlers.on_invalid, change.key, change.revision, change.causes, change.raw
                    )
                elif kind == "add" and handlers.on_add is not None:
                    self._call(handlers.on_add, change.new)
                elif kind == "update" and handlers.on_update is not None:
                    self._call(handlers.on_update, change.old, change.new)
                elif kind == "delete" and handlers.on_delete is not None:
                    self._call(handlers.on_delete, change.old)

    def _call(self, handler: Callable[..., None], *args: object) -> None:
        """Run one handler; its failure is logged and never stops the informer."""
        try:
            handler(*args)
        except Exception:
            log.exception("informer event handler failed", kind=self.model.KIND)


def _same_revision(old: Resource, new: Resource) -> bool:
    return old.metadata.resource_version == new.metadata.resource_version


def _change_type(change: _Change[R]) -> str:
    if change.old is None and change.new is None:
        return "invalid"
    if change.old is None:
        return "add"
    return "delete" if change.new is None else "update"
