"""Firewall rule canonical form and diff, and the shared error classification table."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.errors import CapacityError, ResourceBusyError, TerminalError, TransientError
from providers.errors import classify, counts_against_provider
from providers.rules import Direction, FirewallRule, IpProtocol, diff_rules, expand_rules

rules = st.builds(
    FirewallRule,
    st.sampled_from(Direction),
    st.just(IpProtocol.TCP),
    st.just(22),
    st.just(22),
    st.sampled_from(["10.0.0.0/8", "0.0.0.0/0", "192.168.0.0/16", "172.16.0.0/12"]),
)


@given(st.frozensets(rules), st.frozensets(rules))
def test_applying_the_diff_reaches_the_desired_rules(current, desired) -> None:  # type: ignore[no-untyped-def]
    change = diff_rules(current, desired)
    assert (current - change.revoke) | change.authorize == desired
    assert not change.authorize & current and change.revoke <= current
    assert bool(change) == (current != desired)


def test_expand_rules_parses_ports_and_splits_cidrs() -> None:
    assert expand_rules("Ingress", "tcp", "8000-8100", ["a", "b"]) == [
        FirewallRule(Direction.INGRESS, IpProtocol.TCP, 8000, 8100, "a"),
        FirewallRule(Direction.INGRESS, IpProtocol.TCP, 8000, 8100, "b"),
    ]
    assert expand_rules("Egress", "all", None, ["c"])[0].port_from is None
    assert expand_rules("Ingress", "udp", None, ["c"])[0].port_to == 65535
    with pytest.raises(ValueError):
        expand_rules("Ingress", "tcp", "http", ["c"])
    with pytest.raises(ValueError):
        expand_rules("Ingress", "tcp", "90-80", ["c"])


@pytest.mark.parametrize(
    ("code", "status", "expected", "reason"),
    [
        ("RequestLimitExceeded", 503, TransientError, None),
        ("InternalError", 500, TransientError, None),
        ("SomethingNew", 502, TransientError, None),
        ("DependencyViolation", 400, ResourceBusyError, None),
        ("IncorrectInstanceState", 400, ResourceBusyError, None),
        ("AuthFailure", 401, TerminalError, "AuthFailure"),
        ("InvalidAMIID.NotFound", 400, TerminalError, "InvalidImage"),
        ("InvalidInstanceType", 400, TerminalError, "InvalidSize"),
        ("VcpuLimitExceeded", 400, CapacityError, "ProviderQuotaExceeded"),
        ("InsufficientInstanceCapacity", 500, CapacityError, "InsufficientCapacity"),
        ("InvalidVpcID.NotFound", 400, TerminalError, "NotFound"),
        ("InvalidPlacementGroup.Unknown", 400, TerminalError, "NotFound"),
        ("InvalidPlacementGroup.InUse", 400, ResourceBusyError, None),
        ("SomethingNew", 400, TerminalError, "ProviderError"),
    ],
)
def test_classification(code: str, status: int, expected: type, reason: str | None) -> None:
    """Every answer's class, and so whether it says the provider is unwell (only throttling,
    5xx, timeouts do: what counts against the account's circuit breaker)."""
    error = classify(code, "m", status=status, request_id="r-1", retry_after=3)
    assert type(error) is expected
    assert (error.code, error.request_id) == (code, "r-1")
    assert counts_against_provider(error) is (expected is TransientError)
    if isinstance(error, TerminalError):
        assert error.reason == reason
    else:
        assert isinstance(error, TransientError)
        assert error.delay == 3
