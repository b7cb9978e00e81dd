"""Subnet, Firewall and Volume converge through the ec2 adapter on a real moto_server.

Where it sits: the ec2 half of issue 4's "convergence of every kind" (the Instance alone is
``test_instance_ec2.py``; the simulated cloud is ``test_subnet/firewall/volume.py``). Every
reconciler runs in one ``Harness`` against a ProviderAccount with driver ``ec2`` whose
endpoint is the session's moto_server. What the cloud holds is read with boto3 straight from
moto — never through skybroker's adapter — so a bug in the adapter cannot hide itself.

Both scenarios start the same way: a subnet in its VPC, an instance in it behind a firewall,
a volume attached to the instance, all applied at once, on an account whose API budget is
tight (``BUDGET``) so that the start spends it and every reconciler must progress on retries.
Then either rule changes, drift and deletion in reverse order, each step checked in the
cloud; or a second subnet sharing the VPC and everything deleted at once, the controllers
finding the order themselves. Either way moto ends as it began: its default VPC, subnets and
groups only. (moto keeps the tags of deleted resources in DescribeTags, so emptiness is
checked resource by resource.) A last test races workers creating one shared network.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from api_types import Firewall, Instance, InstancePhase, Subnet, Volume
from controller.errors import TransientError
from controller.store.keys import ObjectKey
from providers import NetworkCreate, ResourceTags
from providers.ec2 import Ec2Provider
from reconcilers import firewall, instance, subnet, volume
from tests.integration.providers.conftest import EC2_CREDENTIALS, REGION, MotoServer, ec2_config
from tests.integration.reconcilers.harness import Harness, ec2_account, instance_manifest
from tests.integration.reconcilers.test_firewall import APP, HTTP, firewall_manifest
from tests.integration.reconcilers.test_subnet import subnet_manifest
from tests.integration.reconcilers.test_volume import volume_manifest

ACCOUNT = "aws"
ZONE = f"{REGION}b"  # not the first zone, so a zone dropped on the way shows
NETWORK_CIDR = "10.10.0.0/16"  # subnet_manifest's network "main"
DEVICE = "/dev/sdf"
#: Spent by the first burst of reconciles: a reconciler that forces a fresh list before each
#: create livelocks on it (every retry spends its one token on the list, then is refused).
BUDGET = {"requestsPerSecond": 10, "burst": 8}
PING = {"direction": "Ingress", "protocol": "icmp", "cidrs": ["10.0.0.0/8"]}
DNS_OUT = {"direction": "Egress", "protocol": "udp", "ports": "53", "cidrs": ["10.0.0.2/32"]}
HTTPS = {"direction": "Ingress", "protocol": "tcp", "ports": "443", "cidrs": ["0.0.0.0/0"]}
APP_WIDER = {**APP, "cidrs": ["10.0.0.0/8", "192.168.0.0/16"]}

#: A security-group permission as moto reports it: direction, protocol, ports, CIDR.
Rule = tuple[str, str, int | None, int | None, str]
FIRST_RULES: set[Rule] = {
    ("Ingress", "tcp", 80, 80, "0.0.0.0/0"),
    ("Ingress", "tcp", 8000, 8100, "10.0.0.0/8"),
    ("Ingress", "icmp", -1, -1, "10.0.0.0/8"),
    ("Egress", "udp", 53, 53, "10.0.0.2/32"),
}  # exactly the spec: EC2's default allow-all egress is gone
CHANGED_RULES: set[Rule] = {
    ("Ingress", "tcp", 443, 443, "0.0.0.0/0"),
    ("Ingress", "tcp", 8000, 8100, "10.0.0.0/8"),
    ("Ingress", "tcp", 8000, 8100, "192.168.0.0/16"),
    ("Ingress", "icmp", -1, -1, "10.0.0.0/8"),
    ("Egress", "udp", 53, 53, "10.0.0.2/32"),
}


def on_account(**spec: Any) -> dict[str, Any]:
    """``spec`` targeted at the moto account directly (no pool)."""
    return {"pool": None, "account": ACCOUNT, **spec}


@pytest.fixture
def ec2(moto_server: MotoServer) -> Iterator[Any]:
    """A boto3 EC2 client on the freshly reset moto_server: the test's own view of the cloud."""
    moto_server.reset()
    client = boto3.client(
        "ec2",
        region_name=REGION,
        endpoint_url=moto_server.url,
        aws_access_key_id=EC2_CREDENTIALS["key"],
        aws_secret_access_key=EC2_CREDENTIALS["secret"],
    )
    yield client
    client.close()


