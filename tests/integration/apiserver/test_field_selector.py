"""``fieldSelector`` on list and watch: kubectl's syntax over name, namespace, phase and spec."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.integration.apiserver.conftest import ROOT

VMS = f"{ROOT}/namespaces/team-a/instances"
MERGE = {"Content-Type": "application/merge-patch+json"}

#: Admission checks that the image is mapped by the account.
IMAGES = {image: f"img-{image}" for image in ("ubuntu", "debian", "fedora")}


def _instance(name: str, image: str, **labels: str) -> dict[str, Any]:
    return {
        "kind": "Instance",
        "metadata": {"name": name, "labels": labels},
        "spec": {"account": "sim", "image": image, "hardware": {"cpu": 1}},
    }


@pytest.fixture
def instances(admin: httpx.Client) -> None:
    account = {"kind": "ProviderAccount", "metadata": {"name": "sim"},
               "spec": {"driver": "simulated", "region": "local", "images": IMAGES}}  # fmt: skip
    assert admin.post(f"{ROOT}/provideraccounts", json=account).status_code == 201
    for name, image, app in (("a", "ubuntu", "web"), ("b", "debian", "web"), ("c", "ubuntu", "db")):
        answer = admin.post(VMS, json=_instance(name, image, app=app))
        assert answer.status_code == 201, answer.text
    other = admin.post(f"{ROOT}/namespaces/team-b/instances", json=_instance("d", "ubuntu"))
    assert other.status_code == 201, other.text
    failed = admin.patch(f"{VMS}/c/status", json={"status": {"phase": "Failed"}}, headers=MERGE)
    assert failed.status_code == 200, failed.text


def _names(admin: httpx.Client, path: str = VMS, **params: Any) -> list[str]:
    answer = admin.get(path, params=params)
    assert answer.status_code == 200, answer.text
    return [item["metadata"]["name"] for item in answer.json()["items"]]


@pytest.mark.usefixtures("instances")
def test_list_selects_by_name_namespace_phase_and_spec(admin: httpx.Client) -> None:
    assert _names(admin, fieldSelector="metadata.name=b") == ["b"]
    assert _names(admin, fieldSelector="metadata.name==b") == ["b"]
    assert _names(admin, fieldSelector="status.phase!=Failed") == ["a", "b"]
    assert _names(admin, fieldSelector="spec.image=ubuntu") == ["a", "c"]
    assert _names(admin, fieldSelector="spec.image=ubuntu,status.phase=Pending") == ["a"]
    assert _names(admin, fieldSelector="spec.hardware.cpu=1,spec.account=sim") == ["a", "b", "c"]
    assert _names(admin, fieldSelector="spec.image=ubuntu", labelSelector="app=db") == ["c"]
    assert _names(admin, fieldSelector="spec.image=centos") == []
    everywhere = f"{ROOT}/instances"
    assert _names(admin, everywhere, fieldSelector="metadata.namespace=team-b") == ["d"]
    assert _names(admin, everywhere, fieldSelector="metadata.namespace!=team-b") == ["a", "b", "c"]


@pytest.mark.usefixtures("instances")
def test_pages_continue_past_items_the_selector_drops(admin: httpx.Client) -> None:
    names, token = [], None
    while True:
        params: dict[str, Any] = {"limit": 1, "fieldSelector": "spec.image=ubuntu"}
        if token:
            params["continue"] = token
        page = admin.get(VMS, params=params).json()
        names += [item["metadata"]["name"] for item in page["items"]]
        token = page["metadata"].get("continue")
        if not token:
            break
    assert names == ["a", "c"]


@pytest.mark.parametrize(
    "selector",
    ["metadata.labels=x", "spec.image>ubuntu", "spec.image", "status.conditions=x", "spec.=x"],
)
def test_a_bad_term_is_a_400_naming_it(admin: httpx.Client, selector: str) -> None:
    for params in ({"fieldSelector": selector}, {"fieldSelector": selector, "watch": "true"}):
        answer = admin.get(VMS, params=params)
        assert answer.status_code == 400, answer.text
        status = answer.json()
        assert status["kind"] == "Status" and status["reason"] == "BadRequest"
        assert selector in status["message"]


def _watch(admin: httpx.Client, params: dict[str, str], count: int) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    with admin.stream("GET", VMS, params={"watch": "true", **params}) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            event = json.loads(line) if line.strip() else {"type": "BOOKMARK"}
            if event["type"] != "BOOKMARK":
                seen.append((event["type"], event["object"]["metadata"]["name"]))
            if len(seen) == count:
                return seen
    return seen


@pytest.mark.usefixtures("instances")
def test_watch_sees_objects_leave_and_enter_the_selection(admin: httpx.Client) -> None:
    initial = _watch(admin, {"fieldSelector": "spec.image=ubuntu"}, 2)
    assert initial == [("ADDED", "a"), ("ADDED", "c")]
    start = admin.get(VMS).json()["metadata"]["resourceVersion"]
    for name, image in (("b", "ubuntu"), ("a", "fedora"), ("a", "ubuntu"), ("b", "debian")):
        patched = admin.patch(f"{VMS}/{name}", json={"spec": {"image": image}}, headers=MERGE)
        assert patched.status_code == 200, patched.text
    params = {"resourceVersion": start, "fieldSelector": "spec.image=ubuntu,metadata.name!=c"}
    assert _watch(admin, params, 4) == [
        ("ADDED", "b"),
        ("DELETED", "a"),
        ("ADDED", "a"),
        ("DELETED", "b"),
    ]
