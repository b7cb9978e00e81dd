"""The stack's own ceiling: do-nothing skeletons of the paths the scale targets are set on,
each beside raw etcd in the same run.

A target such as "converge at 0.3 of raw CAS/s" mixes two costs: what skybroker's code does,
and what any program on this stack (CPython, the gRPC client, pydantic, uvicorn) on the same
machine pays for the same etcd operations. Each skeleton does only what its path cannot leave
out, with nothing of ours around it, so skybroker's ratio ÷ the skeleton's ratio is the share
of the reachable ceiling our code achieves, and the skeleton's own ratio bounds any target:

- **converge** (bench.converge's shape): re-list N Instances and validate each value with
  its model (an informer must), then two CAS writes per object, the intent and the result
  (DESIGN §5), by ``--workers`` threads fed by one etcd watch whose events are validated too.
  No cache, handlers, reconciler, cloud, events or history. Ratio: objects/s ÷ raw CAS/s,
  as bench.converge's ratio is reconciles/s ÷ raw CAS/s (one reconcile per object).
- **create** (bench.api's shape): skybroker's HTTP stack (``AsgiServer``: uvicorn with
  httptools and uvloop) in its own process, one route that reads the body and, on a worker
  thread, sends one create transaction of it and answers 201 with it; 8 keep-alive clients.
  No authentication, RBAC, validation, admission or history. A second row sends it on the
  event loop instead, bridged as the API server's single-object requests are
  (``controller.store.bridge``: no thread hop, gRPC's asyncio client). Below the table, the
  skeleton server's CPU per create (bench.api reports the API server's).
- **relist** (bench.store_limits' shape): one range of the N values, each validated by its
  model (``store.list`` decodes no less).

Raw rates are ``bench._common.limit_rate``'s (threads or tasks on one loop, the better).

    python -m bench.ceiling [--count 10000] [--ops 8000] [--workers 8] [--etcd-endpoints URL,...]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import orjson

from apiserver.app import ApiOptions
from bench._common import Row, etcd_for_bench, limit_rate, print_table, threaded_rate
from bench.api import CLIENTS, cpu_seconds_of, request, wait_ready
from bench.store_limits import Instance, make_instance, raw_cas_rate, raw_create_rate
from controller.asgi import Answer, Application, AsgiServer, Receive, Scope, Send
from controller.store.bridge import run_bridged
from controller.store.codec import encode_value
from controller.store.embedded import free_port
from controller.store.etcd import (
    EtcdClient,
    cmp_create_revision,
    cmp_mod_revision,
    op_put,
    prefix_range_end,
)
from controller.store.watch import PrefixWatch
from skybroker.main import tune_interpreter


def _seed(client: EtcdClient, prefix: str, count: int) -> None:
    """``count`` Instances under ``prefix``, as bench.converge's manifests are."""

    def put(thread_index: int, i: int) -> None:
        name = f"i-{thread_index}-{i:06d}"
        client.put(f"{prefix}{name}".encode(), encode_value(make_instance(name).to_wire()))

    threaded_rate(put, 8, count // 8)


def converge_skeleton(
    client: EtcdClient, prefix: str, count: int, workers: int
) -> tuple[float, float]:
    """Seconds for ``count`` objects to get their two writes each (see the module docstring),
    and this process's CPU seconds per object meanwhile."""
    _seed(client, prefix, count)
    count = count // 8 * 8
    results = {}  # the two values each object is written with, made before the clock starts
    for kv in client.range_prefix(prefix.encode())[0]:
        wire = orjson.loads(kv.value)
        placement = {"account": "sim-a", "region": "sim-1", "zone": "sim-1a", "size": "s-1"}
        intent = {
            **wire,
            "status": {
                "phase": "Scheduled",
                "placement": placement,
                "createToken": f"{uuid.uuid4()}-1",
                "conditions": [_condition("Scheduled", "True", "Placed")],
            },
        }
        result = {
            **intent,
            "status": {
                **intent["status"],
                "phase": "Running",
                "providerID": f"sim-{uuid.uuid4().hex}",
                "addresses": [{"type": "PrivateIP", "address": "10.0.0.1"}],
                "conditions": [
                    _condition(kind, "True", reason)
                    for kind, reason in [
                        ("Scheduled", "Placed"),
                        ("Provisioned", "Created"),
                        ("Ready", "Running"),
                    ]
                ],
            },
        }
        Instance.model_validate(result)  # the skeleton writes what the real controller writes
        results[bytes(kv.key)] = (encode_value(intent), encode_value(result))
    work: queue.SimpleQueue[tuple[bytes, int] | None] = queue.SimpleQueue()
    finished = threading.Event()
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            while (item := work.get()) is not None:
                key, revision = item
                intent, result = results[key]
                answer = client.txn([cmp_mod_revision(key, revision)], [op_put(key, intent)])
                revision = int(answer.header.revision)
                written = client.txn([cmp_mod_revision(key, revision)], [op_put(key, result)])
                assert written.succeeded, key
        except BaseException as exc:  # reported by the waiting thread, at once
            failures.append(exc)
            finished.set()

    def follow(watch: PrefixWatch) -> None:
        events = 0
        try:
            for batch in watch:
                for event in batch:
                    Instance.model_validate_json(event.value)
                events += len(batch)
                if events >= 2 * count:
                    break
        except BaseException as exc:  # reported by the waiting thread, at once
            failures.append(exc)
        finished.set()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    start, cpu_before = time.perf_counter(), cpu_seconds_of([os.getpid()])
    kvs, revision = client.range_prefix(prefix.encode())
    watch = PrefixWatch(client, prefix.encode(), revision + 1)
    follower = threading.Thread(target=follow, args=(watch,), daemon=True)
    follower.start()
    for kv in kvs:
        Instance.model_validate_json(kv.value)
        work.put((bytes(kv.key), int(kv.mod_revision)))
    for _ in threads:
        work.put(None)
    if not finished.wait(120):
        raise RuntimeError("the converge skeleton did not see every write in 120 s")
    if failures:
        raise failures[0]
    seconds = time.perf_counter() - start
    cpu = (cpu_seconds_of([os.getpid()]) - cpu_before) / count
    watch.stop()
    return seconds, cpu


def _condition(kind: str, status: str, reason: str) -> dict[str, str]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": "",
        "lastTransitionTime": "2026-12-04T00:00:00Z",
    }


