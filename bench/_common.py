"""Shared plumbing of the benchmarks: an etcd to measure against and a results table.

Every benchmark measures the physical limit in the same run (raw etcd operations over the same
gRPC client) and prints skybroker's numbers as ratios to it, so results compare across
machines.

The limit at N concurrent callers is :func:`limit_rate`: the better of N threads on gRPC's
blocking client and N tasks on one event loop on its asyncio client (``EtcdClient`` called in
greenlets, as the API server calls it: ``controller.store.bridge``). On 2 cores the second does
1.3 to 1.4 times the transactions per second of the first, at 60 % of its CPU per call: a limit
measured with threads alone was that much too low, and every ratio to it that much too high.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import uvloop

from controller.store.bridge import run_bridged
from controller.store.embedded import EmbeddedEtcd
from controller.store.etcd import EtcdClient

__all__ = [
    "Row",
    "etcd_for_bench",
    "limit_rate",
    "loop_rate",
    "print_table",
    "rate",
    "threaded_rate",
]


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


def loop_rate(operation: Callable[[int, int], None], tasks: int, per_task: int) -> float:
    """Aggregate operations per second of ``tasks`` tasks on one new event loop, task ``t``
    calling ``operation(t, i)`` for ``i`` in ``range(per_task)`` in a greenlet: the store's
    etcd calls in it are awaited on gRPC's asyncio client (``controller.store.bridge``)."""

    def calls(task_index: int) -> None:
        for i in range(per_task):
            operation(task_index, i)

    async def run_all() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(run_bridged(calls, t) for t in range(tasks)))
        return tasks * per_task / (time.perf_counter() - start)

    return uvloop.run(run_all())


def limit_rate(operation: Callable[[int, int], None], callers: int, per_caller: int) -> float:
    """Operations per second of ``callers`` concurrent callers, the better of ``callers``
    threads (:func:`threaded_rate`) and ``callers`` tasks on one loop (:func:`loop_rate`).

    Caller ``c`` calls ``operation(c, i)`` with ``i`` in ``range(per_caller)`` on threads,
    then in ``range(per_caller, 2 * per_caller)`` on the loop: no two calls get the same
    arguments, so an operation naming its key by them creates each key once."""
    threads = threaded_rate(operation, callers, per_caller)
    tasks = loop_rate(lambda c, i: operation(c, per_caller + i), callers, per_caller)
    return max(threads, tasks)


def print_table(title: str, rows: list[Row], measured: str = "skybroker") -> None:
    print(f"\n{title}")
    print(f"{'operation':<34} {'raw etcd':>14} {measured:>14} {'unit':<10} {'ratio':>7}")
    for row in rows:
        print(
            f"{row.operation:<34} {row.raw:>14.1f} {row.skybroker:>14.1f} {row.unit:<10} "
            f"{row.ratio:>7.2f}"
        )
