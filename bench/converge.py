"""N instances from manifests in the store to all Running, against raw etcd in the same run.

Runs the real manager and reconcilers in-process on an embedded etcd and the simulated cloud
with zero latency (two accounts in a pool). Measures, in one run:

- raw CAS transactions/s of the same etcd at the controller's concurrency (``--workers``);
- seconds from the manager's start (informer relist included) until every Instance is Running;
- reconciles/s over that time, and its ratio to the raw CAS rate;
- etcd revisions consumed per object (every write is one revision; history rides along);
- etcd revisions per second during ``--steady`` seconds after convergence (should be 0), once
  the account inventories caught up (one inventory interval, 30 s, of settling); the window
  opens with a forced resync of every Instance (what the periodic resync does every 10 min),
  so it also shows that a resync of all N objects writes nothing and costs O(accounts) cloud
  calls — reported with the floor (one relist plus one CAS per object at the raw rate) on the
  line before the last.

The last line is exactly::

    converge N=<n> seconds=<s> reconciles_per_s=<r> raw_cas_per_s=<c> ratio=<r/c> \
writes_per_object=<w> steady_writes_per_s=<x>

    python -m bench.converge --count 2000
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from api_types import Instance, registry
from bench._common import etcd_for_bench
from bench.store_limits import raw_cas_rate
from controller.logging import configure_logging
from controller.manager import Manager, ManagerOptions
from controller.reconcile import Request
from controller.store.keys import KeyLayout
from controller.store.objects import Store
from reconcilers.accounts import INVENTORY_SECONDS
from skybroker.main import tune_interpreter
from skybroker.wiring import register_reconcilers

API = "skybroker.io/v1alpha1"
ACCOUNTS = (("sim-east", "sim-east-1"), ("sim-west", "sim-west-2"))


def manifests(count: int) -> list[dict[str, Any]]:
    accounts = [
        {
            "apiVersion": API,
            "kind": "ProviderAccount",
            "metadata": {
                "name": name,
                "annotations": {
                    "options.skybroker.io/boot_seconds": "0",
                    "options.skybroker.io/stop_seconds": "0",
                    "options.skybroker.io/terminate_seconds": "0",
                },
            },
            "spec": {
                "driver": "simulated",
                "region": region,
                "images": {"ubuntu-22.04": "img-ubuntu-2204"},
                "apiBudget": {"requestsPerSecond": 100_000, "burst": 100_000},
            },
        }
        for name, region in ACCOUNTS
    ]
    pool = {
        "apiVersion": API,
        "kind": "Pool",
        "metadata": {"name": "general"},
        "spec": {
            "members": [{"account": "sim-east"}, {"account": "sim-west"}],
            "policy": {"type": "RoundRobin"},
        },
    }
    instances = [
        {
            "apiVersion": API,
            "kind": "Instance",
            "metadata": {"name": f"vm-{i:05d}", "namespace": "bench"},
            "spec": {"pool": "general", "hardware": {"cpu": 1}, "image": "ubuntu-22.04"},
        }
        for i in range(count)
    ]
    return [*accounts, pool, *instances]


def counter(family: str, sample: str) -> float:
    """The sum over every label set of one prometheus counter in the default registry."""
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name == family:
            total += sum(s.value for s in metric.samples if s.name == sample)
    return total


def reconcile_count() -> float:
    return counter("reconcile", "reconcile_total")


def cloud_calls() -> float:
    return counter("provider_calls", "provider_calls_total")


def resync_everything(manager: Manager) -> None:
    """Queue every Instance, as the periodic resync does for each once per period."""
    keys = manager.informer(Instance).keys()
    for controller in manager.controllers:
        if controller.kind == Instance.KIND:
            for key in keys:
                controller.enqueue(Request(key))


def relist_seconds(store: Store) -> float:
    """One list of every Instance, decoded: the relist part of the floor."""
    started = time.monotonic()
    store.list(Instance)
    return time.monotonic() - started


class RunningCount:
    """Instances Running, kept by informer handlers: polling ``list()`` would copy-sort all N
    objects ten times a second and charge the benchmark's own overhead to the controllers."""

    def __init__(self, manager: Manager) -> None:
        self._running: set[tuple[str | None, str]] = set()
        self._lock = threading.Lock()
        manager.informer(Instance).add_handlers(
            on_add=self._seen, on_update=lambda _old, new: self._seen(new), on_delete=self._gone
        )

    def _seen(self, instance: Instance) -> None:
        key = (instance.metadata.namespace, instance.metadata.name)
        with self._lock:
            if instance.status.phase == "Running":
                self._running.add(key)
            else:
                self._running.discard(key)

    def _gone(self, instance: Instance) -> None:
        with self._lock:
            self._running.discard((instance.metadata.namespace, instance.metadata.name))

    def __len__(self) -> int:
        with self._lock:
            return len(self._running)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--steady", type=float, default=30.0, help="seconds watched after")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--etcd-endpoints", default="")
    parser.add_argument("--log-level", default="warning", help="the controllers' log level")
    args = parser.parse_args()
    configure_logging(json=True, level=args.log_level)
    tune_interpreter()
    prefix = f"/converge-{uuid.uuid4().hex[:8]}"
    with etcd_for_bench(args) as client, tempfile.TemporaryDirectory() as state_dir:
        raw = raw_cas_rate(client, prefix + "-raw", args.workers, 300)
        store = Store(client, KeyLayout(prefix))
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(store.create, map(registry.parse_object, manifests(args.count))))
        relist = relist_seconds(store)
        options = ManagerOptions(workers=args.workers, health_listen=None)
        manager = Manager(store, options)
        register_reconcilers(manager, Path(state_dir))
        running = RunningCount(manager)
        start_revision = client.current_revision()
        before = reconcile_count()
        started = time.monotonic()
        thread = threading.Thread(target=manager.run, daemon=True)
        thread.start()
        while len(running) < args.count:
            if time.monotonic() - started > args.timeout:
                raise SystemExit(f"not converged after {args.timeout}s: {len(running)}")
            time.sleep(0.05)
        seconds = time.monotonic() - started
        reconciles = reconcile_count() - before
        converged_revision = client.current_revision()
        # Let the trailing bookkeeping land before watching: the last events, and account
        # status (managed-resource counts) once their inventories have listed the result.
        time.sleep(2.0 + INVENTORY_SECONDS)
        steady_from = client.current_revision()
        reconciles_before, calls_before = reconcile_count(), cloud_calls()
        resync_everything(manager)
        time.sleep(args.steady)
        steady_writes = (client.current_revision() - steady_from) / args.steady
        steady_reconciles = reconcile_count() - reconciles_before
        steady_calls = cloud_calls() - calls_before
        manager.stop()
        thread.join(60)
    rate = reconciles / seconds
    writes = (converged_revision - start_revision) / args.count
    floor = relist + args.count / raw
    print(
        f"floor_seconds={floor:.2f} (relist {relist:.2f} s + one CAS per object) "
        f"seconds_over_floor={seconds / floor:.1f} | steady {args.steady:.0f} s after a forced "
        f"resync of all {args.count}: reconciles={steady_reconciles:.0f} "
        f"cloud_calls={steady_calls:.0f} for {len(ACCOUNTS)} accounts"
    )
    print(
        f"converge N={args.count} seconds={seconds:.2f} reconciles_per_s={rate:.1f} "
        f"raw_cas_per_s={raw:.1f} ratio={rate / raw:.3f} writes_per_object={writes:.2f} "
        f"steady_writes_per_s={steady_writes:.2f}"
    )


if __name__ == "__main__":
    main()
