"""The Instance reconciler: schedule, wait for dependencies, then hand over to the cloud step.

Where it sits: registered by ``reconcilers.instance.register`` on the Instance informer, fed
also by Subnet and Firewall changes. One reconcile walks the life cycle as far as it can:

1. deletion (finalizer ``skybroker.io/cloud-resources``) is handed to ``cloud.CloudSteps``;
2. the finalizer goes on with the first status write, before anything exists in a cloud;
3. unplaced: wait until the subnet (if any) is placed — a subnet that does not exist at all is
   ``SubnetNotFound`` (with a Warning event), not a wait; likewise ``FirewallNotFound`` in
   step 4 — check the namespace quota (``QuotaExceeded``), schedule
   (``scheduler.Scheduler``), and write ``status.placement`` — sticky from then on — with
   ``status.rejections`` explaining every member not chosen; an instance a VirtualCluster
   controls is not scheduled here but waits for its group's placement
   (``WaitingForGroupPlacement``: ``reconcilers.virtualcluster``), also after a capacity
   failure cleared it;
4. not yet created: wait for the subnet's providerID and each firewall's realisation in the
   placement's (account, region, network) — the Firewall reconciler realises firewalls where
   placed instances need them, which is why a waiting instance writes its placement first;
   one that need not wait writes placement and create token together;
5. an instance with a ``bootConfigRef`` is pre-registered just before its create
   (``boot.BootRegistrar``: Secret, rendezvous record, the boot string as its user data);
6. ``cloud.CloudSteps.converge``: create (token first), observe, power state, drift;
7. its boot agent: ``status.agent`` from the heartbeats and staleness (``agent.AgentWatch``),
   then health remediation of a lost agent (``health.Remedies``). On deletion the uuid's
   rendezvous record and heartbeat are forgotten on every finalizer pass.

Status is built on the cached copy and written only if it differs from what was read, so a
converged resync writes nothing. Requeue intervals are the constants below.
"""

from __future__ import annotations

import structlog

from api_types import Firewall, Instance, InstancePhase, InstancePlacement, Subnet
from api_types.clusters import placing_group
from api_types.meta import Resource
from controller.passes import Pass
from controller.reconcile import Request, Result
from controller.store.keys import ObjectKey
from providers import FirewallId, SubnetId
from reconcilers._common import (
    INSTANCES_BY_FIREWALL,
    INSTANCES_BY_SUBNET,
    account_handle,
    namespaced_key,
)
from reconcilers.deps import Deps
from reconcilers.hardware import UnknownProfileError
from reconcilers.instance.agent import AgentWatch
from reconcilers.instance.boot import BootRegistrar
from reconcilers.instance.cloud import CloudSteps
from reconcilers.instance.health import Remedies
from reconcilers.placement import Unschedulable
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
#: Nothing can take the instance (or its pool is missing): look again after this (sooner when
#: only a spent API budget stood in the way: ``PlacementMemory.retry_unplaced``).
UNSCHEDULABLE_RETRY_SECONDS = 10.0
#: Blocked by the namespace quota: re-checked this often, so it provisions when usage falls.
QUOTA_RECHECK_SECONDS = 5.0


