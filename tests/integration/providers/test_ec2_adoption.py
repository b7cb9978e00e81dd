"""The ec2 adapter against servers that implement less of the EC2 API than moto does.

It adopts only what carries the request's own create token, and its listings end.

Idempotency is by the ``skybroker/token`` tag (DescribeTags filtered by key and value, then a
Describe of those ids). An EC2-compatible server that ignores a filter answers with other
resources too; adopting the first of them would give two objects one cloud resource (the
Instances both Ready, one VM running). The proxy plays such a server on top of moto.
"""

from __future__ import annotations

import threading

import pytest
from libcloud.compute.base import NodeImage, NodeSize

from controller.errors import TerminalError
from providers.ec2 import Ec2Provider
from providers.types import InstanceCreate, VolumeCreate
from tests.integration.providers.conftest import SETUP_TIMEOUT, Cloud, MotoServer, ec2_config
from tests.integration.providers.helpers import tags

#: The Actions of a token lookup: the tag search and the Describe of what it found.
LOOKUP_ACTIONS = ("DescribeTags", "DescribeInstances", "DescribeVolumes")


@pytest.mark.parametrize("ignored", [("DescribeTags",), LOOKUP_ACTIONS], ids=["tags", "all"])
def test_ec2_create_instance_never_adopts_another_token(
    ec2_cloud: Cloud, ignored: tuple[str, ...]
) -> None:
    provider, proxy = ec2_cloud.provider, ec2_cloud.proxy
    assert proxy is not None
    first = provider.create_instance(
        InstanceCreate(tags=tags("a"), size=ec2_cloud.size, image=ec2_cloud.image)
    )
    proxy.ignore_params("Filter.", *ignored)
    second = provider.create_instance(
        InstanceCreate(tags=tags("b"), size=ec2_cloud.size, image=ec2_cloud.image)
    )
    again = provider.create_instance(
        InstanceCreate(tags=tags("b"), size=ec2_cloud.size, image=ec2_cloud.image)
    )
    proxy.clear()
    assert second.id != first.id
    assert (second.token, second.uid) == ("tok-b", "uid-b")
    assert again.id == second.id  # its own token is still adopted
    assert sorted(i.token or "" for i in provider.list_instances()) == ["tok-a", "tok-b"]


def test_ec2_create_volume_never_adopts_another_token(ec2_cloud: Cloud) -> None:
    provider, proxy = ec2_cloud.provider, ec2_cloud.proxy
    assert proxy is not None
    first = provider.create_volume(VolumeCreate(tags=tags("a"), size_gib=1, zone=ec2_cloud.zone))
    proxy.ignore_params("Filter.", *LOOKUP_ACTIONS)
    second = provider.create_volume(VolumeCreate(tags=tags("b"), size_gib=1, zone=ec2_cloud.zone))
    proxy.clear()
    assert second.id != first.id and second.token == "tok-b"


def test_ec2_detach_reads_the_volume_it_names(ec2_cloud: Cloud) -> None:
    provider, proxy = ec2_cloud.provider, ec2_cloud.proxy
    assert proxy is not None
    other = provider.create_volume(VolumeCreate(tags=tags("a"), size_gib=1, zone=ec2_cloud.zone))
    vm = provider.create_instance(
        InstanceCreate(
            tags=tags("vm"), size=ec2_cloud.size, image=ec2_cloud.image, zone=ec2_cloud.zone
        )
    )
    ours = provider.create_volume(VolumeCreate(tags=tags("b"), size_gib=1, zone=ec2_cloud.zone))
    provider.attach_volume(ours.id, vm.id, "/dev/sdf")
    proxy.ignore_params("Filter.", "DescribeVolumes")
    provider.detach_volume(ours.id)  # the unattached ``other`` comes first in the answer
    proxy.clear()
    attached = {v.id: v.attached_to for v in provider.list_volumes()}  # with the root volume
    assert (attached[other.id], attached[ours.id]) == (None, None)


def test_ec2_listing_fails_instead_of_looping_on_a_server_that_ignores_next_token(
    ec2_cloud: Cloud, moto_server: MotoServer
) -> None:
    """Such a server answers the first page and its token again and again; the listing must
    end (with a terminal error naming the problem), not hold the account's inventory."""
    setup = Ec2Provider(ec2_config(moto_server.port, timeout=str(SETUP_TIMEOUT)))
    size = NodeSize("t3.micro", "t3.micro", 0, 0, 0, 0, setup.driver)
    image = NodeImage(ec2_cloud.image, "", setup.driver)
    for n in range(101):  # one reservation each: moto pages DescribeInstances at 100
        setup.driver.create_node(name=f"vm-{n}", size=size, image=image)
    proxy = ec2_cloud.proxy
    assert proxy is not None
    proxy.ignore_params("NextToken", "DescribeInstances")
    outcome: list[BaseException | int] = []

    def listing() -> None:
        try:
            outcome.append(len(ec2_cloud.provider.list_instances()))
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)

    worker = threading.Thread(target=listing, daemon=True)
    worker.start()
    worker.join(60)
    proxy.clear()  # lets a listing that never ended (before the fix) finish
    assert outcome, "the listing never ended"
    (error,) = outcome
    assert isinstance(error, TerminalError) and error.code == "NextTokenRepeated"
