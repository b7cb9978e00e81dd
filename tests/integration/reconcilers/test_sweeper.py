"""Leak sweeper: a key deleted straight from etcd is a real delete, orphans are left alone,
sharded managers each sweep the accounts of their shards, and its metrics are its own."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from api_types import Subnet
from controller.leader import shard_of
from controller.store.keys import ObjectKey
from controller.store.objects import Store
from providers import TAG_TOKEN, TAG_UID, ResourceTags, VolumeCreate, ZoneName
from reconcilers import account, subnet, sweeper
from tests.integration.reconcilers.harness import Harness, pool_manifest, sim_account
from tests.integration.reconcilers.test_subnet import subnet_manifest

ZONE = ZoneName("sim-easta")


def tagged_volume(name: str, uid: str) -> VolumeCreate:
    """A volume as skybroker would create it for the object ``uid``."""
    return VolumeCreate(
        tags=ResourceTags(name=name, uid=uid, token=f"t-{name}"), size_gib=1, zone=ZONE
    )


def _with_spec(manifest: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    return {**manifest, "spec": {**manifest["spec"], **spec}}


def test_leaks_are_deleted_after_the_grace_period_and_orphans_left_alone(
    harness: Harness,
) -> None:
    harness.apply(sim_account("sim-a"), pool_manifest("general", [{"account": "sim-a"}]))
    harness.start(subnet.register, partial(sweeper.register, grace=1.5, interval=0.5))
    network = {"name": "other", "cidr": "10.20.0.0/16"}
    harness.apply(
        subnet_manifest("web", "10.10.1.0/24"),
        subnet_manifest("db", "10.20.1.0/24", network=network),
    )
    web = harness.wait_for(Subnet, "web", "acme", lambda s: s.status.phase == "Ready")
    db = harness.wait_for(Subnet, "db", "acme", lambda s: s.status.phase == "Ready")
    cloud = harness.provider("sim-a").inner
    orphan = cloud.create_volume(tagged_volume("kept", "gone-uid"))
    cloud.remove_tags(orphan.id, [TAG_UID, TAG_TOKEN])

    # The key vanishes from etcd: no finalizer runs, the sweeper is what cleans up.
    harness.store.client.delete_range(
        harness.store.layout.object_key(ObjectKey("subnets", "acme", "web"))
    )
    harness.wait_gone(Subnet, "web", "acme")
    harness.eventually(
        lambda: [s.id for s in cloud.list_subnets()] == [db.status.provider_id],
        30,
        "leaked subnet deleted",
    )
    harness.eventually(
        lambda: [n.id for n in cloud.list_networks()] == [db.status.network_id],
        30,
        "leaked network deleted",
    )
    assert web.status.network_id != db.status.network_id
    assert [v.id for v in cloud.list_volumes()] == [orphan.id]

    def reasons() -> set[str]:
        harness.manager.recorder.flush(10)  # events are written in the background
        return {e.reason for e in harness.manager.recorder.list_events("default")}

    harness.eventually(lambda: "LeakDeleted" in reasons(), 10, "no LeakDeleted event")


def test_two_sharded_managers_each_sweep_the_accounts_of_their_shard(
    harness: Harness, store: Store, tmp_path: Path
) -> None:
    """Accounts sim-a (shard 0) and sim-d (shard 1) are each swept by the manager holding their
    shard, exactly once; a resource whose owner lives in the other manager's shard is kept."""
    accounts = ("sim-a", "sim-d")
    owners = {"sim-a": "live-a", "sim-d": "live-d"}  # each in the other account's shard
    assert [shard_of(None, a, 2) for a in accounts] == [0, 1]
    assert [shard_of("acme", owners[a], 2) for a in accounts] == [1, 0]
    # Each manager spends half of an account's budget (it holds one of two shards), and a
    # sweep here lists five kinds every 0.5 s: more than half of the default 10 calls/s.
    budget = {"apiBudget": {"requestsPerSecond": 100, "burst": 100}}
    harness.apply(*(_with_spec(sim_account(a), budget) for a in accounts))
    live = {
        a: harness.apply(subnet_manifest(owners[a], "10.10.1.0/24", pool=None, account=a))[0]
        for a in accounts
    }
    managers = [Harness(store, tmp_path, shards=2) for _ in range(2)]
    try:
        for manager in managers:
            manager.start(partial(sweeper.register, grace=1.5, interval=0.5))
        harness.eventually(
            lambda: sorted(sorted(m.manager.shards.owned()) for m in managers) == [[0], [1]],
            30,
            "the two managers never split the shards",
        )
        # Leaks appear only now: no manager holds both shards any more.
        kept = {}
        for account in accounts:
            cloud = harness.cloud(account)
            cloud.create_volume(tagged_volume(f"leak-{account}", f"gone-{account}"))
            kept[account] = [
                cloud.create_volume(tagged_volume("kept", str(live[account].metadata.uid))).id
            ]
        harness.eventually(
            lambda: {a: [v.id for v in harness.cloud(a).list_volumes()] for a in accounts} == kept,
            30,
            "a leak is not deleted (or a live owner's volume is)",
        )
    finally:
        for manager in managers:
            manager.stop()
    for account in accounts:  # both recorders were flushed by stop()
        events = managers[0].manager.recorder.list_events(
            involved=ObjectKey("provideraccounts", None, account)
        )
        sweeps = [(e.reason, e.count) for e in events if e.reason.startswith("Leak")]
        assert sweeps == [("LeakDeleted", 1)], sweeps


def test_the_sweeper_and_the_health_probe_count_in_series_of_their_own(harness: Harness) -> None:
    """Both reconcile ProviderAccounts: each has its own workqueue and reconcile_total series."""
    series = {
        "health": ("reconcile_total", {"kind": "ProviderAccount", "result": "requeue"}),
        "sweeper": ("reconcile_total", {"kind": "leak-sweeper", "result": "requeue"}),
        "health queue": ("workqueue_adds_total", {"name": "provideraccounts"}),
        "sweeper queue": ("workqueue_adds_total", {"name": "leak-sweeper"}),
    }

    def values() -> dict[str, float]:
        return {k: REGISTRY.get_sample_value(n, labels) or 0.0 for k, (n, labels) in series.items()}

    before = values()
    harness.apply(sim_account("sim-a"))
    harness.start(account.register, partial(sweeper.register, interval=0.2))
    # The probe reconciles once (its next probe is 30 s away), the sweeper every 0.2 s.
    harness.eventually(
        lambda: values()["sweeper"] - before["sweeper"] >= 5, 20, lambda: str(values())
    )
    grown = {k: v - before[k] for k, v in values().items()}
    assert grown["health"] >= 1 and grown["health queue"] >= 1, grown
    assert grown["sweeper queue"] >= 5, grown
    assert grown["health"] < grown["sweeper"], grown
