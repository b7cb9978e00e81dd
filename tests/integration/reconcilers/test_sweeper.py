"""Leak sweeper: a key deleted straight from etcd is a real delete; orphans are left alone."""

from __future__ import annotations

from functools import partial

from api_types import Subnet
from controller.store.keys import ObjectKey
from providers import TAG_TOKEN, TAG_UID, ResourceTags, VolumeCreate, ZoneName
from reconcilers import subnet, sweeper
from tests.integration.reconcilers.harness import Harness, pool_manifest, sim_account
from tests.integration.reconcilers.test_subnet import subnet_manifest


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
    orphan = cloud.create_volume(  # type: ignore[attr-defined]
        VolumeCreate(
            tags=ResourceTags(name="kept", uid="gone-uid", token="t-kept"),
            size_gib=1,
            zone=ZoneName("sim-easta"),
        )
    )
    cloud.remove_tags(orphan.id, [TAG_UID, TAG_TOKEN])  # type: ignore[attr-defined]

    # The key vanishes from etcd: no finalizer runs, the sweeper is what cleans up.
    harness.store.client.delete_range(
        harness.store.layout.object_key(ObjectKey("subnets", "acme", "web"))
    )
    harness.wait_gone(Subnet, "web", "acme")
    harness.eventually(
        lambda: [s.id for s in cloud.list_subnets()] == [db.status.provider_id],  # type: ignore[attr-defined]
        30,
        "leaked subnet deleted",
    )
    harness.eventually(
        lambda: [n.id for n in cloud.list_networks()] == [db.status.network_id],  # type: ignore[attr-defined]
        30,
        "leaked network deleted",
    )
    assert web.status.network_id != db.status.network_id
    assert [v.id for v in cloud.list_volumes()] == [orphan.id]  # type: ignore[attr-defined]
    reasons = {e.reason for e in harness.manager.recorder.list_events("default")}
    assert "LeakDeleted" in reasons
