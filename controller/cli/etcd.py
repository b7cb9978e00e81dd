"""The ``--etcd ENDPOINTS`` admin backend: skyctl on the object store itself, no API server.

Where it sits: an implementation of ``controller.cli.backend.Backend`` for operators who hold
the etcd endpoints (bootstrap, repair, a dead API server). It runs the API server's own
resource operations (``controller.apiserver.handlers.Resources``) in-process as a member of
``system:masters``: RBAC is thereby bypassed, but everything else is identical to a request
through the API — schema validation, admission (defaulting, reference checks, the pool's
allowed namespaces), the quota reservation in the write's transaction, compare-and-swap, and
the same error codes. Only the watch is read here directly, from the store's resumable etcd
watch (``controller.store.watch``).
"""

from __future__ import annotations

import builtins
import getpass
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from api_types import registry
from api_types.meta import API_VERSION, Resource
from api_types.registry import KindInfo
from controller.apiserver.auth import MASTERS_GROUP, User
from controller.apiserver.handlers import Resources, parse_selector
from controller.apiserver.paths import Target
from controller.apiserver.rbac import Authorizer
from controller.apiserver.status import error_from
from controller.cli.backend import ApiError, ListResult, WatchEvent, client_version, deleted
from controller.errors import InvalidObjectError
from controller.store.codec import DecodeError, decode_value
from controller.store.encryption import SecretCipher
from controller.store.etcd import EtcdClient
from controller.store.keys import KeyLayout, ObjectKey
from controller.store.objects import Store
from controller.store.watch import PrefixWatch

__all__ = ["EtcdBackend"]

Wire = dict[str, Any]
T = TypeVar("T")


def _call(operation: Callable[[], T]) -> T:
    """Run one API operation; its failure becomes the ApiError the REST API would answer."""
    try:
        return operation()
    except Exception as exc:
        error = error_from(exc)
        causes = [(c.field, c.message) for c in error.causes]
        raise ApiError(error.code, error.reason, error.message, causes) from None


def _target(obj: Wire) -> Target:
    info = registry.by_kind(str(obj.get("kind")))
    metadata = obj.get("metadata") or {}
    return Target(info, metadata.get("namespace") if info.namespaced else None)


class EtcdBackend:
    def __init__(
        self, endpoints: list[str], prefix: str = "/skybroker", key_file: str | None = None
    ) -> None:
        self.description = f"etcd {','.join(endpoints)} (prefix {prefix})"
        cipher = SecretCipher.from_file(Path(key_file)) if key_file else None
        self._client = EtcdClient(endpoints)
        self._store = Store(self._client, KeyLayout(prefix), cipher=cipher)
        # The authorizer's informers are never started: masters are allowed before any lookup.
        self._resources = Resources(self._store, Authorizer(self._store))
        # The durable history names who made each change: here, the local operator.
        name = f"etcd-admin:{getpass.getuser()}"
        self._user = User(name, name, frozenset({MASTERS_GROUP}))

    def close(self) -> None:
        self._client.close()

    def get(self, info: KindInfo, namespace: str | None, name: str) -> Wire:
        return _call(lambda: self._resources.get(self._user, Target(info, namespace, name)))

    def list(self, info: KindInfo, namespace: str | None, selector: str | None) -> ListResult:
        listed = _call(
            lambda: self._resources.list(self._user, Target(info, namespace), selector, 0, None)
        )
        return ListResult(listed["items"], str(listed["metadata"]["resourceVersion"]))

    def create(self, obj: Wire, *, dry_run: bool) -> Wire:
        return _call(lambda: self._resources.create(self._user, _target(obj), obj, dry_run))

    def update(self, obj: Wire, *, dry_run: bool) -> Wire:
        def update() -> Wire:
            target = _target(obj)
            named = Target(target.info, target.namespace, (obj.get("metadata") or {}).get("name"))
            return self._resources.update(self._user, named, obj, dry_run)

        return _call(update)

    def delete(self, info: KindInfo, namespace: str | None, name: str, *, dry_run: bool) -> Wire:
        target = Target(info, namespace, name)
        return deleted(
            info,
            namespace,
            name,
            _call(lambda: self._resources.delete(self._user, target, dry_run)),
        )

    def watch(
        self, info: KindInfo, namespace: str | None, selector: str | None, resource_version: str
    ) -> Iterator[WatchEvent]:
        wanted = _call(lambda: parse_selector(selector))
        layout = self._store.layout
        watch = PrefixWatch(
            self._client,
            layout.kind_prefix(info.plural, namespace),
            int(resource_version) + 1,
            prev_kv=True,
        )
        try:
            for batch in watch:
                if not batch:  # a progress notification
                    metadata = {"resourceVersion": str(watch.last_revision)}
                    yield WatchEvent("BOOKMARK", {"kind": info.kind, "metadata": metadata})
                for event in batch:
                    key = layout.parse_object_key(event.key)
                    raw = event.prev_value if event.deleted else event.value
                    obj = self._decode_event(key, raw)
                    if obj is None or not wanted.matches(obj.metadata.labels):
                        continue
                    obj.metadata.resource_version = str(event.mod_revision)
                    if event.deleted:
                        kind = "DELETED"
                    elif event.create_revision == event.mod_revision:
                        kind = "ADDED"
                    else:
                        kind = "MODIFIED"
                    yield WatchEvent(kind, obj.to_wire())
        finally:
            watch.stop()

    def _decode_event(self, key: ObjectKey | None, raw: bytes | None) -> Resource | None:
        """The object of a watch event; None for values that do not validate (skipped, as the
        API server's watch skips them)."""
        if key is None or not raw:
            return None
        try:
            return self._store.validate_at_key(key, decode_value(raw))
        except (DecodeError, InvalidObjectError):
            return None

    def history(self, info: KindInfo, namespace: str | None, name: str) -> builtins.list[Wire]:
        target = Target(info, namespace, name, "history")
        items: builtins.list[Wire] = _call(lambda: self._resources.history(self._user, target))[
            "items"
        ]
        return items

    def can_i(self, verb: str, info: KindInfo, namespace: str | None) -> tuple[bool, str]:
        return True, "the --etcd admin mode is not subject to RBAC"

    def version(self) -> Wire:
        return {
            "server": {"store": self.description, "apiVersion": API_VERSION},
            "client": client_version(),
        }
