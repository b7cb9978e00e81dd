"""N instances from manifests in the store to all Running, against raw etcd in the same run.

Runs the real manager and reconcilers in-process on an embedded etcd and the simulated cloud
with zero latency (two accounts in a pool) — or, with ``--processes P``, P real ``skybroker
controller`` processes splitting ``--shards`` shard leases over one etcd and one simulated
cloud (its SQLite state dir shared). Measures, in one run:

- raw CAS transactions/s of the same etcd at the controller's concurrency (``--workers``
  callers: threads or tasks on one event loop, whichever is faster);
- seconds from the manager's start (informer relist included) until every Instance is Running;
- reconciles/s over that time, and its ratio to the raw CAS rate;
- etcd revisions consumed per object (every write is one revision; history rides along);
- etcd revisions per second during ``--steady`` seconds after convergence (should be 0), once
  the account inventories caught up (one inventory interval, 30 s, of settling); the window
  opens with a forced resync of every Instance (what the periodic resync does every 10 min),
  so it also shows that a resync of all N objects writes nothing and costs O(accounts) cloud
  calls — reported with the floor (one relist plus one CAS per object at the raw rate) on the
  line before the last;
- CPU seconds of the controllers (user + system, every thread) until converged, per object;
- resident memory per object: the controllers' RSS once converged, less a controller's RSS
  with no objects (in-process: the benchmark's RSS before the manager started), over N.

With ``--processes P`` the clock starts when the processes are spawned (interpreter start and
imports included, as a restarted deployment pays them), the Running count comes from a raw
etcd watch in the benchmark (no decoding, so it charges the controllers nothing), reconciles
are summed from every process's ``/metrics``, and the steady window has no forced resync (the
processes are not reachable in-process); the ratio P=2 ÷ P=1 of ``seconds`` is the speed-up.

The last line is exactly::

    converge N=<n> processes=<p> seconds=<s> reconciles_per_s=<r> raw_cas_per_s=<c> \
ratio=<r/c> seconds_over_floor=<f> writes_per_object=<w> steady_writes_per_s=<x> \
rss_kb_per_object=<k>

    python -m bench.converge --count 2000 [--processes 2 --shards 4] [--policy LeastLoaded]
                             [--quota]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from api_types import Instance, registry
from bench._common import etcd_for_bench
from bench.store_limits import raw_cas_rate
from controller.logging import configure_logging
from controller.manager import Manager, ManagerOptions
from controller.metrics import stat_cpu_seconds
from controller.reconcile import Request
from controller.store.embedded import free_port
from controller.store.etcd import EtcdClient
from controller.store.keys import KeyLayout
from controller.store.objects import Store
from controller.store.watch import PrefixWatch
from reconcilers.accounts import INVENTORY_SECONDS
from skybroker.main import tune_interpreter
from skybroker.wiring import register_reconcilers

API = "skybroker.io/v1alpha1"
ACCOUNTS = (("sim-east", "sim-east-1"), ("sim-west", "sim-west-2"))


def manifests(count: int, policy: str = "RoundRobin", quota: bool = False) -> list[dict[str, Any]]:
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
            "policy": {"type": policy},
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
    if not quota:
        return [*accounts, pool, *instances]
    namespace = {"apiVersion": API, "kind": "Namespace", "metadata": {"name": "bench"}}
    room = {"instances": count, "cpu": count}  # every instance admitted, each one counted
    limits = {
        "apiVersion": API,
        "kind": "Quota",
        "metadata": {"name": "bench", "namespace": "bench"},
        "spec": {"hard": room},
    }
    return [*accounts, pool, namespace, limits, *instances]


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


def cpu_seconds(pid: int | str = "self") -> tuple[float, float]:
    """(user, system) CPU seconds of a process (all its threads), from ``/proc``."""
    return stat_cpu_seconds(f"/proc/{pid}/stat")


def cpu_since(before: tuple[float, float], pid: int | str = "self") -> tuple[float, float]:
    now = cpu_seconds(pid)
    return now[0] - before[0], now[1] - before[1]


def rss_kb(pid: int | str = "self") -> int:
    """Resident set size of a process, in KiB, from ``/proc``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class Measured:
    """What one converge run measured, whichever way the controllers ran."""

    seconds: float
    reconciles: float
    start_revision: int
    converged_revision: int
    steady_writes: float
    rss_kb_over_baseline: float
    steady_note: str
    #: CPU seconds (user, system) the controllers spent from start to convergence.
    cpu: tuple[float, float]


