"""Controller processes split each account's API budget by the shards they hold: a manager
holding one of two shards spends half of it, and all of it once the other manager is gone."""

from __future__ import annotations

from pathlib import Path

from api_types import ProviderAccount
from controller.store.objects import Store
from tests.integration.reconcilers.harness import Harness, sim_account


def test_a_manager_holding_one_of_two_shards_gets_half_the_budget(
    harness: Harness, store: Store, tmp_path: Path
) -> None:
    harness.apply(sim_account("sim-a"))
    budget = store.get(ProviderAccount, "sim-a").spec.api_budget
    full = (budget.requests_per_second, float(budget.burst))
    half = (full[0] / 2, full[1] / 2)
    managers = [Harness(store, tmp_path, shards=2) for _ in range(2)]
    try:
        for manager in managers:
            manager.start()
        harness.eventually(
            lambda: sorted(sorted(m.manager.shards.owned()) for m in managers) == [[0], [1]],
            30,
            "the two managers never split the shards",
        )
        gates = [m.provider("sim-a").gate for m in managers]
        harness.eventually(
            lambda: all((g.bucket.rate, g.bucket.burst) == half for g in gates),
            30,
            f"not half the budget each: {[(g.bucket.rate, g.bucket.burst) for g in gates]}",
        )
        managers[1].stop()  # its shard is released, the survivor takes it: the whole budget
        harness.eventually(
            lambda: (gates[0].bucket.rate, gates[0].bucket.burst) == full,
            30,
            f"the survivor did not get the whole budget: {gates[0].bucket.rate}",
        )
        assert (gates[1].bucket.rate, gates[1].bucket.burst) == (0.0, 0.0)
    finally:
        for manager in managers:
            manager.stop()
