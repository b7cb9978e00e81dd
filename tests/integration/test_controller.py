"""The worker loop: one key per worker at a time, retry decisions, leadership, resync, wiring."""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import structlog
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from api_types.accounts import HardwareProfile, HardwareProfileSpec
from api_types.common import IntRange
from api_types.meta import ObjectMeta, OwnerReference
from api_types.tenancy import Secret
from controller.cache import Informer
from controller.clock import Clock, FakeClock, RealClock
from controller.controller import Controller
from controller.handler import EnqueueMapped, EnqueueObject, EnqueueOwner, request_for
from controller.metrics import RuntimeMetrics
from controller.predicate import GenerationChanged, LabelsChanged, NotOwnStatusWrite, any_of
from controller.reconcile import Request, Result, TerminalError, TransientError
from controller.store.keys import ObjectKey
from controller.store.objects import Store
from controller.workqueue import ItemExponentialFailureRateLimiter, RateLimitingQueue
from tests.waiting import eventually

Behaviour = Callable[[Request, int], Result]


class ScriptedReconciler:
    """Runs ``behaviour(request, n)`` for the n-th call on a key; records calls and contexts.

    Call times are read from ``clock``: with a :class:`FakeClock` they are exactly the times
    the test moved the clock to, whatever the machine's load.
    """

    def __init__(
        self, behaviour: Behaviour = lambda request, n: Result(), clock: Clock | None = None
    ) -> None:
        self.behaviour = behaviour
        self.clock: Clock = clock or RealClock()
        self.lock = threading.Lock()
        self.calls: list[tuple[ObjectKey, float]] = []
        self.contexts: list[dict[str, object]] = []
        self.in_flight: set[ObjectKey] = set()
        self.overlaps: list[ObjectKey] = []
        self.max_parallel = 0

    def reconcile(self, request: Request) -> Result:
        with self.lock:
            if request.key in self.in_flight:
                self.overlaps.append(request.key)
            self.in_flight.add(request.key)
            self.max_parallel = max(self.max_parallel, len(self.in_flight))
            n = sum(1 for key, _ in self.calls if key == request.key)
            self.calls.append((request.key, self.clock.now()))
            self.contexts.append(structlog.contextvars.get_contextvars())
        try:
            return self.behaviour(request, n)
        finally:
            with self.lock:
                self.in_flight.discard(request.key)

    def times(self, key: ObjectKey) -> list[float]:
        with self.lock:
            return [t for k, t in self.calls if k == key]


@pytest.fixture
def metrics() -> RuntimeMetrics:
    return RuntimeMetrics(CollectorRegistry())


@pytest.fixture
def make_controller(metrics: RuntimeMetrics) -> Iterator[Callable[..., Controller]]:
    started: list[Controller] = []

    def make(reconciler: ScriptedReconciler, **options: object) -> Controller:
        queue: RateLimitingQueue[ObjectKey] = RateLimitingQueue(
            "test",
            rate_limiter=ItemExponentialFailureRateLimiter(0.05, 1.0),
            clock=reconciler.clock,
            spread=lambda: 0.5,  # a wait asked for is spread by half of itself, exactly
        )
        controller = Controller(
            "tests",
            reconciler,
            queue,
            metrics=metrics,
            clock=reconciler.clock,
            **options,  # type: ignore[arg-type]
        )
        controller.start()
        started.append(controller)
        return controller

    yield make
    for controller in started:
        controller.stop()


def observed(metrics: RuntimeMetrics) -> float:
    """How many reconcile durations the histogram recorded."""
    (family,) = metrics.reconcile_duration.collect()
    return float(sum(s.value for s in family.samples if s.name.endswith("_count")))


def release_at(clock: FakeClock, due: float) -> None:
    """Prove the next call is scheduled for exactly ``due`` on ``clock``, then let it run.

    A thread waiting for that very deadline means the delay was computed as expected; nothing
    can run before the test moves the clock there, so lower and upper bounds are both exact.
    """
    assert clock.block_until_waiting(deadline=due, timeout=30), f"nothing waits for t={due}"
    clock.set(due)


def results(metrics: RuntimeMetrics) -> dict[str, float]:
    return {
        result: metrics.reconcile_total.labels(kind="tests", result=result)._value.get()
        for result in ("success", "requeue", "error", "transient", "terminal")
    }


