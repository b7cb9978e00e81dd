"""VirtualClusters with ``host`` rules on EC2: placement groups made, used and deleted.

A pool ``general`` of one ec2 account ``aws`` on the session's moto_server, reached through a
``FaultProxy`` whose ``PlacementGroupShim`` plays EC2's placement groups (moto has none); the
Instance and VirtualCluster reconcilers run. The cloud is read back through a provider of the
test's own on the same proxy: instances with their group, and the groups the shim holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from api_types import Instance, VirtualCluster
from api_types.clusters import PlacementRule, placement_group_name
from providers.ec2 import Ec2Provider
from providers.types import CloudPlacementGroup, PlacementStrategy
from reconcilers import instance, virtualcluster
from reconcilers.placementgroups import FINALIZER
from tests.integration.providers.conftest import SETUP_TIMEOUT, MotoServer, ec2_config
from tests.integration.providers.helpers import FaultProxy
from tests.integration.reconcilers.harness import Harness, ec2_account, pool_manifest
from tests.integration.reconcilers.test_virtualcluster import (
    NS,
    _children,
    _condition,
    _ready,
    _rule,
    _vc,
)

TIMEOUT = 90.0


@dataclass
class Ec2:
    proxy: FaultProxy
    cloud: Ec2Provider

    def groups(self) -> dict[str, CloudPlacementGroup]:
        return {g.name: g for g in self.cloud.list_placement_groups()}

    def running(self) -> dict[str, str | None]:
        """Instance id -> placement group, of the instances not terminated."""
        return {i.id: i.placement_group for i in self.cloud.list_instances()}


@pytest.fixture
def ec2(harness: Harness, moto_server: MotoServer) -> Iterator[Ec2]:
    moto_server.reset()
    proxy = FaultProxy(moto_server.port)
    try:
        cloud = Ec2Provider(ec2_config(proxy.port, timeout=str(SETUP_TIMEOUT)))
        image = cloud.driver.ex_register_image("skybroker-image", description="vc test")
        endpoint = f"http://127.0.0.1:{proxy.port}"
        harness.apply(
            *ec2_account("aws", endpoint, image.id),
            pool_manifest("general", [{"account": "aws"}]),
        )
        harness.start(instance.register, virtualcluster.register)
        yield Ec2(proxy, cloud)
    finally:
        harness.stop()
        proxy.close()


def _host_vc(kind: str, replicas: int = 2) -> dict[str, Any]:
    manifest = _vc("shop", {"lb": replicas}, _rule(kind, ["lb"], "host"))
    manifest["spec"]["members"][0]["template"]["hardware"] = {"size": "t3.micro"}
    return manifest


def _group_name(manifest: dict[str, Any]) -> str:
    rule = PlacementRule.model_validate(manifest["spec"]["placement"][0])
    return placement_group_name(NS, "shop", rule)


def test_anti_affinity_on_host_launches_the_replicas_in_one_spread_group(
    harness: Harness, ec2: Ec2
) -> None:
    manifest = _host_vc("AntiAffinity")
    name = _group_name(manifest)
    harness.apply(manifest)

    shop = harness.wait_for(VirtualCluster, "shop", NS, _ready(2), TIMEOUT)

    assert FINALIZER in shop.metadata.finalizers
    assert [(g.account, g.name, g.strategy) for g in shop.status.placement_groups] == [
        ("aws", name, "spread")
    ]
    children = _children(harness, "shop")
    assert sorted(children) == ["shop-lb-0", "shop-lb-1"]
    for child in children.values():
        assert child.status.placement is not None
        assert child.status.placement.placement_group == name
    running = ec2.running()
    assert sorted(running) == sorted(str(c.status.provider_id) for c in children.values())
    assert set(running.values()) == {name}
    (group,) = ec2.groups().values()
    assert (group.name, group.strategy, group.state) == (
        name,
        PlacementStrategy.SPREAD,
        "available",
    )
    assert group.uid == shop.metadata.uid
    assert "PlacementGroupCreated" in harness.event_reasons("virtualclusters", "shop", NS)

    harness.store.delete(VirtualCluster, "shop", NS)

    harness.wait_gone(VirtualCluster, "shop", NS, TIMEOUT)
    assert harness.store.list(Instance, NS).items == []
    assert ec2.running() == {}
    assert ec2.groups() == {}


def test_proximity_on_host_packs_the_replicas_in_one_cluster_group_released_at_zero(
    harness: Harness, ec2: Ec2
) -> None:
    manifest = _host_vc("Proximity")
    name = _group_name(manifest)
    harness.apply(manifest)

    harness.wait_for(VirtualCluster, "shop", NS, _ready(2), TIMEOUT)

    children = _children(harness, "shop")
    zones = {c.status.placement.zone for c in children.values() if c.status.placement}
    assert len(zones) == 1  # a cluster group lives in one zone
    assert set(ec2.running().values()) == {name}
    assert [(g.name, g.strategy) for g in ec2.groups().values()] == [
        (name, PlacementStrategy.CLUSTER)
    ]

    shop = harness.store.get(VirtualCluster, "shop", NS)
    shop.spec.members[0].replicas = 0
    harness.store.update(shop)

    harness.eventually(lambda: ec2.groups() == {}, TIMEOUT, lambda: f"groups: {ec2.groups()}")
    assert ec2.running() == {}
    shop = harness.wait_for(
        VirtualCluster, "shop", NS, lambda vc: vc.status.placement_groups == [], TIMEOUT
    )
    assert FINALIZER in shop.metadata.finalizers  # the host rule stays


def test_a_group_that_cannot_be_made_creates_no_child_and_is_retried(
    harness: Harness, ec2: Ec2
) -> None:
    """A cluster group of the spread group's name is in the way (the cloud refuses the
    ensure for good): no Instance, the reason on the VirtualCluster; gone, all converges."""
    manifest = _host_vc("AntiAffinity")
    name = _group_name(manifest)
    ec2.cloud.ensure_placement_group(name, PlacementStrategy.CLUSTER)
    harness.apply(manifest)

    shop = harness.wait_for(
        VirtualCluster,
        "shop",
        NS,
        lambda vc: _condition(vc, "Ready") == ("False", "PlacementGroupRefused"),
        TIMEOUT,
    )
    message = shop.status.condition("Ready").message  # type: ignore[union-attr]
    assert name in message and "strategy cluster" in message
    assert _condition(shop, "PlacementSatisfied") == ("False", "PlacementGroupRefused")
    harness.wait_for_event("virtualclusters", "shop", NS, "PlacementGroupRefused")
    harness.wait_for_reconciles("VirtualCluster", 2, TIMEOUT)  # it stays so
    assert _children(harness, "shop") == {}
    assert ec2.running() == {}

    ec2.cloud.delete_placement_group(name)

    harness.wait_for(VirtualCluster, "shop", NS, _ready(2), TIMEOUT)
    assert set(ec2.running().values()) == {name}
    assert [g.strategy for g in ec2.groups().values()] == [PlacementStrategy.SPREAD]


def test_failed_and_lost_creates_of_the_group_are_retried_into_one_group(
    harness: Harness, ec2: Ec2
) -> None:
    """CreatePlacementGroup answered with a 500, then applied with its answer lost: the
    failure is reported, and the retry finds the group made instead of making another."""
    ec2.proxy.inject("internal", "CreatePlacementGroup")
    ec2.proxy.inject("drop_after_apply", "CreatePlacementGroup")
    manifest = _host_vc("AntiAffinity")
    harness.apply(manifest)

    harness.wait_for(VirtualCluster, "shop", NS, _ready(2), TIMEOUT)

    reasons = harness.event_reasons("virtualclusters", "shop", NS)
    assert "PlacementGroupFailed" in reasons
    (group,) = ec2.groups().values()
    assert group.name == _group_name(manifest)
    assert set(ec2.running().values()) == {group.name}
