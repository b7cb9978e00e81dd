"""The provider placement groups that keep a VirtualCluster's ``host`` rules (DESIGN §10).

Where it sits: a part of the VirtualCluster reconciler (``reconcilers.virtualcluster``), which
calls it in its passes; it talks to the clouds through ``deps.providers`` (the guarded
providers: API budget, circuit breaker) and writes only the VirtualCluster's status. The group
scheduler keeps a ``host`` rule by placing its replicas on accounts that can express it
(drivers in :data:`~api_types.clusters.HOST_TOPOLOGY_DRIVERS`) — the host itself is the
provider's: a spread group keeps an AntiAffinity's instances on distinct hardware, a cluster
group packs a Proximity's close together.

* Which group: a child of a member of a ``host`` rule, placed on an account that can express
  it, launches in the group :func:`~api_types.clusters.placement_group_name` of that rule, on
  that account (:meth:`PlacementGroups.group_for`); its ``status.placement.placementGroup`` is
  set when it is created. A Preferred host rule the scheduler broke puts its replicas on other
  accounts too: those get no group.
* Made before the children: :meth:`PlacementGroups.ensure` records every group in
  ``status.placementGroups`` (saved: the intent is durable before the cloud call, so a crash
  never leaks one) and ensures it in its account (idempotent by name, tagged with the
  VirtualCluster's uid). Any failure — budget spent, throttled, a group being deleted, an
  account without placement groups, a group of that name with the other strategy — is a
  :class:`GroupError`: the pass writes no child, reports it and looks again.
* Deleted when unused (:meth:`PlacementGroups.release`): a recorded group that no child
  Instance names any more (scaled to 0, a host rule removed, a replica placed elsewhere) is
  deleted, the children read from the store itself, not the cache, so a child just created is
  never missed. A group still holding instances is busy: kept, and tried again.
* With the VirtualCluster: while it has host rules or groups it carries :data:`FINALIZER`; on
  deletion the reconciler deletes its children itself (the garbage collector would wait for
  the VirtualCluster to go), waits until every child Instance is gone, releases every group,
  then drops the finalizer.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

import structlog

from api_types import Instance, ProviderAccount, VirtualCluster
from api_types.clusters import (
    HOST_TOPOLOGY_DRIVERS,
    VIRTUALCLUSTER_LABEL,
    PlacementGroupStatus,
    group_strategy,
    placement_group_name,
)
from controller.errors import ReconcileError, TerminalError, TransientError
from controller.labels import LabelSelector
from controller.passes import Pass
from controller.store.keys import ObjectKey
from providers import TAG_NAME, TAG_UID, PlacementStrategy
from reconcilers._common import account_handle
from reconcilers.deps import Deps

__all__ = [
    "FINALIZER",
    "REFUSED_RETRY_SECONDS",
    "RETRY_SECONDS",
    "GroupError",
    "GroupRef",
    "PlacementGroups",
    "controlled_instances",
]

log = structlog.get_logger(__name__)

#: On a VirtualCluster with host rules: its placement groups are deleted before it goes.
FINALIZER = "skybroker.io/placement-groups"
#: A group that could not be made or deleted now (busy, budget, throttling) is tried again.
RETRY_SECONDS = 5.0
#: A group the cloud refused (no placement groups, another strategy): looked at again, since
#: the account or the cloud may be fixed meanwhile.
REFUSED_RETRY_SECONDS = 15.0


@dataclass(frozen=True, order=True)
class GroupRef:
    """One placement group: its account, its name there and its strategy."""

    account: str
    name: str
    strategy: str

    @classmethod
    def of(cls, recorded: PlacementGroupStatus) -> GroupRef:
        return cls(recorded.account, recorded.name, recorded.strategy)

    def status(self) -> PlacementGroupStatus:
        return PlacementGroupStatus(account=self.account, name=self.name, strategy=self.strategy)

    @property
    def where(self) -> tuple[str, str]:
        """(account, name): what a child's placement names."""
        return (self.account, self.name)

    def __str__(self) -> str:
        return f"{self.strategy} group {self.name} in {self.account}"


class GroupError(Exception):
    """A group could not be made: nothing is placed in it this pass; ``delay`` says when to
    look again, ``reason`` is the condition's and event's."""

    def __init__(self, group: GroupRef, error: ReconcileError) -> None:
        self.group = group
        self.error = error
        if isinstance(error, TerminalError):
            self.reason, self.delay = "PlacementGroupRefused", REFUSED_RETRY_SECONDS
        else:
            delay = error.delay if isinstance(error, TransientError) else None
            self.reason, self.delay = "PlacementGroupFailed", delay or RETRY_SECONDS
        super().__init__(f"{group}: {error.message}")


