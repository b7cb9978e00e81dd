"""``skyctl get -w`` over a connection that breaks: a real skyctl process, a real API server on
the session's etcd, and a TCP proxy between them that resets the connection mid-stream.

Every change is made through the store and the events skyctl prints (``-o json
--output-watch-events``, one per line) are compared with them: none missing, none twice.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from api_types import Firewall, registry
from controller.store.objects import Store
from skybroker.apiserver import HttpServer
from tests.integration.cli.helpers import running_api_server
from tests.integration.cli.proxy import TcpProxy
from tests.waiting import DEFAULT_TIMEOUT

ROOT = Path(__file__).resolve().parents[3]
Event = tuple[str, str, str]  # type, name, resourceVersion


def firewall(name: str) -> Firewall:
    rule = {"direction": "Ingress", "protocol": "tcp", "ports": "80", "cidrs": ["0.0.0.0/0"]}
    wire = {
        "kind": "Firewall",
        "metadata": {"name": name, "namespace": "acme"},
        "spec": {"rules": [rule]},
    }
    obj = registry.parse_object(wire)
    assert isinstance(obj, Firewall)
    return obj


def relabel(store: Store, name: str, value: str) -> str:
    """A spec-side write (labels); returns the new resourceVersion."""
    current = store.get(Firewall, name, "acme")
    current.metadata.labels["v"] = value
    return str(store.update(current).metadata.resource_version)


class Output:
    """The lines of a process's stdout, read on a thread so a test can wait with a timeout."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)

    def events(self, count: int, timeout: float = DEFAULT_TIMEOUT) -> list[Event]:
        found = []
        deadline = time.monotonic() + timeout
        while len(found) < count:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"only {found} of {count} events arrived") from None
            event = json.loads(line)
            metadata = event["object"]["metadata"]
            found.append((event["type"], metadata["name"], metadata["resourceVersion"]))
        return found

    def nothing_more(self, wait: float = 1.5) -> None:
        time.sleep(wait)
        extra = []
        while not self._lines.empty():
            extra.append(self._lines.get())
        assert not extra, f"unexpected output: {extra}"


@pytest.fixture
def server(store: Store, tmp_path: Path) -> Iterator[HttpServer]:
    with running_api_server(store, tmp_path) as http:
        yield http


@pytest.fixture
def proxy(server: HttpServer) -> Iterator[TcpProxy]:
    tcp = TcpProxy(server.address)
    yield tcp
    tcp.close()


@pytest.fixture
def watch(
    proxy: TcpProxy, tmp_path: Path
) -> Iterator[tuple[Output, subprocess.Popen[str], list[str]]]:
    """``skyctl get firewalls -w`` through the proxy: (its stdout, the process, its stderr)."""
    stderr_lines: list[str] = []
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "skyctl",
            "get",
            "firewalls",
            "-n",
            "acme",
            "-w",
            "-o",
            "json",
            "--output-watch-events",
            "--server",
            proxy.url,
            "--token",
            "admin-token",
        ],
        cwd=ROOT,
        env={**os.environ, "SKYCONFIG": str(tmp_path / "none.yaml")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    errors = process.stderr
    threading.Thread(target=lambda: stderr_lines.extend(errors), daemon=True).start()
    try:
        yield Output(process.stdout), process, stderr_lines
    finally:
        process.kill()
        process.wait(10)


def test_connections_reset_mid_stream_lose_and_repeat_nothing(
    store: Store, proxy: TcpProxy, watch: tuple[Output, subprocess.Popen[str], list[str]]
) -> None:
    first = store.create(firewall("fw-1"))
    output, process, stderr = watch
    assert output.events(1) == [("ADDED", "fw-1", first.metadata.resource_version)]

    # A burst of writes while the connection is reset again and again under it.
    written: list[Event] = []

    def write() -> None:
        for i in range(40):
            written.append(("MODIFIED", "fw-1", relabel(store, "fw-1", str(i))))
            time.sleep(0.02)

    writer = threading.Thread(target=write)
    writer.start()
    while writer.is_alive():
        time.sleep(0.15)
        proxy.drop()
    writer.join()
    # And changes made while no connection is possible at all.
    proxy.refuse()
    created = store.create(firewall("fw-2"))
    written.append(("ADDED", "fw-2", str(created.metadata.resource_version)))
    store.delete(Firewall, "fw-1", "acme")
    time.sleep(0.5)
    proxy.allow()

    seen = output.events(len(written) + 1)
    assert seen[:-1] == written
    assert seen[-1][:2] == ("DELETED", "fw-1")
    assert int(seen[-1][2]) > int(written[-1][2])
    output.nothing_more()
    assert process.poll() is None  # still watching
    assert proxy.connections > 3, "the connection was not actually cut"
    assert any("resuming from resourceVersion" in line for line in stderr), stderr


def test_a_compacted_resource_version_relists_and_shows_only_the_differences(
    store: Store, proxy: TcpProxy, watch: tuple[Output, subprocess.Popen[str], list[str]]
) -> None:
    versions = {
        n: store.create(firewall(n)).metadata.resource_version
        for n in ("same", "changed", "removed")
    }
    output, _, stderr = watch
    assert sorted(e[:2] for e in output.events(3)) == [
        ("ADDED", "changed"),
        ("ADDED", "removed"),
        ("ADDED", "same"),
    ]
    proxy.refuse()
    changed = relabel(store, "changed", "1")
    store.delete(Firewall, "removed", "acme")
    added = store.create(firewall("added")).metadata.resource_version
    store.client.compact(store.client.current_revision())
    proxy.allow()

    # Deletions first, then the list in its (key) order; "same" did not change: not shown.
    assert output.events(3) == [
        ("DELETED", "removed", versions["removed"]),  # as last shown
        ("ADDED", "added", added),
        ("MODIFIED", "changed", changed),
    ]
    output.nothing_more()
    assert any("re-listing" in line for line in stderr), stderr
    # and the watch goes on from the list's resourceVersion
    again = relabel(store, "same", "2")
    assert output.events(1) == [("MODIFIED", "same", again)]
