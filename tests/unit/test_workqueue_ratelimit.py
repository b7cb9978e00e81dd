"""Rate limiters: per-key exponential backoff, the overall token bucket, and their maximum."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.clock import FakeClock
from controller.workqueue import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    default_controller_rate_limiter,
)


def test_backoff_doubles_from_5_ms_and_is_capped_at_1000_s() -> None:
    limiter = ItemExponentialFailureRateLimiter[str]()
    delays = [limiter.when("a") for _ in range(22)]
    assert delays[:4] == [0.005, 0.01, 0.02, 0.04]
    assert delays[17] == 0.005 * 2**17  # 655.36 s, the last one under the cap
    assert delays[18:] == [1000.0] * 4
    assert limiter.num_requeues("a") == 22


def test_backoff_stays_at_the_cap_after_thousands_of_failures() -> None:
    limiter = ItemExponentialFailureRateLimiter[str]()
    for _ in range(5000):
        delay = limiter.when("a")
    assert delay == 1000.0


def test_backoff_is_per_key_and_forget_resets_it() -> None:
    limiter = ItemExponentialFailureRateLimiter[str](base_delay=1.0, max_delay=60.0)
    assert [limiter.when("a") for _ in range(3)] == [1.0, 2.0, 4.0]
    assert limiter.when("b") == 1.0
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0
    assert limiter.num_requeues("b") == 1
    assert limiter.when("a") == 1.0


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_backoff_rejects_nonsense_bounds(base: float, cap: float) -> None:
    with pytest.raises(ValueError):
        ItemExponentialFailureRateLimiter[str](base_delay=base, max_delay=cap)


def test_the_bucket_allows_a_burst_then_spaces_retries_by_one_over_qps() -> None:
    clock = FakeClock()
    bucket = BucketRateLimiter(qps=10.0, burst=100, clock=clock)
    assert [bucket.when(i) for i in range(100)] == [0.0] * 100
    assert bucket.when("x") == pytest.approx(0.1)
    assert bucket.when("x") == pytest.approx(0.2)
    clock.step(0.2)  # earns back the two tokens taken on credit
    assert bucket.when("x") == pytest.approx(0.1)
    assert bucket.num_requeues("x") == 0


def test_the_bucket_never_holds_more_than_its_burst() -> None:
    clock = FakeClock()
    bucket = BucketRateLimiter(qps=10.0, burst=5, clock=clock)
    clock.step(1000.0)
    assert [bucket.when(i) for i in range(6)] == [0.0] * 5 + [pytest.approx(0.1)]


@pytest.mark.parametrize(("qps", "burst"), [(0.0, 1), (1.0, 0)])
def test_the_bucket_rejects_nonsense_rates(qps: float, burst: int) -> None:
    with pytest.raises(ValueError):
        BucketRateLimiter(qps=qps, burst=burst)


@given(
    qps=st.sampled_from([0.5, 1.0, 10.0, 100.0]),
    burst=st.integers(min_value=1, max_value=20),
    steps=st.lists(st.tuples(st.sampled_from([0.0, 0.01, 0.1, 1.0]), st.integers(0, 30))),
)
def test_the_bucket_schedule_obeys_the_token_bucket_bound(
    qps: float, burst: int, steps: list[tuple[float, int]]
) -> None:
    """Over any window, at most ``burst + qps * width`` retries are scheduled, and none is
    pushed later than the previous one plus ``1/qps`` (the bucket is greedy, not lazy)."""
    clock = FakeClock()
    bucket = BucketRateLimiter(qps=qps, burst=burst, clock=clock)
    scheduled: list[float] = []
    for advance, calls in steps:
        clock.step(advance)
        for _ in range(calls):
            delay = bucket.when("k")
            assert delay >= 0
            at = clock.now() + delay
            if scheduled:
                assert at <= max(clock.now(), scheduled[-1] + 1 / qps) + 1e-9
            scheduled.append(at)
    for i in range(len(scheduled)):
        for j in range(i + 1, len(scheduled)):
            width = scheduled[j] - scheduled[i]
            assert j - i + 1 <= burst + qps * width + 1e-6


def test_max_of_takes_the_longest_delay_and_consults_every_limiter() -> None:
    clock = FakeClock()
    limiter = MaxOfRateLimiter[str](
        ItemExponentialFailureRateLimiter(base_delay=0.25, max_delay=100.0),
        BucketRateLimiter(qps=1.0, burst=1, clock=clock),
    )
    assert limiter.when("a") == 0.25  # the backoff wins; the bucket's only token is taken
    assert limiter.when("a") == 1.0  # the bucket, one token in debt, wins over 0.5
    assert limiter.when("b") == 2.0  # two tokens in debt, though "b" alone would wait 0.25
    assert limiter.num_requeues("a") == 2
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0
    assert limiter.num_requeues("b") == 1


def test_max_of_needs_a_limiter() -> None:
    with pytest.raises(ValueError):
        MaxOfRateLimiter[str]()


def test_the_default_controller_limiter_combines_backoff_and_bucket() -> None:
    clock = FakeClock()
    limiter = default_controller_rate_limiter(clock)
    assert [limiter.when(key) for key in range(100)] == [0.005] * 100
    assert limiter.when(100) == pytest.approx(0.1), "the 101st retry in a burst waits its token"
    clock.step(1000.0)
    assert [limiter.when(0) for _ in range(3)] == [0.01, 0.02, 0.04]
