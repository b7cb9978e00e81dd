"""Race-free quota: usage reserved in the same etcd transaction as the write that causes it.

Where it sits: in admission, just before the store write. For a write that changes a
namespace's usage (creating, resizing or deleting an Instance or a Volume), every Quota of the
namespace is read (from the API server's cache, see ``lookups``), the new ``status.used``
computed and checked against ``spec.hard``, and the write is sent with
:class:`~controller.store.results.TxnExtras` that (a) compare that no Quota of the namespace was
written (or created) after the revision the quotas were read at, and (b) write each Quota's
new usage through the store (``StatusWrite``: a CAS on the resourceVersion read, a history
record of the usage it changes, remembered by the store as its own write). Either the object
and every Quota change together or nothing does; a concurrent write that moved or added a Quota
makes the transaction fail and the reservation is recomputed from quotas read from etcd — so
concurrent creates can never exceed a limit, and a namespace without quotas costs no read at
all. The quota reconciler recomputes ``status.used`` from the objects periodically, which
repairs what admission cannot see (direct writes, objects whose finalizers ran later).

What an object uses is ``api_types.usage_of`` at its declared minimum (the reconcilers count
with the same function), the HardwareProfile an Instance names read from the cache.

Usage is released when the object leaves the store (a delete without finalizers, or the write
that removes the last finalizer), as Kubernetes does.

In a staged view (``Lookups.staged``: the apply engine's all-or-nothing plan dry-runs each
document as if the ones before it were written) the staged objects count too, with the same
arithmetic as a write: each staged Instance or Volume adds ``usage_change(staged, stored)``
to the usage every Quota of its namespace shows, and a staged Quota limits the documents
after it (starting from its stored usage, or the namespace's, as a create would). So a revision
whose Instances fit one by one but not together fails its plan on the first document that
would exceed — naming it, with "used" counting the earlier documents — and nothing is written,
rather than failing half-way through the writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from api_types.accounts import HardwareProfile
from api_types.compute import Instance
from api_types.meta import Resource
from api_types.storage import Volume
from api_types.tenancy import Quota, QuotaUsage, usage_of
from apiserver.lookups import Lookups, QuotaSnapshot
from apiserver.status import ApiError
from controller.errors import ConflictError, NotFoundError
from controller.store.etcd import cmp_prefix_unchanged_since
from controller.store.results import StatusWrite, TxnExtras

__all__ = ["UsageChange", "initial_usage", "usage_change", "with_reservation"]

T = TypeVar("T")

#: Wire name → signed change of ``Quota.status.used``.
UsageChange = dict[str, int]
#: Wire name → attribute name (QuotaUsage and QuotaLimits share them).
_ATTRS = {info.alias or name: name for name, info in QuotaUsage.model_fields.items()}
_NAMES = tuple(_ATTRS)
_RETRY_FOR = 15.0


def _usage(lookups: Lookups, obj: Resource | None) -> QuotaUsage:
    """What ``obj`` counts against its namespace's quota (nothing for None)."""
    profile = None
    if isinstance(obj, Instance) and obj.spec.hardware.profile is not None:
        try:
            profile = lookups.get(HardwareProfile, obj.spec.hardware.profile)
        except NotFoundError:
            profile = None
    return usage_of(obj, profile)


def usage_change(lookups: Lookups, new: Resource | None, old: Resource | None) -> UsageChange:
    """How the namespace's usage changes when ``old`` becomes ``new`` (None: absent)."""
    after = _usage(lookups, new).model_dump(by_alias=True)
    before = _usage(lookups, old).model_dump(by_alias=True)
    return {name: after[name] - before[name] for name in _NAMES}


def initial_usage(lookups: Lookups, namespace: str) -> QuotaUsage:
    """What a namespace uses now: the starting ``status.used`` of a new Quota."""
    total = QuotaUsage()
    for model in (Instance, Volume):
        for obj in lookups.store.list(model, namespace).items:
            total += _usage(lookups, obj)
    return total


def _stored(lookups: Lookups, obj: Resource) -> Resource | None:
    try:
        return lookups.store.get(type(obj), obj.metadata.name, obj.metadata.namespace)
    except NotFoundError:
        return None