def relist_skeleton(client: EtcdClient, prefix: str) -> tuple[float, float]:
    """Lists/s of one range of ``prefix``: raw, and with every value validated."""

    def raw_once(_: int, __: int) -> None:
        client.range_prefix(prefix.encode())

    def validated_once(_: int, __: int) -> None:
        for kv in client.range_prefix(prefix.encode())[0]:
            Instance.model_validate_json(kv.value)

    return limit_rate(raw_once, 1, 3), limit_rate(validated_once, 1, 3)


def skeleton_app(client: EtcdClient, prefix: str, *, on_loop: bool) -> Application:
    """The create skeleton's ASGI app: POST any path = create ``prefix + path`` with the body.

    The transaction goes out from a worker thread on the blocking gRPC client, or (``on_loop``)
    bridged on the event loop (``controller.store.bridge``), as the API server's lists and
    single-object requests respectively do."""
    # The API server's default worker threads, so the hop costs the same.
    pool = ThreadPoolExecutor(ApiOptions().workers, thread_name_prefix="api-worker")

    def create(path: str, body: bytes) -> bool:
        key = f"{prefix}{path}".encode()
        return bool(client.txn([cmp_create_revision(key, 0)], [op_put(key, body)]).succeeded)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if scope["method"] != "POST":
            await Answer(200, b"{}").send(send)
            return
        if on_loop:
            created = await run_bridged(create, scope["path"], body)
        else:
            loop = asyncio.get_running_loop()
            created = await loop.run_in_executor(pool, create, scope["path"], body)
        await Answer(201 if created else 409, body).send(send)

    return app


