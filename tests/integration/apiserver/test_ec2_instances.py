"""The EC2 front door's instance actions end to end: a real API server over real etcd, boto3,
and (for convergence) the instance reconciler on a simulated account beside it (DESIGN §12).

World: account ``sim-a`` (simulated, region sim-east, zones sim-east{a,b,c}, image
ubuntu-22.04) in pool ``general``; HardwareProfile ``small``. ``alice`` (admin in team-a) and
``bob`` (edit in team-b) may read pools and hardware profiles; each has an access key of their
namespace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from xml.etree import ElementTree

import pytest
from botocore.exceptions import ClientError

from api_types import Firewall, Instance, InstancePhase, Subnet, registry
from apiserver import User
from apiserver.accesskeys import AccessKeyCredential
from apiserver.ec2.instances import _generated_name
from apiserver.ec2.resources import ec2_id, vpc_id
from controller.store.objects import Store
from reconcilers import instance
from skybroker.apiserver import HttpServer
from tests.awscli import answer, aws_cli
from tests.integration.apiserver.ec2world import ec2_api, ec2_client
from tests.integration.apiserver.test_ec2_catalog import _signed
from tests.integration.reconcilers.harness import Harness, pool_manifest, sim_account
from tests.waiting import eventually

API = "skybroker.io/v1alpha1"
ALICE = AccessKeyCredential(
    "AKIAALICE", "alice-secret", User("alice", "u-alice", frozenset({"tenants"})), "team-a"
)
BOB = AccessKeyCredential("AKIABOB", "bob-secret", User("bob", "u-bob", frozenset()), "team-b")
KEYS = {key.access_key_id: key for key in (ALICE, BOB)}
ZONES = ["sim-easta", "sim-eastb", "sim-eastc"]
#: Convergence on a loaded 2-core machine: a failure detector, far beyond what a run needs.
CONVERGE = 120.0

WORLD: list[dict[str, Any]] = [
    sim_account("sim-a"),
    pool_manifest("general", [{"account": "sim-a", "zones": ZONES}]),
    {"apiVersion": API, "kind": "HardwareProfile", "metadata": {"name": "small"},
     "spec": {"cpu": {"min": 1, "max": 2}, "memoryMiB": {"min": 1024}}},
    {"apiVersion": API, "kind": "ClusterRole", "metadata": {"name": "catalogue-reader"},
     "rules": [{"apiGroups": ["skybroker.io"], "resources": ["pools", "hardwareprofiles"],
                "verbs": ["get", "list"]}]},
    {"apiVersion": API, "kind": "ClusterRoleBinding", "metadata": {"name": "catalogue"},
     "roleRef": {"kind": "ClusterRole", "name": "catalogue-reader"},
     "subjects": [{"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"}]},
]  # fmt: skip


def create(store: Store, *manifests: dict[str, Any]) -> None:
    for manifest in manifests:
        store.create(registry.parse_object({"apiVersion": API, **manifest}))


@pytest.fixture
def ec2_world(api_store: Store, tmp_path: Path) -> Iterator[HttpServer]:
    with ec2_api(api_store, tmp_path, WORLD, KEYS) as http:
        yield http


@pytest.fixture
def controller(api_store: Store, tmp_path: Path) -> Iterator[Harness]:
    """The instance reconciler on the API server's store (as ``skybroker controller``)."""
    cloud = tmp_path / "cloud"
    cloud.mkdir()
    running = Harness(api_store, cloud)
    running.start(instance.register)
    yield running
    running.stop()


def ec2(server: HttpServer, key: AccessKeyCredential = ALICE, region: str = "general") -> Any:
    return ec2_client(server, key, region)


