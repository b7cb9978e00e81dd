"""Every route of DESIGN §7 through a real server on real etcd, as the admin."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import yaml

from tests.integration.apiserver.conftest import ROOT, firewall

FW = f"{ROOT}/namespaces/team-a/firewalls"


def _ok(response: httpx.Response, code: int = 200) -> Any:
    assert response.status_code == code, response.text
    return response.json()


def test_system_endpoints(admin: httpx.Client) -> None:
    anonymous = httpx.Client(base_url=str(admin.base_url))
    assert anonymous.get("/healthz").text == "ok"
    assert anonymous.get("/readyz").text == "ok"
    assert anonymous.get("/version").json()["apiVersion"] == "skybroker.io/v1alpha1"
    admin.get(f"{FW}")
    assert "apiserver_requests_total" in anonymous.get("/metrics").text
    document = anonymous.get("/openapi.json").json()
    assert f"{ROOT}/namespaces/{{namespace}}/instances/{{name}}/status" in document["paths"]
    assert f"{ROOT}/pools/{{name}}" in document["paths"]
    assert "Instance" in document["components"]["schemas"]
    anonymous.close()
    groups = _ok(admin.get("/apis"))
    assert groups["groups"][0]["name"] == "skybroker.io"
    kinds = {r["name"]: r for r in _ok(admin.get(ROOT))["resources"]}
    assert kinds["instances"]["namespaced"] and not kinds["pools"]["namespaced"]


def test_namespaced_crud(admin: httpx.Client) -> None:
    created = _ok(admin.post(FW, json=firewall("web", app="web")), 201)
    assert created["status"]["phase"] == "Pending"
    assert created["metadata"]["uid"] and created["metadata"]["generation"] == 1
    got = _ok(admin.get(f"{FW}/web"))
    assert got["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]

    got["spec"]["rules"][0]["ports"] = "443"
    updated = _ok(admin.put(f"{FW}/web", json=got))
    assert updated["metadata"]["generation"] == 2
    stale = admin.put(f"{FW}/web", json=got)
    assert stale.status_code == 409 and stale.json()["reason"] == "Conflict"

    patched = _ok(
        admin.patch(
            f"{FW}/web",
            content=b'{"metadata": {"labels": {"tier": "front"}}}',
            headers={"Content-Type": "application/merge-patch+json"},
        )
    )
    assert patched["metadata"]["labels"] == {"app": "web", "tier": "front"}
    removed = _ok(
        admin.patch(
            f"{FW}/web",
            json={"metadata": {"labels": {"tier": None}}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
    )
    assert removed["metadata"]["labels"] == {"app": "web"}

    history = _ok(admin.get(f"{FW}/web/history"))["items"]
    assert [r["action"] for r in history][:2] == ["Created", "SpecChanged"]
    assert history[0]["actor"] == "admin"

    gone = _ok(admin.delete(f"{FW}/web"))
    assert gone["kind"] == "Status" and gone["status"] == "Success"
    assert admin.get(f"{FW}/web").status_code == 404


def test_yaml_body_and_cluster_scoped_kinds(admin: httpx.Client) -> None:
    profile = {"kind": "HardwareProfile", "metadata": {"name": "small"},
               "spec": {"cpu": {"min": 1, "max": 2}}}  # fmt: skip
    _ok(
        admin.post(
            f"{ROOT}/hardwareprofiles",
            content=yaml.safe_dump(profile).encode(),
            headers={"Content-Type": "application/yaml"},
        ),
        201,
    )
    assert _ok(admin.get(f"{ROOT}/hardwareprofiles/small"))["spec"]["cpu"] == {"min": 1, "max": 2}
    names = [i["metadata"]["name"] for i in _ok(admin.get(f"{ROOT}/namespaces"))["items"]]
    assert names == ["skybroker-system", "team-a", "team-b"]  # the system one is built in
    roles = [i["metadata"]["name"] for i in _ok(admin.get(f"{ROOT}/clusterroles"))["items"]]
    assert {"cluster-admin", "admin", "edit", "view"} <= set(roles)


def test_status_subresource_writes_status_only(admin: httpx.Client) -> None:
    _ok(admin.post(FW, json=firewall("web")), 201)
    current = _ok(admin.get(f"{FW}/web"))
    current["status"]["phase"] = "Ready"
    current["spec"]["rules"] = []
    written = _ok(admin.put(f"{FW}/web/status", json=current))
    assert written["status"]["phase"] == "Ready"
    assert written["spec"]["rules"], "a status write must not touch spec"
    assert written["metadata"]["generation"] == 1
    patched = _ok(
        admin.patch(
            f"{FW}/web/status",
            json={"status": {"phase": "Failed"}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
    )
    assert patched["status"]["phase"] == "Failed"
    assert _ok(admin.get(f"{FW}/web/status"))["status"]["phase"] == "Failed"
    assert admin.put(f"{ROOT}/namespaces/team-a/secrets/x/status", json={}).status_code == 404


def test_list_selector_paging_and_cross_namespace(admin: httpx.Client) -> None:
    for i in range(5):
        _ok(admin.post(FW, json=firewall(f"fw-{i}", tier="a" if i % 2 else "b")), 201)
    _ok(admin.post(f"{ROOT}/namespaces/team-b/firewalls", json=firewall("other", "team-b")), 201)
    selected = _ok(admin.get(FW, params={"labelSelector": "tier=a"}))["items"]
    assert [i["metadata"]["name"] for i in selected] == ["fw-1", "fw-3"]
    assert admin.get(FW, params={"labelSelector": "tier in (a"}).status_code == 400

    names, token, revisions = [], None, set()
    while True:
        params: dict[str, Any] = {"limit": 2}
        if token:
            params["continue"] = token
        page = _ok(admin.get(FW, params=params))
        names += [i["metadata"]["name"] for i in page["items"]]
        revisions.add(page["metadata"]["resourceVersion"])
        token = page["metadata"].get("continue")
        if not token:
            break
    assert names == [f"fw-{i}" for i in range(5)]
    assert len(revisions) == 1, "every page is read at the first page's revision"

    everywhere = _ok(admin.get(f"{ROOT}/firewalls"))["items"]
    assert {i["metadata"]["namespace"] for i in everywhere} == {"team-a", "team-b"}


def test_dry_run_writes_nothing(admin: httpx.Client) -> None:
    dry = _ok(admin.post(FW, json=firewall("web"), params={"dryRun": "All"}), 201)
    assert dry["metadata"]["name"] == "web"
    assert admin.get(f"{FW}/web").status_code == 404
    created = _ok(admin.post(FW, json=firewall("web")), 201)
    created["metadata"]["labels"] = {"x": "y"}
    _ok(admin.put(f"{FW}/web", json=created, params={"dryRun": "All"}))
    _ok(
        admin.patch(
            f"{FW}/web",
            json={"metadata": {"labels": {"z": "1"}}},
            params={"dryRun": "All"},
            headers={"Content-Type": "application/merge-patch+json"},
        )
    )
    _ok(admin.delete(f"{FW}/web", params={"dryRun": "All"}))
    stored = _ok(admin.get(f"{FW}/web"))
    assert stored["metadata"]["labels"] == {}
    assert stored["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert admin.post(FW, json=firewall("x"), params={"dryRun": "Some"}).status_code == 400


def test_delete_with_finalizers_marks_then_removes(admin: httpx.Client) -> None:
    body = firewall("web")
    body["metadata"]["finalizers"] = ["skybroker.io/cloud"]
    _ok(admin.post(FW, json=body), 201)
    marked = _ok(admin.delete(f"{FW}/web"))
    assert marked["kind"] == "Firewall" and marked["metadata"]["deletionTimestamp"]
    assert _ok(admin.get(f"{FW}/web"))["metadata"]["deletionTimestamp"]
    released = admin.patch(
        f"{FW}/web",
        json={"metadata": {"finalizers": None}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert released.status_code == 200, released.text
    assert admin.get(f"{FW}/web").status_code == 404


def test_admission_checks_references(admin: httpx.Client) -> None:
    account = {"kind": "ProviderAccount", "metadata": {"name": "sim"},
               "spec": {"driver": "simulated", "region": "local",
                        "images": {"ubuntu": "img-ubuntu"}}}  # fmt: skip
    _ok(admin.post(f"{ROOT}/provideraccounts", json=account), 201)
    pool = {"kind": "Pool", "metadata": {"name": "general"},
            "spec": {"members": [{"account": "sim"}], "allowedNamespaces": ["team-b"]}}  # fmt: skip
    _ok(admin.post(f"{ROOT}/pools", json=pool), 201)
    instance = {
        "kind": "Instance",
        "metadata": {"name": "vm"},
        "spec": {"pool": "general", "hardware": {"profile": "missing"}, "image": "ubuntu",
                 "subnetRef": "nope", "firewallRefs": ["fw-missing"]},
    }  # fmt: skip
    answer = admin.post(f"{ROOT}/namespaces/team-a/instances", json=instance)
    assert answer.status_code == 422, answer.text
    fields = {c["field"] for c in answer.json()["details"]["causes"]}
    assert fields == {
        "spec.pool", "spec.hardware.profile", "spec.subnetRef", "spec.firewallRefs[0]"
    }  # fmt: skip
    instance["spec"] = {"pool": "general", "hardware": {"cpu": 1}, "image": "ubuntu"}
    allowed = admin.post(f"{ROOT}/namespaces/team-b/instances", json=instance)
    assert allowed.status_code == 201, allowed.text
    assert allowed.json()["status"]["phase"] == "Pending"


def test_self_subject_access_review(client: Any) -> None:
    alice = client("alice")
    review = {"kind": "SelfSubjectAccessReview",
              "spec": {"resourceAttributes": {"verb": "create", "resource": "instances",
                                              "namespace": "team-a"}}}  # fmt: skip
    assert _ok(alice.post(f"{ROOT}/selfsubjectaccessreviews", json=review), 201)["status"][
        "allowed"
    ]
    review["spec"]["resourceAttributes"]["namespace"] = "team-b"
    answer = _ok(alice.post(f"{ROOT}/selfsubjectaccessreviews", json=review), 201)["status"]
    assert not answer["allowed"] and "alice" in answer["reason"]


@pytest.mark.parametrize(
    ("method", "path", "code"),
    [
        ("GET", f"{ROOT}/widgets", 404),
        ("GET", f"{ROOT}/instances/x", 404),  # namespaced kind without a namespace
        ("GET", f"{ROOT}/namespaces/team-a/pools", 404),  # cluster-scoped kind in a namespace
        ("PUT", FW, 405),
        ("POST", f"{FW}/web", 405),
        ("GET", "/nowhere", 404),
    ],
)
def test_bad_routes_answer_status(admin: httpx.Client, method: str, path: str, code: int) -> None:
    answer = admin.request(method, path, json={})
    assert answer.status_code == code
    assert answer.json()["kind"] == "Status"
