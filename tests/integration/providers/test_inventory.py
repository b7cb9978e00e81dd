"""Inventory: a resync of N objects costs O(accounts x kinds) cloud calls, not N; the leak
tracker reports resources whose owner uid is gone only after the grace period."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prometheus_client import CollectorRegistry

from controller.clock import FakeClock
from providers.config import AccountConfig, ApiBudget
from providers.inventory import Inventory, LeakTracker
from providers.metrics import ProviderMetrics
from providers.registry import open_provider
from providers.simulated import SimulatedProvider
from providers.types import InstanceCreate, NetworkCreate, VolumeCreate
from tests.integration.providers.conftest import REGION, Cloud, sim_config
from tests.integration.providers.helpers import CLOCK_START, tags

N = 40


def _list_calls(registry: CollectorRegistry, account: str, op: str) -> float:
    value = registry.get_sample_value(
        "provider_calls_total", {"account": account, "op": op, "code": "OK"}
    )
    return value or 0.0


def test_resync_of_many_objects_costs_one_list_per_interval(cloud: Cloud) -> None:
    clock = FakeClock(CLOCK_START)
    registry = CollectorRegistry()
    account = cloud.provider.account
    config = AccountConfig(account, cloud.name, REGION, api_budget=ApiBudget(1e6, 10**6))
    guarded = open_provider(
        config, clock=clock, metrics=ProviderMetrics(registry), inner=cloud.provider
    )
    created = [
        guarded.create_instance(InstanceCreate(tags(f"vm-{n}"), cloud.size, cloud.image))
        for n in range(N)
    ]
    inventory = Inventory(guarded, clock=clock, interval=30.0)

    def resync(n: int) -> None:  # what one reconcile reads
        view = inventory.instances()
        assert view.by_token(f"tok-vm-{n}") is not None
        assert view.get(created[n].id) is not None
        assert view.by_uid(f"uid-vm-{n}")[0].id == created[n].id

    with ThreadPoolExecutor(8) as pool:  # many workers, one refresh
        list(pool.map(resync, list(range(N)) * 25))
    assert _list_calls(registry, account, "list_instances") == 1

    clock.step(29)
    resync(0)
    assert _list_calls(registry, account, "list_instances") == 1
    clock.step(1)
    for n in range(N):
        resync(n)
    assert _list_calls(registry, account, "list_instances") == 2

    inventory.invalidate()
    assert len(inventory.instances()) == N
    assert _list_calls(registry, account, "list_instances") == 3


def test_cost_is_per_account_not_per_object(tmp_path: Path) -> None:
    clock = FakeClock(CLOCK_START)
    registry = CollectorRegistry()
    metrics = ProviderMetrics(registry)
    inventories = []
    for account in ("sim-a", "sim-b", "sim-c"):  # three accounts on one state file
        config = sim_config(tmp_path / "shared.db", account)
        sim = SimulatedProvider(config, clock=clock)
        guarded = open_provider(config, clock=clock, metrics=metrics, inner=sim)
        for n in range(20):
            guarded.create_volume(VolumeCreate(tags(f"{account}-v{n}"), 1, sim.zones[0].name))
        inventories.append(Inventory(guarded, clock=clock))
    for _ in range(10):  # ten resyncs of sixty objects
        for inventory in inventories:
            assert len(inventory.volumes()) == 20
    for account in ("sim-a", "sim-b", "sim-c"):
        assert _list_calls(registry, account, "list_volumes") == 1


def test_leak_tracker_waits_for_the_grace_period(cloud: Cloud) -> None:
    clock = FakeClock(CLOCK_START)
    p = cloud.provider
    p.create_network(NetworkCreate(tags("kept-net", uid="alive"), "10.30.0.0/16"))
    leaked = p.create_instance(InstanceCreate(tags("leak", uid="gone"), cloud.size, cloud.image))
    orphan = p.create_instance(InstanceCreate(tags("orphan", uid="gone2"), cloud.size, cloud.image))
    p.remove_tags(orphan.id, ["skybroker/uid", "skybroker/token"])  # orphaned on purpose
    inventory = Inventory(p, clock=clock, interval=0)
    tracker = LeakTracker(clock, grace=120)

    assert tracker.leaked(inventory.managed(), {"alive"}) == []
    clock.step(119)
    assert tracker.leaked(inventory.managed(), {"alive"}) == []
    clock.step(1)
    assert [r.id for r in tracker.leaked(inventory.managed(), {"alive"})] == [leaked.id]
    # the owner reappears (a record restored): the clock starts again if it goes away later
    assert tracker.leaked(inventory.managed(), {"alive", "gone"}) == []
    assert tracker.leaked(inventory.managed(), {"alive"}) == []