# --- reading moto directly ----------------------------------------------------------------------


def ours(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The resources skybroker tagged (moto also has default VPCs, subnets, groups, root disks)."""
    return [i for i in items if any(t["Key"] == "skybroker/uid" for t in i.get("Tags", []))]


def group_rules(ec2: Any, group_id: str) -> set[Rule]:
    (group,) = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    return {
        (direction, perm["IpProtocol"], perm.get("FromPort"), perm.get("ToPort"), ip["CidrIp"])
        for direction, key in (("Ingress", "IpPermissions"), ("Egress", "IpPermissionsEgress"))
        for perm in group[key]
        for ip in perm.get("IpRanges", [])
    }


def instance_states(ec2: Any) -> dict[str, str]:
    reservations = ec2.describe_instances()["Reservations"]
    return {i["InstanceId"]: i["State"]["Name"] for r in reservations for i in r["Instances"]}


def attachments(ec2: Any, volume_id: str) -> list[tuple[str, str, str]]:
    (disk,) = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"]
    return [(a["InstanceId"], a["Device"], a["State"]) for a in disk["Attachments"]]


def assert_cloud_empty(ec2: Any, instance_id: str) -> None:
    """Only moto's defaults are left, and the one instance there was is terminated."""
    assert [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if not v["IsDefault"]] == []
    subnets = ec2.describe_subnets()["Subnets"]
    assert [s["SubnetId"] for s in subnets if not s["DefaultForAz"]] == []
    groups = ec2.describe_security_groups()["SecurityGroups"]
    assert [g["GroupId"] for g in groups if g["GroupName"] != "default"] == []
    assert ec2.describe_volumes()["Volumes"] == []  # the root disk went with the instance
    assert instance_states(ec2) == {instance_id: "terminated"}


# --- the shared start ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Converged:
    """The cloud ids of the first convergence, each already checked against moto."""

    vpc: str
    subnet: str
    instance: str
    group: str
    volume: str


def event_count(harness: Harness, plural: str, name: str, reason: str) -> tuple[int, str]:
    """How often the (aggregated) ``reason`` event about ``acme/name`` happened; its message."""
    harness.manager.recorder.flush(10)
    events = harness.manager.recorder.list_events(involved=ObjectKey(plural, "acme", name))
    return next(((e.count, e.message) for e in events if e.reason == reason), (0, ""))


def wait_event(harness: Harness, plural: str, name: str, reason: str, seen: int = 0) -> str:
    """The message of the ``reason`` event about ``acme/name`` once it happened after ``seen``."""
    harness.eventually(
        lambda: event_count(harness, plural, name, reason)[0] > seen,
        20,
        f"no new {reason} event about {plural}/{name}",
    )
    return event_count(harness, plural, name, reason)[1]


def converge_all(
    harness: Harness, moto_server: MotoServer, ec2: Any, *also: dict[str, Any]
) -> Converged:
    """Apply account, subnet, firewall, instance, attached volume and ``also`` at once; check."""
    image = ec2.register_image(Name="skybroker-image", Description="kinds test")["ImageId"]
    harness.apply(*ec2_account(ACCOUNT, moto_server.url, image, apiBudget=BUDGET))
    harness.start(subnet.register, firewall.register, instance.register, volume.register)
    harness.apply(
        subnet_manifest("web", "10.10.1.0/24", **on_account(zone=ZONE)),
        firewall_manifest("web", [HTTP, APP, PING, DNS_OUT]),
        instance_manifest(
            "web-1",
            **on_account(
                hardware={"size": "t3.micro"},
                subnetRef="web",
                firewallRefs=["web"],
                driftPolicy="Correct",
            ),
        ),
        volume_manifest("data-1", **on_account(attachTo={"instance": "web-1", "device": DEVICE})),
        *also,
    )

    # Subnet: a VPC with the network's CIDR, the subnet inside it, in the requested zone.
    web = harness.wait_for(Subnet, "web", "acme", lambda s: s.status.phase == "Ready")
    (vpc,) = ours(ec2.describe_vpcs()["Vpcs"])
    (sub,) = ec2.describe_subnets(SubnetIds=[str(web.status.provider_id)])["Subnets"]
    assert (vpc["VpcId"], vpc["CidrBlock"]) == (web.status.network_id, NETWORK_CIDR)
    assert (sub["SubnetId"], sub["VpcId"]) == (web.status.provider_id, vpc["VpcId"])
    assert (sub["CidrBlock"], sub["AvailabilityZone"]) == ("10.10.1.0/24", ZONE)

    # Instance: in that subnet, behind the firewall's security group, which holds the rules.
    vm = harness.wait_for(
        Instance, "web-1", "acme", lambda i: i.status.phase == InstancePhase.RUNNING
    )
    fw = harness.wait_for(Firewall, "web", "acme", lambda f: bool(f.status.realisations))
    (where,) = fw.status.realisations
    (node,) = ec2.describe_instances()["Reservations"][0]["Instances"]
    assert node["InstanceId"] == vm.status.provider_id
    assert (node["SubnetId"], node["VpcId"]) == (sub["SubnetId"], vpc["VpcId"])
    assert node["Placement"]["AvailabilityZone"] == ZONE
    assert [g["GroupId"] for g in node["SecurityGroups"]] == [where.provider_id]
    (group,) = ours(ec2.describe_security_groups()["SecurityGroups"])
    assert (group["GroupId"], group["VpcId"]) == (where.provider_id, vpc["VpcId"])
    assert group_rules(ec2, where.provider_id) == FIRST_RULES

    # Volume: created in the instance's zone, attached to it as the requested device.
    data = harness.wait_for(Volume, "data-1", "acme", lambda v: v.status.phase == "Attached")
    (disk,) = ours(ec2.describe_volumes()["Volumes"])
    assert (disk["VolumeId"], disk["AvailabilityZone"]) == (data.status.provider_id, ZONE)
    assert disk["Size"] == 10
    assert attachments(ec2, disk["VolumeId"]) == [(node["InstanceId"], DEVICE, "attached")]
    return Converged(
        vpc["VpcId"], sub["SubnetId"], node["InstanceId"], where.provider_id, disk["VolumeId"]
    )


# --- the scenarios ------------------------------------------------------------------------------


def test_rules_diffed_drift_reverted_then_deleted_in_reverse_order(
    harness: Harness, moto_server: MotoServer, ec2: Any
) -> None:
    ids = converge_all(harness, moto_server, ec2)

    # A rule change is a diff on the same group: authorize 443 and a CIDR, revoke 80.
    fw = harness.store.get(Firewall, "web", "acme")
    fw.spec.rules = [fw.spec.rules[0].model_validate(r) for r in (HTTPS, APP_WIDER, PING, DNS_OUT)]
    changed = harness.store.update(fw)
    harness.eventually(lambda: group_rules(ec2, ids.group) == CHANGED_RULES, 20, "rules changed")
    harness.wait_for(
        Firewall,
        "web",
        "acme",
        lambda f: f.status.observed_generation == changed.metadata.generation,
    )
    assert [g["GroupId"] for g in ours(ec2.describe_security_groups()["SecurityGroups"])] == [
        ids.group
    ]
    assert wait_event(harness, "firewalls", "web", "RulesUpdated") == (
        f"{ids.group} in {ACCOUNT}/main: authorized 2, revoked 1 rule(s)"
    )

    # Drift: SSH opened and HTTPS closed in the cloud behind skybroker's back; both reverted.
    # That it was seen is told by a new DriftCorrected event, not by a look at the cloud in
    # between (a resync may revert it at once); likewise for the volume below.
    def permission(port: int) -> list[dict[str, Any]]:
        return [
            {
                "IpProtocol": "tcp",
                "FromPort": port,
                "ToPort": port,
                "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
            }
        ]

    seen, _ = event_count(harness, "firewalls", "web", "DriftCorrected")
    ec2.authorize_security_group_ingress(GroupId=ids.group, IpPermissions=permission(22))
    ec2.revoke_security_group_ingress(GroupId=ids.group, IpPermissions=permission(443))
    assert ids.group in wait_event(harness, "firewalls", "web", "DriftCorrected", seen)
    harness.eventually(lambda: group_rules(ec2, ids.group) == CHANGED_RULES, 20, "drift reverted")

    # The volume detached in the cloud behind skybroker's back is reattached.
    seen, _ = event_count(harness, "volumes", "data-1", "DriftCorrected")
    ec2.detach_volume(VolumeId=ids.volume, InstanceId=ids.instance)
    message = wait_event(harness, "volumes", "data-1", "DriftCorrected", seen)
    assert message == "found detached; reattaching"
    harness.eventually(
        lambda: attachments(ec2, ids.volume) == [(ids.instance, DEVICE, "attached")],
        20,
        "volume reattached",
    )

    # Deletion in reverse order, each step seen in the cloud.
    harness.store.delete(Volume, "data-1", "acme")
    harness.wait_gone(Volume, "data-1", "acme")
    assert ours(ec2.describe_volumes()["Volumes"]) == []
    assert instance_states(ec2) == {ids.instance: "running"}

    harness.store.delete(Instance, "web-1", "acme")
    harness.wait_gone(Instance, "web-1", "acme")
    assert instance_states(ec2) == {ids.instance: "terminated"}

    harness.store.delete(Firewall, "web", "acme")
    harness.wait_gone(Firewall, "web", "acme")
    assert ours(ec2.describe_security_groups()["SecurityGroups"]) == []
    assert [s["SubnetId"] for s in ours(ec2.describe_subnets()["Subnets"])] == [ids.subnet]

    harness.store.delete(Subnet, "web", "acme")
    harness.wait_gone(Subnet, "web", "acme")
    assert_cloud_empty(ec2, ids.instance)


def test_a_second_subnet_shares_the_vpc_and_everything_deleted_at_once_goes(
    harness: Harness, moto_server: MotoServer, ec2: Any
) -> None:
    ids = converge_all(
        harness, moto_server, ec2, subnet_manifest("db", "10.10.2.0/24", **on_account())
    )
    db = harness.wait_for(Subnet, "db", "acme", lambda s: s.status.phase == "Ready")
    assert db.status.network_id == ids.vpc
    subnets = {
        s["SubnetId"]: (s["VpcId"], s["CidrBlock"]) for s in ours(ec2.describe_subnets()["Subnets"])
    }
    assert subnets == {
        ids.subnet: (ids.vpc, "10.10.1.0/24"),
        str(db.status.provider_id): (ids.vpc, "10.10.2.0/24"),
    }

    # Deleted together (as `skyctl delete -f dir` would): finalizers sort out the order.
    for model, name in (
        (Subnet, "web"),
        (Subnet, "db"),
        (Firewall, "web"),
        (Instance, "web-1"),
        (Volume, "data-1"),
    ):
        harness.store.delete(model, name, "acme")
    for model, name in (
        (Volume, "data-1"),
        (Instance, "web-1"),
        (Firewall, "web"),
        (Subnet, "web"),
        (Subnet, "db"),
    ):
        harness.wait_gone(model, name, "acme")
    assert_cloud_empty(ec2, ids.instance)


def test_one_vpc_however_many_workers_create_a_shared_network_at_once(
    moto_server: MotoServer, ec2: Any
) -> None:
    """Same-named subnets share their network's create token; racing workers make one VPC."""
    provider = Ec2Provider(ec2_config(moto_server.port))
    request = NetworkCreate(ResourceTags("main", "uid-web", "network-token"), NETWORK_CIDR)

    def create(_: int) -> str:
        for _attempt in range(20):  # moto answers a concurrent burst with a 500 now and then
            try:
                return str(provider.create_network(request).id)
            except TransientError:
                continue
        raise AssertionError("no success in 20 attempts")

    with ThreadPoolExecutor(8) as pool:
        created = set(pool.map(create, range(8)))
    assert created == {v["VpcId"] for v in ours(ec2.describe_vpcs()["Vpcs"])}
    assert len(created) == 1
