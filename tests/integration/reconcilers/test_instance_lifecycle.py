"""Instance life cycle on the simulated cloud: re-placement, drift, orphaning, quota, no writes.

The cloud is changed behind skybroker's back through the provider directly, and checked by
listing it directly, never through skybroker's status.
"""

from __future__ import annotations

from collections.abc import Callable

from api_types import Instance, InstancePhase, Pool, PoolPolicyType, Quota
from controller.store.keys import ObjectKey
from providers import InstanceId
from reconcilers import instance
from reconcilers import pool as pool_controller
from tests.etcd_writes import key_revisions, settled_revisions
from tests.integration.reconcilers.harness import (
    API,
    Harness,
    instance_manifest,
    pool_manifest,
    sim_account,
)

NS = "acme"
GONE = ("shutting-down", "terminated")


def phase_is(phase: InstancePhase) -> Callable[[Instance], bool]:
    return lambda obj: obj.status.phase == phase


def condition(obj: Instance, type_: str) -> tuple[str, str] | None:
    found = obj.status.condition(type_)
    return None if found is None else (found.status.value, found.reason)


def two_accounts(harness: Harness, policy: str = "Priority", **sim_a_options: str) -> None:
    harness.apply(
        sim_account("sim-a", **sim_a_options),
        sim_account("sim-b"),
        pool_manifest(
            "general", [{"account": "sim-a", "priority": 9}, {"account": "sim-b"}], policy
        ),
    )
    harness.start(instance.register, pool_controller.register)


def test_placement_is_explained_sticky_and_replaced_after_a_capacity_failure(
    harness: Harness,
) -> None:
    # sim-a takes no instance at all (provider quota) but ranks first: the create fails there.
    two_accounts(harness, quota_instances="0")
    harness.apply(
        {**sim_account("sim-c"), "spec": {"driver": "simulated", "region": "sim-east"}},
    )
    pool = harness.store.get(Pool, "general")
    pool.spec.members.append(pool.spec.members[1].model_copy(update={"account": "sim-c"}))
    harness.store.update(pool)
    harness.apply(instance_manifest("web-1", pool="general"))
    web = harness.wait_for(Instance, "web-1", NS, phase_is(InstancePhase.RUNNING))
    placement = web.status.placement
    assert placement is not None and placement.account == "sim-b"
    assert [(r.member, r.reason) for r in web.status.rejections] == [
        ("sim-c", "image ubuntu-22.04 is not mapped for account sim-c")
    ]
    reasons = harness.event_reasons("instances", "web-1", NS)
    assert {"Replacing", "Scheduled", "Created"} <= reasons
    assert harness.cloud("sim-a").list_instances() == []
    (cloud,) = harness.cloud("sim-b").list_instances()
    assert cloud.id == web.status.provider_id
    # The failure on sim-a is shown in the pool's status (the penalty the scheduler applied).
    failed = harness.wait_for(
        Pool,
        "general",
        None,
        lambda p: any(m.member == "sim-a" and m.last_failure_time for m in p.status.members),
    )
    assert [m.member for m in failed.status.members if m.last_failure_time] == ["sim-a"]
    # Sticky: the pool now prefers sim-c… but the bound placement does not move.
    pool = harness.store.get(Pool, "general")
    pool.spec.policy.type = PoolPolicyType.LOWEST_COST
    harness.store.update(pool)

    def cached_policy() -> PoolPolicyType | None:
        cached = harness.manager.informer(Pool).peek(ObjectKey(Pool.PLURAL, None, "general"))
        return None if cached is None else cached.spec.policy.type

    harness.eventually(lambda: cached_policy() == PoolPolicyType.LOWEST_COST)
    harness.wait_for_reconciles(Instance.KIND, 2)  # a resync that saw the new policy
    again = harness.get(Instance, "web-1", NS)
    assert again is not None and again.status.placement == placement


def test_unschedulable_says_why_for_every_member(harness: Harness) -> None:
    two_accounts(harness)
    harness.apply(instance_manifest("big", pool="general", hardware={"cpu": 64}))
    big = harness.wait_for(
        Instance, "big", NS, lambda i: condition(i, "Scheduled") == ("False", "Unschedulable")
    )
    assert {r.member for r in big.status.rejections} == {"sim-a", "sim-b"}
    assert all("cpu=64" in r.reason for r in big.status.rejections)
    message = big.status.condition("Scheduled").message  # type: ignore[union-attr]
    assert "sim-a:" in message and "sim-b:" in message
    harness.wait_for_event("instances", "big", NS, "Unschedulable")


