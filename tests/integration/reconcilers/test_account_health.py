"""ProviderAccount health probe, Pool and HardwareProfile status: all follow the clouds."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from api_types import HardwareProfile, Instance, InstancePlacement, Pool, ProviderAccount
from controller.errors import TransientError
from controller.store.objects import Store
from providers import ResourceTags, VolumeCreate, ZoneName
from reconcilers import account, hardwareprofile, pool
from tests.integration.reconcilers.harness import (
    API,
    Harness,
    instance_manifest,
    pool_manifest,
    sim_account,
)


def ready_is(value: str, obj: ProviderAccount | HardwareProfile) -> bool:
    condition = obj.status.condition("Ready")
    return condition is not None and condition.status == value


def faults(harness: Harness, name: str):  # type: ignore[no-untyped-def]
    """The fault injector of the simulated cloud behind the controller's own provider."""
    return harness.provider(name).inner.faults  # type: ignore[attr-defined]


def test_ready_follows_the_cloud_and_pool_members_follow_ready(harness: Harness) -> None:
    harness.apply(
        sim_account("sim-a"),
        sim_account("sim-b"),
        pool_manifest("general", [{"account": "sim-a"}, {"account": "sim-b"}]),
        instance_manifest("web-1", pool="general"),
        instance_manifest("web-2", pool="general"),
        instance_manifest("web-3", pool="general"),
    )
    harness.start(partial(account.register, probe_interval=0.5), pool.register)
    healthy = harness.wait_for(ProviderAccount, "sim-a", None, partial(ready_is, "True"))
    assert healthy.status.error_rate == 0.0
    assert healthy.status.latency_ms is not None
    # The zones the probe saw, for the EC2 front door's DescribeAvailabilityZones.
    listed = harness.provider("sim-a").inner.list_zones()  # type: ignore[attr-defined]
    assert healthy.status.zones == sorted(zone.name for zone in listed if zone.available)
    assert healthy.status.zones

    # The instance reconciler's placement, done by hand: usage shows on the member, each
    # instance at its size (two of one size, one of another).
    for name, size in (("web-1", "s1.medium"), ("web-2", "s1.medium"), ("web-3", "s1.small")):
        instance = harness.store.get(Instance, name, "acme")
        instance.status.placement = InstancePlacement(
            account="sim-a", region="sim-east", zone="sim-easta", member="sim-a", size=size
        )
        harness.store.update_status(instance)
    counted = harness.wait_for(
        Pool, "general", None, lambda p: [m.instances for m in p.status.members] == [3, 0]
    )
    first, second = counted.status.members
    assert (first.member, first.instances, first.cpu, first.memory_mib) == ("sim-a", 3, 5, 10240)
    assert (second.member, second.instances, second.healthy) == ("sim-b", 0, True)

    # Four failed probes (about 2 s; fewer than the breaker's threshold of five): not Ready, so
    # placement skips it, and the member unhealthy; then back.
    faults(harness, "sim-b").fail_next("InternalError", op="list_zones", count=4)
    down = harness.wait_for(ProviderAccount, "sim-b", None, partial(ready_is, "False"))
    condition = down.status.condition("Ready")
    assert condition is not None and condition.reason == "InternalError"
    assert (down.status.error_rate or 0) > 0
    harness.wait_for(Pool, "general", None, lambda p: not p.status.members[1].healthy)
    harness.wait_for(ProviderAccount, "sim-b", None, partial(ready_is, "True"))
    harness.wait_for(Pool, "general", None, lambda p: p.status.members[1].healthy)


def test_failing_cloud_is_not_ready_and_counts_managed_resources(harness: Harness) -> None:
    harness.apply(sim_account("sim-a"), sim_account("broken", error_rate=1))
    harness.start(partial(account.register, probe_interval=0.3))
    broken = harness.wait_for(ProviderAccount, "broken", None, partial(ready_is, "False"))
    assert broken.status.error_rate == 1.0

    harness.wait_for(ProviderAccount, "sim-a", None, partial(ready_is, "True"))
    harness.provider("sim-a").inner.create_volume(  # type: ignore[attr-defined]
        VolumeCreate(
            tags=ResourceTags(name="v", uid="some-uid", token="t-v"),
            size_gib=1,
            zone=ZoneName("sim-easta"),
        )
    )
    harness.wait_for(
        ProviderAccount, "sim-a", None, lambda a: a.status.managed_resources.volumes == 1
    )


def test_an_open_circuit_shows_on_the_account_at_once_with_its_cause(
    store: Store, tmp_path: Path
) -> None:
    """The breaker opens on another reconciler's calls, long before the next probe or resync:
    the account says so within moments (Ready=False, CircuitOpen, the failure that opened it,
    a Warning event)."""
    harness = Harness(store, tmp_path, resync_period=600)
    try:
        harness.apply(sim_account("sim-a"))
        harness.start(partial(account.register, probe_interval=600))
        harness.wait_for(ProviderAccount, "sim-a", None, partial(ready_is, "True"))
        provider = harness.provider("sim-a")
        faults(harness, "sim-a").fail_next("InternalError", op="list_volumes", count=5)
        for _ in range(5):
            with pytest.raises(TransientError):
                provider.list_volumes()
        down = harness.wait_for(ProviderAccount, "sim-a", None, partial(ready_is, "False"))
        condition = down.status.condition("Ready")
        assert condition is not None and condition.reason == "CircuitOpen"
        assert "InternalError: injected fault on list_volumes" in condition.message
        harness.wait_for_event("provideraccounts", "sim-a", None, "CircuitOpen")
    finally:
        harness.stop()


def test_hardware_profile_reports_the_size_per_account(harness: Harness) -> None:
    def profile(name: str, **spec: object) -> dict[str, object]:
        return {
            "apiVersion": API,
            "kind": "HardwareProfile",
            "metadata": {"name": name},
            "spec": spec,
        }

    harness.apply(
        sim_account("sim-a"),
        profile("small", cpu={"min": 2, "max": 2}, memoryMiB={"min": 4096}, arch="x86_64"),
        profile("huge", cpu={"min": 64}),
    )
    harness.start(hardwareprofile.register)
    small = harness.wait_for(HardwareProfile, "small", None, partial(ready_is, "True"))
    assert (small.status.condition("Ready") or None).message == "sim-a: s1.medium"  # type: ignore[union-attr]
    huge = harness.wait_for(HardwareProfile, "huge", None, partial(ready_is, "False"))
    assert (huge.status.condition("Ready") or None).reason == "NoMatchingSize"  # type: ignore[union-attr]
