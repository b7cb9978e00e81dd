"""The EC2 front door's cost: RunInstances + DescribeInstances through boto3, beside moto_server
and beside skybroker's own REST API, in one run.

One operation = launch one instance and describe it by id:

- ``EC2 front door``: boto3 ``run_instances`` (botocore adds a ClientToken, as every boto3
  call does) and ``describe_instances(InstanceIds=[…])`` against ``skybroker apiserver``
  (SigV4, the access key's user: RBAC, validation, admission, store CAS, history);
- ``moto_server``: the same two boto3 calls against moto 5.0.28 (``moto_server -H 127.0.0.1
  -p PORT``, as the tests run it), an in-memory EC2 that stores nothing durably: the price of
  the EC2 wire format and of boto3 itself, with no etcd under it;
- ``REST``: ``POST …/instances`` and ``GET …/instances/NAME`` with ``http.client`` as the same
  user, the same Instance.

Servers run as separate processes (the clients are threads of this one: the client's CPU does
not come out of a server's share), each measured with ``--clients`` threads, one client or
connection per thread. Nothing reconciles: instances stay pending, so the numbers are the front
door's own. Rows give operations/s and the ratio to the row's baseline, then each server's own
CPU per operation (``/proc``) — the number that least depends on what else the machine does.
As the namespace fills, the front door's id lookups (ids are hashes of uids, found by listing
the namespace) grow with it: ``--ops`` sets how far.

    python -m bench.ec2api [--ops 300] [--clients 4] [--etcd-endpoints URL,...]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from bench._common import etcd_for_bench, threaded_rate
from bench.api import cpu_seconds_of, wait_ready
from controller.store.embedded import free_port
from skyctl.accesskeys import create_access_key
from skyctl.http import HttpBackend

API = "skybroker.io/v1alpha1"
ADMIN_TOKEN = "bench-admin-token"
USER_TOKEN = "bench-user-token"
NAMESPACE = "bench"
REGION = "general"
INSTANCE_SPEC = {"pool": REGION, "hardware": {"profile": "small"}, "image": "ubuntu-22.04"}

SETUP: list[dict[str, Any]] = [
    {"kind": "Namespace", "metadata": {"name": NAMESPACE}},
    {"kind": "ProviderAccount", "metadata": {"name": "sim-a"},
     "spec": {"driver": "simulated", "region": "sim-east",
              "images": {"ubuntu-22.04": "img-ubuntu-2204"}}},
    {"kind": "Pool", "metadata": {"name": REGION}, "spec": {"members": [{"account": "sim-a"}]}},
    {"kind": "HardwareProfile", "metadata": {"name": "small"},
     "spec": {"cpu": {"min": 1, "max": 2}, "memoryMiB": {"min": 1024}}},
    {"kind": "RoleBinding", "metadata": {"name": "bench-admin", "namespace": NAMESPACE},
     "roleRef": {"kind": "ClusterRole", "name": "admin"},
     "subjects": [{"kind": "User", "name": "bench"}]},
    {"kind": "ClusterRole", "metadata": {"name": "catalogue-reader"},
     "rules": [{"apiGroups": ["skybroker.io"], "resources": ["pools", "hardwareprofiles"],
                "verbs": ["get", "list"]}]},
    {"kind": "ClusterRoleBinding", "metadata": {"name": "bench-catalogue"},
     "roleRef": {"kind": "ClusterRole", "name": "catalogue-reader"},
     "subjects": [{"kind": "User", "name": "bench"}]},
]  # fmt: skip


@dataclass
class Target:
    """A server under measurement: how to make a client per thread, and its process."""

    name: str
    pid: int
    operation: Callable[[int, int], None]


@dataclass
class Result:
    name: str
    rate: float  # operations/s
    cpu: float  # server CPU seconds per operation


def _boto3(endpoint: str, key_id: str, secret: str, region: str) -> Any:
    return boto3.client(
        "ec2",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}, max_pool_connections=1),
    )


def _ec2_operation(
    clients: list[Any], image: str, instance_type: str
) -> Callable[[int, int], None]:
    def launch_and_describe(thread_index: int, _: int) -> None:
        client = clients[thread_index]
        answer = client.run_instances(
            ImageId=image, InstanceType=instance_type, MinCount=1, MaxCount=1
        )
        instance_id = answer["Instances"][0]["InstanceId"]
        described = client.describe_instances(InstanceIds=[instance_id])
        assert described["Reservations"][0]["Instances"][0]["InstanceId"] == instance_id

    return launch_and_describe


def _rest_operation(connections: list[http.client.HTTPConnection]) -> Callable[[int, int], None]:
    headers = {"Authorization": f"Bearer {USER_TOKEN}", "Content-Type": "application/json"}
    collection = f"/apis/{API}/namespaces/{NAMESPACE}/instances"

    def request(thread_index: int, method: str, path: str, body: Any = None) -> None:
        connection = connections[thread_index]
        payload = json.dumps(body).encode() if body is not None else None
        connection.request(method, path, body=payload, headers=headers)
        answer = connection.getresponse()
        content = answer.read()
        assert answer.status in (200, 201), content

    def create_and_get(thread_index: int, i: int) -> None:
        name = f"rest-{uuid.uuid4().hex[:12]}"  # the warm-up runs the same indexes
        obj = {"apiVersion": API, "kind": "Instance", "spec": INSTANCE_SPEC,
               "metadata": {"name": name, "namespace": NAMESPACE}}  # fmt: skip
        request(thread_index, "POST", collection, obj)
        request(thread_index, "GET", f"{collection}/{name}")

    return create_and_get


def measure(target: Target, clients: int, per_client: int) -> Result:
    threaded_rate(target.operation, clients, 2)  # warm up: connections, caches, imports
    before = cpu_seconds_of([target.pid])
    ops = threaded_rate(target.operation, clients, per_client)
    cpu = (cpu_seconds_of([target.pid]) - before) / (clients * per_client)
    return Result(target.name, ops, cpu)


@contextlib.contextmanager
def skybroker_apiserver(endpoint: str, tmp: Path) -> Iterator[tuple[int, int]]:
    """``skybroker apiserver`` on a fresh prefix: (port, pid)."""
    tokens = tmp / "tokens.csv"
    tokens.write_text(f'{ADMIN_TOKEN},admin,admin,"system:masters"\n{USER_TOKEN},bench,bench\n')
    key_file = tmp / "encryption.key"
    key_file.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    port = free_port()
    command = [
        sys.executable, "-m", "skybroker", "--log-level", "warning", "apiserver",
        "--etcd-endpoints", endpoint, "--listen", f"127.0.0.1:{port}",
        "--token-file", str(tokens), "--encryption-key-file", str(key_file),
        "--prefix", f"/bench-ec2-{uuid.uuid4().hex[:8]}",
    ]  # fmt: skip
    process = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_ready(port, process)
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(10)


@contextlib.contextmanager
def moto_server() -> Iterator[tuple[int, int]]:
    """moto_server as the tests start it (beside this interpreter, else on PATH): (port, pid)."""
    beside = Path(sys.executable).with_name("moto_server")
    binary = str(beside) if beside.exists() else shutil.which("moto_server")
    if not binary:
        raise SystemExit("moto_server not found: install the dev extra (moto[server])")
    port = free_port()
    process = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/moto-api/data.json", timeout=1
                ):
                    break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.05)
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(10)


def _seed(port: int) -> tuple[str, str]:
    """The world of the module docstring, through REST as the admin; the bench user's key."""
    backend = HttpBackend(f"http://127.0.0.1:{port}", ADMIN_TOKEN)
    try:
        for manifest in SETUP:
            backend.create({"apiVersion": API, **manifest}, dry_run=False)
        key = create_access_key(backend, "bench", user="bench", groups=[], namespace=NAMESPACE)
    finally:
        backend.close()
    return key.access_key_id, key.secret_access_key


