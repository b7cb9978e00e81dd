"""The EC2 front door's tag actions end to end (boto3 against a real API server over real etcd):
tags are labels on instances, subnets, security groups (Firewalls) and volumes, ``Name`` is the
immutable name, and a key sees only its namespace's resources (DESIGN §12). The world and the
keys are ``test_ec2_instances``'."""

from __future__ import annotations

from typing import Any

from api_types import Firewall, Instance, Subnet, Volume
from apiserver.ec2.resources import ec2_id, vpc_id
from controller.store.objects import Store
from skybroker.apiserver import HttpServer
from tests.integration.apiserver.test_ec2_instances import (
    ALICE,
    BOB,
    create,
    ec2,
    ec2_world,  # noqa: F401 (the fixture)
    error_of,
    run,
    tag,
)

NETWORK: list[dict[str, Any]] = [
    {"kind": "Subnet", "metadata": {"name": "web", "namespace": "team-a"},
     "spec": {"pool": "general", "network": {"name": "main", "cidr": "10.10.0.0/16"},
              "cidr": "10.10.1.0/24"}},
    {"kind": "Firewall", "metadata": {"name": "http", "namespace": "team-a"},
     "spec": {"rules": [{"direction": "Ingress", "protocol": "tcp", "ports": "80",
                         "cidrs": ["0.0.0.0/0"]}]}},
    {"kind": "Volume", "metadata": {"name": "data", "namespace": "team-a"},
     "spec": {"pool": "general", "sizeGiB": 10}},
]  # fmt: skip


def resource_ids(store: Store) -> dict[str, str]:
    """EC2 id of team-a's instance, subnet, security group and volume, by resource type."""
    ids = {}
    for model, kind, rtype in (
        (Instance, "Instance", "instance"),
        (Subnet, "Subnet", "subnet"),
        (Firewall, "Firewall", "security-group"),
        (Volume, "Volume", "volume"),
    ):
        [obj] = store.list(model, "team-a").items
        ids[rtype] = ec2_id(kind, str(obj.metadata.uid))
    return ids


def labels(store: Store) -> dict[str, dict[str, str]]:
    return {
        obj.metadata.name: dict(obj.metadata.labels)
        for model in (Instance, Subnet, Firewall, Volume)
        for obj in store.list(model, "team-a").items
    }


def described(client: Any, *filters: tuple[str, list[str]]) -> list[tuple[str, str, str]]:
    chosen = [{"Name": name, "Values": values} for name, values in filters]
    answer = client.describe_tags(Filters=chosen)["Tags"]
    return [(t["ResourceType"], t["Key"], t["Value"]) for t in answer]


def test_tags_are_labels_on_every_resource(ec2_world: HttpServer, api_store: Store) -> None:  # noqa: F811
    create(api_store, *NETWORK)
    client = ec2(ec2_world)
    run(client, TagSpecifications=[{"ResourceType": "instance", "Tags": [tag("Name", "vm")]}])
    ids = resource_ids(api_store)
    client.create_tags(Resources=list(ids.values()), Tags=[tag("env", "prod"), tag("team", "")])
    assert labels(api_store) == {
        name: {"env": "prod", "team": ""} for name in ("vm", "web", "http", "data")
    }
    assert described(client, ("resource-type", ["instance"])) == [
        ("instance", "Name", "vm"),
        ("instance", "env", "prod"),
        ("instance", "team", ""),
    ]
    assert sorted(described(client, ("key", ["env"]))) == sorted(
        (rtype, "env", "prod") for rtype in ids
    )
    assert described(client, ("resource-id", [ids["volume"]]), ("key", ["Name"])) == [
        ("volume", "Name", "data")
    ]
    assert described(client, ("value", ["http"])) == [("security-group", "Name", "http")]
    # Describe* of the resources shows them too (the instance's here).
    [reservation] = client.describe_instances(Filters=[{"Name": "tag:env", "Values": ["prod"]}])[
        "Reservations"
    ]
    assert tag("env", "prod") in reservation["Instances"][0]["Tags"]

    # Name is the name: the same value changes nothing, another is refused — and a refusal
    # writes nothing anywhere, not even the other tags of the request.
    client.create_tags(Resources=[ids["subnet"]], Tags=[tag("Name", "web")])
    code, message = error_of(
        client.create_tags, Resources=[ids["subnet"]], Tags=[tag("Name", "db"), tag("x", "1")]
    )
    assert code == "InvalidParameterValue" and "names cannot be changed" in message
    code, _ = error_of(
        client.create_tags,
        Resources=[ids["volume"], "vol-0123456789abcdef0"],
        Tags=[tag("x", "1")],
    )
    assert code == "InvalidVolume.NotFound"
    assert error_of(client.create_tags, Resources=[ids["volume"]], Tags=[tag("a b", "1")])[0] == (
        "InvalidParameterValue"
    )
    assert error_of(client.create_tags, Resources=["ami-12345678"], Tags=[tag("x", "1")])[0] == (
        "InvalidID"
    )
    assert error_of(client.create_tags, Resources=[ids["volume"]], Tags=[tag("x", "1")],
                    DryRun=True)[0] == "DryRunOperation"  # fmt: skip
    assert all("x" not in found for found in labels(api_store).values())

    # DeleteTags: a value must match; no value deletes any; no tags delete all but Name.
    client.delete_tags(Resources=[ids["instance"]], Tags=[tag("env", "staging")])
    assert labels(api_store)["vm"] == {"env": "prod", "team": ""}
    client.delete_tags(Resources=[ids["instance"]], Tags=[{"Key": "env"}])
    assert labels(api_store)["vm"] == {"team": ""}
    code, message = error_of(client.delete_tags, Resources=[ids["subnet"]], Tags=[{"Key": "Name"}])
    assert code == "InvalidParameterValue" and "Name" in message
    client.delete_tags(Resources=[ids["subnet"], ids["volume"]])
    assert labels(api_store)["web"] == {} and labels(api_store)["data"] == {}
    assert described(client, ("resource-id", [ids["subnet"]])) == [("subnet", "Name", "web")]


