"""Quota: usage arithmetic, status.used recounted from the caches, volumes held by quota."""

from __future__ import annotations

import threading
from functools import partial
from typing import Any

import pytest

from api_types import (
    HardwareProfile,
    Instance,
    InstancePlacement,
    ProviderAccount,
    Quota,
    QuotaUsage,
    Volume,
    registry,
    usage_of,
)
from api_types.meta import Condition, ConditionStatus
from reconcilers import account, quota, volume
from reconcilers.placement import ledger as ledger_module
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
    assert used - usage_of(disk) == QuotaUsage(instances=1, cpu=2, memory_mib=2048)
    assert usage_of(inline) * 3 == QuotaUsage(instances=3, cpu=3, memory_mib=1536)


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


def _oracle(harness: Harness, asking: Instance) -> QuotaUsage:
    """What the namespace uses without ``asking``, by the rule of DESIGN §3 walked over every
    cached object (what the scheduler computed per decision before its ledger)."""
    instances = harness.manager.informer(Instance).list("acme")
    volumes = harness.manager.informer(Volume).list("acme")
    profiles = {p.metadata.name: p for p in harness.manager.informer(HardwareProfile).list()}

    def position(instance: Instance) -> tuple[Any, str]:
        return instance.metadata.creation_timestamp, instance.metadata.name

    counted = [
        other
        for other in instances
        if other.metadata.uid != asking.metadata.uid
        and other.metadata.deletion_timestamp is None
        and (
            other.status.placement is not None
            or (quota.counts_against_quota(other) and position(other) < position(asking))
        )
    ]

    def size_of(instance: Instance) -> Any:
        placement = instance.status.placement
        return None if placement is None else _size(harness, "sim-a", placement.size)

    return namespace_usage(counted, volumes, profiles, sizes=size_of)


def _size(harness: Harness, account_name: str, name: str) -> Any:
    return {str(s.id): s for s in harness.cloud(account_name).list_sizes()}.get(name)


def _everything(harness: Harness, exclude: str | None = None) -> QuotaUsage:
    """All that counts in the namespace, deleting instances included (less the volume of uid
    ``exclude``): the walks the Quota reconciler (once a second) and the Volume reconciler's
    admission (per unplaced volume) made before the ledger."""
    profiles = {p.metadata.name: p for p in harness.manager.informer(HardwareProfile).list()}
    return namespace_usage(
        harness.manager.informer(Instance).list("acme"),
        harness.manager.informer(Volume).list("acme"),
        profiles,
        exclude=exclude,
        sizes=lambda i: (
            _size(harness, "sim-a", i.status.placement.size) if i.status.placement else None
        ),
    )


def _status_used(harness: Harness, without_volume: str | None = None) -> QuotaUsage:
    profiles = {p.metadata.name: p for p in harness.manager.informer(HardwareProfile).list()}
    return harness.deps.ledger.total("acme", profiles, without_volume=without_volume)


