"""The object store against a real etcd: CAS, generation vs status, finalizers, history."""

from __future__ import annotations

import threading

import pytest

from api_types import registry
from api_types.compute import InstancePhase
from api_types.meta import Condition, ConditionStatus, ObjectMeta
from controller.clock import FakeClock
from controller.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidObjectError,
    NotFoundError,
)
from controller.labels import LabelSelector
from controller.store.etcd import EtcdClient
from controller.store.history import trim_history
from controller.store.keys import KeyLayout, ObjectKey
from controller.store.memory import WriteMemory
from controller.store.objects import Store

HardwareProfile = registry.by_kind("HardwareProfile").model
Instance = registry.by_kind("Instance").model


def profile(name: str, cpu_max: int = 2, **meta: object) -> object:
    return registry.parse_object(
        {
            "apiVersion": "skybroker.io/v1alpha1",
            "kind": "HardwareProfile",
            "metadata": {"name": name, **meta},
            "spec": {"cpu": {"min": 1, "max": cpu_max}, "memoryMiB": {"min": 1024}},
        }
    )


def instance(name: str, namespace: str = "acme", **meta: object) -> object:
    return registry.parse_object(
        {
            "apiVersion": "skybroker.io/v1alpha1",
            "kind": "Instance",
            "metadata": {"name": name, "namespace": namespace, **meta},
            "spec": {"pool": "general", "hardware": {"profile": "small"}, "image": "ubuntu"},
        }
    )


def test_create_get_fills_system_metadata(store: Store) -> None:
    created = store.create(profile("small"))
    assert created.metadata.uid
    assert created.metadata.generation == 1
    assert created.metadata.creation_timestamp is not None
    assert int(created.metadata.resource_version or 0) > 0
    fetched = store.get(HardwareProfile, "small")
    assert fetched.to_wire() == created.to_wire()
    with pytest.raises(AlreadyExistsError):
        store.create(profile("small"))
    with pytest.raises(NotFoundError):
        store.get(HardwareProfile, "missing")


def test_scope_is_checked(store: Store) -> None:
    with pytest.raises(InvalidObjectError) as err:
        store.create(instance("web", namespace=None))  # type: ignore[arg-type]
    assert err.value.causes[0].field == "metadata.namespace"
    # Kubernetes' behaviour: a namespace given for a cluster-scoped kind is dropped
    assert store.create(profile("small", namespace="acme")).metadata.namespace is None