KEY = ObjectKey("things", "ns", "one")
#: How often a controller looks at its parked keys (controller.controller's _INACTIVE_POLL).
INACTIVE_POLL = 0.5


def test_a_key_is_never_reconciled_by_two_workers_at_once(
    make_controller: Callable[..., Controller],
) -> None:
    def slow(request: Request, n: int) -> Result:
        time.sleep(0.001)  # long enough for other workers to pick other keys meanwhile
        return Result()

    reconciler = ScriptedReconciler(slow)
    controller = make_controller(reconciler, workers=8)
    keys = [ObjectKey("things", "ns", f"k{i}") for i in range(5)]

    def hammer() -> None:
        for _ in range(500):
            controller.enqueue(Request(random.choice(keys)))
            time.sleep(0.0001)

    adders = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in adders:
        thread.start()
    for thread in adders:
        thread.join()
    eventually(lambda: len(controller.queue) == 0 and not reconciler.in_flight)

    assert reconciler.overlaps == []
    assert reconciler.max_parallel > 1  # the workers did run in parallel, on different keys
    assert {key for key, _ in reconciler.calls} == set(keys)
    assert len(reconciler.calls) < 2000  # duplicates collapsed in the queue


def test_a_re_add_during_processing_replays_after_it(
    make_controller: Callable[..., Controller], metrics: RuntimeMetrics
) -> None:
    controller: Controller

    def re_add_once(request: Request, n: int) -> Result:
        if n == 0:
            controller.enqueue(request)  # an event arrives while we work
            time.sleep(0.05)
        return Result()

    reconciler = ScriptedReconciler(re_add_once)
    controller = make_controller(reconciler, workers=4)
    controller.enqueue(Request(KEY))
    eventually(lambda: len(reconciler.times(KEY)) == 2)
    time.sleep(0.1)
    assert len(reconciler.times(KEY)) == 2
    assert reconciler.overlaps == []
    assert results(metrics)["success"] == 2


def test_transient_error_delay_is_honoured(
    make_controller: Callable[..., Controller], metrics: RuntimeMetrics
) -> None:
    def throttled(request: Request, n: int) -> Result:
        if n == 0:
            raise TransientError("throttled", delay=0.3)
        if n == 1:
            raise TransientError("busy")  # no delay: the backoff chooses (50 ms here)
        return Result()

    clock = FakeClock()
    reconciler = ScriptedReconciler(throttled, clock)
    make_controller(reconciler).enqueue(Request(KEY))
    eventually(lambda: len(reconciler.times(KEY)) == 1)
    release_at(clock, 0.3 * 1.5)  # the delay asked for, spread by the drawn half of it
    eventually(lambda: len(reconciler.times(KEY)) == 2)
    # No delay asked for: the backoff's first step, as the wait before was not a failure.
    release_at(clock, 0.45 + 0.05)
    eventually(lambda: len(reconciler.times(KEY)) == 3)
    assert reconciler.times(KEY) == pytest.approx([0.0, 0.45, 0.5])
    assert results(metrics)["transient"] == 2
    eventually(lambda: results(metrics)["success"] == 1)


def test_terminal_error_is_not_retried_and_calls_the_hook(
    make_controller: Callable[..., Controller], metrics: RuntimeMetrics
) -> None:
    hooked: list[tuple[Request, TerminalError]] = []

    def hopeless(request: Request, n: int) -> Result:
        raise TerminalError("the image does not exist", reason="ImageNotFound")

    reconciler = ScriptedReconciler(hopeless)
    make_controller(
        reconciler, on_terminal=lambda request, error: hooked.append((request, error))
    ).enqueue(Request(KEY))
    eventually(lambda: len(hooked) == 1)
    time.sleep(0.3)
    assert len(reconciler.times(KEY)) == 1
    assert hooked[0][0] == Request(KEY) and hooked[0][1].reason == "ImageNotFound"
    assert results(metrics)["terminal"] == 1


