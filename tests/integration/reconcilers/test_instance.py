"""Instance reconciler on the simulated cloud: convergence, sticky placement, waits, deletion."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import REGISTRY

from api_types import Firewall, Instance, InstancePhase, Placement, PowerState, Subnet
from controller.store.objects import Store
from providers import CloudInstance
from reconcilers import instance, subnet
from reconcilers._common import TRANSITION_VIEW_SECONDS, account_handle
from tests.integration.reconcilers.harness import (
    Harness,
    instance_manifest,
    pool_manifest,
    sim_account,
)

NS = "acme"

# The transition is seen through views at most TRANSITION_VIEW_SECONDS old, or else only at
# the next inventory interval: an interval far beyond the bound, and a bound far beyond the
# few seconds it takes, so a loaded machine cannot make this fail and a regression always does.
SLOW_INVENTORY_SECONDS = 600.0
SEEN_WITHIN_SECONDS = 10 * (3.0 + TRANSITION_VIEW_SECONDS)


def running(obj: Instance) -> bool:
    return obj.status.phase == InstancePhase.RUNNING


def condition(obj: Instance, type_: str) -> tuple[str, str] | None:
    found = obj.status.condition(type_)
    return None if found is None else (found.status.value, found.reason)


def test_converges_to_running_and_deletion_empties_the_cloud(harness: Harness) -> None:
    harness.apply(
        sim_account("sim-a"),
        sim_account("sim-b"),
        pool_manifest("general", [{"account": "sim-a", "priority": 1}, {"account": "sim-b"}]),
    )
    harness.start(instance.register)
    harness.apply(instance_manifest("web-1", pool="general"))
    web = harness.wait_for(Instance, "web-1", NS, running)
    assert web.status.placement is not None
    assert (web.status.placement.account, web.status.placement.member) == ("sim-a", "sim-a")
    assert web.status.placement.size == "s1.small"
    assert web.status.provider_id and web.status.create_token and web.status.addresses
    assert web.metadata.finalizers == [instance.FINALIZER]
    for type_ in ("Scheduled", "Provisioned", "Ready"):
        assert condition(web, type_) is not None and condition(web, type_)[0] == "True"  # type: ignore[index]
    assert [r.member for r in web.status.rejections] == []
    cloud: dict[str, CloudInstance] = {i.id: i for i in harness.cloud("sim-a").list_instances()}
    assert list(cloud) == [web.status.provider_id]
    assert cloud[web.status.provider_id].uid == web.metadata.uid

    harness.store.delete(Instance, "web-1", NS)
    harness.wait_gone(Instance, "web-1", NS)
    assert harness.cloud("sim-a").list_instances() == []
    assert harness.cloud("sim-b").list_instances() == []


def test_waits_for_subnet_and_firewall_then_places_where_the_subnet_is(harness: Harness) -> None:
    harness.apply(
        sim_account("sim-a"),
        sim_account("sim-b"),
        pool_manifest("general", [{"account": "sim-a", "priority": 9}, {"account": "sim-b"}]),
        {
            "apiVersion": "skybroker.io/v1alpha1",
            "kind": "Subnet",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {
                "pool": "general",
                "network": {"name": "main", "cidr": "10.10.0.0/16"},
                "cidr": "10.10.1.0/24",
            },
        },
        {
            "apiVersion": "skybroker.io/v1alpha1",
            "kind": "Firewall",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {
                "rules": [
                    {
                        "direction": "Ingress",
                        "protocol": "tcp",
                        "ports": "80",
                        "cidrs": ["0.0.0.0/0"],
                    }
                ]
            },
        },
    )
    harness.start(instance.register)
    harness.apply(instance_manifest("web-1", pool="general", subnetRef="web", firewallRefs=["web"]))
    waiting = harness.wait_for(
        Instance, "web-1", NS, lambda i: condition(i, "Ready") == ("False", "WaitingForSubnet")
    )
    assert waiting.status.placement is None
    # Stand in for the Subnet reconciler: the subnet is placed on sim-b (the lower priority).
    provider = harness.cloud("sim-b")
    from providers import NetworkCreate, ResourceTags, SubnetCreate, ZoneName

    tags = ResourceTags(name="main", uid="test-network", token="net-1")
    network = provider.create_network(NetworkCreate(tags=tags, cidr="10.10.0.0/16"))
    subnet_tags = ResourceTags(name="web", uid="test-subnet", token="sub-1")
    cloud_subnet = provider.create_subnet(
        SubnetCreate(subnet_tags, network.id, "10.10.1.0/24", ZoneName("sim-eastb"))
    )
    subnet = harness.get(Subnet, "web", NS)
    assert subnet is not None
    subnet.status.placement = Placement(account="sim-b", region="sim-east", zone="sim-eastb")
    subnet.status.network_id = network.id
    subnet = harness.store.update_status(subnet)
    placed = harness.wait_for(
        Instance,
        "web-1",
        NS,
        lambda i: (
            condition(i, "Ready") == ("False", "WaitingForSubnet")
            and i.status.placement is not None
        ),
    )
    assert placed.status.placement is not None
    assert (placed.status.placement.account, placed.status.placement.zone) == ("sim-b", "sim-eastb")
    subnet.status.provider_id = cloud_subnet.id
    harness.store.update_status(subnet)
    harness.wait_for(
        Instance, "web-1", NS, lambda i: condition(i, "Ready") == ("False", "WaitingForFirewall")
    )
    from providers import FirewallCreate

    group = provider.create_firewall(
        FirewallCreate(ResourceTags("web", "test-fw", "fw-1"), network.id)
    )
    firewall = harness.get(Firewall, "web", NS)
    assert firewall is not None
    firewall.status = firewall.status.model_validate(
        {
            "realisations": [
                {
                    "account": "sim-b",
                    "region": "sim-east",
                    "network": "main",
                    "providerID": group.id,
                }
            ]
        }
    )
    harness.store.update_status(firewall)
    web = harness.wait_for(Instance, "web-1", NS, running)
    (cloud,) = provider.list_instances()
    assert cloud.id == web.status.provider_id
    assert (cloud.subnet_id, cloud.firewall_ids, cloud.zone) == (
        cloud_subnet.id,
        (group.id,),
        "sim-eastb",
    )
    assert condition(web, "Ready") == ("True", "Running")
    assert condition(web, "Scheduled") == ("True", "Placed")


def test_a_power_change_is_seen_done_long_before_the_inventory_interval(
    store: Store, tmp_path: Path
) -> None:
    """With an inventory interval of ten minutes, a 3 s stop is observed within seconds:
    an instance in transition reads a view at most TRANSITION_VIEW_SECONDS old (one list per
    account, shared by all of them), not the interval's."""
    harness = Harness(store, tmp_path, inventory_interval=SLOW_INVENTORY_SECONDS)
    try:
        harness.apply(
            sim_account("sim-a", boot_seconds=0.2, stop_seconds=3.0),
            pool_manifest("general", [{"account": "sim-a"}]),
        )
        harness.start(instance.register)
        harness.apply(instance_manifest("web-1", pool="general"))
        web = harness.wait_for(Instance, "web-1", NS, running, timeout=15)
        web.spec.power_state = PowerState.STOPPED
        harness.store.update(web)
        started = time.monotonic()
        harness.wait_for(
            Instance,
            "web-1",
            NS,
            lambda i: i.status.phase == InstancePhase.STOPPED,
            timeout=2 * SEEN_WITHIN_SECONDS,
        )
        assert time.monotonic() - started < SEEN_WITHIN_SECONDS
    finally:
        harness.stop()


