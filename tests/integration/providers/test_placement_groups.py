"""Placement groups (the ``host`` topology of a VirtualCluster, DESIGN §10), on both drivers.

An optional capability of the CloudProvider contract: the EC2 driver has it (spread and
cluster groups through libcloud), the simulated cloud refuses it clearly. moto 5.0.28 has no
placement groups at all (``test_moto_itself_has_no_placement_groups`` pins that), so the EC2
side runs through the fault proxy's ``PlacementGroupShim``, which answers the three
placement-group Actions as EC2 documents them and writes each instance's group into moto's
answers; instances themselves are launched, listed and terminated by moto.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client import CollectorRegistry

from controller.errors import ResourceBusyError, TerminalError, TransientError
from providers.ec2 import Ec2Provider
from providers.errors import UnsupportedError
from providers.metrics import ProviderMetrics
from providers.registry import open_provider
from providers.types import TAG_UID, ImageId, InstanceCreate, PlacementStrategy, SizeId
from tests.integration.providers.conftest import Cloud, MotoServer, ec2_config
from tests.integration.providers.helpers import tags

SPREAD = PlacementStrategy.SPREAD
CLUSTER = PlacementStrategy.CLUSTER


def _launch(cloud: Cloud, name: str, group: str | None) -> InstanceCreate:
    return InstanceCreate(tags(name), cloud.size, cloud.image, placement_group=group)


def test_the_capability_is_declared(cloud: Cloud) -> None:
    assert cloud.provider.supports_placement_groups is (cloud.name == "ec2")


# the simulated cloud


def test_simulated_refuses_placement_groups_clearly(sim_cloud: Cloud) -> None:
    provider = sim_cloud.provider
    with pytest.raises(UnsupportedError) as refused:
        provider.ensure_placement_group("shop-lb", SPREAD)
    assert isinstance(refused.value, TerminalError)
    assert refused.value.reason == "Unsupported"
    assert refused.value.code == "UnsupportedOperation"
    assert "sim-test" in refused.value.message and "shop-lb" in refused.value.message

    with pytest.raises(UnsupportedError):
        provider.create_instance(_launch(sim_cloud, "vm", "shop-lb"))
    assert provider.list_instances() == []  # nothing was launched outside the group

    assert provider.list_placement_groups() == []  # nothing of the kind can exist
    provider.delete_placement_group("shop-lb")  # so a teardown has nothing to do


# EC2 (moto behind the placement-group shim)


def test_ec2_ensures_spread_and_cluster_groups_idempotently(ec2_cloud: Cloud) -> None:
    provider = ec2_cloud.provider
    lb = provider.ensure_placement_group("shop-lb", SPREAD, tags={TAG_UID: "uid-shop"})
    assert (lb.name, lb.strategy, lb.state) == ("shop-lb", SPREAD, "available")
    assert lb.id is not None and lb.uid == "uid-shop"
    near = provider.ensure_placement_group("shop-near", CLUSTER)
    assert (near.strategy, near.tags) == (CLUSTER, {})

    assert provider.ensure_placement_group("shop-lb", SPREAD, tags={TAG_UID: "x"}) == lb
    listed = {g.name: g for g in provider.list_placement_groups()}
    assert listed == {"shop-lb": lb, "shop-near": near}


def test_ec2_refuses_a_group_of_the_same_name_with_another_strategy(ec2_cloud: Cloud) -> None:
    ec2_cloud.provider.ensure_placement_group("shop-db", SPREAD)
    with pytest.raises(TerminalError) as refused:
        ec2_cloud.provider.ensure_placement_group("shop-db", CLUSTER)
    assert refused.value.reason == "InvalidRequest"
    assert "spread" in refused.value.message and "cluster" in refused.value.message


def test_ec2_launches_instances_inside_a_group_and_reads_it_back(ec2_cloud: Cloud) -> None:
    provider = ec2_cloud.provider
    provider.ensure_placement_group("shop-lb", SPREAD)
    provider.ensure_placement_group("shop-near", CLUSTER)
    first = provider.create_instance(_launch(ec2_cloud, "lb-0", "shop-lb"))
    near = provider.create_instance(_launch(ec2_cloud, "web-0", "shop-near"))
    loose = provider.create_instance(_launch(ec2_cloud, "free-0", None))
    assert (first.placement_group, near.placement_group) == ("shop-lb", "shop-near")
    assert loose.placement_group is None

    listed = {i.id: i.placement_group for i in provider.list_instances()}
    assert listed == {first.id: "shop-lb", near.id: "shop-near", loose.id: None}
    again = provider.create_instance(_launch(ec2_cloud, "lb-0", "shop-lb"))  # same token
    assert again.id == first.id and again.placement_group == "shop-lb"


def test_ec2_an_unknown_group_refuses_the_launch(ec2_cloud: Cloud) -> None:
    with pytest.raises(TerminalError) as refused:
        ec2_cloud.provider.create_instance(_launch(ec2_cloud, "lb-0", "nowhere"))
    assert (refused.value.reason, refused.value.code) == (
        "NotFound",
        "InvalidPlacementGroup.Unknown",
    )
    assert ec2_cloud.provider.list_instances() == []


def test_ec2_deletes_groups_idempotently_once_empty(ec2_cloud: Cloud) -> None:
    provider = ec2_cloud.provider
    first = provider.ensure_placement_group("shop-lb", SPREAD)
    provider.ensure_placement_group("shop-near", CLUSTER)
    vm = provider.create_instance(_launch(ec2_cloud, "lb-0", "shop-lb"))
    with pytest.raises(ResourceBusyError):  # an instance still runs in it
        provider.delete_placement_group("shop-lb")

    provider.delete_instance(vm.id)
    provider.delete_placement_group("shop-lb")
    provider.delete_placement_group("shop-lb")  # gone: still a success
    provider.delete_placement_group("never-made")
    # EC2 lists a deleted group for a while; the provider leaves it out
    assert [g.name for g in provider.list_placement_groups()] == ["shop-near"]

    again = provider.ensure_placement_group("shop-lb", SPREAD)  # the name is free again
    assert again.id != first.id and again.state == "available"


def test_ec2_a_create_whose_answer_was_lost_is_found_on_retry(ec2_cloud: Cloud) -> None:
    assert ec2_cloud.proxy is not None
    ec2_cloud.proxy.inject("drop_after_apply", "CreatePlacementGroup")
    with pytest.raises(TransientError):
        ec2_cloud.provider.ensure_placement_group("shop-lb", SPREAD)
    group = ec2_cloud.provider.ensure_placement_group("shop-lb", SPREAD)
    assert [g.id for g in ec2_cloud.provider.list_placement_groups()] == [group.id]


def test_ec2_concurrent_ensures_make_one_group(ec2_cloud: Cloud) -> None:
    """Workers racing to make one group: the losers' creates answer Duplicate, and they
    read back the winner's group."""
    assert ec2_cloud.proxy is not None
    providers = [Ec2Provider(ec2_config(ec2_cloud.proxy.port)) for _ in range(6)]
    with ThreadPoolExecutor(len(providers)) as pool:
        groups = list(pool.map(lambda p: p.ensure_placement_group("shop-lb", SPREAD), providers))
    assert len({g.id for g in groups}) == 1
    assert [g.id for g in ec2_cloud.provider.list_placement_groups()] == [groups[0].id]


