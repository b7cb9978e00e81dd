"""``skyctl get --field-selector`` over both backends: lists, named gets and ``-w`` (where an
object that stops matching is shown DELETED), and the ``fieldSelector`` sent over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from api_types import Instance, registry
from controller.store.objects import Store
from tests.integration.cli.helpers import Skyctl, running_api_server, write_manifest
from tests.integration.cli.proxy import TcpProxy
from tests.integration.cli.test_watch_resume import Output

ROOT = Path(__file__).resolve().parents[3]


def instance(name: str, image: str) -> Instance:
    wire = {
        "kind": "Instance",
        "metadata": {"name": name, "namespace": "acme"},
        "spec": {"pool": "general", "hardware": {"profile": "small-a"}, "image": image},
    }
    obj = registry.parse_object(wire)
    assert isinstance(obj, Instance)
    return obj


def set_phase(store: Store, name: str, phase: str) -> str:
    current = store.get(Instance, name, "acme")
    current.status.phase = phase
    return str(store.update_status(current).metadata.resource_version)


def names(skyctl: Skyctl, *argv: str) -> list[str]:
    result = skyctl("get", "instances", "-n", "acme", "-o", "name", *argv)
    assert result.code == 0, result.err
    return result.out.split()


def seed_instances(skyctl: Skyctl, store: Store, tmp_path: Path) -> None:
    assert skyctl("apply", "-f", str(write_manifest(tmp_path / "web.yaml"))).code == 0
    store.create(instance("web-2", "debian-12"))
    store.create(instance("web-3", "debian-12"))
    set_phase(store, "web-2", "Running")
    set_phase(store, "web-3", "Pending")  # as admission would have


def test_lists_and_named_gets_are_filtered(
    any_backend: Skyctl, store: Store, tmp_path: Path
) -> None:
    seed_instances(any_backend, store, tmp_path)
    ref = "instance.skybroker.io/"
    assert names(any_backend, "--field-selector", "status.phase!=Running") == [
        ref + "web-1",
        ref + "web-3",
    ]
    assert names(any_backend, "--field-selector", "metadata.name==web-2") == [ref + "web-2"]
    assert names(any_backend, "--field-selector", "spec.image=debian-12,status.phase=Pending") == [
        ref + "web-3"
    ]
    assert names(any_backend, "--field-selector", "metadata.namespace=acme,spec.pool=general")
    combined = names(any_backend, "-l", "app=web", "--field-selector", "spec.image=ubuntu-22.04")
    assert combined == [ref + "web-1"]

    none = any_backend("get", "instances", "-n", "acme", "--field-selector", "spec.pool=other")
    assert none.code == 0 and none.err.startswith("No resources found in acme")
    named = any_backend(
        "get", "instance", "web-2", "-n", "acme", "--field-selector", "status.phase=Pending"
    )
    assert named.code == 0 and named.out == "" and "No resources found" in named.err

    bad = any_backend("get", "instances", "-n", "acme", "--field-selector", "metadata.labels=x")
    assert bad.code == 2
    assert "'metadata.labels=x'" in bad.err and "'metadata.labels' is not supported" in bad.err


def test_watch_shows_objects_leaving_the_selection_as_deleted(
    any_backend: Skyctl, store: Store, tmp_path: Path
) -> None:
    seed_instances(any_backend, store, tmp_path)
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "skyctl", "get", "instances", "-n", "acme", "-w"),
            *("--field-selector", "status.phase!=Running", "-o", "json", "--output-watch-events"),
            *any_backend.connection,
        ],
        cwd=ROOT,
        env={**os.environ, "SKYCONFIG": str(tmp_path / "none.yaml")},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        output = Output(process.stdout)
        assert [e[:2] for e in output.events(2)] == [("ADDED", "web-1"), ("ADDED", "web-3")]
        set_phase(store, "web-2", "Stopped")  # enters
        set_phase(store, "web-1", "Running")  # leaves
        pending = set_phase(store, "web-3", "Provisioning")  # stays
        set_phase(store, "web-1", "Failed")  # enters again
        seen = output.events(4)
        assert [e[:2] for e in seen] == [
            ("ADDED", "web-2"),
            ("DELETED", "web-1"),
            ("MODIFIED", "web-3"),
            ("ADDED", "web-1"),
        ]
        assert seen[2][2] == pending
        output.nothing_more(1.0)
    finally:
        process.kill()
        process.wait(10)


def test_the_field_selector_goes_to_the_server(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SKYCONFIG", str(tmp_path / "none.yaml"))
    with running_api_server(store, tmp_path) as server:
        proxy = TcpProxy(server.address)
        try:
            skyctl = Skyctl(("--server", proxy.url, "--token", "admin-token"))
            selector = "status.phase!=Running"
            result = skyctl("get", "instances", "-n", "acme", "--field-selector", selector)
            assert result.code == 0, result.err
        finally:
            proxy.close()
    request_line = bytes(proxy.sent).split(b"\r\n", 1)[0].decode()
    method, target, _ = request_line.split(" ")
    assert method == "GET" and target.startswith("/apis/skybroker.io/v1alpha1/namespaces/acme/")
    assert parse_qs(urlsplit(target).query)["fieldSelector"] == [selector]
