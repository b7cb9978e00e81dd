"""The informer against a real etcd: list + watch, compaction re-list, indexes, invalid values."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from api_types.accounts import HardwareProfile, HardwareProfileSpec
from api_types.meta import ObjectMeta, Resource
from api_types.tenancy import Secret
from controller.cache import NAMESPACE_INDEX, Informer
from controller.errors import FieldCause
from controller.labels import LabelSelector
from controller.metrics import RuntimeMetrics
from controller.store.embedded import EmbeddedEtcd
from controller.store.etcd import EtcdClient
from controller.store.keys import KeyLayout, ObjectKey
from controller.store.objects import Store
from tests.waiting import eventually


def profile(name: str, **labels: str) -> HardwareProfile:
    return HardwareProfile(
        metadata=ObjectMeta(name=name, labels=labels), spec=HardwareProfileSpec()
    )


def secret(name: str, namespace: str, **labels: str) -> Secret:
    return Secret(
        metadata=ObjectMeta(name=name, namespace=namespace, labels=labels),
        string_data={"key": name},
    )


class Recorder:
    """Every notification as (type, name, resourceVersion of the newest object)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, int]] = []

    def attach(self, informer: Informer[Any]) -> None:
        informer.add_handlers(on_add=self.add, on_update=self.update, on_delete=self.delete)

    def add(self, obj: Resource) -> None:
        self.seen.append(("add", obj.metadata.name, int(obj.metadata.resource_version or 0)))

    def update(self, old: Resource, new: Resource) -> None:
        # No assert here: the informer would contain it. A non-update shows in ``seen``.
        if old.metadata.resource_version == new.metadata.resource_version:
            self.seen.append(("non-update", new.metadata.name, 0))
            return
        self.seen.append(("update", new.metadata.name, int(new.metadata.resource_version or 0)))

    def delete(self, obj: Resource) -> None:
        self.seen.append(("delete", obj.metadata.name, int(obj.metadata.resource_version or 0)))


@pytest.fixture
def metrics() -> RuntimeMetrics:
    return RuntimeMetrics(CollectorRegistry())


@pytest.fixture
def profiles(store: Store, metrics: RuntimeMetrics) -> Iterator[Informer[HardwareProfile]]:
    informer = Informer(store, HardwareProfile, metrics=metrics)
    yield informer
    informer.stop()


def test_list_then_watch_delivers_changes_in_revision_order(
    store: Store, profiles: Informer[HardwareProfile]
) -> None:
    store.create(profile("a"))
    recorder = Recorder()
    recorder.attach(profiles)
    profiles.start()
    assert profiles.wait_for_sync(5)
    assert [s[:2] for s in recorder.seen] == [("add", "a")]

    b = store.create(profile("b"))
    a = store.get(HardwareProfile, "a")
    a.metadata.labels = {"tier": "gold"}
    a = store.update(a)
    store.delete(HardwareProfile, "b")
    eventually(lambda: len(recorder.seen) == 4)

    assert [s[:2] for s in recorder.seen] == [
        ("add", "a"),
        ("add", "b"),
        ("update", "a"),
        ("delete", "b"),
    ]
    revisions = [s[2] for s in recorder.seen[1:3]]
    assert (
        revisions
        == sorted(revisions)
        == [int(str(b.metadata.resource_version)), int(str(a.metadata.resource_version))]
    )
    cached = profiles.get(ObjectKey("hardwareprofiles", None, "a"))
    assert cached is not None and cached.metadata.labels == {"tier": "gold"}
    assert profiles.get(ObjectKey("hardwareprofiles", None, "b")) is None
    assert profiles.last_revision >= int(str(a.metadata.resource_version))


def test_get_returns_a_private_copy(store: Store, profiles: Informer[HardwareProfile]) -> None:
    store.create(profile("a"))
    profiles.start()
    assert profiles.wait_for_sync(5)
    key = ObjectKey("hardwareprofiles", None, "a")
    mine = profiles.get(key)
    assert mine is not None
    mine.metadata.labels["mutated"] = "yes"
    again = profiles.get(key)
    assert again is not None and again.metadata.labels == {}


