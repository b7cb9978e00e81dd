"""VirtualCluster through a real API server (DESIGN §10): served and listed like every kind,
covered by the built-in roles, its spec refused at the field's path, and admission's own
checks — the pool and each template's references, and ``host`` rules only on accounts that
can express them (EC2 placement groups)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.integration.apiserver.conftest import ROOT
from tests.waiting import eventually

TEAM_A = f"{ROOT}/namespaces/team-a/virtualclusters"
MERGE = {"Content-Type": "application/merge-patch+json"}
Wire = dict[str, Any]


def _vc(name: str, pool: str, *rules: Wire, namespace: str = "team-a") -> Wire:
    return {
        "apiVersion": "skybroker.io/v1alpha1",
        "kind": "VirtualCluster",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "pool": pool,
            "members": [
                {"name": "lb", "replicas": 2,
                 "template": {"hardware": {"profile": "small"}, "image": "ubuntu-22.04"}},
                {"name": "db", "replicas": 1,
                 "template": {"hardware": {"cpu": 2}, "image": "ubuntu-22.04"},
                 "volumes": [{"name": "data", "sizeGiB": 10, "device": "/dev/sdf"}]},
            ],
            "placement": [
                {"type": "AntiAffinity", "members": ["lb"], "topology": "zone"},
                *rules,
            ],
        },
    }  # fmt: skip


HOST = {"type": "AntiAffinity", "members": ["db", "lb"], "topology": "host"}


@pytest.fixture(autouse=True)
def cloud(admin: httpx.Client) -> None:
    """Accounts ``sim`` (simulated) and ``aws`` (ec2), both mapping ubuntu; pools ``mixed``
    (both) and ``ec2`` (aws only); the hardware profile ``small``."""
    accounts = [("sim", "simulated", "local"), ("aws", "ec2", "us-east-1")]
    for name, driver, region in accounts:
        account = {"kind": "ProviderAccount", "metadata": {"name": name},
                   "spec": {"driver": driver, "region": region,
                            "images": {"ubuntu-22.04": f"img-{name}"}}}  # fmt: skip
        assert admin.post(f"{ROOT}/provideraccounts", json=account).is_success
    for name, members in (("mixed", ["aws", "sim"]), ("ec2", ["aws"])):
        pool = {"kind": "Pool", "metadata": {"name": name},
                "spec": {"members": [{"account": a} for a in members]}}  # fmt: skip
        assert admin.post(f"{ROOT}/pools", json=pool).is_success
    profile = {"kind": "HardwareProfile", "metadata": {"name": "small"},
               "spec": {"cpu": {"min": 1, "max": 2}}}  # fmt: skip
    assert admin.post(f"{ROOT}/hardwareprofiles", json=profile).is_success


def _causes(answer: httpx.Response) -> list[tuple[str, str]]:
    assert answer.status_code == 422, answer.text
    return [(c["field"], c["message"]) for c in answer.json()["details"]["causes"]]


def test_created_read_and_listed_through_rest_under_the_built_in_roles(
    client: Callable[[str | None], httpx.Client],
) -> None:
    alice, viewer, bob = client("alice"), client("viewer"), client("bob")
    created = alice.post(TEAM_A, json=_vc("shop", "mixed"))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["kind"] == "VirtualCluster" and body["metadata"]["generation"] == 1
    assert "phase" not in body.get("status", {})  # conditions say how it is
    assert body["spec"]["placement"][0]["mode"] == "Required"  # defaulted

    got = viewer.get(f"{TEAM_A}/shop")
    assert got.status_code == 200 and got.json()["spec"] == body["spec"]
    assert [i["metadata"]["name"] for i in viewer.get(TEAM_A).json()["items"]] == ["shop"]
    assert viewer.get(f"{TEAM_A}/shop/status").status_code == 200
    refused = viewer.post(TEAM_A, json=_vc("other", "mixed"))
    assert refused.status_code == 403, refused.text
    assert refused.json()["message"] == (
        'User "viewer" cannot create resource "virtualclusters" in namespace "team-a"'
    )

    team_b = f"{ROOT}/namespaces/team-b/virtualclusters"
    assert bob.post(team_b, json=_vc("shop", "mixed", namespace="team-b")).status_code == 201
    patched = bob.patch(f"{team_b}/shop", json={"spec": {"pool": "ec2"}}, headers=MERGE)
    assert patched.status_code == 200 and patched.json()["metadata"]["generation"] == 2
    assert bob.get(TEAM_A).status_code == 403
    # A tenant may not write the status the controller reports.
    assert bob.put(f"{team_b}/shop/status", json=patched.json()).status_code == 403

    admin = client("admin")
    everywhere = admin.get(f"{ROOT}/virtualclusters").json()["items"]
    assert sorted((i["metadata"]["namespace"], i["metadata"]["name"]) for i in everywhere) == [
        ("team-a", "shop"), ("team-b", "shop")
    ]  # fmt: skip
    assert alice.delete(f"{TEAM_A}/shop").status_code == 200
    assert alice.get(f"{TEAM_A}/shop").status_code == 404


def test_served_in_the_openapi_document(admin: httpx.Client) -> None:
    document = admin.get("/openapi.json").json()
    assert [path for path in document["paths"] if "virtualclusters" in path] == [
        f"{ROOT}/namespaces/{{namespace}}/virtualclusters",
        f"{ROOT}/namespaces/{{namespace}}/virtualclusters/{{name}}",
        f"{ROOT}/namespaces/{{namespace}}/virtualclusters/{{name}}/status",
        f"{ROOT}/virtualclusters",
    ]
    assert "VirtualCluster" in document["components"]["schemas"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda w: w["spec"]["placement"][0].update(members=["x"]),
         ("spec.placement[0].members[0]", 'no member named "x"')),
        (lambda w: w["spec"]["members"][0]["template"].update(pool="ec2"),
         ("spec.members[0].template.pool",
          "a member's template has no pool or account: its Instances are drawn from spec.pool")),
        (lambda w: w["spec"]["members"][1].update(replicas=5000),
         ("spec.members[1].replicas", "must be at most 1000")),
    ],
)  # fmt: skip
def test_a_bad_spec_is_422_naming_the_field(
    admin: httpx.Client, change: Callable[[Wire], object], expected: tuple[str, str]
) -> None:
    wire = _vc("shop", "mixed")
    change(wire)
    assert _causes(admin.post(TEAM_A, json=wire)) == [expected]
    assert admin.get(TEAM_A).json()["items"] == []


def test_a_host_rule_is_refused_on_a_pool_with_an_account_that_cannot_express_it(
    admin: httpx.Client,
) -> None:
    message = (
        "topology host can be kept only on accounts with driver ec2 (EC2 placement groups), "
        "and account 'sim' of pool 'mixed' has driver 'simulated'"
    )
    for params in ({}, {"dryRun": "All"}):
        refused = admin.post(TEAM_A, params=params, json=_vc("shop", "mixed", HOST))
        assert _causes(refused) == [("spec.placement[1].topology", message)]
    assert admin.get(TEAM_A).json()["items"] == []
    # Every account of the pool speaks EC2: accepted.
    assert admin.post(TEAM_A, json=_vc("shop", "ec2", HOST)).status_code == 201
    # Moving it to the mixed pool is refused; relabelling it is not re-checked.
    moved = admin.patch(f"{TEAM_A}/shop", json={"spec": {"pool": "mixed"}}, headers=MERGE)
    assert _causes(moved) == [("spec.placement[1].topology", message)]
    pool = admin.get(f"{ROOT}/pools/ec2").json()
    pool["spec"]["members"].append({"account": "sim"})
    assert admin.put(f"{ROOT}/pools/ec2", json=pool).is_success
    labelled = admin.patch(f"{TEAM_A}/shop", json={"metadata": {"labels": {"a": "b"}}},
                           headers=MERGE)  # fmt: skip
    assert labelled.is_success, labelled.text
    # …but a new host rule is checked against the pool as it is now (the old one made a zone
    # rule: a member is in one host rule at most).
    first = labelled.json()["spec"]["placement"][0]
    rules = [first, {**HOST, "topology": "zone"}, {**HOST, "type": "Proximity"}]
    patch = {"spec": {"placement": rules}}
    # Admission reads pools from a watched cache: wait until it has the grown pool.
    eventually(lambda: admin.patch(f"{TEAM_A}/shop", params={"dryRun": "All"}, json=patch,
                                   headers=MERGE).status_code == 422)  # fmt: skip
    grown = admin.patch(f"{TEAM_A}/shop", json=patch, headers=MERGE)
    assert _causes(grown) == [("spec.placement[2].topology", message.replace("mixed", "ec2"))]


def test_the_pool_and_the_templates_references_must_exist(admin: httpx.Client) -> None:
    missing_pool = _vc("shop", "nowhere", HOST)
    assert _causes(admin.post(TEAM_A, json=missing_pool)) == [
        ("spec.pool", "Pool 'nowhere' not found")  # as for an Instance; no host cause then
    ]
    wire = _vc("shop", "mixed")
    lb, db = wire["spec"]["members"]
    lb["template"]["hardware"] = {"profile": "huge"}
    lb["template"]["subnetRef"] = "web"
    lb["template"]["firewallRefs"] = ["web"]
    db["template"]["image"] = "windows-95"
    assert _causes(admin.post(TEAM_A, json=wire)) == [
        ("spec.members[0].template.hardware.profile", "HardwareProfile 'huge' not found"),
        ("spec.members[0].template.subnetRef", "Subnet 'web' not found in namespace 'team-a'"),
        ("spec.members[0].template.firewallRefs[0]",
         "Firewall 'web' not found in namespace 'team-a'"),
        ("spec.members[1].template.image",
         "image 'windows-95' is not mapped by any member account of pool 'mixed' (spec.images)"),
    ]  # fmt: skip


def test_a_pool_that_does_not_admit_the_namespace_is_refused(admin: httpx.Client) -> None:
    # A new pool, not an update of one: admission reads pools from a watched cache, and a pool
    # the cache has not seen yet is read from etcd, whereas an update reaches it a moment later.
    pool = {"kind": "Pool", "metadata": {"name": "team-b-only"},
            "spec": {"members": [{"account": "aws"}], "allowedNamespaces": ["team-b"]}}  # fmt: skip
    assert admin.post(f"{ROOT}/pools", json=pool).is_success
    assert _causes(admin.post(TEAM_A, json=_vc("shop", "team-b-only"))) == [
        ("spec.pool", "pool 'team-b-only' does not allow namespace 'team-a'")
    ]
