"""Boot agents' heartbeats against one API server: etcd writes, server CPU and latency per beat.

``--agents`` agents (default 1,000), each reporting every ``--interval`` seconds (default 10,
DESIGN §11's heartbeat for a 30 s ``staleAfter``) for ``--seconds`` (default 40), their first
beats spread evenly over one interval, against one ``skybroker apiserver`` process. Every agent
is a real Instance (created through the REST API; no controller runs, so nothing else writes)
pre-registered as the Instance reconciler does it (a record holding its secret's digest). The
clients are coroutines of this process on one ``httpx.AsyncClient``.

Reported, from the same run:

- etcd writes per heartbeat: the revisions the run added over the reports answered 204
  (target 1), and the writes to the Instances (target 0: their ``mod_revision`` must not move);
- the API server's CPU per heartbeat (``/proc``), and the heartbeats/s one core could serve at
  that cost, beside the raw leased-put rate of etcd measured right before (8 client threads on
  the gRPC client): the ratio says how far the API path is from what etcd itself allows;
- report latency p50/p99/max, and any answer other than 204.

    python -m bench.rendezvous [--agents 1000] [--interval 10] [--seconds 40]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from api_types.boot import new_boot_secret
from api_types.rendezvous import RendezvousRecord, secret_digest
from bench._common import etcd_for_bench, limit_rate
from bench.api import apiservers, cpu_seconds_of, request
from controller.rendezvous import RendezvousStore
from controller.store.etcd import EtcdClient
from controller.store.keys import KeyLayout
from controller.store.objects import Store

NAMESPACE = "bench"
ROOT = "/apis/skybroker.io/v1alpha1"
CLIENT_THREADS = 8

SETUP: list[tuple[str, dict[str, Any]]] = [
    (f"{ROOT}/namespaces", {"kind": "Namespace", "metadata": {"name": NAMESPACE}}),
    (f"{ROOT}/provideraccounts",
     {"kind": "ProviderAccount", "metadata": {"name": "sim-a"},
      "spec": {"driver": "simulated", "region": "sim-east", "images": {"ubuntu": "img-1"}}}),
    (f"{ROOT}/pools",
     {"kind": "Pool", "metadata": {"name": "general"},
      "spec": {"members": [{"account": "sim-a"}]}}),
    (f"{ROOT}/namespaces/{NAMESPACE}/bootconfigs",
     {"kind": "BootConfig", "metadata": {"name": "web", "namespace": NAMESPACE},
      "spec": {"config": "#!/bin/sh\necho '{}'\n", "staleAfter": "30s"}}),
]  # fmt: skip


def _instance(name: str) -> dict[str, Any]:
    return {
        "kind": "Instance",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"pool": "general", "hardware": {"cpu": 1}, "image": "ubuntu",
                 "bootConfigRef": "web"},
    }  # fmt: skip


def _agents(port: int, store: Store, count: int) -> list[tuple[str, str]]:
    """Create ``count`` Instances and pre-register each: [(uid, secret)]."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for path, body in SETUP:
        code, answer = request(connection, "POST", path, body)
        assert code == 201, answer
    rendezvous = RendezvousStore(store)
    agents = []
    for index in range(count):
        name = f"agent-{index:05d}"
        code, answer = request(
            connection, "POST", f"{ROOT}/namespaces/{NAMESPACE}/instances", _instance(name)
        )
        assert code == 201, answer
        uid = json.loads(answer)["metadata"]["uid"]
        secret = new_boot_secret()
        record = RendezvousRecord(
            namespace=NAMESPACE,
            boot_config="web",
            instance=name,
            secret_sha256=secret_digest(secret),
            created_at=datetime.now(UTC),
        )
        rendezvous.register(uid, record)
        agents.append((uid, secret))
    connection.close()
    return agents


