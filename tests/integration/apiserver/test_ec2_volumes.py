"""The EC2 volume actions end to end: boto3 against a real API server over real etcd, and —
where a volume must become available or attached — the instance and volume reconcilers on a
simulated account beside it (``Harness``), on the same store (DESIGN §12).

Catalogue: simulated account ``sim-a`` (region ``sim-east``, zones ``sim-east{a,b,c}``) in pool
``general``, whose member offers zones ``sim-easta`` and ``sim-eastb`` only. ``alice`` (admin in
team-a) and ``bob`` (edit in team-b) may read pools through a ClusterRoleBinding; their access
keys come from a dict. Instances are written straight into the store (RunInstances is not
needed to test volumes).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api_types import Instance, Volume, registry
from apiserver import User
from apiserver.accesskeys import AccessKeyCredential
from apiserver.ec2.resources import ec2_id
from apiserver.ec2.volumes import CLIENT_TOKEN_ANNOTATION
from controller.store.objects import Store
from reconcilers import instance, volume
from skybroker.apiserver import HttpServer
from tests.integration.apiserver.ec2world import ec2_api, pool_readers
from tests.integration.apiserver.test_ec2_catalog import ec2, error_of
from tests.integration.reconcilers.harness import (
    Harness,
    instance_manifest,
    pool_manifest,
    sim_account,
)
from tests.waiting import eventually

ALICE = AccessKeyCredential(
    "AKIAALICE", "alice-secret", User("alice", "u-alice", frozenset({"tenants"})), "team-a"
)
BOB = AccessKeyCredential("AKIABOB", "bob-secret", User("bob", "u-bob", frozenset()), "team-b")
KEYS = {key.access_key_id: key for key in (ALICE, BOB)}
POLL = 0.1  # each look is a signed request: no need to spin

CATALOGUE: list[dict[str, Any]] = [
    sim_account("sim-a", volume_seconds=0.1),
    pool_manifest("general", [{"account": "sim-a", "zones": ["sim-easta", "sim-eastb"]}]),
    *pool_readers("alice", "bob"),
]  # fmt: skip


@pytest.fixture
def ec2_server(api_store: Store, tmp_path: Path) -> Iterator[HttpServer]:
    with ec2_api(api_store, tmp_path, CATALOGUE, KEYS) as http:
        yield http


@pytest.fixture
def controllers(api_store: Store, tmp_path: Path) -> Iterator[Harness]:
    (tmp_path / "clouds").mkdir()
    running = Harness(api_store, tmp_path / "clouds")
    yield running
    running.stop()


def tags(name: str, **labels: str) -> list[dict[str, Any]]:
    pairs = [{"Key": "Name", "Value": name}] + [{"Key": k, "Value": v} for k, v in labels.items()]
    return [{"ResourceType": "volume", "Tags": pairs}]


def put_instance(store: Store, name: str, namespace: str = "team-a", **spec: Any) -> str:
    """An Instance written into the store (as skyctl --etcd would); its EC2 id."""
    manifest = instance_manifest(name, namespace, pool="general", **spec)
    created = store.create(registry.parse_object(manifest), actor="test")
    return ec2_id("Instance", str(created.metadata.uid))


def described(client: Any, volume_id: str) -> dict[str, Any]:
    (found,) = client.describe_volumes(VolumeIds=[volume_id])["Volumes"]
    return dict(found)


def wait_volume(client: Any, volume_id: str, state: str, attachment: str | None) -> dict[str, Any]:
    """Until the volume is in ``state`` with its one attachment in ``attachment`` (None: no
    attachment); the volume as last described."""
    seen: list[dict[str, Any]] = []

    def there() -> bool:
        found = described(client, volume_id)
        seen.append(found)
        states = [a["State"] for a in found["Attachments"]]
        return bool(found["State"] == state and states == ([attachment] if attachment else []))

    eventually(there, 60, lambda: f"{volume_id}: {seen[-1] if seen else None}", POLL)
    return seen[-1]


def test_create_attach_detach_delete(
    ec2_server: HttpServer, controllers: Harness, api_store: Store
) -> None:
    controllers.start(instance.register, volume.register)
    web = put_instance(api_store, "web-1", placement={"zone": "sim-easta"})
    controllers.wait_for(Instance, "web-1", "team-a", lambda i: i.status.phase == "Running", 60)
    client = ec2(ec2_server, ALICE)

    created = client.create_volume(
        Size=5, AvailabilityZone="sim-easta", VolumeType="io2", TagSpecifications=tags("data-1")
    )
    volume_id = created["VolumeId"]
    assert volume_id.startswith("vol-") and len(volume_id) == 4 + 17
    assert (created["State"], created["Size"], created["AvailabilityZone"]) == (
        "creating",
        5,
        "sim-easta",
    )
    assert created["VolumeType"] == "io2" and created["Tags"] == [
        {"Key": "Name", "Value": "data-1"}
    ]
    stored = api_store.get(Volume, "data-1", "team-a")
    assert (stored.spec.pool, stored.spec.zone, stored.spec.size_gib) == ("general", "sim-easta", 5)

    wait_volume(client, volume_id, "available", None)
    attaching = client.attach_volume(VolumeId=volume_id, InstanceId=web, Device="/dev/sdf")
    assert (attaching["State"], attaching["InstanceId"], attaching["Device"]) == (
        "attaching",
        web,
        "/dev/sdf",
    )
    in_use = wait_volume(client, volume_id, "in-use", "attached")
    (attachment,) = in_use["Attachments"]
    assert (attachment["InstanceId"], attachment["Device"]) == (web, "/dev/sdf")
    assert attachment["AttachTime"] is not None
    filtered = client.describe_volumes(
        Filters=[{"Name": "attachment.instance-id", "Values": [web]}]
    )["Volumes"]
    assert [v["VolumeId"] for v in filtered] == [volume_id]
    # The cloud agrees: the simulated disk hangs on the instance's VM.
    vm = api_store.get(Instance, "web-1", "team-a").status.provider_id
    assert [d.attached_to for d in controllers.cloud("sim-a").list_volumes()] == [vm]

    status, code, message = error_of(client.delete_volume, VolumeId=volume_id)
    assert (status, code) == (400, "VolumeInUse") and web in message
    again = error_of(client.attach_volume, VolumeId=volume_id, InstanceId=web, Device="/dev/sdg")
    assert again[1] == "VolumeInUse"

    detaching = client.detach_volume(VolumeId=volume_id, InstanceId=web, Force=True)
    assert (detaching["State"], detaching["InstanceId"], detaching["Device"]) == (
        "detaching",
        web,
        "/dev/sdf",
    )
    wait_volume(client, volume_id, "available", None)
    assert [d.attached_to for d in controllers.cloud("sim-a").list_volumes()] == [None]
    assert error_of(client.detach_volume, VolumeId=volume_id)[1] == "IncorrectState"

    assert client.delete_volume(VolumeId=volume_id)["ResponseMetadata"]["HTTPStatusCode"] == 200

    def gone() -> bool:
        try:
            described(client, volume_id)
        except Exception as exc:  # ClientError: the code is checked below
            return "InvalidVolume.NotFound" in str(exc)
        return False

    eventually(gone, 60, f"{volume_id} is still described", POLL)
    assert controllers.cloud("sim-a").list_volumes() == []


def test_zones_parameters_and_refusals(ec2_server: HttpServer, api_store: Store) -> None:
    client = ec2(ec2_server, ALICE)
    # sim-eastc is a zone of the account's region, but not one the pool's member offers.
    status, code, message = error_of(client.create_volume, Size=1, AvailabilityZone="sim-eastc")
    assert (status, code) == (400, "InvalidZone.NotFound")
    assert "sim-eastc" in message and "sim-easta, sim-eastb" in message
    assert error_of(client.create_volume, Size=1, AvailabilityZone="sim-easta", Iops=3000)[:2] == (
        400,
        "InvalidParameterValue",
    )
    not_a_volume = [{"ResourceType": "instance", "Tags": [{"Key": "a", "Value": "b"}]}]
    code_and_message = error_of(
        client.create_volume, Size=1, AvailabilityZone="sim-easta", TagSpecifications=not_a_volume
    )[1:]
    assert code_and_message[0] == "InvalidParameterValue"
    assert "TagSpecification.1.ResourceType" in code_and_message[1]
    assert error_of(
        client.create_volume, Size=1, AvailabilityZone="sim-easta", SnapshotId="snap-1"
    )[1] == ("InvalidSnapshot.NotFound")
    assert error_of(client.create_volume, Size=1, AvailabilityZone="sim-easta", DryRun=True)[
        :2
    ] == (412, "DryRunOperation")
    assert client.describe_volumes()["Volumes"] == []  # the dry run wrote nothing

    # No Name tag: a generated name; other tags are labels.
    plain = client.create_volume(
        Size=2, AvailabilityZone="sim-eastb", TagSpecifications=[
            {"ResourceType": "volume", "Tags": [{"Key": "tier", "Value": "db"}]}
        ],
    )  # fmt: skip
    assert plain["VolumeType"] == "gp3"  # DEFAULT_VOLUME_TYPE: what the reconciler makes
    (name,) = [t["Value"] for t in plain["Tags"] if t["Key"] == "Name"]
    assert name.startswith("volume-")
    assert api_store.get(Volume, name, "team-a").metadata.labels == {"tier": "db"}

    # ClientToken: a retry answers the first volume; the token with other parameters is refused.
    first = client.create_volume(Size=3, AvailabilityZone="sim-easta", ClientToken="tok-1")
    retry = client.create_volume(Size=3, AvailabilityZone="sim-easta", ClientToken="tok-1")
    assert retry["VolumeId"] == first["VolumeId"]
    (volume_name,) = [t["Value"] for t in first["Tags"] if t["Key"] == "Name"]
    stored = api_store.get(Volume, volume_name, "team-a")
    assert stored.metadata.annotations[CLIENT_TOKEN_ANNOTATION] == "tok-1"
    assert error_of(
        client.create_volume, Size=4, AvailabilityZone="sim-easta", ClientToken="tok-1"
    )[1] == ("IdempotentParameterMismatch")
    named = client.create_volume(
        Size=3, AvailabilityZone="sim-easta", ClientToken="tok-2", TagSpecifications=tags("logs")
    )
    assert (
        client.create_volume(
            Size=3,
            AvailabilityZone="sim-easta",
            ClientToken="tok-2",
            TagSpecifications=tags("logs"),
        )["VolumeId"]
        == named["VolumeId"]
    )
    # A Name taken by a volume made without that token is a name taken.
    assert error_of(
        client.create_volume, Size=3, AvailabilityZone="sim-easta", ClientToken="tok-3",
        TagSpecifications=tags("logs"),
    )[1] == "InvalidParameterValue"  # fmt: skip
    assert len(client.describe_volumes()["Volumes"]) == 3

    # Attach refusals, judged before anything is written: no reconciler runs, so every volume
    # is still creating.
    far = put_instance(api_store, "far", placement={"zone": "sim-eastb"})
    near = put_instance(api_store, "near", placement={"zone": "sim-easta"})
    creating = first["VolumeId"]
    assert error_of(client.attach_volume, VolumeId=creating, InstanceId=near, Device="/dev/sdf")[
        1
    ] == ("IncorrectState")
    volume_made = api_store.get(Volume, volume_name, "team-a")
    volume_made.status.phase = "Available"  # as the reconciler would write it
    api_store.update_status(volume_made)
    assert error_of(client.attach_volume, VolumeId=creating, InstanceId=far, Device="/dev/sdf")[
        1
    ] == ("InvalidVolume.ZoneMismatch")
    assert error_of(
        client.attach_volume, VolumeId=creating, InstanceId="i-00000000000000000", Device="/dev/sdf"
    )[1] == ("InvalidInstanceID.NotFound")
    assert error_of(
        client.attach_volume, VolumeId=creating, InstanceId=near, Device="/dev/sdf", DryRun=True
    )[1] == ("DryRunOperation")
    assert client.attach_volume(VolumeId=creating, InstanceId=near, Device="/dev/sdf")["State"] == (
        "attaching"
    )
    # Asked for, not yet made: in-use/attaching, and neither deletable nor re-attachable.
    (attachment,) = described(client, creating)["Attachments"]
    assert (attachment["State"], attachment["InstanceId"]) == ("attaching", near)
    assert error_of(client.delete_volume, VolumeId=creating)[1] == "VolumeInUse"
    assert error_of(client.detach_volume, VolumeId=creating, InstanceId=far)[1] == (
        "InvalidAttachment.NotFound"
    )
    assert client.detach_volume(VolumeId=creating)["State"] == "detaching"
    assert described(client, creating)["State"] == "available"


def test_filters_pages_and_tenants(ec2_server: HttpServer) -> None:
    alice, bob = ec2(ec2_server, ALICE), ec2(ec2_server, BOB)
    made = {
        f"disk-{i}": alice.create_volume(
            Size=10 + i,
            AvailabilityZone="sim-easta" if i % 2 else "sim-eastb",
            TagSpecifications=tags(f"disk-{i}", role="db" if i < 3 else "web"),
        )["VolumeId"]
        for i in range(7)
    }

    def ids(**kwargs: Any) -> list[str]:
        return sorted(v["VolumeId"] for v in alice.describe_volumes(**kwargs)["Volumes"])

    def by(name: str, *values: str) -> list[str]:
        return ids(Filters=[{"Name": name, "Values": list(values)}])

    assert by("tag:role", "db") == sorted(made[f"disk-{i}"] for i in range(3))
    assert by("tag:Name", "disk-4", "disk-6") == sorted([made["disk-4"], made["disk-6"]])
    assert by("tag-key", "role") == sorted(made.values())
    assert by("tag-value", "w?b") == sorted(made[f"disk-{i}"] for i in range(3, 7))
    assert by("availability-zone", "sim-easta") == sorted(made[f"disk-{i}"] for i in (1, 3, 5))
    assert by("size", "12") == [made["disk-2"]]
    assert by("status", "creating") == sorted(made.values())
    assert by("status", "available") == []
    assert by("volume-type", "gp3") == sorted(made.values())
    assert by("attachment.status", "attached") == []
    together = ids(
        Filters=[
            {"Name": "tag:role", "Values": ["web"]},
            {"Name": "availability-zone", "Values": ["sim-eastb"]},
        ]
    )
    assert together == sorted([made["disk-4"], made["disk-6"]])
    assert error_of(alice.describe_volumes, Filters=[{"Name": "colour", "Values": ["x"]}])[1] == (
        "InvalidParameterValue"
    )

    first = alice.describe_volumes(MaxResults=5)
    second = alice.describe_volumes(MaxResults=5, NextToken=first["NextToken"])
    assert len(first["Volumes"]) == 5 and "NextToken" not in second
    paged = [v["VolumeId"] for v in first["Volumes"] + second["Volumes"]]
    assert paged == sorted(made.values())
    assert error_of(alice.describe_volumes, VolumeIds=[made["disk-0"]], MaxResults=5)[1] == (
        "InvalidParameterCombination"
    )
    unknown = "vol-00000000000000000"
    status, code, message = error_of(alice.describe_volumes, VolumeIds=[made["disk-0"], unknown])
    assert (status, code) == (400, "InvalidVolume.NotFound") and unknown in message

    # Another tenant's ids are simply not there: NotFound, never a 403.
    assert bob.describe_volumes()["Volumes"] == []
    theirs = made["disk-0"]
    assert error_of(bob.describe_volumes, VolumeIds=[theirs])[1] == "InvalidVolume.NotFound"
    assert error_of(bob.delete_volume, VolumeId=theirs)[1] == "InvalidVolume.NotFound"
    assert error_of(bob.detach_volume, VolumeId=theirs)[1] == "InvalidVolume.NotFound"
    mine = bob.create_volume(Size=1, AvailabilityZone="sim-easta")["VolumeId"]
    assert [v["VolumeId"] for v in bob.describe_volumes()["Volumes"]] == [mine]
    assert error_of(alice.describe_volumes, VolumeIds=[mine])[1] == "InvalidVolume.NotFound"
    assert error_of(bob.attach_volume, VolumeId=theirs, InstanceId="i-1", Device="/dev/sdf")[1] == (
        "InvalidVolume.NotFound"
    )


def test_any_text_is_a_volume_name_tag(ec2_server: HttpServer, api_store: Store) -> None:
    """As in EC2, any text is a Name (it used to be refused): a generated name, the text
    answered as the Name tag; with a ClientToken the name still follows from the token."""
    client = ec2(ec2_server, ALICE)
    made = client.create_volume(
        Size=1, AvailabilityZone="sim-easta", TagSpecifications=tags("acme/data", tier="db")
    )
    assert {t["Key"]: t["Value"] for t in made["Tags"]} == {"Name": "acme/data", "tier": "db"}
    again = client.create_volume(
        Size=1, AvailabilityZone="sim-easta", TagSpecifications=tags("acme/data"),
        ClientToken="retry-me",
    )  # fmt: skip
    retried = client.create_volume(
        Size=1, AvailabilityZone="sim-easta", TagSpecifications=tags("acme/data"),
        ClientToken="retry-me",
    )  # fmt: skip
    assert retried["VolumeId"] == again["VolumeId"]
    found = client.describe_volumes(Filters=[{"Name": "tag:Name", "Values": ["acme/data"]}])
    assert sorted(v["VolumeId"] for v in found["Volumes"]) == sorted(
        [made["VolumeId"], again["VolumeId"]]
    )
    assert len(api_store.list(Volume, "team-a").items) == 2
