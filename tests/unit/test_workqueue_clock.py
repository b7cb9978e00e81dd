"""The injected clock the workqueue (and the rest of the runtime) waits on."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from controller.clock import FakeClock, RealClock


def test_the_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(start=100.0)
    assert clock.now() == 100.0
    clock.step(2.5)
    assert clock.now() == 102.5
    clock.set(200.0)
    assert clock.now() == 200.0


def test_the_fake_wall_time_moves_with_the_clock() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock = FakeClock(start=100.0, wall_start=start)
    assert clock.wall() == start
    clock.step(2.5)
    assert clock.wall() == start + timedelta(seconds=2.5)
    assert RealClock().wall().tzinfo is UTC


def test_the_fake_clock_never_goes_back() -> None:
    clock = FakeClock(start=10.0)
    with pytest.raises(ValueError):
        clock.set(9.0)
    with pytest.raises(ValueError):
        clock.step(-1.0)
    assert clock.now() == 10.0


def test_a_fake_wait_ends_when_the_clock_reaches_its_deadline_and_not_before() -> None:
    clock = FakeClock()
    condition = threading.Condition()
    results: list[bool] = []

    def wait() -> None:
        with condition:
            results.append(clock.wait_until(condition, 1.0))

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    assert clock.block_until_waiting(1.0)
    clock.set(0.5)
    waiter.join(timeout=0.005)
    assert waiter.is_alive()
    clock.set(1.0)
    waiter.join(timeout=30)
    assert not waiter.is_alive()
    assert results == [False], "woken by its deadline"


def test_a_fake_wait_notified_early_says_so() -> None:
    clock = FakeClock()
    condition = threading.Condition()
    results: list[bool] = []

    def wait() -> None:
        with condition:
            results.append(clock.wait_until(condition, 1.0))

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    assert clock.block_until_waiting(1.0)
    with condition:
        condition.notify_all()
    waiter.join(timeout=30)
    assert results == [True]
    assert not clock.block_until_waiting(timeout=0.001), "the waiter deregistered itself"


def test_a_fake_wait_for_a_past_deadline_returns_at_once() -> None:
    clock = FakeClock(start=5.0)
    condition = threading.Condition()
    with condition:
        assert clock.wait_until(condition, 5.0) is False


def test_a_fake_sleep_lasts_exactly_its_duration_on_the_clock() -> None:
    clock = FakeClock()
    sleeper = threading.Thread(target=clock.sleep, args=(2.0,), daemon=True)
    sleeper.start()
    assert clock.block_until_waiting(2.0)
    clock.step(1.0)
    sleeper.join(timeout=0.005)
    assert sleeper.is_alive()
    clock.step(1.0)
    sleeper.join(timeout=30)
    assert not sleeper.is_alive()


def test_block_until_waiting_times_out_when_nobody_waits() -> None:
    assert FakeClock().block_until_waiting(timeout=0.001) is False


def test_the_real_clock_is_monotonic_and_its_waits_time_out() -> None:
    clock = RealClock()
    condition = threading.Condition()
    start = clock.now()
    with condition:
        assert clock.wait_until(condition, start - 1.0) is False
        assert clock.wait_until(condition, clock.now() + 0.002) is False
    assert clock.now() >= start + 0.002
    clock.sleep(0)


@pytest.mark.parametrize("timeout", [10.0, None])
def test_a_real_wait_notified_early_says_so(timeout: float | None) -> None:
    clock = RealClock()
    condition = threading.Condition()
    results: list[bool] = []

    def wait() -> None:
        with condition:
            deadline = None if timeout is None else clock.now() + timeout
            results.append(clock.wait_until(condition, deadline))

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    give_up = time.monotonic() + 30.0
    while waiter.is_alive() and time.monotonic() < give_up:  # a notify before the wait is lost
        with condition:
            condition.notify_all()
        time.sleep(0.001)
    waiter.join(timeout=30)
    assert results == [True]
