"""Shared plumbing of the benchmarks: an etcd to measure against and a results table.

Every benchmark measures the physical limit in the same run (raw etcd operations over the same
gRPC client) and prints skybroker's numbers as ratios to it, so results compare across
machines.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from controller.store.embedded import EmbeddedEtcd
from controller.store.etcd import EtcdClient

__all__ = ["Row", "etcd_for_bench", "print_table", "rate", "threaded_rate"]


@dataclass
class Row:
    operation: str
    raw: float
    skybroker: float
    unit: str
    higher_is_better: bool = True

    @property
    def ratio(self) -> float:
        if not self.raw or not self.skybroker:
            return 0.0
        return self.skybroker / self.raw if self.higher_is_better else self.raw / self.skybroker


@contextlib.contextmanager
def etcd_for_bench(args: argparse.Namespace) -> Iterator[EtcdClient]:
    if args.etcd_endpoints:
        client = EtcdClient(args.etcd_endpoints.split(","))
        yield client
        client.close()
        return
    with tempfile.TemporaryDirectory(prefix="skybroker-bench-") as tmp:
        server = EmbeddedEtcd(data_dir=Path(tmp))
        server.start()
        client = EtcdClient([server.endpoint])
        try:
            yield client
        finally:
            client.close()
            server.stop()


def rate(operation: Callable[[int], None], count: int) -> float:
    """Operations per second of ``count`` sequential calls."""
    start = time.perf_counter()
    for i in range(count):
        operation(i)
    return count / (time.perf_counter() - start)


def threaded_rate(operation: Callable[[int, int], None], threads: int, per_thread: int) -> float:
    """Aggregate operations per second of ``threads`` threads each calling ``per_thread`` times."""
    barrier = threading.Barrier(threads + 1)

    def worker(thread_index: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            operation(thread_index, i)

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in pool:
        thread.join()
    return threads * per_thread / (time.perf_counter() - start)


def print_table(title: str, rows: list[Row], measured: str = "skybroker") -> None:
    print(f"\n{title}")
    print(f"{'operation':<34} {'raw etcd':>14} {measured:>14} {'unit':<10} {'ratio':>7}")
    for row in rows:
        print(
            f"{row.operation:<34} {row.raw:>14.1f} {row.skybroker:>14.1f} {row.unit:<10} "
            f"{row.ratio:>7.2f}"
        )
