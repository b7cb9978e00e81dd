"""Subnet: placed on a pool member, realised as a subnet inside a shared network (VPC).

Where it sits: the Subnet controller, fed by the Subnet cache and by Instances (a subnet being
deleted waits for the instances that use it). Instances that reference a subnet are placed
where it is (``status.placement``) and created in it (``status.providerID``).

Life cycle, phase by phase (``Pending → Scheduled → Provisioning → Ready``; ``Deleting``;
``Failed`` when the cloud refuses the network or subnet for good, the reason on ``Ready``):

1. Finalizer ``skybroker.io/subnet`` before anything exists in a cloud.
2. Placement by the pool policy with load and rotation (``reconcilers.placement.PoolScheduler``:
   pool member and zone; sticky once written); the rejected members and why go to
   ``status.rejections``.
3. The create token (from uid and generation) is written to ``status.createToken`` before the
   first cloud call, then the network and the subnet are created idempotently by token. They
   are looked up in the account's inventory only: a miss goes straight to ``create_*``, which
   adopts what carries the token, so a retry under a spent API budget is one call, not a
   forced fresh list followed by a create that the budget then refuses, forever.
4. The network named by ``spec.network`` is shared by every subnet of the namespace with that
   network name in the same account and region: its token is derived from exactly those, so
   whoever comes first creates it and the others find it. It is tagged with the uid of a live
   subnet using it (re-tagged when that one goes), so the leak sweeper only ever sees it as
   leaked once no subnet is left; the last subnet to go deletes it.
5. Deletion waits until no Instance references the subnet, then deletes the subnet, then the
   network if no other subnet uses it — once no security group skybroker made is left in it
   (the Firewall reconciler removes those after the instances go; asking the cloud before
   would only be refused with ``DependencyViolation``) — then removes the finalizer.
A subnet deleted behind skybroker's back is recreated (drift is always corrected here).
"""

from __future__ import annotations

from api_types import Instance, Placement, Subnet
from api_types.meta import Resource
from controller.handler import EnqueueMapped
from controller.passes import Pass, finalized
from controller.reconcile import Request, Result
from providers import (
    TAG_UID,
    CloudNetwork,
    NetworkCreate,
    NetworkId,
    ResourceKind,
    SubnetCreate,
    SubnetId,
    ZoneName,
)
from reconcilers._common import (
    INSTANCES_BY_SUBNET,
    TRANSITION_VIEW_SECONDS,
    account_handle,
    cloud_tags,
    derived_token,
    install_indexes,
    namespaced_key,
)
from reconcilers.accounts import AccountHandle
from reconcilers.deps import Deps
from reconcilers.placement import PoolScheduler, Unschedulable

__all__ = ["FINALIZER", "SubnetReconciler", "register"]

FINALIZER = "skybroker.io/subnet"
#: How often an unschedulable subnet, or one waiting for its instances to go, looks again.
WAIT_SECONDS = 5.0


def network_token(subnet: Subnet, account: str, region: str) -> str:
    """The create token of the network shared by same-named subnets of one namespace."""
    return derived_token(
        "network", str(subnet.metadata.namespace), subnet.spec.network.name, account, region
    )


