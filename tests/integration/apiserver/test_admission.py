"""Admission: the namespace a create goes into, and the image an Instance names."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from api_types import registry
from controller.store.objects import Store
from tests.integration.apiserver.conftest import ROOT, firewall


def _account(name: str, images: dict[str, str]) -> dict[str, Any]:
    return {"kind": "ProviderAccount", "metadata": {"name": name},
            "spec": {"driver": "simulated", "region": "local", "images": images}}  # fmt: skip


def _instance(name: str, **target: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"hardware": {"cpu": 1}, "image": "ubuntu-22.04", **target}
    return {"kind": "Instance", "metadata": {"name": name}, "spec": spec}


@pytest.fixture
def accounts(admin: httpx.Client) -> None:
    """``east`` maps ubuntu, ``west`` maps debian; pool ``both`` has them, ``west-only`` one."""
    for name, images in (("east", {"ubuntu-22.04": "img-u"}), ("west", {"debian-12": "img-d"})):
        assert admin.post(f"{ROOT}/provideraccounts", json=_account(name, images)).is_success
    for name, members in (("both", ["east", "west"]), ("west-only", ["west", "gone"])):
        pool = {"kind": "Pool", "metadata": {"name": name},
                "spec": {"members": [{"account": a} for a in members]}}  # fmt: skip
        assert admin.post(f"{ROOT}/pools", json=pool).is_success


def test_create_in_a_missing_namespace_is_404_naming_it(admin: httpx.Client) -> None:
    answer = admin.post(f"{ROOT}/namespaces/phantom/firewalls", json=firewall("web", "phantom"))
    assert answer.status_code == 404, answer.text
    assert answer.json()["reason"] == "NotFound"
    assert answer.json()["message"] == 'namespaces "phantom" not found'
    dry = admin.post(
        f"{ROOT}/namespaces/phantom/firewalls",
        params={"dryRun": "All"},
        json=firewall("web", "phantom"),
    )
    assert dry.status_code == 404
    assert admin.get(f"{ROOT}/firewalls").json()["items"] == []


def test_the_system_namespace_exists_and_may_not_be_deleted(admin: httpx.Client) -> None:
    assert admin.get(f"{ROOT}/namespaces/skybroker-system").status_code == 200
    answer = admin.delete(f"{ROOT}/namespaces/skybroker-system")
    assert answer.status_code == 403, answer.text
    assert answer.json()["message"] == (
        'namespaces "skybroker-system" is forbidden: this namespace may not be deleted'
    )
    assert (
        "deletionTimestamp"
        not in admin.get(f"{ROOT}/namespaces/skybroker-system").json()["metadata"]
    )


def test_create_in_a_terminating_namespace_is_403(admin: httpx.Client) -> None:
    held = {"kind": "Namespace", "metadata": {"name": "leaving", "finalizers": ["test/hold"]}}
    assert admin.post(f"{ROOT}/namespaces", json=held).status_code == 201
    url = f"{ROOT}/namespaces/leaving/firewalls"
    assert admin.post(url, json=firewall("before", "leaving")).status_code == 201
    assert admin.delete(f"{ROOT}/namespaces/leaving").json()["metadata"]["deletionTimestamp"]
    # The API server's namespace cache follows etcd's watch: wait for it to see the deletion.
    deadline = time.monotonic() + 30
    while (answer := admin.post(url, json=firewall("after", "leaving"))).status_code == 201:
        admin.delete(f"{url}/after")
        assert time.monotonic() < deadline, "the namespace never looked terminating"
        time.sleep(0.05)
    assert answer.status_code == 403, answer.text
    assert answer.json()["reason"] == "Forbidden"
    assert answer.json()["message"] == (
        "unable to create new content in namespace leaving because it is being terminated"
    )
    # what is already there can still be changed and deleted
    assert admin.patch(
        f"{url}/before",
        json={"metadata": {"labels": {"x": "y"}}},
        headers={"Content-Type": "application/merge-patch+json"},
    ).is_success
    assert admin.delete(f"{url}/before").status_code == 200


def test_objects_left_in_a_missing_namespace_can_be_changed_and_deleted(
    admin: httpx.Client, api_store: Store
) -> None:
    api_store.create(registry.parse_object(firewall("orphan", "ghost")))
    url = f"{ROOT}/namespaces/ghost/firewalls/orphan"
    patch = {"metadata": {"labels": {"x": "y"}}}
    headers = {"Content-Type": "application/merge-patch+json"}
    assert admin.patch(url, json=patch, headers=headers).is_success
    assert admin.delete(url).status_code == 200
    assert admin.get(url).status_code == 404


@pytest.mark.usefixtures("accounts")
@pytest.mark.parametrize(
    ("target", "image", "problem"),
    [
        ({"pool": "both"}, "ubuntu-22.04", None),
        ({"pool": "both"}, "debian-12", None),
        ({"pool": "both"}, "windows-95", "any member account of pool 'both'"),
        ({"pool": "west-only"}, "ubuntu-22.04", "any member account of pool 'west-only'"),
        ({"account": "east"}, "ubuntu-22.04", None),
        ({"account": "east"}, "debian-12", "account 'east'"),
    ],
)
def test_the_image_must_be_mapped_where_the_instance_may_go(
    admin: httpx.Client, target: dict[str, str], image: str, problem: str | None
) -> None:
    body = _instance("vm", **target)
    body["spec"]["image"] = image
    answer = admin.post(f"{ROOT}/namespaces/team-a/instances", json=body)
    if problem is None:
        assert answer.status_code == 201, answer.text
        return
    assert answer.status_code == 422, answer.text
    (cause,) = answer.json()["details"]["causes"]
    assert cause["field"] == "spec.image"
    assert f"image {image!r} is not mapped by {problem}" in cause["message"]


@pytest.mark.usefixtures("accounts")
def test_the_image_is_checked_again_only_when_it_or_the_target_changes(
    admin: httpx.Client,
) -> None:
    url = f"{ROOT}/namespaces/team-a/instances"
    assert admin.post(url, json=_instance("vm", pool="both")).status_code == 201
    headers = {"Content-Type": "application/merge-patch+json"}
    moved = admin.patch(f"{url}/vm", json={"spec": {"pool": "west-only"}}, headers=headers)
    assert moved.status_code == 422
    assert [c["field"] for c in moved.json()["details"]["causes"]] == ["spec.image"]
    # the account stops mapping the image: the instance can still be relabelled
    account = admin.get(f"{ROOT}/provideraccounts/east").json()
    account["spec"]["images"] = {}
    assert admin.put(f"{ROOT}/provideraccounts/east", json=account).is_success
    labelled = admin.patch(f"{url}/vm", json={"metadata": {"labels": {"a": "b"}}}, headers=headers)
    assert labelled.is_success, labelled.text