def _staged_usage(lookups: Lookups, namespace: str) -> UsageChange:
    """What the objects staged in ``namespace`` add to the usage the store shows: each counted
    as the write it stands for (stored → staged), as :func:`usage_change` counts a write."""
    total = dict.fromkeys(_NAMES, 0)
    for obj in lookups.staged_in(namespace):
        if isinstance(obj, Instance | Volume):
            change = usage_change(lookups, obj, _stored(lookups, obj))
            total = {name: total[name] + change[name] for name in _NAMES}
    return total


def _with_staged_quotas(lookups: Lookups, namespace: str, snapshot: QuotaSnapshot) -> QuotaSnapshot:
    """``snapshot`` with the Quotas staged in ``namespace`` over the stored ones: a staged spec
    with the stored usage, or for a new Quota the namespace's (what a create would start at)."""
    staged = [obj for obj in lookups.staged_in(namespace) if isinstance(obj, Quota)]
    if not staged:
        return snapshot
    quotas = {quota.metadata.name: quota for quota in snapshot.quotas}
    for quota in staged:
        stored = quotas.get(quota.metadata.name)
        used = stored.status.used if stored else initial_usage(lookups, namespace)
        status = quota.status.model_copy(update={"used": used})
        quotas[quota.metadata.name] = quota.model_copy(update={"status": status})
    return QuotaSnapshot(list(quotas.values()), snapshot.revision, snapshot.cached)


def _reserve(
    lookups: Lookups,
    namespace: str,
    delta: UsageChange,
    snapshot: QuotaSnapshot,
    actor: str,
    staged: UsageChange,
) -> TxnExtras:
    """The transaction extras applying ``delta`` to every Quota of the namespace (403 if over),
    on top of the ``staged`` usage (all zero outside a staged view)."""
    prefix = lookups.store.layout.kind_prefix(Quota.PLURAL, namespace)
    writes = []
    for quota in snapshot.quotas:
        stored = quota.status.used
        used = {name: getattr(stored, _ATTRS[name]) + staged[name] for name in _NAMES}
        new = QuotaUsage.model_validate({name: max(0, used[name] + delta[name]) for name in _NAMES})
        over = [name for name in new.exceeds(quota.spec.hard) if delta[name] > 0]
        if over:
            detail = ", ".join(
                f"{name}: requested {delta[name]}, used {used[name]}"
                + (f" ({staged[name]} by earlier documents of this plan)" if staged[name] else "")
                + f", limited {getattr(quota.spec.hard, _ATTRS[name])}"
                for name in over
            )
            raise ApiError(403, "Forbidden", f"exceeded quota: {quota.metadata.name}, {detail}")
        status = quota.status.model_copy(update={"used": new})
        writes.append(StatusWrite(quota.model_copy(update={"status": status}), actor))
    unchanged = cmp_prefix_unchanged_since(prefix, snapshot.revision)
    return TxnExtras(compares=[unchanged], status_writes=writes)


def with_reservation(
    lookups: Lookups,
    namespace: str | None,
    delta: UsageChange,
    actor: str,
    write: Callable[[TxnExtras | None], T],
) -> T:
    """Run ``write(extras)`` with ``delta`` reserved atomically; re-reserve when a Quota moved."""
    if namespace is None or not any(delta.values()):
        return write(None)
    deadline = time.monotonic() + _RETRY_FOR
    snapshot = _with_staged_quotas(lookups, namespace, lookups.quotas(namespace))
    while True:
        # Reads each staged object's stored version: only worth it when a Quota limits anything.
        staged = _staged_usage(lookups, namespace) if snapshot.quotas else dict.fromkeys(_NAMES, 0)
        try:
            return write(_reserve(lookups, namespace, delta, snapshot, actor, staged))
        except ConflictError:
            # A Quota moved or appeared (someone reserved first, or the cache lagged behind):
            # recompute from etcd. If etcd shows the very quotas an etcd read gave before, the
            # object's own precondition failed: the caller's conflict, reported.
            fresh = _with_staged_quotas(lookups, namespace, lookups.stored_quotas(namespace))
            same = not snapshot.cached and fresh.revisions() == snapshot.revisions()
            if same or time.monotonic() > deadline:
                raise
            snapshot = fresh
