"""Race-free quota: usage reserved in the same etcd transaction as the write that causes it.

Where it sits: in admission, just before the store write. For a write that changes a
namespace's usage (creating, resizing or deleting an Instance or a Volume), every Quota of the
namespace is read (from the API server's cache, see ``lookups``), the new ``status.used``
computed and checked against ``spec.hard``, and the write is sent with
:class:`~controller.store.results.TxnExtras` that (a) compare each Quota's ``mod_revision`` with
the one read, (b) compare that no Quota of the namespace was written (or created) after the
revision the quotas were read at, and (c) put each Quota with the new usage. Either the object
and every Quota change together or nothing does; a concurrent write that moved or added a Quota
makes the transaction fail and the reservation is recomputed from quotas read from etcd — so
concurrent creates can never exceed a limit, and a namespace without quotas costs no read at
all. The quota reconciler recomputes ``status.used`` from the objects periodically, which
repairs what admission cannot see (direct writes, objects whose finalizers ran later).

What an object uses:

- Instance: 1 instance; cpu and memoryMiB from ``spec.hardware`` — inline values (an exact
  number, or a range's ``min``), or the HardwareProfile's minimums; an explicit provider
  ``size`` counts 0 cpu and 0 memory (its shape is only known to the cloud);
- Volume: 1 volume and ``spec.sizeGiB`` GiB;
- anything else: nothing.

Usage is released when the object leaves the store (a delete without finalizers, or the write
that removes the last finalizer), as Kubernetes does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from api_types.accounts import HardwareProfile
from api_types.common import as_range
from api_types.compute import Instance
from api_types.meta import Resource
from api_types.storage import Volume
from api_types.tenancy import Quota, QuotaUsage
from apiserver.lookups import Lookups, QuotaSnapshot
from apiserver.status import ApiError
from controller.errors import ConflictError, NotFoundError
from controller.store.codec import encode_value
from controller.store.etcd import cmp_mod_revision, cmp_prefix_unchanged_since, op_put
from controller.store.results import TxnExtras

__all__ = ["Usage", "initial_usage", "usage_of", "with_reservation"]

T = TypeVar("T")

#: Wire name → amount, in the shape of ``Quota.status.used``.
Usage = dict[str, int]
#: Wire name → attribute name (QuotaUsage and QuotaLimits share them).
_ATTRS = {info.alias or name: name for name, info in QuotaUsage.model_fields.items()}
_NAMES = tuple(_ATTRS)
_RETRY_FOR = 15.0


def _zero() -> Usage:
    return dict.fromkeys(_NAMES, 0)


def usage_of(lookups: Lookups, obj: Resource | None) -> Usage:
    """What ``obj`` counts against its namespace's quota (zero for None)."""
    usage = _zero()
    if isinstance(obj, Volume):
        usage["volumes"], usage["volumeGiB"] = 1, obj.spec.size_gib
    elif isinstance(obj, Instance):
        usage["instances"] = 1
        hardware = obj.spec.hardware
        cpu, memory = as_range(hardware.cpu), as_range(hardware.memory_mib)
        if hardware.profile is not None:
            try:
                profile = lookups.get(HardwareProfile, hardware.profile).spec
            except NotFoundError:
                profile = None
            cpu, memory = (profile.cpu, profile.memory_mib) if profile else (None, None)
        usage["cpu"] = (cpu.min if cpu else None) or 0
        usage["memoryMiB"] = (memory.min if memory else None) or 0
    return usage


def initial_usage(lookups: Lookups, namespace: str) -> Usage:
    """What a namespace uses now: the starting ``status.used`` of a new Quota."""
    total = _zero()
    for model in (Instance, Volume):
        for obj in lookups.store.list(model, namespace).items:
            for name, amount in usage_of(lookups, obj).items():
                total[name] += amount
    return total


def _reserve(lookups: Lookups, namespace: str, delta: Usage, snapshot: QuotaSnapshot) -> TxnExtras:
    """The transaction extras applying ``delta`` to every Quota of the namespace (403 if over)."""
    store = lookups.store
    prefix = store.layout.kind_prefix(Quota.PLURAL, namespace)
    compares = [cmp_prefix_unchanged_since(prefix, snapshot.revision)]
    operations = []
    for quota in snapshot.quotas:
        used = quota.status.used
        new = {name: max(0, getattr(used, _ATTRS[name]) + delta[name]) for name in _NAMES}
        over = [
            name
            for name in QuotaUsage.model_validate(new).exceeds(quota.spec.hard)
            if delta[name] > 0
        ]
        if over:
            detail = ", ".join(
                f"{name}: requested {delta[name]}, used {getattr(used, _ATTRS[name])}, "
                f"limited {getattr(quota.spec.hard, _ATTRS[name])}"
                for name in over
            )
            raise ApiError(403, "Forbidden", f"exceeded quota: {quota.metadata.name}, {detail}")
        wire = quota.to_wire()
        wire["metadata"].pop("resourceVersion", None)
        wire["status"]["used"] = new
        etcd_key = store.layout.object_key(store.key_of(quota))
        compares.append(cmp_mod_revision(etcd_key, int(str(quota.metadata.resource_version))))
        operations.append(op_put(etcd_key, encode_value(wire)))
    return TxnExtras(compares, operations)


def with_reservation(
    lookups: Lookups,
    namespace: str | None,
    delta: Usage,
    write: Callable[[TxnExtras | None], T],
) -> T:
    """Run ``write(extras)`` with ``delta`` reserved atomically; re-reserve when a Quota moved."""
    if namespace is None or not any(delta.values()):
        return write(None)
    deadline = time.monotonic() + _RETRY_FOR
    snapshot = lookups.quotas(namespace)
    while True:
        try:
            return write(_reserve(lookups, namespace, delta, snapshot))
        except ConflictError:
            # A Quota moved or appeared (someone reserved first, or the cache lagged behind):
            # recompute from etcd. If etcd shows the very quotas an etcd read gave before, the
            # object's own precondition failed: the caller's conflict, reported.
            fresh = lookups.stored_quotas(namespace)
            same = not snapshot.cached and fresh.revisions() == snapshot.revisions()
            if same or time.monotonic() > deadline:
                raise
            snapshot = fresh
