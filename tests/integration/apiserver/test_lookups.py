"""Admission's reads: served from the watched caches when they hold the object, else etcd."""

from __future__ import annotations

import pytest

from api_types import registry
from api_types.accounts import ProviderAccount
from api_types.tenancy import Quota
from apiserver.lookups import Lookups
from controller.errors import NotFoundError
from controller.store.objects import Store
from tests.waiting import eventually


def _account(name: str) -> ProviderAccount:
    wire = {"kind": "ProviderAccount", "metadata": {"name": name},
            "spec": {"driver": "simulated", "region": "local"}}  # fmt: skip
    account = registry.parse_object(wire)
    assert isinstance(account, ProviderAccount)
    return account


def test_hits_come_from_the_cache_and_misses_from_etcd(api_store: Store) -> None:
    lookups = Lookups(api_store)
    lookups.start()
    try:
        assert lookups.wait_for_sync(10)
        api_store.create(_account("cached"))
        # a cache hit is the cached object itself; etcd reads are new objects each time
        eventually(
            lambda: lookups.get(ProviderAccount, "cached") is lookups.get(ProviderAccount, "cached")
        )
    finally:
        lookups.stop()
    api_store.create(_account("unseen"))  # the stopped cache never sees it
    first, second = (lookups.get(ProviderAccount, "unseen") for _ in range(2))
    assert first.metadata.name == "unseen" and first is not second, "read from etcd each time"
    with pytest.raises(NotFoundError):
        lookups.get(ProviderAccount, "missing")


def test_quotas_come_from_etcd_unless_the_namespace_has_none(api_store: Store) -> None:
    lookups = Lookups(api_store)
    assert not lookups.quotas("team-a").cached, "not started: etcd"
    lookups.start()
    try:
        assert lookups.wait_for_sync(10)
        empty = lookups.quotas("team-a")
        assert empty.cached and empty.quotas == [] and empty.revision > 0
        quota = {"kind": "Quota", "metadata": {"name": "q", "namespace": "team-a"},
                 "spec": {"hard": {"instances": 1}}}  # fmt: skip
        created = api_store.create(registry.parse_object(quota))
        eventually(lambda: not lookups.quotas("team-a").cached)
        stored = lookups.quotas("team-a")
        assert [q.metadata.name for q in stored.quotas] == ["q"]
        assert stored.revision >= int(str(created.metadata.resource_version))
        assert isinstance(stored.quotas[0], Quota)
    finally:
        lookups.stop()
