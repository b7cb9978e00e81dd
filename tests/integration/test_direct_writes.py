"""Manifests written straight into etcd: normalised when valid, reported when not."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from api_types import registry
from controller.errors import FieldCause
from controller.normalize import DirectWriteNormalizer, Outcome
from controller.store.keys import ObjectKey
from controller.store.objects import Store
from tests.waiting import eventually

Instance = registry.by_kind("Instance").model
Namespace = registry.by_kind("Namespace").model

VALID_YAML = b"""
apiVersion: skybroker.io/v1alpha1
kind: Instance
metadata: {name: web-1, namespace: acme, labels: {app: web}}
spec:
  pool: general
  hardware: {profile: small}
  image: ubuntu-22.04
"""

VALID_JSON = json.dumps({
    "apiVersion": "skybroker.io/v1alpha1", "kind": "Instance",
    "metadata": {"name": "web-2", "namespace": "acme"},
    "spec": {"pool": "general", "hardware": {"cpu": 2}, "image": "ubuntu-22.04"},
}).encode()  # fmt: skip

YAML_BOMB = b"""
apiVersion: skybroker.io/v1alpha1
kind: Instance
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
metadata: {name: bomb, namespace: acme}
"""


class Reports:
    def __init__(self) -> None:
        self.seen: list[tuple[ObjectKey, int, tuple[FieldCause, ...]]] = []

    def __call__(self, key: ObjectKey, mod_revision: int, causes: tuple[FieldCause, ...]) -> None:
        self.seen.append((key, mod_revision, causes))


@pytest.fixture
def reports() -> Reports:
    return Reports()


@pytest.fixture
def normaliser(store: Store, reports: Reports) -> DirectWriteNormalizer:
    store.create(Namespace.model_validate({"metadata": {"name": "acme"}}))
    return DirectWriteNormalizer(store, reports)


def put(store: Store, key: ObjectKey, value: bytes) -> int:
    return int(store.client.put(store.layout.object_key(key), value).header.revision)


def normalise(store: Store, normaliser: DirectWriteNormalizer, key: ObjectKey) -> Outcome:
    kv = store.client.range(store.layout.object_key(key)).kvs[0]
    return normaliser.normalise(bytes(kv.key), bytes(kv.value), int(kv.mod_revision))


def test_valid_yaml_is_normalised_to_json_with_metadata(
    store: Store, normaliser: DirectWriteNormalizer
) -> None:
    key = ObjectKey("instances", "acme", "web-1")
    put(store, key, VALID_YAML)
    assert normalise(store, normaliser, key) is Outcome.NORMALISED
    raw = store.client.range(store.layout.object_key(key)).kvs[0].value
    stored = json.loads(raw)
    assert stored["metadata"]["uid"]
    assert stored["metadata"]["generation"] == 1
    assert stored["metadata"]["creationTimestamp"]
    assert "resourceVersion" not in stored["metadata"]
    obj = store.get(Instance, "web-1", "acme")
    assert obj.metadata.labels == {"app": "web"}
    assert [r.action for r in store.history(key)] == ["Created"]
    # normalising again is a no-op
    assert normalise(store, normaliser, key) is Outcome.UNCHANGED


def test_direct_spec_change_bumps_generation(
    store: Store, normaliser: DirectWriteNormalizer
) -> None:
    key = ObjectKey("instances", "acme", "web-1")
    put(store, key, VALID_YAML)
    normalise(store, normaliser, key)
    kv = store.client.range(store.layout.object_key(key)).kvs[0]
    edited = json.loads(kv.value)
    edited["spec"]["image"] = "debian-12"
    revision = put(store, key, json.dumps(edited).encode())
    latest = store.client.range(store.layout.object_key(key)).kvs[0]
    outcome = normaliser.normalise(
        bytes(latest.key), bytes(latest.value), revision, prev_raw=bytes(kv.value)
    )
    assert outcome is Outcome.NORMALISED
    obj = store.get(Instance, "web-1", "acme")
    assert obj.metadata.generation == 2
    assert obj.spec.image == "debian-12"
    assert store.history(key)[-1].changes[0]["path"] == "spec.image"


def test_values_this_store_wrote_are_not_decoded_again_but_anything_else_is(
    store: Store, normaliser: DirectWriteNormalizer, reports: Reports
) -> None:
    """The normaliser trusts exactly the (key, revision) pairs its own store wrote."""
    key = ObjectKey("instances", "acme", "web-1")
    put(store, key, VALID_YAML)
    assert normalise(store, normaliser, key) is Outcome.NORMALISED  # written by this store
    written = store.client.range(store.layout.object_key(key)).kvs[0]
    etcd_key, revision = bytes(written.key), int(written.mod_revision)
    # Its own write is skipped without even decoding (garbage bytes would be reported)...
    assert normaliser.normalise(etcd_key, b"\xff not json", revision) is Outcome.UNCHANGED
    assert reports.seen == []
    # ...while the same key at any other revision is checked as usual.
    assert normaliser.normalise(etcd_key, b"\xff not json", revision + 1) is Outcome.INVALID
    assert [seen[1] for seen in reports.seen] == [revision + 1]
    # A direct write at a later revision is normalised, whatever this store wrote before.
    put(store, key, VALID_YAML)
    assert normalise(store, normaliser, key) is Outcome.NORMALISED


@pytest.mark.parametrize(
    ("name", "value", "expected_field", "expected_text"),
    [
        ("wrong-types", json.dumps({
            "apiVersion": "skybroker.io/v1alpha1", "kind": "Instance",
            "metadata": {"name": "wrong-types", "namespace": "acme"},
            "spec": {"pool": 7, "hardware": "big", "image": ["x"]},
        }).encode(), "spec.", ""),
        ("bomb", YAML_BOMB, "", "aliases"),
        ("huge", b'{"kind": "Instance", "pad": "' + b"x" * (10 * 1024 * 1024) + b'"}', "",
         "limit"),
        ("unknown-kind", json.dumps({
            "apiVersion": "skybroker.io/v1alpha1", "kind": "Spaceship",
            "metadata": {"name": "unknown-kind", "namespace": "acme"}, "spec": {},
        }).encode(), "kind", "Spaceship"),
        ("mismatch", VALID_YAML, "metadata.name", "key"),
        ("not-a-map", b"- just\n- a list\n", "", "mapping"),
        ("binary", b"\xff\xfe\x00garbage", "", "UTF-8"),
        ("huge-json-number", VALID_JSON.replace(b'"cpu": 2', b'"cpu": 1' + b"0" * 5000), "",
         "line 1 column"),
        ("huge-yaml-number",
         VALID_YAML.replace(b"{profile: small}", b"{cpu: 1" + b"0" * 5000 + b"}"), "",
         "5001 digits is out of range"),
        ("too-many-cpus", VALID_JSON.replace(b'"cpu": 2', b'"cpu": 1' + b"0" * 29),
         "spec.hardware.cpu", "at most 4096"),
    ],
)  # fmt: skip
def test_invalid_direct_writes_are_reported_and_left_alone(
    store: Store,
    normaliser: DirectWriteNormalizer,
    reports: Reports,
    name: str,
    value: bytes,
    expected_field: str,
    expected_text: str,
) -> None:
    bystander = ObjectKey("instances", "acme", "web-1")
    put(store, bystander, VALID_YAML)
    normalise(store, normaliser, bystander)
    bystander_revision = store.client.range(store.layout.object_key(bystander)).kvs[0].mod_revision

    key = ObjectKey("instances", "acme", name)
    revision = put(store, key, value)
    assert normalise(store, normaliser, key) is Outcome.INVALID
    (reported_key, reported_revision, causes), *_ = reports.seen
    assert reported_key == key and reported_revision == revision
    matching = [c for c in causes if c.field.startswith(expected_field) and expected_text in str(c)]
    assert matching, causes
    assert "int_max_str_digits" not in str(causes)  # no interpreter text
    # the invalid value and everything else are untouched
    kv = store.client.range(store.layout.object_key(key)).kvs[0]
    assert kv.mod_revision == revision and kv.value == value
    assert (
        store.client.range(store.layout.object_key(bystander)).kvs[0].mod_revision
        == bystander_revision
    )


@pytest.fixture
def running(normaliser: DirectWriteNormalizer) -> Iterator[DirectWriteNormalizer]:
    stop = threading.Event()
    thread = threading.Thread(target=normaliser.run, args=(stop,), daemon=True)
    thread.start()
    yield normaliser
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_run_loop_normalises_writes_as_they_arrive(
    store: Store, running: DirectWriteNormalizer, reports: Reports
) -> None:
    key = ObjectKey("instances", "acme", "web-1")
    put(store, key, VALID_YAML)
    bad = ObjectKey("instances", "acme", "bomb")
    put(store, bad, YAML_BOMB)
    eventually(
        lambda: (
            store.client.range(store.layout.object_key(key)).kvs[0].value.startswith(b"{")
            and reports.seen
        )
    )
    assert store.get(Instance, "web-1", "acme").metadata.uid
    assert [r[0] for r in reports.seen] == [bad]


def test_run_loop_outlives_a_failure_and_normalises_what_comes_after(
    store: Store, normaliser: DirectWriteNormalizer, reports: Reports
) -> None:
    """A tenure has one normaliser thread: an unexpected error (here the reporter's) must make
    it start over from a fresh list, not end it and leave every later direct write alone."""
    failed: list[ObjectKey] = []

    def failing_once(key: ObjectKey, mod_revision: int, causes: tuple[FieldCause, ...]) -> None:
        if not failed:
            failed.append(key)
            raise RuntimeError("the event recorder is broken")
        reports(key, mod_revision, causes)

    normaliser.report_invalid = failing_once
    stop = threading.Event()
    thread = threading.Thread(target=normaliser.run, args=(stop,), daemon=True)
    thread.start()
    try:
        bad = ObjectKey("instances", "acme", "web-2")
        put(store, bad, VALID_JSON.replace(b'"cpu": 2', b'"cpu": "two"'))
        eventually(lambda: failed)
        key = ObjectKey("instances", "acme", "web-1")
        put(store, key, VALID_YAML)
        # The fresh list goes in key order: web-1 is rewritten before web-2 is reported.
        eventually(
            lambda: (
                store.client.range(store.layout.object_key(key)).kvs[0].value[:1] == b"{"
                and bool(reports.seen)
            )
        )
        assert [r[0] for r in reports.seen] == [bad]  # reported again by the fresh list
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_new_objects_in_a_missing_namespace_are_held_until_it_is_created(
    store: Store, normaliser: DirectWriteNormalizer, reports: Reports
) -> None:
    key = ObjectKey("instances", "later", "web-1")
    value = VALID_YAML.replace(b"namespace: acme", b"namespace: later")
    revision = put(store, key, value)
    assert normalise(store, normaliser, key) is Outcome.HELD
    ((reported, reported_revision, causes),) = reports.seen
    assert (reported, reported_revision) == (key, revision)
    assert [c.field for c in causes] == ["metadata.namespace"]
    assert "namespace 'later' does not exist" in causes[0].message
    assert store.client.range(store.layout.object_key(key)).kvs[0].value == value
    # the namespace's own write (as the watch delivers it) lets the held object in
    namespace = store.create(Namespace.model_validate({"metadata": {"name": "later"}}))
    namespace_key = ObjectKey("namespaces", None, "later")
    assert normalise(store, normaliser, namespace_key) is Outcome.UNCHANGED
    assert store.get(Instance, "web-1", "later").metadata.uid
    assert namespace.metadata.uid and len(reports.seen) == 1


def test_new_objects_in_a_terminating_namespace_are_held(
    store: Store, normaliser: DirectWriteNormalizer, reports: Reports
) -> None:
    store.create(
        Namespace.model_validate({"metadata": {"name": "leaving", "finalizers": ["test/x"]}})
    )
    store.delete(Namespace, "leaving")
    key = ObjectKey("instances", "leaving", "web-1")
    put(store, key, VALID_YAML.replace(b"namespace: acme", b"namespace: leaving"))
    assert normalise(store, normaliser, key) is Outcome.HELD
    ((_, _, causes),) = reports.seen
    assert "namespace 'leaving' is being terminated" in causes[0].message