def error_of(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call(*args, **kwargs)
    return raised.value.response["Error"]["Code"], raised.value.response["Error"]["Message"]


def run(client: Any, count: int = 1, **extra: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "ImageId": "ubuntu-22.04",
        "InstanceType": "small",
        "MinCount": count,
        "MaxCount": count,
    }
    arguments.update(extra)
    answer: dict[str, Any] = client.run_instances(**arguments)
    return answer


def instances(client: Any, **kwargs: Any) -> list[dict[str, Any]]:
    reservations = client.describe_instances(**kwargs)["Reservations"]
    return [i for r in reservations for i in r["Instances"]]


def states(client: Any, ids: list[str]) -> set[str]:
    return {i["State"]["Name"] for i in instances(client, InstanceIds=ids)}


def tag(key: str, value: str) -> dict[str, str]:
    return {"Key": key, "Value": value}


def stored(store: Store, namespace: str = "team-a") -> list[Instance]:
    return store.list(Instance, namespace).items


def test_run_three_then_stop_start_and_terminate(
    ec2_world: HttpServer, controller: Harness
) -> None:
    client = ec2(ec2_world)
    answer = run(
        client,
        3,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [tag("app", "shop")]}],
        UserData="#cloud-config\n",
    )
    launched = answer["Instances"]
    ids = [i["InstanceId"] for i in launched]
    assert answer["ReservationId"].startswith("r-") and len(answer["OwnerId"]) == 12
    assert [i["AmiLaunchIndex"] for i in launched] == [0, 1, 2]
    assert {(i["State"]["Name"], i["State"]["Code"]) for i in launched} == {("pending", 0)}
    assert all(i["InstanceType"] == "small" and i["ImageId"] == "ubuntu-22.04" for i in launched)
    names = {t["Value"] for i in launched for t in i["Tags"] if t["Key"] == "Name"}
    assert len(names) == 3 and all(name.startswith("ec2-") for name in names)
    assert all(tag("app", "shop") in i["Tags"] for i in launched)
    objects = {o.metadata.name: o for o in stored(controller.store)}
    assert set(objects) == names
    assert {o.spec.user_data for o in objects.values()} == {"#cloud-config\n"}
    assert {o.spec.pool for o in objects.values()} == {"general"}

    eventually(
        lambda: states(client, ids) == {"running"}, CONVERGE, lambda: str(states(client, ids))
    )
    running = instances(client, InstanceIds=ids)
    assert all(i["Placement"]["AvailabilityZone"] in ZONES for i in running)
    assert all(i["PrivateIpAddress"] for i in running)
    [reservation] = client.describe_instances(InstanceIds=ids)["Reservations"]
    assert reservation["ReservationId"] == answer["ReservationId"]

    stopping = client.stop_instances(InstanceIds=ids[:2])["StoppingInstances"]
    assert {(s["PreviousState"]["Name"], s["CurrentState"]["Name"]) for s in stopping} == {
        ("running", "stopping")
    }
    eventually(lambda: states(client, ids[:2]) == {"stopped"}, CONVERGE)
    assert states(client, ids[2:]) == {"running"}
    stopped = client.describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["stopped"]}]
    )
    assert sorted(i["InstanceId"] for r in stopped["Reservations"] for i in r["Instances"]) == (
        sorted(ids[:2])
    )

    starting = client.start_instances(InstanceIds=ids[:2])["StartingInstances"]
    assert {(s["PreviousState"]["Name"], s["CurrentState"]["Name"]) for s in starting} == {
        ("stopped", "pending")
    }
    eventually(lambda: states(client, ids) == {"running"}, CONVERGE)

    terminating = client.terminate_instances(InstanceIds=ids)["TerminatingInstances"]
    assert {s["CurrentState"]["Name"] for s in terminating} == {"shutting-down"}
    eventually(lambda: instances(client) == [], CONVERGE, lambda: str(instances(client)))
    assert error_of(client.describe_instances, InstanceIds=ids[:1])[0] == (
        "InvalidInstanceID.NotFound"
    )
    assert controller.cloud("sim-a").list_instances() == []


def test_a_client_token_retried_makes_one_reservation(
    ec2_world: HttpServer, api_store: Store
) -> None:
    client = ec2(ec2_world)
    first = run(client, 2, ClientToken="launch-42")
    again = run(client, 2, ClientToken="launch-42")
    assert again["ReservationId"] == first["ReservationId"]
    assert [i["InstanceId"] for i in again["Instances"]] == [
        i["InstanceId"] for i in first["Instances"]
    ]
    assert len(stored(api_store)) == 2
    code, message = error_of(run, client, 3, ClientToken="launch-42")
    assert code == "IdempotentParameterMismatch" and "launch-42" in message
    run(client, 1, ClientToken="launch-43")
    assert len(stored(api_store)) == 3
    # The name the token derives is held by another object (say, a rolled-back leftover still
    # being deleted): the launch takes another name, and a retry still finds it.
    create(api_store, {"kind": "Instance", "metadata": {"name": _generated_name("ec2", "t-44", 0),
           "namespace": "team-a"}, "spec": {"pool": "general", "hardware": {"size": "x"},
           "image": "ubuntu-22.04"}})  # fmt: skip
    launched = run(client, 1, ClientToken="t-44")["Instances"][0]["InstanceId"]
    assert run(client, 1, ClientToken="t-44")["Instances"][0]["InstanceId"] == launched
    assert len(stored(api_store)) == 5


