"""The ``--etcd ENDPOINTS`` admin backend: skyctl on the object store itself, no API server.

Where it sits: an implementation of ``skyctl.backend.Backend`` for operators who hold
the etcd endpoints (bootstrap, repair, a dead API server). Its object operations are the API
server's own, in-process (``apiserver.local.LocalBackend`` over ``apiserver.handlers.Resources``),
as a member of ``system:masters``: RBAC is thereby bypassed, but everything else is identical
to a request through the API — schema validation, admission (defaulting, reference checks, the
pool's allowed namespaces), the quota reservation in the write's transaction,
compare-and-swap, and the same error codes. Only the watch is read here directly, from the
store's resumable etcd watch (``controller.store.watch``): every change of the kind,
unfiltered, and 410 Gone when the revision was compacted, as the API answers
(``skyctl.follow`` filters and re-lists).
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from api_types.meta import API_VERSION, Resource
from api_types.registry import KindInfo
from apiserver.auth import MASTERS_GROUP, User
from apiserver.handlers import Resources
from apiserver.local import LocalBackend
from apiserver.rbac import Authorizer
from controller.errors import InvalidObjectError
from controller.store.encryption import SecretCipher
from controller.store.etcd import EtcdClient
from controller.store.keys import KeyLayout
from controller.store.objects import Store
from controller.store.watch import PrefixWatch, WatchCompacted
from skyctl.backend import ApiError, WatchEvent, client_version

__all__ = ["EtcdBackend"]

Wire = dict[str, Any]


class EtcdBackend(LocalBackend):
    """The ``--etcd`` admin backend: the store directly, through the API server's admission."""

    def __init__(
        self, endpoints: list[str], prefix: str = "/skybroker", key_file: str | None = None
    ) -> None:
        self.description = f"etcd {','.join(endpoints)} (prefix {prefix})"
        cipher = SecretCipher.from_file(Path(key_file)) if key_file else None
        self._client = EtcdClient(endpoints)
        self._store = Store(self._client, KeyLayout(prefix), cipher=cipher)
        # The durable history names who made each change: here, the local operator.
        name = f"etcd-admin:{getpass.getuser()}"
        super().__init__(
            # The authorizer's informers are never started: masters are allowed before any
            # lookup.
            Resources(self._store, Authorizer(self._store)),
            User(name, name, frozenset({MASTERS_GROUP})),
        )

    def close(self) -> None:
        self._client.close()

    def watch(
        self,
        info: KindInfo,
        namespace: str | None,
        selector: str | None,
        resource_version: str,
        *,
        fields: str | None = None,
    ) -> Iterator[WatchEvent]:
        """Every change of the kind, unfiltered (the caller applies its selectors, so an
        object that stops matching can be shown as deleted); 410 when compacted."""
        watch = PrefixWatch(
            self._client,
            self._store.layout.kind_prefix(info.plural, namespace),
            int(resource_version) + 1,
            prev_kv=True,
        )
        try:
            yield from self._events(info, watch)
        except WatchCompacted as exc:
            raise ApiError(410, "Gone", f"resourceVersion {resource_version}: {exc}") from None
        finally:
            watch.stop()

    def _events(self, info: KindInfo, watch: PrefixWatch) -> Iterator[WatchEvent]:
        for batch in watch:
            if not batch:  # a progress notification
                metadata = {"resourceVersion": str(watch.last_revision)}
                yield WatchEvent("BOOKMARK", {"kind": info.kind, "metadata": metadata})
            for event in batch:
                raw = event.prev_value if event.deleted else event.value
                obj = self._decode_event(event.key, raw, event.mod_revision)
                if obj is None:
                    continue
                if event.deleted:
                    kind = "DELETED"
                elif event.create_revision == event.mod_revision:
                    kind = "ADDED"
                else:
                    kind = "MODIFIED"
                yield WatchEvent(kind, obj.to_wire())

    def _decode_event(self, key_bytes: bytes, raw: bytes | None, revision: int) -> Resource | None:
        """The object of a watch event at ``revision`` (Secrets decrypted with the key file);
        None for values that do not validate (skipped, as the API server's watch skips them)."""
        key = self._store.layout.parse_object_key(key_bytes)
        if key is None or not raw:
            return None
        try:
            return self._store.decode(key, raw, revision)
        except InvalidObjectError:
            return None

    def can_i(self, verb: str, info: KindInfo, namespace: str | None) -> tuple[bool, str]:
        return True, "the --etcd admin mode is not subject to RBAC"

    def version(self) -> Wire:
        return {
            "server": {"store": self.description, "apiVersion": API_VERSION},
            "client": client_version(),
        }
