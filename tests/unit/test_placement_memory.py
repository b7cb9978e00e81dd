"""Placement memory on an injected clock: the same-member backoff, exhausted API budgets and
the failure times the pool status shows, all moved by stepping a FakeClock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controller.clock import FakeClock
from reconcilers.placement import SAME_MEMBER_BACKOFF_SECONDS, PlacementMemory
from reconcilers.placement.policy import Decision, Rejection, RejectionCode

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


def test_unplaced_looks_again_when_the_first_spent_budget_is_back() -> None:
    clock = FakeClock()
    memory = PlacementMemory(clock)
    memory.record_budget_exhausted("sim-a", 2.5)
    memory.record_budget_exhausted("sim-b", 0.5)
    spent = Decision(
        ranked=(),
        rejections=(
            Rejection("sim-a", "sim-a", RejectionCode.ACCOUNT_UNAVAILABLE, "sim-a: API budget"),
            Rejection("sim-b", "sim-b", RejectionCode.ACCOUNT_UNAVAILABLE, "sim-b: API budget"),
            Rejection("sim-c", "sim-c", RejectionCode.HARDWARE, "no size with cpu=64"),
        ),
    )
    assert memory.retry_unplaced(spent, 10.0) == 0.5
    clock.step(1.0)  # sim-b's budget is back: the next look is for sim-a's
    assert memory.retry_unplaced(spent, 10.0) == 1.5
    clock.step(1.5)  # nothing spent any more: the full wait
    assert memory.retry_unplaced(spent, 10.0) == 10.0
    # A member rejected for another reason does not shorten the wait, even if its budget is
    # spent too: its rejection would not go away with the budget.
    memory.record_budget_exhausted("sim-c", 1.0)
    hardware_only = Decision(ranked=(), rejections=spent.rejections[2:])
    assert memory.retry_unplaced(hardware_only, 10.0) == 10.0