def test_counts_under_a_quota(ec2_world: HttpServer, api_store: Store) -> None:
    create(
        api_store,
        {"kind": "Quota", "metadata": {"name": "default", "namespace": "team-a"},
         "spec": {"hard": {"instances": 3}}},
    )  # fmt: skip
    client = ec2(ec2_world)
    assert len(run(client, 1)["Instances"]) == 1
    # As many as the quota allows, up to MaxCount, at least MinCount.
    answer = client.run_instances(
        ImageId="ubuntu-22.04", InstanceType="small", MinCount=1, MaxCount=5
    )
    assert len(answer["Instances"]) == 2
    assert len(stored(api_store)) == 3
    # Fewer than MinCount fit: nothing is left behind, and the quota's refusal is the message.
    client.terminate_instances(InstanceIds=[answer["Instances"][0]["InstanceId"]])
    assert len(stored(api_store)) == 2
    code, message = error_of(
        client.run_instances, ImageId="ubuntu-22.04", InstanceType="small", MinCount=2, MaxCount=4
    )
    assert code == "InstanceLimitExceeded"
    assert "exceeded quota: default" in message and "instances" in message
    assert len(stored(api_store)) == 2
    code, message = error_of(run, client, 2)
    assert code == "InstanceLimitExceeded" and len(stored(api_store)) == 2
    # The one that fits still launches (the rolled-back ones released their reservation).
    assert len(run(client, 1)["Instances"]) == 1


def test_pages_of_twelve_instances(ec2_world: HttpServer) -> None:
    client = ec2(ec2_world)
    made = {i["InstanceId"] for i in run(client, 12)["Instances"]}
    seen: list[str] = []
    pages = 0
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"MaxResults": 5, **({"NextToken": token} if token else {})}
        answer = client.describe_instances(**kwargs)
        page = [i["InstanceId"] for r in answer["Reservations"] for i in r["Instances"]]
        assert len(page) == (5 if pages < 2 else 2)
        seen += page
        pages += 1
        token = answer.get("NextToken")
        if not token:
            break
    assert pages == 3 and len(seen) == 12 and set(seen) == made
    paginated = client.get_paginator("describe_instances").paginate(
        PaginationConfig={"PageSize": 5}
    )
    assert {
        i["InstanceId"] for p in paginated for r in p["Reservations"] for i in r["Instances"]
    } == made
    code, _ = error_of(client.describe_instances, InstanceIds=sorted(made)[:1], MaxResults=5)
    assert code == "InvalidParameterCombination"


def test_filters(ec2_world: HttpServer) -> None:
    client = ec2(ec2_world)
    web = run(client, 1, TagSpecifications=[{"ResourceType": "instance",
              "Tags": [tag("Name", "web-1"), tag("tier", "front")]}])  # fmt: skip
    db = run(client, 1, TagSpecifications=[{"ResourceType": "instance",
             "Tags": [tag("Name", "db-1"), tag("tier", "back")]}])  # fmt: skip
    web_id, db_id = web["Instances"][0]["InstanceId"], db["Instances"][0]["InstanceId"]
    assert tag("Name", "web-1") in web["Instances"][0]["Tags"]

    def ids(*filters: tuple[str, list[str]]) -> list[str]:
        chosen = [{"Name": name, "Values": values} for name, values in filters]
        return sorted(i["InstanceId"] for i in instances(client, Filters=chosen))

    assert ids(("tag:tier", ["front"])) == [web_id]
    assert ids(("tag:Name", ["*-1"])) == sorted([web_id, db_id])
    assert ids(("tag-key", ["tier"]), ("instance-id", [db_id])) == [db_id]
    assert ids(("instance-state-name", ["pending"]), ("instance-type", ["small"])) == sorted(
        [web_id, db_id]
    )
    assert ids(("image-id", ["debian*"])) == []
    assert ids(("reservation-id", [db["ReservationId"]])) == [db_id]
    assert error_of(client.describe_instances, Filters=[{"Name": "colour", "Values": ["x"]}])[
        0
    ] == ("InvalidParameterValue")