def controlled_instances(deps: Deps, vc: VirtualCluster) -> list[Instance]:
    """The Instances ``vc`` controls, read from the store itself (not a cache that may lag
    behind a child just created)."""
    selector = LabelSelector.parse(f"{VIRTUALCLUSTER_LABEL}={vc.metadata.name}")
    listed = deps.store.list(Instance, vc.metadata.namespace, selector).items
    uid = vc.metadata.uid
    return [
        i for i in listed if any(o.controller and o.uid == uid for o in i.metadata.owner_references)
    ]


def in_use(instances: Iterable[Instance]) -> set[tuple[str, str]]:
    """(account, group) named by the placements of ``instances``."""
    return {
        (p.account, p.placement_group)
        for i in instances
        if (p := i.status.placement) is not None and p.placement_group is not None
    }


class PlacementGroups:
    """Makes, records and deletes the placement groups of VirtualClusters (see the module)."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._accounts = deps.manager.informer(ProviderAccount)

    @staticmethod
    def wanted(vc: VirtualCluster) -> bool:
        """Whether ``vc`` needs :data:`FINALIZER`: it has host rules, or groups to delete."""
        return bool(vc.status.placement_groups) or any(
            vc.spec.host_rule(member.name) is not None for member in vc.spec.members
        )

    def group_for(self, vc: VirtualCluster, member: str, account: str) -> GroupRef | None:
        """The group a replica of ``member`` placed on ``account`` launches in, if any."""
        rule = vc.spec.host_rule(member)
        if rule is None:
            return None
        known = self._accounts.peek(ObjectKey(ProviderAccount.PLURAL, None, account))
        if known is None or known.spec.driver not in HOST_TOPOLOGY_DRIVERS:
            return None  # a Preferred host rule broken onto an account without groups
        name = placement_group_name(str(vc.metadata.namespace), vc.metadata.name, rule)
        return GroupRef(account, name, group_strategy(rule))

    def ensure(self, pass_: Pass[VirtualCluster], groups: Collection[GroupRef]) -> None:
        """Record ``groups`` in the status (saved before any cloud call) and make each in its
        account; GroupError on the first that cannot be made."""
        recorded = {GroupRef.of(g) for g in pass_.obj.status.placement_groups}
        new = sorted(set(groups) - recorded)
        if new:
            pass_.obj.status.placement_groups.extend(g.status() for g in new)
            pass_.save()
        vc = pass_.obj
        tags = {
            TAG_UID: str(vc.metadata.uid),
            TAG_NAME: f"{vc.metadata.namespace}/{vc.metadata.name}",
        }
        for group in sorted(set(groups)):
            try:
                provider = account_handle(self._deps, group.account).provider
                provider.ensure_placement_group(
                    group.name, PlacementStrategy(group.strategy), tags=tags
                )
            except ReconcileError as exc:
                raise GroupError(group, exc) from exc
            if group in new:
                pass_.event("Normal", "PlacementGroupCreated", f"made {group}")

    def release(self, pass_: Pass[VirtualCluster], used: set[tuple[str, str]]) -> float | None:
        """Delete the recorded groups that no child uses; ``used`` is what the cache shows,
        checked against the store before anything is deleted. Returns when to look again
        if some are left (in use in the cloud, or the call failed), else None."""
        vc = pass_.obj
        recorded = [GroupRef.of(g) for g in vc.status.placement_groups]
        unused = [g for g in recorded if g.where not in used]
        if not unused:
            return None
        used = in_use(controlled_instances(self._deps, vc))
        deleted: set[GroupRef] = set()
        delay: float | None = None
        for group in unused:
            if group.where in used:
                continue  # a child the cache did not show yet: its deletion wakes the pass
            try:
                account_handle(self._deps, group.account).provider.delete_placement_group(
                    group.name
                )
            except ReconcileError as exc:
                retry = GroupError(group, exc).delay
                delay = retry if delay is None else min(delay, retry)
                log.info("placement group not deleted yet", group=str(group), error=exc.message)
                continue
            deleted.add(group)
            pass_.event("Normal", "PlacementGroupDeleted", f"deleted {group}")
        vc.status.placement_groups = [
            g for g in vc.status.placement_groups if GroupRef.of(g) not in deleted
        ]
        return delay