def test_ec2_calls_pass_the_accounts_gate(ec2_cloud: Cloud) -> None:
    assert ec2_cloud.proxy is not None
    registry = CollectorRegistry()
    config = ec2_config(ec2_cloud.proxy.port)
    guarded = open_provider(config, metrics=ProviderMetrics(registry), inner=Ec2Provider(config))

    def calls(op: str, code: str) -> float:
        labels = {"account": config.name, "op": op, "code": code}
        return registry.get_sample_value("provider_calls_total", labels) or 0.0

    assert guarded.supports_placement_groups
    guarded.ensure_placement_group("shop-lb", SPREAD)
    vm = guarded.create_instance(_launch(ec2_cloud, "lb-0", "shop-lb"))
    assert [i.placement_group for i in guarded.list_instances()] == ["shop-lb"]
    with pytest.raises(ResourceBusyError):
        guarded.delete_placement_group("shop-lb")
    guarded.delete_instance(vm.id)
    guarded.delete_placement_group("shop-lb")
    assert guarded.list_placement_groups() == []
    assert calls("ensure_placement_group", "OK") == 1
    assert calls("delete_placement_group", "InvalidPlacementGroup.InUse") == 1
    assert calls("delete_placement_group", "OK") == 1
    assert calls("list_placement_groups", "OK") == 1
    assert not guarded.gate.breaker.recent_failures  # a group in use is no outage


# an EC2-compatible endpoint without placement groups


def test_ec2_endpoint_without_placement_groups_is_declared_so(moto_server: MotoServer) -> None:
    moto_server.reset()
    provider = Ec2Provider(ec2_config(moto_server.port, placement_groups="false"))
    assert not provider.supports_placement_groups
    with pytest.raises(UnsupportedError) as refused:
        provider.ensure_placement_group("shop-lb", SPREAD)
    assert "placement_groups=false" in refused.value.message
    with pytest.raises(UnsupportedError):
        provider.create_instance(
            InstanceCreate(tags("vm"), SizeId("t3.micro"), ImageId("ami-0"), placement_group="g")
        )
    assert provider.list_placement_groups() == []
    provider.delete_placement_group("shop-lb")
    with pytest.raises(ValueError, match="placement_groups"):
        Ec2Provider(ec2_config(moto_server.port, placement_groups="maybe"))


def test_moto_itself_has_no_placement_groups(moto_server: MotoServer) -> None:
    """A canary: moto (5.0.28, and 5.2.5) answers the placement-group Actions with a bare
    HTTP 500. When this fails, moto has learnt them: drop ``placement_shim`` and test on it."""
    moto_server.reset()
    provider = Ec2Provider(ec2_config(moto_server.port))
    with pytest.raises(TransientError) as failed:
        provider.list_placement_groups()
    assert failed.value.code == "HTTP500"
