"""Quota: what a namespace uses (``status.used``), and the pure usage arithmetic behind it.

Where it sits: one reconciler per Quota object, woken by the Instance, Volume and
HardwareProfile caches; ``status.used`` is what the process's quota ledger (``Deps.ledger``,
``reconcilers.placement.ledger``) keeps of the namespace from those caches' events. The
functions below are also what the Instance (and Volume) reconcilers call to decide
``QuotaExceeded`` for objects written straight into the store (DESIGN §3). What one object
uses is ``api_types.usage_of`` (the API server's admission counts with it too):

* ``profile_of(instance, profiles)`` — the HardwareProfile an instance names, for ``usage_of``.
* ``counts_against_quota(obj) -> bool`` — objects blocked by ``QuotaExceeded=True`` use
  nothing (they were never provisioned), so they cannot keep themselves blocked.
* ``namespace_usage(instances, volumes, profiles, *, exclude=None, sizes=None) -> QuotaUsage``
  — the sum over what counts, each instance at its placed provider size when ``sizes`` knows
  it; ``exclude`` drops one uid (the object asking for admission).
* ``would_exceed(quota, used, extra) -> list[str]`` — wire names (``cpu``, ``volumeGiB``…)
  that ``used + extra`` would push above ``quota.spec.hard``; empty = admit.

A direct write is admitted with, for every Quota ``q`` of the namespace,
``would_exceed(q, namespace_usage(..., exclude=obj.uid), usage_of(obj, profile_of(obj, …)))``.
The reconcilers do not walk the namespace for it: the ledger keeps that sum from the caches'
events (``QuotaLedger.used`` for an instance, first come first; ``QuotaLedger.total`` with
``without_volume`` for a volume), and the tests hold it equal to the walk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from api_types import HardwareProfile, Instance, Quota, QuotaUsage, Volume, usage_of
from api_types.meta import ConditionStatus, Resource
from controller.handler import EnqueueMapped
from controller.passes import Pass
from controller.reconcile import Request, Result
from controller.store.keys import ObjectKey
from providers import CloudSize
from reconcilers._common import install_indexes
from reconcilers.deps import Deps

__all__ = [
    "QUOTA_EXCEEDED",
    "QuotaReconciler",
    "counts_against_quota",
    "namespace_usage",
    "profile_of",
    "register",
    "would_exceed",
]

#: The condition Instances and Volumes carry while quota keeps them from being provisioned.
QUOTA_EXCEEDED = "QuotaExceeded"
#: A quota is recounted at most this often: a burst of instance status writes costs one count.
MIN_RECOUNT_SECONDS = 1.0

SizeLookup = Callable[[Instance], CloudSize | None]


def profile_of(
    instance: Instance, profiles: Mapping[str, HardwareProfile]
) -> HardwareProfile | None:
    """The HardwareProfile ``instance`` names (None: it names none, or a missing one)."""
    name = instance.spec.hardware.profile
    return profiles.get(name) if name is not None else None


def counts_against_quota(obj: Resource) -> bool:
    condition = obj.status.condition(QUOTA_EXCEEDED)  # type: ignore[attr-defined]
    return condition is None or condition.status != ConditionStatus.TRUE


def namespace_usage(
    instances: Iterable[Instance],
    volumes: Iterable[Volume],
    profiles: Mapping[str, HardwareProfile],
    *,
    exclude: str | None = None,
    sizes: SizeLookup | None = None,
) -> QuotaUsage:
    """Usage of the given objects that count (see :func:`counts_against_quota`)."""
    total = QuotaUsage()
    for instance in instances:
        if instance.metadata.uid != exclude and counts_against_quota(instance):
            size = sizes(instance) if sizes is not None else None
            total += usage_of(instance, profile_of(instance, profiles), size)
    for volume in volumes:
        if volume.metadata.uid != exclude and counts_against_quota(volume):
            total += usage_of(volume)
    return total


def would_exceed(quota: Quota, used: QuotaUsage, extra: QuotaUsage) -> list[str]:
    """Resources (wire names) over ``quota.spec.hard`` if ``extra`` were added to ``used``."""
    return (used + extra).exceeds(quota.spec.hard)


class QuotaReconciler:
    """Recounts ``status.used`` of one Quota from the caches; condition ``Exceeded``."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._quotas = deps.manager.informer(Quota)
        self._profiles = deps.manager.informer(HardwareProfile)
        self._ledger = deps.ledger
        install_indexes(deps)

    def quotas_of(self, obj: Resource) -> list[Request]:
        """Every Quota of ``obj``'s namespace (all of them for a cluster-scoped object)."""
        return [
            Request(ObjectKey(Quota.PLURAL, q.metadata.namespace, q.metadata.name))
            for q in self._quotas.list(obj.metadata.namespace)
        ]

    def reconcile(self, request: Request) -> Result:
        quota = self._quotas.get(request.key)
        if quota is None:
            return Result()
        profiles = {p.metadata.name: p for p in self._profiles.list()}
        used = self._ledger.total(quota.metadata.namespace or "", profiles)
        with Pass(self._deps.manager, quota) as pass_:
            quota.status.used = used
            over = used.exceeds(quota.spec.hard)
            pass_.condition(
                "Exceeded",
                bool(over),
                "OverLimit" if over else "WithinLimits",
                f"usage above the hard limit of: {', '.join(over)}" if over else "",
            )
            pass_.condition("Ready", True, "Counted")
            pass_.observe_generation()
        return Result()


def register(deps: Deps) -> None:
    reconciler = QuotaReconciler(deps)
    deps.manager.add_controller(
        Quota,
        reconciler,
        workers=1,
        min_interval=MIN_RECOUNT_SECONDS,
        watches=[
            (Instance, EnqueueMapped(reconciler.quotas_of)),
            (Volume, EnqueueMapped(reconciler.quotas_of)),
            (HardwareProfile, EnqueueMapped(reconciler.quotas_of)),
        ],
    )
