"""The controller SIGKILLed at random moments while it provisions: no duplicate, no leak.

Real processes (`skybroker controller`), a real etcd, the simulated cloud in a SQLite file
shared by every process. The cloud is checked directly, not through skybroker.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from api_types import Instance, registry
from controller.store.embedded import EmbeddedEtcd
from controller.store.etcd import EtcdClient
from controller.store.keys import KeyLayout
from controller.store.objects import Store
from providers import AccountConfig
from providers.simulated import SimulatedProvider
from providers.types import InstanceState

API = "skybroker.io/v1alpha1"
ACCOUNTS = {"sim-east": "sim-east-1", "sim-west": "sim-west-2"}


def account(name: str, region: str, **options: str) -> dict[str, Any]:
    annotations = {f"options.skybroker.io/{k}": v for k, v in options.items()}
    return {
        "apiVersion": API,
        "kind": "ProviderAccount",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "driver": "simulated",
            "region": region,
            "images": {"ubuntu-22.04": "img-ubuntu-2204"},
        },
    }


def seed(store: Store, count: int, **options: str) -> None:
    for name, region in ACCOUNTS.items():
        store.create(registry.parse_object(account(name, region, **options)))
    store.create(
        registry.parse_object(
            {
                "apiVersion": API,
                "kind": "Pool",
                "metadata": {"name": "general"},
                "spec": {
                    "members": [{"account": name} for name in ACCOUNTS],
                    "policy": {"type": "RoundRobin"},
                },
            }
        )
    )
    for i in range(count):
        store.create(registry.parse_object(instance_manifest(i)))


def instance_manifest(i: int) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Instance",
        "metadata": {"name": f"vm-{i:02d}", "namespace": "acme"},
        "spec": {"pool": "general", "hardware": {"cpu": 1}, "image": "ubuntu-22.04"},
    }


def cloud_instances(state_dir: Path) -> list[Any]:
    """Every live instance in every account, read from the simulated cloud itself."""
    found = []
    for name, region in ACCOUNTS.items():
        config = AccountConfig(
            name=name, driver="simulated", region=region,
            endpoint=str(state_dir / "simulated.sqlite"),
        )  # fmt: skip
        found.extend(
            i for i in SimulatedProvider(config).list_instances()
            if i.state is not InstanceState.TERMINATED
        )  # fmt: skip
    return found


def spawn_controller(server: EmbeddedEtcd, prefix: str, state_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "skybroker", "--log-level", "warning", "controller",
         "--etcd-endpoints", server.endpoint, "--prefix", prefix,
         "--simulated-state-dir", str(state_dir), "--health-listen", "",
         "--lease-ttl", "2", "--renew-every", "0.5", "--workers", "4"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def wait_all_running(store: Store, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        instances = store.list(Instance, "acme").items
        phases = Counter(i.status.phase for i in instances)
        if phases.get("Running") == count:
            return
        time.sleep(0.5)
    stuck = {
        i.metadata.name: [(c.type, c.status, c.reason, c.message) for c in i.status.conditions]
        for i in instances
        if i.status.phase != "Running"
    }
    raise AssertionError(f"not converged: {dict(phases)}; not running: {stuck}")


def assert_cloud_matches_store(store: Store, state_dir: Path, count: int) -> None:
    instances = store.list(Instance, "acme").items
    uids = {i.metadata.uid for i in instances}
    in_cloud = cloud_instances(state_dir)
    per_uid = Counter(i.uid for i in in_cloud)
    duplicates = {uid: n for uid, n in per_uid.items() if n > 1}
    assert not duplicates, f"duplicated cloud instances: {duplicates}"
    leaked = [i.id for i in in_cloud if i.uid not in uids]
    assert not leaked, f"leaked cloud instances: {leaked}"
    assert len(in_cloud) == count
    assert {i.status.provider_id for i in instances} == {i.id for i in in_cloud}


@pytest.mark.slow
def test_sigkill_at_random_moments_neither_duplicates_nor_leaks(
    etcd_server: EmbeddedEtcd,
    store: Store,
    key_prefix: str,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    count = 50
    seed(store, count, boot_seconds="0.3", latency="0.02", seed="7")
    rng = random.Random(20261121)
    for _ in range(6):
        process = spawn_controller(etcd_server, key_prefix, tmp_path)
        processes.append(process)
        time.sleep(rng.uniform(2.5, 4.5))  # lease takeover (≤ 2 s) + some provisioning
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    processes.append(spawn_controller(etcd_server, key_prefix, tmp_path))
    wait_all_running(store, count, timeout=120)
    assert_cloud_matches_store(store, tmp_path, count)


@pytest.mark.slow
def test_thirty_percent_faults_and_throttling_still_converge(
    etcd_server: EmbeddedEtcd,
    store: Store,
    key_prefix: str,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    count = 30
    seed(
        store, count, boot_seconds="0.2", error_rate="0.2", throttle_rate="0.1",
        retry_after="0.2", seed="3",
    )  # fmt: skip
    processes.append(spawn_controller(etcd_server, key_prefix, tmp_path))
    wait_all_running(store, count, timeout=150)
    assert_cloud_matches_store(store, tmp_path, count)


@pytest.mark.slow
def test_reconciling_resumes_at_once_when_etcd_returns_from_a_long_outage(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    """etcd away longer than the controller's local lease deadline: the controller steps down;
    etcd comes back and renews every lease, the ended session's too, so a controller that
    does not revoke it waits a whole TTL before it reconciles again. Production lease
    timings (15 s TTL, renewals every 5 s)."""
    lease_ttl = 15
    etcd = EmbeddedEtcd(data_dir=tmp_path / "etcd")
    etcd.start()
    client = EtcdClient([etcd.endpoint])
    store = Store(client, KeyLayout("/outage"))
    try:
        seed(store, 10, boot_seconds="0.3")
        controller = subprocess.Popen(
            [sys.executable, "-m", "skybroker", "--log-level", "warning", "controller",
             "--etcd-endpoints", etcd.endpoint, "--prefix", "/outage",
             "--simulated-state-dir", str(tmp_path), "--health-listen", "",
             "--lease-ttl", str(lease_ttl), "--renew-every", "5"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        processes.append(controller)
        wait_all_running(store, 10, timeout=120)
        etcd.kill()
        time.sleep(lease_ttl + 2)  # the outage: past the controller's local deadline
        etcd.start()
        back = time.monotonic()
        for i in range(10, 15):
            store.create(registry.parse_object(instance_manifest(i)))
        wait_all_running(store, 15, timeout=120)
        took = time.monotonic() - back
        assert took < lease_ttl, f"reconciling resumed {took:.1f} s after etcd's return"
        assert_cloud_matches_store(store, tmp_path, 15)
    finally:
        client.close()
        etcd.stop()