def test_exceptions_are_retried_with_backoff_counted_and_never_kill_a_worker(
    make_controller: Callable[..., Controller], metrics: RuntimeMetrics
) -> None:
    def flaky(request: Request, n: int) -> Result:
        if request.key == KEY and n < 3:
            raise RuntimeError(f"bug #{n}")
        return Result()

    clock = FakeClock()
    reconciler = ScriptedReconciler(flaky, clock)
    controller = make_controller(reconciler, workers=1)
    controller.enqueue(Request(KEY))
    for calls, backoff in enumerate((0.05, 0.1, 0.2), start=1):  # per-key exponential backoff
        eventually(lambda calls=calls: len(reconciler.times(KEY)) == calls)  # type: ignore[misc]
        release_at(clock, reconciler.times(KEY)[-1] + backoff)
    eventually(lambda: len(reconciler.times(KEY)) == 4)
    gaps = [b - a for a, b in itertools.pairwise(reconciler.times(KEY))]
    assert gaps == pytest.approx([0.05, 0.1, 0.2])
    eventually(lambda: results(metrics)["success"] == 1)
    assert results(metrics)["error"] == 3
    assert observed(metrics) == 4
    assert controller.queue.num_requeues(KEY) == 0  # forgotten after the success

    other = ObjectKey("things", "ns", "other")  # the single worker is still alive
    controller.enqueue(Request(other))
    eventually(lambda: len(reconciler.times(other)) == 1)


def test_a_lost_write_race_is_retried_quietly_with_backoff(
    store: Store, make_controller: Callable[..., Controller], metrics: RuntimeMetrics
) -> None:
    """A ``ConflictError`` (a status write raced by another writer) is the runtime's to retry:
    backoff, counted as transient, never logged as an unexpected error with a traceback."""
    read = store.create(profile("raced"))
    newer = read.clone()
    newer.spec.cpu = IntRange(min=1, max=2)
    store.update(newer)

    def stale_write(request: Request, n: int) -> Result:
        if n == 0:
            mark(read, "stale")
            store.update_status(read)  # the copy read before the update above: a lost race
        return Result()

    clock = FakeClock()
    reconciler = ScriptedReconciler(stale_write, clock)
    with capture_logs() as logs:
        make_controller(reconciler).enqueue(Request(KEY))
        eventually(lambda: len(reconciler.times(KEY)) == 1)
        release_at(clock, 0.05)  # the key's first backoff step
        eventually(lambda: len(reconciler.times(KEY)) == 2)
        eventually(lambda: results(metrics)["success"] == 1)
    assert results(metrics)["transient"] == 1 and results(metrics)["error"] == 0
    assert [e for e in logs if e["log_level"] in ("error", "critical") or "exc_info" in e] == []
    assert any("changed meanwhile" in str(e.get("error")) for e in logs)


def test_requeue_after_calls_again_later(
    make_controller: Callable[..., Controller], metrics: RuntimeMetrics
) -> None:
    clock = FakeClock()
    reconciler = ScriptedReconciler(
        lambda request, n: Result(requeue_after=0.2) if n == 0 else Result(), clock
    )
    make_controller(reconciler).enqueue(Request(KEY))
    eventually(lambda: len(reconciler.times(KEY)) == 1)
    release_at(clock, 0.2)
    eventually(lambda: len(reconciler.times(KEY)) == 2)
    assert reconciler.times(KEY) == [0.0, 0.2]
    eventually(lambda: results(metrics)["success"] == 1)
    assert results(metrics)["requeue"] == 1


def test_keys_this_process_may_not_reconcile_are_parked_until_it_may(
    make_controller: Callable[..., Controller],
) -> None:
    mine = ObjectKey("things", "ns", "mine")
    active = threading.Event()

    def owns(key: ObjectKey) -> bool:
        if key.name == "broken":
            raise RuntimeError("lease store hiccup")
        return key == mine or active.is_set()

    clock = FakeClock()
    reconciler = ScriptedReconciler(clock=clock)
    controller = make_controller(reconciler, workers=2, is_active=owns)
    for key in (KEY, mine, ObjectKey("things", "ns", "broken")):
        controller.enqueue(Request(key))
    eventually(lambda: len(reconciler.times(mine)) == 1 and len(controller.queue) == 0)
    release_at(clock, INACTIVE_POLL)  # a look at the parked keys…
    assert clock.block_until_waiting(deadline=2 * INACTIVE_POLL)  # …done: it waits for the next
    assert [key for key, _ in reconciler.calls] == [mine]  # the others are parked
    active.set()  # e.g. this process acquired the other shard's lease

    def unparked() -> bool:
        clock.step(INACTIVE_POLL)
        return len(reconciler.times(KEY)) == 1

    eventually(unparked)
    assert len(reconciler.calls) == 2  # an is_active error never reconciles, never kills