class SubnetReconciler:
    """Places each Subnet on a pool member and creates it — with the network it shares with
    same-named subnets — in that cloud; deletes both once no instance uses them (see the
    module)."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._subnets = deps.manager.informer(Subnet)
        self._instances = deps.manager.informer(Instance)
        self._scheduler = PoolScheduler(deps, Subnet)
        install_indexes(deps)

    def subnet_of_instance(self, obj: Resource) -> list[Request]:
        assert isinstance(obj, Instance)
        ref = obj.spec.subnet_ref
        return [] if ref is None else [Request.of(Subnet.PLURAL, obj.metadata.namespace, ref)]

    def reconcile(self, request: Request) -> Result:
        return finalized(
            self._deps.manager,
            self._subnets.get(request.key),
            FINALIZER,
            converge=self._converge,
            delete=self._delete,
        )

    # --- converge ---------------------------------------------------------------------------

    def _converge(self, pass_: Pass[Subnet]) -> Result:
        if pass_.obj.status.placement is None:
            try:
                decision = self._scheduler.schedule(pass_.obj, zone=pass_.obj.spec.zone)
            except Unschedulable as exc:
                pass_.phase = "Pending"
                pass_.condition("Scheduled", False, "Unschedulable", str(exc))
                return Result(requeue_after=WAIT_SECONDS)
            chosen = decision.chosen
            assert chosen is not None
            status = pass_.obj.status
            status.placement = Placement(
                account=chosen.account, region=chosen.region, zone=chosen.zone, member=chosen.key
            )
            status.rejections = [r.to_api() for r in decision.rejections]
            status.create_token = derived_token(pass_.uid, str(pass_.generation))
            pass_.phase = "Scheduled"
            pass_.condition("Scheduled", True, "Placed", chosen.key)
            pass_.save()  # the placement and the create intent are durable before any cloud call
            pass_.event("Normal", "Scheduled", f"placed on {chosen.key} in {chosen.zone}")
        subnet, status = pass_.obj, pass_.obj.status
        placement = status.placement
        assert placement is not None and status.create_token is not None
        handle = account_handle(self._deps, placement.account)
        with pass_.failed_on_terminal():
            network = self._ensure_network(handle, subnet, placement)
            subnet_id = self._ensure_subnet(handle, subnet, placement, network.id)
        status.network_id = str(network.id)
        status.provider_id = str(subnet_id)
        pass_.phase = "Ready"
        pass_.condition("Ready", True, "Provisioned", f"{subnet_id} in network {network.id}")
        pass_.observe_generation()
        return Result()

    def _live_uids(self, subnet: Subnet) -> set[str]:
        return {
            str(s.metadata.uid)
            for s in self._subnets.list(subnet.metadata.namespace)
            if s.metadata.deletion_timestamp is None
        }

    def _ensure_network(
        self, handle: AccountHandle, subnet: Subnet, placement: Placement
    ) -> CloudNetwork:
        token = network_token(subnet, placement.account, placement.region)
        network = handle.inventory.networks().by_token(token)
        if network is None:  # created, or adopted when a sibling made it since the last list
            tags = cloud_tags(subnet, token, name=subnet.spec.network.name)
            network = handle.provider.create_network(
                NetworkCreate(tags=tags, cidr=subnet.spec.network.cidr)
            )
            handle.inventory.invalidate(ResourceKind.NETWORK)
            if network.uid == str(subnet.metadata.uid):
                self._deps.recorder.record(
                    subnet,
                    "Normal",
                    "NetworkCreated",
                    f"network {subnet.spec.network.name} is {network.id} in {placement.account}",
                )
        if network.uid not in self._live_uids(subnet):
            # Its tagging subnet is gone: adopt it so it is never mistaken for a leak.
            handle.provider.set_tags(network.id, {TAG_UID: str(subnet.metadata.uid)})
            handle.inventory.invalidate(ResourceKind.NETWORK)
        return network

    def _ensure_subnet(
        self, handle: AccountHandle, subnet: Subnet, placement: Placement, network_id: NetworkId
    ) -> SubnetId:
        token = str(subnet.status.create_token)
        known = subnet.status.provider_id
        view = handle.inventory.subnets()
        found = (view.get(known) if known else None) or view.by_token(token)
        if found is not None:
            return found.id
        assert placement.zone is not None
        created = handle.provider.create_subnet(
            SubnetCreate(
                tags=cloud_tags(subnet, token),
                network_id=network_id,
                cidr=subnet.spec.cidr,
                zone=ZoneName(placement.zone),
            )
        )
        handle.inventory.invalidate(ResourceKind.SUBNET)
        if created.id == known:
            return created.id  # adopted: only the inventory's view was older than the subnet
        if known:
            self._deps.recorder.record(
                subnet, "Warning", "DriftCorrected", f"{known} vanished from the cloud; recreated"
            )
        self._deps.recorder.record(subnet, "Normal", "Created", f"subnet {created.id}")
        return created.id

    # --- delete -----------------------------------------------------------------------------

    def _delete(self, pass_: Pass[Subnet]) -> Result:
        subnet, status = pass_.obj, pass_.obj.status
        pass_.phase = "Deleting"
        users = self._instances.by_index(
            INSTANCES_BY_SUBNET, namespaced_key(subnet.metadata.namespace, subnet.metadata.name)
        )
        if users:
            names = ", ".join(u.metadata.name for u in users[:5])
            return self._in_use(pass_, f"{len(users)} instance(s) to go: {names}")
        placement = status.placement
        if placement is not None:
            handle = account_handle(self._deps, placement.account)
            if status.provider_id:
                handle.provider.delete_subnet(SubnetId(status.provider_id))
                handle.inventory.invalidate(ResourceKind.SUBNET)
                # Progress is durable: a retry (say the network is still in use) does not
                # spend the account's API budget on deleting the subnet again.
                status.provider_id = None
                subnet = pass_.save()
            groups = self._release_network(handle, subnet, placement)
            if groups:
                return self._in_use(pass_, f"security group(s) {', '.join(groups[:5])} to go")
        pass_.remove_finalizer(FINALIZER)
        return Result()

    @staticmethod
    def _in_use(pass_: Pass[Subnet], waiting_for: str) -> Result:
        pass_.condition("Ready", False, "InUse", f"waiting for {waiting_for}")
        return Result(requeue_after=WAIT_SECONDS)

    def _release_network(
        self, handle: AccountHandle, subnet: Subnet, placement: Placement
    ) -> list[str]:
        """Delete the network if no other subnet uses it, else hand its uid tag to one that
        does; returns the managed security groups still in it (the network waits for them)."""
        token = network_token(subnet, placement.account, placement.region)
        network = handle.inventory.networks().by_token(token)
        if network is None:
            return []
        siblings = [
            s
            for s in self._subnets.list(subnet.metadata.namespace)
            if s.metadata.uid != subnet.metadata.uid
            and s.metadata.deletion_timestamp is None
            and s.status.placement is not None
            and network_token(s, s.status.placement.account, s.status.placement.region) == token
        ]
        if siblings:
            if network.uid == subnet.metadata.uid:
                handle.provider.set_tags(network.id, {TAG_UID: str(siblings[0].metadata.uid)})
                handle.inventory.invalidate(ResourceKind.NETWORK)
            return []
        # Managed groups only: a cloud's own default group of the network does not hold it.
        groups = sorted(
            str(group.id)
            for group in handle.inventory.firewalls(max_age=TRANSITION_VIEW_SECONDS).by_id.values()
            if group.network_id == network.id and group.uid is not None
        )
        if groups:
            return groups
        handle.provider.delete_network(network.id)
        handle.inventory.invalidate(ResourceKind.NETWORK)
        self._deps.recorder.record(
            subnet, "Normal", "NetworkDeleted", f"network {network.id}: its last subnet is gone"
        )
        return []


def register(deps: Deps) -> None:
    reconciler = SubnetReconciler(deps)
    deps.manager.add_controller(
        Subnet,
        reconciler,
        watches=[(Instance, EnqueueMapped(reconciler.subnet_of_instance))],
    )
