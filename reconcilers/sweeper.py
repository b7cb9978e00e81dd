"""The leak sweeper: deletes cloud resources whose owning object no longer exists (DESIGN §5).

Where it sits: a controller on ProviderAccount keys, named ``leak-sweeper`` (its workqueue and
its ``reconcile_total{kind="leak-sweeper"}`` series stay apart from the account health
controller's), that every ``interval`` reads the account's inventory (``Inventory.managed``:
five batched lists, dependents first) and asks ``LeakTracker`` which resources carry a
``skybroker/uid`` absent from the store for longer than ``grace`` (default 120 s). Those are
deleted — volumes detached first — each with a Warning event ``LeakDeleted`` on the account
naming the resource and the missing uid (events are the record; the account's history holds
its own changes). So deleting a key straight from etcd is a real delete.

Resources without the uid tag are never touched: orphaning (``deletionPolicy: Orphan``)
strips the skybroker tags first, and resources skybroker never made have none. The set of live
uids comes from the caches of every kind that realises cloud resources (Instance, Subnet,
Firewall, Volume; networks carry the uid of a subnet); the manager starts controllers only
after every cache has synced, so a fresh process never mistakes an unlisted object for a leak,
and the grace period covers an object created a moment before its cache saw it.

With several shards (``--shards N``) every account is swept exactly once: the runtime reconciles
an account's key only in the process holding the account's shard, so the processes splitting
the shards split the accounts, and one that loses a shard stops deleting on its accounts at once.
Each process still sees every object of every shard: the informers hold the whole store, so
a resource of an object reconciled elsewhere is never taken for a leak. An owner must be seen
missing throughout the grace period by the process that deletes: one that takes an account
over (or back, after more than ``interval + grace`` elsewhere) starts counting afresh.
"""

from __future__ import annotations

import threading

from api_types import Firewall, Instance, ProviderAccount, Subnet, Volume
from controller.errors import ReconcileError
from controller.reconcile import Request, Result
from providers import (
    CloudFirewall,
    CloudInstance,
    CloudNetwork,
    CloudSubnet,
    CloudVolume,
    LeakTracker,
    Tagged,
)
from reconcilers._common import account_handle
from reconcilers.accounts import AccountHandle
from reconcilers.deps import Deps

__all__ = ["CONTROLLER", "GRACE_SECONDS", "SWEEP_SECONDS", "LeakSweeper", "register"]

#: The controller's name: its workqueue's and the ``kind`` label of its metrics.
CONTROLLER = "leak-sweeper"
GRACE_SECONDS = 120.0
SWEEP_SECONDS = 30.0
_OWNER_KINDS = (Instance, Subnet, Firewall, Volume)


class LeakSweeper:
    """Deletes the cloud resources of one account whose owner has been missing for ``grace``
    seconds on ``Deps.clock``, looking every ``interval`` seconds."""

    def __init__(self, deps: Deps, *, grace: float, interval: float) -> None:
        self._deps = deps
        self._grace = grace
        self._interval = interval
        self._accounts = deps.manager.informer(ProviderAccount)
        self._owners = [deps.manager.informer(kind) for kind in _OWNER_KINDS]
        #: account -> its tracker and when this process last swept it (``deps.clock`` seconds)
        self._trackers: dict[str, tuple[LeakTracker, float]] = {}
        self._lock = threading.Lock()

    def _tracker(self, account: str) -> LeakTracker:
        """The account's tracker; a fresh one if this process has not swept it lately."""
        now = self._deps.clock.now()
        with self._lock:
            tracker, last = self._trackers.get(account, (None, now))
            if tracker is None or now - last > self._interval + self._grace:
                tracker = LeakTracker(self._deps.clock, grace=self._grace)
            self._trackers[account] = (tracker, now)
            return tracker

    def _live_uids(self) -> set[str]:
        return {
            str(obj.metadata.uid)
            for informer in self._owners
            for obj in informer.list()
            if obj.metadata.uid
        }

    def reconcile(self, request: Request) -> Result:
        account = self._accounts.get(request.key)
        if account is None:
            with self._lock:
                self._trackers.pop(request.name, None)
            return Result()
        try:
            handle = account_handle(self._deps, request.name)
            resources = handle.inventory.managed()
        except ReconcileError:
            return Result(requeue_after=self._interval)  # the health probe reports the cloud
        # Live uids are read after the inventory: an object created meanwhile is then known.
        leaks = self._tracker(request.name).leaked(resources, self._live_uids())
        for resource in leaks:
            if not self._deps.manager.owns(request.key):
                break  # the shard moved on mid-sweep: its new holder sweeps from now on
            self._delete(handle, account, resource)
        return Result(requeue_after=self._interval)

    def _delete(self, handle: AccountHandle, account: ProviderAccount, leak: Tagged) -> None:
        provider = handle.provider
        try:
            if isinstance(leak, CloudVolume):
                if leak.attached_to is not None:
                    provider.detach_volume(leak.id)
                provider.delete_volume(leak.id)
            elif isinstance(leak, CloudInstance):
                provider.delete_instance(leak.id)
            elif isinstance(leak, CloudFirewall):
                provider.delete_firewall(leak.id)
            elif isinstance(leak, CloudSubnet):
                provider.delete_subnet(leak.id)
            elif isinstance(leak, CloudNetwork):
                provider.delete_network(leak.id)
        except ReconcileError as exc:
            # Typically a dependency (a leaked instance still terminating in a leaked subnet):
            # the next sweep tries again, dependents first.
            self._deps.recorder.record(
                account, "Warning", "LeakDeleteFailed", f"{leak.id}: {exc.message}"
            )
            return
        handle.inventory.invalidate()
        self._deps.recorder.record(
            account,
            "Warning",
            "LeakDeleted",
            f"{type(leak).__name__} {leak.id} ({leak.name}) deleted: its owner uid {leak.uid} "
            f"no longer exists in the store",
        )


def register(deps: Deps, *, grace: float = GRACE_SECONDS, interval: float = SWEEP_SECONDS) -> None:
    deps.manager.add_controller(
        ProviderAccount,
        LeakSweeper(deps, grace=grace, interval=interval),
        workers=1,
        name=CONTROLLER,
    )
