"""The leak sweeper: deletes cloud resources whose owning object no longer exists (DESIGN §5).

Where it sits: a controller on ProviderAccount keys that, every ``interval`` and only in the
maintainer process (``Manager.is_maintainer()``: the holder of shard 0, so two processes never
sweep at once), reads the account's inventory (``Inventory.managed``: five batched lists,
dependents first) and asks ``LeakTracker`` which resources carry a ``skybroker/uid`` absent
from the store for longer than ``grace`` (default 120 s). Those are deleted — volumes detached
first — each with a Warning event ``LeakDeleted`` on the account naming the resource and the
missing uid (events are the record; the account's history holds its own changes). So deleting
a key straight from etcd is a real delete.

Resources without the uid tag are never touched: orphaning (``deletionPolicy: Orphan``)
strips the skybroker tags first, and resources skybroker never made have none. The set of live
uids comes from the caches of every kind that realises cloud resources (Instance, Subnet,
Firewall, Volume; networks carry the uid of a subnet); the manager starts controllers only
after every cache has synced, so a fresh process never mistakes an unlisted object for a leak,
and the grace period covers an object created a moment before its cache saw it.

Limitation: with several shards, an account is swept only if the maintainer also holds that
account's shard (the runtime reconciles a key only where its shard is held).
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
    MonotonicClock,
    Tagged,
)
from reconcilers._common import account_handle
from reconcilers.accounts import AccountHandle
from reconcilers.deps import Deps

__all__ = ["GRACE_SECONDS", "SWEEP_SECONDS", "LeakSweeper", "register"]

GRACE_SECONDS = 120.0
SWEEP_SECONDS = 30.0
_OWNER_KINDS = (Instance, Subnet, Firewall, Volume)


class LeakSweeper:
    def __init__(self, deps: Deps, *, grace: float, interval: float) -> None:
        self._deps = deps
        self._grace = grace
        self._interval = interval
        self._accounts = deps.manager.informer(ProviderAccount)
        self._owners = [deps.manager.informer(kind) for kind in _OWNER_KINDS]
        self._trackers: dict[str, LeakTracker] = {}
        self._lock = threading.Lock()

    def _tracker(self, account: str) -> LeakTracker:
        with self._lock:
            return self._trackers.setdefault(
                account, LeakTracker(MonotonicClock(), grace=self._grace)
            )

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
        if not self._deps.manager.is_maintainer():
            return Result(requeue_after=self._interval)
        try:
            handle = account_handle(self._deps, request.name)
            resources = handle.inventory.managed()
        except ReconcileError:
            return Result(requeue_after=self._interval)  # the health probe reports the cloud
        # Live uids are read after the inventory: an object created meanwhile is then known.
        leaks = self._tracker(request.name).leaked(resources, self._live_uids())
        for resource in leaks:
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
        ProviderAccount, LeakSweeper(deps, grace=grace, interval=interval), workers=1
    )
