"""skyctl end to end against a real API server (uvicorn on a free port) on the session's etcd.

The server runs in this process (``skybroker.apiserver.HttpServer`` on a thread, as ``skybroker
up`` runs it); skyctl runs in-process through ``main(argv)`` for most checks and as a real
process reading its context from ``$SKYCONFIG`` for the last one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from api_types import Condition, Instance
from controller.store.etcd import EtcdClient
from controller.store.objects import Store
from skybroker.apiserver import HttpServer
from tests.etcd_writes import key_revisions
from tests.integration.cli.helpers import Skyctl, running_api_server, write_manifest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(store: Store, tmp_path: Path) -> Iterator[HttpServer]:
    with running_api_server(store, tmp_path) as http:
        yield http


@pytest.fixture
def as_user(
    server: HttpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Skyctl]:
    monkeypatch.setenv("SKYCONFIG", str(tmp_path / "no-config.yaml"))
    return {
        user: Skyctl(("--server", server.url, "--token", token))
        for user, token in (
            ("admin", "admin-token"),
            ("alice", "alice-token"),
            ("nobody", "nobody-token"),
            ("stranger", "wrong-token"),
        )
    }


def test_apply_twice_writes_nothing_then_change_describe_history_prune(
    as_user: dict[str, Skyctl], etcd_client: EtcdClient, key_prefix: str, tmp_path: Path
) -> None:
    skyctl = as_user["admin"]
    manifest = write_manifest(tmp_path / "web.yaml")
    first = skyctl("apply", "-f", str(manifest))
    assert first.code == 0, first.err
    assert first.out.count(" created") == 4
    written = key_revisions(etcd_client, key_prefix)
    second = skyctl("apply", "-f", str(manifest))
    assert second.code == 0 and second.out.count(" unchanged") == 4, second.out + second.err
    assert key_revisions(etcd_client, key_prefix) == written  # not one write
    assert skyctl("diff", "-f", str(manifest)).code == 0

    changed = write_manifest(tmp_path / "web2.yaml", image="debian-12")
    assert skyctl("diff", "-f", str(changed)).code == 1
    assert "instance.skybroker.io/web-1 configured" in skyctl("apply", "-f", str(changed)).out
    history = skyctl("history", "instance/web-1", "-n", "acme")
    assert "SpecChanged" in history.out and "admin" in history.out, history.err
    described = skyctl("describe", "instance", "web-1", "-n", "acme")
    assert described.code == 0, described.err
    assert "Phase:        Pending" in described.out  # admission answers at once with Pending
    assert "debian-12" in described.out and "SpecChanged" in described.out

    only_instance = tmp_path / "only.yaml"
    only_instance.write_text(changed.read_text().split("---\n")[3])
    pruned = skyctl("apply", "-f", str(only_instance), "--prune", "-l", "app=web")
    assert pruned.code == 0, pruned.err
    assert "firewall.skybroker.io/web pruned" in pruned.out
    assert "hardwareprofile.skybroker.io/small-a pruned" in pruned.out
    assert skyctl("get", "firewalls", "-n", "acme").err.startswith("No resources found")


def test_wait_and_delete_wait_through_the_api(
    as_user: dict[str, Skyctl], store: Store, tmp_path: Path
) -> None:
    skyctl = as_user["admin"]
    assert skyctl("apply", "-f", str(write_manifest(tmp_path / "web.yaml"))).code == 0
    timed_out = skyctl(
        "wait", "instance/web-1", "-n", "acme", "--for=condition=Ready", "--timeout=0.5s"
    )
    assert timed_out.code == 1 and "timed out" in timed_out.err

    def become_ready() -> None:
        time.sleep(0.3)
        current = store.get(Instance, "web-1", "acme")
        current.status.conditions = [Condition(type="Ready", status="True", reason="Up")]
        store.update_status(current)

    threading.Thread(target=become_ready).start()
    ready = skyctl("wait", "instance/web-1", "-n", "acme", "--for=condition=Ready", "--timeout=20s")
    assert ready.code == 0, ready.err
    gone = skyctl("delete", "instance", "web-1", "-n", "acme", "--wait", "--timeout=20s")
    assert gone.code == 0 and "instance.skybroker.io/web-1 deleted" in gone.out


def test_401_and_403_are_errors_with_the_servers_message(
    as_user: dict[str, Skyctl], tmp_path: Path
) -> None:
    unauthenticated = as_user["stranger"]("get", "instances", "-n", "acme")
    assert unauthenticated.code == 1 and unauthenticated.err.startswith("error: ")
    forbidden = as_user["nobody"]("get", "instances", "-n", "acme")
    assert forbidden.code == 1 and "nobody" in forbidden.err and "instances" in forbidden.err
    alice = as_user["alice"]
    assert alice("auth", "can-i", "create", "instances", "-n", "acme").code == 0
    denied = alice("auth", "can-i", "create", "instances", "-n", "other")
    assert denied.code == 1 and denied.out.strip() == "no"
    # A tenant applies into its own namespace; a cluster-scoped object is refused.
    firewall = tmp_path / "fw.yaml"
    firewall.write_text((write_manifest(tmp_path / "all.yaml")).read_text().split("---\n")[1])
    assert alice("apply", "-f", str(firewall)).code == 0
    refused = alice("apply", "-f", str(tmp_path / "all.yaml"))
    assert refused.code == 1 and "hardwareprofile" in refused.err


def skyctl_process(env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """skyctl as a real process in ``env`` (its $SKYCONFIG names the contexts)."""

    def skyctl(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "skyctl", *argv],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    return skyctl


def test_real_skyctl_process_with_a_context_and_a_streaming_watch(
    server: HttpServer, store: Store, tmp_path: Path
) -> None:
    env = {**os.environ, "SKYCONFIG": str(tmp_path / "config.yaml")}
    skyctl = skyctl_process(env)

    made = skyctl(
        "config",
        "set-context",
        "local",
        "--server",
        server.url,
        "--token",
        "admin-token",
        "--namespace",
        "acme",
    )
    assert made.returncode == 0, made.stderr
    assert skyctl("config", "use-context", "local").returncode == 0
    assert "*" in skyctl("config", "get-contexts").stdout
    assert (tmp_path / "config.yaml").stat().st_mode & 0o077 == 0  # it holds a token
    applied = skyctl("apply", "-f", str(write_manifest(tmp_path / "web.yaml")))
    assert applied.returncode == 0, applied.stderr
    watcher = subprocess.Popen(
        [sys.executable, "-m", "skyctl", "get", "instances", "-w"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        assert watcher.stdout.readline().split()[0] == "NAME"
        assert watcher.stdout.readline().split()[:3] == ["web-1", "general", "Pending"]
        current = store.get(Instance, "web-1", "acme")
        current.status.phase = "Running"
        store.update_status(current)
        assert watcher.stdout.readline().split()[:3] == ["web-1", "general", "Running"]
    finally:
        watcher.kill()
        watcher.wait(10)
    missing = skyctl("get", "instance", "nope")
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_kubectl_habits_in_a_real_process(server: HttpServer, store: Store, tmp_path: Path) -> None:
    """A real skyctl process with a context: create, short names and ``all``, jsonpath,
    ``wait --for=jsonpath`` while the status changes, plain ``version``, and a missing
    ``$SKYCONFIG`` file named as such."""
    config = tmp_path / "config.yaml"
    env = {**os.environ, "SKYCONFIG": str(config)}
    skyctl = skyctl_process(env)

    absent = skyctl("get", "instances")
    assert absent.returncode == 1 and f"config file {config} does not exist" in absent.stderr
    context = ("--server", server.url, "--token", "admin-token", "--namespace", "acme")
    assert skyctl("config", "set-context", "local", *context).returncode == 0
    manifest = write_manifest(tmp_path / "web.yaml")
    created = skyctl("create", "-f", str(manifest))
    assert created.returncode == 0 and created.stdout.count(" created") == 4, created.stderr
    again = skyctl("create", "-f", str(manifest))
    assert again.returncode == 1 and 'instances "web-1" already exists' in again.stderr
    assert skyctl("get", "all", "-o", "name").stdout.split() == [
        "instance.skybroker.io/web-1",
        "subnet.skybroker.io/web",
        "firewall.skybroker.io/web",
    ]
    phase = skyctl("get", "inst", "web-1", "-o", "jsonpath={.status.phase}")
    assert phase.stdout == "Pending", phase.stderr

    waiter = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "skyctl",
            "wait",
            "inst/web-1",
            "--for=jsonpath={.status.phase}=Running",
            "--timeout=60s",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        current = store.get(Instance, "web-1", "acme")
        current.status.phase = "Running"
        store.update_status(current)
        out, err = waiter.communicate(timeout=90)
    finally:
        waiter.kill()
    assert waiter.returncode == 0 and out == "instance.skybroker.io/web-1 condition met\n", err
    version = skyctl("version").stdout.splitlines()
    assert [line.split(":")[0] for line in version] == ["Client Version", "Server Version"]