def converge_in_process(
    args: argparse.Namespace, client: EtcdClient, store: Store, state_dir: Path
) -> Measured:
    baseline_kb = rss_kb()
    options = ManagerOptions(workers=args.workers, health_listen=None, shards=args.shards)
    manager = Manager(store, options)
    register_reconcilers(manager, state_dir)
    running = RunningCount(manager)
    start_revision = client.current_revision()
    before = reconcile_count()
    cpu_before = cpu_seconds()
    started = time.monotonic()
    thread = threading.Thread(target=manager.run, daemon=True)
    thread.start()
    while len(running) < args.count:
        if time.monotonic() - started > args.timeout:
            raise SystemExit(f"not converged after {args.timeout}s: {len(running)}")
        time.sleep(0.05)
    seconds = time.monotonic() - started
    cpu = cpu_since(cpu_before)
    reconciles = reconcile_count() - before
    converged_revision = client.current_revision()
    rss_over = rss_kb() - baseline_kb
    steady_writes, steady_reconciles, steady_calls = float("nan"), 0.0, 0.0
    if args.steady > 0:
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
    note = (
        f"after a forced resync of all {args.count}: reconciles={steady_reconciles:.0f} "
        f"cloud_calls={steady_calls:.0f} for {len(ACCOUNTS)} accounts"
    )
    return Measured(
        seconds, reconciles, start_revision, converged_revision, steady_writes, rss_over, note, cpu
    )


class RunningWatch:
    """Instances Running, from a raw etcd watch of their keys: values are compact JSON, so a
    byte search finds the phase without decoding anything."""

    def __init__(self, client: EtcdClient, prefix: bytes, start_revision: int) -> None:
        self._running: set[bytes] = set()
        #: When the first instance was seen Running (monotonic), if yet.
        self.first_running: float | None = None
        self._watch = PrefixWatch(client, prefix, start_revision)
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        for batch in self._watch:
            for event in batch:
                if not event.deleted and b'"phase":"Running"' in event.value:
                    self._running.add(event.key)
                    self.first_running = self.first_running or time.monotonic()
                else:
                    self._running.discard(event.key)

    def stop(self) -> None:
        self._watch.stop()

    def __len__(self) -> int:
        return len(self._running)


class ControllerProcess:
    """One ``skybroker controller`` process of the benchmark, its output in temporary files."""

    def __init__(self, args: argparse.Namespace, prefix: str, index: int, state_dir: Path) -> None:
        self.health = f"127.0.0.1:{free_port()}"
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 (read on failure, then closed)
        command = [
            sys.executable, "-m", "skybroker", "--log-level", args.log_level,
            "--log-format", "json", "controller", "--etcd-endpoints", args.endpoint,
            "--prefix", prefix, "--shards", str(args.shards), "--workers", str(args.workers),
            "--identity", f"bench-{index}", "--simulated-state-dir", str(state_dir),
            "--health-listen", self.health,
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=self._output, stderr=self._output)

    def get(self, path: str) -> str | None:
        try:
            with urllib.request.urlopen(f"http://{self.health}{path}", timeout=5) as response:
                return str(response.read().decode())
        except OSError:
            return None

    def samples(self, name: str, label: str) -> dict[str, float]:
        """The samples ``name`` of the process's ``/metrics``, summed by their ``label``."""
        found: dict[str, float] = {}
        for family in text_string_to_metric_families(self.get("/metrics") or ""):
            for sample in family.samples:
                if sample.name == name:
                    value = sample.labels.get(label, "")
                    found[value] = found.get(value, 0.0) + sample.value
        return found

    def reconciles(self) -> float:
        return sum(self.samples("reconcile_total", "kind").values())

    def rss_kb(self) -> int:
        return rss_kb(self.process.pid)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            self._output.seek(0)
            tail = self._output.read()[-4000:].decode(errors="replace")
            raise SystemExit(f"controller {self.process.pid} exited: {tail}")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._output.close()


def busiest(threads: dict[str, float], count: int = 5) -> str:
    """The ``count`` thread groups that used the most CPU seconds, most first."""
    ranked = sorted(threads.items(), key=lambda item: -item[1])[:count]
    return ", ".join(f"{name} {seconds:.1f}" for name, seconds in ranked)


def idle_controller_rss_kb(args: argparse.Namespace, state_dir: Path) -> int:
    """RSS of one controller process over an empty prefix, once ready: the baseline."""
    idle = ControllerProcess(args, f"/converge-idle-{uuid.uuid4().hex[:8]}", 0, state_dir)
    try:
        deadline = time.monotonic() + args.timeout
        while idle.get("/readyz") is None:
            idle.check_alive()
            if time.monotonic() > deadline:
                raise SystemExit("the idle controller never became ready")
            time.sleep(0.1)
        return idle.rss_kb()
    finally:
        idle.stop()