def create_skeleton(
    endpoint: str, prefix: str, per_client: int, *, on_loop: bool
) -> tuple[float, float]:
    """Creates/s through the skeleton server, and the server's CPU seconds per create."""
    port = free_port()
    command = [
        sys.executable, "-m", "bench.ceiling", "--serve", f"127.0.0.1:{port}",
        "--etcd-endpoints", endpoint, "--prefix", prefix, *(["--on-loop"] if on_loop else []),
    ]  # fmt: skip
    server = subprocess.Popen(command)
    try:
        wait_ready(port, server)
        connections = [http.client.HTTPConnection("127.0.0.1", port) for _ in range(CLIENTS)]
        body = make_instance("x").to_wire()

        def create(thread_index: int, i: int) -> None:
            code, answer = request(connections[thread_index], "POST", f"/{thread_index}-{i}", body)
            assert code == 201, answer

        before = cpu_seconds_of([server.pid])
        creates = threaded_rate(create, CLIENTS, per_client)
        cpu = (cpu_seconds_of([server.pid]) - before) / (CLIENTS * per_client)
        for connection in connections:
            connection.close()
        return creates, cpu
    finally:
        server.terminate()
        server.wait(30)


def serve(listen: str, endpoints: str, prefix: str, *, on_loop: bool) -> None:
    tune_interpreter()
    client = EtcdClient(endpoints.split(","))
    AsgiServer(skeleton_app(client, prefix, on_loop=on_loop), listen, name="ceiling").run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="objects to converge/list")
    parser.add_argument("--ops", type=int, default=8_000, help="creates through HTTP")
    parser.add_argument("--workers", type=int, default=8, help="converge worker threads")
    parser.add_argument("--etcd-endpoints", default="")
    parser.add_argument("--serve", metavar="HOST:PORT", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="", help=argparse.SUPPRESS)
    parser.add_argument("--on-loop", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.etcd_endpoints, args.prefix, on_loop=args.on_loop)
        return
    tune_interpreter()
    base = f"/ceiling-{uuid.uuid4().hex[:8]}"
    with etcd_for_bench(args) as client:
        raw_cas = raw_cas_rate(client, base, args.workers, args.ops // args.workers * 2)
        seconds, converge_cpu = converge_skeleton(
            client, f"{base}/converge/", args.count, args.workers
        )
        objects = args.count // 8 * 8
        raw_list, validated_list = relist_skeleton(client, f"{base}/converge/")
        creates = {}
        for on_loop in (False, True):
            raw_creates = raw_create_rate(client, f"{base}/{on_loop}", CLIENTS, args.ops // CLIENTS)
            creates[on_loop] = (
                raw_creates,
                *create_skeleton(
                    client.endpoints[0],
                    f"{base}/http-{on_loop}",
                    args.ops // CLIENTS,
                    on_loop=on_loop,
                ),
            )
        client.delete_range(base.encode(), prefix_range_end(base.encode()))
    rows = [
        Row(f"converge {objects}, 2 CAS/object", raw_cas, objects / seconds, "objects/s"),
        Row(f"create, {CLIENTS} clients, HTTP", *creates[False][:2], "creates/s"),
        Row("  same, etcd call on the loop", *creates[True][:2], "creates/s"),
        Row(f"relist {objects}, validated", raw_list, validated_list, "lists/s"),
    ]
    print_table("stack ceiling: skeletons vs raw etcd (same etcd, same run)", rows, "skeleton")
    print(f"converge skeleton CPU per object: {converge_cpu * 1e6:.0f} µs")
    print(
        f"skeleton server CPU per create: {creates[False][2] * 1e6:.0f} µs from a worker thread, "
        f"{creates[True][2] * 1e6:.0f} µs on the loop"
    )
    print(
        f"ceiling converge_ratio={rows[0].ratio:.3f} create_ratio={rows[1].ratio:.3f} "
        f"create_on_loop_ratio={rows[2].ratio:.3f} relist_ratio={rows[3].ratio:.3f} "
        f"converge_seconds={seconds:.2f}"
    )


if __name__ == "__main__":
    main()
