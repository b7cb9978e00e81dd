"""The kubectl habits of DESIGN §7, through the REST API and in the ``--etcd`` admin mode alike
(``any_backend``): output formats, kind names, ``create``, ``describe KIND``, dry runs, JSON
patches, ``wait --for=jsonpath``, ``version``, and the messages of what is missing."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from api_types import Instance
from controller.store.keys import ObjectKey
from controller.store.objects import Store
from skyctl.apply import LAST_APPLIED
from tests.integration.cli.helpers import Skyctl, write_manifest

VOLUME = """\
apiVersion: skybroker.io/v1alpha1
kind: Volume
metadata: {name: data-1, namespace: acme, labels: {app: db}}
spec: {pool: general, sizeGiB: 10}
"""


@pytest.fixture
def skyctl(any_backend: Skyctl, tmp_path: Path) -> Skyctl:
    """The web manifest (a profile, a firewall, instance web-1) and volume data-1 applied."""
    volume = tmp_path / "volume.yaml"
    volume.write_text(VOLUME)
    for manifest in (write_manifest(tmp_path / "web.yaml"), volume):
        applied = any_backend("apply", "-f", str(manifest))
        assert applied.code == 0, applied.err
    return any_backend


def web(store: Store) -> Instance:
    return store.get(Instance, "web-1", "acme")


def test_jsonpath_custom_columns_and_show_labels(skyctl: Skyctl) -> None:
    names = skyctl("get", "instances", "-n", "acme", "-o", "jsonpath={.items[*].metadata.name}")
    assert (names.code, names.out) == (0, "web-1"), names.err
    one = skyctl("get", "inst", "web-1", "-n", "acme", "-o", "jsonpath={.spec.image}")
    assert one.out == "ubuntu-22.04"
    ranged = skyctl(
        "get",
        "instances,volumes",
        "-n",
        "acme",
        "-o",
        'jsonpath={range .items[?(@.metadata.labels.app=="web")]}'
        '{.kind}/{.metadata.name}{"\\n"}{end}',
    )
    assert ranged.out == "Instance/web-1\n", ranged.err
    columns = skyctl(
        "get",
        "inst",
        "-n",
        "acme",
        "-o",
        "custom-columns=NAME:.metadata.name,FW:.spec.firewallRefs[*],X:.nope",
    )
    lines = columns.out.splitlines()
    assert lines[0].split() == ["NAME", "FW", "X"] and lines[1].split() == [
        "web-1",
        "web",
        "<none>",
    ]
    assert lines[1].index("web", len("web-1")) == lines[0].index("FW")
    labels = skyctl("get", "instances", "-n", "acme", "--show-labels")
    header, row = labels.out.splitlines()
    assert header.split()[-1] == "LABELS" and row.split()[-1] == "app=web"
    for bad in ("jsonpath={.items[", "custom-columns=NAME", "toml"):
        # argparse prints its message to the process's stderr (the unit tests read it)
        assert skyctl("get", "instances", "-n", "acme", "-o", bad).code == 2, bad


def test_kinds_by_short_name_comma_list_and_all(skyctl: Skyctl) -> None:
    both = skyctl("get", "inst,vol", "-n", "acme")
    assert both.code == 0, both.err
    instances, volumes = both.out.split("\n\n")
    assert instances.splitlines()[1].split()[0] == "instance.skybroker.io/web-1"
    assert volumes.splitlines()[1].split()[0] == "volume.skybroker.io/data-1"
    every = skyctl("get", "all", "-n", "acme", "-o", "name")
    assert every.out.splitlines() == [
        "instance.skybroker.io/web-1",
        "volume.skybroker.io/data-1",
        "subnet.skybroker.io/web",
        "firewall.skybroker.io/web",
    ]
    assert skyctl("get", "hp", "-o", "name").out == "hardwareprofile.skybroker.io/small-a\n"
    listed = skyctl("get", "-n", "acme", "-o", "json", "fw/web", "vol/data-1")
    assert [i["kind"] for i in json.loads(listed.out)["items"]] == ["Firewall", "Volume"]
    for kinds, text in (("spaceships", "unknown kind"), ("inst,", "empty")):
        unknown = skyctl("get", kinds, "-n", "acme")
        assert unknown.code == 2 and text in unknown.err, unknown.err
    # A short name comes alive with its kind (VirtualCluster): none here yet, but no error.
    none = skyctl("get", "vc", "-n", "acme")
    assert none.code == 0 and none.err == "No resources found in acme.\n", none.err
    nothing = skyctl("get")
    assert nothing.code == 2 and "KIND is required" in nothing.err and "names" not in nothing.err
    assert skyctl("get", "instances,volumes", "-n", "acme", "-w").code == 2
    across = skyctl("get", "hp,inst", "-A").out.split("\n\n")
    assert across[0].split()[0] == "NAME" and across[1].split()[:2] == ["NAMESPACE", "NAME"]
    assert skyctl("get", "inst", "web-1", "-A").code == 2  # a name needs its namespace


def test_not_found_names_the_object_not_its_key(skyctl: Skyctl) -> None:
    missing = skyctl("get", "instances", "web-8", "web-1", "-n", "acme")
    assert missing.code == 1
    assert missing.err == 'error: instances "web-8" not found in namespace acme\n'
    assert missing.out.splitlines()[1].split()[0] == "web-1"  # the others are still shown
    cluster = skyctl("get", "pool", "nowhere")
    assert cluster.err == 'error: pools "nowhere" not found\n'
    gone = skyctl("delete", "instance", "web-8", "-n", "acme")
    assert gone.code == 1 and 'instances "web-8" not found in namespace acme' in gone.err
    assert "instances/acme" not in gone.err


def test_create_refuses_what_exists_and_leaves_no_apply_record(
    any_backend: Skyctl, store: Store, tmp_path: Path
) -> None:
    volume = tmp_path / "volume.yaml"
    volume.write_text(VOLUME)
    for mode in ("server", "client"):
        dry = any_backend("create", "-f", str(volume), f"--dry-run={mode}")
        assert dry.out == "volume.skybroker.io/data-1 created (dry run)\n", dry.err
    assert any_backend("get", "volumes", "-n", "acme").err.startswith("No resources found")
    manifest = write_manifest(tmp_path / "web.yaml")
    created = any_backend("create", "-f", str(manifest))
    assert created.code == 0 and created.out.count(" created") == 4, created.err
    assert LAST_APPLIED not in (web(store).metadata.annotations or {})
    again = any_backend("create", "-f", str(manifest))
    assert again.code == 1 and again.out == ""
    assert 'instances "web-1" already exists in namespace acme' in again.err, again.err


def test_describe_a_whole_kind(skyctl: Skyctl) -> None:
    second = skyctl("patch", "fw/web", "-n", "acme", "-p", '{"metadata": {"labels": {"x": "1"}}}')
    assert second.code == 0, second.err
    described = skyctl("describe", "instances", "-n", "acme")
    assert described.code == 0 and described.out.startswith("Name:         web-1\n")
    everything = skyctl("describe", "vol", "-A")
    assert "Name:         data-1" in everything.out and "Namespace:    acme" in everything.out
    selected = skyctl("describe", "firewalls", "-n", "acme", "-l", "x=2")
    assert selected.code == 0 and "No resources found in acme" in selected.err


def test_dry_run_client_and_server_write_nothing(skyctl: Skyctl, store: Store) -> None:
    before = web(store).metadata.resource_version
    for mode in ("client", "server"):
        deleted = skyctl("delete", "instance", "web-1", "-n", "acme", f"--dry-run={mode}")
        assert deleted.out == "instance.skybroker.io/web-1 deleted (dry run)\n", deleted.err
        patched = skyctl(
            "patch",
            "inst/web-1",
            "-n",
            "acme",
            f"--dry-run={mode}",
            "-p",
            '{"spec": {"image": "debian-12"}}',
        )
        assert patched.out.endswith("patched (dry run)\n"), patched.err
        labelled = skyctl("label", "inst/web-1", "-n", "acme", "tier=db", f"--dry-run={mode}")
        assert labelled.out.endswith("labeled (dry run)\n"), labelled.err
    assert web(store).metadata.resource_version == before
    # Client side still checks the schema, and still reads: a missing object is not found.
    invalid = skyctl(
        "patch",
        "inst/web-1",
        "-n",
        "acme",
        "--dry-run=client",
        "-p",
        '{"spec": {"powerState": "Up"}}',
    )
    assert invalid.code == 1 and "spec.powerState" in invalid.err
    absent = skyctl("delete", "instance", "web-9", "-n", "acme", "--dry-run=client")
    assert absent.code == 1 and "not found" in absent.err


def test_delete_wait_false_returns_at_once(skyctl: Skyctl, store: Store) -> None:
    current = web(store)
    current.metadata.finalizers = ["test.skybroker.io/hold"]
    store.update(current)
    deleted = skyctl("delete", "instance", "web-1", "-n", "acme", "--wait=false")
    assert deleted.code == 0 and deleted.out == "instance.skybroker.io/web-1 deleted\n"
    assert web(store).metadata.deletion_timestamp is not None  # held by its finalizer


def test_json_patch_operations_and_errors_naming_the_operation(
    skyctl: Skyctl, store: Store
) -> None:
    operations = [
        {"op": "test", "path": "/spec/image", "value": "ubuntu-22.04"},
        {"op": "replace", "path": "/spec/image", "value": "debian-12"},
        {"op": "add", "path": "/metadata/labels/tier", "value": "front"},
        {"op": "copy", "from": "/metadata/labels/tier", "path": "/metadata/labels/copy"},
        {"op": "move", "from": "/metadata/labels/copy", "path": "/metadata/labels/moved"},
        {"op": "remove", "path": "/metadata/labels/app"},
        {"op": "add", "path": "/spec/firewallRefs/-", "value": "web"},
    ]
    done = skyctl(
        "patch", "inst/web-1", "-n", "acme", "--type", "json", "-p", json.dumps(operations)
    )
    assert (done.code, done.out) == (0, "instance.skybroker.io/web-1 patched\n"), done.err
    patched = web(store)
    assert patched.spec.image == "debian-12" and patched.spec.firewall_refs == ["web", "web"]
    assert patched.metadata.labels == {"tier": "front", "moved": "front"}
    again = [{"op": "test", "path": "/spec/image", "value": "debian-12"}]
    unchanged = skyctl("patch", "inst/web-1", "-n", "acme", "--type=json", "-p", json.dumps(again))
    assert unchanged.out.endswith("patched (no change)\n")

    failing = [operations[1], {"op": "test", "path": "/spec/image", "value": "ubuntu-22.04"}]
    refused = skyctl(
        "patch", "inst/web-1", "-n", "acme", "--type", "json", "-p", json.dumps(failing)
    )
    assert refused.code == 1 and "operation 1 (test /spec/image)" in refused.err, refused.err
    missing = [{"op": "remove", "path": "/spec/nope/deeper"}]
    absent = skyctl(
        "patch", "inst/web-1", "-n", "acme", "--type", "json", "-p", json.dumps(missing)
    )
    assert absent.code == 1 and "operation 0 (remove /spec/nope/deeper)" in absent.err
    invalid = [{"op": "replace", "path": "/spec/powerState", "value": "Up"}]
    rejected = skyctl(
        "patch", "inst/web-1", "-n", "acme", "--type", "json", "-p", json.dumps(invalid)
    )
    assert rejected.code == 1 and "spec.powerState" in rejected.err  # the server's validation
    for malformed, text in (
        ({"op": "add"}, "list of operations"),
        ([{"op": "frobnicate", "path": "/a"}], "operation 0: op 'frobnicate'"),
        ([{"op": "add", "path": "/a"}], "operation 0 (add): 'value' is missing"),
        ([{"op": "remove", "path": "spec"}], "JSON Pointer"),
    ):
        usage = skyctl(
            "patch", "inst/web-1", "-n", "acme", "--type", "json", "-p", json.dumps(malformed)
        )
        assert usage.code == 2 and text in usage.err, (malformed, usage.err)
    assert web(store).spec.image == "debian-12"


def test_wait_for_jsonpath(skyctl: Skyctl, store: Store) -> None:
    timed_out = skyctl(
        "wait",
        "inst/web-1",
        "-n",
        "acme",
        "--for=jsonpath={.status.phase}=Running",
        "--timeout=0.3s",
    )
    assert timed_out.code == 1 and "timed out" in timed_out.err
    changed = threading.Event()

    def run() -> None:
        changed.wait(30)
        current = web(store)
        current.status.phase = "Running"
        store.update_status(current)

    threading.Thread(target=run, daemon=True).start()
    changed.set()
    ready = skyctl(
        "wait",
        "inst/web-1",
        "-n",
        "acme",
        "--for=jsonpath={.status.phase}=Running",
        "--timeout=60s",
    )
    assert ready.code == 0 and ready.out == "instance.skybroker.io/web-1 condition met\n", ready.err
    present = skyctl(
        "wait", "inst/web-1", "-n", "acme", "--for=jsonpath=.spec.image", "--timeout=5s"
    )
    assert present.code == 0, present.err
    bad = skyctl("wait", "inst/web-1", "-n", "acme", "--for=jsonpath={.status[}=x")
    assert bad.code == 2


def test_version_is_two_plain_lines(any_backend: Skyctl) -> None:
    shown = any_backend("version")
    assert shown.code == 0, shown.err
    client, server = shown.out.splitlines()
    assert client.startswith("Client Version: ") and server.startswith("Server Version: ")
    assert "{" not in shown.out


ANCHORED = """\
apiVersion: skybroker.io/v1alpha1
kind: List
items:
  - kind: HardwareProfile
    metadata: {name: base, labels: &labels {team: infra, tier: "1"}}
    spec: &sizes {cpu: {min: 1, max: 2}, memoryMiB: {min: 1024}}
  - kind: HardwareProfile
    metadata: {name: bigger, labels: *labels}
    spec:
      <<: *sizes
      memoryMiB: {min: 4096}
