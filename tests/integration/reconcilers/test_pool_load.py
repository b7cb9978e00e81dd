"""The pool scheduler's load: what the cache shows placed plus its own decisions, each once.

A real manager runs the Instance informer; the test places instances by writing their status
(as the Instance reconciler's intent write does) and reads ``PoolScheduler.load_and_turn``,
what LeastLoaded and ``maxInstances`` decide with. The load is kept by the informer's events,
so reading it must never walk the pool's objects (it did, once per decision: a converge of
6,000 instances under LeastLoaded took 197 s instead of 17).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from api_types import Instance, InstancePlacement
from controller.cache import Informer
from controller.store.keys import ObjectKey
from reconcilers.placement import PoolScheduler
from tests.integration.reconcilers.harness import (
    Harness,
    instance_manifest,
    pool_manifest,
    sim_account,
)

POOL = "general"


def _place(harness: Harness, name: str, member: str) -> Instance:
    instance = harness.store.get(Instance, name, "acme")
    instance.status.placement = InstancePlacement(
        account=member, region="sim-east", zone="sim-easta", member=member, size="s1.small"
    )
    return harness.store.update_status(instance)


def _shows_placed(informer: Informer[Instance], name: str) -> bool:
    cached = informer.peek(ObjectKey(Instance.PLURAL, "acme", name))
    return cached is not None and cached.status.placement is not None


class _Reads:
    """Counts the informer reads made while it is installed (none may come from a load)."""

    def __init__(self, informer: Informer[Instance]) -> None:
        self.calls = 0
        for name in ("peek", "get", "list", "by_index", "index_counts", "keys"):
            original = getattr(informer, name)

            def counted(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
                self.calls += 1
                return _original(*args, **kwargs)

            setattr(informer, name, counted)


def test_the_load_counts_each_object_once_and_reads_no_object(harness: Harness) -> None:
    harness.apply(
        sim_account("sim-a"),
        sim_account("sim-b"),
        pool_manifest(POOL, [{"account": "sim-a"}, {"account": "sim-b"}], "LeastLoaded"),
        *(instance_manifest(f"web-{i}", pool=POOL) for i in range(4)),
    )
    scheduler = PoolScheduler(harness.deps, Instance)
    informer = harness.manager.informer(Instance)
    harness.start()  # no reconciler: only the test places anything

    def load() -> Counter[str]:
        return scheduler.load_and_turn(POOL)[0]

    _place(harness, "web-0", "sim-a")
    _place(harness, "web-1", "sim-a")
    harness.eventually(lambda: load() == {"sim-a": 2}, 10, "two placed on sim-a")

    # A decision the cache does not show yet counts; once it shows it, it still counts once,
    # at every moment in between.
    web2 = harness.store.get(Instance, "web-2", "acme")
    scheduler.remember(web2, POOL, "sim-b")
    assert load() == {"sim-a": 2, "sim-b": 1}
    _place(harness, "web-2", "sim-b")
    deadline = time.monotonic() + 60
    while not _shows_placed(informer, "web-2") and time.monotonic() < deadline:
        assert load() == {"sim-a": 2, "sim-b": 1}
    harness.eventually(lambda: load() == {"sim-a": 2, "sim-b": 1}, 10, "web-2 counted once")

    # A decision remembered after the cache already shows it placed is not counted again.
    _place(harness, "web-3", "sim-b")
    harness.eventually(lambda: load() == {"sim-a": 2, "sim-b": 2}, 10, "web-3 counted")
    scheduler.remember(harness.store.get(Instance, "web-3", "acme"), POOL, "sim-b")
    assert load() == {"sim-a": 2, "sim-b": 2}

    # Deleted objects leave the load; reading it never touches the cached objects.
    harness.store.delete(Instance, "web-0", "acme")
    harness.eventually(lambda: load() == {"sim-a": 1, "sim-b": 2}, 10, "web-0 gone")
    reads = _Reads(informer)
    for _ in range(100):
        load()
    assert reads.calls == 0
