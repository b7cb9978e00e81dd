"""Status.set_condition: Kubernetes' transition rules, shared by the manager and reconcilers."""

from __future__ import annotations

from datetime import UTC, datetime

from api_types.meta import ConditionStatus, Status

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 1, 2, tzinfo=UTC)


def test_transition_time_moves_only_when_the_status_flips() -> None:
    status = Status()
    assert status.set_condition("Ready", False, "Waiting", generation=1, now=T0)
    assert not status.set_condition("Ready", False, "Waiting", generation=1, now=T1)
    assert status.set_condition("Ready", False, "Other", "why", generation=1, now=T1)
    ready = status.condition("Ready")
    assert ready is not None and ready.last_transition_time == T0 and ready.reason == "Other"
    assert status.set_condition("Ready", ConditionStatus.TRUE, "Running", generation=2, now=T1)
    ready = status.condition("Ready")
    assert ready is not None and ready.last_transition_time == T1
    assert ready.observed_generation == 2
    assert [c.type for c in status.conditions] == ["Ready"]