def test_every_reconcile_logs_with_kind_key_and_a_reconcile_id(
    make_controller: Callable[..., Controller],
) -> None:
    reconciler = ScriptedReconciler(
        lambda request, n: Result(requeue_after=0.01) if n == 0 else Result()
    )
    make_controller(reconciler, kind="Thing").enqueue(Request(KEY))
    eventually(lambda: len(reconciler.contexts) == 2)
    first, second = reconciler.contexts
    assert {k: first[k] for k in ("kind", "namespace", "name")} == {
        "kind": "Thing",
        "namespace": "ns",
        "name": "one",
    }
    assert len(str(first["reconcile_id"])) == 8
    assert first["reconcile_id"] != second["reconcile_id"]


def profile(name: str, cpu: int = 1) -> HardwareProfile:
    return HardwareProfile(
        metadata=ObjectMeta(name=name), spec=HardwareProfileSpec(cpu=IntRange(min=1, max=cpu))
    )


def test_watch_with_predicates_and_periodic_resync(
    store: Store, make_controller: Callable[..., Controller], metrics: RuntimeMetrics
) -> None:
    profiles = Informer(store, HardwareProfile, metrics=metrics)
    clock = FakeClock()
    reconciler = ScriptedReconciler(clock=clock)
    period = 0.5
    tick = period / 20  # the controller scans for due resyncs 20 times a period
    controller = make_controller(reconciler, resync_source=profiles, resync_period=period)
    controller.watch(profiles, EnqueueObject(), GenerationChanged())
    key = ObjectKey("hardwareprofiles", None, "small")

    def calls_after_a_tick(n: int) -> bool:
        clock.step(tick)
        return len(reconciler.times(key)) == n

    try:
        store.create(profile("small"))
        profiles.start()
        eventually(lambda: len(reconciler.times(key)) == 1)

        # Resync re-enqueues every object every period (± 10 %), with no event at all: never
        # sooner (the clock may move on before a worker takes the key: only the lower bound
        # is exact).
        eventually(lambda: calls_after_a_tick(3), timeout=30)
        times = reconciler.times(key)
        assert times[2] - times[0] >= 0.9 * period * 2

        store.delete(HardwareProfile, "small")
        eventually(lambda: profiles.get(key) is None)
        calls = len(reconciler.times(key))
        for _ in range(3 * 20):  # three periods, one scan at a time: a deleted object is
            release_at(clock, clock.now() + tick)  # no longer resynced
        assert len(reconciler.times(key)) <= calls + 1
    finally:
        profiles.stop()


def mark(obj: HardwareProfile, word: str) -> None:
    """A status-only change: a condition carrying ``word`` (HardwareProfile has no phase)."""
    obj.status.set_condition("Probe", True, word, generation=None)


def marked(obj: HardwareProfile) -> str | None:
    condition = obj.status.condition("Probe")
    return condition.reason if condition is not None else None


def test_generation_predicate_filters_status_and_label_updates(
    store: Store, make_controller: Callable[..., Controller], metrics: RuntimeMetrics
) -> None:
    profiles = Informer(store, HardwareProfile, metrics=metrics)
    reconciler = ScriptedReconciler()
    controller = make_controller(reconciler)
    controller.watch(profiles, EnqueueObject(), GenerationChanged())
    key = ObjectKey("hardwareprofiles", None, "small")
    try:
        profiles.start()
        created = store.create(profile("small"))
        eventually(lambda: len(reconciler.times(key)) == 1)
        created.metadata.labels = {"team": "a"}
        labelled = store.update(created)
        mark(labelled, "Seen")
        store.update_status(labelled)
        eventually(lambda: marked(profiles.get(key) or labelled) == "Seen")
        time.sleep(0.1)
        assert len(reconciler.times(key)) == 1
        changed = store.get(HardwareProfile, "small")
        changed.spec.cpu = IntRange(min=1, max=8)
        store.update(changed)
        eventually(lambda: len(reconciler.times(key)) == 2)
    finally:
        profiles.stop()