def test_a_new_instance_is_created_without_listing_its_account(
    store: Store, tmp_path: Path
) -> None:
    """Nothing of a new instance can be in the cloud (its create token is durable before any
    create), so its first pass creates it without the fresh listing that an instance in
    transition asks for. That listing is of the whole account: every new instance forced one
    per TRANSITION_VIEW_SECONDS, the larger part of bench.converge's cost at 10,000."""
    # No resync: a pass over an instance the (old) view does not list yet forces a fresh
    # listing by design (LISTING_GRACE_SECONDS). An account of its own: the counter is a
    # series per account, which another test's manager must not move.
    harness = Harness(
        store,
        tmp_path,
        inventory_interval=SLOW_INVENTORY_SECONDS,
        resync_period=SLOW_INVENTORY_SECONDS,
    )
    try:
        harness.apply(
            sim_account("sim-listing", boot_seconds=0),
            pool_manifest("general", [{"account": "sim-listing"}]),
        )
        harness.start(instance.register)
        harness.apply(instance_manifest("first", pool="general"))
        harness.wait_for(Instance, "first", NS, running)
        view = account_handle(harness.deps, "sim-listing").inventory.instances()
        clock = harness.deps.clock
        harness.eventually(
            lambda: clock.now() - view.fetched_at > TRANSITION_VIEW_SECONDS,
            TRANSITION_VIEW_SECONDS + 10,
            "the account's view never aged past the transition bound",
        )
        labels = {"account": "sim-listing", "op": "list_instances", "code": "OK"}
        listed = REGISTRY.get_sample_value("provider_calls_total", labels)
        harness.apply(instance_manifest("second", pool="general"))
        second = harness.wait_for(Instance, "second", NS, running)
        assert second.status.provider_id is not None
        assert REGISTRY.get_sample_value("provider_calls_total", labels) == listed
    finally:
        harness.stop()


