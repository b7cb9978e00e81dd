"""The etcd key layout of DESIGN §2, in one place.

Where it sits: every store module builds and parses keys only through ``KeyLayout``::

    {prefix}/registry/{plural}/{namespace}/{name}    namespaced objects
    {prefix}/registry/{plural}/{name}                cluster-scoped objects
    {prefix}/events/{namespace}/{name}               events (leased)
    {prefix}/history/{plural}/{namespace}/{name}/{revision}
    {prefix}/leases/{name}                           leader election and shards
    {prefix}/heartbeats/{namespace}/{uuid}           boot agents' heartbeats (leased, §11)
    {prefix}/rendezvous/records/{uuid}               whom a boot uuid belongs to
    {prefix}/rendezvous/enrollments/{digest}         a dynamic BootConfig's enrollment
    {prefix}/rendezvous/claims/{namespace}/{bootconfig}/{slot}   a claimed dynamic slot
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

__all__ = ["CLUSTER_SCOPE", "EVENTS_PLURAL", "KeyLayout", "ObjectKey"]

#: Events live outside the registry (they carry leases), but are addressed like any object.
EVENTS_PLURAL = "events"

#: The namespace segment used in history keys of cluster-scoped objects.
CLUSTER_SCOPE = "_cluster"
_REVISION_DIGITS = 20


class ObjectKey(NamedTuple):
    """Identifies one object: what a workqueue holds and what a reconcile request carries.

    A named tuple rather than a dataclass: keys are hashed, compared and sorted on every
    cache read and queue operation, and a tuple does that in C.
    """

    plural: str
    namespace: str | None
    name: str

    def __str__(self) -> str:
        return (
            f"{self.plural}/{self.namespace}/{self.name}"
            if self.namespace
            else (f"{self.plural}/{self.name}")
        )

    def said(self, what: str) -> str:
        """A sentence about the object as users name it (kubectl's ``instances "web-1" not
        found in namespace acme``), not by its internal key."""
        where = f" in namespace {self.namespace}" if self.namespace else ""
        return f'{self.plural} "{self.name}" {what}{where}'


@dataclass(frozen=True)
class KeyLayout:
    """The etcd key layout of DESIGN §2 under one prefix (default ``/skybroker``)."""

    prefix: str = "/skybroker"

    def __post_init__(self) -> None:
        if not self.prefix.startswith("/") or self.prefix.endswith("/"):
            raise ValueError(f"key prefix {self.prefix!r} must start with '/' and not end with it")

    # Cached: every watch event and every listed kv is parsed against these two roots.
    @cached_property
    def registry_root(self) -> bytes:
        return f"{self.prefix}/registry/".encode()

    @cached_property
    def _events_root(self) -> bytes:
        return self.events_prefix()

    def kind_prefix(self, plural: str, namespace: str | None = None) -> bytes:
        if plural == EVENTS_PLURAL:
            return self.events_prefix(namespace)
        if namespace is None:
            return f"{self.prefix}/registry/{plural}/".encode()
        return f"{self.prefix}/registry/{plural}/{namespace}/".encode()

    def object_key(self, key: ObjectKey) -> bytes:
        if key.plural == EVENTS_PLURAL and key.namespace:
            return self.event_key(key.namespace, key.name)
        if key.namespace is None:
            return f"{self.prefix}/registry/{key.plural}/{key.name}".encode()
        return f"{self.prefix}/registry/{key.plural}/{key.namespace}/{key.name}".encode()

    def parse_object_key(self, raw: bytes) -> ObjectKey | None:
        """Turn an object's etcd key back into an ObjectKey (None if it is not one)."""
        events_root = self._events_root
        if raw.startswith(events_root):
            parts = raw[len(events_root) :].decode("utf-8", errors="replace").split("/")
            if len(parts) == 2 and all(parts):
                return ObjectKey(EVENTS_PLURAL, parts[0], parts[1])
            return None
        root = self.registry_root
        if not raw.startswith(root):
            return None
        parts = raw[len(root) :].decode("utf-8", errors="replace").split("/")
        if len(parts) == 2 and all(parts):
            return ObjectKey(parts[0], None, parts[1])
        if len(parts) == 3 and all(parts):
            return ObjectKey(parts[0], parts[1], parts[2])
        return None

    def history_prefix(self, key: ObjectKey) -> bytes:
        namespace = key.namespace or CLUSTER_SCOPE
        return f"{self.prefix}/history/{key.plural}/{namespace}/{key.name}/".encode()

    def history_key(self, key: ObjectKey, sequence: int) -> bytes:
        return self.history_prefix(key) + f"{sequence:0{_REVISION_DIGITS}d}".encode()

    @property
    def history_root(self) -> bytes:
        return f"{self.prefix}/history/".encode()

    def events_prefix(self, namespace: str | None = None) -> bytes:
        if namespace is None:
            return f"{self.prefix}/events/".encode()
        return f"{self.prefix}/events/{namespace}/".encode()

    def event_key(self, namespace: str, name: str) -> bytes:
        return f"{self.prefix}/events/{namespace}/{name}".encode()

    def lease_key(self, name: str) -> bytes:
        return f"{self.prefix}/leases/{name}".encode()

    def heartbeats_prefix(self, namespace: str | None = None) -> bytes:
        if namespace is None:
            return f"{self.prefix}/heartbeats/".encode()
        return f"{self.prefix}/heartbeats/{namespace}/".encode()

    def heartbeat_key(self, namespace: str, uuid: str) -> bytes:
        return f"{self.prefix}/heartbeats/{namespace}/{uuid}".encode()

    def parse_heartbeat_key(self, raw: bytes) -> tuple[str, str] | None:
        """(namespace, uuid) of a heartbeat key; None if it is not one."""
        root = self.heartbeats_prefix()
        if not raw.startswith(root):
            return None
        parts = raw[len(root) :].decode("utf-8", errors="replace").split("/")
        return (parts[0], parts[1]) if len(parts) == 2 and all(parts) else None

    def rendezvous_records_prefix(self) -> bytes:
        return f"{self.prefix}/rendezvous/records/".encode()

    def rendezvous_record_key(self, uuid: str) -> bytes:
        return self.rendezvous_records_prefix() + uuid.encode()

    def parse_rendezvous_record_key(self, raw: bytes) -> str | None:
        """The uuid of a record key; None if it is not one."""
        root = self.rendezvous_records_prefix()
        uuid = raw[len(root) :].decode("utf-8", errors="replace")
        return uuid if raw.startswith(root) and uuid and "/" not in uuid else None

    def enrollments_prefix(self) -> bytes:
        return f"{self.prefix}/rendezvous/enrollments/".encode()

    def enrollment_key(self, digest: str) -> bytes:
        return self.enrollments_prefix() + digest.encode()

    def claims_root(self) -> bytes:
        return f"{self.prefix}/rendezvous/claims/".encode()

    def claims_prefix(self, namespace: str, bootconfig: str) -> bytes:
        return self.claims_root() + f"{namespace}/{bootconfig}/".encode()

    def parse_claim_key(self, raw: bytes) -> tuple[str, str, int] | None:
        """(namespace, bootconfig, slot) of a claim key; None if it is not one."""
        root = self.claims_root()
        if not raw.startswith(root):
            return None
        parts = raw[len(root) :].decode("utf-8", errors="replace").split("/")
        if len(parts) != 3 or not all(parts) or not parts[2].isdigit():
            return None
        return parts[0], parts[1], int(parts[2])

    def claim_key(self, namespace: str, bootconfig: str, slot: int) -> bytes:
        return self.claims_prefix(namespace, bootconfig) + str(slot).encode()

    @property
    def compaction_key(self) -> bytes:
        """Its ``mod_revision`` is the revision the last compaction round recorded."""
        return f"{self.prefix}/compaction".encode()