def test_describe_tags_pages(ec2_world: HttpServer) -> None:  # noqa: F811
    client = ec2(ec2_world)
    run(client, 4, TagSpecifications=[{"ResourceType": "instance", "Tags": [tag("app", "shop")]}])
    seen: list[tuple[str, str]] = []
    token: str | None = None
    while True:
        answer = client.describe_tags(MaxResults=5, **({"NextToken": token} if token else {}))
        seen += [(t["ResourceId"], t["Key"]) for t in answer["Tags"]]
        token = answer.get("NextToken")
        if not token:
            break
    assert len(seen) == 8 and len(set(seen)) == 8 and seen == sorted(seen)


def test_a_tenant_cannot_tag_or_see_another_tenants_resources(
    ec2_world: HttpServer,  # noqa: F811
    api_store: Store,
) -> None:
    create(api_store, *NETWORK)
    alice, bob = ec2(ec2_world, ALICE), ec2(ec2_world, BOB)
    ids = {}
    for model, kind in ((Subnet, "Subnet"), (Firewall, "Firewall"), (Volume, "Volume")):
        [obj] = api_store.list(model, "team-a").items
        ids[kind] = ec2_id(kind, str(obj.metadata.uid))
    for kind, code in (
        ("Subnet", "InvalidSubnetID.NotFound"),
        ("Firewall", "InvalidGroup.NotFound"),
        ("Volume", "InvalidVolume.NotFound"),
    ):
        assert error_of(bob.create_tags, Resources=[ids[kind]], Tags=[tag("x", "1")])[0] == code
        assert error_of(bob.delete_tags, Resources=[ids[kind]])[0] == code
    assert bob.describe_tags()["Tags"] == []
    # The subnet's, the group's and the volume's Name, and that of the subnet's VPC (main).
    assert len(alice.describe_tags()["Tags"]) == 4


def test_vpc_tags_live_in_its_record(ec2_world: HttpServer, api_store: Store) -> None:  # noqa: F811
    client = ec2(ec2_world)
    vpc = client.create_vpc(
        CidrBlock="10.20.0.0/16",
        TagSpecifications=[{"ResourceType": "vpc", "Tags": [tag("Name", "prod"), tag("a", "1")]}],
    )["Vpc"]["VpcId"]
    client.create_tags(Resources=[vpc], Tags=[tag("env", "prod"), tag("Name", "prod")])
    assert described(client, ("resource-type", ["vpc"])) == [
        ("vpc", "Name", "prod"),
        ("vpc", "a", "1"),
        ("vpc", "env", "prod"),
    ]
    [shown] = client.describe_vpcs(VpcIds=[vpc])["Vpcs"]
    assert sorted((t["Key"], t["Value"]) for t in shown["Tags"]) == [
        ("Name", "prod"),
        ("a", "1"),
        ("env", "prod"),
    ]
    client.delete_tags(Resources=[vpc], Tags=[{"Key": "a"}])
    assert described(client, ("resource-id", [vpc]), ("key", ["a"])) == []
    assert error_of(client.create_tags, Resources=[vpc], Tags=[tag("Name", "dev")])[0] == (
        "InvalidParameterValue"
    )
    assert error_of(client.create_tags, Resources=[vpc_id("team-a", "nowhere", None)],
                    Tags=[tag("x", "1")])[0] == "InvalidVpcID.NotFound"  # fmt: skip
    # A VPC known only from subnets written through REST has no record for its tags.
    create(api_store, NETWORK[0])
    code, message = error_of(
        client.create_tags, Resources=[vpc_id("team-a", "main", None)], Tags=[tag("x", "1")]
    )
    assert code == "InvalidParameterValue" and "record" in message