def converge_processes(
    args: argparse.Namespace, client: EtcdClient, store: Store, state_dir: Path
) -> Measured:
    baseline_kb = idle_controller_rss_kb(args, state_dir / "idle")
    instances = store.layout.kind_prefix(Instance.PLURAL)
    start_revision = client.current_revision()
    running = RunningWatch(client, instances, start_revision + 1)
    started = time.monotonic()
    processes = [
        ControllerProcess(args, store.layout.prefix, i, state_dir) for i in range(args.processes)
    ]
    try:
        while len(running) < args.count:
            for process in processes:
                process.check_alive()
            if time.monotonic() - started > args.timeout:
                raise SystemExit(f"not converged after {args.timeout}s: {len(running)}")
            time.sleep(0.05)
        seconds = time.monotonic() - started
        per_process = [cpu_seconds(p.process.pid) for p in processes]
        cpu = (sum(u for u, _ in per_process), sum(s for _, s in per_process))
        converged_revision = client.current_revision()
        rss_over = sum(p.rss_kb() - baseline_kb for p in processes)
        split = [
            (sum(c), p.reconciles(), p.samples("thread_cpu_seconds", "thread"))
            for c, p in zip(per_process, processes, strict=True)
        ]
        reconciles = sum(r for _, r, _ in split)
        running.stop()
        steady_writes = float("nan")
        if args.steady > 0:
            time.sleep(2.0 + INVENTORY_SECONDS)
            steady_from = client.current_revision()
            time.sleep(args.steady)
            steady_writes = (client.current_revision() - steady_from) / args.steady
    finally:
        for process in processes:
            process.stop()
    first = (running.first_running or started) - started
    note = (
        f"(no forced resync) across {args.processes} processes; the first Running "
        f"{first:.1f} s after spawning them; per process: "
        + "; ".join(f"{c:.1f} s CPU for {r:.0f} reconciles ({busiest(t)})" for c, r, t in split)
    )
    return Measured(
        seconds, reconciles, start_revision, converged_revision, steady_writes, rss_over, note, cpu
    )


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a converge run that ``bench.scaleout`` shares."""
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--etcd-endpoints", default="")
    parser.add_argument("--log-level", default="warning", help="the controllers' log level")
    parser.add_argument("--policy", default="RoundRobin",
                        help="the pool's policy (LeastLoaded counts members' load)")  # fmt: skip
    parser.add_argument("--quota", action="store_true",
                        help="a Quota in the namespace, with room for every instance")  # fmt: skip


def create_manifests(store: Store, args: argparse.Namespace) -> None:
    """The run's ``args.count`` Instances and what they need, written by 8 threads."""
    with ThreadPoolExecutor(8) as pool:
        objects = map(registry.parse_object, manifests(args.count, args.policy, args.quota))
        list(pool.map(store.create, objects))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=0,
                        help="run P `skybroker controller` processes (0 = in-process)")  # fmt: skip
    parser.add_argument("--shards", type=int, default=0,
                        help="shard leases (default: 4 with --processes, else 1)")  # fmt: skip
    parser.add_argument("--steady", type=float, default=30.0,
                        help="seconds watched after (0: none)")  # fmt: skip
    add_run_arguments(parser)
    args = parser.parse_args()
    args.shards = args.shards or (4 if args.processes else 1)
    configure_logging(json=True, level=args.log_level)
    tune_interpreter()
    prefix = f"/converge-{uuid.uuid4().hex[:8]}"
    with etcd_for_bench(args) as client, tempfile.TemporaryDirectory() as state_dir:
        args.endpoint = client.endpoints[0]
        raw = raw_cas_rate(client, prefix + "-raw", args.workers, 300)
        store = Store(client, KeyLayout(prefix))
        create_manifests(store, args)
        relist = relist_seconds(store)
        run = converge_processes if args.processes else converge_in_process
        measured = run(args, client, store, Path(state_dir))
    seconds = measured.seconds
    cpu = sum(measured.cpu)
    rate = measured.reconciles / seconds
    writes = (measured.converged_revision - measured.start_revision) / args.count
    floor = relist + args.count / raw
    print(
        f"floor_seconds={floor:.2f} (relist {relist:.2f} s + one CAS per object) "
        f"seconds_over_floor={seconds / floor:.1f} | steady {args.steady:.0f} s "
        f"{measured.steady_note} | controller CPU {cpu:.1f} s (system "
        f"{measured.cpu[1]:.1f}) = {1000 * cpu / args.count:.2f} ms/object, "
        f"{100 * cpu / seconds:.0f}% of a core | "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"converge N={args.count} processes={args.processes or 1} seconds={seconds:.2f} "
        f"reconciles_per_s={rate:.1f} raw_cas_per_s={raw:.1f} ratio={rate / raw:.3f} "
        f"seconds_over_floor={seconds / floor:.1f} writes_per_object={writes:.2f} "
        f"steady_writes_per_s={measured.steady_writes:.2f} "
        f"rss_kb_per_object={measured.rss_kb_over_baseline / args.count:.1f}"
    )


if __name__ == "__main__":
    main()
