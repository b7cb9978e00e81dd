"""Benchmark of instance creates through the provider layer (not part of ``make test``).

Where it sits: measures the cost of skybroker's provider path — token lookup before every
create, TagSpecification, API gate, metrics — against the physical limit of the same run:
a plain sequential loop of stock libcloud ``create_node`` calls on the same moto_server.
Prints creates/s for the plain loop and for ``open_provider(...).create_instance`` with 1 and
16 concurrent workers (one shared provider, as the controller uses it), and the ratios. The
simulated cloud is measured the same way for reference.

    .venv/bin/python bench/providers.py [--count 300]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from libcloud.compute.base import NodeImage, NodeSize
from libcloud.compute.drivers.ec2 import EC2NodeDriver

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controller.errors import TransientError
from providers.config import AccountConfig, ApiBudget
from providers.guarded import GuardedProvider
from providers.registry import open_provider
from providers.types import ImageId, InstanceCreate, ResourceTags, SizeId

__all__ = ["main"]

REGION = "us-east-1"
UNLIMITED = ApiBudget(rate=1e9, burst=10**9)
CREDS = {"key": "AKIDBENCH", "secret": "bench-secret"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_moto() -> tuple[subprocess.Popen[bytes], int]:
    binary = Path(sys.executable).with_name("moto_server")
    exe = str(binary) if binary.exists() else shutil.which("moto_server")
    if exe is None:
        raise SystemExit("moto_server not found (pip install 'moto[server]==5.0.28')")
    port = _free_port()
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ),
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/data.json", timeout=1)
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("moto_server did not start")


def _reset(port: int) -> None:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()


def _rate(count: int, run: Callable[[], None]) -> float:
    started = time.perf_counter()
    run()
    return count / (time.perf_counter() - started)


def plain_libcloud(port: int, count: int, lookup: bool) -> float:
    """Sequential stock-libcloud RunInstances: the floor of what any EC2 adapter pays.

    With ``lookup``, each create is preceded by the naive idempotency check a libcloud user
    would write (DescribeInstances filtered on the token tag), the fair baseline for an
    idempotent create.
    """
    driver = EC2NodeDriver(
        CREDS["key"],
        CREDS["secret"],
        region=REGION,
        host="127.0.0.1",
        port=port,
        secure=False,
        signature_version="4",
    )
    size = NodeSize("t3.micro", "t3.micro", 0, 0, 0, 0, driver)
    image = NodeImage("ami-12345678", "", driver)

    def run() -> None:
        for n in range(count):
            token = {"skybroker/token": f"plain-{n}"}
            if lookup:
                driver.list_nodes(ex_filters={f"tag:{k}": v for k, v in token.items()})
            driver.create_node(name=f"plain-{n}", size=size, image=image, ex_metadata=token)

    return _rate(count, run)


def through_adapter(
    provider: GuardedProvider, count: int, workers: int, size: str, image: str
) -> float:
    def create(n: int) -> None:
        tags = ResourceTags(name=f"vm-{n}", uid=f"uid-{n}", token=f"tok-{workers}-{n}")
        for _attempt in range(20):  # transient errors are retried, as the workqueue does
            try:
                provider.create_instance(InstanceCreate(tags, SizeId(size), ImageId(image)))
                return
            except TransientError:
                continue
        raise RuntimeError(f"create {n} kept failing")

    def run() -> None:
        if workers == 1:
            for n in range(count):
                create(n)
        else:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(create, range(count)))

    return _rate(count, run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="creates per measurement")
    args = parser.parse_args()
    count: int = args.count

    proc, port = _start_moto()
    try:
        ec2 = open_provider(
            AccountConfig(
                "bench-ec2",
                "ec2",
                REGION,
                endpoint=f"http://127.0.0.1:{port}",
                credentials=CREDS,
                api_budget=UNLIMITED,
            )
        )
        ec2.list_zones()  # warm up connections and imports
        _reset(port)
        plain = plain_libcloud(port, count, lookup=False)
        results: list[tuple[str, float]] = [("plain libcloud create loop", plain)]
        _reset(port)
        naive = plain_libcloud(port, count, lookup=True)
        results.append(("plain libcloud lookup+create loop", naive))
        for workers in (1, 16):
            _reset(port)
            rate = through_adapter(ec2, count, workers, "t3.micro", "ami-12345678")
            results.append((f"ec2 adapter, {workers:>2} worker(s)", rate))
    finally:
        proc.terminate()
        proc.wait(10)

    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 16):
            sim = open_provider(
                AccountConfig(
                    f"bench-sim-{workers}",
                    "simulated",
                    REGION,
                    endpoint=str(Path(tmp) / "sim.db"),
                    api_budget=UNLIMITED,
                )
            )
            rate = through_adapter(sim, count * 10, workers, "s1.small", "img-ubuntu-2204")
            results.append((f"simulated, {workers:>2} worker(s)", rate))

    print(f"instance creates, {count} per EC2 measurement (moto_server 5.0.28 on 127.0.0.1)")
    print(f"{'path':<36} {'creates/s':>10} {'vs plain':>9} {'vs lookup+create':>17}")
    for label, rate in results:
        print(f"{label:<36} {rate:>10.1f} {rate / plain:>8.2f}x {rate / naive:>16.2f}x")


if __name__ == "__main__":
    main()