def _key_works(client: Any) -> bool:
    try:
        client.describe_regions()
    except Exception:  # the access key cache has not seen the new key yet
        return False
    return True


def run(clients: int, per_client: int, etcd_endpoint: str, tmp: Path) -> list[Result]:
    results = []
    with skybroker_apiserver(etcd_endpoint, tmp) as (port, pid):
        key_id, secret = _seed(port)
        endpoint = f"http://127.0.0.1:{port}/ec2/"
        ec2 = [_boto3(endpoint, key_id, secret, REGION) for _ in range(clients)]
        deadline = time.monotonic() + 30
        while not _key_works(ec2[0]):
            if time.monotonic() > deadline:
                raise RuntimeError("the bench access key never became usable")
            time.sleep(0.1)
        operation = _ec2_operation(ec2, "ubuntu-22.04", "small")
        results.append(
            measure(Target("EC2 front door (boto3)", pid, operation), clients, per_client)
        )
        connections = [http.client.HTTPConnection("127.0.0.1", port) for _ in range(clients)]
        try:
            rest = Target("REST (http.client)", pid, _rest_operation(connections))
            results.append(measure(rest, clients, per_client))
        finally:
            for connection in connections:
                connection.close()
    with moto_server() as (port, pid):
        endpoint = f"http://127.0.0.1:{port}"
        moto = [_boto3(endpoint, "AKIDBENCH", "not-a-secret", "us-east-1") for _ in range(clients)]
        operation = _ec2_operation(moto, "ami-12345678", "t3.micro")
        results.append(measure(Target("moto_server (boto3)", pid, operation), clients, per_client))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=300, help="operations per target")
    parser.add_argument("--clients", type=int, default=4, help="client threads")
    parser.add_argument("--etcd-endpoints", default="")
    args = parser.parse_args()
    per_client = max(1, args.ops // args.clients)
    with etcd_for_bench(args) as client, tempfile.TemporaryDirectory() as tmp:
        results = {r.name: r for r in run(args.clients, per_client, client.endpoints[0], Path(tmp))}
    front, rest, moto = (
        results["EC2 front door (boto3)"],
        results["REST (http.client)"],
        results["moto_server (boto3)"],
    )
    print(
        f"\nRunInstances + DescribeInstances by id ({args.clients} clients, "
        f"{args.clients * per_client} operations per target, same run)"
    )
    print(f"{'target':<26} {'ops/s':>9} {'server CPU/op':>14} {'vs front door':>14}")
    for result in (front, rest, moto):
        print(
            f"{result.name:<26} {result.rate:>9.1f} {result.cpu * 1e3:>11.2f} ms "
            f"{result.rate / front.rate if front.rate else 0:>13.2f}x"
        )
    print(
        f"ratios: front door / moto_server {front.rate / moto.rate:.2f} (ops/s), "
        f"{moto.cpu / front.cpu if front.cpu else 0:.2f} (server CPU); "
        f"front door / REST {front.rate / rest.rate:.2f} (ops/s), "
        f"{rest.cpu / front.cpu if front.cpu else 0:.2f} (server CPU)"
    )


if __name__ == "__main__":
    main()
