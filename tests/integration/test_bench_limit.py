"""``bench._common.limit_rate``, the raw etcd limit every benchmark divides by, on a real etcd:
each (caller, index) pair is called once, half on threads with gRPC's blocking client and half
in greenlets on one event loop whose etcd calls are awaited on its asyncio client."""

from __future__ import annotations

import threading

from bench._common import limit_rate
from controller.store.bridge import bridged
from controller.store.etcd import EtcdClient, cmp_create_revision, op_put


def test_limit_rate_creates_every_key_once_half_on_threads_and_half_on_the_loop(
    etcd_client: EtcdClient, key_prefix: str
) -> None:
    lock = threading.Lock()
    calls: list[tuple[int, int, bool, str]] = []

    def create(caller: int, index: int) -> None:
        key = f"{key_prefix}/limit/{caller}-{index}".encode()
        assert etcd_client.txn([cmp_create_revision(key, 0)], [op_put(key, b"v")]).succeeded
        with lock:
            calls.append((caller, index, bridged(), threading.current_thread().name))

    assert limit_rate(create, 3, 5) > 0
    assert sorted((c, i) for c, i, _, _ in calls) == [(c, i) for c in range(3) for i in range(10)]
    assert {(i < 5, on_loop) for _, i, on_loop, _ in calls} == {(True, False), (False, True)}
    loop_threads = {thread for _, _, on_loop, thread in calls if on_loop}
    assert len(loop_threads) == 1  # the tasks share one loop's thread
    kvs, _ = etcd_client.range_prefix(f"{key_prefix}/limit/".encode())
    assert len(kvs) == 30
