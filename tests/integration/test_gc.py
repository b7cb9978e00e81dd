"""Owner-reference garbage collection against a real etcd."""

from __future__ import annotations

import orjson

from api_types import registry
from api_types.meta import OwnerReference, Resource
from controller.errors import NotFoundError
from controller.gc import GarbageCollector
from controller.store.keys import ObjectKey
from controller.store.objects import Store

Namespace = registry.by_kind("Namespace").model
Instance = registry.by_kind("Instance").model
Volume = registry.by_kind("Volume").model


def _instance(name: str, owners: list[OwnerReference], finalizers: list[str] | None = None):  # type: ignore[no-untyped-def]
    return registry.parse_object(
        {
            "apiVersion": "skybroker.io/v1alpha1",
            "kind": "Instance",
            "metadata": {
                "name": name,
                "namespace": "acme",
                "ownerReferences": [o.model_dump(by_alias=True) for o in owners],
                "finalizers": finalizers or [],
            },
            "spec": {"pool": "general", "hardware": {"profile": "small"}, "image": "ubuntu"},
        }
    )


def _namespace(store: Store, name: str) -> Resource:
    return store.create(
        registry.parse_object(
            {"apiVersion": "skybroker.io/v1alpha1", "kind": "Namespace", "metadata": {"name": name}}
        )
    )


def test_dependents_are_collected_after_their_owner_is_gone(store: Store) -> None:
    owner = _namespace(store, "acme")
    other = _namespace(store, "beta")
    ref = OwnerReference(kind="Namespace", name="acme", uid=str(owner.metadata.uid))
    other_ref = OwnerReference(kind="Namespace", name="beta", uid=str(other.metadata.uid))
    store.create(_instance("owned", [ref]))
    store.create(_instance("two-owners", [ref, other_ref]))
    store.create(_instance("held", [ref], finalizers=["skybroker.io/cloud"]))
    store.create(_instance("free", []))
    gc = GarbageCollector(store, [Namespace, Instance])
    assert gc.collect_once() == []  # every owner alive

    store.delete(Namespace, "acme")
    collected = gc.collect_once()
    assert sorted(k.name for k in collected) == ["held", "owned"]
    try:
        store.get(Instance, "owned", "acme")
        raise AssertionError("owned instance survived its owner")
    except NotFoundError:
        pass
    # finalizers still run: the held dependent is only marked for deletion
    assert store.get(Instance, "held", "acme").metadata.deletion_timestamp is not None
    # one owner left alive keeps a dependent
    assert store.get(Instance, "two-owners", "acme")
    assert store.get(Instance, "free", "acme")
    assert [r.action for r in store.history(ObjectKey("instances", "acme", "owned"))][-1] == (
        "Deleted"
    )
    assert gc.collect_once() == []


def test_a_sweep_reads_direct_writes_and_never_collects_an_invalid_value(store: Store) -> None:
    """The sweep reads uids and owners from the JSON: a YAML value is decoded by the store, an
    invalid dependent is left alone (its finalizers cannot be read), and an owner whose value
    does not validate still exists, so its dependents stay."""
    owner = _namespace(store, "acme")
    ref = OwnerReference(kind="Namespace", name="acme", uid=str(owner.metadata.uid))
    kept_owner = store.create(_instance("kept-owner", []))
    kept_ref = OwnerReference(kind="Instance", name="kept-owner", uid=str(kept_owner.metadata.uid))
    store.create(_instance("kept-dependent", [kept_ref]))
    bad = store.create(_instance("bad-dependent", [ref])).to_wire()
    bad["spec"]["image"] = 42  # a direct write of a wrong type
    put = store.client.put
    put(store.layout.object_key(ObjectKey("instances", "acme", "bad-dependent")), orjson.dumps(bad))
    owner_wire = kept_owner.to_wire()
    owner_wire["spec"]["pool"] = ["not", "a", "name"]
    put(
        store.layout.object_key(ObjectKey("instances", "acme", "kept-owner")),
        orjson.dumps(owner_wire),
    )
    yaml_dependent = (
        "apiVersion: skybroker.io/v1alpha1\nkind: Instance\nmetadata:\n"
        "  name: yaml-dependent\n  namespace: acme\n  uid: 5f0c1c3e-0000-4000-8000-000000000001\n"
        f"  ownerReferences:\n  - kind: Namespace\n    name: acme\n    uid: {owner.metadata.uid}\n"
        "spec:\n  pool: general\n  hardware:\n    profile: small\n  image: ubuntu\n"
    )
    put(
        store.layout.object_key(ObjectKey("instances", "acme", "yaml-dependent")),
        yaml_dependent.encode(),
    )
    gc = GarbageCollector(store, [Namespace, Instance])
    assert gc.collect_once() == []

    store.delete(Namespace, "acme")
    assert [k.name for k in gc.collect_once()] == ["yaml-dependent"]
    assert store.invalid_value(ObjectKey("instances", "acme", "bad-dependent")) is not None
    assert store.get(Instance, "kept-dependent", "acme")
    assert gc.collect_once() == []