def test_subnets_security_groups_zones_and_refusals(
    ec2_world: HttpServer, api_store: Store
) -> None:
    create(
        api_store,
        {"kind": "Subnet", "metadata": {"name": "web", "namespace": "team-a"},
         "spec": {"pool": "general", "network": {"name": "main", "cidr": "10.10.0.0/16"},
                  "cidr": "10.10.1.0/24"}},
        {"kind": "Firewall", "metadata": {"name": "http", "namespace": "team-a"},
         "spec": {"rules": [{"direction": "Ingress", "protocol": "tcp", "ports": "80",
                             "cidrs": ["0.0.0.0/0"]}]}},
    )  # fmt: skip
    client = ec2(ec2_world)
    [subnet] = api_store.list(Subnet, "team-a").items
    [firewall] = api_store.list(Firewall, "team-a").items
    subnet_id = ec2_id("Subnet", str(subnet.metadata.uid))
    group_id = ec2_id("Firewall", str(firewall.metadata.uid))
    launched = run(
        client,
        SubnetId=subnet_id,
        SecurityGroupIds=[group_id],
        Placement={"AvailabilityZone": "sim-eastb"},
    )["Instances"][0]
    assert launched["SubnetId"] == subnet_id and launched["VpcId"] == vpc_id("team-a", "main", None)
    assert launched["SecurityGroups"] == [{"GroupId": group_id, "GroupName": "http"}]
    assert launched["Placement"]["AvailabilityZone"] == "sim-eastb"
    [obj] = stored(api_store)
    assert obj.spec.subnet_ref == "web" and obj.spec.firewall_refs == ["http"]
    assert obj.spec.placement is not None and obj.spec.placement.zone == "sim-eastb"
    assert [i["InstanceId"] for i in instances(client, Filters=[{"Name": "subnet-id",
            "Values": [subnet_id]}])] == [launched["InstanceId"]]  # fmt: skip

    code, message = error_of(run, client, SubnetId="subnet-0123456789abcdef0")
    assert code == "InvalidSubnetID.NotFound" and "subnet-0123456789abcdef0" in message
    code, message = error_of(run, client, SecurityGroupIds=[group_id])
    assert code == "MissingParameter" and "SubnetId" in message
    code, _ = error_of(run, client, SubnetId=subnet_id, SecurityGroupIds=["sg-0123456789abcdef0"])
    assert code == "InvalidGroup.NotFound"
    assert error_of(run, client, ImageId="windows-11")[0] == "InvalidAMIID.NotFound"
    assert error_of(run, client, Placement={"AvailabilityZone": "mars-1a"})[0] == (
        "InvalidParameterValue"
    )
    # botocore encodes UserData itself: a raw request shows what bad base64 gets.
    body = urlencode({"Action": "RunInstances", "Version": "2016-11-15", "ImageId": "ubuntu-22.04",
                      "InstanceType": "small", "MinCount": "1", "MaxCount": "1",
                      "UserData": "%%% not base64"})  # fmt: skip
    refused = ElementTree.fromstring(_signed(ec2_world, body.encode(), ALICE).content)
    assert refused.findtext("Errors/Error/Code") == "InvalidParameterValue"
    assert "UserData" in (refused.findtext("Errors/Error/Message") or "")
    assert error_of(run, client, MinCount=3, MaxCount=2)[0] == "InvalidParameterValue"
    assert error_of(run, client, DryRun=True)[0] == "DryRunOperation"
    assert len(stored(api_store)) == 1
    # Any text is a Name, as in EC2 (it used to be refused as InvalidParameterValue): the
    # instance gets a name made of it and answers the text as its Name tag.
    boxed = run(
        client,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [tag("Name", "My Box")]}],
    )["Instances"][0]
    assert tag("Name", "My Box") in boxed["Tags"]
    assert any(obj.metadata.name.startswith("my-box-") for obj in stored(api_store))
    [seen] = instances(client, Filters=[{"Name": "tag:Name", "Values": ["My Box"]}])
    assert seen["InstanceId"] == boxed["InstanceId"]