def test_a_subnet_that_does_not_exist_is_not_found_not_waited_for(harness: Harness) -> None:
    """A subnetRef naming no Subnet says so (with a Warning event), unlike one that exists but
    is not placed yet; creating the subnet then lets the instance go ahead."""
    harness.apply(sim_account("sim-a"), pool_manifest("general", [{"account": "sim-a"}]))
    harness.start(instance.register)
    harness.apply(instance_manifest("web-1", pool="general", subnetRef="nope"))
    missing = harness.wait_for(
        Instance, "web-1", NS, lambda i: condition(i, "Ready") == ("False", "SubnetNotFound")
    )
    ready = missing.status.condition("Ready")
    assert ready is not None and ready.message == "subnet nope not found in namespace acme"
    assert condition(missing, "Scheduled") == ("False", "SubnetNotFound")
    assert missing.status.phase == InstancePhase.PENDING
    harness.wait_for_event(Instance.PLURAL, "web-1", NS, "SubnetNotFound")

    harness.apply(
        {
            "apiVersion": "skybroker.io/v1alpha1",
            "kind": "Subnet",
            "metadata": {"name": "nope", "namespace": NS},
            "spec": {
                "pool": "general",
                "network": {"name": "main", "cidr": "10.10.0.0/16"},
                "cidr": "10.10.1.0/24",
            },
        }
    )
    waiting = harness.wait_for(
        Instance, "web-1", NS, lambda i: condition(i, "Ready") == ("False", "WaitingForSubnet")
    )
    assert (waiting.status.condition("Ready") or ready).message == "subnet nope is not placed yet"


def test_a_firewall_that_does_not_exist_is_not_found(harness: Harness) -> None:
    harness.apply(
        sim_account("sim-a"),
        pool_manifest("general", [{"account": "sim-a"}]),
        {
            "apiVersion": "skybroker.io/v1alpha1",
            "kind": "Subnet",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {
                "pool": "general",
                "network": {"name": "main", "cidr": "10.10.0.0/16"},
                "cidr": "10.10.1.0/24",
            },
        },
    )
    harness.start(instance.register, subnet.register)
    harness.apply(
        instance_manifest("web-1", pool="general", subnetRef="web", firewallRefs=["nope"])
    )
    missing = harness.wait_for(
        Instance, "web-1", NS, lambda i: condition(i, "Ready") == ("False", "FirewallNotFound")
    )
    ready = missing.status.condition("Ready")
    assert ready is not None and ready.message == "firewall nope not found in namespace acme"
    harness.wait_for_event(Instance.PLURAL, "web-1", NS, "FirewallNotFound")
    assert harness.cloud("sim-a").list_instances() == []
