"""Firewall reconciler: realised where a placed instance lives, rules as a diff, drift reverted.

The Instance reconciler is not running here: the test places the instance itself (writes
``status.placement`` as the scheduler would), which is all the firewall reconciler reads.
"""

from __future__ import annotations

from typing import Any

from api_types import Firewall, Instance, InstancePlacement, Subnet
from providers import CloudFirewall, Direction, FirewallRule, IpProtocol
from reconcilers import firewall, subnet
from reconcilers.firewall import desired_rules
from tests.integration.reconcilers.harness import (
    API,
    Harness,
    instance_manifest,
    pool_manifest,
    sim_account,
)
from tests.integration.reconcilers.test_subnet import subnet_manifest


def firewall_manifest(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Firewall",
        "metadata": {"name": name, "namespace": "acme"},
        "spec": {"rules": rules},
    }


HTTP = {"direction": "Ingress", "protocol": "tcp", "ports": "80", "cidrs": ["0.0.0.0/0"]}
APP = {"direction": "Ingress", "protocol": "tcp", "ports": "8000-8100", "cidrs": ["10.0.0.0/8"]}


def place_instance(harness: Harness, name: str, on: Subnet) -> None:
    """Do what the Instance reconciler's scheduler does: bind the instance where its subnet is."""
    instance = harness.store.get(Instance, name, "acme")
    assert on.status.placement is not None
    instance.status.placement = InstancePlacement(
        account=on.status.placement.account,
        region=on.status.placement.region,
        zone=on.status.placement.zone,
        member=on.status.placement.member,
        size="s1.small",
    )
    harness.store.update_status(instance)


def cloud_firewalls(harness: Harness) -> list[CloudFirewall]:
    return harness.provider("sim-a").inner.list_firewalls()  # type: ignore[attr-defined,no-any-return]


def test_realised_where_used_rules_diffed_drift_reverted_removed_when_unused(
    harness: Harness,
) -> None:
    harness.apply(sim_account("sim-a"), pool_manifest("general", [{"account": "sim-a"}]))
    harness.start(subnet.register, firewall.register)
    harness.apply(
        subnet_manifest("web", "10.10.1.0/24"),
        firewall_manifest("web", [HTTP]),
        instance_manifest("web-1", pool="general", subnetRef="web", firewallRefs=["web"]),
    )
    unused = harness.wait_for(
        Firewall, "web", "acme", lambda f: f.status.condition("Ready") is not None
    )
    assert unused.status.realisations == []
    web = harness.wait_for(Subnet, "web", "acme", lambda s: bool(s.status.network_id))

    place_instance(harness, "web-1", web)
    realised = harness.wait_for(Firewall, "web", "acme", lambda f: len(f.status.realisations) == 1)
    (where,) = realised.status.realisations
    assert (where.account, where.network) == ("sim-a", "main")
    (group,) = cloud_firewalls(harness)
    assert group.id == where.provider_id and group.network_id == web.status.network_id
    assert group.rules == desired_rules(realised)

    # A spec change is applied as a diff on the same security group.
    realised.spec.rules.append(realised.spec.rules[0].model_validate(APP))
    changed = harness.store.update(realised)
    harness.eventually(
        lambda: [g.rules for g in cloud_firewalls(harness)] == [desired_rules(changed)],
        20,
        "rules updated",
    )
    assert [g.id for g in cloud_firewalls(harness)] == [where.provider_id]

    # Drift: a rule added and one removed behind skybroker's back are both reverted.
    extra = FirewallRule(Direction.INGRESS, IpProtocol.TCP, 22, 22, "0.0.0.0/0")
    http = FirewallRule(Direction.INGRESS, IpProtocol.TCP, 80, 80, "0.0.0.0/0")
    harness.provider("sim-a").inner.update_firewall_rules(  # type: ignore[attr-defined]
        where.provider_id, authorize=[extra], revoke=[http]
    )
    harness.eventually(
        lambda: [g.rules for g in cloud_firewalls(harness)] == [desired_rules(changed)],
        20,
        "drift reverted",
    )
    # The event is recorded in the background, possibly just after the cloud was put back.
    harness.eventually(
        lambda: "DriftCorrected" in harness.event_reasons("firewalls", "web", "acme"),
        10,
        "no DriftCorrected event",
    )

    # No instance uses it any more: the realisation goes; deleting the firewall is then quick.
    harness.store.delete(Instance, "web-1", "acme")
    harness.wait_for(Firewall, "web", "acme", lambda f: f.status.realisations == [])
    assert cloud_firewalls(harness) == []
    harness.store.delete(Firewall, "web", "acme")
    harness.wait_gone(Firewall, "web", "acme")


def test_deleting_a_firewall_removes_every_realisation(harness: Harness) -> None:
    harness.apply(sim_account("sim-a"), pool_manifest("general", [{"account": "sim-a"}]))
    harness.start(subnet.register, firewall.register)
    harness.apply(
        subnet_manifest("web", "10.10.1.0/24"),
        firewall_manifest("web", [HTTP]),
        instance_manifest("web-1", pool="general", subnetRef="web", firewallRefs=["web"]),
    )
    web = harness.wait_for(Subnet, "web", "acme", lambda s: bool(s.status.network_id))
    place_instance(harness, "web-1", web)
    harness.wait_for(Firewall, "web", "acme", lambda f: len(f.status.realisations) == 1)
    harness.store.delete(Firewall, "web", "acme")
    harness.wait_gone(Firewall, "web", "acme")
    assert cloud_firewalls(harness) == []
