"""Real manager processes on a real etcd: fenced leader failover, and `skybroker controller`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, TypeVar

import pytest

from api_types import registry
from controller.events import EventRecorder
from controller.leader import shard_of
from controller.store.embedded import EmbeddedEtcd, free_port
from controller.store.etcd import EtcdClient, prefix_range_end
from controller.store.keys import KeyLayout, ObjectKey
from controller.store.objects import Store

T = TypeVar("T")
HERE = Path(__file__).resolve().parent
LEASE_TTL = 2.0
# A dead process's lease expires after LEASE_TTL; the survivor then needs only to be scheduled
# and to reconcile — seconds on a loaded machine, never a second lease period.
TAKEOVER_SLACK = 10.0


def wait_for(
    probe: Callable[[], T | None],
    timeout: float = 30.0,
    describe: Callable[[], str] | None = None,
) -> T:
    """Poll ``probe`` until it returns something true; on timeout fail with ``describe()`` (the
    state waited for, the processes' logs) so that a failure seen once can be understood."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.02)
    details = f"\n{describe()}" if describe is not None else ""
    raise AssertionError(f"condition not reached in {timeout:.0f}s{details}")


#: stdout and stderr of every spawned process, by pid, for :func:`output_tail`.
_outputs: dict[int, tuple[IO[bytes], IO[bytes]]] = {}


def spawn(*args: str) -> subprocess.Popen[bytes]:
    """Start a Python process whose output can never block it: its output goes to temporary
    files (a pipe left unread stops its writer once 64 KiB are buffered), which
    :func:`output_tail` reads when a test fails."""
    # Not closed here: the process writes them and output_tail reads them later.
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115
    process = subprocess.Popen([sys.executable, *args], stdout=out, stderr=err)
    _outputs[process.pid] = (out, err)
    return process


def output_tail(process: subprocess.Popen[bytes], limit: int = 6000) -> str:
    """The last ``limit`` characters of a spawned process's stdout and of its stderr."""
    parts = [f"process {process.pid} exit code: {process.poll()}"]
    for name, file in zip(("stdout", "stderr"), _outputs[process.pid], strict=True):
        file.seek(0, 2)
        size = file.tell()
        file.seek(max(0, size - limit))
        parts.append(f"--- {name} (last {limit} of {size} bytes) ---")
        parts.append(file.read().decode(errors="replace"))
    return "\n".join(parts)


def counter_history(client: EtcdClient, key: bytes, since: int) -> list[tuple[int, str, int]]:
    """(count, holder, revision) of every value the counter key had since ``since``."""
    from controller.store.watch import PrefixWatch

    history: list[tuple[int, str, int]] = []
    end = client.current_revision()
    watch = PrefixWatch(client, key, since)
    for batch in watch:
        for event in batch:
            count, holder = event.value.decode().split(":")
            history.append((int(count), holder, event.mod_revision))
        if watch.last_revision >= end:
            watch.stop()
    return history


def test_leader_failover_is_fenced_and_fast(
    etcd_server: EmbeddedEtcd,
    etcd_client: EtcdClient,
    store: Store,
    key_prefix: str,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    store.create(
        registry.parse_object(
            {
                "apiVersion": "skybroker.io/v1alpha1",
                "kind": "HardwareProfile",
                "metadata": {"name": "tick"},
                "spec": {"cpu": {"min": 1}},
            }
        )
    )
    counter = f"{key_prefix}/fence/counter".encode()
    start_revision = etcd_client.current_revision()
    script = str(HERE / "manager_process.py")
    first = spawn(script, etcd_server.endpoint, key_prefix, "first")
    processes.append(first)

    def holder() -> str | None:
        kvs = etcd_client.range(counter).kvs
        return kvs[0].value.decode().split(":")[1] if kvs else None

    wait_for(lambda: holder() == "first")
    second = spawn(script, etcd_server.endpoint, key_prefix, "second")
    processes.append(second)
    time.sleep(1.0)  # the second is up and campaigning, but must not reconcile
    assert holder() == "first"
    first.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    first.wait(timeout=10)
    wait_for(lambda: holder() == "second")
    takeover = time.monotonic() - killed_at
    assert takeover <= LEASE_TTL + TAKEOVER_SLACK, f"takeover took {takeover:.2f}s"

    history = counter_history(etcd_client, counter, start_revision + 1)
    holders = [h for _, h, _ in history]
    switch = holders.index("second")
    assert set(holders[:switch]) == {"first"} and set(holders[switch:]) == {"second"}, (
        "reconciles of the two processes interleaved"
    )
    counts = [c for c, _, _ in history]
    assert counts == list(range(1, len(counts) + 1)), "a fenced increment was lost or doubled"


def test_two_sharded_managers_split_the_objects_and_one_takes_over(
    etcd_server: EmbeddedEtcd,
    etcd_client: EtcdClient,
    store: Store,
    key_prefix: str,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    names = [f"p-{i}" for i in range(12)]
    for name in names:
        store.create(
            registry.parse_object(
                {
                    "apiVersion": "skybroker.io/v1alpha1",
                    "kind": "HardwareProfile",
                    "metadata": {"name": name},
                    "spec": {"cpu": {"min": 1}},
                }
            )
        )
    script = str(HERE / "manager_process.py")
    processes.append(spawn(script, etcd_server.endpoint, key_prefix, "alpha", "4"))
    processes.append(spawn(script, etcd_server.endpoint, key_prefix, "beta", "4"))

    def owners() -> dict[str, str]:
        found = {}
        for name in names:
            kvs = etcd_client.range(f"{key_prefix}/owners/{name}".encode()).kvs
            if kvs:
                found[name] = kvs[0].value.decode()
        return found

    def split_between_both() -> dict[int, set[str]] | None:
        # Whoever starts first reconciles everything; once the shards are rebalanced, every
        # object of a shard is reconciled again by that shard's one owner. Until then a shard
        # legitimately shows both: this waits for the settled split, not a snapshot of it.
        current = owners()
        shards: dict[int, set[str]] = {}
        for name, owner in current.items():
            shards.setdefault(shard_of(None, name, 4), set()).add(owner)
        settled = (
            len(current) == 12
            and all(len(o) == 1 for o in shards.values())
            and set(current.values()) == {"alpha", "beta"}
        )
        return shards if settled else None

    wait_for(split_between_both)

    processes[0].send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(lambda: set(owners().values()) == {"beta"})
    assert time.monotonic() - killed_at <= LEASE_TTL + TAKEOVER_SLACK


def test_skybroker_controller_process_normalises_reports_and_stops_cleanly(
    etcd_server: EmbeddedEtcd,
    store: Store,
    key_prefix: str,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    health = f"127.0.0.1:{free_port()}"
    process = spawn(
        "-m", "skybroker", "controller", "--etcd-endpoints", etcd_server.endpoint,
        "--prefix", key_prefix, "--health-listen", health, "--lease-ttl", "3",
        "--renew-every", "1",
    )  # fmt: skip
    processes.append(process)

    def get(path: str) -> tuple[int, bytes] | None:
        try:
            with urllib.request.urlopen(f"http://{health}{path}", timeout=1) as response:
                return response.status, response.read()
        except OSError:
            return None

    assert wait_for(lambda: get("/readyz"))[0] == 200
    assert wait_for(lambda: get("/healthz")) == (200, b"ok")
    metrics = wait_for(lambda: get("/metrics"))[1].decode()
    assert "leader_is_leader" in metrics or "reconcile" in metrics

    good = ObjectKey("namespaces", None, "acme")
    store.client.put(store.layout.object_key(good), b"kind: Namespace\n"
                     b"apiVersion: skybroker.io/v1alpha1\nmetadata: {name: acme}\n")  # fmt: skip
    bad = ObjectKey("namespaces", None, "bad")
    store.client.put(store.layout.object_key(bad), json.dumps({"kind": "Namespace"}).encode())
    wait_for(lambda: store.client.range(store.layout.object_key(good)).kvs[0].value[:1] == b"{")
    assert store.get(registry.by_kind("Namespace").model, "acme").metadata.uid
    recorder = EventRecorder(store)
    try:
        warnings = wait_for(
            lambda: [e for e in recorder.list_events("default") if e.reason == "InvalidObject"]
        )
    finally:
        recorder.stop()
    assert "namespaces/bad" in warnings[0].message and "metadata" in warnings[0].message
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError(f"no thread count for pid {pid}")


#: gRPC's native threads come and go with load (two more or fewer are ordinary); a leak was one
#: thread per open watch per restart — eleven here, so fifty-five after five restarts.
NATIVE_THREAD_NOISE = 5


@pytest.mark.slow
def test_etcd_restarts_leave_the_controllers_thread_count_where_it_was(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    """Every watch (informers, normaliser, elections) reconnects after each restart; the
    process must not keep a thread per dead stream."""
    etcd = EmbeddedEtcd(data_dir=tmp_path / "etcd")
    etcd.start()
    client = EtcdClient([etcd.endpoint])
    store = Store(client, KeyLayout("/threads"))
    try:
        process = spawn(
            "-m", "skybroker", "--log-level", "info", "controller",
            "--etcd-endpoints", etcd.endpoint, "--prefix", "/threads", "--health-listen", "",
            "--simulated-state-dir", str(tmp_path), "--lease-ttl", "3", "--renew-every", "1",
        )  # fmt: skip
        processes.append(process)

        def normalised(round_: int) -> None:
            key = store.layout.object_key(ObjectKey("namespaces", None, f"round-{round_}"))
            client.put(key, f"kind: Namespace\napiVersion: skybroker.io/v1alpha1\n"
                            f"metadata: {{name: round-{round_}}}\n".encode())  # fmt: skip

            def state() -> str:
                prefix = store.layout.lease_key("")
                leases = client.range(prefix, prefix_range_end(prefix)).kvs
                held = {bytes(kv.key).decode(): f"{kv.value.decode()} lease {kv.lease:x}"
                        for kv in leases}  # fmt: skip
                return (
                    f"round {round_}: {key.decode()} = {client.range(key).kvs[0].value!r}\n"
                    f"etcd revision {client.current_revision()}, leases: {held}\n"
                    f"{output_tail(process)}"
                )

            wait_for(lambda: client.range(key).kvs[0].value[:1] == b"{", timeout=60, describe=state)

        normalised(0)
        baseline = _threads(process.pid)
        for round_ in range(1, 6):
            etcd.kill()
            etcd.start()
            normalised(round_)  # the watches are back and the process works again
        wait_for(lambda: _threads(process.pid) <= baseline + NATIVE_THREAD_NOISE, timeout=60)
    finally:
        client.close()
        etcd.stop()
