"""Firewall: a logical rule set realised as a security group wherever a user of it lives.

Where it sits: the Firewall controller, fed by the Firewall, Instance and Subnet caches. A
Firewall has no placement of its own: it is realised once per (account, region, network) where
a placed Instance that lists it in ``spec.firewallRefs`` lives — the network being the one of
the instance's Subnet (clouds attach security groups inside a network). ``status.realisations``
lists them; the Instance reconciler picks the ``providerID`` whose (account, region,
network = subnet.spec.network.name) matches its own subnet, and waits until it is there.

* Rules are applied as a diff (``providers.diff_rules``: authorize/revoke), never by
  recreating the group. The cloud's rules come from the account's inventory (one list call per
  account per interval), never from a forced fresh list: a stale view does no harm (providers
  authorize only what is missing and revoke only what is there, and ``create_firewall`` adopts
  the group its token names), whereas a forced list on every attempt livelocks on a spent API
  budget — each retry spends the one token it waited for on the list and fails on the change.
* Drift: a rule added or removed outside skybroker shows up in the inventory and is reverted
  (Firewall has no ``driftPolicy``; it is always corrected), with a ``DriftCorrected`` event.
* A realisation no instance uses any more is deleted — only once no cloud instance of its
  account holds the group (an instance still terminating does, until it is gone): until then
  the deletion waits without asking the cloud, instead of provoking a ``DependencyViolation``
  per attempt (those would not open the account's circuit breaker — see
  ``providers.errors`` — but they are calls spent on a refusal known in advance).
* Deleting the Firewall deletes every realisation first (finalizer ``skybroker.io/firewall``),
  in the same order: after the instances using it (a namespace being deleted takes its
  instances, volumes and firewalls at once); ``Ready=False``/``InUse`` names what it waits for.
Security groups are created idempotently: their create token is derived from the firewall's
uid and the place, so a crash between the cloud call and the status write adopts the group.
"""

from __future__ import annotations

from dataclasses import dataclass

