"""`skybroker up` seeds an empty store once: two simulated accounts and a pool."""

from __future__ import annotations

from api_types import Pool, ProviderAccount
from controller.store.objects import Store
from skybroker.seed import seed_if_empty


def test_empty_store_is_seeded_once(store: Store) -> None:
    created = seed_if_empty(store)
    assert created == [
        "namespaces/skybroker-system",
        "provideraccounts/sim-east",
        "provideraccounts/sim-west",
        "pools/general",
    ]
    accounts = store.list(ProviderAccount).items
    assert {a.spec.region for a in accounts} == {"sim-east-1", "sim-west-2"}
    pool = store.get(Pool, "general")
    assert [m.account for m in pool.spec.members] == ["sim-east", "sim-west"]
    assert seed_if_empty(store) == []
