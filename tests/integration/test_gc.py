"""Owner-reference garbage collection against a real etcd."""

from __future__ import annotations

from api_types import registry
from api_types.meta import OwnerReference
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


def test_dependents_are_collected_after_their_owner_is_gone(store: Store) -> None:
    owner = store.create(
        registry.parse_object(
            {
                "apiVersion": "skybroker.io/v1alpha1",
                "kind": "Namespace",
                "metadata": {"name": "acme"},
            }
        )
    )
    other = store.create(
        registry.parse_object(
            {
                "apiVersion": "skybroker.io/v1alpha1",
                "kind": "Namespace",
                "metadata": {"name": "beta"},
            }
        )
    )
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
