"""Memory per cached object: RSS of the controller's Instance informer over a baseline.

Writes ``--count`` converged-looking Instances (status, conditions, placement, addresses) into
an etcd with raw puts of their stored encoding (batched transactions, no store or admission in
the way), then in a fresh process per measurement, so nothing the writer allocated is counted:

- **informer**: the manager wired as ``skybroker controller`` wires it (every reconciler
  registered, so the Instance informer carries the indexes and handlers it has in production);
  RSS is read before the Instance informer starts (the baseline: interpreter, imports, wiring)
  and again once it has synced, the workqueues its handlers filled have been drained (what the
  workers do) and ``gc.collect()`` ran. Per object = (after - baseline) / N. And once more
  ``--idle-seconds`` later (the store's default), when the store's write memory has forgotten
  the keys nothing touched since (``controller.store.memory``): what a converged, idle
  controller holds per object.
- **watch cache** (the API server's, ``apiserver.watchcache``): one cache on the Instance
  plural; RSS per object once it has listed them all, over the same kind of baseline; then one
  status update of each of min(N, its capacity) objects, and RSS per buffered event over the
  listed state (an event holds the previous object and both raw values).
- the informer's sync time and the process's CPU seconds meanwhile (the relist: list, decode,
  cache, handlers), since memory saved per object must not cost too much time per object;
- with ``--tracemalloc``, the informer run once more under tracemalloc: the Python-heap bytes
  per object and the top allocators (by line), to see where the bytes go.

The last line is exactly::

    memory N=<n> baseline_mb=<b> rss_per_object_bytes=<x> watch_cache_per_object_bytes=<o> \
watch_cache_per_event_bytes=<e> rss_per_idle_object_bytes=<i>

    python -m bench.memory --count 10000 [--idle-seconds 120] [--tracemalloc] \
[--etcd-endpoints URL,...]
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench._common import etcd_for_bench
from controller.store.codec import encode_value
from controller.store.etcd import EtcdClient, op_put
from controller.store.keys import KeyLayout, ObjectKey
from controller.store.memory import IDLE_SECONDS

API = "skybroker.io/v1alpha1"
NAMESPACES = 20
#: Puts per transaction (etcd's default --max-txn-ops is 128).
BATCH = 100


def converged_instance(i: int) -> dict[str, Any]:
    """The wire form of the ``i``-th Instance as a converged controller leaves it."""
    uid = str(uuid.UUID(int=i + 1))
    at = "2026-12-03T12:00:00Z"
    account, region = ("sim-east", "sim-east-1") if i % 2 else ("sim-west", "sim-west-2")

    def condition(type_: str, reason: str) -> dict[str, Any]:
        return {
            "type": type_,
            "status": "True",
            "reason": reason,
            "lastTransitionTime": at,
            "observedGeneration": 1,
        }

    return {
        "apiVersion": API,
        "kind": "Instance",
        "metadata": {
            "name": f"vm-{i:06d}",
            "namespace": f"team-{i % NAMESPACES:02d}",
            "uid": uid,
            "generation": 1,
            "creationTimestamp": at,
            "labels": {"app": "web", "tier": "frontend"},
            "finalizers": ["skybroker.io/instance"],
        },
        "spec": {"pool": "general", "hardware": {"cpu": 1}, "image": "ubuntu-22.04"},
        "status": {
            "phase": "Running",
            "observedGeneration": 1,
            "conditions": [
                condition("Scheduled", "Placed"),
                condition("Provisioned", "Created"),
                condition("Ready", "Running"),
            ],
            "placement": {
                "account": account,
                "region": region,
                "zone": f"{region}a",
                "member": account,
                "size": "small",
            },
            "providerID": f"sim-{uid[-12:]}",
            "createToken": f"{uid}-1",
            "addresses": [
                {"type": "PrivateIP", "address": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"}
            ],
        },
    }


def write_instances(client: EtcdClient, layout: KeyLayout, count: int) -> None:
    def batch(start: int) -> None:
        ops = []
        for i in range(start, min(start + BATCH, count)):
            wire = converged_instance(i)
            meta = wire["metadata"]
            key = layout.object_key(ObjectKey("instances", meta["namespace"], meta["name"]))
            ops.append(op_put(key, encode_value(wire)))
        assert client.txn([], ops).succeeded

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(batch, range(0, count, BATCH)))


def rss_bytes() -> int:
    """Resident set size of this process (``VmRSS`` in /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def settled_rss() -> int:
    gc.collect()
    return rss_bytes()


# --- the measured processes ---------------------------------------------------------------


def measure_informer(args: argparse.Namespace) -> dict[str, Any]:
    import tracemalloc

    from api_types import Instance
    from controller.logging import configure_logging
    from controller.manager import Manager, ManagerOptions
    from controller.store.memory import WriteMemory
    from controller.store.objects import Store
    from skybroker.main import tune_interpreter
    from skybroker.wiring import register_reconcilers

    configure_logging(json=True, level="warning")
    tune_interpreter()
    client = EtcdClient(args.etcd_endpoints.split(","))
    store = Store(client, KeyLayout(args.prefix), memory=WriteMemory(args.idle_seconds))
    with tempfile.TemporaryDirectory() as state_dir:
        manager = Manager(store, ManagerOptions(health_listen=None))
        register_reconcilers(manager, Path(state_dir))
        informer = manager.informer(Instance)
        baseline = settled_rss()
        if args.tracemalloc:
            tracemalloc.start(1)
        started, cpu = time.monotonic(), time.process_time()
        informer.start()
        if not informer.wait_for_sync(600):
            raise SystemExit("the Instance informer did not sync in 600 s")
        synced, cpu = time.monotonic() - started, time.process_time() - cpu
        for controller in manager.controllers:  # what the workers would do
            while len(controller.queue):
                key, _ = controller.queue.get()
                controller.queue.done(key)
        assert len(informer.keys()) == args.count, len(informer.keys())
        after = settled_rss()
        result: dict[str, Any] = {"baseline": baseline, "after": after, "sync": synced, "cpu": cpu}
        if not args.tracemalloc:  # (that run is only read for its allocators)
            time.sleep(args.idle_seconds + 0.5)
            store.newer_than(ObjectKey("instances", None, "-"), 0)  # a read: the memory sweeps
            result["idle"] = settled_rss()
        if args.tracemalloc:
            snapshot = tracemalloc.take_snapshot()
            traced, _ = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            result["traced"] = traced
            result["top"] = [
                (str(stat.traceback[0]), stat.size, stat.count)
                for stat in snapshot.statistics("lineno")[:15]
            ]
        informer.stop()
    return result


def measure_watch_cache(args: argparse.Namespace) -> dict[str, Any]:
    from api_types import registry
    from apiserver.watchcache import DEFAULT_CAPACITY, WatchCache
    from controller.store.objects import Store
    from skybroker.main import tune_interpreter

    tune_interpreter()
    client = EtcdClient(args.etcd_endpoints.split(","))
    layout = KeyLayout(args.prefix)
    store = Store(client, layout)
    events = min(args.count, DEFAULT_CAPACITY)
    values = []
    for i in range(events):  # prepared before the baseline: the writer's bytes are not counted
        wire = converged_instance(i)
        wire["status"]["conditions"][2]["message"] = "updated"
        meta = wire["metadata"]
        key = layout.object_key(ObjectKey("instances", meta["namespace"], meta["name"]))
        values.append(op_put(key, encode_value(wire)))
    cache = WatchCache(store, registry.by_kind("Instance"))
    baseline = settled_rss()
    cache.start()
    if not cache.wait_ready(600):
        raise SystemExit("the watch cache did not list in 600 s")
    listed = settled_rss()
    for start in range(0, events, BATCH):
        assert client.txn([], values[start : start + BATCH]).succeeded
    target = client.current_revision()
    if not cache.wait_for(target, 600):
        raise SystemExit("the watch cache did not catch up in 600 s")
    after = settled_rss()
    cache.stop()
    return {"baseline": baseline, "listed": listed, "after": after, "events": events}


def run_child(args: argparse.Namespace, endpoint: str, prefix: str, *extra: str) -> Any:
    command = [
        sys.executable,
        "-m",
        "bench.memory",
        "--count",
        str(args.count),
        "--etcd-endpoints",
        endpoint,
        "--prefix",
        prefix,
        *extra,
    ]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--tracemalloc", action="store_true", help="also show top allocators")
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=IDLE_SECONDS,
        help="the store's write memory forgets keys idle this long (the product's default)",
    )
    parser.add_argument("--etcd-endpoints", default="")
    parser.add_argument("--prefix", default="", help=argparse.SUPPRESS)
    parser.add_argument("--measure", choices=("informer", "watch-cache"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure = measure_informer if args.measure == "informer" else measure_watch_cache
        print(json.dumps(measure(args)))
        return
    prefix = f"/memory-{uuid.uuid4().hex[:8]}"
    with etcd_for_bench(args) as client:
        endpoint = args.etcd_endpoints or client.endpoints[0]
        started = time.monotonic()
        write_instances(client, KeyLayout(prefix), args.count)
        size = len(encode_value(converged_instance(0)))
        print(
            f"wrote {args.count} instances ({size} bytes each) in "
            f"{time.monotonic() - started:.1f} s"
        )
        informer = run_child(args, endpoint, prefix, "--measure", "informer")
        per_object = (informer["after"] - informer["baseline"]) / args.count
        per_idle_object = (informer["idle"] - informer["baseline"]) / args.count
        print(
            f"informer: baseline {informer['baseline'] / 2**20:.1f} MiB, after sync "
            f"{informer['after'] / 2**20:.1f} MiB, {per_object:.0f} bytes/object; synced "
            f"(list, decode, cache) in {informer['sync']:.1f} s, {informer['cpu']:.1f} s CPU; "
            f"{args.idle_seconds:.0f} s idle later (write memory swept) "
            f"{informer['idle'] / 2**20:.1f} MiB, {per_idle_object:.0f} bytes/object"
        )
        if args.tracemalloc:
            traced = run_child(args, endpoint, prefix, "--measure", "informer", "--tracemalloc")
            print(
                f"tracemalloc: {traced['traced'] / args.count:.0f} bytes/object traced; "
                "top allocators (bytes/object, blocks/object):"
            )
            for where, size_, blocks in traced["top"]:
                print(f"  {size_ / args.count:8.0f} {blocks / args.count:6.1f}  {where}")
        cache = run_child(args, endpoint, prefix, "--measure", "watch-cache")
        per_cached = (cache["listed"] - cache["baseline"]) / args.count
        per_event = (cache["after"] - cache["listed"]) / cache["events"]
        print(
            f"API server watch cache: {per_cached:.0f} bytes/object listed; then "
            f"{cache['events']} updates buffered, {per_event:.0f} bytes/event"
        )
    print(
        f"memory N={args.count} baseline_mb={informer['baseline'] / 2**20:.1f} "
        f"rss_per_object_bytes={per_object:.0f} watch_cache_per_object_bytes={per_cached:.0f} "
        f"watch_cache_per_event_bytes={per_event:.0f} "
        f"rss_per_idle_object_bytes={per_idle_object:.0f}"
    )


if __name__ == "__main__":
    main()