def test_eight_concurrent_writers_lose_no_update(store: Store) -> None:
    store.create(profile("counter", annotations={"count": "0"}))
    per_writer, writers = 25, 8
    conflicts = 0
    lock = threading.Lock()

    def writer() -> None:
        nonlocal conflicts
        done = 0
        while done < per_writer:
            current = store.get(HardwareProfile, "counter")
            current.metadata.annotations["count"] = str(
                int(current.metadata.annotations["count"]) + 1
            )
            try:
                store.update(current)
                done += 1
            except ConflictError:
                with lock:
                    conflicts += 1

    threads = [threading.Thread(target=writer) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = store.get(HardwareProfile, "counter")
    assert final.metadata.annotations["count"] == str(per_writer * writers)
    assert conflicts > 0, "8 writers on one key must have raced at least once"
    # metadata-only updates never bump generation
    assert final.metadata.generation == 1


def test_stale_resource_version_is_a_conflict(store: Store) -> None:
    first = store.create(profile("p"))
    moved = first.model_copy(deep=True)
    moved.spec.cpu.max = 4
    store.update(moved)
    stale = first.model_copy(deep=True)
    stale.spec.cpu.max = 8
    with pytest.raises(ConflictError):
        store.update(stale)
    assert store.get(HardwareProfile, "p").spec.cpu.max == 4


def test_status_write_never_touches_spec_or_generation(store: Store) -> None:
    created = store.create(instance("web"))
    # a status write carrying a modified spec: the spec change must be ignored
    sneaky = created.model_copy(deep=True)
    sneaky.spec.image = "evil"
    sneaky.status.phase = InstancePhase.SCHEDULED
    sneaky.status.conditions = [
        Condition(type=InstancePhase.SCHEDULED, status=ConditionStatus.TRUE)
    ]
    after_status = store.update_status(sneaky)
    assert after_status.spec.image == "ubuntu"
    assert after_status.metadata.generation == 1
    assert after_status.status.phase == InstancePhase.SCHEDULED

    # a spec write carrying a modified status: the status change must be ignored
    spec_change = after_status.model_copy(deep=True)
    spec_change.spec.image = "debian"
    spec_change.status.phase = InstancePhase.FAILED
    after_spec = store.update(spec_change)
    assert after_spec.metadata.generation == 2
    assert after_spec.status.phase == InstancePhase.SCHEDULED
    stored = store.get(Instance, "web", "acme")
    assert stored.spec.image == "debian"
    assert stored.status.phase == InstancePhase.SCHEDULED


def test_unchanged_writes_are_not_sent(store: Store) -> None:
    created = store.create(instance("idle"))
    same = store.update(created)
    assert same.metadata.resource_version == created.metadata.resource_version
    same_status = store.update_status(created)
    assert same_status.metadata.resource_version == created.metadata.resource_version


def test_finalizers_hold_deletion_until_removed(store: Store) -> None:
    created = store.create(instance("held", finalizers=["skybroker.io/cloud"]))
    marked, gone = store.delete(Instance, "held", "acme")
    assert not gone
    assert marked.metadata.deletion_timestamp is not None
    # deleting again changes nothing
    again, gone = store.delete(Instance, "held", "acme")
    assert not gone and again.metadata.resource_version == marked.metadata.resource_version
    # no new finalizers while deleting
    adding = marked.model_copy(deep=True)
    adding.metadata.finalizers.append("other")
    with pytest.raises(InvalidObjectError):
        store.update(adding)
    assert created.metadata.uid == marked.metadata.uid
    releasing = store.get(Instance, "held", "acme")
    releasing.metadata.finalizers = []
    store.update(releasing)
    with pytest.raises(NotFoundError):
        store.get(Instance, "held", "acme")


def test_a_status_write_may_add_finalizers_with_the_status_and_nothing_more(
    store: Store,
) -> None:
    created = store.create(instance("intent"))
    created.status.phase = InstancePhase.PROVISIONING
    created.metadata.finalizers = ["skybroker.io/cloud"]
    created.metadata.labels = {"ignored": "yes"}  # the status path never writes labels
    written = store.update_status(created, with_finalizers=True)
    stored = store.get(Instance, "intent", "acme")
    assert stored.metadata.finalizers == ["skybroker.io/cloud"]
    assert stored.status.phase == InstancePhase.PROVISIONING
    assert stored.metadata.labels == {}
    assert stored.metadata.generation == 1
    assert written.metadata.resource_version == stored.metadata.resource_version

    # without the flag, finalizers in the object are ignored, as before
    stored.metadata.finalizers.append("other")
    stored.status.phase = InstancePhase.RUNNING
    store.update_status(stored)
    assert store.get(Instance, "intent", "acme").metadata.finalizers == ["skybroker.io/cloud"]

    # removing is not for the status path: it could leave a deleting object forever
    removing = store.get(Instance, "intent", "acme")
    removing.metadata.finalizers = []
    with pytest.raises(InvalidObjectError, match="finalizers"):
        store.update_status(removing, with_finalizers=True)

    # nor adding once deletion started
    marked, gone = store.delete(Instance, "intent", "acme")
    assert not gone
    marked.metadata.finalizers.append("late")
    with pytest.raises(InvalidObjectError, match="being deleted"):
        store.update_status(marked, with_finalizers=True)
    assert store.get(Instance, "intent", "acme").metadata.finalizers == ["skybroker.io/cloud"]


def test_delete_without_finalizers_and_preconditions(store: Store) -> None:
    created = store.create(instance("plain"))
    with pytest.raises(ConflictError):
        store.delete(Instance, "plain", "acme", resource_version="1")
    _, gone = store.delete(
        Instance, "plain", "acme", resource_version=created.metadata.resource_version
    )
    assert gone
    with pytest.raises(NotFoundError):
        store.delete(Instance, "plain", "acme")


def test_list_selector_and_pinned_pages(store: Store) -> None:
    for i in range(25):
        store.create(instance(f"i-{i:02d}", labels={"app": "web" if i % 2 else "db"}))
    store.create(instance("other-ns", namespace="beta"))
    everything = store.list(Instance)
    assert len(everything.items) == 26
    in_acme = store.list(Instance, "acme")
    assert len(in_acme.items) == 25
    web = store.list(Instance, "acme", LabelSelector.parse("app=web"))
    assert len(web.items) == 12
    # paginate with limit/continue: pages stay pinned to the first page's revision
    first = store.list(Instance, "acme", limit=10)
    store.create(instance("i-99"))  # written after the first page: not in this listing
    names = [o.metadata.name for o in first.items]
    page = first
    while page.continue_after is not None:
        page = store.list(
            Instance,
            "acme",
            limit=10,
            continue_after=page.continue_after,
            revision=first.resource_version,
        )
        names.extend(o.metadata.name for o in page.items)
    assert names == [f"i-{i:02d}" for i in range(25)]


def test_history_records_spec_and_phase_transitions(store: Store) -> None:
    created = store.create(instance("h"), actor="alice")
    running = created.model_copy(deep=True)
    running.status.phase = InstancePhase.RUNNING
    after = store.update_status(running, actor="controller", request_id="req-1")
    # a message-only status change is not a transition: no record
    chatty = after.model_copy(deep=True)
    chatty.status.conditions = [Condition(type="Ready", status=ConditionStatus.TRUE, message="a")]
    after = store.update_status(chatty)
    chatty2 = after.model_copy(deep=True)
    chatty2.status.conditions[0].message = "b"
    after = store.update_status(chatty2)
    changed = after.model_copy(deep=True)
    changed.spec.image = "debian"
    final = store.update(changed, actor="bob")
    records = store.history(ObjectKey("instances", "acme", "h"))
    assert [r.action for r in records] == [
        "Created",
        "StatusChanged",
        "StatusChanged",
        "SpecChanged",
    ]
    assert records[0].actor == "alice"
    assert records[1].request_id == "req-1"
    assert records[1].changes[0] == {
        "path": "status.phase",
        "before": None,
        "after": InstancePhase.RUNNING,
    }
    assert records[3].changes == ({"path": "spec.image", "before": "ubuntu", "after": "debian"},)
    assert records[3].revision == int(final.metadata.resource_version or 0)
    assert records == sorted(records, key=lambda r: r.revision)


def test_history_is_trimmed_per_object(store: Store) -> None:
    current = store.create(profile("busy"))
    for cpu in range(3, 15):
        current.spec.cpu.max = cpu
        current = store.update(current)
    key = ObjectKey("hardwareprofiles", None, "busy")
    assert len(store.history(key)) == 13
    assert trim_history(store.client, store.layout, limit=5) == 8
    kept = store.history(key)
    assert len(kept) == 5
    assert kept[-1].changes[0]["after"] == 14


def test_large_values_list_over_grpc_default_limit(store: Store) -> None:
    big = "x" * 60_000
    for i in range(80):  # ~5 MB in one range: over gRPC's 4 MB default
        store.create(profile(f"big-{i}", annotations={"blob": big}))
    listed = store.list(HardwareProfile, page_size=100)
    assert len(listed.items) == 80


def test_meta_model_round_trip_through_store(store: Store) -> None:
    obj = profile("rt", labels={"tier": "gold"})
    created = store.create(obj)
    assert isinstance(created.metadata, ObjectMeta)
    assert store.get(HardwareProfile, "rt").metadata.labels == {"tier": "gold"}


def test_a_write_after_its_base_was_forgotten_reads_it_from_etcd(
    etcd_client: EtcdClient, layout: KeyLayout
) -> None:
    """Idle keys' bases are dropped (``controller.store.memory``): the next write of such a key
    reads its base from etcd, so it succeeds on the current resourceVersion and is refused on a
    stale one, as for a key this store never saw."""
    clock = FakeClock()
    memory = WriteMemory(idle_seconds=10, clock=clock.now)
    store = Store(etcd_client, layout, memory=memory)
    first = store.create(instance("idle-vm"))
    etcd_key = layout.object_key(ObjectKey("instances", "acme", "idle-vm"))
    assert memory.base(etcd_key) is not None
    clock.set(60)
    store.create(instance("busy-vm"))  # its write sweeps the idle key away
    assert memory.base(etcd_key) is None
    stale = first.model_copy(deep=True)
    first.status.phase = InstancePhase.RUNNING
    written = store.update_status(first)
    assert written.status.phase == InstancePhase.RUNNING
    assert memory.base(etcd_key) is not None
    stale.status.phase = InstancePhase.FAILED
    with pytest.raises(ConflictError):
        store.update_status(stale)
    assert store.get(Instance, "idle-vm", "acme").status.phase == InstancePhase.RUNNING