from api_types import Firewall, FirewallRealisation, Instance, Subnet
from api_types.meta import Resource
from controller.errors import TransientError
from controller.handler import EnqueueMapped
from controller.passes import Pass, finalized
from controller.reconcile import Request, Result
from controller.store.keys import ObjectKey
from providers import (
    FirewallCreate,
    FirewallId,
    FirewallRule,
    NetworkId,
    ResourceKind,
    diff_rules,
    expand_rules,
)
from reconcilers._common import (
    INSTANCES_BY_FIREWALL,
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

__all__ = ["FINALIZER", "FirewallReconciler", "desired_rules", "register"]

FINALIZER = "skybroker.io/firewall"
#: How soon to look again at a security group a cloud instance still uses.
IN_USE_RETRY_SECONDS = 2.0
#: How many of the instances holding a group a message names.
NAMED_USERS = 5


@dataclass(frozen=True, order=True)
class _Place:
    account: str
    region: str
    network: str
    network_id: str


def desired_rules(firewall: Firewall) -> frozenset[FirewallRule]:
    """The canonical cloud rules of ``spec.rules`` (one per CIDR)."""
    return frozenset(
        rule
        for spec_rule in firewall.spec.rules
        for rule in expand_rules(
            spec_rule.direction.value, spec_rule.protocol.value, spec_rule.ports, spec_rule.cidrs
        )
    )


class FirewallReconciler:
    """Realises each Firewall as one security group per (account, region, network) where an
    instance using it lives, keeps the groups' rules equal to the spec, removes groups no
    instance needs, and deletes them all before the Firewall goes (see the module)."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._firewalls = deps.manager.informer(Firewall)
        self._instances = deps.manager.informer(Instance)
        self._subnets = deps.manager.informer(Subnet)
        install_indexes(deps)

    # --- mapping other kinds' events --------------------------------------------------------

    def firewalls_of_instance(self, obj: Resource) -> list[Request]:
        assert isinstance(obj, Instance)
        namespace = obj.metadata.namespace
        return [Request.of(Firewall.PLURAL, namespace, ref) for ref in obj.spec.firewall_refs]

    def firewalls_of_subnet(self, obj: Resource) -> list[Request]:
        """A subnet that gains its network id makes its instances' firewalls realisable."""
        users = self._instances.by_index(
            INSTANCES_BY_SUBNET, namespaced_key(obj.metadata.namespace, obj.metadata.name)
        )
        return sorted({r for user in users for r in self.firewalls_of_instance(user)})

    # --- reconcile --------------------------------------------------------------------------

    def reconcile(self, request: Request) -> Result:
        return finalized(
            self._deps.manager,
            self._firewalls.get(request.key),
            FINALIZER,
            converge=self._converge,
            delete=self._delete,
        )

    def _converge(self, pass_: Pass[Firewall]) -> Result:
        firewall = pass_.obj
        places = self._places(firewall)
        rules = desired_rules(firewall)
        realised = [self._realise(firewall, place, rules) for place in places]
        lingering, _ = self._remove(firewall, set(places))
        firewall.status.realisations = sorted(
            realised + lingering, key=lambda r: (r.account, r.region, r.network or "")
        )
        pass_.phase = "Ready"
        message = (
            f"realised in {len(realised)} network(s)"
            if realised
            else "no placed instance with a subnet uses it yet"
        )
        pass_.condition("Ready", True, "Realised" if realised else "NotInUse", message)
        pass_.observe_generation()
        return Result(requeue_after=IN_USE_RETRY_SECONDS) if lingering else Result()

    def _delete(self, pass_: Pass[Firewall]) -> Result:
        """Delete every realisation, then release the finalizer."""
        pass_.phase = "Deleting"
        remaining, users = self._remove(pass_.obj, set())
        if not remaining:
            pass_.remove_finalizer(FINALIZER)
            return Result()
        pass_.obj.status.realisations = remaining
        waiting_for = (
            f"instance(s) {', '.join(users[:NAMED_USERS])} to go"
            if users
            else "the cloud to release it"
        )
        pass_.condition("Ready", False, "InUse", f"deleting: waiting for {waiting_for}")
        return Result(requeue_after=IN_USE_RETRY_SECONDS)

    def _places(self, firewall: Firewall) -> list[_Place]:
        """Where referencing instances live: their subnets' (account, region, network)."""
        namespace = firewall.metadata.namespace
        users = self._instances.by_index(
            INSTANCES_BY_FIREWALL, namespaced_key(namespace, firewall.metadata.name)
        )
        places: set[_Place] = set()
        for instance in users:
            if instance.status.placement is None or instance.spec.subnet_ref is None:
                continue
            subnet = self._subnets.get(
                ObjectKey(Subnet.PLURAL, namespace, instance.spec.subnet_ref)
            )
            if subnet is None or subnet.status.placement is None or not subnet.status.network_id:
                continue  # not realised yet; its status change reconciles us again
            placement = subnet.status.placement
            places.add(
                _Place(
                    placement.account,
                    placement.region,
                    subnet.spec.network.name,
                    subnet.status.network_id,
                )
            )
        return sorted(places)

    def _known(self, firewall: Firewall, place: _Place) -> FirewallRealisation | None:
        return next(
            (
                r
                for r in firewall.status.realisations
                if (r.account, r.region, r.network) == (place.account, place.region, place.network)
            ),
            None,
        )

    def _realise(
        self, firewall: Firewall, place: _Place, rules: frozenset[FirewallRule]
    ) -> FirewallRealisation:
        """Ensure the security group of ``place`` exists and holds exactly ``rules``."""
        handle = account_handle(self._deps, place.account)
        token = derived_token(str(firewall.metadata.uid), place.account, place.network_id)
        known = self._known(firewall, place)
        view = handle.inventory.firewalls()
        cloud = (view.get(known.provider_id) if known else None) or view.by_token(token)
        if cloud is None:
            tags = cloud_tags(firewall, token)
            created = handle.provider.create_firewall(
                FirewallCreate(tags=tags, network_id=NetworkId(place.network_id), rules=rules)
            )
            handle.inventory.invalidate(ResourceKind.FIREWALL)
            self._deps.recorder.record(
                firewall,
                "Normal",
                "Realised",
                f"security group {created.id} in {place.account}/{place.network}",
            )
            provider_id = str(created.id)
        else:
            provider_id = str(cloud.id)
            diff = diff_rules(cloud.rules, rules)
            if diff:
                handle.provider.update_firewall_rules(
                    cloud.id, authorize=diff.authorize, revoke=diff.revoke
                )
                handle.inventory.invalidate(ResourceKind.FIREWALL)
                drift = firewall.status.observed_generation == firewall.metadata.generation
                self._deps.recorder.record(
                    firewall,
                    "Warning" if drift else "Normal",
                    "DriftCorrected" if drift else "RulesUpdated",
                    f"{cloud.id} in {place.account}/{place.network}: authorized "
                    f"{len(diff.authorize)}, revoked {len(diff.revoke)} rule(s)",
                )
        return FirewallRealisation(
            account=place.account,
            region=place.region,
            network=place.network,
            provider_id=provider_id,
        )

    def _remove(
        self, firewall: Firewall, keep: set[_Place]
    ) -> tuple[list[FirewallRealisation], list[str]]:
        """Delete the realisations outside ``keep`` that no cloud instance uses; returns those
        left for later and the cloud instances holding them."""
        wanted = {(p.account, p.region, p.network) for p in keep}
        lingering: list[FirewallRealisation] = []
        holders: list[str] = []
        for realisation in firewall.status.realisations:
            if (realisation.account, realisation.region, realisation.network) in wanted:
                continue
            group_id = FirewallId(realisation.provider_id)
            try:
                handle = account_handle(self._deps, realisation.account)
                users = _cloud_users(handle, group_id)
                if not users:
                    handle.provider.delete_firewall(group_id)
            except TransientError:
                lingering.append(realisation)  # refused after all (a stale view) or unwell
                continue
            if users:
                lingering.append(realisation)
                holders.extend(users)
                continue
            handle.inventory.invalidate(ResourceKind.FIREWALL)
            self._deps.recorder.record(
                firewall,
                "Normal",
                "Unrealised",
                f"security group {realisation.provider_id} removed from "
                f"{realisation.account}/{realisation.network}: no instance there uses it",
            )
        return lingering, holders


def _cloud_users(handle: AccountHandle, group_id: FirewallId) -> list[str]:
    """The account's cloud instances that still hold ``group_id`` (terminating ones too: lists
    leave out only the terminated), from a view at most ``TRANSITION_VIEW_SECONDS`` old — one
    list per account, shared."""
    view = handle.inventory.instances(max_age=TRANSITION_VIEW_SECONDS)
    return sorted(str(cloud.id) for cloud in view.by_id.values() if group_id in cloud.firewall_ids)


def register(deps: Deps) -> None:
    reconciler = FirewallReconciler(deps)
    deps.manager.add_controller(
        Firewall,
        reconciler,
        watches=[
            (Instance, EnqueueMapped(reconciler.firewalls_of_instance)),
            (Subnet, EnqueueMapped(reconciler.firewalls_of_subnet)),
        ],
    )