"""


def test_yaml_anchors_and_merge_keys_in_manifests_and_in_direct_writes(
    any_backend: Skyctl, store: Store, tmp_path: Path
) -> None:
    manifest = tmp_path / "anchored.yaml"
    manifest.write_text(ANCHORED)
    applied = any_backend("apply", "-f", str(manifest))
    assert applied.code == 0, applied.err
    bigger = json.loads(any_backend("get", "hp", "bigger", "-o", "json").out)
    assert bigger["metadata"]["labels"] == {"team": "infra", "tier": "1"}
    assert bigger["spec"]["cpu"] == {"min": 1, "max": 2}
    assert bigger["spec"]["memoryMiB"] == {"min": 4096}
    # The same decoder reads a value written straight into etcd.
    direct = (
        b"apiVersion: skybroker.io/v1alpha1\nkind: HardwareProfile\n"
        b"metadata: {name: direct, labels: &l {a: b}, annotations: *l}\n"
        b"spec: {cpu: {min: 1}}\n"
    )
    store.client.put(store.layout.object_key(ObjectKey("hardwareprofiles", None, "direct")), direct)
    read = json.loads(any_backend("get", "hp", "direct", "-o", "json").out)
    assert read["metadata"]["labels"] == read["metadata"]["annotations"] == {"a": "b"}
