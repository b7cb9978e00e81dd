"""Volume reconciler: placed beside its instance, attached only once it runs, drift, delete order.

The Instance reconciler is mostly not running here: those tests create the VM in the simulated
cloud and write the instance's status as that reconciler would, which is all a volume reads.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from api_types import Instance, InstancePhase, InstancePlacement, PowerState, Volume
from controller.store.objects import Store
from providers import ImageId, InstanceCreate, ResourceTags, SizeId, ZoneName
from reconcilers import instance, volume
from reconcilers._common import TRANSITION_VIEW_SECONDS
from tests.integration.reconcilers.harness import (
    API,
    Harness,
    instance_manifest,
    pool_manifest,
    pool_of_two,
    sim_account,
)

ZONE = "sim-eastb"

# The transition is seen through views at most TRANSITION_VIEW_SECONDS old, or else only at
# the next inventory interval: an interval far beyond the bound, and a bound far beyond the
# few seconds it takes, so a loaded machine cannot make this fail and a regression always does.
SLOW_INVENTORY_SECONDS = 600.0
SEEN_WITHIN_SECONDS = 10 * (3.0 + TRANSITION_VIEW_SECONDS)


def volume_manifest(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Volume",
        "metadata": {"name": name, "namespace": "acme"},
        "spec": {"pool": "general", "sizeGiB": 10, **spec},
    }


def run_instance(harness: Harness, name: str, phase: InstancePhase) -> str:
    """Create the VM in the cloud (once) and record it in the instance's status."""
    instance = harness.store.get(Instance, name, "acme")
    cloud = harness.provider("sim-a").inner.create_instance(
        InstanceCreate(
            tags=ResourceTags(name=name, uid=str(instance.metadata.uid), token=f"t-{name}"),
            size=SizeId("s1.small"),
            image=ImageId("img-ubuntu-2204"),
            zone=ZoneName(ZONE),
        )
    )
    instance.status.placement = InstancePlacement(
        account="sim-a", region="sim-east", zone=ZONE, member="sim-a", size="s1.small"
    )
    instance.status.provider_id = cloud.id
    instance.status.phase = phase
    harness.store.update_status(instance)
    return str(cloud.id)


def condition_reason(obj: Volume, type_: str) -> str | None:
    condition = obj.status.condition(type_)
    return condition.reason if condition else None


def test_attach_waits_for_running_instance_reattaches_and_detaches_before_delete(
    harness: Harness,
) -> None:
    harness.apply(
        sim_account("sim-a", volume_seconds=0.1),
        pool_manifest("general", [{"account": "sim-a"}]),
        instance_manifest("web-1", pool="general"),
    )
    harness.start(volume.register)
    harness.apply(volume_manifest("data-1", attachTo={"instance": "web-1", "device": "/dev/sdf"}))
    harness.wait_for(
        Volume, "data-1", "acme", lambda v: condition_reason(v, "Scheduled") == "WaitingForInstance"
    )
    assert harness.get(Volume, "data-1", "acme").status.provider_id is None  # type: ignore[union-attr]

    vm = run_instance(harness, "web-1", InstancePhase.PROVISIONING)
    waiting = harness.wait_for(
        Volume,
        "data-1",
        "acme",
        lambda v: (
            v.status.phase == "Available"
            and condition_reason(v, "Attached") == "WaitingForInstance"
        ),
    )
    assert waiting.status.placement is not None and waiting.status.placement.zone == ZONE

    instance = harness.store.get(Instance, "web-1", "acme")
    instance.status.phase = InstancePhase.RUNNING
    harness.store.update_status(instance)
    attached = harness.wait_for(Volume, "data-1", "acme", lambda v: v.status.phase == "Attached")
    assert attached.status.attached_to is not None
    assert (attached.status.attached_to.instance, attached.status.attached_to.device) == (
        "web-1",
        "/dev/sdf",
    )
    cloud = harness.provider("sim-a").inner
    (disk,) = cloud.list_volumes()
    assert (disk.id, disk.attached_to) == (attached.status.provider_id, vm)

    # Detached behind skybroker's back: reattached at the next look.
    cloud.detach_volume(disk.id)
    harness.eventually(
        lambda: [v.attached_to for v in cloud.list_volumes()] == [vm],
        20,
        "reattached",
    )

    harness.store.delete(Volume, "data-1", "acme")
    harness.wait_gone(Volume, "data-1", "acme")
    assert cloud.list_volumes() == []


def test_volume_without_attachment_is_available(harness: Harness) -> None:
    harness.apply(
        sim_account("sim-a", volume_seconds=0.1), pool_manifest("general", [{"account": "sim-a"}])
    )
    harness.start(volume.register)
    harness.apply(volume_manifest("scratch", sizeGiB=5, type="io2"))
    ready = harness.wait_for(Volume, "scratch", "acme", lambda v: v.status.phase == "Available")
    (disk,) = harness.provider("sim-a").inner.list_volumes()
    assert (disk.id, disk.size_gib, disk.volume_type) == (ready.status.provider_id, 5, "io2")
    assert ready.metadata.finalizers == [volume.FINALIZER]


