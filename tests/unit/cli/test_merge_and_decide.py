"""apply's decisions: the three-way merge patch, normalisation, and what counts as unchanged."""

from __future__ import annotations

import json
from typing import Any

import pytest

from controller.apply.manifests import Manifest
from controller.apply.merge import three_way_patch
from controller.mergepatch import merge_patch
from skyctl.apply import LAST_APPLIED, decide, prepare
from skyctl.backend import ApiError


def instance(**spec: Any) -> dict[str, Any]:
    body = {"pool": "general", "hardware": {"profile": "small"}, "image": "ubuntu"}
    body.update(spec)
    return {
        "apiVersion": "skybroker.io/v1alpha1",
        "kind": "Instance",
        "metadata": {"name": "web-1", "labels": {"app": "web"}},
        "spec": body,
    }


def stored(target_desired: dict[str, Any], **extra_metadata: Any) -> dict[str, Any]:
    """What a server holds after creating ``desired``: bookkeeping and status added."""
    live = json.loads(json.dumps(target_desired))
    live["metadata"].update(
        {"uid": "u-1", "resourceVersion": "7", "generation": 1, "finalizers": []},
        **extra_metadata,
    )
    live["status"] = {"phase": "Running", "conditions": []}
    return live


def test_three_way_patch_keeps_foreign_fields_and_drops_removed_ones() -> None:
    last = {"spec": {"a": 1, "b": 2}, "labels": {"mine": "x"}}
    desired = {"spec": {"a": 1}, "labels": {}}
    live = {"spec": {"a": 1, "b": 2, "c": 3}, "labels": {"mine": "x", "theirs": "y"}}
    patch = three_way_patch(last, desired, live)
    assert patch == {"spec": {"b": None}, "labels": {"mine": None}}
    assert merge_patch(live, patch) == {"spec": {"a": 1, "c": 3}, "labels": {"theirs": "y"}}


def test_lists_are_replaced_whole() -> None:
    live = {"rules": [{"port": 80}, {"port": 443}]}
    patch = three_way_patch({}, {"rules": [{"port": 80}]}, live)
    assert merge_patch(live, patch) == {"rules": [{"port": 80}]}


def test_unchanged_manifest_decides_no_write_despite_server_defaults() -> None:
    target = prepare(Manifest("t", instance()), "acme", None)
    live = stored(target.desired, finalizers=["skybroker.io/cloud"])
    assert target.desired["spec"]["powerState"] == "Running"  # model default, as stored
    assert decide(target, live) == ("unchanged", None)


def test_changed_field_configures_and_keeps_controller_finalizers() -> None:
    first = prepare(Manifest("t", instance()), "acme", None)
    live = stored(first.desired, finalizers=["skybroker.io/cloud"])
    second = prepare(Manifest("t", instance(image="debian", userData="#!/bin/sh")), "acme", None)
    action, merged = decide(second, live)
    assert action == "configured" and merged is not None
    assert merged["spec"]["image"] == "debian"
    assert merged["metadata"]["finalizers"] == ["skybroker.io/cloud"]
    assert merged["metadata"]["resourceVersion"] == "7"  # the CAS precondition
    assert "status" not in merged
    # Removing userData from the manifest removes it from the object.
    live2 = merge_patch(live, {"spec": {"image": "debian", "userData": "#!/bin/sh"}})
    live2["metadata"]["annotations"][LAST_APPLIED] = merged["metadata"]["annotations"][LAST_APPLIED]
    third = prepare(Manifest("t", instance(image="debian")), "acme", None)
    action, merged = decide(third, live2)
    assert action == "configured" and merged is not None
    assert "userData" not in merged["spec"]


def test_prepare_namespaces_and_server_fields() -> None:
    manifest = instance()
    manifest["metadata"].update(namespace="other", resourceVersion="3", uid="x")
    manifest["status"] = {"phase": "Running"}
    target = prepare(Manifest("t", manifest), "default", None)
    assert target.namespace == "other"
    assert "resourceVersion" not in target.desired["metadata"]
    assert "status" not in target.desired and "status" not in target.last_applied
    with pytest.raises(ApiError, match="does not match the namespace"):
        prepare(Manifest("t", manifest), "default", "acme")
    cluster = {"kind": "HardwareProfile", "metadata": {"name": "s", "namespace": "x"}, "spec": {}}
    assert prepare(Manifest("t", cluster), "acme", None).namespace is None


def test_prepare_reports_every_invalid_field() -> None:
    bad = instance(hardware={"cpu": "3"}, powerState="Sideways")
    with pytest.raises(ApiError) as caught:
        prepare(Manifest("file.yaml (document 1)", bad), "acme", None)
    fields = {cause.field for cause in caught.value.causes}
    assert {"spec.hardware.cpu", "spec.powerState"} <= fields
    assert caught.value.code == 422 and "file.yaml" in caught.value.message
    with pytest.raises(ApiError, match="unknown kind"):
        prepare(Manifest("t", {"kind": "Nope", "metadata": {"name": "x"}}), "acme", None)


def test_secret_string_data_compares_in_its_stored_form() -> None:
    secret = {"kind": "Secret", "metadata": {"name": "creds"}, "stringData": {"key": "k1"}}
    target = prepare(Manifest("t", secret), "acme", None)
    assert target.desired["data"] == {"key": "azE="} and target.desired["stringData"] == {}
    live = stored(target.desired)
    del live["status"]
    assert decide(target, live) == ("unchanged", None)
    assert "k1" not in target.desired["metadata"]["annotations"][LAST_APPLIED]
