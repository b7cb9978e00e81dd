"""The manager's maintenance loop (run by the holder of shard 0) on a real etcd."""

from __future__ import annotations

import threading

import grpc

from controller.manager import Manager, ManagerOptions
from controller.store.objects import Store
from tests.waiting import eventually


class _Compacted(grpc.RpcError):
    """What etcd answers a list pinned at a revision compacted meanwhile."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.OUT_OF_RANGE

    def details(self) -> str:
        return "mvcc: required revision has been compacted"


def test_a_sweep_that_fails_is_retried_and_does_not_end_maintenance(store: Store) -> None:
    """The maintenance thread also starts each tenure's direct-write normaliser: a sweep's
    error must not end it, or a lost and won shard 0 never gets a fresh normaliser."""
    manager = Manager(
        store, ManagerOptions(maintenance_interval=0.1, compaction_interval=0, workers=1)
    )
    sweeps: list[int] = []

    def failing_sweep() -> list[object]:
        sweeps.append(len(sweeps))
        raise _Compacted()

    manager.garbage_collector.collect_once = failing_sweep  # type: ignore[method-assign]
    ready = threading.Event()
    thread = threading.Thread(target=manager.run, kwargs={"ready": ready.set}, name="manager")
    thread.start()
    try:
        eventually(ready.is_set, what="the manager is running")
        eventually(lambda: len(sweeps) >= 3, what=lambda: f"{len(sweeps)} sweeps")
        assert any(t.name == "maintenance" and t.is_alive() for t in threading.enumerate())
    finally:
        manager.stop()
        thread.join(60)