class InstanceReconciler:
    """Walks each Instance through its life cycle: schedules it, waits for its subnet and
    firewalls, then hands it to :class:`~reconcilers.instance.cloud.CloudSteps` (create,
    observe, power state, drift, replacement, deletion); see the module."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._instances = deps.manager.informer(Instance)
        self._firewalls = deps.manager.informer(Firewall)
        self.scheduler = deps.scheduler
        self.cloud = CloudSteps(deps, self.scheduler.memory, self.scheduler.hardware)
        self.boot = BootRegistrar(deps)
        self.agent = AgentWatch(deps, self.boot)
        self.remedies = Remedies(deps)

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

    def reconcile(self, request: Request) -> Result:
        instance = self._instances.get(request.key)
        if instance is None:
            return Result()
        with Pass(self._deps.manager, instance) as pass_:
            if instance.metadata.deletion_timestamp is not None:
                if FINALIZER not in instance.metadata.finalizers:
                    return Result()
                self.boot.forget(pass_)
                return self.cloud.finalize(pass_, FINALIZER)
            # Written with the first status save, which always precedes the first cloud call
            # (the create token is saved before the create).
            pass_.finalizer_on_next_save(FINALIZER)
            return self._converge(pass_)

    def _converge(self, pass_: Pass[Instance]) -> Result:
        status = pass_.obj.status
        if status.phase is None:
            status.phase = InstancePhase.PENDING
        subnet = self.scheduler.subnet_of(pass_.obj)
        if status.placement is None:
            waiting = self._schedule(pass_, subnet)
            if waiting is not None:
                return waiting
        user_data = pass_.obj.spec.user_data
        if status.provider_id is None:
            ready = self._dependencies(pass_, subnet)
            if isinstance(ready, Result):
                return ready
            subnet_id, firewall_ids = ready
            if pass_.obj.spec.boot_config_ref is not None:
                boot = self.boot.pre_register(pass_)
                if isinstance(boot, Result):
                    return boot
                user_data = boot
        else:
            subnet_id, firewall_ids = None, ()
        placement = pass_.obj.status.placement
        assert placement is not None
        handle = account_handle(self._deps, placement.account)
        result = self.cloud.converge(pass_, handle, subnet_id, firewall_ids, user_data)
        pass_.observe_generation()
        return self._agent(pass_, result)

    def _agent(self, pass_: Pass[Instance], result: Result) -> Result:
        """The boot agent's status and, when it is lost, health remediation."""
        judge_again = self.agent.converge(pass_)
        remedied = self.remedies.act(pass_)
        wait = remedied.requeue_after if remedied is not None else None
        delays = [d for d in (result.requeue_after, judge_again, wait) if d is not None]
        return Result(requeue_after=min(delays)) if delays else result

    def _wait(self, pass_: Pass[Instance], reason: str, message: str) -> Result:
        pass_.condition("Ready", False, reason, message)
        return Result(requeue_after=WAIT_SECONDS)

    # --- scheduling -----------------------------------------------------------------------

    def _unschedulable(
        self, pass_: Pass[Instance], reason: str, message: str, retry: float
    ) -> Result:
        if pass_.condition("Scheduled", False, reason, message):
            pass_.event("Warning", reason, message)
        pass_.condition("Ready", False, reason, message)
        return Result(requeue_after=retry)

    def _schedule(self, pass_: Pass[Instance], subnet: Subnet | None) -> Result | None:
        """Place the instance; a Result when it has to wait instead."""
        instance = pass_.obj
        status = instance.status
        ref = instance.spec.subnet_ref
        if ref is not None and subnet is None:
            return self._not_found(pass_, "subnet", ref, unplaced=True)
        if ref is not None and subnet is not None and subnet.status.placement is None:
            message = f"subnet {ref} is not placed yet"
            pass_.condition("Scheduled", False, "WaitingForSubnet", message)
            return self._wait(pass_, "WaitingForSubnet", message)
        group = placing_group(instance)
        if group is not None:
            # Placed with the rest of its group, under the group's rules: never alone here.
            message = f"placed by VirtualCluster {group} with the rest of its group"
            pass_.condition("Scheduled", False, "WaitingForGroupPlacement", message)
            return self._wait(pass_, "WaitingForGroupPlacement", message)
        verdict = self.scheduler.quota(instance)
        if verdict.over:
            return self._quota_exceeded(pass_, verdict.message())
        try:
            decision, pool = self.scheduler.schedule(instance, subnet, verdict)
        except (Unschedulable, UnknownProfileError) as exc:
            reason = "UnknownHardwareProfile" if isinstance(exc, LookupError) else "Unschedulable"
            return self._unschedulable(pass_, reason, str(exc), UNSCHEDULABLE_RETRY_SECONDS)
        status.rejections = [r.to_api() for r in decision.rejections]
        chosen = decision.chosen
        if chosen is None:
            if decision.quota_only:
                return self._quota_exceeded(pass_, decision.summary())
            message = f"no member can take it: {decision.summary() or 'the pool is empty'}"
            retry = self.scheduler.memory.retry_unplaced(decision, UNSCHEDULABLE_RETRY_SECONDS)
            return self._unschedulable(pass_, "Unschedulable", message, retry)
        backoff = self.scheduler.memory.recently_failed(str(instance.metadata.uid), chosen.key)
        if backoff:
            message = f"{chosen.key} failed moments ago and nothing else can take it"
            return self._unschedulable(pass_, "WaitingForCapacity", message, backoff)
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
        pass_.condition("Scheduled", True, "Placed", message)
        pass_.condition(QUOTA_EXCEEDED, False, "WithinQuota")
        pass_.event("Normal", "Scheduled", message)
        log.info("instance placed", account=chosen.account, zone=chosen.zone, size=chosen.size.id)
        return None

    def _not_found(self, pass_: Pass[Instance], kind: str, ref: str, *, unplaced: bool) -> Result:
        """A reference (``spec.subnetRef``, ``spec.firewallRefs``) names no object: say so
        (reason ``SubnetNotFound``/``FirewallNotFound``, a Warning event once) and wait — one
        created under that name wakes the instance (``users_of_subnet``/``users_of_firewall``)."""
        reason = f"{kind.capitalize()}NotFound"
        message = f"{kind} {ref} not found in namespace {pass_.obj.metadata.namespace}"
        if unplaced:
            pass_.condition("Scheduled", False, reason, message)
        if pass_.condition("Ready", False, reason, message):
            pass_.event("Warning", reason, message)
        return Result(requeue_after=UNSCHEDULABLE_RETRY_SECONDS)

    def _quota_exceeded(self, pass_: Pass[Instance], message: str) -> Result:
        if pass_.condition(QUOTA_EXCEEDED, True, "QuotaExceeded", message):
            pass_.event("Warning", "QuotaExceeded", f"not provisioned: {message}")
        pass_.condition("Scheduled", False, "QuotaExceeded", message)
        pass_.condition("Ready", False, "QuotaExceeded", message)
        return Result(requeue_after=QUOTA_RECHECK_SECONDS)

    # --- dependencies ---------------------------------------------------------------------

    def _dependencies(
        self, pass_: Pass[Instance], subnet: Subnet | None
    ) -> Result | tuple[SubnetId | None, tuple[FirewallId, ...]]:
        """The subnet id and firewall ids to create with, or a Result while waiting."""
        instance = pass_.obj
        placement = instance.status.placement
        assert placement is not None
        subnet_id: SubnetId | None = None
        network: str | None = None
        if instance.spec.subnet_ref is not None:
            if subnet is None:
                return self._not_found(pass_, "subnet", instance.spec.subnet_ref, unplaced=False)
            where = subnet.status.placement
            if (
                subnet.status.provider_id is None
                or where is None
                or (where.account, where.region) != (placement.account, placement.region)
            ):
                message = f"subnet {instance.spec.subnet_ref} is not created yet"
                return self._wait(pass_, "WaitingForSubnet", message)
            subnet_id = SubnetId(subnet.status.provider_id)
            network = subnet.spec.network.name
        firewall_ids: list[FirewallId] = []
        for ref in instance.spec.firewall_refs:
            firewall = self._firewalls.peek(
                ObjectKey(Firewall.PLURAL, instance.metadata.namespace, ref)
            )
            if firewall is None:
                return self._not_found(pass_, "firewall", ref, unplaced=False)
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
                return self._wait(pass_, "WaitingForFirewall", message)
            firewall_ids.append(FirewallId(found.provider_id))
        return subnet_id, tuple(firewall_ids)