def test_drift_is_corrected(harness: Harness) -> None:
    two_accounts(harness)
    harness.apply(instance_manifest("web-1", pool="general"))
    web = harness.wait_for(Instance, "web-1", NS, phase_is(InstancePhase.RUNNING))
    provider = harness.cloud("sim-a")
    first_id, first_token = web.status.provider_id, web.status.create_token
    assert first_id is not None
    provider.delete_instance(InstanceId(first_id))  # terminated outside skybroker
    web = harness.wait_for(
        Instance,
        "web-1",
        NS,
        lambda i: (
            i.status.provider_id not in (None, first_id) and i.status.phase == InstancePhase.RUNNING
        ),
    )
    assert web.status.create_token != first_token
    live = [i for i in provider.list_instances()]
    assert [i.id for i in live] == [web.status.provider_id]
    provider.stop_instance(InstanceId(str(web.status.provider_id)))
    harness.eventually(
        lambda: {i.state.value for i in provider.list_instances()} == {"stopped"}, 10
    )
    harness.eventually(
        lambda: {i.state.value for i in provider.list_instances()} == {"running"}, 15
    )
    harness.wait_for_event("instances", "web-1", NS, "DriftCorrected")


def test_drift_is_reported_not_corrected(harness: Harness) -> None:
    two_accounts(harness)
    harness.apply(instance_manifest("web-1", pool="general", driftPolicy="Report"))
    web = harness.wait_for(Instance, "web-1", NS, phase_is(InstancePhase.RUNNING))
    provider = harness.cloud("sim-a")
    provider.stop_instance(InstanceId(str(web.status.provider_id)))
    web = harness.wait_for(
        Instance,
        "web-1",
        NS,
        lambda i: (
            condition(i, "Drifted") is not None
            and condition(i, "Drifted") == ("True", "PowerState")
        ),
    )
    assert "Running" in web.status.condition("Drifted").message  # type: ignore[union-attr]
    # A resync later it is still stopped: reported, not corrected.
    harness.wait_for_reconciles(Instance.KIND, 2)
    assert {i.state.value for i in provider.list_instances()} == {"stopped"}
    provider.delete_instance(InstanceId(str(web.status.provider_id)))
    web = harness.wait_for(
        Instance, "web-1", NS, lambda i: condition(i, "Drifted") == ("True", "Terminated")
    )
    assert web.status.phase == InstancePhase.FAILED
    harness.wait_for_reconciles(Instance.KIND, 2)
    assert provider.list_instances() == []


def test_orphan_leaves_the_vm_untagged(harness: Harness) -> None:
    two_accounts(harness)
    harness.apply(instance_manifest("keep", pool="general", deletionPolicy="Orphan"))
    kept = harness.wait_for(Instance, "keep", NS, phase_is(InstancePhase.RUNNING))
    harness.store.delete(Instance, "keep", NS)
    harness.wait_gone(Instance, "keep", NS)
    (cloud,) = harness.cloud("sim-a").list_instances()
    assert cloud.id == kept.status.provider_id
    assert cloud.uid is None and cloud.token is None and cloud.state.value == "running"


def test_quota_on_direct_writes_then_provisioned_when_usage_falls(harness: Harness) -> None:
    two_accounts(harness)
    harness.apply(
        {
            "apiVersion": API,
            "kind": "Quota",
            "metadata": {"name": "default", "namespace": NS},
            "spec": {"hard": {"instances": 2}},
        }
    )
    # The Quota is there before the instances: its cache and theirs are separate watch streams,
    # and an instance seen before its namespace's Quota would rightly be admitted.
    harness.eventually(lambda: bool(harness.manager.informer(Quota).list(NS)))
    harness.apply(*(instance_manifest(f"vm-{i}", pool="general") for i in range(3)))
    for name in ("vm-0", "vm-1"):
        harness.wait_for(Instance, name, NS, phase_is(InstancePhase.RUNNING))
    blocked = harness.wait_for(
        Instance, "vm-2", NS, lambda i: condition(i, "QuotaExceeded") == ("True", "QuotaExceeded")
    )
    assert blocked.status.placement is None and blocked.status.provider_id is None
    assert len(harness.cloud("sim-a").list_instances()) == 2
    harness.store.delete(Instance, "vm-0", NS)
    vm2 = harness.wait_for(Instance, "vm-2", NS, phase_is(InstancePhase.RUNNING))
    assert condition(vm2, "QuotaExceeded") == ("False", "WithinQuota")
    assert len(harness.cloud("sim-a").list_instances()) == 2


