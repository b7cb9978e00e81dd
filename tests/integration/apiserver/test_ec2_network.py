"""The EC2 front door's network actions end to end: VPCs, subnets and security groups through
boto3 against a real API server over real etcd (``apiserver.ec2.network``).

Catalogue: simulated account ``sim-a`` (region ``sim-east``) in pool ``general`` whose member
names zones ``sim-easta`` and ``sim-eastb``. ``alice`` (admin in team-a) and ``bob`` (edit in
team-b) may read pools through a ClusterRoleBinding; their keys act in their namespaces. A
test that needs subnets to become available runs the Subnet and Firewall reconcilers on the
same store (``Harness``); instances that use a subnet or a group are written straight into
the store (no instance reconciler: they are only references).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from api_types import Firewall, Instance, Subnet, registry
from apiserver import User
from apiserver.accesskeys import AccessKeyCredential
from apiserver.ec2.resources import vpc_id
from controller.store.objects import Store
from reconcilers import firewall, subnet
from skybroker.apiserver import HttpServer
from tests.awscli import answer, aws_cli
from tests.integration.apiserver.ec2world import ec2_api, pool_readers
from tests.integration.apiserver.test_ec2_catalog import ALICE, ec2, error_of
from tests.integration.reconcilers.harness import (
    Harness,
    instance_manifest,
    pool_manifest,
    sim_account,
)
from tests.waiting import eventually

BOB = AccessKeyCredential("AKIABOB", "bob-secret", User("bob", "u-bob", frozenset()), "team-b")
KEYS = {key.access_key_id: key for key in (ALICE, BOB)}
ZONES = ["sim-easta", "sim-eastb"]

CATALOGUE: list[dict[str, Any]] = [
    sim_account("sim-a"),
    pool_manifest("general", [{"account": "sim-a", "zones": ZONES}]),
    *pool_readers("alice", "bob"),
]  # fmt: skip


@pytest.fixture
def ec2_server(api_store: Store, tmp_path: Path) -> Iterator[HttpServer]:
    with ec2_api(api_store, tmp_path, CATALOGUE, KEYS) as http:
        yield http


@pytest.fixture
def controllers(api_store: Store, tmp_path: Path, ec2_server: HttpServer) -> Iterator[Harness]:
    (tmp_path / "clouds").mkdir()
    running = Harness(api_store, tmp_path / "clouds")
    running.start(subnet.register, firewall.register)
    yield running
    running.stop()


def tags(*pairs: tuple[str, str], kind: str) -> list[dict[str, Any]]:
    return [{"ResourceType": kind, "Tags": [{"Key": k, "Value": v} for k, v in pairs]}]


def tag_map(item: dict[str, Any]) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in item.get("Tags", [])}


def uses(store: Store, name: str, namespace: str = "team-a", **spec: Any) -> None:
    """An Instance ``name`` referencing subnets/groups, written straight into the store."""
    store.create(registry.parse_object(instance_manifest(name, namespace, pool="general", **spec)))


def test_vpc_and_subnet_life_cycle(
    api_store: Store, ec2_server: HttpServer, controllers: Harness
) -> None:
    client = ec2(ec2_server, ALICE)
    vpc = client.create_vpc(
        CidrBlock="10.10.0.0/16", TagSpecifications=tags(("Name", "main"), ("env", "test"),
                                                          kind="vpc"),
    )["Vpc"]  # fmt: skip
    vpc_id_ = vpc["VpcId"]
    record = api_store.get(Firewall, "default.main", "team-a")  # the VPC's record: its uid
    assert vpc_id_ == vpc_id("team-a", "main", str(record.metadata.uid))
    assert (vpc["CidrBlock"], vpc["State"], tag_map(vpc)) == (
        "10.10.0.0/16",
        "available",
        {"Name": "main", "env": "test"},
    )
    listed = client.describe_vpcs(Filters=[{"Name": "tag:env", "Values": ["test"]}])["Vpcs"]
    assert [v["VpcId"] for v in listed] == [vpc_id_]
    assert client.describe_vpcs(Filters=[{"Name": "cidr", "Values": ["10.20.*"]}])["Vpcs"] == []
    # The VPC's record is its default security group, as EC2 has one per VPC.
    (default,) = client.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id_]}])[
        "SecurityGroups"
    ]
    assert default["GroupName"] == "default" and default["IpPermissions"] == []

    created = client.create_subnet(
        VpcId=vpc_id_,
        CidrBlock="10.10.1.0/24",
        AvailabilityZone="sim-eastb",
        TagSpecifications=tags(("Name", "web"), ("tier", "front"), kind="subnet"),
    )["Subnet"]
    subnet_id = created["SubnetId"]
    assert (created["State"], created["VpcId"], created["AvailabilityZone"]) == (
        "pending",
        vpc_id_,
        "sim-eastb",
    )
    assert created["AvailableIpAddressCount"] == 251
    stored = api_store.get(Subnet, "web", "team-a")
    assert stored.spec.pool == "general" and stored.spec.zone == "sim-eastb"
    assert (stored.spec.network.name, stored.spec.network.cidr, stored.spec.cidr) == (
        "main",
        "10.10.0.0/16",
        "10.10.1.0/24",
    )
    assert stored.metadata.labels == {"tier": "front"}

    def state() -> str:
        (only,) = client.describe_subnets(SubnetIds=[subnet_id])["Subnets"]
        return str(only["State"])

    eventually(lambda: state() == "available", what=lambda: f"subnet {state()}")
    for name, values in [
        ("vpc-id", [vpc_id_]),
        ("availability-zone", ["sim-eastb"]),
        ("cidr-block", ["10.10.1.0/24"]),
        ("state", ["available"]),
        ("tag:tier", ["front"]),
        ("tag:Name", ["w*"]),
    ]:
        found = client.describe_subnets(Filters=[{"Name": name, "Values": values}])["Subnets"]
        assert [s["SubnetId"] for s in found] == [subnet_id], name
    assert (
        client.describe_subnets(Filters=[{"Name": "tag:tier", "Values": ["back"]}])["Subnets"] == []
    )

    # In use: EC2 refuses the delete (REST would leave the Subnet Deleting until they go).
    uses(api_store, "web-1", subnetRef="web")
    status, code, message = error_of(client.delete_subnet, SubnetId=subnet_id)
    assert (status, code) == (400, "DependencyViolation") and subnet_id in message
    status, code, message = error_of(client.delete_vpc, VpcId=vpc_id_)
    assert code == "DependencyViolation" and subnet_id in message
    api_store.delete(Instance, "web-1", "team-a")

    assert error_of(client.delete_subnet, SubnetId=subnet_id, DryRun=True)[1] == "DryRunOperation"
    assert api_store.get(Subnet, "web", "team-a").metadata.deletion_timestamp is None
    client.delete_subnet(SubnetId=subnet_id)
    assert client.describe_subnets()["Subnets"] == []  # gone from EC2's view at once
    controllers.wait_gone(Subnet, "web", "team-a")  # and from the cloud and the store
    client.delete_vpc(VpcId=vpc_id_)
    status, code, _ = error_of(client.describe_vpcs, VpcIds=[vpc_id_])
    assert (status, code) == (400, "InvalidVpcID.NotFound")
    eventually(lambda: client.describe_security_groups()["SecurityGroups"] == [])


def test_a_vpc_made_again_under_a_deleted_ones_name_has_a_new_id(
    api_store: Store, ec2_server: HttpServer
) -> None:
    """DESIGN §12: a VPC's id comes from its record's uid, so the old id is gone with it."""
    client = ec2(ec2_server, ALICE)
    main = tags(("Name", "main"), kind="vpc")
    old = client.create_vpc(CidrBlock="10.10.0.0/16", TagSpecifications=main)["Vpc"]["VpcId"]
    # The record lingers while deleting (as while the Firewall reconciler cleans up): hold it.
    record = api_store.get(Firewall, "default.main", "team-a")
    record.metadata.finalizers = ["test.skybroker.io/hold"]
    api_store.update(record)
    client.delete_vpc(VpcId=old)

    def made_again() -> str:
        again = client.create_vpc(CidrBlock="10.10.0.0/16", TagSpecifications=main)["Vpc"]
        assert tag_map(again)["Name"] == "main"
        return str(again["VpcId"])

    lingering = made_again()  # a generated network name: default.main is still held
    held = api_store.get(Firewall, "default.main", "team-a")
    held.metadata.finalizers = []
    api_store.update(held)
    eventually(lambda: not any(f.metadata.name == "default.main"
                               for f in api_store.list(Firewall, "team-a").items))  # fmt: skip
    again = made_again()  # the network "main" again, a new record
    assert api_store.get(Firewall, "default.main", "team-a").metadata.uid != record.metadata.uid
    assert len({old, lingering, again}) == 3
    shown = client.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["main"]}])["Vpcs"]
    assert sorted(v["VpcId"] for v in shown) == sorted([lingering, again])

    # The old id is no VPC wherever an id is taken, and answers nothing where one is matched.
    for call, kwargs in [
        (client.describe_vpcs, {"VpcIds": [old]}),
        (client.delete_vpc, {"VpcId": old}),
        (client.create_subnet, {"VpcId": old, "CidrBlock": "10.10.1.0/24"}),
        (client.create_security_group, {"GroupName": "web", "Description": "w", "VpcId": old}),
        (client.create_tags, {"Resources": [old], "Tags": [{"Key": "a", "Value": "1"}]}),
        (client.delete_tags, {"Resources": [old]}),
    ]:
        assert error_of(call, **kwargs)[:2] == (400, "InvalidVpcID.NotFound"), call
    assert client.describe_tags(Filters=[{"Name": "resource-id", "Values": [old]}])["Tags"] == []
    # The new id is what its subnets and groups answer.
    subnet = client.create_subnet(VpcId=again, CidrBlock="10.10.1.0/24")["Subnet"]
    assert subnet["VpcId"] == again
    for old_or_new, expected in ((old, []), (again, [subnet["SubnetId"]])):
        vpc_filter = [{"Name": "vpc-id", "Values": [old_or_new]}]
        found = client.describe_subnets(Filters=vpc_filter)["Subnets"]
        assert [s["SubnetId"] for s in found] == expected
        groups = client.describe_security_groups(Filters=vpc_filter)["SecurityGroups"]
        assert [g["GroupName"] for g in groups] == (["default"] if expected else [])


def test_vpc_and_subnet_refusals_name_the_parameter(
    api_store: Store, ec2_server: HttpServer
) -> None:
    client = ec2(ec2_server, ALICE)
    for cidr in ("10.10.0.0", "10.10.0.1/16", "300.0.0.0/16", "2001:db8::/56"):
        status, code, message = error_of(client.create_vpc, CidrBlock=cidr)
        assert (status, code) == (400, "InvalidParameterValue") and "CidrBlock" in message, cidr
    assert error_of(client.create_vpc, CidrBlock="10.0.0.0/8")[1] == "InvalidVpc.Range"
    status, code, _ = error_of(client.create_vpc, CidrBlock="10.10.0.0/16", DryRun=True)
    assert (status, code) == (412, "DryRunOperation")
    assert client.describe_vpcs()["Vpcs"] == []

    main = client.create_vpc(
        CidrBlock="10.10.0.0/16", TagSpecifications=tags(("Name", "main"), kind="vpc")
    )["Vpc"]["VpcId"]
    # A second VPC named "main" (it used to be refused as InvalidParameterValue): EC2 allows
    # it; the network is named otherwise and the VPC answers the tag.
    again = client.create_vpc(
        CidrBlock="10.20.0.0/16", TagSpecifications=tags(("Name", "main"), kind="vpc")
    )["Vpc"]
    assert again["VpcId"] != main and tag_map(again)["Name"] == "main"
    twins = client.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["main"]}])["Vpcs"]
    assert sorted(v["VpcId"] for v in twins) == sorted([main, again["VpcId"]])
    client.delete_vpc(VpcId=again["VpcId"])
    wrong_type = error_of(
        client.create_vpc, CidrBlock="10.20.0.0/16", TagSpecifications=tags(kind="subnet")
    )
    assert "TagSpecification.1.ResourceType" in wrong_type[2]
    unnamed = client.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]
    assert tag_map(unnamed)["Name"].startswith("vpc-")

    def subnet_error(**kwargs: Any) -> tuple[str, str]:
        return error_of(client.create_subnet, **{"VpcId": main, **kwargs})[1:]

    code, message = subnet_error(CidrBlock="10.10.1.0/33")
    assert code == "InvalidParameterValue" and "CidrBlock" in message
    assert subnet_error(CidrBlock="10.11.0.0/24")[0] == "InvalidSubnet.Range"
    assert subnet_error(CidrBlock="10.10.0.0/29")[0] == "InvalidSubnet.Range"
    code, message = subnet_error(CidrBlock="10.10.1.0/24", AvailabilityZone="elsewhere-1a")
    assert code == "InvalidParameterValue" and "AvailabilityZone" in message
    assert subnet_error(CidrBlock="10.10.1.0/24", VpcId="vpc-00000000000000000")[0] == (
        "InvalidVpcID.NotFound"
    )
    client.create_subnet(VpcId=main, CidrBlock="10.10.0.0/20")
    assert subnet_error(CidrBlock="10.10.1.0/24")[0] == "InvalidSubnet.Conflict"
    assert error_of(client.describe_subnets, SubnetIds=["subnet-00000000000000000"])[1] == (
        "InvalidSubnetID.NotFound"
    )
    # A subnet whose zone is left to placement: no zone until it is placed.
    assert api_store.list(Subnet, "team-a").items[0].spec.zone is None


def test_security_group_rules_authorized_and_revoked(
    api_store: Store, ec2_server: HttpServer
) -> None:
    client = ec2(ec2_server, ALICE)
    vpc = client.create_vpc(
        CidrBlock="10.10.0.0/16", TagSpecifications=tags(("Name", "main"), kind="vpc")
    )["Vpc"]["VpcId"]
    group = client.create_security_group(
        GroupName="web",
        Description="web servers",
        VpcId=vpc,
        TagSpecifications=tags(("team", "shop"), kind="security-group"),
    )["GroupId"]
    assert error_of(client.create_security_group, GroupName="web", Description="again")[1] == (
        "InvalidGroup.Duplicate"
    )
    assert error_of(client.create_security_group, GroupName="default", Description="x")[1] == (
        "InvalidParameterValue"
    )
    # EC2 group names are free text; the object is named by the Name tag, or generated.
    free = client.create_security_group(GroupName="Web Servers", Description="x", VpcId=vpc)
    assert tag_map(free)["Name"].startswith("sg-")
    tagged = client.create_security_group(
        GroupName="allow_tls", Description="x", TagSpecifications=tags(("Name", "tls"),
                                                                        kind="security-group"),
    )["GroupId"]  # fmt: skip
    assert (
        api_store.get(Firewall, "tls", "team-a").metadata.annotations["ec2.skybroker.io/group-name"]
        == "allow_tls"
    )
    assert error_of(client.create_security_group, GroupName="allow_tls", Description="y")[1] == (
        "InvalidGroup.Duplicate"
    )
    (found,) = client.describe_security_groups(GroupNames=["Web Servers"])["SecurityGroups"]
    assert (found["GroupId"], found["GroupName"]) == (free["GroupId"], "Web Servers")
    client.delete_security_group(GroupName="Web Servers")
    client.delete_security_group(GroupId=tagged)

    client.authorize_security_group_ingress(
        GroupId=group,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80,
             "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
            {"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 8080,
             "IpRanges": [{"CidrIp": "10.0.0.0/8"}, {"CidrIp": "192.168.0.0/16"}]},
            {"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1,
             "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
        ],
    )  # fmt: skip
    # The old flat form adds to the same rule.
    client.authorize_security_group_ingress(
        GroupId=group, IpProtocol="tcp", FromPort=80, ToPort=80, CidrIp="10.1.0.0/16"
    )
    rules = api_store.get(Firewall, "web", "team-a").spec.rules
    assert [(r.direction, r.protocol, r.ports, r.cidrs) for r in rules] == [
        ("Egress", "all", None, ["0.0.0.0/0"]),
        ("Ingress", "tcp", "80", ["0.0.0.0/0", "10.1.0.0/16"]),
        ("Ingress", "tcp", "8000-8080", ["10.0.0.0/8", "192.168.0.0/16"]),
        ("Ingress", "icmp", None, ["10.0.0.0/8"]),
    ]
    (described,) = client.describe_security_groups(GroupIds=[group])["SecurityGroups"]
    assert (described["GroupName"], described["Description"], described["VpcId"]) == (
        "web",
        "web servers",
        vpc,
    )
    assert tag_map(described) == {"Name": "web", "team": "shop"}
    assert [
        (p["IpProtocol"], p.get("FromPort"), p.get("ToPort"), [r["CidrIp"] for r in p["IpRanges"]])
        for p in described["IpPermissions"]
    ] == [
        ("tcp", 80, 80, ["0.0.0.0/0", "10.1.0.0/16"]),
        ("tcp", 8000, 8080, ["10.0.0.0/8", "192.168.0.0/16"]),
        ("icmp", -1, -1, ["10.0.0.0/8"]),
    ]
    assert [(p["IpProtocol"], p["IpRanges"]) for p in described["IpPermissionsEgress"]] == [
        ("-1", [{"CidrIp": "0.0.0.0/0"}])
    ]

    status, code, message = error_of(
        client.authorize_security_group_ingress,
        GroupId=group, IpProtocol="tcp", FromPort=8000, ToPort=8080, CidrIp="10.0.0.0/8",
    )  # fmt: skip
    assert (status, code) == (400, "InvalidPermission.Duplicate") and "10.0.0.0/8" in message
    code, message = error_of(
        client.authorize_security_group_ingress,
        GroupId=group, IpProtocol="tcp", FromPort=22, ToPort=22, CidrIp="10.0.0.0/33",
    )[1:]  # fmt: skip
    assert code == "InvalidParameterValue" and "CidrIp" in message

    client.revoke_security_group_ingress(
        GroupId=group,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 8080,
             "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
            {"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1,
             "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
        ],
    )  # fmt: skip
    client.revoke_security_group_egress(
        GroupId=group, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    )
    client.authorize_security_group_egress(
        GroupId=group,
        IpPermissions=[{"IpProtocol": "udp", "FromPort": 53, "ToPort": 53,
                        "IpRanges": [{"CidrIp": "10.0.0.2/32"}]}],
    )  # fmt: skip
    rules = api_store.get(Firewall, "web", "team-a").spec.rules
    assert [(r.direction, r.protocol, r.ports, r.cidrs) for r in rules] == [
        ("Ingress", "tcp", "80", ["0.0.0.0/0", "10.1.0.0/16"]),
        ("Ingress", "tcp", "8000-8080", ["192.168.0.0/16"]),
        ("Egress", "udp", "53", ["10.0.0.2/32"]),
    ]
    status, code, _ = error_of(
        client.revoke_security_group_ingress,
        GroupId=group, IpProtocol="icmp", FromPort=-1, ToPort=-1, CidrIp="10.0.0.0/8",
    )  # fmt: skip
    assert (status, code) == (400, "InvalidPermission.NotFound")

    for name, values in [
        ("group-name", ["web"]),
        ("tag:team", ["shop"]),
        ("description", ["web *"]),
    ]:
        found = client.describe_security_groups(Filters=[{"Name": name, "Values": values}])
        assert [g["GroupId"] for g in found["SecurityGroups"]] == [group], name
    in_vpc = client.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]}])
    assert sorted(g["GroupName"] for g in in_vpc["SecurityGroups"]) == ["default", "web"]
    by_name = client.describe_security_groups(GroupNames=["web"])["SecurityGroups"]
    assert [g["GroupId"] for g in by_name] == [group]
    assert error_of(client.describe_security_groups, GroupNames=["db"])[1] == (
        "InvalidGroup.NotFound"
    )

    # Deletion: in use, the VPC's default group, a VPC with a group in it.
    client.create_subnet(VpcId=vpc, CidrBlock="10.10.1.0/24",
                         TagSpecifications=tags(("Name", "web"), kind="subnet"))  # fmt: skip
    uses(api_store, "web-1", subnetRef="web", firewallRefs=["web"])
    code, message = error_of(client.delete_security_group, GroupId=group)[1:]
    assert code == "DependencyViolation" and group in message
    (default,) = client.describe_security_groups(GroupNames=["default"])["SecurityGroups"]
    assert error_of(client.delete_security_group, GroupId=default["GroupId"])[1] == ("CannotDelete")
    api_store.delete(Instance, "web-1", "team-a")
    api_store.delete(Subnet, "web", "team-a")  # no reconciler here: no finalizer, gone at once
    code, message = error_of(client.delete_vpc, VpcId=vpc)[1:]
    assert code == "DependencyViolation" and group in message
    client.delete_security_group(GroupName="web")
    client.delete_vpc(VpcId=vpc)
    assert api_store.list(Firewall, "team-a").items == []


def test_another_tenants_network_is_not_there(api_store: Store, ec2_server: HttpServer) -> None:
    alice, bob = ec2(ec2_server, ALICE), ec2(ec2_server, BOB)
    main = tags(("Name", "main"), kind="vpc")
    vpc = alice.create_vpc(CidrBlock="10.10.0.0/16", TagSpecifications=main)["Vpc"]["VpcId"]
    subnet_id = alice.create_subnet(VpcId=vpc, CidrBlock="10.10.1.0/24")["Subnet"]["SubnetId"]
    group = alice.create_security_group(GroupName="web", Description="w", VpcId=vpc)["GroupId"]

    assert bob.describe_vpcs()["Vpcs"] == []
    assert bob.describe_subnets()["Subnets"] == []
    assert bob.describe_security_groups()["SecurityGroups"] == []
    refusals = [
        (bob.describe_vpcs, {"VpcIds": [vpc]}, "InvalidVpcID.NotFound"),
        (bob.delete_vpc, {"VpcId": vpc}, "InvalidVpcID.NotFound"),
        (bob.create_subnet, {"VpcId": vpc, "CidrBlock": "10.10.2.0/24"}, "InvalidVpcID.NotFound"),
        (bob.describe_subnets, {"SubnetIds": [subnet_id]}, "InvalidSubnetID.NotFound"),
        (bob.delete_subnet, {"SubnetId": subnet_id}, "InvalidSubnetID.NotFound"),
        (bob.describe_security_groups, {"GroupIds": [group]}, "InvalidGroup.NotFound"),
        (bob.describe_security_groups, {"GroupNames": ["web"]}, "InvalidGroup.NotFound"),
        (bob.delete_security_group, {"GroupId": group}, "InvalidGroup.NotFound"),
        (
            bob.authorize_security_group_ingress,
            {"GroupId": group, "IpProtocol": "-1", "CidrIp": "0.0.0.0/0"},
            "InvalidGroup.NotFound",
        ),
    ]
    for call, kwargs, expected in refusals:
        status, code, _ = error_of(call, **kwargs)
        assert (status, code) == (400, expected), (call, kwargs)
    # Bob's own network of the same name is another VPC.
    same = bob.create_vpc(CidrBlock="10.10.0.0/16", TagSpecifications=main)["Vpc"]["VpcId"]
    assert same != vpc and [v["VpcId"] for v in alice.describe_vpcs()["Vpcs"]] == [vpc]
    assert [v["VpcId"] for v in bob.describe_vpcs()["Vpcs"]] == [same]
    assert len(api_store.list(Firewall, "team-a").items) == 2  # web and the default group


def test_concurrent_rule_changes_all_land(api_store: Store, ec2_server: HttpServer) -> None:
    """Each change is a diff written under the rules' resourceVersion and re-diffed when a
    concurrent one won: none is lost."""
    client = ec2(ec2_server, ALICE)
    group = client.create_security_group(GroupName="busy", Description="busy")["GroupId"]
    cidrs = [f"10.{n}.0.0/16" for n in range(8)]

    def authorize(cidr: str) -> None:
        ec2(ec2_server, ALICE).authorize_security_group_ingress(
            GroupId=group, IpProtocol="tcp", FromPort=443, ToPort=443, CidrIp=cidr
        )

    with ThreadPoolExecutor(max_workers=len(cidrs)) as pool:
        list(pool.map(authorize, cidrs))
    (rule,) = [r for r in api_store.get(Firewall, "busy", "team-a").spec.rules if r.ports]
    assert sorted(rule.cidrs) == sorted(cidrs)

    status, code, _ = error_of(
        client.revoke_security_group_ingress,
        GroupId=group, IpProtocol="tcp", FromPort=443, ToPort=443, CidrIp=cidrs[0], DryRun=True,
    )  # fmt: skip
    assert (status, code) == (412, "DryRunOperation")
    assert cidrs[0] in api_store.get(Firewall, "busy", "team-a").spec.rules[1].cidrs


def test_describe_pages(api_store: Store, ec2_server: HttpServer) -> None:
    client = ec2(ec2_server, ALICE)
    vpc = client.create_vpc(CidrBlock="10.10.0.0/16")["Vpc"]["VpcId"]
    created = {
        client.create_subnet(VpcId=vpc, CidrBlock=f"10.10.{n}.0/24")["Subnet"]["SubnetId"]
        for n in range(7)
    }
    first = client.describe_subnets(MaxResults=5)
    assert len(first["Subnets"]) == 5 and first["NextToken"]
    rest = client.describe_subnets(MaxResults=5, NextToken=first["NextToken"])
    assert "NextToken" not in rest
    assert {s["SubnetId"] for s in first["Subnets"] + rest["Subnets"]} == created


def test_aws_cli(ec2_server: HttpServer, tmp_path: Path) -> None:
    run = aws_cli(
        f"{ec2_server.url}/ec2/", ALICE.access_key_id, ALICE.secret_access_key, "general", tmp_path
    )

    def aws(*argv: str) -> Any:
        return answer(run(*argv))

    vpc = aws("create-vpc", "--cidr-block", "10.10.0.0/16")["Vpc"]["VpcId"]
    group = aws("create-security-group", "--group-name", "ssh", "--description", "ssh in",
                "--vpc-id", vpc)["GroupId"]  # fmt: skip
    # The CLI's shorthand sends the old flat form (IpProtocol, FromPort/ToPort, CidrIp).
    aws("authorize-security-group-ingress", "--group-id", group, "--protocol", "tcp",
        "--port", "22", "--cidr", "10.0.0.0/8")  # fmt: skip
    aws("authorize-security-group-ingress", "--group-id", group, "--protocol", "udp",
        "--port", "8000-8080", "--cidr", "10.0.0.0/8")  # fmt: skip
    (described,) = aws("describe-security-groups", "--group-ids", group)["SecurityGroups"]
    assert [(p["IpProtocol"], p["FromPort"], p["ToPort"]) for p in described["IpPermissions"]] == [
        ("tcp", 22, 22),
        ("udp", 8000, 8080),
    ]


def test_any_text_is_a_name_tag(api_store: Store, ec2_server: HttpServer) -> None:
    """As in EC2, a Name tag may be any text (skybroker's ec2 provider tags
    ``namespace/name``): the object (or a VPC's network) gets a generated name and answers the
    text as its Name."""
    client = ec2(ec2_server, ALICE)
    vpc = client.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    made = client.create_subnet(
        VpcId=vpc, CidrBlock="10.30.1.0/24", TagSpecifications=tags(("Name", "acme/web"),
                                                                    ("tier", "front"),
                                                                    kind="subnet")
    )["Subnet"]  # fmt: skip
    assert tag_map(made) == {"Name": "acme/web", "tier": "front"}
    [stored] = api_store.list(Subnet, "team-a").items
    assert stored.metadata.name.startswith("subnet-")
    found = client.describe_subnets(Filters=[{"Name": "tag:Name", "Values": ["acme/web"]}])
    assert [s["SubnetId"] for s in found["Subnets"]] == [made["SubnetId"]]
    # The kept text is the Name the tag actions know: the same text changes nothing.
    client.create_tags(Resources=[made["SubnetId"]], Tags=[{"Key": "Name", "Value": "acme/web"}])
    code = error_of(client.create_tags, Resources=[made["SubnetId"]],
                    Tags=[{"Key": "Name", "Value": "other"}])[1]  # fmt: skip
    assert code == "InvalidParameterValue"

    group = client.create_security_group(
        GroupName="Web Servers",
        Description="web",
        VpcId=vpc,
        TagSpecifications=tags(("Name", "acme/http"), kind="security-group"),
    )
    [described] = client.describe_security_groups(GroupIds=[group["GroupId"]])["SecurityGroups"]
    assert described["GroupName"] == "Web Servers" and tag_map(described)["Name"] == "acme/http"
    names = {f.metadata.name for f in api_store.list(Firewall, "team-a").items}
    assert any(name.startswith("sg-") for name in names)

    other = client.create_vpc(
        CidrBlock="10.40.0.0/16",
        TagSpecifications=tags(("Name", "acme/main"), ("tier", "front"), kind="vpc"),
    )["Vpc"]
    assert tag_map(other) == {"Name": "acme/main", "tier": "front"}
    [seen] = client.describe_vpcs(VpcIds=[other["VpcId"]])["Vpcs"]
    assert tag_map(seen) == {"Name": "acme/main", "tier": "front"}
    # The tag actions know the kept text as the VPC's Name too.
    client.create_tags(Resources=[other["VpcId"]], Tags=[{"Key": "Name", "Value": "acme/main"}])
    described_tags = client.describe_tags(
        Filters=[{"Name": "resource-id", "Values": [other["VpcId"]]}]
    )["Tags"]
    assert {(t["Key"], t["Value"]) for t in described_tags} == {
        ("Name", "acme/main"),
        ("tier", "front"),
    }
