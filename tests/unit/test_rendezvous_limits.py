"""The rendezvous endpoints' pure parts: token buckets on a fake clock, the bearer secret's
parsing and constant-time check, and the long-poll parameters."""

from __future__ import annotations

import pytest

from api_types.rendezvous import secret_digest
from apiserver.rendezvous import DEFAULT_POLL_SECONDS, RateLimiter, poll_parameters
from apiserver.rendezvous.bearer import DUMMY_DIGEST, bearer_secret, matches
from apiserver.rendezvous.ratelimit import MAX_TRACKED
from apiserver.status import ApiError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, 3, clock)
    assert [limiter.admit("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.admit("a") == 1  # half a second to the next token, rounded up
    assert limiter.admit("b") == 0  # another address has its own bucket
    clock.now += 0.5
    assert limiter.admit("a") == 0
    assert limiter.admit("a") == 1
    clock.now += 60  # refills to the burst, never beyond
    assert [limiter.admit("a") for _ in range(4)] == [0, 0, 0, 1]


def test_retry_after_is_whole_seconds_until_a_token() -> None:
    clock = Clock()
    limiter = RateLimiter(0.25, 1, clock)
    assert limiter.admit("a") == 0
    assert limiter.admit("a") == 4
    clock.now += 3.5
    assert limiter.admit("a") == 1


def test_idle_addresses_are_forgotten_when_too_many_are_tracked() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, 2, clock)
    for index in range(MAX_TRACKED):
        limiter.admit(f"10.0.{index // 256}.{index % 256}")
    assert limiter.tracked() == MAX_TRACKED
    clock.now += 10  # every bucket is full again
    assert limiter.admit("192.0.2.1") == 0
    assert limiter.tracked() == 1


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0, 1)
    with pytest.raises(ValueError):
        RateLimiter(1.0, 0)


@pytest.mark.parametrize(
    ("header", "secret"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        (None, ""),
        ("", ""),
        ("Basic abc", ""),
        ("Bearer", ""),
        ("Bearer " + "x" * 513, ""),
    ],
)
def test_bearer_secret(header: str | None, secret: str) -> None:
    assert bearer_secret(header) == secret


def test_matches_only_the_secret_of_a_known_digest() -> None:
    digest = secret_digest("s3cret")
    assert matches("s3cret", digest)
    assert not matches("s3cre", digest)
    assert not matches("s3cret", None)
    assert not matches("", secret_digest(""))  # no secret is never a match
    assert DUMMY_DIGEST not in (digest, secret_digest(""))


def test_poll_parameters() -> None:
    assert poll_parameters({}) == (None, DEFAULT_POLL_SECONDS)
    assert poll_parameters({"afterRevision": "7"}) == (7, DEFAULT_POLL_SECONDS)
    assert poll_parameters({"afterRevision": "7", "timeoutSeconds": "0"}) == (7, 0)
    assert poll_parameters({"timeoutSeconds": "300"}) == (None, 300)
    for query, name in [
        ({"afterRevision": "-1"}, "afterRevision"),
        ({"afterRevision": "²"}, "afterRevision"),
        ({"afterRevision": ""}, "afterRevision"),
        ({"timeoutSeconds": "301"}, "timeoutSeconds"),
        ({"timeoutSeconds": "1e3"}, "timeoutSeconds"),
    ]:
        with pytest.raises(ApiError) as caught:
            poll_parameters(query)
        assert caught.value.code == 400 and caught.value.message.startswith(name)