def test_the_quota_ledger_agrees_with_a_walk_over_every_object(harness: Harness) -> None:
    """Placed (known and unknown sizes), pending (inline and by profile), blocked, deleting,
    another namespace's, a volume: for every instance asking, the scheduler's answer (kept
    from events) equals the walk over the namespace, the ledger's total (the Quota's
    ``status.used``) equals the walk over everything, and both follow deletes and status
    writes."""
    harness.apply(
        sim_account("sim-a"),
        SMALL,
        quota_manifest(instances=100),
        volume_manifest("disk", sizeGiB=30),
        instance_manifest("other", namespace="elsewhere", pool="general"),
    )
    names = [f"vm-{i}" for i in range(7)]
    for name in names:  # one at a time: creation order is the first-come order
        hardware = {"profile": "small"} if name in ("vm-3", "vm-6") else {"cpu": 1}
        harness.apply(instance_manifest(name, pool="general", hardware=hardware))
    scheduler = harness.deps.scheduler
    # Only the account's: sizes are known once it is Ready; the test writes every other status.
    harness.start(partial(account.register, probe_interval=0.5))
    harness.wait_for(ProviderAccount, "sim-a", None, lambda a: a.status.zones != [])

    def place(name: str, size: str) -> None:
        instance = harness.store.get(Instance, name, "acme")
        instance.status.placement = InstancePlacement(
            account="sim-a", region="sim-east", zone="sim-easta", member="sim-a", size=size
        )
        harness.store.update_status(instance)

    place("vm-0", "s1.medium")
    place("vm-1", "no-such-size")  # charged its declared minimum
    blocked = harness.store.get(Instance, "vm-4", "acme")
    blocked.status.conditions = [
        Condition(type="QuotaExceeded", status=ConditionStatus.TRUE, reason="QuotaExceeded")
    ]
    harness.store.update_status(blocked)
    deleting = harness.store.get(Instance, "vm-5", "acme")
    deleting.metadata.finalizers = ["test.skybroker.io/hold"]
    harness.store.update(deleting)
    harness.store.delete(Instance, "vm-5", "acme")

    disk = harness.get(Volume, "disk", "acme")
    assert disk is not None and disk.metadata.uid is not None

    def agrees(count: int) -> bool:
        cached = harness.manager.informer(Instance).list("acme")
        return (
            len(cached) == count
            and all(scheduler.quota(i).used == _oracle(harness, i) for i in cached)
            and _status_used(harness) == _everything(harness)
            and _status_used(harness, disk.metadata.uid) == _everything(harness, disk.metadata.uid)
        )

    harness.eventually(partial(agrees, 7), 10, "the ledger and the walk agree")
    vm6 = harness.get(Instance, "vm-6", "acme")
    assert vm6 is not None
    assert scheduler.quota(vm6).used == QuotaUsage(
        instances=4, cpu=2 + 1 + 1 + 2, memory_mib=4096 + 2048, volumes=1, volume_gib=30
    )  # vm-0 (s1.medium), vm-1 (1 cpu, inline), vm-2 (1 cpu), vm-3 (small), the disk
    assert _status_used(harness) - _status_used(harness, disk.metadata.uid) == QuotaUsage(
        volumes=1, volume_gib=30
    )
    assert _status_used(harness, "no-such-uid") == _status_used(harness)

    harness.store.delete(Instance, "vm-0", "acme")
    place("vm-3", "s1.small")
    harness.eventually(lambda: harness.get(Instance, "vm-0", "acme") is None, 10, "vm-0 gone")
    harness.eventually(partial(agrees, 6), 10, "the ledger follows a delete and a placement")


def test_a_slow_catalogue_never_holds_up_the_ledgers_events(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sizes are looked up before the ledger's lock is taken: while one answer waits on an
    account's catalogue (past its age it asks the cloud), the informers' events still land and
    other answers still come."""
    harness.apply(
        sim_account("sim-a"),
        quota_manifest(instances=100),
        instance_manifest("vm", pool="general", hardware={"cpu": 1}),
    )
    ledger = harness.deps.ledger
    harness.start(partial(account.register, probe_interval=0.5))
    harness.wait_for(ProviderAccount, "sim-a", None, lambda a: a.status.zones != [])
    vm = harness.store.get(Instance, "vm", "acme")
    vm.status.placement = InstancePlacement(
        account="sim-a", region="sim-east", zone="sim-easta", member="sim-a", size="s1.small"
    )
    harness.store.update_status(vm)
    waiting, release, slowing = threading.Event(), threading.Event(), threading.Event()
    catalogue = ledger_module.account_sizes  # type: ignore[attr-defined]
    consulted: list[str] = []

    def slow_catalogue(deps: Any, name: str) -> Any:
        consulted.append(name)
        if slowing.is_set() and not waiting.is_set():
            waiting.set()
            release.wait(30)
        return catalogue(deps, name)

    def ledger_counts_vm_placed() -> bool:
        ledger.total("acme", {})
        return "sim-a" in consulted

    monkeypatch.setattr(ledger_module, "account_sizes", slow_catalogue)
    # The store shows vm placed at once; the ledger only once its informer delivered the update.
    harness.eventually(ledger_counts_vm_placed, 10, "the ledger counts vm placed on sim-a")
    slowing.set()

    def volume_gib_within(seconds: float) -> int | None:
        """The namespace's volume GiB, if the ledger answers within ``seconds``."""
        answers: list[QuotaUsage] = []
        asker = threading.Thread(
            target=lambda: answers.append(ledger.total("acme", {})), daemon=True
        )
        asker.start()
        asker.join(seconds)
        return answers[0].volume_gib if answers else None

    slow = threading.Thread(target=ledger.total, args=("acme", {}), daemon=True)
    slow.start()
    try:
        assert waiting.wait(10)
        harness.apply(volume_manifest("late", sizeGiB=7))
        harness.eventually(
            lambda: volume_gib_within(2) == 7, 10, "the volume's event landed and is answered"
        )
    finally:
        release.set()
        slow.join(30)