def test_an_instance_type_that_is_no_profile_is_a_provider_size(
    ec2_world: HttpServer, controller: Harness
) -> None:
    """DESIGN §12: InstanceType is a HardwareProfile's name or a provider size; the simulated
    account's size ``s1.medium`` is taken as is and the instance runs on it."""
    client = ec2(ec2_world)
    [launched] = run(client, InstanceType="s1.medium")["Instances"]
    assert launched["InstanceType"] == "s1.medium"
    [obj] = stored(controller.store)
    assert (obj.spec.hardware.size, obj.spec.hardware.profile) == ("s1.medium", None)
    ids = [launched["InstanceId"]]
    eventually(
        lambda: states(client, ids) == {"running"}, CONVERGE, lambda: str(states(client, ids))
    )
    [seen] = instances(client, InstanceIds=ids)
    assert seen["InstanceType"] == "s1.medium"
    placement = controller.store.get(Instance, obj.metadata.name, "team-a").status.placement
    assert placement is not None and placement.size == "s1.medium"


def test_a_tenant_cannot_see_or_touch_another_tenants_instances(ec2_world: HttpServer) -> None:
    alice, bob = ec2(ec2_world, ALICE), ec2(ec2_world, BOB)
    mine = run(alice, 1)["Instances"][0]["InstanceId"]
    theirs = run(bob, 1)["Instances"][0]["InstanceId"]
    assert [i["InstanceId"] for i in instances(bob)] == [theirs]
    assert [i["InstanceId"] for i in instances(alice)] == [mine]
    for call in (bob.describe_instances, bob.stop_instances, bob.start_instances,
                 bob.terminate_instances):  # fmt: skip
        code, message = error_of(call, InstanceIds=[mine])
        assert code == "InvalidInstanceID.NotFound" and mine in message
    assert error_of(bob.create_tags, Resources=[mine], Tags=[tag("x", "y")])[0] == (
        "InvalidInstanceID.NotFound"
    )
    assert [i["InstanceId"] for i in instances(alice)] == [mine]


def test_states_follow_phases_and_power_state(ec2_world: HttpServer, api_store: Store) -> None:
    """The state table of ``apiserver.ec2.instanceview``, on objects written with the phases a
    reconciler writes."""
    cases = {  # name: (spec.powerState, status.phase, expected EC2 state)
        "booting": ("Running", "Provisioning", "pending"),
        "up": ("Running", "Running", "running"),
        "going-down": ("Stopped", "Running", "stopping"),
        "down": ("Stopped", "Stopped", "stopped"),
        "coming-up": ("Running", "Stopped", "pending"),
        "broken": ("Running", "Failed", "terminated"),
    }
    for name, (power, phase, _) in cases.items():
        create(
            api_store,
            {"kind": "Instance", "metadata": {"name": name, "namespace": "team-a",
                                              "finalizers": ["test.skybroker.io/hold"]},
             "spec": {"pool": "general", "hardware": {"profile": "small"},
                      "image": "ubuntu-22.04", "powerState": power}},
        )  # fmt: skip
        obj = api_store.get(Instance, name, "team-a")
        obj.status.phase = InstancePhase(phase)
        if phase == "Failed":
            obj.status.set_condition(
                "Provisioned", False, "ImageNotFound", "no such image", generation=None
            )
        api_store.update_status(obj)
    client = ec2(ec2_world)
    by_name = {
        next(t["Value"] for t in i["Tags"] if t["Key"] == "Name"): i for i in instances(client)
    }
    assert {name: i["State"]["Name"] for name, i in by_name.items()} == {
        name: expected for name, (_, _, expected) in cases.items()
    }
    assert by_name["broken"]["StateReason"] == {
        "Code": "Server.ImageNotFound",
        "Message": "no such image",
    }
    up = by_name["up"]["InstanceId"]
    assert error_of(client.stop_instances, InstanceIds=[up], DryRun=True)[0] == "DryRunOperation"
    assert api_store.get(Instance, "up", "team-a").spec.power_state == "Running"

    client.terminate_instances(InstanceIds=[up])  # held by its finalizer: shutting down
    assert states(client, [up]) == {"shutting-down"}
    code, message = error_of(client.start_instances, InstanceIds=[up])
    assert code == "IncorrectInstanceState" and up in message
    broken = by_name["broken"]["InstanceId"]
    assert error_of(client.stop_instances, InstanceIds=[broken])[0] == "IncorrectInstanceState"


