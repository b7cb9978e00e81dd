"""Each EC2 portability fix, shown needed against the real moto_server 5.0.28 and shown working.

Stock libcloud is driven side by side with ``PortableEC2NodeDriver``; if a future libcloud or
moto stops needing a fix, the "stock" half of its test fails and says so.
"""

from __future__ import annotations

import pytest
from libcloud.compute.base import NodeImage, NodeSize
from libcloud.compute.drivers.ec2 import EC2NodeDriver

from providers.ec2 import Ec2ApiError, PortableEC2NodeDriver
from providers.ec2.driver import PortableEC2Connection, ResourceRef
from tests.integration.providers.conftest import REGION, MotoServer

CREDS = ("AKIDSKYBROKERTEST", "not-a-secret")


def _kwargs(server: MotoServer) -> dict[str, object]:
    return {
        "region": REGION,
        "host": "127.0.0.1",
        "port": server.port,
        "secure": False,
        "signature_version": "4",
    }


class _NamespaceFixedOnly(EC2NodeDriver):  # type: ignore[misc]
    """Stock libcloud apart from the namespace fix, to isolate the other quirks."""

    connectionCls = PortableEC2Connection


@pytest.fixture
def drivers(moto_server: MotoServer) -> tuple[EC2NodeDriver, EC2NodeDriver, PortableEC2NodeDriver]:
    moto_server.reset()
    stock = EC2NodeDriver(*CREDS, **_kwargs(moto_server))
    half = _NamespaceFixedOnly(*CREDS, **_kwargs(moto_server))
    fixed = PortableEC2NodeDriver(*CREDS, **_kwargs(moto_server))
    return stock, half, fixed


def _launch(driver: PortableEC2NodeDriver, image: str, **kwargs: object) -> object:
    size = NodeSize("t3.micro", "t3.micro", 0, 0, 0, 0, driver)
    return driver.create_node(name="q", size=size, image=NodeImage(image, "", driver), **kwargs)


@pytest.fixture
def image(drivers: tuple[EC2NodeDriver, EC2NodeDriver, PortableEC2NodeDriver]) -> str:
    image_id: str = drivers[2].ex_register_image("quirk-image", description="q").id
    return image_id


def test_ec2_foreign_namespace_makes_stock_libcloud_see_nothing(drivers, image) -> None:  # type: ignore[no-untyped-def]
    stock, _, fixed = drivers
    _launch(fixed, image)
    assert stock.list_nodes() == []  # moto answers in the 2013-10-15 namespace
    assert stock.ex_list_availability_zones() == []
    assert len(fixed.list_nodes()) == 1
    assert len(fixed.ex_list_availability_zones()) >= 3


def test_ec2_tag_indices_start_at_one(drivers, image) -> None:  # type: ignore[no-untyped-def]
    _, half, fixed = drivers
    node = _launch(fixed, image)
    with pytest.raises(Ec2ApiError) as err:
        half.ex_create_tags(node, {"k": "v"})  # stock sends ResourceId.0
    assert err.value.code == "MissingParameter"
    fixed.ex_create_tags(node, {"k": "v", "k2": "v2"})
    fixed.ex_delete_tags(node, {"k2": None})
    assert fixed.list_nodes()[0].extra["tags"] == {"Name": "q", "k": "v"}


def test_ec2_detach_volume_needs_instance_id(drivers, image) -> None:  # type: ignore[no-untyped-def]
    _, half, fixed = drivers
    node = _launch(fixed, image, location=None)
    zone = fixed.list_nodes()[0].extra["availability"]
    volume = fixed.ex_create_tagged_volume(1, zone, "gp3", {"Name": "v"})
    fixed.attach_volume(node, volume, "/dev/sdf")
    with pytest.raises(Ec2ApiError) as err:
        half.detach_volume(ResourceRef(volume.id))  # no InstanceId: moto fails with a 500
    assert err.value.status == 500
    fixed.detach_volume(ResourceRef(volume.id), ex_instance_id=node.id)  # type: ignore[attr-defined]
    (after,) = fixed.list_volumes(ex_filters={"volume-id": volume.id})
    assert after.extra.get("instance_id") is None


def test_ec2_instance_listing_pages_at_100_reservations(drivers, image) -> None:  # type: ignore[no-untyped-def]
    _, half, fixed = drivers
    for _ in range(101):
        _launch(fixed, image)
    assert len(half.list_nodes()) == 100  # stock reads the first page only
    assert len(fixed.list_nodes()) == 101


def test_ec2_client_token_is_ignored_so_idempotency_needs_the_tag(drivers, image) -> None:  # type: ignore[no-untyped-def]
    _, _, fixed = drivers
    first = _launch(fixed, image, ex_clienttoken="same-token")
    second = _launch(fixed, image, ex_clienttoken="same-token")
    assert first.id != second.id  # type: ignore[attr-defined]  # AWS would return the same


def test_ec2_boolean_returns_are_unreliable(drivers, image) -> None:  # type: ignore[no-untyped-def]
    _, _, fixed = drivers
    node = _launch(fixed, image)
    assert fixed.destroy_node(node) is False  # libcloud says False ...
    assert fixed.list_nodes()[0].extra["status"] == "terminated"  # ... but it worked


def test_ec2_stock_libcloud_tags_volumes_after_creating_them(drivers) -> None:  # type: ignore[no-untyped-def]
    _, half, fixed = drivers
    volume = fixed.ex_create_tagged_volume(1, f"{REGION}a", "gp3", {"skybroker/token": "t"})
    assert volume.extra["tags"] == {"skybroker/token": "t"}  # tagged in the create call
    with pytest.raises(Ec2ApiError):  # the volume is made, then the separate tag call fails
        half.create_volume(1, "v", location=half.list_locations()[0])
    untagged = [v for v in fixed.list_volumes() if not v.extra["tags"]]
    assert len(untagged) == 1  # a leak no token lookup can ever find
