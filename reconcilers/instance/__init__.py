"""The Instance controller: placement, provisioning, power state, drift and deletion of VMs.

Where it sits: one reconciler module of ``reconcilers``; the composition root calls
:func:`register` with the shared ``Deps``. Its parts:

* ``reconciler`` — the flow of one reconcile (finalizer, scheduling, dependencies);
* placement — ``reconcilers.placement.Scheduler``: quota for direct writes, decisions through
  the pools' ``PoolScheduler`` with the process's ``PlacementMemory`` (failure penalty,
  exhausted budgets);
* ``cloud`` — create (token first), observe, power state, drift, re-placement, deletion;
* ``boot`` — pre-registration of an instance with a ``bootConfigRef`` (its Secret, rendezvous
  record and boot string) and removal of its record on delete;
* ``agent`` — ``status.agent`` from the boot agent's heartbeats, staleness (``AgentLost``);
* ``health`` — ``spec.health`` remediation of a lost agent (Restart, Replace).

Conditions on an Instance, each with ``observedGeneration``: ``Scheduled`` (Placed /
WaitingForSubnet / SubnetNotFound / QuotaExceeded / Unschedulable / Replacing),
``Provisioned`` (Creating / Created / Recreating / Deleting / the provider's reason),
``Ready`` (Running / Stopped / Transitioning / WaitingForSubnet / SubnetNotFound /
WaitingForFirewall / FirewallNotFound / Drifted / QuotaExceeded / Deleting), ``Drifted``
(InSync / Terminated / PowerState), ``QuotaExceeded`` (WithinQuota / QuotaExceeded) and, with
a ``bootConfigRef``, ``AgentReady`` (Configured / Booting / AgentFailed / AgentLost); ``Ready``
also BootConfigNotFound / RendezvousURLNotSet / BootSecretConflict / Restarting / Replacing.
"""

from __future__ import annotations

from api_types import BootConfig, Firewall, Instance, Subnet
from api_types.rendezvous import Heartbeat
from controller.handler import EnqueueMapped
from reconcilers._common import install_indexes
from reconcilers.deps import Deps
from reconcilers.instance.reconciler import FINALIZER, InstanceReconciler
from reconcilers.placement import PlacementMemory

__all__ = ["FINALIZER", "InstanceReconciler", "PlacementMemory", "register"]


def register(deps: Deps) -> None:
    """Reconcile Instances; Subnet, Firewall and BootConfig changes wake the instances
    waiting on them, and a boot agent's heartbeat its Instance when it changes its status."""
    install_indexes(deps)
    reconciler = InstanceReconciler(deps)
    controller = deps.manager.add_controller(
        Instance,
        reconciler,
        watches=[
            (Subnet, EnqueueMapped(reconciler.users_of_subnet)),
            (Firewall, EnqueueMapped(reconciler.users_of_firewall)),
            (BootConfig, EnqueueMapped(reconciler.boot.users_of_bootconfig)),
        ],
    )

    def on_heartbeat(namespace: str, uuid: str, beat: Heartbeat | None) -> None:
        for request in reconciler.agent.requests_for(namespace, uuid, beat):
            controller.enqueue(request)

    deps.heartbeats.add_handler(on_heartbeat)
