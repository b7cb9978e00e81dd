"""``Instance.status.agent`` from the boot agent's heartbeats: transitions and staleness (§11).

Where it sits: the agents report to the API server (``apiserver.rendezvous``), which writes
each report as a leased heartbeat (``controller.rendezvous``), never to the Instance. This
module turns them into the Instance's ``status.agent``, in two halves:

- :meth:`AgentWatch.on_heartbeat`, a handler of the process's ``HeartbeatCache``, enqueues the
  Instance only when a beat would change ``status.agent`` (state, address, parameters,
  configRevision; :func:`news`) — a beat that changes nothing costs no reconcile and no write;
- :meth:`AgentWatch.converge`, inside the Instance reconcile once its cloud instance exists,
  applies the current beat (:func:`evaluate`): ``lastReport`` is the ``reportedAt`` of the beat
  that caused the transition; each transition sets ``AgentReady`` (True ``Configured``;
  False ``AgentFailed`` with the agent's message, ``AgentLost``) — so the history records it —
  and posts an event (``AgentConfigured``, ``AgentFailed``, ``AgentLost``; ``AgentUpdated`` when
  a Configured or Failed agent reports other parameters, address or revision).

Staleness: an agent is Lost when its last report (the beat's ``reportedAt``; for an agent that
never reported since it became Booting, the latest of that moment, the cloud instance's
creation and its last becoming Ready) is older than its BootConfig's ``staleAfter``. The
reconcile asks to be requeued at that deadline, and judges staleness only while the instance
runs (a booting machine has no agent to hear from); an instance stopped through
``spec.powerState`` has its agent Booting, so that it is not Lost the moment it starts again.

Once Lost, ``reconcilers.instance.health`` remediates per ``spec.health`` and sets the agent
Booting again, which restarts the stale clock.

Which beats count: a Booting or Lost agent hears only beats newer than its ``lastReport`` (the
beat it was lost with stays in the cache until its lease goes, and must not make a restarted
agent Lost again at once); a Configured or Failed agent, any beat at least as new.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import structlog

from api_types import BootConfig, Instance, InstancePhase, PowerState
from api_types.bootconfigs import DEFAULT_STALE_AFTER
from api_types.common import duration_seconds
from api_types.compute import AgentState, AgentStatus
from api_types.rendezvous import Heartbeat
from controller.passes import Pass
from controller.reconcile import Request
from controller.store.keys import ObjectKey
from reconcilers.deps import Deps
from reconcilers.instance.boot import AGENT_READY, BootRegistrar

__all__ = ["AgentWatch", "Verdict", "counts", "evaluate", "news"]

log = structlog.get_logger(__name__)

#: Requeue this long after a staleness deadline, so the reconcile finds it passed.
_DEADLINE_MARGIN_SECONDS = 0.5
_DEFAULT_STALE_SECONDS = duration_seconds(DEFAULT_STALE_AFTER)


def counts(agent: AgentStatus, beat: Heartbeat) -> bool:
    """Whether ``beat`` speaks for the agent as it is now (see the module)."""
    last = agent.last_report
    if last is None:
        return True
    if agent.state in (AgentState.BOOTING, AgentState.LOST):
        return beat.reported_at > last
    return beat.reported_at >= last


def _reported(agent: AgentStatus) -> tuple[object, ...]:
    return (agent.state, agent.address, agent.parameters, agent.config_revision)


def news(agent: AgentStatus | None, beat: Heartbeat, now: datetime) -> AgentStatus | None:
    """``status.agent`` as ``beat`` reports it, or None if the beat does not count or changes
    nothing the status shows (state, address, parameters, configRevision)."""
    if agent is None or not counts(agent, beat):
        return None
    state = AgentState(beat.status.value)
    revision = agent.config_revision if beat.config_revision is None else beat.config_revision
    updated = agent.model_copy(
        update={
            "state": state,
            "address": beat.address,
            "parameters": dict(beat.parameters),
            "config_revision": revision,
        }
    )
    if _reported(updated) == _reported(agent):
        return None
    changed_state = state != agent.state
    return updated.model_copy(
        update={
            "last_report": beat.reported_at,
            "last_transition_time": now if changed_state else agent.last_transition_time,
        }
    )


@dataclass(frozen=True)
class Verdict:
    """What :func:`evaluate` made of the agent: its status now, the beat that counted, and
    when it goes stale next (None: never from here — Lost already, or not judged)."""

    agent: AgentStatus
    beat: Heartbeat | None
    deadline: datetime | None


def evaluate(
    agent: AgentStatus,
    beat: Heartbeat | None,
    now: datetime,
    stale_after: timedelta | None,
    up_since: datetime | None,
) -> Verdict:
    """Apply the current heartbeat to ``agent`` and judge staleness (``stale_after`` None:
    not judged). ``up_since``: since when the cloud instance has been up (created, running):
    a Booting agent cannot report before."""
    heard = beat if beat is not None and counts(agent, beat) else None
    if heard is not None:
        reference: datetime | None = heard.reported_at
    elif agent.state == AgentState.BOOTING:
        since = [t for t in (agent.last_transition_time, up_since) if t is not None]
        reference = max(since) if since else None
    else:
        reference = agent.last_report
    if stale_after is not None and reference is not None and now - reference > stale_after:
        if agent.state == AgentState.LOST:
            return Verdict(agent, heard, None)
        lost = agent.model_copy(
            update={
                "state": AgentState.LOST,
                "last_report": heard.reported_at if heard is not None else agent.last_report,
                "last_transition_time": now,
            }
        )
        return Verdict(lost, heard, None)
    updated = news(agent, heard, now) if heard is not None else None
    current = updated or agent
    if stale_after is None or reference is None or current.state == AgentState.LOST:
        return Verdict(current, heard, None)
    return Verdict(current, heard, reference + stale_after)


def _up_since(instance: Instance) -> datetime | None:
    """Since when the cloud instance has been up: the later of its creation and of its last
    becoming Ready (running), as far as the conditions say."""
    times = [
        found.last_transition_time
        for type_ in ("Provisioned", "Ready")
        if (found := instance.status.condition(type_)) is not None and found.status == "True"
    ]
    present = [t for t in times if t is not None]
    return max(present) if present else None


def _where(agent: AgentStatus) -> str:
    revision = "none" if agent.config_revision is None else str(agent.config_revision)
    return f"at {agent.address or 'an unreported address'}, config revision {revision}"


class AgentWatch:
    """Hears heartbeats and keeps ``status.agent`` of the Instances they belong to."""

    def __init__(self, deps: Deps, boot: BootRegistrar) -> None:
        self._deps = deps
        self._boot = boot
        self._instances = deps.manager.informer(Instance)

    # --- heartbeats -----------------------------------------------------------------------

    def requests_for(self, namespace: str, uuid: str, beat: Heartbeat | None) -> list[Request]:
        """The Instance to reconcile for a heartbeat change: only when the beat would change
        its ``status.agent``. A beat that went away (lease, forget) changes nothing: staleness
        is the reconcile's own deadline."""
        if beat is None or beat.instance is None:
            return []
        key = ObjectKey(Instance.PLURAL, namespace, beat.instance)
        instance = self._instances.peek(key)
        if instance is None or str(instance.metadata.uid) != uuid:
            return []
        if news(instance.status.agent, beat, self._deps.clock.wall()) is None:
            return []
        return [Request(key)]

    # --- reconcile ------------------------------------------------------------------------

    def stale_after(self, instance: Instance) -> timedelta:
        bootconfig: BootConfig | None = self._boot.bootconfig(instance)
        seconds = (
            bootconfig.spec.stale_after_seconds
            if bootconfig is not None
            else _DEFAULT_STALE_SECONDS  # deleted under a running instance: the default
        )
        return timedelta(seconds=seconds)

    def converge(self, pass_: Pass[Instance]) -> float | None:
        """Bring ``status.agent`` up to date; seconds until it should be judged again."""
        instance = pass_.obj
        status = instance.status
        agent = status.agent
        if agent is None or status.provider_id is None:
            return None
        uid = pass_.uid
        beat = self._deps.heartbeats.get(instance.metadata.namespace or "", uid)
        if instance.spec.power_state == PowerState.STOPPED:
            self._stopped(pass_, agent, beat)
            return None
        running = status.phase == InstancePhase.RUNNING
        now = self._deps.clock.wall()
        stale_after = self.stale_after(instance)
        verdict = evaluate(agent, beat, now, stale_after if running else None, _up_since(instance))
        if verdict.agent != agent:
            status.agent = verdict.agent
            self._transition(pass_, agent, verdict, stale_after)
        if verdict.deadline is None:
            return None
        return max(0.0, (verdict.deadline - now).total_seconds()) + _DEADLINE_MARGIN_SECONDS

    def _stopped(self, pass_: Pass[Instance], agent: AgentStatus, beat: Heartbeat | None) -> None:
        """A stopped instance has no agent to hear from: Booting until it runs and reports
        again (beats up to now no longer count), never Lost meanwhile."""
        if agent.state == AgentState.BOOTING:
            return
        last = agent.last_report
        if beat is not None and (last is None or beat.reported_at > last):
            last = beat.reported_at
        pass_.obj.status.agent = agent.model_copy(
            update={
                "state": AgentState.BOOTING,
                "last_report": last,
                "last_transition_time": self._deps.clock.wall(),
            }
        )
        message = "the instance is stopped (spec.powerState): its agent reports once it runs"
        pass_.condition(AGENT_READY, False, "Booting", message)

    def _transition(
        self, pass_: Pass[Instance], before: AgentStatus, verdict: Verdict, stale: timedelta
    ) -> None:
        after = verdict.agent
        kind: Literal["Normal", "Warning"]
        if after.state == AgentState.LOST:
            last = after.last_report.isoformat() if after.last_report else "never"
            message = (
                f"the agent has not reported within staleAfter "
                f"({int(stale.total_seconds())}s; last report: {last})"
            )
            pass_.condition(AGENT_READY, False, "AgentLost", message)
            pass_.event("Warning", "AgentLost", message)
            log.warning("boot agent lost", last_report=last)
            return
        if after.state == AgentState.CONFIGURED:
            message = f"configured {_where(after)}"
            pass_.condition(AGENT_READY, True, "Configured", message)
            kind, reason = "Normal", "AgentConfigured"
        elif after.state == AgentState.FAILED:
            said = verdict.beat.message if verdict.beat is not None else None
            message = f"the agent failed to apply its config: {said or 'no message'}"
            pass_.condition(AGENT_READY, False, "AgentFailed", message)
            kind, reason = "Warning", "AgentFailed"
        else:
            return  # Booting is entered by pre-registration and remediation, which say so
        if after.state == before.state:
            kind, reason, message = "Normal", "AgentUpdated", f"the agent reports {_where(after)}"
        pass_.event(kind, reason, message)
        log.info("boot agent reported", state=after.state.value, revision=after.config_revision)
