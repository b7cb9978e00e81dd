"""The basic workqueue: dedup, fairness, one worker per key, replay after done, shutdown."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from controller.workqueue import Queue
from tests.waiting import eventually


def test_adding_a_waiting_key_twice_hands_it_out_once() -> None:
    queue = Queue[str]()
    queue.add("a")
    queue.add("b")
    queue.add("a")
    assert len(queue) == 2
    assert queue.get() == ("a", False)
    assert queue.get() == ("b", False)
    assert len(queue) == 0


def test_keys_come_out_in_the_order_they_were_first_added() -> None:
    queue = Queue[int]()
    for key in [3, 1, 2, 3, 1]:
        queue.add(key)
    assert [queue.get()[0] for _ in range(3)] == [3, 1, 2]


def test_a_key_re_added_while_processing_is_replayed_once_after_done() -> None:
    queue = Queue[str]()
    queue.add("a")
    assert queue.get() == ("a", False)
    queue.add("a")
    queue.add("a")
    assert len(queue) == 0, "held back while a worker has it"
    queue.done("a")
    assert len(queue) == 1
    assert queue.get() == ("a", False)
    queue.done("a")
    assert len(queue) == 0


def test_done_for_a_key_nobody_holds_is_ignored() -> None:
    queue = Queue[str]()
    queue.add("a")
    queue.done("a")
    assert len(queue) == 1
    assert queue.get() == ("a", False)
    assert len(queue) == 0


def test_shut_down_unblocks_every_blocked_getter() -> None:
    queue = Queue[str]()
    results: list[tuple[str | None, bool]] = []
    getters = [
        threading.Thread(target=lambda: results.append(queue.get()), daemon=True) for _ in range(4)
    ]
    for getter in getters:
        getter.start()
    for getter in getters:
        getter.join(timeout=0.005)
        assert getter.is_alive(), "get() must block on an empty queue"
    queue.shut_down()
    for getter in getters:
        getter.join(timeout=30)
        assert not getter.is_alive()
    assert results == [(None, True)] * 4
    assert queue.shutting_down()


def test_keys_queued_before_shut_down_are_handed_out_but_new_adds_are_dropped() -> None:
    queue = Queue[str]()
    queue.add("a")
    queue.shut_down()
    queue.add("b")
    assert queue.get() == ("a", False)
    assert queue.get() == (None, True)


def test_shut_down_with_drain_waits_for_in_flight_keys() -> None:
    queue = Queue[str]()
    queue.add("a")
    queue.add("b")
    assert queue.get() == ("a", False)
    drainer = threading.Thread(target=queue.shut_down_with_drain, daemon=True)
    drainer.start()
    eventually(queue.shutting_down)
    drainer.join(timeout=0.005)
    assert drainer.is_alive(), "'a' is still in flight"
    assert queue.get() == ("b", False), "keys queued before the shutdown still go out"
    queue.done("a")
    drainer.join(timeout=0.005)
    assert drainer.is_alive(), "'b' is still in flight"
    queue.add("c")
    queue.done("b")
    drainer.join(timeout=30)
    assert not drainer.is_alive()
    assert queue.get() == (None, True), "'c' was added during the shutdown and dropped"


def test_shut_down_ends_a_drain_that_waits() -> None:
    queue = Queue[str]()
    queue.add("a")
    queue.get()
    drainer = threading.Thread(target=queue.shut_down_with_drain, daemon=True)
    drainer.start()
    eventually(queue.shutting_down)
    queue.shut_down()
    drainer.join(timeout=30)
    assert not drainer.is_alive()


def test_shut_down_with_drain_returns_at_once_when_nothing_is_in_flight() -> None:
    queue = Queue[str]()
    queue.shut_down_with_drain()
    assert queue.get() == (None, True)


def test_a_key_is_never_processed_by_two_workers_at_once() -> None:
    """Real threads hammer a few hot keys; a checker records any overlapping processing."""
    queue = Queue[int]()
    keys = range(6)
    lock = threading.Lock()
    in_flight: set[int] = set()
    overlaps: list[int] = []
    peak_in_flight = 0
    sequence = 0
    last_added: dict[int, int] = {}
    last_started: dict[int, int] = {}
    processed: Counter[int] = Counter()

    def work() -> None:
        nonlocal peak_in_flight, sequence
        while True:
            key, shutdown = queue.get()
            if shutdown:
                return
            assert key is not None
            with lock:
                if key in in_flight:
                    overlaps.append(key)
                in_flight.add(key)
                peak_in_flight = max(peak_in_flight, len(in_flight))
                sequence += 1
                last_started[key] = sequence
            time.sleep(0.0001)  # releases the GIL so that other workers overlap in time
            with lock:
                in_flight.discard(key)
                processed[key] += 1
            queue.done(key)

    def produce(seed: int) -> None:
        nonlocal sequence
        rng = random.Random(seed)
        for count in range(1500):
            key = rng.choice(keys)
            with lock:
                sequence += 1
                last_added[key] = sequence
            queue.add(key)
            if count % 10 == 0:
                time.sleep(0)  # lets workers run, so keys are re-added while in flight

    workers = [threading.Thread(target=work, daemon=True) for _ in range(8)]
    producers = [threading.Thread(target=produce, args=(seed,), daemon=True) for seed in range(3)]
    for thread in workers + producers:
        thread.start()
    for producer in producers:
        producer.join(timeout=10)
    queue.shut_down_with_drain()
    for worker in workers:
        worker.join(timeout=10)
        assert not worker.is_alive()

    assert overlaps == []
    assert peak_in_flight >= 2, "the workers never overlapped: the check proved nothing"
    assert set(processed) == set(keys)
    # Level-triggered: every key was processed after the last time it was added.
    assert all(last_started[key] > last_added[key] for key in keys)
    assert sum(processed.values()) < 3 * 1500, "duplicates collapsed"


class QueueMachine(RuleBasedStateMachine):
    """Single-threaded model check of the queue against client-go's rules."""

    def __init__(self) -> None:
        super().__init__()
        self.queue = Queue[str]()
        self.fifo: list[str] = []
        self.dirty: set[str] = set()
        self.processing: set[str] = set()
        self.shut = False

    keys = st.sampled_from("abcd")

    @rule(key=keys)
    def add(self, key: str) -> None:
        self.queue.add(key)
        if self.shut or key in self.dirty:
            return
        self.dirty.add(key)
        if key not in self.processing:
            self.fifo.append(key)

    @precondition(lambda self: self.fifo or self.shut)
    @rule()
    def get(self) -> None:
        got = self.queue.get()
        if not self.fifo:
            assert got == (None, True)
            return
        key = self.fifo.pop(0)
        assert got == (key, False)
        self.dirty.discard(key)
        self.processing.add(key)

    @rule(key=keys)
    def done(self, key: str) -> None:
        self.queue.done(key)
        if key in self.processing:
            self.processing.remove(key)
            if key in self.dirty:
                self.fifo.append(key)

    @rule()
    def shut_down(self) -> None:
        self.queue.shut_down()
        self.shut = True

    @invariant()
    def length_and_state_match(self) -> None:
        assert len(self.queue) == len(self.fifo)
        assert self.queue.shutting_down() == self.shut


TestQueueMachine = QueueMachine.TestCase
TestQueueMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


@pytest.mark.parametrize("item", [("kind", "ns", "name"), 42, frozenset({"x"})])
def test_any_hashable_key_works(item: object) -> None:
    queue = Queue[object]()
    queue.add(item)
    queue.add(item)
    assert queue.get() == (item, False)
    queue.done(item)
    assert len(queue) == 0
