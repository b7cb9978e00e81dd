"""REST API throughput beside the raw etcd limit of the same run.

Rows: creates/s and gets/s with 8 concurrent clients — raw (bare CAS create transactions and
single-key ranges on the gRPC client) and through ``skybroker apiserver`` (a separate process,
so the clients do not share its interpreter: HTTP, token auth, RBAC, validation, admission,
history record, store CAS) — with the ratio API/raw. The clients are threads of this process
with one httpx connection each; raw etcd is driven from the same threads.

    python -m bench.api [--ops 2000] [--etcd-endpoints URL,...]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench._common import Row, etcd_for_bench, print_table, threaded_rate
from bench.store_limits import raw_create_rate
from controller.store.etcd import EtcdClient

CLIENTS = 8
TOKEN = "bench-admin-token"
ROOT = "/apis/skybroker.io/v1alpha1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_apiserver(endpoint: str, prefix: str, tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    token_file = tmp / "tokens.csv"
    token_file.write_text(f'{TOKEN},admin,admin,"system:masters"\n')
    port = _free_port()
    command = [
        sys.executable, "-m", "skybroker", "--log-level", "warning", "apiserver",
        "--etcd-endpoints", endpoint, "--listen", f"127.0.0.1:{port}",
        "--token-file", str(token_file), "--prefix", prefix,
    ]  # fmt: skip
    process = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("the apiserver did not become ready")


def _firewall(name: str) -> dict[str, Any]:
    rule = {"direction": "Ingress", "protocol": "tcp", "ports": "443", "cidrs": ["0.0.0.0/0"]}
    return {"kind": "Firewall", "metadata": {"name": name}, "spec": {"rules": [rule]}}


def api_rates(url: str, per_client: int) -> tuple[float, float]:
    local = threading.local()
    collection = f"{url}{ROOT}/namespaces/bench/firewalls"

    def http() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        client: httpx.Client = local.client
        return client

    def create(thread_index: int, i: int) -> None:
        answer = http().post(collection, json=_firewall(f"fw-{thread_index}-{i}"))
        assert answer.status_code == 201, answer.text

    def get(thread_index: int, i: int) -> None:
        answer = http().get(f"{collection}/fw-{thread_index}-{i}")
        assert answer.status_code == 200, answer.text

    namespace = {"kind": "Namespace", "metadata": {"name": "bench"}}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.post(f"{url}{ROOT}/namespaces", json=namespace, headers=headers).is_success
    threaded_rate(lambda t, i: http().get(f"{url}/healthz"), CLIENTS, 5)  # open connections
    return threaded_rate(create, CLIENTS, per_client), threaded_rate(get, CLIENTS, per_client)


def raw_get_rate(client: EtcdClient, prefix: str, per_client: int) -> float:
    def get(thread_index: int, i: int) -> None:
        key = f"{prefix}/raw-create/{thread_index}-{i}".encode()
        assert client.range(key).kvs

    return threaded_rate(get, CLIENTS, per_client)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=2_000, help="operations per measurement")
    parser.add_argument("--etcd-endpoints", default="")
    args = parser.parse_args()
    per_client = args.ops // CLIENTS
    prefix = f"/bench-{uuid.uuid4().hex[:8]}"
    with etcd_for_bench(args) as client, tempfile.TemporaryDirectory() as tmp:
        raw_creates = raw_create_rate(client, prefix, CLIENTS, per_client)
        raw_gets = raw_get_rate(client, prefix, per_client)
        process, url = _start_apiserver(client.endpoints[0], prefix, Path(tmp))
        try:
            api_creates, api_gets = api_rates(url, per_client)
        finally:
            process.terminate()
            process.wait(10)
    print_table(
        f"REST API vs raw etcd ({CLIENTS} clients, same etcd, same run)",
        [
            Row(f"create, {CLIENTS} clients", raw_creates, api_creates, "creates/s"),
            Row(f"get, {CLIENTS} clients", raw_gets, api_gets, "gets/s"),
        ],
    )


if __name__ == "__main__":
    main()
