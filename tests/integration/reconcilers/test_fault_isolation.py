"""One tenant's teardown must not degrade the account for the others (issue 9, item 3).

A namespace whose instance uses a firewall and has a volume attached is deleted while another
tenant's instance waits to be placed on the same account: the firewall goes only once the
cloud no longer has an instance using it, so no delete is refused (DependencyViolation) and
the account's circuit breaker never opens.
"""

from __future__ import annotations

from api_types import Firewall, Instance, InstancePhase, Namespace, Subnet, Volume
from controller.store.keys import ObjectKey
from providers import default_metrics
from providers.budget import BreakerState
from reconcilers import firewall, instance, namespace, subnet, volume
from tests.integration.reconcilers.harness import (
    API,
    Harness,
    instance_manifest,
    pool_manifest,
    sim_account,
)
from tests.integration.reconcilers.test_firewall import HTTP, firewall_manifest
from tests.integration.reconcilers.test_subnet import subnet_manifest

ACCOUNT = "sim-isolation"


def refusals() -> dict[tuple[str, str], float]:
    """Calls on this test's own account the cloud refused (DependencyViolation, VolumeInUse…),
    by operation and code: everything but successes and the API budget's own waits."""
    return {
        (sample.labels["op"], sample.labels["code"]): sample.value
        for metric in default_metrics().registry.collect()
        for sample in metric.samples
        if sample.name == "provider_calls_total"
        and sample.labels.get("account") == ACCOUNT
        and sample.labels["code"] not in ("OK", "BudgetExhausted")
    }


def test_deleting_a_tenant_waits_for_its_instances_and_never_opens_the_breaker(
    harness: Harness,
) -> None:
    harness.apply(
        # Slow terminations: the instance holds its security group for a while.
        sim_account(ACCOUNT, terminate_seconds=3, volume_seconds=0.1),
        pool_manifest("general", [{"account": ACCOUNT}]),
        {"apiVersion": API, "kind": "Namespace", "metadata": {"name": "acme"}},
        {"apiVersion": API, "kind": "Namespace", "metadata": {"name": "other"}},
    )
    harness.start(
        namespace.register, subnet.register, firewall.register, instance.register, volume.register
    )
    harness.apply(
        subnet_manifest("web", "10.10.1.0/24"),
        firewall_manifest("web", [HTTP]),
        instance_manifest("web-1", pool="general", subnetRef="web", firewallRefs=["web"]),
        {
            "apiVersion": API,
            "kind": "Volume",
            "metadata": {"name": "data-1", "namespace": "acme"},
            "spec": {
                "pool": "general",
                "sizeGiB": 1,
                "attachTo": {"instance": "web-1", "device": "/dev/sdf"},
            },
        },
    )
    harness.wait_for(Volume, "data-1", "acme", lambda v: v.status.phase == "Attached")
    refused_before = refusals()

    harness.store.delete(Namespace, "acme")
    harness.apply(instance_manifest("app-1", namespace="other", pool="general"))
    harness.wait_gone(Namespace, "acme", None, timeout=60)
    for kind, name in ((Instance, "web-1"), (Volume, "data-1"), (Firewall, "web"), (Subnet, "web")):
        assert harness.get(kind, name, "acme") is None
    other = harness.wait_for(
        Instance, "app-1", "other", lambda i: i.status.phase == InstancePhase.RUNNING
    )
    scheduled = other.status.condition("Scheduled")
    assert scheduled is not None and scheduled.status == "True"
    assert refusals() == refused_before
    # It said what it waited for (the durable history keeps the transition).
    transitions = [
        change["after"]
        for record in harness.store.history(ObjectKey(Firewall.PLURAL, "acme", "web"))
        for change in record.changes
        if change["path"] == "status.conditions[Ready]"
    ]
    assert "False (InUse)" in transitions
    assert harness.provider(ACCOUNT).gate.breaker.state is BreakerState.CLOSED
    assert harness.cloud(ACCOUNT).list_firewalls() == []  # type: ignore[attr-defined]
