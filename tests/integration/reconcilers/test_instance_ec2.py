"""An Instance converges through the ec2 adapter against a real EC2 API server (moto_server).

Credentials come from a Secret in ``skybroker-system``; the image is registered in moto first
(AMI validation is on, as on AWS). The cloud is checked through a provider of its own.
"""

from __future__ import annotations

import pytest

from api_types import Instance, InstancePhase
from providers.ec2 import Ec2Provider
from reconcilers import instance
from tests.integration.providers.conftest import SETUP_TIMEOUT, MotoServer, ec2_config
from tests.integration.providers.helpers import FaultProxy
from tests.integration.reconcilers.harness import Harness, ec2_account, instance_manifest
from tests.integration.reconcilers.test_instance_ready import ReadyAudit


def test_instance_converges_and_is_deleted_on_ec2(
    harness: Harness, moto_server: MotoServer
) -> None:
    moto_server.reset()
    cloud = Ec2Provider(ec2_config(moto_server.port, timeout=str(SETUP_TIMEOUT)))
    image = cloud.driver.ex_register_image("skybroker-image", description="reconciler test")
    harness.apply(*ec2_account("aws", moto_server.url, image.id))
    harness.start(instance.register)
    harness.apply(instance_manifest("web-1", account="aws", hardware={"size": "t3.micro"}))
    web = harness.wait_for(
        Instance, "web-1", "acme", lambda i: i.status.phase == InstancePhase.RUNNING, 60
    )
    assert web.status.placement is not None and web.status.placement.size == "t3.micro"
    (vm,) = cloud.list_instances()
    assert (vm.id, vm.uid, vm.token) == (
        web.status.provider_id,
        web.metadata.uid,
        web.status.create_token,
    )
    assert vm.zone == web.status.placement.zone and vm.image == image.id
    harness.store.delete(Instance, "web-1", "acme")
    harness.wait_gone(Instance, "web-1", "acme", 60)
    assert cloud.list_instances() == []


def test_six_instances_get_six_vms_when_the_server_ignores_tag_filters(
    harness: Harness, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An EC2-compatible server without ``Filter.N`` on DescribeTags answers every token
    lookup with every tagged instance: each create must still adopt only its own token's VM,
    so six Ready Instances mean six VMs (it once reported 6 Ready on 5 VMs)."""
    moto_server.reset()
    cloud = Ec2Provider(ec2_config(moto_server.port, timeout=str(SETUP_TIMEOUT)))
    image = cloud.driver.ex_register_image("skybroker-image", description="reconciler test")
    proxy = FaultProxy(moto_server.port)
    try:
        proxy.ignore_params("Filter.", "DescribeTags")
        harness.apply(*ec2_account("aws", f"http://127.0.0.1:{proxy.port}", image.id))
        audit = ReadyAudit(harness, monkeypatch, "aws")
        harness.start(instance.register)
        names = [f"web-{n}" for n in range(6)]
        harness.apply(
            *(instance_manifest(n, account="aws", hardware={"size": "t3.micro"}) for n in names)
        )
        ready = [
            harness.wait_for(
                Instance, n, "acme", lambda i: i.status.phase == InstancePhase.RUNNING, 60
            )
            for n in names
        ]
    finally:
        proxy.close()
    vms = {vm.id: vm for vm in cloud.list_instances()}
    assert len({i.status.provider_id for i in ready}) == 6
    for web in ready:
        vm = vms[str(web.status.provider_id)]
        assert (vm.uid, vm.token) == (web.metadata.uid, web.status.create_token)
        assert vm.state.value in ("pending", "running")
    assert len(vms) == 6
    assert audit.listings > 0 and audit.violations == []
