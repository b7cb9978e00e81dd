"""The limits later benchmarks are compared with, measured in one run against one etcd.

Rows: CAS transactions/s at 1 and 8 callers, creates/s at 8 callers, a relist of 10,000
objects (``store.list``, every value decoded), an informer's re-list of those 10,000 when none
changed (what a broken watch costs a synced cache), and watch put→event latency (p50/p99) —
each raw (bare gRPC calls on the same
client, bytes only) and through skybroker's store/informer (JSON, validation, CAS bookkeeping,
history), with the ratio skybroker/raw (for latencies raw/skybroker, so 1.0 is always "as fast
as etcd allows"). Rates are ``bench._common.limit_rate``'s: the better of threads and tasks on
one event loop, for raw calls and for the store alike (the controllers call the store from
threads, the API server from its loop); the informer re-lists on its own thread, as it runs.

    python -m bench.store_limits [--objects 10000] [--etcd-endpoints URL,...]
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from typing import Any

from api_types import registry
from api_types.meta import Condition, ConditionStatus
from bench._common import Row, etcd_for_bench, limit_rate, print_table, rate, threaded_rate
from controller.cache import Informer
from controller.store.codec import encode_value
from controller.store.etcd import EtcdClient, cmp_mod_revision, op_put
from controller.store.keys import KeyLayout, ObjectKey
from controller.store.objects import Store
from controller.store.watch import PrefixWatch
from skybroker.main import tune_interpreter

Instance = registry.by_kind("Instance").model


def make_instance(name: str, namespace: str = "bench") -> Any:
    return registry.parse_object(
        {
            "apiVersion": "skybroker.io/v1alpha1",
            "kind": "Instance",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": "bench"}},
            "spec": {"pool": "general", "hardware": {"profile": "small"}, "image": "ubuntu"},
        }
    )


def raw_cas_rate(client: EtcdClient, prefix: str, threads: int, per_thread: int) -> float:
    value = encode_value(make_instance("x").to_wire())
    revisions = {}
    for t in range(threads):
        key = f"{prefix}/raw-cas/{t}".encode()
        revisions[t] = int(client.put(key, value).header.revision)

    def cas(thread_index: int, _: int) -> None:
        key = f"{prefix}/raw-cas/{thread_index}".encode()
        response = client.txn(
            [cmp_mod_revision(key, revisions[thread_index])], [op_put(key, value)]
        )
        assert response.succeeded
        revisions[thread_index] = int(response.header.revision)

    return limit_rate(cas, threads, per_thread)


def store_cas_rate(store: Store, threads: int, per_thread: int) -> float:
    current = {t: store.create(make_instance(f"cas-{threads}-{t}")) for t in range(threads)}

    def status_write(thread_index: int, i: int) -> None:
        obj = current[thread_index]
        obj.status.conditions = [
            Condition(type="Ready", status=ConditionStatus.FALSE, message=f"attempt {i}")
        ]
        current[thread_index] = store.update_status(obj)

    return limit_rate(status_write, threads, per_thread)


def raw_create_rate(client: EtcdClient, prefix: str, threads: int, per_thread: int) -> float:
    from controller.store.etcd import cmp_create_revision

    value = encode_value(make_instance("x").to_wire())

    def create(thread_index: int, i: int) -> None:
        key = f"{prefix}/raw-create/{thread_index}-{i}".encode()
        assert client.txn([cmp_create_revision(key, 0)], [op_put(key, value)]).succeeded

    return limit_rate(create, threads, per_thread)


def store_create_rate(store: Store, threads: int, per_thread: int) -> float:
    def create(thread_index: int, i: int) -> None:
        store.create(make_instance(f"c-{thread_index}-{i}", namespace="creates"))

    return limit_rate(create, threads, per_thread)


def relist(client: EtcdClient, store: Store, objects: int) -> Row:
    def create(thread_index: int, i: int) -> None:
        store.create(make_instance(f"l-{thread_index}-{i:06d}", namespace="relist"))

    threaded_rate(create, 8, objects // 8)
    prefix = store.layout.kind_prefix("instances", "relist")

    def raw_once(_: int, __: int) -> None:
        assert len(client.range_prefix(prefix)[0]) == objects // 8 * 8

    def store_once(_: int, __: int) -> None:
        assert len(store.list(Instance, "relist").items) == objects // 8 * 8

    raw = limit_rate(raw_once, 1, 3)
    ours = limit_rate(store_once, 1, 3)
    return Row(f"relist {objects // 8 * 8} objects", raw, ours, "lists/s")


def informer_relist(client: EtcdClient, store: Store, objects: int) -> Row:
    """The objects ``relist`` wrote, re-listed by a synced informer (as after a broken watch)."""
    prefix = store.layout.kind_prefix("instances", "relist")
    informer = Informer(store, Instance)
    informer.start()
    assert informer.wait_for_sync(120)

    def raw_once(_: int, __: int) -> None:
        assert len(client.range_prefix(prefix)[0]) == objects // 8 * 8

    raw = limit_rate(raw_once, 1, 3)
    ours = rate(lambda _: informer._relist(), 3)  # the step its loop runs after a broken watch
    informer.stop()
    return Row(f"informer re-list, {objects // 8 * 8} unchanged", raw, ours, "lists/s")


def watch_latencies(client: EtcdClient, store: Store, prefix: str, events: int) -> list[Row]:
    """Put→event latency: a bare PrefixWatch (bytes) vs the informer (decoded, cached)."""
    sent: dict[str, float] = {}
    raw_seen: list[float] = []
    cached_seen: list[float] = []
    done_raw, done_cached = threading.Event(), threading.Event()
    watch_prefix = store.layout.kind_prefix("instances", "watch")
    start_revision = client.current_revision() + 1
    watch = PrefixWatch(client, watch_prefix, start_revision)

    def consume_raw() -> None:
        for batch in watch:
            now = time.perf_counter()
            for event in batch:
                name = event.key.rsplit(b"/", 1)[-1].decode()
                raw_seen.append(now - sent[name])
            if len(raw_seen) >= events:
                done_raw.set()
                return

    def on_add(obj: Any) -> None:
        if obj.metadata.namespace != "watch":
            return
        cached_seen.append(time.perf_counter() - sent[obj.metadata.name])
        if len(cached_seen) >= events:
            done_cached.set()

    informer = Informer(store, Instance)
    informer.add_handlers(on_add=on_add)
    informer.start()
    informer.wait_for_sync(30)
    threading.Thread(target=consume_raw, daemon=True).start()
    time.sleep(0.2)
    for i in range(events):
        name = f"w-{i}"
        sent[name] = time.perf_counter()
        store.create(make_instance(name, namespace="watch"))
        time.sleep(0.002)
    done_raw.wait(30)
    done_cached.wait(30)
    watch.stop()
    informer.stop()

    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return [
        Row("watch put→event p50", pct(raw_seen, 0.5), pct(cached_seen, 0.5), "ms", False),
        Row("watch put→event p99", pct(raw_seen, 0.99), pct(cached_seen, 0.99), "ms", False),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--ops", type=int, default=2_000, help="CAS operations per measurement")
    parser.add_argument("--etcd-endpoints", default="")
    args = parser.parse_args()
    tune_interpreter()  # the server's own setting (skybroker.main), so bench = product
    prefix = f"/bench-{uuid.uuid4().hex[:8]}"
    with etcd_for_bench(args) as client:
        store = Store(client, KeyLayout(prefix))
        rows = [
            Row("CAS txn, 1 caller", raw_cas_rate(client, prefix, 1, args.ops),
                store_cas_rate(store, 1, args.ops), "txn/s"),
            Row("CAS txn, 8 callers", raw_cas_rate(client, prefix, 8, args.ops // 8 * 2),
                store_cas_rate(store, 8, args.ops // 8 * 2), "txn/s"),
            Row("create, 8 callers", raw_create_rate(client, prefix, 8, args.ops // 8),
                store_create_rate(store, 8, args.ops // 8), "creates/s"),
            relist(client, store, args.objects),
            informer_relist(client, store, args.objects),
            *watch_latencies(client, store, prefix, 300),
        ]  # fmt: skip
        print_table("store limits (same etcd, same run)", rows)
        history = store.history(ObjectKey("instances", "bench", "cas-1-0"))
        print(f"\n(history records written by the CAS rows: {len(history)})")


if __name__ == "__main__":
    main()