def test_compaction_relists_and_emits_the_differences(
    store: Store,
    profiles: Informer[HardwareProfile],
    metrics: RuntimeMetrics,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A re-list tells the differences, and decodes only the values that changed (a key's
    value at one mod_revision is the one the cache already holds); a cached object whose value
    turned invalid meanwhile is told as invalid and leaves the cache."""
    for name in ("keep", "change", "remove", "spoil"):
        store.create(profile(name))
    decoded: list[str] = []
    decode = store.decode

    def counting_decode(key: ObjectKey, raw: bytes, mod_revision: int, **kw: Any) -> Resource:
        decoded.append(key.name)
        return decode(key, raw, mod_revision, **kw)

    monkeypatch.setattr(store, "decode", counting_decode)
    # Hold the informer between its first list and the start of its watch, change things,
    # and compact them away: the watch must fail as compacted and the informer re-list.
    release = threading.Event()
    recorder = Recorder()
    invalid: list[str] = []

    def hold_on_first_add(obj: Resource) -> None:
        release.wait(10)

    profiles.add_handlers(
        on_add=hold_on_first_add, on_invalid=lambda key, *_: invalid.append(key.name)
    )
    recorder.attach(profiles)
    profiles.start()
    eventually(lambda: profiles.last_revision > 0)
    listed_at = profiles.last_revision

    store.create(profile("new"))
    changed = store.get(HardwareProfile, "change")
    changed.metadata.labels = {"v": "2"}
    store.update(changed)
    store.delete(HardwareProfile, "remove")
    spoiled = store.layout.object_key(ObjectKey("hardwareprofiles", None, "spoil"))
    store.client.put(spoiled, b'{"kind": "HardwareProfile"')
    head = store.client.current_revision()
    assert head > listed_at + 1
    store.client.compact(head)
    decoded.clear()
    release.set()

    eventually(lambda: len(recorder.seen) == 8)
    assert sorted(decoded) == ["change", "new", "spoil"]
    assert invalid == ["spoil"]
    initial, synthetic = recorder.seen[:4], recorder.seen[4:]
    assert sorted(s[:2] for s in initial) == [
        ("add", "change"),
        ("add", "keep"),
        ("add", "remove"),
        ("add", "spoil"),
    ]
    assert sorted(s[:2] for s in synthetic) == [
        ("add", "new"),
        ("delete", "remove"),
        ("delete", "spoil"),
        ("update", "change"),
    ]
    assert metrics.informer_relists.labels(kind="HardwareProfile")._value.get() == 1
    assert sorted(o.metadata.name for o in profiles.list()) == ["change", "keep", "new"]

    # The new watch runs from the re-list's revision on.
    store.create(profile("after"))
    eventually(lambda: ("add", "after") in [s[:2] for s in recorder.seen])


def test_namespace_selector_and_custom_indexes(store: Store, metrics: RuntimeMetrics) -> None:
    secrets = Informer(store, Secret, metrics=metrics)
    try:
        store.create(secret("s1", "ns1", app="web"))
        store.create(secret("s2", "ns1", app="db"))
        store.create(secret("s3", "ns2", app="web"))
        secrets.start()
        assert secrets.wait_for_sync(5)
        # An index added after the sync is built over what is already cached.
        secrets.add_index(
            "app", lambda s: [s.metadata.labels["app"]] if "app" in s.metadata.labels else []
        )

        assert [s.metadata.name for s in secrets.list(namespace="ns1")] == ["s1", "s2"]
        assert [s.metadata.name for s in secrets.list()] == ["s1", "s2", "s3"]
        web = LabelSelector.parse("app=web")
        assert [s.metadata.name for s in secrets.list(selector=web)] == ["s1", "s3"]
        assert [s.metadata.name for s in secrets.list("ns2", web)] == ["s3"]
        assert [s.metadata.name for s in secrets.by_index("app", "web")] == ["s1", "s3"]
        assert [s.metadata.name for s in secrets.by_index(NAMESPACE_INDEX, "ns2")] == ["s3"]
        assert secrets.index_counts("app") == {"web": 2, "db": 1}

        s1 = store.get(Secret, "s1", "ns1")
        s1.metadata.labels = {"app": "db"}
        store.update(s1)
        store.delete(Secret, "s3", "ns2")
        eventually(lambda: [s.metadata.name for s in secrets.by_index("app", "web")] == [])
        assert [s.metadata.name for s in secrets.by_index("app", "db")] == ["s1", "s2"]
        assert secrets.index_counts("app") == {"db": 2}  # a value nothing yields is gone
        assert secrets.list(namespace="ns2") == []
        with pytest.raises(KeyError):
            secrets.by_index("missing", "x")
        with pytest.raises(KeyError):
            secrets.index_counts("missing")
        with pytest.raises(ValueError):
            secrets.add_index("app", lambda s: [])
    finally:
        secrets.stop()


def test_invalid_values_reach_on_invalid_and_leave_the_cache(
    store: Store, profiles: Informer[HardwareProfile]
) -> None:
    invalid: list[tuple[ObjectKey, int, tuple[FieldCause, ...], bytes]] = []
    recorder = Recorder()
    profiles.add_handlers(on_invalid=lambda *args: invalid.append(args))
    recorder.attach(profiles)
    key = ObjectKey("hardwareprofiles", None, "a")
    etcd_key = store.layout.object_key(key)
    store.client.put(store.layout.object_key(ObjectKey("hardwareprofiles", None, "junk")), b"[1, 2")
    store.create(profile("a"))
    profiles.start()
    assert profiles.wait_for_sync(5)
    assert [(k.name, raw) for k, _, _, raw in invalid] == [("junk", b"[1, 2")]
    assert invalid[0][2]  # the causes say what is wrong

    bad = (
        b'{"apiVersion": "skybroker.io/v1alpha1", "kind": "HardwareProfile",'
        b' "metadata": {"name": "a"}, "spec": {"cpu": "many"}}'
    )
    revision = int(store.client.put(etcd_key, bad).header.revision)
    eventually(lambda: len(invalid) == 2)
    assert invalid[1][0] == key and invalid[1][1] == revision and invalid[1][3] == bad
    assert any("cpu" in cause.field for cause in invalid[1][2])
    eventually(lambda: ("delete", "a") in [s[:2] for s in recorder.seen])
    assert profiles.get(key) is None

    store.client.put(etcd_key, profile("a").model_dump_json(by_alias=True).encode())
    eventually(lambda: profiles.get(key) is not None)
    assert [s[0] for s in recorder.seen] == ["add", "delete", "add"]


def test_late_handlers_get_the_cache_replayed_and_failing_handlers_are_contained(
    store: Store, profiles: Informer[HardwareProfile]
) -> None:
    store.create(profile("a"))
    store.create(profile("b"))

    def broken(obj: Resource) -> None:
        raise RuntimeError("handler bug")

    profiles.add_handlers(on_add=broken)
    profiles.start()
    assert profiles.wait_for_sync(5)
    late = Recorder()
    late.attach(profiles)
    assert [s[:2] for s in late.seen] == [("add", "a"), ("add", "b")]
    store.create(profile("c"))
    eventually(lambda: ("add", "c") in [s[:2] for s in late.seen])


@pytest.mark.slow
def test_an_etcd_restart_is_invisible(tmp_path: Path, metrics: RuntimeMetrics) -> None:
    server = EmbeddedEtcd(data_dir=tmp_path)
    server.start()
    client = EtcdClient([server.endpoint], retry_for=1.0, timeout=2.0)
    store = Store(client, KeyLayout("/own"))
    informer = Informer(store, HardwareProfile, metrics=metrics)
    recorder = Recorder()
    recorder.attach(informer)
    try:
        store.create(profile("before"))
        informer.start()
        assert informer.wait_for_sync(5)
        server.kill()
        server.start()
        store.create(profile("after"))
        eventually(lambda: len(recorder.seen) == 2, timeout=10)
        assert [s[:2] for s in recorder.seen] == [("add", "before"), ("add", "after")]
        assert metrics.informer_relists.labels(kind="HardwareProfile")._value.get() == 0
    finally:
        informer.stop()
        client.close()
        server.stop()


def test_get_reads_this_process_writes_before_the_watch_delivers_them(
    store: Store, profiles: Informer[HardwareProfile]
) -> None:
    created = store.create(profile("ryw"))
    profiles.start()
    assert profiles.wait_for_sync(5)
    key = ObjectKey("hardwareprofiles", None, "ryw")
    eventually(lambda: profiles.get(key) is not None)
    profiles.stop()  # the watch delivers nothing more: only the store's memory can help
    created.metadata.labels["tier"] = "gold"
    written = store.update(created)
    seen = profiles.get(key)
    assert seen is not None
    assert seen.metadata.resource_version == written.metadata.resource_version
    assert seen.metadata.labels == {"tier": "gold"}
    other = Store(store.client, store.layout)  # a write by someone else is not visible early
    current = other.get(HardwareProfile, "ryw")
    current.metadata.labels["tier"] = "silver"
    other.update(current)
    assert profiles.get(key).metadata.labels == {"tier": "gold"}  # type: ignore[union-attr]
