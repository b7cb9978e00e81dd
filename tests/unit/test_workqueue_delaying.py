"""Delayed and rate-limited adds, driven deterministically by the FakeClock.

The delaying queue's background thread parks on the fake clock until its next deadline;
``FakeClock.block_until_waiting(deadline)`` tells a test that the thread has seen everything
and is waiting for exactly that time, so "not ready yet" is checked on a settled queue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from controller.clock import FakeClock
from controller.workqueue import (
    DelayingQueue,
    ItemExponentialFailureRateLimiter,
    RateLimitingQueue,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(clock: FakeClock) -> Iterator[DelayingQueue[str]]:
    queue = DelayingQueue[str]("delaying-test", clock=clock)
    yield queue
    queue.shut_down()


def settle(clock: FakeClock, deadline: float | None = None) -> None:
    """Wait until the delaying thread parks (until exactly ``deadline``, if given)."""
    assert clock.block_until_waiting(deadline), f"the delaying thread never waited for {deadline}"


def test_a_delayed_key_becomes_ready_exactly_when_the_clock_reaches_it(
    clock: FakeClock, queue: DelayingQueue[str]
) -> None:
    queue.add_after("a", 1.0)
    settle(clock, 1.0)
    clock.set(0.999)
    settle(clock, 1.0)
    assert len(queue) == 0
    clock.set(1.0)
    settle(clock)
    assert len(queue) == 1
    assert queue.get() == ("a", False)


def test_a_shorter_delay_moves_a_key_earlier(clock: FakeClock, queue: DelayingQueue[str]) -> None:
    queue.add_after("a", 2.0)
    queue.add_after("a", 1.0)
    queue.add_after("b", 1.5)  # keeps the superseded 2 s entry of "a" off the top of the heap
    settle(clock, 1.0)
    clock.set(1.0)
    settle(clock, 1.5)
    assert queue.get() == ("a", False)
    queue.done("a")
    queue.add_after("a", 1.5)
    settle(clock, 1.5)
    clock.set(2.0)
    settle(clock, 2.5)
    assert queue.get() == ("b", False)
    assert len(queue) == 0, "the superseded 2 s entry of 'a' must not fire"
    clock.set(2.5)
    settle(clock)
    assert queue.get() == ("a", False)


def test_a_longer_delay_never_moves_a_key_later(
    clock: FakeClock, queue: DelayingQueue[str]
) -> None:
    queue.add_after("a", 1.0)
    queue.add_after("a", 2.0)
    settle(clock, 1.0)
    clock.set(1.0)
    settle(clock)
    assert len(queue) == 1


def test_keys_come_out_in_ready_order_then_add_order(
    clock: FakeClock, queue: DelayingQueue[str]
) -> None:
    queue.add_after("late", 2.0)
    queue.add_after("first", 1.0)
    queue.add_after("second", 1.0)
    settle(clock, 1.0)
    clock.set(5.0)
    settle(clock)
    assert [queue.get()[0] for _ in range(3)] == ["first", "second", "late"]


def test_a_zero_or_negative_delay_adds_at_once(queue: DelayingQueue[str]) -> None:
    queue.add_after("a", 0)
    queue.add_after("b", -1.0)
    assert len(queue) == 2


def test_a_delayed_key_that_fires_while_processing_replays_after_done(
    clock: FakeClock, queue: DelayingQueue[str]
) -> None:
    queue.add("a")
    assert queue.get() == ("a", False)
    queue.add_after("a", 1.0)
    settle(clock, 1.0)
    clock.set(1.0)
    settle(clock)
    assert len(queue) == 0
    queue.done("a")
    assert queue.get() == ("a", False)


def test_without_a_clock_the_queue_waits_in_real_time() -> None:
    queue = DelayingQueue[str]()
    try:
        queue.add_after("a", 0.002)
        give_up = time.monotonic() + 30.0
        while len(queue) == 0 and time.monotonic() < give_up:
            time.sleep(0.001)
        assert queue.get() == ("a", False)
    finally:
        queue.shut_down()


def test_shut_down_stops_the_thread_and_drops_delayed_keys(clock: FakeClock) -> None:
    queue = DelayingQueue[str]("stopping", clock=clock)
    queue.add_after("a", 1.0)
    settle(clock, 1.0)
    queue.shut_down()
    assert "workqueue-delay[stopping]" not in {t.name for t in threading.enumerate()}
    clock.set(2.0)
    queue.add_after("b", 0)
    assert queue.get() == (None, True)


def test_shut_down_with_drain_also_stops_the_thread(clock: FakeClock) -> None:
    queue = DelayingQueue[str]("draining", clock=clock)
    queue.shut_down_with_drain()
    assert "workqueue-delay[draining]" not in {t.name for t in threading.enumerate()}


def test_rate_limited_adds_back_off_and_forget_resets(clock: FakeClock) -> None:
    queue = RateLimitingQueue[str](
        clock=clock, rate_limiter=ItemExponentialFailureRateLimiter(base_delay=0.005)
    )
    try:
        for delay in [0.005, 0.01, 0.02]:
            queue.add_rate_limited("a")
            ready_at = clock.now() + delay
            settle(clock, ready_at)
            assert len(queue) == 0
            clock.set(ready_at)
            settle(clock)
            assert queue.get() == ("a", False)
            queue.done("a")
        assert queue.num_requeues("a") == 3
        queue.forget("a")
        assert queue.num_requeues("a") == 0
        queue.add_rate_limited("a")
        settle(clock, clock.now() + 0.005)
    finally:
        queue.shut_down()


def test_the_default_rate_limiter_runs_on_the_queue_clock(clock: FakeClock) -> None:
    queue = RateLimitingQueue[int](clock=clock)
    try:
        for key in range(101):  # the 101st distinct key exceeds the bucket's burst
            queue.add_rate_limited(key)
        settle(clock, 0.005)
        clock.set(0.005)
        settle(clock, 0.1)
        assert len(queue) == 100
        clock.set(0.1)
        settle(clock)
        assert len(queue) == 101
    finally:
        queue.shut_down()


class DelayingQueueMachine(RuleBasedStateMachine):
    """Model check of add_after/step/get/done against a reference of client-go's rules.

    Delays and steps are multiples of 0.25 s so that the model's float sums equal the queue's.
    """

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.queue = DelayingQueue[str](clock=self.clock)
        self.now = 0.0
        self.sequence = 0
        self.scheduled: dict[str, tuple[float, int]] = {}
        self.fifo: list[str] = []
        self.dirty: set[str] = set()
        self.processing: set[str] = set()

    keys = st.sampled_from("abc")

    def teardown(self) -> None:
        self.queue.shut_down()

    def model_add(self, key: str) -> None:
        if key in self.dirty:
            return
        self.dirty.add(key)
        if key not in self.processing:
            self.fifo.append(key)

    def settle(self) -> None:
        next_ready = min((at for at, _ in self.scheduled.values()), default=None)
        settle(self.clock, next_ready)

    @rule(key=keys, delay=st.sampled_from([-0.25, 0.0, 0.25, 0.5, 1.0, 2.0]))
    def add_after(self, key: str, delay: float) -> None:
        self.queue.add_after(key, delay)
        if delay <= 0:
            self.model_add(key)
        elif key not in self.scheduled or self.now + delay < self.scheduled[key][0]:
            self.sequence += 1
            self.scheduled[key] = (self.now + delay, self.sequence)
        self.settle()

    @rule(seconds=st.sampled_from([0.25, 0.5, 1.0]))
    def step(self, seconds: float) -> None:
        self.clock.step(seconds)
        self.now += seconds
        due = sorted((at, seq, key) for key, (at, seq) in self.scheduled.items() if at <= self.now)
        for _, _, key in due:
            del self.scheduled[key]
            self.model_add(key)
        self.settle()

    @precondition(lambda self: self.fifo)
    @rule()
    def get(self) -> None:
        key = self.fifo.pop(0)
        assert self.queue.get() == (key, False)
        self.dirty.discard(key)
        self.processing.add(key)

    @rule(key=keys)
    def done(self, key: str) -> None:
        self.queue.done(key)
        if key in self.processing:
            self.processing.remove(key)
            if key in self.dirty:
                self.fifo.append(key)

    @invariant()
    def ready_keys_match(self) -> None:
        assert len(self.queue) == len(self.fifo)


TestDelayingQueueMachine = DelayingQueueMachine.TestCase
TestDelayingQueueMachine.settings = settings(
    max_examples=100, stateful_step_count=30, deadline=None
)


def test_a_wait_asked_for_is_spread_and_is_not_a_failure(clock: FakeClock) -> None:
    """1 s asked for, plus the drawn part of another second; the key's backoff (and the
    overall retry bucket) untouched, so a later real failure starts from the shortest delay."""
    draws = iter([0.25, 0.0, 1.0])
    limiter = ItemExponentialFailureRateLimiter[str](base_delay=0.25)
    queue = RateLimitingQueue[str](clock=clock, rate_limiter=limiter, spread=lambda: next(draws))
    try:
        for waited in [1.25, 1.0, 2.0]:
            queue.add_when_asked("a", 1.0)
            ready_at = clock.now() + waited
            settle(clock, ready_at)
            assert len(queue) == 0
            clock.set(ready_at)
            settle(clock)
            assert queue.get() == ("a", False)
            queue.done("a")
        assert queue.num_requeues("a") == 0
        queue.add_rate_limited("a")  # a real failure: the first step of the backoff
        assert queue.num_requeues("a") == 1
        ready_at = clock.now() + 0.25
        settle(clock, ready_at)
        assert len(queue) == 0
        clock.set(ready_at)
        settle(clock)
        assert queue.get() == ("a", False)
    finally:
        queue.shut_down()