def test_security_groups_by_id_and_name_in_a_vpc_made_through_ec2(ec2_world: HttpServer) -> None:
    client = ec2(ec2_world)
    vpc = client.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    subnet = client.create_subnet(VpcId=vpc, CidrBlock="10.30.1.0/24")["Subnet"]["SubnetId"]
    web = client.create_security_group(GroupName="Web Servers", Description="w", VpcId=vpc)
    [default] = client.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "group-name", "Values": ["default"]}]
    )["SecurityGroups"]
    launched = run(
        client, SubnetId=subnet, SecurityGroupIds=[web["GroupId"]], SecurityGroups=["default"]
    )["Instances"][0]
    assert launched["VpcId"] == vpc and launched["SubnetId"] == subnet
    assert launched["SecurityGroups"] == [
        {"GroupId": web["GroupId"], "GroupName": "Web Servers"},
        {"GroupId": default["GroupId"], "GroupName": "default"},
    ]
    group_filter = [{"Name": "group-name", "Values": ["Web Servers"]}]
    assert [i["InstanceId"] for i in instances(client, Filters=group_filter)] == [
        launched["InstanceId"]
    ]
    # EC2 refuses to delete what an instance uses: so does this door, for both.
    assert error_of(client.delete_subnet, SubnetId=subnet)[0] == "DependencyViolation"
    assert error_of(client.delete_security_group, GroupId=web["GroupId"])[0] == (
        "DependencyViolation"
    )


def test_instances_are_regional(ec2_world: HttpServer, api_store: Store) -> None:
    create(api_store, pool_manifest("other", [{"account": "sim-a"}]))
    general, other = ec2(ec2_world), ec2(ec2_world, region="other")
    here = run(general)["Instances"][0]["InstanceId"]
    there = run(other)["Instances"][0]["InstanceId"]
    assert [i["InstanceId"] for i in instances(general)] == [here]
    assert [i["InstanceId"] for i in instances(other)] == [there]
    for call in (general.describe_instances, general.stop_instances):
        assert error_of(call, InstanceIds=[there])[0] == "InvalidInstanceID.NotFound"
    assert error_of(general.create_tags, Resources=[there], Tags=[tag("a", "b")])[0] == (
        "InvalidInstanceID.NotFound"
    )
    assert {t["ResourceId"] for t in other.describe_tags()["Tags"]} == {there}
    assert error_of(ec2(ec2_world, region="nowhere").describe_instances)[0] == "AuthFailure"


def test_the_aws_cli_runs_describes_and_terminates(
    ec2_world: HttpServer, controller: Harness, tmp_path: Path
) -> None:
    aws = aws_cli(
        f"{ec2_world.url}/ec2/", ALICE.access_key_id, ALICE.secret_access_key, "general", tmp_path
    )
    launched = answer(
        aws("run-instances", "--image-id", "ubuntu-22.04", "--instance-type", "small",
            "--count", "2", "--client-token", "cli-1",
            "--tag-specifications", "ResourceType=instance,Tags=[{Key=team,Value=web}]")
    )  # fmt: skip
    ids = sorted(i["InstanceId"] for i in launched["Instances"])
    assert len(ids) == 2 and {i["State"]["Name"] for i in launched["Instances"]} == {"pending"}

    def running() -> list[str]:
        filters = ["Name=instance-state-name,Values=running", "Name=tag:team,Values=web"]
        listed = answer(aws("describe-instances", "--filters", *filters))
        return sorted(i["InstanceId"] for r in listed["Reservations"] for i in r["Instances"])

    eventually(lambda: running() == ids, timeout=CONVERGE)
    ended = answer(aws("terminate-instances", "--instance-ids", *ids))
    assert {i["CurrentState"]["Name"] for i in ended["TerminatingInstances"]} == {"shutting-down"}
    missing = aws("describe-instances", "--instance-ids", "i-00000000000000000")
    assert missing.returncode != 0 and "InvalidInstanceID.NotFound" in missing.stderr
