"""The event recorder against a real etcd: aggregation by CAS, leases, never blocking."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from api_types.accounts import HardwareProfile, HardwareProfileSpec
from api_types.meta import ObjectMeta
from api_types.tenancy import Secret
from controller import events
from controller.clock import FakeClock
from controller.events import EventRecorder, event_name, involved_for_key
from controller.metrics import RuntimeMetrics
from controller.store.embedded import EmbeddedEtcd
from controller.store.etcd import EtcdClient
from controller.store.keys import KeyLayout, ObjectKey
from controller.store.objects import Store
from tests.etcd_writes import key_revisions

SECRET_KEY = ObjectKey("secrets", "team-a", "creds")


def secret() -> Secret:
    return Secret(metadata=ObjectMeta(name="creds", namespace="team-a", uid="u-1"))


@pytest.fixture
def metrics() -> RuntimeMetrics:
    return RuntimeMetrics(CollectorRegistry())


@pytest.fixture
def make_recorder(store: Store, metrics: RuntimeMetrics) -> Iterator[Callable[..., EventRecorder]]:
    recorders: list[EventRecorder] = []

    def make(**options: object) -> EventRecorder:
        recorder = EventRecorder(store, metrics=metrics, **options)  # type: ignore[arg-type]
        recorders.append(recorder)
        return recorder

    yield make
    for recorder in recorders:
        recorder.stop()


def test_repeats_of_one_reason_aggregate_into_one_event(
    make_recorder: Callable[..., EventRecorder],
) -> None:
    recorder = make_recorder(component="instance-controller")
    for attempt in range(5):
        assert recorder.record(secret(), "Warning", "ImageNotFound", f"attempt {attempt}")
        assert recorder.flush(10)  # separate writes: each one a CAS on the stored event
    recorder.record(secret(), "Normal", "Synced", "fine")
    assert recorder.flush(10)

    events = {e.reason: e for e in recorder.list_events("team-a", involved=SECRET_KEY)}
    assert set(events) == {"ImageNotFound", "Synced"}
    warning = events["ImageNotFound"]
    assert warning.count == 5
    assert warning.type == "Warning"
    assert warning.message == "attempt 4"
    assert warning.first_timestamp is not None and warning.last_timestamp is not None
    assert warning.first_timestamp <= warning.last_timestamp
    assert warning.involved_object.kind == "Secret" and warning.involved_object.uid == "u-1"
    assert warning.source.component == "instance-controller"
    assert warning.metadata.name == event_name(warning.involved_object, "ImageNotFound")
    assert recorder.list_events("team-a", involved=ObjectKey("secrets", "team-a", "x")) == []


def test_concurrent_recorders_never_lose_a_count(
    make_recorder: Callable[..., EventRecorder],
) -> None:
    recorders = [make_recorder(), make_recorder()]

    def record_many(recorder: EventRecorder) -> None:
        for _ in range(15):
            recorder.record(secret(), "Warning", "Throttled", "slow down")
            recorder.flush(10)

    threads = [threading.Thread(target=record_many, args=(r,)) for r in recorders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (event,) = recorders[0].list_events(involved=SECRET_KEY)
    assert event.count == 30


def test_a_burst_is_written_in_batches_and_racing_batches_lose_no_count(
    store: Store, make_recorder: Callable[..., EventRecorder], metrics: RuntimeMetrics
) -> None:
    """300 distinct events cost a handful of etcd revisions, not 300; two recorders bursting
    over the same 40 events (their batches collide) still add up every count exactly."""
    recorder = make_recorder(max_queue=1000)
    objects = [
        Secret(metadata=ObjectMeta(name=f"s-{i}", namespace="team-a", uid=f"u-{i}"))
        for i in range(300)
    ]
    for obj in objects:
        assert recorder.record(obj, "Normal", "Synced", "fine")
    assert recorder.flush(20)
    assert len(recorder.list_events("team-a")) == 300
    transactions = set(key_revisions(store.client, store.layout.prefix).values())
    assert len(transactions) <= 300 // 50 * 2 + 4

    racing = [recorder, make_recorder(max_queue=1000)]

    def burst(target: EventRecorder) -> None:
        for _ in range(5):
            for obj in objects[:40]:
                target.record(obj, "Warning", "Racing", "again")
            target.flush(20)

    threads = [threading.Thread(target=burst, args=(r,)) for r in racing]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    racing_events = [e for e in recorder.list_events("team-a") if e.reason == "Racing"]
    assert len(racing_events) == 40
    assert all(event.count == 10 for event in racing_events), [e.count for e in racing_events]
    assert metrics.events_dropped._value.get() == 0


def test_a_steady_trickle_is_written_in_batches_and_flush_does_not_wait_for_the_linger(
    store: Store, make_recorder: Callable[..., EventRecorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records arriving one at a time (as reconciles make them) are gathered for up to the
    linger into batches, not written one or two per pair of transactions; a caller in
    ``flush`` gets its records written without that wait."""
    recorder = make_recorder()
    for i in range(40):
        obj = Secret(metadata=ObjectMeta(name=f"t-{i}", namespace="team-b", uid=f"t-{i}"))
        assert recorder.record(obj, "Normal", "Synced", "fine")
        time.sleep(0.002)
    assert recorder.flush(20)
    events_prefix = store.layout.events_prefix("team-b").decode()
    revisions = key_revisions(store.client, events_prefix)
    assert len(revisions) == 40
    assert len(set(revisions.values())) <= 10, sorted(set(revisions.values()))

    monkeypatch.setattr(events, "_LINGER", 60.0)  # a writer that lingered would miss flush's 20 s
    obj = Secret(metadata=ObjectMeta(name="once", namespace="team-b", uid="once"))
    recorder.record(obj, "Normal", "Synced", "fine")
    assert recorder.flush(20)
    assert len(key_revisions(store.client, events_prefix)) == 41


