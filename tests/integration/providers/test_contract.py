"""The CloudProvider contract, run against both drivers (``-k simulated`` / ``-k ec2``)."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest

from controller.errors import TerminalError, TransientError
from providers.ec2 import Ec2Provider
from providers.protocol import CloudProvider
from providers.rules import DEFAULT_EGRESS, expand_rules
from providers.types import (
    TAG_NAME,
    TAG_TOKEN,
    TAG_UID,
    FirewallCreate,
    FirewallId,
    ImageId,
    InstanceCreate,
    InstanceId,
    InstanceState,
    NetworkCreate,
    NetworkId,
    SizeId,
    SubnetCreate,
    SubnetId,
    Tagged,
    VolumeCreate,
    VolumeId,
    VolumeState,
)
from tests.integration.providers.conftest import SETUP_TIMEOUT, Cloud, MotoServer, ec2_config
from tests.integration.providers.helpers import free_port, tags

R = TypeVar("R", bound=Tagged)

WEB_RULES = frozenset(
    expand_rules("Ingress", "tcp", "80", ["0.0.0.0/0"])
    + expand_rules("Ingress", "tcp", "8000-8100", ["10.0.0.0/8", "192.168.0.0/16"])
    + expand_rules("Ingress", "icmp", None, ["10.0.0.0/8"])
)


def _instance(cloud: Cloud, name: str, **kwargs: object) -> InstanceCreate:
    return InstanceCreate(tags(name), cloud.size, cloud.image, **kwargs)  # type: ignore[arg-type]


def _mine(items: Sequence[R]) -> list[R]:
    """The resources skybroker made (EC2 also lists e.g. instances' root volumes)."""
    return [item for item in items if item.uid is not None]


def _network(cloud: Cloud, name: str = "net") -> tuple[NetworkId, SubnetId]:
    net = cloud.provider.create_network(NetworkCreate(tags(name), "10.20.0.0/16"))
    sub = cloud.provider.create_subnet(
        SubnetCreate(tags(f"{name}-sub"), net.id, "10.20.1.0/24", cloud.zone)
    )
    return net.id, sub.id


# catalogue


def test_catalogue(cloud: Cloud) -> None:
    zones = cloud.provider.list_zones()
    assert cloud.zone in {z.name for z in zones}
    assert all(z.region == cloud.provider.region for z in zones)
    sizes = {s.id: s for s in cloud.provider.list_sizes()}
    size = sizes[cloud.size]
    assert size.cpu >= 1 and size.memory_mib >= 512
    assert size.price_per_hour is not None and size.price_per_hour > 0
    assert size.arch == "x86_64"
    assert cloud.image in {i.id for i in cloud.provider.list_images()}


# instances


def test_instance_lifecycle(cloud: Cloud) -> None:
    p = cloud.provider
    created = p.create_instance(
        _instance(cloud, "vm", zone=cloud.other_zone, user_data="#!/bin/sh")
    )
    assert created.state in (InstanceState.PENDING, InstanceState.RUNNING)
    assert (created.size, created.image, created.zone) == (
        cloud.size,
        cloud.image,
        cloud.other_zone,
    )
    cloud.settle()
    (listed,) = p.list_instances()
    assert listed.id == created.id and listed.state is InstanceState.RUNNING

    p.stop_instance(created.id)
    cloud.settle()
    assert p.list_instances()[0].state is InstanceState.STOPPED
    p.stop_instance(created.id)  # already stopped: no error

    p.start_instance(created.id)
    cloud.settle()
    assert p.list_instances()[0].state is InstanceState.RUNNING

    p.delete_instance(created.id)
    cloud.settle()
    assert p.list_instances() == []
    p.delete_instance(created.id)  # already gone: no error


def test_instance_in_subnet_with_firewalls(cloud: Cloud) -> None:
    p = cloud.provider
    net_id, sub_id = _network(cloud)
    fw = p.create_firewall(FirewallCreate(tags("fw"), net_id, WEB_RULES))
    vm = p.create_instance(_instance(cloud, "vm", subnet_id=sub_id, firewall_ids=(fw.id,)))
    assert (vm.subnet_id, vm.network_id, vm.zone) == (sub_id, net_id, cloud.zone)
    assert vm.firewall_ids == (fw.id,)
    assert vm.private_ips and vm.private_ips[0].startswith("10.20.1.")


def test_every_resource_is_tagged_from_birth(cloud: Cloud) -> None:
    p = cloud.provider
    net_id, _sub_id = _network(cloud)
    p.create_firewall(FirewallCreate(tags("fw"), net_id))
    p.create_instance(_instance(cloud, "vm"))
    p.create_volume(VolumeCreate(tags("vol"), 5, cloud.zone))
    listings = [
        p.list_networks(),
        p.list_subnets(),
        p.list_firewalls(),
        p.list_instances(),
        p.list_volumes(),
    ]
    for expected, found in zip(("net", "net-sub", "fw", "vm", "vol"), listings, strict=True):
        (mine,) = _mine(found)
        assert mine.tags[TAG_NAME] == expected and mine.name == expected
        assert mine.tags[TAG_UID] == f"uid-{expected}"
        assert mine.tags[TAG_TOKEN] == f"tok-{expected}"


def test_listing_follows_paging_beyond_100_instances(cloud: Cloud) -> None:
    for n in range(120):  # one reservation each: moto pages DescribeInstances at 100
        cloud.provider.create_instance(_instance(cloud, f"vm-{n}"))
    listed = cloud.provider.list_instances()
    assert len(listed) == 120
    assert len({i.id for i in listed}) == 120


# idempotency


def test_same_token_twice_gives_one_resource_of_every_kind(cloud: Cloud) -> None:
    p = cloud.provider
    net_id, sub_id = _network(cloud)
    assert _network(cloud) == (net_id, sub_id)
    fw = p.create_firewall(FirewallCreate(tags("fw"), net_id, WEB_RULES))
    assert p.create_firewall(FirewallCreate(tags("fw"), net_id, WEB_RULES)).id == fw.id
    vm = p.create_instance(_instance(cloud, "vm"))
    assert p.create_instance(_instance(cloud, "vm")).id == vm.id
    vol = p.create_volume(VolumeCreate(tags("vol"), 5, cloud.zone))
    assert p.create_volume(VolumeCreate(tags("vol"), 5, cloud.zone)).id == vol.id
    assert len(p.list_instances()) == 1
    assert len(_mine(p.list_volumes())) == 1
    assert len(_mine(p.list_networks())) == 1
    assert len(_mine(p.list_subnets())) == 1
    assert len(_mine(p.list_firewalls())) == 1
    # another token is another resource
    assert p.create_instance(_instance(cloud, "vm-2")).id != vm.id


def test_create_after_crash_between_cloud_call_and_record_adopts(cloud: Cloud) -> None:
    """The create reaches the cloud but its answer is lost (connection dropped / timeout after
    apply): the caller never learns the id, retries with the same token, and adopts."""
    cloud.inject("drop_after_apply", "create_instance")
    with pytest.raises(TransientError):
        cloud.provider.create_instance(_instance(cloud, "vm"))
    (orphan,) = cloud.provider.list_instances()
    assert orphan.token == "tok-vm"
    adopted = cloud.provider.create_instance(_instance(cloud, "vm"))
    assert adopted.id == orphan.id
    assert len(cloud.provider.list_instances()) == 1


def test_terminated_instance_is_not_adopted(cloud: Cloud) -> None:
    first = cloud.provider.create_instance(_instance(cloud, "vm"))
    cloud.provider.delete_instance(first.id)
    cloud.settle()
    second = cloud.provider.create_instance(_instance(cloud, "vm"))
    assert second.id != first.id


# networks and subnets


def test_networks_and_subnets(cloud: Cloud) -> None:
    p = cloud.provider
    net_id, sub_id = _network(cloud)
    (net,) = [n for n in p.list_networks() if n.id == net_id]
    assert net.cidr == "10.20.0.0/16"
    (sub,) = [s for s in p.list_subnets() if s.id == sub_id]
    assert (sub.network_id, sub.cidr, sub.zone) == (net_id, "10.20.1.0/24", cloud.zone)

    with pytest.raises(TerminalError) as outside:
        p.create_subnet(SubnetCreate(tags("bad"), net_id, "10.99.0.0/24", cloud.zone))
    assert outside.value.reason == "InvalidRequest"
    assert outside.value.code == "InvalidSubnet.Range"

    p.delete_subnet(sub_id)
    p.delete_network(net_id)
    assert net_id not in {n.id for n in p.list_networks()}
    assert sub_id not in {s.id for s in p.list_subnets()}
    p.delete_subnet(sub_id)
    p.delete_network(net_id)


# firewalls


def test_firewall_holds_exactly_its_rules_and_applies_a_diff(cloud: Cloud) -> None:
    p = cloud.provider
    net_id, _ = _network(cloud)
    fw = p.create_firewall(FirewallCreate(tags("fw"), net_id, WEB_RULES))
    assert fw.rules == WEB_RULES  # the cloud's default allow-all egress was revoked
    assert fw.network_id == net_id

    ssh = frozenset(expand_rules("Ingress", "tcp", "22", ["10.1.0.0/16"]))
    http = frozenset(expand_rules("Ingress", "tcp", "80", ["0.0.0.0/0"]))
    p.update_firewall_rules(fw.id, authorize=ssh | {DEFAULT_EGRESS}, revoke=http)
    (now,) = [f for f in p.list_firewalls() if f.id == fw.id]
    assert now.rules == (WEB_RULES - http) | ssh | {DEFAULT_EGRESS}

    # idempotent: authorizing what is there and revoking what is not changes nothing
    p.update_firewall_rules(fw.id, authorize=ssh, revoke=http)
    (again,) = [f for f in p.list_firewalls() if f.id == fw.id]
    assert again.rules == now.rules

    p.delete_firewall(fw.id)
    assert fw.id not in {f.id for f in p.list_firewalls()}
    p.delete_firewall(fw.id)


# volumes


def test_volume_attach_detach_delete(cloud: Cloud) -> None:
    p = cloud.provider
    vm = p.create_instance(_instance(cloud, "vm", zone=cloud.zone))
    vol = p.create_volume(VolumeCreate(tags("vol"), 8, cloud.zone, "gp3"))
    assert (vol.size_gib, vol.zone, vol.volume_type) == (8, cloud.zone, "gp3")
    cloud.settle()
    assert _mine(p.list_volumes())[0].state is VolumeState.AVAILABLE

    p.attach_volume(vol.id, vm.id, "/dev/sdf")
    p.attach_volume(vol.id, vm.id, "/dev/sdf")  # already attached there: no error
    (attached,) = _mine(p.list_volumes())
    assert (attached.state, attached.attached_to, attached.device) == (
        VolumeState.IN_USE,
        vm.id,
        "/dev/sdf",
    )
    with pytest.raises(TransientError) as busy:
        p.delete_volume(vol.id)
    assert busy.value.code == "VolumeInUse"

    p.detach_volume(vol.id)  # EC2 wants InstanceId here
    cloud.settle()
    (detached,) = _mine(p.list_volumes())
    assert detached.attached_to is None and detached.state is VolumeState.AVAILABLE
    p.detach_volume(vol.id)  # already detached: no error

    p.delete_volume(vol.id)
    assert _mine(p.list_volumes()) == []
    p.delete_volume(vol.id)


def test_stop_and_start_keep_volumes_attached(cloud: Cloud) -> None:
    """As EC2 does (DESIGN §3): a stopped instance keeps its volumes, and so does a restart."""
    p = cloud.provider
    vm = p.create_instance(_instance(cloud, "vm", zone=cloud.zone))
    vol = p.create_volume(VolumeCreate(tags("vol"), 8, cloud.zone, "gp3"))
    cloud.settle()
    p.attach_volume(vol.id, vm.id, "/dev/sdf")
    for change in (p.stop_instance, p.start_instance):
        change(vm.id)
        cloud.settle()
        (disk,) = _mine(p.list_volumes())
        assert (disk.state, disk.attached_to, disk.device) == (
            VolumeState.IN_USE,
            vm.id,
            "/dev/sdf",
        )


# tags


def test_orphaning_strips_skybroker_tags(cloud: Cloud) -> None:
    p = cloud.provider
    vm = p.create_instance(_instance(cloud, "vm"))
    p.set_tags(vm.id, {"team": "web"})
    p.remove_tags(vm.id, [TAG_UID, TAG_TOKEN])
    (listed,) = p.list_instances()
    assert listed.uid is None and listed.token is None
    assert listed.tags == {TAG_NAME: "vm", "team": "web"}


# deletes of what never existed


def test_deletes_of_missing_resources_succeed(cloud: Cloud) -> None:
    p = cloud.provider
    p.delete_instance(InstanceId("i-0123456789abcdef0"))
    p.delete_volume(VolumeId("vol-0123456789abcdef0"))
    p.delete_firewall(FirewallId("sg-0123456789abcdef0"))
    p.delete_subnet(SubnetId("subnet-0123456789abcdef0"))
    p.delete_network(NetworkId("vpc-0123456789abcdef0"))


# error classification from the cloud's real answers


def test_unknown_image_is_terminal(cloud: Cloud) -> None:
    with pytest.raises(TerminalError) as err:
        cloud.provider.create_instance(
            InstanceCreate(tags("vm"), cloud.size, ImageId("ami-00000000deadbeef0"))
        )
    assert err.value.reason == "InvalidImage"
    assert err.value.code is not None and err.value.code.startswith("InvalidAMIID.")
    assert err.value.request_id


def test_unknown_size_is_terminal(cloud: Cloud) -> None:
    with pytest.raises(TerminalError) as err:
        cloud.provider.create_instance(InstanceCreate(tags("vm"), SizeId("z9.huge"), cloud.image))
    assert err.value.reason == "InvalidSize"
    assert err.value.code is not None and err.value.code.startswith("InvalidInstanceType")


def test_operation_on_missing_instance_is_terminal_not_found(cloud: Cloud) -> None:
    with pytest.raises(TerminalError) as err:
        cloud.provider.start_instance(InstanceId("i-0123456789abcdef0"))
    assert (err.value.reason, err.value.code) == ("NotFound", "InvalidInstanceID.NotFound")


# error classification from injected faults


def test_throttling_is_transient_and_honours_retry_after(cloud: Cloud) -> None:
    cloud.inject("throttle", "list_instances")
    with pytest.raises(TransientError) as err:
        cloud.provider.list_instances()
    assert (err.value.code, err.value.delay) == ("RequestLimitExceeded", 7.0)
    assert err.value.request_id
    assert cloud.provider.list_instances() == []


def test_server_error_is_transient(cloud: Cloud) -> None:
    cloud.inject("internal", "create_volume")
    with pytest.raises(TransientError) as err:
        cloud.provider.create_volume(VolumeCreate(tags("vol"), 5, cloud.zone))
    assert err.value.code == "InternalError"
    assert _mine(cloud.provider.list_volumes()) == []


def test_timeout_is_transient(cloud: Cloud) -> None:
    cloud.inject("slow", "list_instances")
    with pytest.raises(TransientError) as err:
        cloud.provider.list_instances()
    assert err.value.code == "Timeout"


def test_authentication_failure_is_terminal(cloud: Cloud, request: pytest.FixtureRequest) -> None:
    if isinstance(cloud.provider, Ec2Provider):  # a moto_server that checks credentials
        auth_server: MotoServer = request.getfixturevalue("moto_auth_server")
        # A fresh moto_server answers its first request slowly (it loads the EC2 backend):
        # on a loaded machine past the 2 s of the provider under test, and this test is about
        # the answer, not about timeouts.
        config = ec2_config(auth_server.port, timeout=str(SETUP_TIMEOUT))
        provider: CloudProvider = Ec2Provider(config)
    else:
        cloud.provider.faults.fail_next("AuthFailure")
        provider = cloud.provider
    with pytest.raises(TerminalError) as err:
        provider.list_instances()
    assert (err.value.reason, err.value.code) == ("AuthFailure", "AuthFailure")
    assert err.value.request_id


def test_unreachable_endpoint_is_transient(cloud: Cloud) -> None:
    if isinstance(cloud.provider, Ec2Provider):
        provider: CloudProvider = Ec2Provider(ec2_config(free_port()))  # nothing listens
    else:
        cloud.provider.faults.fail_next("ConnectionError")
        provider = cloud.provider
    with pytest.raises(TransientError) as err:
        provider.list_volumes()
    assert err.value.code == "ConnectionError"


def test_one_provider_shared_by_many_workers(cloud: Cloud) -> None:
    def create(n: int) -> str:
        for _attempt in range(20):  # as the workqueue does; moto's server is not thread-safe
            try:  # and may answer a concurrent burst with a 500 now and then
                return cloud.provider.create_instance(_instance(cloud, f"vm-{n % 20}")).id
            except TransientError:
                continue
        raise AssertionError("no success in 20 attempts")

    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(create, range(20)))
        again = list(pool.map(create, range(20)))  # the same 20 tokens again: adopted
    assert len(set(ids)) == 20 and again == ids
    assert len(cloud.provider.list_instances()) == 20
