"""An account's API budget split between controller processes by the shards each holds: the
arithmetic of one process's slice, and a token bucket rescaled when its slice changes."""

from __future__ import annotations

import pytest

from controller.clock import FakeClock
from providers.budget import IDLE_WAIT, ApiGate, TokenBucket, budget_share
from providers.config import ApiBudget

START = 1_000.0


def test_a_slice_is_the_share_of_rate_and_burst() -> None:
    budget = ApiBudget(rate=20.0, burst=40)
    assert budget_share(budget, 1.0) == (20.0, 40.0)
    assert budget_share(budget, 0.5) == (10.0, 20.0)
    assert budget_share(budget, 0.25) == (5.0, 10.0)
    # Slices of the shards add up to the account's budget.
    rates, bursts = zip(*(budget_share(budget, s) for s in (0.25, 0.25, 0.5)), strict=True)
    assert sum(rates) == 20.0 and sum(bursts) == 40.0


def test_a_thin_slice_can_still_create_and_a_zero_one_spends_nothing() -> None:
    budget = ApiBudget(rate=20.0, burst=40, delete_reserve=0.25)
    rate, burst = budget_share(budget, 1 / 64)
    assert rate == pytest.approx(20.0 / 64)
    assert burst == pytest.approx(1 / 0.75)  # one call beside the delete reserve, not 0.625
    assert budget_share(budget, 0.0) == (0.0, 0.0)
    with pytest.raises(ValueError, match="share"):
        budget_share(budget, 1.5)


def test_a_rescaled_bucket_drops_what_exceeds_its_burst_and_refills_at_the_new_rate() -> None:
    clock = FakeClock(START)
    bucket = TokenBucket(rate=10.0, burst=10, clock=clock)
    bucket.rescale(5.0, 5.0)
    assert bucket.tokens == 5.0
    for _ in range(5):
        assert bucket.try_take() == 0.0
    assert bucket.try_take() == pytest.approx(0.2)  # one token at 5/s
    bucket.rescale(10.0, 10.0)  # growing adds no tokens at once
    assert bucket.tokens == 0.0
    clock.step(0.5)
    assert bucket.tokens == pytest.approx(5.0)


def test_a_gate_of_no_share_refuses_everything_until_it_gets_one() -> None:
    clock = FakeClock(START)
    gate = ApiGate("sim", ApiBudget(rate=4.0, burst=8), clock, share=0.0)
    assert gate.bucket.try_take() == IDLE_WAIT
    gate.set_share(0.5)
    assert (gate.bucket.rate, gate.bucket.burst) == (2.0, 4.0)
    # Full at once, as a new bucket: 4 tokens, one of which is the delete reserve.
    for _ in range(3):
        gate.enter(is_delete=False)
    assert gate.bucket.try_take(1.0) > 0.0
    gate.enter(is_delete=True)
    # Losing every shard and winning some back: full again at once, not refilling from empty
    # while the first calls of the regained work are turned away.
    gate.set_share(0.0)
    assert gate.bucket.try_take() == IDLE_WAIT
    gate.set_share(1.0)
    assert gate.bucket.tokens == 8.0