def test_a_converged_system_writes_nothing(harness: Harness) -> None:
    two_accounts(harness, policy="RoundRobin")
    harness.apply(
        instance_manifest("vm-0", pool="general"),
        instance_manifest("vm-1", pool="general", powerState="Stopped"),
    )
    harness.wait_for(Instance, "vm-0", NS, phase_is(InstancePhase.RUNNING))
    harness.wait_for(Instance, "vm-1", NS, phase_is(InstancePhase.STOPPED))
    harness.manager.recorder.flush(10)
    prefix = harness.store.layout.prefix
    settled = settled_revisions(harness.store.client, prefix)
    harness.wait_for_reconciles(Instance.KIND, 2 * 2)  # resyncs: about two of each instance
    assert key_revisions(harness.store.client, prefix) == settled


def test_a_spec_change_the_running_instance_cannot_take_replaces_it(harness: Harness) -> None:
    """Hardware the current size still meets changes nothing; a new image or hardware the size
    no longer meets replaces the instance (old one deleted, checked in the cloud itself)."""
    account = sim_account("sim-a")
    account["spec"]["images"]["debian-12"] = "img-debian-12"
    harness.apply(account, pool_manifest("general", [{"account": "sim-a"}]))
    harness.start(instance.register)
    harness.apply(instance_manifest("web-1", pool="general", hardware={"cpu": 1}))
    web = harness.wait_for(Instance, "web-1", NS, phase_is(InstancePhase.RUNNING))
    first = web.status.provider_id
    assert first is not None and web.status.placement is not None
    first_size = web.status.placement.size
    cloud = harness.cloud("sim-a")
    cpus = {size.id: size.cpu for size in cloud.list_sizes()}

    def change(**spec: object) -> int:
        current = harness.store.get(Instance, "web-1", NS)
        current.spec = current.spec.model_copy(update=spec)
        updated = harness.store.update(current)
        assert updated.metadata.generation is not None
        return updated.metadata.generation

    def settled(generation: int) -> Instance:
        return harness.wait_for(
            Instance,
            "web-1",
            NS,
            lambda i: (
                i.status.observed_generation == generation
                and i.status.phase == InstancePhase.RUNNING
            ),
        )

    # Pinning the size it already has: the running instance serves it as is.
    web = settled(
        change(hardware=web.spec.hardware.model_copy(update={"cpu": None, "size": first_size}))
    )
    assert web.status.provider_id == first

    # Another image: replaced on the same account and size.
    web = settled(change(image="debian-12"))
    second = web.status.provider_id
    assert second not in (None, first)
    assert web.status.placement is not None and web.status.placement.size == first_size
    by_id = {c.id: c for c in cloud.list_instances()}
    assert by_id[InstanceId(second)].image == "img-debian-12"
    assert first not in by_id or by_id[InstanceId(first)].state.value in GONE

    # More CPUs than that size has: replaced by the cheapest size that has them.
    wanted = max(cpus.values())
    hardware = web.spec.hardware.model_copy(update={"size": None, "cpu": wanted})
    web = settled(change(hardware=hardware))
    third = web.status.provider_id
    assert third not in (None, first, second)
    assert web.status.placement is not None and cpus[web.status.placement.size] >= wanted
    by_id = {c.id: c for c in cloud.list_instances()}
    assert by_id[InstanceId(third)].size == web.status.placement.size
    assert second not in by_id or by_id[InstanceId(second)].state.value in GONE
    live = [c for c in by_id.values() if c.state.value not in GONE]
    assert [c.id for c in live] == [third]
    harness.wait_for_event("instances", "web-1", NS, "Replacing")
