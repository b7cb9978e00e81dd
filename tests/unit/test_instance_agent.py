"""``reconcilers.instance.agent``'s pure rules: which heartbeats count, what they change, when an
agent is stale — on a fixed timeline, without etcd (the integration tests cover the wiring)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api_types.compute import AgentState, AgentStatus
from api_types.rendezvous import Heartbeat, ReportStatus
from reconcilers.instance.agent import counts, evaluate, news

T0 = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
STALE = timedelta(seconds=60)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def beat(
    seconds: float, status: ReportStatus = ReportStatus.CONFIGURED, **fields: object
) -> Heartbeat:
    return Heartbeat.model_validate(
        {
            "uuid": "u",
            "bootConfig": "web",
            "instance": "web-1",
            "status": status,
            "reportedAt": at(seconds),
            **fields,
        }
    )


def booting(since: float = 0, last_report: float | None = None) -> AgentStatus:
    return AgentStatus(
        state=AgentState.BOOTING,
        last_transition_time=at(since),
        last_report=None if last_report is None else at(last_report),
    )


def test_a_booting_agent_that_never_reports_is_lost_after_stale_after() -> None:
    agent = booting(since=0)
    fresh = evaluate(agent, None, at(59), STALE, up_since=None)
    assert fresh.agent == agent and fresh.deadline == at(60)
    lost = evaluate(agent, None, at(61), STALE, up_since=None)
    assert lost.agent.state == AgentState.LOST and lost.deadline is None
    assert lost.agent.last_transition_time == at(61) and lost.agent.last_report is None


def test_the_stale_clock_of_a_booting_agent_starts_when_its_machine_was_created() -> None:
    verdict = evaluate(booting(since=0), None, at(100), STALE, up_since=at(50))
    assert verdict.agent.state == AgentState.BOOTING and verdict.deadline == at(110)


def test_staleness_is_not_judged_while_the_machine_is_not_running() -> None:
    verdict = evaluate(booting(since=0), None, at(1000), None, up_since=None)
    assert verdict.agent.state == AgentState.BOOTING and verdict.deadline is None


def test_a_first_report_configures_and_moves_the_deadline() -> None:
    report = beat(10, address="10.0.0.5", parameters={"role": "web"}, configRevision=2)
    verdict = evaluate(booting(), report, at(11), STALE, up_since=None)
    agent = verdict.agent
    assert (agent.state, agent.address, agent.parameters, agent.config_revision) == (
        AgentState.CONFIGURED,
        "10.0.0.5",
        {"role": "web"},
        2,
    )
    assert agent.last_report == at(10) and agent.last_transition_time == at(11)
    assert verdict.deadline == at(70)


def test_a_beat_that_changes_nothing_is_no_news() -> None:
    first = news(booting(), beat(10, address="a"), at(10))
    assert first is not None
    assert news(first, beat(20, address="a"), at(20)) is None
    # without a revision the agent keeps the one it had
    with_revision = first.model_copy(update={"config_revision": 3})
    assert news(with_revision, beat(30, address="a"), at(30)) is None
    updated = news(with_revision, beat(40, address="b"), at(40))
    assert updated is not None and updated.address == "b"
    assert updated.last_transition_time == first.last_transition_time  # same state


def test_the_beat_an_agent_was_lost_with_does_not_count_after_a_remediation() -> None:
    old = beat(0)
    lost = evaluate(booting(), old, at(100), STALE, up_since=None).agent
    assert lost.state == AgentState.LOST and lost.last_report == at(0)
    restarted = lost.model_copy(
        update={"state": AgentState.BOOTING, "last_transition_time": at(100)}
    )
    assert not counts(restarted, old)
    verdict = evaluate(restarted, old, at(110), STALE, up_since=None)
    assert verdict.agent == restarted and verdict.deadline == at(160)
    assert counts(restarted, beat(105))


def test_a_lost_agent_that_reports_again_is_back() -> None:
    lost = AgentStatus(state=AgentState.LOST, last_report=at(0), last_transition_time=at(70))
    assert evaluate(lost, beat(0), at(80), STALE, up_since=None).agent == lost
    back = evaluate(lost, beat(75), at(80), STALE, up_since=None).agent
    assert back.state == AgentState.CONFIGURED and back.last_report == at(75)


def test_a_failed_report_is_failed() -> None:
    verdict = evaluate(
        booting(), beat(5, ReportStatus.FAILED, message="exit 3"), at(6), STALE, up_since=None
    )
    assert verdict.agent.state == AgentState.FAILED
    assert verdict.beat is not None and verdict.beat.message == "exit 3"


def test_a_report_from_before_a_booting_agent_became_booting_does_not_count() -> None:
    # Stopped through spec.powerState: Booting, its last beat taken as lastReport.
    agent = booting(since=100, last_report=90)
    verdict = evaluate(agent, beat(90), at(400), STALE, up_since=at(380))
    assert verdict.agent == agent and verdict.deadline == at(440)