def test_a_volume_being_created_is_seen_ready_long_before_the_inventory_interval(
    store: Store, tmp_path: Path
) -> None:
    """With an inventory interval of ten minutes, a volume that takes 3 s to create is
    seen Available within a few seconds of it: a volume being created reads a view at most
    TRANSITION_VIEW_SECONDS old."""
    harness = Harness(store, tmp_path, inventory_interval=SLOW_INVENTORY_SECONDS)
    try:
        harness.apply(
            sim_account("sim-a", volume_seconds=3.0),
            pool_manifest("general", [{"account": "sim-a"}]),
        )
        harness.start(volume.register)
        started = time.monotonic()
        harness.apply(volume_manifest("slow", sizeGiB=5))
        harness.wait_for(
            Volume,
            "slow",
            "acme",
            lambda v: v.status.phase == "Available",
            timeout=2 * SEEN_WITHIN_SECONDS,
        )
        assert time.monotonic() - started < SEEN_WITHIN_SECONDS
    finally:
        harness.stop()


@pytest.mark.parametrize("policy", ["RoundRobin", "LeastLoaded"])
def test_volumes_created_at_once_spread_over_the_pool_by_its_policy(
    harness: Harness, policy: str
) -> None:
    harness.apply(*pool_of_two(policy))
    harness.start(volume.register)
    harness.apply(*(volume_manifest(f"disk-{i}") for i in range(4)))
    placed = [
        harness.wait_for(Volume, f"disk-{i}", "acme", lambda v: v.status.phase == "Available")
        for i in range(4)
    ]
    spread = Counter(v.status.placement.member for v in placed if v.status.placement)
    assert spread == {"sim-a": 2, "sim-b": 2}
    assert [len(harness.cloud(a).list_volumes()) for a in ("sim-a", "sim-b")] == [2, 2]


def test_an_attached_volume_stays_attached_while_its_instance_is_stopped_and_started(
    harness: Harness,
) -> None:
    """Stopping keeps volumes attached, as EC2 does (DESIGN §3): through the real Instance
    reconciler, stop then start, the volume never leaves the VM, in status or in the cloud."""
    harness.apply(
        sim_account("sim-a", volume_seconds=0.1, stop_seconds=0.2),
        pool_manifest("general", [{"account": "sim-a"}]),
        instance_manifest("web-1", pool="general"),
        volume_manifest("data-1", attachTo={"instance": "web-1", "device": "/dev/sdf"}),
    )
    harness.start(instance.register, volume.register)
    attached = harness.wait_for(Volume, "data-1", "acme", lambda v: v.status.phase == "Attached")
    vm = harness.get(Instance, "web-1", "acme").status.provider_id  # type: ignore[union-attr]
    cloud = harness.cloud("sim-a")

    def set_power(state: PowerState) -> None:
        web = harness.store.get(Instance, "web-1", "acme")
        web.spec.power_state = state
        harness.store.update(web)

    def attachment_message(v: Volume) -> str:
        condition = v.status.condition("Attached")
        return condition.message if condition is not None and condition.status == "True" else ""

    set_power(PowerState.STOPPED)
    harness.wait_for(Instance, "web-1", "acme", lambda i: i.status.phase == InstancePhase.STOPPED)
    # The volume reconciler has seen the stopped instance: and left the volume on it.
    stopped = harness.wait_for(
        Volume, "data-1", "acme", lambda v: "kept while it is Stopped" in attachment_message(v)
    )
    assert stopped.status.phase == "Attached"
    assert stopped.status.attached_to == attached.status.attached_to
    assert [v.attached_to for v in cloud.list_volumes()] == [vm]

    set_power(PowerState.RUNNING)
    harness.wait_for(Instance, "web-1", "acme", lambda i: i.status.phase == InstancePhase.RUNNING)
    running = harness.wait_for(
        Volume, "data-1", "acme", lambda v: attachment_message(v) == "/dev/sdf on instance web-1"
    )
    assert running.status.phase == "Attached"
    assert [v.attached_to for v in cloud.list_volumes()] == [vm]
    assert "Detached" not in harness.event_reasons(Volume.PLURAL, "data-1", "acme")


def test_a_create_the_cloud_refuses_is_failed_with_the_reason(harness: Harness) -> None:
    harness.apply(
        sim_account("sim-a", quota_volumes=0), pool_manifest("general", [{"account": "sim-a"}])
    )
    harness.start(volume.register)
    harness.apply(volume_manifest("big"))
    failed = harness.wait_for(Volume, "big", "acme", lambda v: v.status.phase == "Failed")
    ready = failed.status.condition("Ready")
    assert ready is not None and (ready.status, ready.reason) == ("False", "ProviderQuotaExceeded")
    assert "volume quota of the account reached" in ready.message
    harness.wait_for_event(Volume.PLURAL, "big", "acme", "ProviderQuotaExceeded")


def test_attach_to_an_instance_that_does_not_exist_says_not_found(harness: Harness) -> None:
    """Unlike an instance that exists but is not placed yet: named as missing, with an event;
    the instance created under that name then takes the volume where it is placed."""
    harness.apply(
        sim_account("sim-a", volume_seconds=0.1), pool_manifest("general", [{"account": "sim-a"}])
    )
    harness.start(volume.register)
    harness.apply(volume_manifest("data-1", attachTo={"instance": "ghost", "device": "/dev/sdf"}))
    missing = harness.wait_for(
        Volume, "data-1", "acme", lambda v: condition_reason(v, "Scheduled") == "InstanceNotFound"
    )
    scheduled = missing.status.condition("Scheduled")
    assert scheduled is not None
    assert scheduled.message == "instance ghost not found in namespace acme"
    assert missing.status.phase == "Pending"
    harness.wait_for_event(Volume.PLURAL, "data-1", "acme", "InstanceNotFound")

    harness.apply(instance_manifest("ghost", pool="general"))
    harness.wait_for(
        Volume, "data-1", "acme", lambda v: condition_reason(v, "Scheduled") == "WaitingForInstance"
    )
