"""The Instance reconciler: schedule, wait for dependencies, then hand over to the cloud step.

Where it sits: registered by ``reconcilers.instance.register`` on the Instance informer, fed
also by Subnet and Firewall changes. One reconcile walks the life cycle as far as it can:

1. deletion (finalizer ``skybroker.io/cloud-resources``) is handed to ``cloud.CloudSteps``;
2. the finalizer goes on with the first status write, before anything exists in a cloud;
3. unplaced: wait until the subnet (if any) is placed — a subnet that does not exist at all is
   ``SubnetNotFound`` (with a Warning event), not a wait; likewise ``FirewallNotFound`` in
   step 4 — check the namespace quota (``QuotaExceeded``), schedule
   (``scheduler.Scheduler``), and write ``status.placement`` — sticky from then on — with
   ``status.rejections`` explaining every member not chosen;
4. not yet created: wait for the subnet's providerID and each firewall's realisation in the
   placement's (account, region, network) — the Firewall reconciler realises firewalls where
   placed instances need them, which is why a waiting instance writes its placement first;
   one that need not wait writes placement and create token together;
5. ``cloud.CloudSteps.converge``: create (token first), observe, power state, drift.

Status is built on the cached copy and written only if it differs from what was read, so a
converged resync writes nothing. Requeue intervals are the constants below.
"""

from __future__ import annotations

import structlog

from api_types import Firewall, Instance, InstancePhase, InstancePlacement, Subnet
from api_types.meta import Resource
from controller.reconcile import Request, Result
from controller.store.keys import ObjectKey
from providers import FirewallId, SubnetId
from reconcilers._common import (
    INSTANCES_BY_FIREWALL,
    INSTANCES_BY_SUBNET,
    account_handle,
    conflicts_retry,
    finalizer_on_next_save,
    namespaced_key,
    snapshot,
)
from reconcilers.deps import Deps
from reconcilers.hardware import UnknownProfileError
from reconcilers.instance.cloud import CloudSteps, Work
from reconcilers.placement import PlacementMemory, Scheduler, Unschedulable
from reconcilers.quota import QUOTA_EXCEEDED

__all__ = [
    "FINALIZER",
    "QUOTA_RECHECK_SECONDS",
    "UNSCHEDULABLE_RETRY_SECONDS",
    "WAIT_SECONDS",
    "InstanceReconciler",
]

log = structlog.get_logger(__name__)

FINALIZER = "skybroker.io/cloud-resources"
#: Waiting for a subnet to be placed/created or a firewall to be realised.
WAIT_SECONDS = 2.0
#: Nothing can take the instance (or its pool is missing): look again after this.
UNSCHEDULABLE_RETRY_SECONDS = 10.0
#: Blocked by the namespace quota: re-checked this often, so it provisions when usage falls.
QUOTA_RECHECK_SECONDS = 5.0