def test_own_status_writes_do_not_come_back_as_reconciles(
    store: Store, make_controller: Callable[..., Controller], metrics: RuntimeMetrics
) -> None:
    """A status write made through this process's store is dropped; the same kind of write
    made by someone else (another store: another process), or any metadata change, passes."""
    profiles = Informer(store, HardwareProfile, metrics=metrics)
    reconciler = ScriptedReconciler()
    make_controller(reconciler).watch(
        profiles, EnqueueObject(), NotOwnStatusWrite(store.wrote_status)
    )
    elsewhere = Store(store.client, store.layout)
    key = ObjectKey("hardwareprofiles", None, "small")
    try:
        profiles.start()
        created = store.create(profile("small"))
        eventually(lambda: len(reconciler.times(key)) == 1)
        mark(created, "Mine")
        mine = store.update_status(created)
        eventually(lambda: marked(profiles.get(key) or created) == "Mine")
        time.sleep(0.2)
        assert len(reconciler.times(key)) == 1

        theirs = elsewhere.get(HardwareProfile, "small")
        mark(theirs, "Theirs")
        elsewhere.update_status(theirs)
        eventually(lambda: len(reconciler.times(key)) == 2)

        mine = store.get(HardwareProfile, "small")
        mine.metadata.labels = {"team": "a"}
        store.update(mine)
        eventually(lambda: len(reconciler.times(key)) == 3)
    finally:
        profiles.stop()


def test_min_interval_folds_a_burst_of_events_into_few_reconciles(
    make_controller: Callable[..., Controller],
) -> None:
    clock = FakeClock()
    reconciler = ScriptedReconciler(clock=clock)
    controller = make_controller(reconciler, min_interval=0.3)

    def burst(until: float) -> None:
        """Events every 10 ms of the fake clock up to ``until``."""
        while clock.now() < until - 1e-9:
            for _ in range(5):
                controller.enqueue(Request(KEY))
            clock.step(0.01)

    controller.enqueue(Request(KEY))
    eventually(lambda: len(reconciler.times(KEY)) == 1)  # the first event: at once
    burst(until=0.25)  # all of these fold into one reconcile, when the window ends
    release_at(clock, 0.3)
    eventually(lambda: len(reconciler.times(KEY)) == 2)
    burst(until=0.45)  # the end of a burst is not lost: one more, a window later
    release_at(clock, 0.6)
    eventually(lambda: len(reconciler.times(KEY)) == 3)
    assert reconciler.times(KEY) == pytest.approx([0.0, 0.3, 0.6])
    assert len(controller.queue) == 0


def test_handlers_map_objects_to_requests() -> None:
    owner_ref = OwnerReference(kind="HardwareProfile", name="small", uid="u1", controller=True)
    other_ref = OwnerReference(kind="Secret", name="creds", uid="u2")
    owned = Secret(
        metadata=ObjectMeta(name="s", namespace="ns1", owner_references=[owner_ref, other_ref])
    )
    assert list(EnqueueObject().requests(owned)) == [Request.of("secrets", "ns1", "s")]
    assert list(EnqueueOwner(HardwareProfile).requests(owned)) == [
        Request.of("hardwareprofiles", None, "small")
    ]
    assert list(EnqueueOwner(Secret, controller_only=True).requests(owned)) == []
    assert list(EnqueueOwner(Secret).requests(owned)) == [Request.of("secrets", "ns1", "creds")]
    mapped = EnqueueMapped(lambda obj: [Request.of("instances", "ns1", obj.metadata.name + "-vm")])
    assert list(mapped.requests(owned)) == [Request.of("instances", "ns1", "s-vm")]
    assert request_for(owned).key == ObjectKey("secrets", "ns1", "s")

    old, new = profile("p"), profile("p")
    new.metadata.labels = {"a": "b"}
    either = any_of(GenerationChanged(), LabelsChanged())
    assert not GenerationChanged().update(old, new)
    assert LabelsChanged().update(old, new) and either.update(old, new)
    assert not either.update(old, old) and either.create(old) and either.delete(old)
    new.metadata.generation = 2
    assert GenerationChanged().update(old, new)
