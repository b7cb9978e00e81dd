"""Subnet reconciler: placement, a shared network per name, deletion order, cloud left empty."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from api_types import Instance, Subnet
from reconcilers import subnet
from tests.integration.reconcilers.harness import (
    API,
    Harness,
    instance_manifest,
    pool_manifest,
    pool_of_two,
    sim_account,
)


def subnet_manifest(name: str, cidr: str, namespace: str = "acme", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "pool": "general",
        "network": {"name": "main", "cidr": "10.10.0.0/16"},
        "cidr": cidr,
    }
    body.update(spec)
    return {
        "apiVersion": API,
        "kind": "Subnet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def ready(obj: Subnet) -> bool:
    return obj.status.phase == "Ready" and bool(obj.status.provider_id)


def start(harness: Harness) -> None:
    harness.apply(sim_account("sim-a"), pool_manifest("general", [{"account": "sim-a"}]))
    harness.start(subnet.register)


def test_subnets_share_their_network_and_the_last_one_deletes_it(harness: Harness) -> None:
    start(harness)
    harness.apply(subnet_manifest("web", "10.10.1.0/24"), subnet_manifest("db", "10.10.2.0/24"))
    web = harness.wait_for(Subnet, "web", "acme", ready)
    db = harness.wait_for(Subnet, "db", "acme", ready)
    assert web.status.network_id == db.status.network_id
    assert web.status.placement is not None and web.status.placement.member == "sim-a"
    assert web.metadata.finalizers == [subnet.FINALIZER]
    cloud = harness.provider("sim-a").inner  # not through the budget the controller uses
    assert {s.id for s in cloud.list_subnets()} == {web.status.provider_id, db.status.provider_id}
    assert [n.id for n in cloud.list_networks()] == [web.status.network_id]

    harness.store.delete(Subnet, "web", "acme")
    harness.wait_gone(Subnet, "web", "acme")
    assert [s.id for s in cloud.list_subnets()] == [db.status.provider_id]
    (network,) = cloud.list_networks()
    assert network.uid == db.metadata.uid  # re-tagged to the subnet still using it

    harness.store.delete(Subnet, "db", "acme")
    harness.wait_gone(Subnet, "db", "acme")
    assert cloud.list_subnets() == []
    assert cloud.list_networks() == []


def test_deletion_waits_for_the_instances_using_it(harness: Harness) -> None:
    start(harness)
    harness.apply(subnet_manifest("web", "10.10.1.0/24"))
    harness.wait_for(Subnet, "web", "acme", ready)
    harness.apply(instance_manifest("web-1", pool="general", subnetRef="web"))

    harness.store.delete(Subnet, "web", "acme")
    waiting = harness.wait_for(
        Subnet,
        "web",
        "acme",
        lambda s: (c := s.status.condition("Ready")) is not None and c.reason == "InUse",
    )
    assert waiting.status.phase == "Deleting"
    cloud = harness.provider("sim-a").inner  # not through the budget the controller uses
    assert len(cloud.list_subnets()) == 1

    harness.store.delete(Instance, "web-1", "acme")
    harness.wait_gone(Subnet, "web", "acme")
    assert cloud.list_subnets() == []
    assert cloud.list_networks() == []


def test_unknown_pool_is_unschedulable_until_it_exists(harness: Harness) -> None:
    start(harness)
    harness.apply(subnet_manifest("web", "10.10.1.0/24", pool="later"))
    pending = harness.wait_for(
        Subnet,
        "web",
        "acme",
        lambda s: (c := s.status.condition("Scheduled")) is not None and c.status == "False",
    )
    assert "pool later does not exist" in (pending.status.condition("Scheduled") or None).message  # type: ignore[union-attr]
    harness.apply(pool_manifest("later", [{"account": "sim-a"}]))
    harness.wait_for(Subnet, "web", "acme", ready)


@pytest.mark.parametrize("policy", ["RoundRobin", "LeastLoaded"])
def test_subnets_created_at_once_spread_over_the_pool_by_its_policy(
    harness: Harness, policy: str
) -> None:
    harness.apply(*pool_of_two(policy))
    harness.start(subnet.register)

    def spread(count: int) -> Counter[str | None]:
        placed = [harness.wait_for(Subnet, f"net-{i}", "acme", ready) for i in range(count)]
        return Counter(s.status.placement.member for s in placed if s.status.placement)

    harness.apply(*(subnet_manifest(f"net-{i}", f"10.10.{i}.0/24") for i in range(4)))
    assert spread(4) == {"sim-a": 2, "sim-b": 2}
    for i in (4, 5):  # one after the other now: the load is what the cache shows
        harness.apply(subnet_manifest(f"net-{i}", f"10.10.{i}.0/24"))
        harness.wait_for(Subnet, f"net-{i}", "acme", ready)
    assert spread(6) == {"sim-a": 3, "sim-b": 3}
    assert [len(harness.cloud(a).list_subnets()) for a in ("sim-a", "sim-b")] == [3, 3]


def test_a_subnet_the_cloud_refuses_is_failed_with_the_reason(harness: Harness) -> None:
    """Two subnets of one network with overlapping CIDRs: the cloud refuses the second for
    good, and it says Failed with the cloud's reason instead of staying Scheduled."""
    harness.apply(sim_account("sim-a"), pool_manifest("general", [{"account": "sim-a"}]))
    harness.start(subnet.register)
    harness.apply(subnet_manifest("first", "10.10.1.0/24"))
    harness.wait_for(Subnet, "first", "acme", ready)
    harness.apply(subnet_manifest("overlap", "10.10.1.0/25"))
    failed = harness.wait_for(Subnet, "overlap", "acme", lambda s: s.status.phase == "Failed")
    condition = failed.status.condition("Ready")
    assert condition is not None and (condition.status, condition.reason) == (
        "False",
        "InvalidRequest",
    )
    assert "InvalidSubnet.Conflict" in condition.message
    harness.wait_for_event(Subnet.PLURAL, "overlap", "acme", "InvalidRequest")
