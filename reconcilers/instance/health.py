"""Health remediation of an Instance whose boot agent is lost (``spec.health``, DESIGN §11).

Where it sits: the Instance reconcile calls :meth:`Remedies.act` after
``reconcilers.instance.agent`` has brought ``status.agent`` up to date. On ``AgentLost`` with
``spec.health.remediation``:

- ``Restart``: the cloud instance is stopped; ``status.phase`` goes to Provisioning, so
  ``cloud.CloudSteps._observe`` finds it Stopped while the spec says Running and starts it
  again as a power-state change of its own — not as drift (drift is an instance that was
  Running by skybroker's account and is not);
- ``Replace``: the cloud instance is deleted and its placement, providerID and addresses
  cleared, as ``CloudSteps._renew`` does when nothing on its account fits: the instance is
  placed again by its pool, or — a VirtualCluster member — by its group's scheduler under the
  group's rules (``WaitingForGroupPlacement``). The Instance keeps its uid, its Secret and its
  rendezvous record, so the new machine boots with the same boot string and reports for the
  same uuid. The create token is renewed (derived from the old one, as after a vanished
  instance), so the new create never adopts the machine just deleted while it is still listed.

Either sets ``status.agent`` back to Booting (the stale clock restarts) and records
``lastRemediation``; a remediation acts at most once per ``spec.health.after`` (a Lost agent
within that window waits, requeued for when it ends). The mark, ``Ready=False`` and the new
phase are stored before the cloud call (``CloudSteps.leaving_ready``), so a crash cannot make
it act twice; a call that fails takes the mark back. Events: ``Restarting`` / ``Replacing``.
"""

from __future__ import annotations

from datetime import timedelta

import structlog

from api_types import Instance, InstancePhase, PowerState
from api_types.compute import AgentState, Remediation
from controller.passes import Pass
from controller.reconcile import Result
from providers import InstanceId, ResourceKind
from reconcilers._common import account_handle, derived_token
from reconcilers.deps import Deps
from reconcilers.instance.boot import AGENT_READY
from reconcilers.instance.cloud import BOOT_POLL_SECONDS, CloudSteps

__all__ = ["Remedies"]

log = structlog.get_logger(__name__)


class Remedies:
    """Restart or replace an Instance whose agent is lost, per its ``spec.health``."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    def act(self, pass_: Pass[Instance]) -> Result | None:
        """Remediate if due; a Result when it acted or has to wait for ``after`` to pass."""
        instance = pass_.obj
        status = instance.status
        agent = status.agent
        health = instance.spec.health
        if (
            agent is None
            or agent.state != AgentState.LOST
            or health is None
            or health.remediation == Remediation.NONE
            or status.provider_id is None
            or status.placement is None
            or status.phase != InstancePhase.RUNNING
            or instance.spec.power_state != PowerState.RUNNING
        ):
            return None
        now = self._deps.clock.wall()
        if agent.last_remediation is not None:
            due = agent.last_remediation + timedelta(seconds=health.after_seconds)
            if now < due:
                return Result(requeue_after=(due - now).total_seconds())
        handle = account_handle(self._deps, status.placement.account)
        # A transition to Lost made in this pass is stored first: its history record (the
        # AgentReady transition) must not be folded into the Booting written below.
        pass_.save()
        status = pass_.obj.status
        agent = status.agent
        assert agent is not None and status.provider_id is not None
        cloud_id = status.provider_id
        restart = health.remediation == Remediation.RESTART
        verb = "restarting" if restart else "replacing"
        message = f"the boot agent is lost; {verb} {cloud_id} (spec.health: {health.remediation})"
        before = agent
        status.agent = agent.model_copy(
            update={
                "state": AgentState.BOOTING,
                "last_transition_time": now,
                "last_remediation": now,
            }
        )
        pass_.condition(AGENT_READY, False, "Booting", f"{verb} after AgentLost")
        reason = "Restarting" if restart else "Replacing"
        CloudSteps.leaving_ready(pass_, reason, message, InstancePhase.PROVISIONING)
        try:
            if restart:
                handle.provider.stop_instance(InstanceId(cloud_id))
            else:
                handle.provider.delete_instance(InstanceId(cloud_id))
        except Exception:
            # Nothing happened (or nothing we know of): take the mark back, so the next pass
            # tries again instead of waiting out ``after``.
            pass_.obj.status.agent = before
            pass_.condition(AGENT_READY, False, "AgentLost", f"{verb} failed; retrying")
            raise
        handle.inventory.invalidate(ResourceKind.INSTANCE)
        pass_.event("Warning", reason, message)
        log.warning("boot agent lost: remediating", remediation=health.remediation.value)
        if restart:
            return Result(requeue_after=BOOT_POLL_SECONDS)
        status = pass_.obj.status
        status.placement = None
        status.provider_id = None
        status.create_token = derived_token(
            pass_.uid, str(pass_.generation), status.create_token or ""
        )
        status.addresses = []
        status.phase = InstancePhase.PENDING
        pass_.condition("Scheduled", False, "Replacing", message)
        pass_.condition("Provisioned", False, "Replacing", message)
        return Result(requeue_after=0.1)
