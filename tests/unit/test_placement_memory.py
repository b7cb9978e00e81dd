"""Placement memory on an injected clock: the same-member backoff, exhausted API budgets and
the failure times the pool status shows, all moved by stepping a FakeClock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controller.clock import FakeClock
from reconcilers.placement import SAME_MEMBER_BACKOFF_SECONDS, PlacementMemory

START = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_failed_member_waits_out_the_backoff_for_that_object_only() -> None:
    clock = FakeClock(wall_start=START)
    memory = PlacementMemory(clock)
    memory.record_failure("general", "sim-a", "uid-1")
    assert memory.recently_failed("uid-1", "sim-a") == SAME_MEMBER_BACKOFF_SECONDS
    assert memory.recently_failed("uid-1", "sim-b") == 0.0
    assert memory.recently_failed("uid-2", "sim-a") == 0.0
    clock.step(SAME_MEMBER_BACKOFF_SECONDS - 4)
    assert memory.recently_failed("uid-1", "sim-a") == 4.0
    clock.step(4)
    assert memory.recently_failed("uid-1", "sim-a") == 0.0


def test_failures_are_stamped_with_the_clock_wall_time() -> None:
    clock = FakeClock(wall_start=START)
    memory = PlacementMemory(clock)
    clock.step(30)
    memory.record_failure("general", "sim-a", "uid-1")
    memory.record_failure(None, "sim-b", "uid-2")  # no pool: nothing for a pool status
    assert memory.failures("general") == {"sim-a": START + timedelta(seconds=30)}
    assert memory.failures("other") == {}


def test_an_exhausted_budget_is_skipped_for_the_delay_asked_for() -> None:
    clock = FakeClock()
    memory = PlacementMemory(clock)
    memory.record_budget_exhausted("sim-a", 2.5)
    memory.record_budget_exhausted("sim-b", None)  # no delay given: one second
    assert memory.budget_exhausted("sim-a") and memory.budget_exhausted("sim-b")
    clock.step(1.0)
    assert memory.budget_exhausted("sim-a") and not memory.budget_exhausted("sim-b")
    clock.step(1.5)
    assert not memory.budget_exhausted("sim-a")