def raw_leased_put_rate(client: EtcdClient, prefix: str, per_thread: int) -> float:
    lease = client.lease_grant(120)
    value = json.dumps({"uuid": str(uuid.uuid4()), "status": "Configured"}).encode()

    def put(thread: int, index: int) -> None:
        client.put(f"{prefix}/raw/{thread}/{index % 100}".encode(), value, lease)

    return limit_rate(put, CLIENT_THREADS, per_thread)


async def _beat_all(
    base: str, agents: list[tuple[str, str]], interval: float, seconds: float
) -> tuple[list[float], dict[int, int]]:
    latencies: list[float] = []
    codes: dict[int, int] = {}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    report = {"status": "Configured", "address": "10.0.0.1", "parameters": {"role": "web"},
              "configRevision": 1}  # fmt: skip
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds

        async def agent(index: int, uid: str, secret: str) -> None:
            next_beat = loop.time() + interval * index / len(agents)
            headers = {"Authorization": f"Bearer {secret}"}
            while next_beat < end:
                await asyncio.sleep(max(0.0, next_beat - loop.time()))
                started = time.perf_counter()
                answer = await client.put(
                    f"/rendezvous/v1/configs/{uid}/report", json=report, headers=headers
                )
                latencies.append(time.perf_counter() - started)
                codes[answer.status_code] = codes.get(answer.status_code, 0) + 1
                next_beat += interval

        await asyncio.gather(*(agent(i, uid, s) for i, (uid, s) in enumerate(agents)))
    return latencies, codes


def _instance_revisions(client: EtcdClient, prefix: str) -> dict[bytes, int]:
    kvs, _ = client.range_prefix(f"{prefix}/registry/instances/{NAMESPACE}/".encode())
    return {bytes(kv.key): int(kv.mod_revision) for kv in kvs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between beats")
    parser.add_argument("--seconds", type=float, default=40.0, help="how long agents beat")
    parser.add_argument("--etcd-endpoints", default="")
    args = parser.parse_args()
    prefix = f"/bench-{uuid.uuid4().hex[:8]}"
    with etcd_for_bench(args) as client, tempfile.TemporaryDirectory() as tmp:
        # Every agent reports from this one address: the per-address limit is lifted.
        extra = ["--rendezvous-rate", "100000", "--rendezvous-burst", "100000"]
        with apiservers(client.endpoints[0], prefix, Path(tmp), 1, extra) as servers:
            store = Store(client, KeyLayout(prefix))
            agents = _agents(servers.ports[0], store, args.agents)
            raw = raw_leased_put_rate(client, prefix, 500)
            instances = _instance_revisions(client, prefix)
            revision, cpu = client.current_revision(), cpu_seconds_of(servers.pids)
            latencies, codes = asyncio.run(
                _beat_all(f"http://127.0.0.1:{servers.ports[0]}", agents, args.interval,
                          args.seconds)
            )  # fmt: skip
            cpu = cpu_seconds_of(servers.pids) - cpu
            writes = client.current_revision() - revision
            untouched = _instance_revisions(client, prefix) == instances
    beats = codes.get(204, 0)
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0
    per_core = 1 / (cpu / beats) if beats and cpu else 0.0
    print(
        f"\n{args.agents} agents, a report every {args.interval:g} s for {args.seconds:g} s "
        f"against one API server (same run)"
    )
    print(f"heartbeats answered 204: {beats} (other answers: "
          f"{ {c: n for c, n in codes.items() if c != 204} or 'none'})")  # fmt: skip
    print(f"etcd writes per heartbeat: {writes / beats if beats else 0:.3f} (target 1); "
          f"Instances written: {'none' if untouched else 'SOME'}")  # fmt: skip
    print(f"API server CPU per heartbeat: {cpu / beats * 1e3 if beats else 0:.3f} ms "
          f"-> {per_core:.0f} heartbeats/s per core; raw leased put: {raw:.0f}/s "
          f"(ratio {per_core / raw if raw else 0:.2f})")  # fmt: skip
    if ordered:
        print(f"report latency: p50 {statistics.median(ordered) * 1e3:.1f} ms, "
              f"p99 {p99 * 1e3:.1f} ms, max {ordered[-1] * 1e3:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
