"""Namespace reconciler: Active, then deleting it deletes its contents (finalizers honoured)."""

from __future__ import annotations

from api_types import Firewall, Namespace, Quota, Secret, Subnet
from controller.store.keys import ObjectKey
from reconcilers import firewall, namespace, subnet
from tests.integration.reconcilers.harness import API, Harness, pool_manifest, sim_account
from tests.integration.reconcilers.test_firewall import HTTP, firewall_manifest
from tests.integration.reconcilers.test_subnet import subnet_manifest


def test_deleting_a_namespace_deletes_everything_in_it(harness: Harness) -> None:
    harness.apply(
        sim_account("sim-a"),
        pool_manifest("general", [{"account": "sim-a"}]),
        {"apiVersion": API, "kind": "Namespace", "metadata": {"name": "acme"}},
        {"apiVersion": API, "kind": "Namespace", "metadata": {"name": "other"}},
    )
    harness.start(namespace.register, subnet.register, firewall.register)
    harness.apply(
        subnet_manifest("web", "10.10.1.0/24"),
        subnet_manifest(
            "keep",
            "10.20.1.0/24",
            namespace="other",
            network={"name": "main", "cidr": "10.20.0.0/16"},
        ),
        firewall_manifest("web", [HTTP]),
        {
            "apiVersion": API,
            "kind": "Quota",
            "metadata": {"name": "default", "namespace": "acme"},
            "spec": {"hard": {"instances": 2}},
        },
        {
            "apiVersion": API,
            "kind": "Secret",
            "metadata": {"name": "token", "namespace": "acme"},
            "stringData": {"key": "value"},
        },
    )
    active = harness.wait_for(Namespace, "acme", None, lambda n: n.status.phase == "Active")
    assert active.metadata.finalizers == [namespace.FINALIZER]
    harness.wait_for(Subnet, "web", "acme", lambda s: s.status.phase == "Ready")
    harness.wait_for(Subnet, "keep", "other", lambda s: s.status.phase == "Ready")

    harness.store.delete(Namespace, "acme")
    harness.wait_gone(Namespace, "acme", None)
    for kind, name in ((Subnet, "web"), (Firewall, "web"), (Quota, "default"), (Secret, "token")):
        assert harness.get(kind, name, "acme") is None
    assert harness.get(Subnet, "keep", "other") is not None
    cloud = harness.provider("sim-a").inner
    assert [s.cidr for s in cloud.list_subnets()] == ["10.20.1.0/24"]  # type: ignore[attr-defined]


def test_values_that_do_not_decode_go_with_their_namespace(harness: Harness) -> None:
    harness.apply({"apiVersion": API, "kind": "Namespace", "metadata": {"name": "acme"}})
    harness.start(namespace.register)
    harness.wait_for(Namespace, "acme", None, lambda n: n.status.phase == "Active")
    store = harness.store
    undecodable = store.layout.object_key(ObjectKey("instances", "acme", "garbage"))
    wrong_types = store.layout.object_key(ObjectKey("firewalls", "acme", "typo"))
    store.client.put(undecodable, b"\xff\xfe not a manifest")
    store.client.put(
        wrong_types,
        b'{"kind": "Firewall", "metadata": {"name": "typo", "namespace": "acme"}, "spec": 7}',
    )

    store.delete(Namespace, "acme")
    harness.wait_gone(Namespace, "acme", None)
    assert not store.client.range(undecodable).kvs
    assert not store.client.range(wrong_types).kvs