class InstanceReconciler:
    def __init__(self, deps: Deps, memory: PlacementMemory | None = None) -> None:
        self._deps = deps
        self._instances = deps.manager.informer(Instance)
        self._subnets = deps.manager.informer(Subnet)
        self._firewalls = deps.manager.informer(Firewall)
        self.scheduler = Scheduler(deps, memory or deps.memory)
        self.cloud = CloudSteps(deps, self.scheduler.memory, self.scheduler.hardware)

    # --- mapping other kinds' events ------------------------------------------------------

    def _unprovisioned(self, index: str, obj: Resource) -> list[Request]:
        users = self._instances.by_index(
            index, namespaced_key(obj.metadata.namespace, obj.metadata.name)
        )
        return [
            Request.of(Instance.PLURAL, user.metadata.namespace, user.metadata.name)
            for user in users
            if user.status.provider_id is None
        ]

    def users_of_subnet(self, obj: Resource) -> list[Request]:
        """Instances waiting for this subnet (placed, created) to go ahead."""
        return self._unprovisioned(INSTANCES_BY_SUBNET, obj)

    def users_of_firewall(self, obj: Resource) -> list[Request]:
        """Instances waiting for this firewall to be realised where they are placed."""
        return self._unprovisioned(INSTANCES_BY_FIREWALL, obj)

    # --- reconcile ------------------------------------------------------------------------

    @conflicts_retry
    def reconcile(self, request: Request) -> Result:
        instance = self._instances.get(request.key)
        if instance is None:
            return Result()
        work = Work(self._deps, instance, snapshot(instance))
        if instance.metadata.deletion_timestamp is not None:
            if FINALIZER not in instance.metadata.finalizers:
                return Result()
            return self.cloud.finalize(work, FINALIZER)
        # Written with the first status save, which always precedes the first cloud call
        # (the create token is saved before the create).
        finalizer_on_next_save(work.instance, FINALIZER)
        try:
            result = self._converge(work)
        finally:
            work.save()
        return result

    def _converge(self, work: Work) -> Result:
        status = work.instance.status
        if status.phase is None:
            status.phase = InstancePhase.PENDING
        subnet = self._subnet(work.instance)
        if status.placement is None:
            waiting = self._schedule(work, subnet)
            if waiting is not None:
                return waiting
        if status.provider_id is None:
            ready = self._dependencies(work, subnet)
            if isinstance(ready, Result):
                return ready
            subnet_id, firewall_ids = ready
        else:
            subnet_id, firewall_ids = None, ()
        placement = status.placement
        assert placement is not None
        handle = account_handle(self._deps, placement.account)
        result = self.cloud.converge(work, handle, subnet_id, firewall_ids)
        work.instance.status.observed_generation = work.generation
        return result

    def _subnet(self, instance: Instance) -> Subnet | None:
        ref = instance.spec.subnet_ref
        if ref is None:
            return None
        return self._subnets.peek(ObjectKey(Subnet.PLURAL, instance.metadata.namespace, ref))

    def _wait(self, work: Work, reason: str, message: str) -> Result:
        work.condition("Ready", False, reason, message)
        return Result(requeue_after=WAIT_SECONDS)

    # --- scheduling -----------------------------------------------------------------------

    def _unschedulable(self, work: Work, reason: str, message: str, retry: float) -> Result:
        if work.condition("Scheduled", False, reason, message):
            work.event("Warning", reason, message)
        work.condition("Ready", False, reason, message)
        return Result(requeue_after=retry)

    def _schedule(self, work: Work, subnet: Subnet | None) -> Result | None:
        """Place the instance; a Result when it has to wait instead."""
        instance = work.instance
        status = instance.status
        ref = instance.spec.subnet_ref
        if ref is not None and subnet is None:
            return self._not_found(work, "subnet", ref, unplaced=True)
        if ref is not None and subnet is not None and subnet.status.placement is None:
            message = f"subnet {ref} is not placed yet"
            work.condition("Scheduled", False, "WaitingForSubnet", message)
            return self._wait(work, "WaitingForSubnet", message)
        verdict = self.scheduler.quota(instance)
        if verdict.over:
            return self._quota_exceeded(work, verdict.message())
        try:
            decision, pool = self.scheduler.schedule(instance, subnet, verdict)
        except (Unschedulable, UnknownProfileError) as exc:
            reason = "UnknownHardwareProfile" if isinstance(exc, LookupError) else "Unschedulable"
            return self._unschedulable(work, reason, str(exc), UNSCHEDULABLE_RETRY_SECONDS)
        status.rejections = [r.to_api() for r in decision.rejections]
        chosen = decision.chosen
        if chosen is None:
            if decision.quota_only:
                return self._quota_exceeded(work, decision.summary())
            message = f"no member can take it: {decision.summary() or 'the pool is empty'}"
            return self._unschedulable(work, "Unschedulable", message, UNSCHEDULABLE_RETRY_SECONDS)
        backoff = self.scheduler.memory.recently_failed(str(instance.metadata.uid), chosen.key)
        if backoff:
            message = f"{chosen.key} failed moments ago and nothing else can take it"
            return self._unschedulable(work, "WaitingForCapacity", message, backoff)
        assert chosen.size is not None
        status.placement = InstancePlacement(
            account=chosen.account,
            region=chosen.region,
            zone=chosen.zone,
            size=chosen.size.id,
            member=chosen.candidate.member,
        )
        status.phase = InstancePhase.SCHEDULED
        where = f"{chosen.account}/{chosen.zone or chosen.region} as {chosen.size.id}"
        message = f"placed on {'member ' + chosen.key if pool else 'account'} {where}"
        work.condition("Scheduled", True, "Placed", message)
        work.condition(QUOTA_EXCEEDED, False, "WithinQuota")
        work.event("Normal", "Scheduled", message)
        log.info("instance placed", account=chosen.account, zone=chosen.zone, size=chosen.size.id)
        return None

    def _not_found(self, work: Work, kind: str, ref: str, *, unplaced: bool) -> Result:
        """A reference (``spec.subnetRef``, ``spec.firewallRefs``) names no object: say so
        (reason ``SubnetNotFound``/``FirewallNotFound``, a Warning event once) and wait — one
        created under that name wakes the instance (``users_of_subnet``/``users_of_firewall``)."""
        reason = f"{kind.capitalize()}NotFound"
        message = f"{kind} {ref} not found in namespace {work.instance.metadata.namespace}"
        if unplaced:
            work.condition("Scheduled", False, reason, message)
        if work.condition("Ready", False, reason, message):
            work.event("Warning", reason, message)
        return Result(requeue_after=UNSCHEDULABLE_RETRY_SECONDS)

    def _quota_exceeded(self, work: Work, message: str) -> Result:
        if work.condition(QUOTA_EXCEEDED, True, "QuotaExceeded", message):
            work.event("Warning", "QuotaExceeded", f"not provisioned: {message}")
        work.condition("Scheduled", False, "QuotaExceeded", message)
        work.condition("Ready", False, "QuotaExceeded", message)
        return Result(requeue_after=QUOTA_RECHECK_SECONDS)

    # --- dependencies ---------------------------------------------------------------------

    def _dependencies(
        self, work: Work, subnet: Subnet | None
    ) -> Result | tuple[SubnetId | None, tuple[FirewallId, ...]]:
        """The subnet id and firewall ids to create with, or a Result while waiting."""
        instance = work.instance
        placement = instance.status.placement
        assert placement is not None
        subnet_id: SubnetId | None = None
        network: str | None = None
        if instance.spec.subnet_ref is not None:
            if subnet is None:
                return self._not_found(work, "subnet", instance.spec.subnet_ref, unplaced=False)
            where = subnet.status.placement
            if (
                subnet.status.provider_id is None
                or where is None
                or (where.account, where.region) != (placement.account, placement.region)
            ):
                message = f"subnet {instance.spec.subnet_ref} is not created yet"
                return self._wait(work, "WaitingForSubnet", message)
            subnet_id = SubnetId(subnet.status.provider_id)
            network = subnet.spec.network.name
        firewall_ids: list[FirewallId] = []
        for ref in instance.spec.firewall_refs:
            firewall = self._firewalls.peek(
                ObjectKey(Firewall.PLURAL, instance.metadata.namespace, ref)
            )
            if firewall is None:
                return self._not_found(work, "firewall", ref, unplaced=False)
            found = next(
                (
                    r
                    for r in firewall.status.realisations
                    if (r.account, r.region, r.network)
                    == (placement.account, placement.region, network)
                ),
                None,
            )
            if found is None:
                message = f"firewall {ref} is not realised in {placement.account}/{network}"
                return self._wait(work, "WaitingForFirewall", message)
            firewall_ids.append(FirewallId(found.provider_id))
        return subnet_id, tuple(firewall_ids)
