"""REST API throughput beside the raw etcd limit of the same run.

Rows: creates/s and gets/s with 8 concurrent clients — raw (bare CAS create transactions and
single-key ranges on the gRPC client) and through ``skybroker apiserver`` (separate processes,
so the clients do not share their interpreter: HTTP, token auth, RBAC, validation, admission,
history record, store CAS) — with the ratio API/raw, first with one API server and then with
several (``--apiservers``, default 2; DESIGN §1: "run as many as you like"), each client keeping
one connection to one of them, spread evenly as behind a load balancer. The raw numbers are
measured again right before each API configuration, so a machine whose load changes during
the run still yields fair ratios. Below the table: the API servers' own CPU time per request
(from ``/proc``), the number that least depends on what else the machine is doing.

The clients are threads of this process, each with one keep-alive connection of the standard
library's ``http.client`` (lighter than httpx: on a small machine the client's own CPU would
otherwise come out of the server's share); raw etcd is driven by as many threads, or tasks on
one event loop, whichever is faster (``bench._common.limit_rate``).

    python -m bench.api [--ops 8000] [--apiservers 2] [--etcd-endpoints URL,...]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._common import Row, etcd_for_bench, limit_rate, print_table, threaded_rate
from bench.store_limits import raw_create_rate
from controller.metrics import stat_cpu_seconds
from controller.store.embedded import free_port
from controller.store.etcd import EtcdClient

CLIENTS = 8
TOKEN = "bench-admin-token"
ROOT = "/apis/skybroker.io/v1alpha1"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def request(
    connection: http.client.HTTPConnection, method: str, path: str, body: Any = None
) -> tuple[int, bytes]:
    payload = json.dumps(body).encode() if body is not None else None
    connection.request(method, path, body=payload, headers=HEADERS)
    answer = connection.getresponse()
    return answer.status, answer.read()


def wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("an apiserver exited during start-up")
        with contextlib.suppress(OSError, http.client.HTTPException):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            if request(connection, "GET", "/readyz")[0] == 200:
                connection.close()
                return
        time.sleep(0.1)
    raise RuntimeError("an apiserver did not become ready")


def cpu_seconds_of(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used (Linux ``/proc``; NaN elsewhere)."""
    total = 0.0
    for pid in pids:
        try:
            total += sum(stat_cpu_seconds(f"/proc/{pid}/stat"))
        except OSError:
            return float("nan")
    return total


@dataclass
class Servers:
    ports: list[int]
    pids: list[int]


@dataclass
class Measured:
    creates: float  # per second
    gets: float
    create_cpu: float  # API server CPU seconds per request
    get_cpu: float


@contextlib.contextmanager
def apiservers(
    endpoint: str, prefix: str, tmp: Path, count: int, extra_args: Sequence[str] = ()
) -> Iterator[Servers]:
    """``count`` ``skybroker apiserver`` processes on one etcd prefix (``extra_args`` added
    to each command line)."""
    token_file = tmp / "tokens.csv"
    token_file.write_text(f'{TOKEN},admin,admin,"system:masters"\n')
    ports = [free_port() for _ in range(count)]
    processes = []
    try:
        for port in ports:
            command = [
                sys.executable, "-m", "skybroker", "--log-level", "warning", "apiserver",
                "--etcd-endpoints", endpoint, "--listen", f"127.0.0.1:{port}",
                "--token-file", str(token_file), "--prefix", prefix, *extra_args,
            ]  # fmt: skip
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            processes.append(subprocess.Popen(command, env=env))
        for port, process in zip(ports, processes, strict=True):
            wait_ready(port, process)
        yield Servers(ports, [process.pid for process in processes])
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:  # say so, but let the bench report its numbers
                print(f"apiserver pid {process.pid} ignored SIGTERM for 10 s: killed", flush=True)
                process.kill()
                process.wait()


def _firewall(name: str) -> dict[str, Any]:
    rule = {"direction": "Ingress", "protocol": "tcp", "ports": "443", "cidrs": ["0.0.0.0/0"]}
    return {"kind": "Firewall", "metadata": {"name": name}, "spec": {"rules": [rule]}}


