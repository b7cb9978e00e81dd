"""A broker of brokers: skybroker's ``ec2`` provider (libcloud's EC2 driver) converging instances
on another skybroker's EC2 front door, and through it on the simulated cloud behind that one
(issue #15, DESIGN §5 and §12).

Inner skybroker: the API server over ``api_store`` (AccessKeys resolved from the store, as in
production) and the instance reconciler on simulated account ``sim-a`` of pool ``general``;
``bob`` (edit in ``team-b``, reader of pools and hardware profiles) has access key ``ci``.
Outer skybroker: a Harness on a store prefix of its own, with ProviderAccount ``inner`` of
driver ``ec2`` whose endpoint is the inner ``/ec2/``, region ``general`` (the inner pool: no
AWS region) and bob's key as its credentials, mapping ``ubuntu-22.04`` to the inner logical
image of that name; its Instances ask for size ``small``, the inner HardwareProfile that the
inner DescribeInstanceTypes offers. A second test takes an outer Subnet and Firewall through
too (VPC, subnet and security group made through the front door), a third a Volume
attached to an Instance.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from api_types import (
    Firewall,
    Instance,
    InstancePhase,
    ProviderAccount,
    Subnet,
    Volume,
    registry,
)
from api_types.common import SYSTEM_NAMESPACE
from apiserver import ApiOptions
from apiserver.ec2.resources import NAME_ANNOTATION
from controller.store.etcd import EtcdClient
from controller.store.keys import KeyLayout
from controller.store.objects import Store
from providers.types import ImageId, InstanceCreate, ResourceTags, SizeId
from reconcilers import account, firewall, instance, pool, subnet, volume
from skybroker.apiserver import HttpServer
from tests.integration.apiserver.conftest import TOKEN_FILE
from tests.integration.reconcilers.harness import (
    Harness,
    instance_manifest,
    pool_manifest,
    sim_account,
)
from tests.integration.reconcilers.test_firewall import HTTP, firewall_manifest
from tests.integration.reconcilers.test_subnet import subnet_manifest
from tests.integration.reconcilers.test_volume import volume_manifest
from tests.waiting import eventually

API = "skybroker.io/v1alpha1"
KEY_ID, SECRET = "AKIABROKEROFBROKERS1", "inner-secret-access-key"
ZONES = ["sim-easta", "sim-eastb"]
#: Convergence through two brokers on a loaded 2-core machine: a failure detector only.
CONVERGE = 180.0

INNER: list[dict[str, Any]] = [
    sim_account("sim-a", volume_seconds=0.1),
    pool_manifest("general", [{"account": "sim-a", "zones": ZONES}]),
    {"kind": "HardwareProfile", "metadata": {"name": "small"},
     "spec": {"cpu": {"min": 1, "max": 2}, "memoryMiB": {"min": 1024}}},
    {"kind": "ClusterRole", "metadata": {"name": "catalogue-reader"},
     "rules": [{"apiGroups": ["skybroker.io"], "resources": ["pools", "hardwareprofiles"],
                "verbs": ["get", "list"]}]},
    {"kind": "ClusterRoleBinding", "metadata": {"name": "catalogue"},
     "roleRef": {"kind": "ClusterRole", "name": "catalogue-reader"},
     "subjects": [{"kind": "User", "name": "bob"}]},
    {"kind": "Secret", "metadata": {"name": "ak-ci", "namespace": SYSTEM_NAMESPACE},
     "stringData": {"secretAccessKey": SECRET}},
    {"kind": "AccessKey", "metadata": {"name": "ci"},
     "spec": {"accessKeyId": KEY_ID, "user": "bob", "namespace": "team-b",
              "secretRef": {"name": "ak-ci"}}},
]  # fmt: skip


def _create(store: Store, manifests: list[dict[str, Any]]) -> None:
    for manifest in manifests:
        store.create(registry.parse_object({"apiVersion": API, **manifest}))


def _outer_account(endpoint: str) -> list[dict[str, Any]]:
    return [
        {"apiVersion": API, "kind": "Secret",
         "metadata": {"name": "inner", "namespace": SYSTEM_NAMESPACE},
         "stringData": {"key": KEY_ID, "secret": SECRET}},
        # The front door has no placement groups (DESIGN §12's actions).
        {"apiVersion": API, "kind": "ProviderAccount",
         "metadata": {"name": "inner",
                      "annotations": {"options.skybroker.io/placement_groups": "false"}},
         "spec": {"driver": "ec2", "region": "general", "endpoint": endpoint,
                  "credentialsRef": {"name": "inner"},
                  "images": {"ubuntu-22.04": "ubuntu-22.04"}}},
        pool_manifest("brokered", [{"account": "inner"}]),
    ]  # fmt: skip


@pytest.fixture
def inner(api_store: Store, tmp_path: Path) -> Iterator[tuple[HttpServer, Harness]]:
    """The inner API server (keys from its store) and its instance reconciler."""
    _create(api_store, INNER)
    token_file = tmp_path / "tokens.csv"
    token_file.write_text(TOKEN_FILE)
    http = HttpServer(api_store, token_file, "127.0.0.1:0", ApiOptions())
    http.start()
    cloud = tmp_path / "inner-cloud"
    cloud.mkdir()
    controller = Harness(api_store, cloud)
    controller.start(instance.register, subnet.register, firewall.register, volume.register)
    yield http, controller
    controller.stop()
    http.stop()


@pytest.fixture
def outer(etcd_client: EtcdClient, tmp_path: Path) -> Iterator[Harness]:
    """The outer controller, on a store prefix of its own (another skybroker)."""
    store = Store(etcd_client, KeyLayout(f"/t-outer-{uuid.uuid4().hex[:12]}"))
    cloud = tmp_path / "outer-cloud"
    cloud.mkdir()
    running = Harness(store, cloud)
    yield running
    running.stop()


def _key_works(client: Any) -> bool:
    """The inner server resolves the key (its AccessKey informer has synced)."""
    try:
        client.describe_regions()
    except ClientError:
        return False
    return True


def _brokered(server: HttpServer, outer: Harness, *registers: Any) -> Any:
    """The outer account on the inner front door, once the inner server knows the key; the
    outer controllers started with ``registers``; a boto3 client of the key."""
    endpoint = f"{server.url}/ec2/"
    client = boto3.client(
        "ec2",
        endpoint_url=endpoint,
        region_name="general",
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        config=Config(retries={"max_attempts": 1}),
    )
    eventually(lambda: _key_works(client), CONVERGE, "the inner server never knew the key")
    outer.apply(*_outer_account(endpoint))
    outer.start(*registers)
    return client


def _running(obj: Instance) -> bool:
    return obj.status.phase == InstancePhase.RUNNING


def test_a_broker_converges_instances_on_another_brokers_front_door(
    inner: tuple[HttpServer, Harness], api_store: Store, outer: Harness
) -> None:
    server, controller = inner
    client = _brokered(
        server, outer, partial(account.register, probe_interval=0.5), pool.register,
        instance.register,
    )  # fmt: skip
    # The account's health probe lists the inner pool's zones as the region's.
    outer.wait_for(ProviderAccount, "inner", None, lambda a: a.status.zones == ZONES, CONVERGE)
    # Its catalogue: the inner HardwareProfile as a size (DescribeInstanceTypes: least vCPUs
    # and memory, no price), the inner logical image under its own id.
    [small] = outer.cloud("inner").list_sizes()
    assert (small.id, small.cpu, small.memory_mib, small.arch) == ("small", 1, 1024, "x86_64")
    assert small.price_per_hour is None
    assert [image.id for image in outer.cloud("inner").list_images()] == ["ubuntu-22.04"]
    names = ["web-1", "web-2"]
    outer.apply(*(instance_manifest(n, pool="brokered", hardware={"size": "small"}) for n in names))
    web = {n: outer.wait_for(Instance, n, "acme", _running, CONVERGE) for n in names}

    # Inside: one running Instance per outer one, in the key's namespace, named by generation
    # (the provider's Name tag, "acme/web-1", is no object name) and tagged back as asked.
    def inner_running() -> list[Instance]:
        return [i for i in api_store.list(Instance, "team-b").items if _running(i)]

    eventually(lambda: len(inner_running()) == 2, CONVERGE, lambda: repr(inner_running()))
    by_name_tag = {i.metadata.annotations[NAME_ANNOTATION]: i for i in inner_running()}
    assert set(by_name_tag) == {"acme/web-1", "acme/web-2"}
    for name in names:
        inside = by_name_tag[f"acme/{name}"]
        assert inside.metadata.labels["skybroker/uid"] == web[name].metadata.uid
        assert inside.spec.hardware.profile == "small" and inside.spec.image == "ubuntu-22.04"
        assert inside.status.provider_id is not None
    vms = {vm.id for vm in controller.cloud("sim-a").list_instances()}
    assert vms == {str(i.status.provider_id) for i in inner_running()}

    # The outer account sees the inner instances as its cloud: ids, tags, sizes, zones.
    described = {
        i["InstanceId"]: i
        for r in client.describe_instances()["Reservations"]
        for i in r["Instances"]
    }
    for name in names:
        placement = web[name].status.placement
        assert placement is not None and placement.size == "small" and placement.zone in ZONES
        seen = described[str(web[name].status.provider_id)]
        assert seen["State"]["Name"] == "running"
        assert {"Key": "Name", "Value": f"acme/{name}"} in seen["Tags"]

    # A create retried with web-2's token (a controller killed after the call) adopts web-2's
    # inner instance: the token is looked up by tag (DescribeTags, then DescribeInstances by
    # instance-id) and nothing is made twice.
    token = str(web["web-2"].status.create_token)
    again = outer.cloud("inner").create_instance(
        InstanceCreate(
            tags=ResourceTags("acme/web-2", str(web["web-2"].metadata.uid), token),
            size=SizeId("small"),
            image=ImageId("ubuntu-22.04"),
        )
    )
    assert again.id == web["web-2"].status.provider_id and again.token == token
    assert len(api_store.list(Instance, "team-b").items) == 2

    # Deleting an outer Instance terminates the inner one, and the simulated VM with it.
    outer.store.delete(Instance, "web-1", "acme")
    outer.wait_gone(Instance, "web-1", "acme", CONVERGE)
    eventually(
        lambda: [i.metadata.name for i in api_store.list(Instance, "team-b").items]
        == [by_name_tag["acme/web-2"].metadata.name],
        CONVERGE,
        lambda: repr(api_store.list(Instance, "team-b").items),
    )
    eventually(
        lambda: {vm.id for vm in controller.cloud("sim-a").list_instances()}
        == {str(by_name_tag["acme/web-2"].status.provider_id)},
        CONVERGE,
        "the inner VM of web-1 stays",
    )
    assert outer.get(Instance, "web-2", "acme") is not None


def test_networks_and_firewalls_through_another_broker(
    inner: tuple[HttpServer, Harness], api_store: Store, outer: Harness
) -> None:
    """An outer Subnet, Firewall and an Instance in both: the outer provider makes a VPC, a
    subnet and a security group through the inner front door (their Name tags
    ``acme/web`` are no names there), and the inner reconcilers realise them on its cloud."""
    server, controller = inner
    client = _brokered(server, outer, subnet.register, firewall.register, instance.register)
    outer.apply(
        subnet_manifest("web", "10.10.1.0/24", pool="brokered"),
        firewall_manifest("web", [HTTP]),
        instance_manifest("app", pool="brokered", hardware={"size": "small"},
                          subnetRef="web", firewallRefs=["web"]),
    )  # fmt: skip
    app = outer.wait_for(Instance, "app", "acme", _running, CONVERGE)
    web = outer.wait_for(Subnet, "web", "acme", lambda s: bool(s.status.provider_id), CONVERGE)
    realised = outer.wait_for(
        Firewall, "web", "acme", lambda f: len(f.status.realisations) == 1, CONVERGE
    )

    [seen] = [i for r in client.describe_instances()["Reservations"] for i in r["Instances"]]
    assert seen["InstanceId"] == app.status.provider_id
    assert seen["SubnetId"] == web.status.provider_id
    assert [g["GroupId"] for g in seen["SecurityGroups"]] == [
        realised.status.realisations[0].provider_id
    ]
    [inside] = api_store.list(Instance, "team-b").items
    eventually(
        lambda: _running(api_store.get(Instance, inside.metadata.name, "team-b")),
        CONVERGE,
        "the inner instance never ran",
    )
    [inner_subnet] = api_store.list(Subnet, "team-b").items
    assert inside.spec.subnet_ref == inner_subnet.metadata.name
    assert inner_subnet.spec.cidr == "10.10.1.0/24"
    groups = {g["GroupId"]: g for g in client.describe_security_groups()["SecurityGroups"]}
    rules = groups[realised.status.realisations[0].provider_id]["IpPermissions"]
    assert [(r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in rules] == [("tcp", 80, 80)]
    assert len(controller.cloud("sim-a").list_instances()) == 1

    outer.store.delete(Instance, "app", "acme")
    outer.wait_gone(Instance, "app", "acme", CONVERGE)
    eventually(lambda: api_store.list(Instance, "team-b").items == [], CONVERGE, "inner stays")


def test_a_volume_attached_through_another_broker(
    inner: tuple[HttpServer, Harness], api_store: Store, outer: Harness
) -> None:
    server, controller = inner
    client = _brokered(server, outer, volume.register, instance.register)
    outer.apply(
        instance_manifest("app", pool="brokered", hardware={"size": "small"}),
        volume_manifest("data", pool="brokered", sizeGiB=5,
                        attachTo={"instance": "app", "device": "/dev/sdf"}),
    )  # fmt: skip
    app = outer.wait_for(Instance, "app", "acme", _running, CONVERGE)
    data = outer.wait_for(Volume, "data", "acme", lambda v: v.status.phase == "Attached", CONVERGE)
    [seen] = client.describe_volumes(VolumeIds=[str(data.status.provider_id)])["Volumes"]
    assert {"Key": "Name", "Value": "acme/data"} in seen["Tags"] and seen["Size"] == 5
    assert [(a["InstanceId"], a["Device"]) for a in seen["Attachments"]] == [
        (app.status.provider_id, "/dev/sdf")
    ]
    [inside] = api_store.list(Volume, "team-b").items
    assert inside.spec.size_gib == 5
    eventually(
        lambda: any(v.attached_to for v in controller.cloud("sim-a").list_volumes()),
        CONVERGE,
        "the inner cloud's disk is never attached",
    )

    outer.store.delete(Volume, "data", "acme")
    outer.wait_gone(Volume, "data", "acme", CONVERGE)
    eventually(lambda: api_store.list(Volume, "team-b").items == [], CONVERGE, "inner stays")
