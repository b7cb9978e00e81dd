"""skyctl end to end in the ``--etcd`` admin mode, on the real etcd of the test session."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from api_types import Condition, Instance, PlacementRejection
from api_types.compute import InstancePlacement
from controller.events import EventRecorder
from controller.store.embedded import EmbeddedEtcd
from controller.store.etcd import EtcdClient
from controller.store.objects import Store
from tests.etcd_writes import key_revisions
from tests.integration.cli.helpers import Skyctl, seed, write_manifest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def skyctl(
    etcd_server: EmbeddedEtcd,
    key_prefix: str,
    store: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Skyctl:
    monkeypatch.setenv("SKYCONFIG", str(tmp_path / "no-config.yaml"))
    seed(store)
    return Skyctl(("--etcd", etcd_server.endpoint, "--etcd-prefix", key_prefix))


def instance(store: Store) -> Instance:
    return store.get(Instance, "web-1", "acme")


def test_apply_twice_writes_nothing_the_second_time(
    skyctl: Skyctl, etcd_client: EtcdClient, key_prefix: str, tmp_path: Path
) -> None:
    manifest = write_manifest(tmp_path / "web.yaml")
    first = skyctl("apply", "-f", str(manifest))
    assert first.code == 0, first.err
    assert first.out.splitlines() == [
        "hardwareprofile.skybroker.io/small-a created",
        "firewall.skybroker.io/web created",
        "subnet.skybroker.io/web created",
        "instance.skybroker.io/web-1 created",
    ]
    written = key_revisions(etcd_client, key_prefix)
    second = skyctl("apply", "-f", str(manifest))
    assert second.code == 0 and second.out.count("unchanged") == 4, second.out
    assert key_revisions(etcd_client, key_prefix) == written  # not one write
    assert skyctl("diff", "-f", str(manifest)).code == 0


def test_apply_change_diff_history_and_dry_run(
    skyctl: Skyctl, store: Store, etcd_client: EtcdClient, key_prefix: str, tmp_path: Path
) -> None:
    skyctl("apply", "-f", str(write_manifest(tmp_path / "web.yaml")))
    changed = write_manifest(tmp_path / "web2.yaml", image="debian-12")
    diff = skyctl("diff", "-f", str(changed))
    assert diff.code == 1
    assert "-  image: ubuntu-22.04" in diff.out and "+  image: debian-12" in diff.out
    written = key_revisions(etcd_client, key_prefix)
    dry = skyctl("apply", "-f", str(changed), "--dry-run")
    assert "instance.skybroker.io/web-1 configured (dry run)" in dry.out
    assert key_revisions(etcd_client, key_prefix) == written
    applied = skyctl("apply", "-f", str(changed))
    assert "instance.skybroker.io/web-1 configured" in applied.out
    assert instance(store).spec.image == "debian-12"
    assert instance(store).metadata.generation == 2
    history = skyctl("history", "instance/web-1", "-n", "acme")
    assert history.code == 0
    lines = history.out.splitlines()
    assert lines[0].split()[:4] == ["REVISION", "TIME", "ACTION", "ACTOR"]
    assert "Created" in lines[1] and "SpecChanged" in lines[2]
    assert 'spec.image: "ubuntu-22.04" → "debian-12"' in lines[2]


def test_prune_deletes_only_applied_objects_left_out(
    skyctl: Skyctl, store: Store, tmp_path: Path
) -> None:
    skyctl("apply", "-f", str(write_manifest(tmp_path / "web.yaml")))
    # An object with the label that apply did not create must survive the prune.
    foreign = instance(store).model_copy(deep=True)
    foreign.metadata.name, foreign.metadata.resource_version = "by-hand", None
    foreign.metadata.annotations = {}
    store.create(foreign)
    only_instance = tmp_path / "only.yaml"
    only_instance.write_text((tmp_path / "web.yaml").read_text().split("---\n")[3])
    assert skyctl("apply", "-f", str(only_instance), "--prune").code == 2  # needs -l
    result = skyctl("apply", "-f", str(only_instance), "--prune", "-l", "app=web")
    assert result.code == 0, result.err
    assert sorted(result.out.splitlines()) == [
        "firewall.skybroker.io/web pruned",
        "hardwareprofile.skybroker.io/small-a pruned",
        "instance.skybroker.io/web-1 unchanged",
        "subnet.skybroker.io/web pruned",
    ]
    listed = skyctl("get", "instances", "-n", "acme", "-o", "name")
    assert listed.out.split() == ["instance.skybroker.io/by-hand", "instance.skybroker.io/web-1"]


def test_get_describe_events_and_errors(skyctl: Skyctl, store: Store, tmp_path: Path) -> None:
    skyctl("apply", "-f", str(write_manifest(tmp_path / "web.yaml")))
    current = instance(store)
    current.status.phase = "Scheduled"
    current.status.placement = InstancePlacement(
        account="sim-east", region="r1", zone="r1a", size="m1.small"
    )
    current.status.rejections = [
        PlacementRejection(member="aws-east", account="aws-east", reason="image not mapped")
    ]
    current.status.conditions = [Condition(type="Scheduled", status="True", reason="Placed")]
    store.update_status(current)
    recorder = EventRecorder(store)
    recorder.record(current, "Normal", "Scheduled", "placed on sim-east")
    assert recorder.flush(10)
    recorder.stop()

    table = skyctl("get", "instances", "-n", "acme")
    assert table.out.splitlines()[1].split()[:4] == ["web-1", "general", "Scheduled", "sim-east"]
    assert skyctl("get", "instances", "-A").out.splitlines()[0].startswith("NAMESPACE")
    described = skyctl("describe", "instance", "web-1", "-n", "acme")
    assert described.code == 0, described.err
    for expected in (
        "Phase:        Scheduled",
        "Scheduled   True",
        "Account: sim-east",
        "aws-east",
        "image not mapped",
        "placed on sim-east",
        "Created",
    ):
        assert expected in described.out, expected
    events = skyctl("events", "-n", "acme")
    assert "Scheduled" in events.out and "Instance/web-1" in events.out
    assert skyctl("explain", "instance.spec.image").code == 0

    missing = skyctl("get", "instance", "nope", "-n", "acme")
    assert missing.code == 1 and "not found" in missing.err
    assert skyctl("get", "nokind").code == 2
    assert skyctl("get", "instances", "-l", "a in (").code == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "kind: Instance\nmetadata: {name: x, namespace: acme}\n"
        "spec: {pool: p, image: i, hardware: {cpu: '3'}}\n"
    )
    invalid = skyctl("apply", "-f", str(bad))
    assert invalid.code == 1 and "spec.hardware.cpu" in invalid.err


def test_wait_for_condition_with_timeout_and_delete_wait(
    skyctl: Skyctl, store: Store, tmp_path: Path
) -> None:
    skyctl("apply", "-f", str(write_manifest(tmp_path / "web.yaml")))
    timed_out = skyctl(
        "wait", "instance/web-1", "-n", "acme", "--for=condition=Ready", "--timeout=0.5s"
    )
    assert timed_out.code == 1 and "timed out" in timed_out.err

    def become_ready() -> None:
        time.sleep(0.3)
        current = instance(store)
        current.status.conditions = [Condition(type="Ready", status="True", reason="Running")]
        store.update_status(current)

    threading.Thread(target=become_ready).start()
    ready = skyctl("wait", "instance/web-1", "-n", "acme", "--for=condition=Ready", "--timeout=20s")
    assert ready.code == 0 and "condition met" in ready.out

    current = instance(store)
    current.metadata.finalizers = ["test/hold"]
    store.update(current)

    def release() -> None:
        time.sleep(0.3)
        held = instance(store)
        held.metadata.finalizers = []
        store.update(held)

    threading.Thread(target=release).start()
    deleted = skyctl("delete", "instance", "web-1", "-n", "acme", "--wait", "--timeout=20s")
    assert deleted.code == 0, deleted.err
    assert skyctl("get", "instance", "web-1", "-n", "acme").code == 1
    assert skyctl("wait", "instance/web-1", "-n", "acme", "--for=delete").code == 0
    assert skyctl("wait", "instance/web-1", "--for=bogus").code == 2


def test_get_watch_streams_in_a_real_process(
    etcd_server: EmbeddedEtcd, key_prefix: str, store: Store, tmp_path: Path
) -> None:
    seed(store)
    env = {**os.environ, "SKYCONFIG": str(tmp_path / "none.yaml")}
    manifest = write_manifest(tmp_path / "web.yaml")
    connection = ["--etcd", etcd_server.endpoint, "--etcd-prefix", key_prefix]
    applied = subprocess.run(
        [sys.executable, "-m", "skyctl", "apply", "-f", str(manifest), *connection],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert applied.returncode == 0, applied.stderr
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "skyctl",
            "get",
            "instances",
            "-n",
            "acme",
            "-w",
            *connection,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        header = watcher.stdout.readline()
        assert header.split()[0] == "NAME"
        assert watcher.stdout.readline().split()[0] == "web-1"
        current = instance(store)
        current.status.phase = "Running"
        store.update_status(current)
        streamed = watcher.stdout.readline()
        assert streamed.split()[:3] == ["web-1", "general", "Running"]
        # Rows streamed later line up with the header printed first.
        for column in ("PHASE", "ACCOUNT", "AGE"):
            value = streamed.split()[header.split().index(column)]
            assert streamed.index(value, len("web-1")) == header.index(column), (header, streamed)
        store.delete(Instance, "web-1", "acme")
        deleted = watcher.stdout.readline()
        assert deleted.split()[:2] == ["web-1", "general"] and deleted.rstrip().endswith(
            "(deleted)"
        )
        assert deleted.index("Running") == header.index("PHASE")
    finally:
        watcher.kill()
        watcher.wait(10)