def api_rates(servers: Servers, per_client: int) -> Measured:
    """Creates, then gets, by CLIENTS threads, client ``t`` talking to server ``t % count``."""
    ports = servers.ports
    connections = [
        http.client.HTTPConnection("127.0.0.1", ports[t % len(ports)]) for t in range(CLIENTS)
    ]
    collection = f"{ROOT}/namespaces/bench/firewalls"

    def create(thread_index: int, i: int) -> None:
        name = f"fw-{thread_index}-{i}"
        code, body = request(connections[thread_index], "POST", collection, _firewall(name))
        assert code == 201, body

    def get(thread_index: int, i: int) -> None:
        code, body = request(
            connections[thread_index], "GET", f"{collection}/fw-{thread_index}-{i}"
        )
        assert code == 200, body

    namespace = {"kind": "Namespace", "metadata": {"name": "bench"}}
    code, body = request(connections[0], "POST", f"{ROOT}/namespaces", namespace)
    assert code == 201, body

    def warm_up(thread_index: int, i: int) -> None:
        request(connections[thread_index], "GET", "/healthz")

    threaded_rate(warm_up, CLIENTS, 5)
    requests = CLIENTS * per_client
    try:
        before = cpu_seconds_of(servers.pids)
        creates = threaded_rate(create, CLIENTS, per_client)
        middle = cpu_seconds_of(servers.pids)
        gets = threaded_rate(get, CLIENTS, per_client)
        after = cpu_seconds_of(servers.pids)
        return Measured(creates, gets, (middle - before) / requests, (after - middle) / requests)
    finally:
        for connection in connections:
            connection.close()


def raw_get_rate(client: EtcdClient, prefix: str, per_client: int) -> float:
    def get(thread_index: int, i: int) -> None:
        key = f"{prefix}/raw-create/{thread_index}-{i}".encode()
        assert client.range(key).kvs

    return limit_rate(get, CLIENTS, per_client)


def measure(client: EtcdClient, tmp: Path, count: int, per_client: int) -> tuple[list[Row], str]:
    """Raw etcd, then ``count`` API servers, on a fresh prefix: two rows and a CPU note."""
    prefix = f"/bench-{uuid.uuid4().hex[:8]}"
    raw_creates = raw_create_rate(client, prefix, CLIENTS, per_client)
    raw_gets = raw_get_rate(client, prefix, per_client)
    with apiservers(client.endpoints[0], prefix, tmp, count) as servers:
        api = api_rates(servers, per_client)
    where = f"{count} apiserver{'s' if count > 1 else ''}"
    rows = [
        Row(f"create, {CLIENTS} clients, {where}", raw_creates, api.creates, "creates/s"),
        Row(f"get, {CLIENTS} clients, {where}", raw_gets, api.gets, "gets/s"),
    ]
    note = (
        f"apiserver CPU per request, {where}: create {api.create_cpu * 1e6:.0f} µs, "
        f"get {api.get_cpu * 1e6:.0f} µs"
    )
    return rows, note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # 2,000 took a third of a second raw: ratios moved by 0.1 between runs; 8,000 steadies them.
    parser.add_argument("--ops", type=int, default=8_000, help="operations per measurement")
    parser.add_argument("--apiservers", type=int, default=2, help="API servers of the last rows")
    parser.add_argument("--etcd-endpoints", default="")
    args = parser.parse_args()
    per_client = args.ops // CLIENTS
    rows: list[Row] = []
    notes: list[str] = []
    with etcd_for_bench(args) as client, tempfile.TemporaryDirectory() as tmp:
        for count in sorted({1, max(1, args.apiservers)}):
            measured, note = measure(client, Path(tmp), count, per_client)
            rows.extend(measured)
            notes.append(note)
    print_table(f"REST API vs raw etcd ({CLIENTS} clients, same etcd, same run)", rows)
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
