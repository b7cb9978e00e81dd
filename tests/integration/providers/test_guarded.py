"""The per-account API gate (token bucket, delete reserve, circuit breaker) and the metrics,
driven by a fake clock around a real simulated cloud: no sleeps."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from controller.clock import FakeClock
from controller.errors import ResourceBusyError, TerminalError, TransientError
from providers.budget import BreakerState, TokenBucket
from providers.config import ApiBudget
from providers.guarded import GuardedProvider
from providers.metrics import ProviderMetrics, default_metrics
from providers.registry import open_provider
from providers.simulated import SimulatedProvider
from providers.types import (
    FirewallCreate,
    ImageId,
    InstanceCreate,
    InstanceId,
    NetworkCreate,
    SizeId,
    SubnetCreate,
    ZoneName,
)
from tests.integration.providers.conftest import REGION, sim_config
from tests.integration.providers.helpers import CLOCK_START, tags


def _guarded(
    tmp_path: Path, budget: ApiBudget, clock: FakeClock, opened: list[str] | None = None
) -> tuple[GuardedProvider, SimulatedProvider, CollectorRegistry]:
    config = replace(sim_config(tmp_path / "sim.db", boot_seconds="0"), api_budget=budget)
    sim = SimulatedProvider(config, clock=clock)
    registry = CollectorRegistry()
    guarded = open_provider(
        config,
        clock=clock,
        metrics=ProviderMetrics(registry),
        inner=sim,
        on_circuit_open=None if opened is None else opened.append,
    )
    return guarded, sim, registry


def _calls(registry: CollectorRegistry, op: str, code: str) -> float:
    value = registry.get_sample_value(
        "provider_calls_total", {"account": "sim-test", "op": op, "code": code}
    )
    return value or 0.0


def test_token_bucket_refills_at_its_rate() -> None:
    clock = FakeClock(CLOCK_START)
    bucket = TokenBucket(rate=2.0, burst=4, clock=clock)
    assert [bucket.try_take() for _ in range(4)] == [0.0] * 4
    assert bucket.try_take() == pytest.approx(0.5)
    clock.step(0.5)
    assert bucket.try_take() == 0.0
    clock.step(100)
    assert bucket.tokens == pytest.approx(4.0)  # never above the burst


def test_budget_exhaustion_is_transient_with_the_wait(tmp_path: Path) -> None:
    clock = FakeClock(CLOCK_START)
    guarded, _, registry = _guarded(
        tmp_path, ApiBudget(rate=1.0, burst=4, delete_reserve=0.0), clock
    )
    for _ in range(4):
        guarded.list_instances()
    with pytest.raises(TransientError) as err:
        guarded.list_instances()
    assert err.value.code == "BudgetExhausted"
    assert err.value.delay == pytest.approx(1.0)
    assert _calls(registry, "list_instances", "OK") == 4
    assert _calls(registry, "list_instances", "BudgetExhausted") == 1
    clock.step(1.0)
    guarded.list_instances()


def test_deletes_go_first_when_the_budget_is_tight(tmp_path: Path) -> None:
    clock = FakeClock(CLOCK_START)
    budget = ApiBudget(rate=1.0, burst=10, delete_reserve=0.3)
    guarded, _, _ = _guarded(tmp_path, budget, clock)
    for _ in range(7):  # spend down to the reserve
        guarded.list_instances()
    with pytest.raises(TransientError) as refused:
        guarded.create_instance(
            InstanceCreate(tags("vm"), SizeId("s1.small"), ImageId("img-ubuntu-2204"))
        )
    assert refused.value.code == "BudgetExhausted"
    for _ in range(3):  # the reserve is the deletes'
        guarded.delete_instance(InstanceId("i-0123456789abcdef0"))
    with pytest.raises(TransientError):
        guarded.delete_instance(InstanceId("i-0123456789abcdef0"))


def test_circuit_opens_after_consecutive_transient_failures_then_probes(tmp_path: Path) -> None:
    clock = FakeClock(CLOCK_START)
    budget = ApiBudget(rate=1000, burst=1000, breaker_threshold=3, breaker_cooldown=30)
    guarded, sim, registry = _guarded(tmp_path, budget, clock)
    sim.faults.fail_next("InternalError", count=3)
    for _ in range(3):
        with pytest.raises(TransientError):
            guarded.list_volumes()
    assert guarded.gate.breaker.state is BreakerState.OPEN

    with pytest.raises(TransientError) as fast:  # fails fast, the cloud is not called
        guarded.list_volumes()
    assert fast.value.code == "CircuitOpen"
    assert fast.value.delay == pytest.approx(30)
    assert _calls(registry, "list_volumes", "CircuitOpen") == 1

    clock.step(30)
    assert guarded.gate.breaker.state is BreakerState.HALF_OPEN
    sim.faults.fail_next("InternalError")
    with pytest.raises(TransientError):  # the probe fails: open again for a full cooldown
        guarded.list_volumes()
    assert guarded.gate.breaker.state is BreakerState.OPEN
    clock.step(30)
    assert guarded.list_volumes() == []  # the probe succeeds: closed
    assert guarded.gate.breaker.state is BreakerState.CLOSED


def test_terminal_errors_do_not_trip_the_breaker(tmp_path: Path) -> None:
    clock = FakeClock(CLOCK_START)
    guarded, _, registry = _guarded(tmp_path, ApiBudget(breaker_threshold=2), clock)
    for _ in range(5):
        with pytest.raises(TerminalError):
            guarded.start_instance(InstanceId("i-0123456789abcdef0"))
    assert guarded.gate.breaker.state is BreakerState.CLOSED
    assert _calls(registry, "start_instance", "InvalidInstanceID.NotFound") == 5


def test_a_resource_in_use_never_trips_the_breaker(tmp_path: Path) -> None:
    """A security group still used by an instance: the cloud refuses the delete
    (DependencyViolation) however often it is asked, and that is the resource's state, not
    the provider's health — other tenants' calls on the account must keep flowing."""
    clock = FakeClock(CLOCK_START)
    guarded, _, registry = _guarded(tmp_path, ApiBudget(breaker_threshold=2), clock)
    network = guarded.create_network(NetworkCreate(tags("net"), "10.0.0.0/16"))
    subnet = guarded.create_subnet(
        SubnetCreate(tags("sn"), network.id, "10.0.1.0/24", ZoneName(f"{REGION}a"))
    )
    group = guarded.create_firewall(FirewallCreate(tags("fw"), network.id, frozenset()))
    guarded.create_instance(
        InstanceCreate(
            tags("vm"),
            SizeId("s1.small"),
            ImageId("img-ubuntu-2204"),
            subnet_id=subnet.id,
            firewall_ids=(group.id,),
        )
    )
    for _ in range(5):
        with pytest.raises(ResourceBusyError) as busy:
            guarded.delete_firewall(group.id)
        assert busy.value.code == "DependencyViolation"
    assert guarded.gate.breaker.state is BreakerState.CLOSED
    assert _calls(registry, "delete_firewall", "DependencyViolation") == 5

    # Nor do they count between the provider's own failures: consecutive means consecutive.
    guarded.inner.faults.fail_next("InternalError", op="list_volumes")  # type: ignore[attr-defined]
    with pytest.raises(TransientError):
        guarded.list_volumes()
    with pytest.raises(ResourceBusyError):
        guarded.delete_firewall(group.id)
    guarded.inner.faults.fail_next("InternalError", op="list_volumes")  # type: ignore[attr-defined]
    with pytest.raises(TransientError):
        guarded.list_volumes()
    assert guarded.gate.breaker.state is BreakerState.CLOSED


def test_an_opening_circuit_is_logged_reported_and_named_in_refusals(tmp_path: Path) -> None:
    clock = FakeClock(CLOCK_START)
    opened: list[str] = []
    budget = ApiBudget(breaker_threshold=2, breaker_cooldown=30)
    guarded, sim, _ = _guarded(tmp_path, budget, clock, opened)
    sim.faults.fail_next("InternalError", op="list_volumes")
    sim.faults.fail_next("ServiceUnavailable", op="list_instances")
    with capture_logs() as logs:
        with pytest.raises(TransientError):
            guarded.list_volumes()
        assert opened == []
        with pytest.raises(TransientError):
            guarded.list_instances()
    assert opened == ["sim-test"]
    (entry,) = [e for e in logs if e["event"] == "circuit opened"]
    assert entry["log_level"] == "warning"
    assert entry["account"] == "sim-test"
    assert entry["failures"] == [
        "list_volumes: InternalError: injected fault on list_volumes",
        "list_instances: ServiceUnavailable: injected fault on list_instances",
    ]
    with pytest.raises(TransientError) as refused:
        guarded.list_zones()
    assert refused.value.code == "CircuitOpen"
    assert "the last: list_instances: ServiceUnavailable" in refused.value.message
    assert opened == ["sim-test"]  # refused calls do not report it again

    clock.step(30)  # a failed probe opens it again: reported again
    sim.faults.fail_next("InternalError")
    with pytest.raises(TransientError):
        guarded.list_zones()
    assert opened == ["sim-test", "sim-test"]
    clock.step(30)
    guarded.list_zones()
    assert guarded.gate.breaker.recent_failures == ()


def test_call_latency_is_observed(tmp_path: Path) -> None:
    guarded, _, registry = _guarded(tmp_path, ApiBudget(), FakeClock(CLOCK_START))
    guarded.list_sizes()
    count = registry.get_sample_value(
        "provider_call_seconds_count", {"account": "sim-test", "op": "list_sizes"}
    )
    assert count == 1


def test_default_metrics_register_once_per_process() -> None:
    assert default_metrics() is default_metrics()
