"""The Instance controller: placement, provisioning, power state, drift and deletion of VMs.

Where it sits: one reconciler module of ``reconcilers``; the composition root calls
:func:`register` with the shared ``Deps``. Its parts:

* ``reconciler`` — the flow of one reconcile (finalizer, scheduling, dependencies);
* placement — ``reconcilers.placement.Scheduler``: quota for direct writes, decisions through
  the pools' ``PoolScheduler`` with the process's ``PlacementMemory`` (failure penalty,
  exhausted budgets);
* ``cloud`` — create (token first), observe, power state, drift, re-placement, deletion.

Conditions on an Instance, each with ``observedGeneration``: ``Scheduled`` (Placed /
WaitingForSubnet / SubnetNotFound / QuotaExceeded / Unschedulable / Replacing),
``Provisioned`` (Creating / Created / Recreating / Deleting / the provider's reason),
``Ready`` (Running / Stopped / Transitioning / WaitingForSubnet / SubnetNotFound /
WaitingForFirewall / FirewallNotFound / Drifted / QuotaExceeded / Deleting), ``Drifted``
(InSync / Terminated / PowerState) and ``QuotaExceeded`` (WithinQuota / QuotaExceeded).
"""

from __future__ import annotations

from api_types import Firewall, Instance, Subnet
from controller.handler import EnqueueMapped
from reconcilers._common import install_indexes
from reconcilers.deps import Deps
from reconcilers.instance.reconciler import FINALIZER, InstanceReconciler
from reconcilers.placement import PlacementMemory

__all__ = ["FINALIZER", "InstanceReconciler", "PlacementMemory", "register"]


def register(deps: Deps) -> None:
    """Reconcile Instances; Subnet and Firewall changes wake the instances waiting on them."""
    install_indexes(deps)
    reconciler = InstanceReconciler(deps)
    deps.manager.add_controller(
        Instance,
        reconciler,
        watches=[
            (Subnet, EnqueueMapped(reconciler.users_of_subnet)),
            (Firewall, EnqueueMapped(reconciler.users_of_firewall)),
        ],
    )
