"""Quota: usage arithmetic, status.used recounted from the caches, volumes held by quota."""

from __future__ import annotations

from typing import Any

from api_types import HardwareProfile, Instance, Quota, QuotaUsage, Volume, registry, usage_of
from api_types.meta import ConditionStatus
from reconcilers import quota, volume
from reconcilers.quota import namespace_usage, would_exceed
from tests.integration.reconcilers.harness import (
    API,
    Harness,
    instance_manifest,
    pool_manifest,
    sim_account,
)
from tests.integration.reconcilers.test_volume import volume_manifest

SMALL = {
    "apiVersion": API,
    "kind": "HardwareProfile",
    "metadata": {"name": "small"},
    "spec": {"cpu": {"min": 2, "max": 4}, "memoryMiB": {"min": 2048}},
}


def quota_manifest(**hard: int) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Quota",
        "metadata": {"name": "default", "namespace": "acme"},
        "spec": {"hard": hard},
    }


def parse(manifest: dict[str, Any]) -> Any:
    return registry.parse_object(manifest)


def test_usage_arithmetic() -> None:
    profiles = {"small": parse(SMALL)}
    by_profile = parse(instance_manifest("a", pool="p", hardware={"profile": "small"}))
    inline = parse(instance_manifest("b", pool="p", hardware={"cpu": 1, "memoryMiB": 512}))
    small = profiles["small"]
    assert usage_of(by_profile, small) == QuotaUsage(instances=1, cpu=2, memory_mib=2048)
    assert usage_of(by_profile, None) == QuotaUsage(instances=1), "a missing profile counts 0"
    assert usage_of(inline) == QuotaUsage(instances=1, cpu=1, memory_mib=512)
    disk = parse(volume_manifest("d", sizeGiB=30))
    by_profile.metadata.uid, inline.metadata.uid = "u1", "u2"
    used = namespace_usage([by_profile, inline], [disk], profiles, exclude="u2")
    assert used == QuotaUsage(instances=1, cpu=2, memory_mib=2048, volumes=1, volume_gib=30)
    limits = parse(quota_manifest(cpu=3, volumeGiB=100))
    assert would_exceed(limits, used, usage_of(inline)) == []
    assert would_exceed(limits, used, usage_of(by_profile, small)) == ["cpu"]
    assert used + usage_of(disk) == QuotaUsage(
        instances=1, cpu=2, memory_mib=2048, volumes=2, volume_gib=60
    )


def test_status_used_and_a_volume_held_until_there_is_room(harness: Harness) -> None:
    harness.apply(
        sim_account("sim-a", volume_seconds=0.1),
        pool_manifest("general", [{"account": "sim-a"}]),
        SMALL,
        quota_manifest(instances=5, volumes=1, volumeGiB=50),
        instance_manifest("web-1", pool="general", hardware={"profile": "small"}),
        instance_manifest("web-2", pool="general", hardware={"cpu": 1, "memoryMiB": 1024}),
    )
    harness.start(quota.register, volume.register)
    harness.wait_for(
        Quota,
        "default",
        "acme",
        lambda q: q.status.used == QuotaUsage(instances=2, cpu=3, memory_mib=3072),
    )
    harness.apply(volume_manifest("data-1", sizeGiB=20))
    harness.wait_for(Volume, "data-1", "acme", lambda v: v.status.phase == "Available")
    harness.apply(volume_manifest("data-2", sizeGiB=20))
    held = harness.wait_for(
        Volume,
        "data-2",
        "acme",
        lambda v: (
            (c := v.status.condition(quota.QUOTA_EXCEEDED)) is not None
            and c.status == ConditionStatus.TRUE
        ),
    )
    assert held.status.provider_id is None
    harness.wait_for(Quota, "default", "acme", lambda q: q.status.used.volume_gib == 20)

    harness.store.delete(Volume, "data-1", "acme")
    harness.store.delete(Instance, "web-1", "acme")
    harness.wait_for(Volume, "data-2", "acme", lambda v: v.status.phase == "Available")
    harness.wait_for(
        Quota,
        "default",
        "acme",
        lambda q: (
            q.status.used
            == QuotaUsage(instances=1, cpu=1, memory_mib=1024, volumes=1, volume_gib=20)
        ),
    )
    assert harness.get(HardwareProfile, "small") is not None
