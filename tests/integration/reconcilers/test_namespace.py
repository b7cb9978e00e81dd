"""Namespace reconciler: Active, then deleting it deletes its contents (finalizers honoured)."""

from __future__ import annotations

import collections
import json

import pytest

from api_types import Firewall, Instance, Namespace, Quota, Secret, Subnet
from controller.reconcile import Request, Result
from controller.store.keys import ObjectKey
from reconcilers import firewall, instance, namespace, subnet
from reconcilers.deps import Deps
from tests.integration.reconcilers.harness import (
    API,
    Harness,
    instance_manifest,
    pool_manifest,
    sim_account,
)
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


class CountingReconciler:
    """Counts reconciles per object name (and does nothing else)."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()

    def reconcile(self, request: Request) -> Result:
        self.counts[request.name] += 1
        return Result()


FIREWALL_YAML = b"""
apiVersion: skybroker.io/v1alpha1
kind: Firewall
metadata: {name: %s, namespace: %s}
spec:
  rules: [{direction: Ingress, protocol: tcp, ports: "22", cidrs: [10.0.0.0/8]}]
"""


@pytest.mark.parametrize("state", ["missing", "terminating"])
def test_direct_writes_into_a_namespace_that_cannot_take_them_are_held(
    harness: Harness, state: str
) -> None:
    counting = CountingReconciler()
    harness.apply({"apiVersion": API, "kind": "Namespace", "metadata": {"name": "acme"}})
    if state == "terminating":
        harness.apply(
            {
                "apiVersion": API,
                "kind": "Namespace",
                "metadata": {"name": "phantom", "finalizers": ["test/hold"]},
            }
        )
        harness.store.delete(Namespace, "phantom")

    def register(deps: Deps) -> None:
        deps.manager.add_controller(Firewall, counting)

    harness.start(register)
    store = harness.store
    held = ObjectKey("firewalls", "phantom", "held")
    store.client.put(store.layout.object_key(held), FIREWALL_YAML % (b"held", b"phantom"))
    sentinel = ObjectKey("firewalls", "acme", "sentinel")
    store.client.put(store.layout.object_key(sentinel), FIREWALL_YAML % (b"sentinel", b"acme"))

    # The sentinel is normalised and reconciled, then resynced (every 2 s here) a few times:
    # the held firewall went through as many resync scans, and not one reconcile.
    harness.eventually(lambda: counting.counts["sentinel"] >= 3, 60, "sentinel resyncs")
    assert counting.counts["held"] == 0
    assert b"uid" not in store.client.range(store.layout.object_key(held)).kvs[0].value
    recorder = harness.manager.recorder
    recorder.flush(10)
    (warning,) = recorder.list_events(involved=held)
    assert warning.type == "Warning" and "firewalls/phantom/held" in warning.message
    expected = "does not exist" if state == "missing" else "is being terminated"
    assert f"namespace 'phantom' {expected}" in warning.message

    if state == "missing":  # the namespace created afterwards takes the held write in
        harness.apply({"apiVersion": API, "kind": "Namespace", "metadata": {"name": "phantom"}})
        harness.eventually(lambda: counting.counts["held"] >= 1, 30, "the held write's reconcile")
        assert harness.get(Firewall, "held", "phantom").metadata.uid  # type: ignore[union-attr]


def test_an_instance_written_into_a_missing_namespace_is_not_launched_until_it_exists(
    harness: Harness,
) -> None:
    harness.apply(
        sim_account("sim-a"),
        pool_manifest("general", [{"account": "sim-a"}]),
        {"apiVersion": API, "kind": "Namespace", "metadata": {"name": "acme"}},
    )
    harness.start(instance.register)
    store = harness.store
    for name, namespace_name in (("ghost-vm", "phantom"), ("real-vm", "acme")):
        manifest = instance_manifest(name, namespace_name, pool="general")
        key = ObjectKey("instances", namespace_name, name)
        store.client.put(store.layout.object_key(key), json.dumps(manifest).encode())
    real = harness.wait_for(Instance, "real-vm", "acme", lambda i: i.status.phase == "Running")
    assert [vm.uid for vm in harness.cloud("sim-a").list_instances()] == [real.metadata.uid]
    harness.wait_for_event("instances", "ghost-vm", "phantom", "InvalidObject")
    assert harness.get(Instance, "ghost-vm", "phantom").status.phase is None  # type: ignore[union-attr]

    harness.apply({"apiVersion": API, "kind": "Namespace", "metadata": {"name": "phantom"}})
    harness.wait_for(Instance, "ghost-vm", "phantom", lambda i: i.status.phase == "Running")
    assert len(harness.cloud("sim-a").list_instances()) == 2