def test_cluster_scoped_and_unparseable_objects_get_events_in_default(
    make_recorder: Callable[..., EventRecorder],
) -> None:
    recorder = make_recorder()
    profile = HardwareProfile(metadata=ObjectMeta(name="small"), spec=HardwareProfileSpec())
    recorder.record(profile, "Normal", "Validated", "ok")
    broken_key = ObjectKey("hardwareprofiles", None, "Not_A_Valid.Name")
    recorder.record(involved_for_key(broken_key), "Warning", "InvalidObject", "spec.cpu: bad")
    assert recorder.flush(10)

    (about_profile,) = recorder.list_events(involved=ObjectKey("hardwareprofiles", None, "small"))
    assert about_profile.metadata.namespace == "default"
    assert about_profile.involved_object.namespace is None
    (about_key,) = recorder.list_events(involved=broken_key)
    assert about_key.involved_object.kind == "HardwareProfile"
    assert about_key.metadata.name.startswith("not-a-valid.name.")


def test_events_share_the_current_buckets_lease_and_move_to_the_next(
    store: Store, make_recorder: Callable[..., EventRecorder]
) -> None:
    clock = FakeClock(wall_start=datetime(2026, 1, 1, 12, 0, tzinfo=UTC))  # events carry wall time
    recorder = make_recorder(now=clock.wall)

    def lease_of(reason: str) -> int:
        (event,) = [e for e in recorder.list_events("team-a") if e.reason == reason]
        kvs = store.client.range(store.layout.event_key("team-a", event.metadata.name)).kvs
        return int(kvs[0].lease)

    recorder.record(secret(), "Normal", "Created", "")
    recorder.record(secret(), "Normal", "Started", "")
    assert recorder.flush(10)
    first_lease = lease_of("Created")
    assert first_lease != 0
    assert lease_of("Started") == first_lease

    clock.step(3600.0)
    recorder.record(secret(), "Normal", "Created", "again")
    assert recorder.flush(10)
    assert lease_of("Created") not in (0, first_lease)  # re-attached: it lives on
    assert lease_of("Started") == first_lease


def test_events_expire_with_their_lease(
    store: Store, make_recorder: Callable[..., EventRecorder]
) -> None:
    recorder = make_recorder(ttl=1.0, lease_bucket=1.0)
    recorder.record(secret(), "Normal", "Fleeting", "")
    assert recorder.flush(10)
    assert len(recorder.list_events("team-a")) == 1
    deadline = time.monotonic() + 10
    while recorder.list_events("team-a"):
        assert time.monotonic() < deadline, "the event outlived its lease"
        time.sleep(0.2)


@pytest.mark.slow
def test_recording_never_blocks_while_etcd_is_down(tmp_path: Path) -> None:
    server = EmbeddedEtcd(data_dir=tmp_path)
    server.start()
    # A record() that waited for etcd would wait out retry_for: 60 s, against the few
    # milliseconds 300 non-blocking records take, so the bound below holds on any machine.
    client = EtcdClient([server.endpoint], retry_for=60.0, timeout=2.0)
    metrics = RuntimeMetrics(CollectorRegistry())
    recorder = EventRecorder(Store(client, KeyLayout("/own")), max_queue=20, metrics=metrics)
    try:
        recorder.record(secret(), "Normal", "Up", "")
        assert recorder.flush(10)
        server.kill()

        started = time.monotonic()
        accepted = [recorder.record(secret(), "Warning", f"Reason{i}", "") for i in range(300)]
        assert time.monotonic() - started < 20.0
        assert not all(accepted)
        dropped = accepted.count(False)
        assert metrics.events_dropped._value.get() == dropped
        assert not recorder.flush(0.2)

        server.start()
        assert recorder.flush(30)
        written = recorder.list_events("team-a")
        assert sum(e.count for e in written) == 1 + accepted.count(True)
    finally:
        recorder.stop(1)
        client.close()
        server.stop()
