"""BootConfig through a real API server (DESIGN §11, the data layer): served and listed like
every kind, covered by the built-in roles, its spec refused at the field's path; an Instance's
``bootConfigRef`` must name a BootConfig of its namespace, and never comes with ``userData``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.integration.apiserver.conftest import ROOT

TEAM_A = f"{ROOT}/namespaces/team-a/bootconfigs"
TEAM_B = f"{ROOT}/namespaces/team-b/bootconfigs"
INSTANCES = f"{ROOT}/namespaces/team-a/instances"
MERGE = {"Content-Type": "application/merge-patch+json"}
Wire = dict[str, Any]


def _bc(name: str, namespace: str = "team-a", **spec: Any) -> Wire:
    return {
        "apiVersion": "skybroker.io/v1alpha1",
        "kind": "BootConfig",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"config": "#!/bin/sh\necho configured\n", "parameters": {"role": "web"}, **spec},
    }


def _instance(name: str, **spec: Any) -> Wire:
    return {
        "kind": "Instance",
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": {"pool": "general", "hardware": {"cpu": 1}, "image": "ubuntu-22.04", **spec},
    }


@pytest.fixture(autouse=True)
def cloud(admin: httpx.Client) -> None:
    """Account ``sim`` mapping ubuntu, in pool ``general``."""
    account = {"kind": "ProviderAccount", "metadata": {"name": "sim"},
               "spec": {"driver": "simulated", "region": "local",
                        "images": {"ubuntu-22.04": "img-sim"}}}  # fmt: skip
    assert admin.post(f"{ROOT}/provideraccounts", json=account).is_success
    pool = {"kind": "Pool", "metadata": {"name": "general"},
            "spec": {"members": [{"account": "sim"}]}}  # fmt: skip
    assert admin.post(f"{ROOT}/pools", json=pool).is_success


def _causes(answer: httpx.Response) -> list[tuple[str, str]]:
    assert answer.status_code == 422, answer.text
    return [(c["field"], c["message"]) for c in answer.json()["details"]["causes"]]


def test_crud_through_rest_under_the_built_in_roles(
    client: Callable[[str | None], httpx.Client],
) -> None:
    alice, viewer, bob = client("alice"), client("viewer"), client("bob")
    created = alice.post(TEAM_A, json=_bc("web"))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["kind"] == "BootConfig" and body["metadata"]["generation"] == 1
    assert body["spec"]["dynamic"] is False and body["spec"]["slots"] == 0  # defaulted
    assert body["spec"]["staleAfter"] == "10m"
    assert "phase" not in body.get("status", {}) and "revision" not in body.get("status", {})

    got = viewer.get(f"{TEAM_A}/web")
    assert got.status_code == 200 and got.json()["spec"] == body["spec"]
    assert [i["metadata"]["name"] for i in viewer.get(TEAM_A).json()["items"]] == ["web"]
    assert viewer.get(f"{TEAM_A}/web/status").status_code == 200
    refused = viewer.post(TEAM_A, json=_bc("other"))
    assert refused.status_code == 403, refused.text
    assert refused.json()["message"] == (
        'User "viewer" cannot create resource "bootconfigs" in namespace "team-a"'
    )

    assert bob.post(TEAM_B, json=_bc("web", "team-b")).status_code == 201
    patched = bob.patch(
        f"{TEAM_B}/web", json={"spec": {"dynamic": True, "slots": 3}}, headers=MERGE
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["metadata"]["generation"] == 2
    assert bob.get(TEAM_A).status_code == 403
    # A tenant may not write the status the reconciler owns (revision, claimed slots).
    forged = patched.json() | {"status": {"revision": 9, "claimed": 3}}
    assert bob.put(f"{TEAM_B}/web/status", json=forged).status_code == 403

    admin = client("admin")
    everywhere = admin.get(f"{ROOT}/bootconfigs").json()["items"]
    assert sorted((i["metadata"]["namespace"], i["metadata"]["name"]) for i in everywhere) == [
        ("team-a", "web"), ("team-b", "web")
    ]  # fmt: skip
    status = admin.put(f"{TEAM_B}/web/status", json=forged)
    assert status.status_code == 200 and status.json()["status"]["claimed"] == 3
    assert alice.delete(f"{TEAM_A}/web").status_code == 200
    assert alice.get(f"{TEAM_A}/web").status_code == 404


def test_served_in_the_openapi_document(admin: httpx.Client) -> None:
    document = admin.get("/openapi.json").json()
    assert [path for path in document["paths"] if "bootconfigs" in path] == [
        f"{ROOT}/namespaces/{{namespace}}/bootconfigs",
        f"{ROOT}/namespaces/{{namespace}}/bootconfigs/{{name}}",
        f"{ROOT}/namespaces/{{namespace}}/bootconfigs/{{name}}/status",
        f"{ROOT}/bootconfigs",
    ]
    assert "BootConfig" in document["components"]["schemas"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"dynamic": True},
         ("spec.slots", "a dynamic BootConfig needs slots ≥ 1: how many agents may claim it")),
        ({"slots": 2},
         ("spec.slots", "slots are for dynamic BootConfigs: set dynamic: true, or slots: 0")),
        ({"staleAfter": "5s"}, ("spec.staleAfter", "'5s' must be between 30s and 24h")),
        ({"config": "x" * (64 * 1024 + 1)},
         ("spec.config", "must be at most 65536 bytes (64 KiB; got 65537)")),
        ({"parameters": {"no spaces": "x"}},
         ("spec.parameters.no spaces",
          "parameter key 'no spaces' must be 1-253 characters of alphanumerics, '-', '_' or '.'")),
    ],
)  # fmt: skip
def test_a_bad_spec_is_422_naming_the_field(
    admin: httpx.Client, spec: Wire, expected: tuple[str, str]
) -> None:
    assert _causes(admin.post(TEAM_A, json=_bc("web", **spec))) == [expected]
    assert admin.get(TEAM_A).json()["items"] == []


def test_an_instance_must_name_a_boot_config_of_its_namespace(admin: httpx.Client) -> None:
    missing = admin.post(INSTANCES, json=_instance("web-1", bootConfigRef="web"))
    assert _causes(missing) == [
        ("spec.bootConfigRef", "BootConfig 'web' not found in namespace 'team-a'")
    ]
    # One of another namespace does not count.
    assert admin.post(TEAM_B, json=_bc("web", "team-b")).status_code == 201
    assert _causes(admin.post(INSTANCES, json=_instance("web-1", bootConfigRef="web")))
    assert admin.post(TEAM_A, json=_bc("web")).status_code == 201
    health = {"remediation": "Replace", "after": "15m"}
    created = admin.post(INSTANCES, json=_instance("web-1", bootConfigRef="web", health=health))
    assert created.status_code == 201, created.text
    assert created.json()["spec"]["bootConfigRef"] == "web"
    assert created.json()["spec"]["health"] == health
    assert "agent" not in created.json()["status"]  # absent until an agent reports
    # Pointing it elsewhere is checked again; relabelling it is not.
    moved = admin.patch(f"{INSTANCES}/web-1", json={"spec": {"bootConfigRef": "db"}}, headers=MERGE)
    assert _causes(moved) == [
        ("spec.bootConfigRef", "BootConfig 'db' not found in namespace 'team-a'")
    ]
    assert admin.delete(f"{TEAM_A}/web").status_code == 200
    labelled = admin.patch(
        f"{INSTANCES}/web-1", json={"metadata": {"labels": {"a": "b"}}}, headers=MERGE
    )
    assert labelled.is_success, labelled.text


def test_user_data_with_a_boot_config_is_422_naming_user_data(admin: httpx.Client) -> None:
    assert admin.post(TEAM_A, json=_bc("web")).status_code == 201
    both = _instance("web-1", bootConfigRef="web", userData="#cloud-config\n")
    for params in ({}, {"dryRun": "All"}):
        assert _causes(admin.post(INSTANCES, params=params, json=both)) == [
            (
                "spec.userData",
                "must not be set together with bootConfigRef: the boot string is the user data",
            )
        ]
    assert admin.get(INSTANCES).json()["items"] == []


def test_a_virtualcluster_template_names_its_boot_config(admin: httpx.Client) -> None:
    template = {"hardware": {"cpu": 1}, "image": "ubuntu-22.04", "bootConfigRef": "web",
                "health": {"remediation": "Restart"}}  # fmt: skip
    vc = {
        "kind": "VirtualCluster",
        "metadata": {"name": "shop", "namespace": "team-a"},
        "spec": {"pool": "general",
                 "members": [{"name": "lb", "replicas": 1, "template": template}]},
    }  # fmt: skip
    clusters = f"{ROOT}/namespaces/team-a/virtualclusters"
    assert _causes(admin.post(clusters, json=vc)) == [
        ("spec.members[0].template.bootConfigRef",
         "BootConfig 'web' not found in namespace 'team-a'")
    ]  # fmt: skip
    assert admin.post(TEAM_A, json=_bc("web")).status_code == 201
    assert admin.post(clusters, json=vc).status_code == 201
