"""The cloud half of the Instance reconciler: create, observe, power, drift, re-place, delete.

Where it sits: ``reconcilers.instance.reconciler`` calls :class:`CloudSteps` once an instance
is placed and its dependencies exist (``converge``) and when it is being deleted
(``finalize``). Actual state is read from the account's ``Inventory`` (one list call per
account per interval shared by every instance), never by one cloud call per object.

Crash consistency (DESIGN §5): the create token (derived from uid and generation) is written
to ``status.createToken`` before the create call; a create retried after a crash finds the
instance by token in the inventory, or the provider adopts it. An instance whose providerID is
recorded but is missing from the inventory is only declared gone after a view listed at least
``LISTING_GRACE_SECONDS`` after it was created (a fresh list is forced then, at most one per
``FRESH_VIEW_SECONDS`` per account), so a stale view never makes a duplicate.

Drift (``spec.driftPolicy``): Correct — terminated outside → recreated under a new token,
stopped/started outside → put back; Report — condition ``Drifted=True`` with the difference.
A terminal capacity or provider-quota failure records a failure against the member and clears
the placement, so the next reconcile places the instance elsewhere (event ``Replacing``).

Ready is withdrawn in etcd before any call that takes an instance out of its state (a stop, a
start, a delete for a replacement), never only after it: a status write lost after the call (a
CAS race, a crash, a call that timed out after taking effect) cannot leave an instance Ready
that no longer runs (``tests/integration/reconcilers/test_instance_ready.py``).

A spec change a running instance cannot take in place — ``spec.image`` now maps to another
image, or ``spec.hardware`` no longer allows its size — replaces it (event ``Replacing``): the
old instance is deleted first, then a new one is created under the new generation's token, on
the cheapest size of the same account that fits (or re-placed if the account has none). A
hardware change the current size still satisfies changes nothing in the cloud.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from api_types import (
    AddressType,
    DeletionPolicy,
    DriftPolicy,
    Instance,
    InstanceAddress,
    InstancePhase,
    PowerState,
    ProviderAccount,
)
from controller.errors import BudgetExhausted, CapacityError, TerminalError
from controller.passes import Pass
from controller.reconcile import Result
from controller.store.keys import ObjectKey
from providers import (
    TAG_TOKEN,
    TAG_UID,
    CloudInstance,
    FirewallId,
    ImageId,
    InstanceCreate,
    InstanceState,
    KindView,
    ResourceKind,
    SizeId,
    SubnetId,
    ZoneName,
)
from reconcilers._common import (
    TRANSITION_VIEW_SECONDS,
    account_handle,
    account_sizes,
    cloud_tags,
    derived_token,
)
from reconcilers.accounts import AccountHandle
from reconcilers.deps import Deps
from reconcilers.hardware import HardwareConstraints, UnknownProfileError, cheapest_match
from reconcilers.placement import PlacementMemory

__all__ = ["BOOT_POLL_SECONDS", "DELETE_POLL_SECONDS", "CloudSteps"]

log = structlog.get_logger(__name__)

#: Polling an instance that is booting, stopping or starting.
BOOT_POLL_SECONDS = 2.0
#: Polling a deletion until the inventory no longer lists the instance.
DELETE_POLL_SECONDS = 1.0
#: How long after a create a missing instance may just not be listed yet.
LISTING_GRACE_SECONDS = 2.0
#: Age of the forced view that decides whether an instance is really gone.
FRESH_VIEW_SECONDS = 1.0

_GONE = (InstanceState.SHUTTING_DOWN, InstanceState.TERMINATED)
_PHASE = {PowerState.RUNNING: InstancePhase.RUNNING, PowerState.STOPPED: InstancePhase.STOPPED}


def _addresses(cloud: CloudInstance) -> list[InstanceAddress]:
    return [
        InstanceAddress(type=kind, address=ip)
        for kind, ips in (
            (AddressType.PRIVATE_IP, cloud.private_ips),
            (AddressType.PUBLIC_IP, cloud.public_ips),
        )
        for ip in ips
    ]


def _lookup(
    view: KindView[CloudInstance], provider_id: str | None, token: str | None
) -> CloudInstance | None:
    found = view.get(provider_id) if provider_id else None
    if found is None and token:
        found = view.by_token(token)
    return None if found is None or found.state in _GONE else found


def _in_transition(instance: Instance) -> bool:
    """Booting, being created, or changing power state (``Ready`` says ``Transitioning``)."""
    status = instance.status
    if status.phase not in (InstancePhase.RUNNING, InstancePhase.STOPPED):
        return True
    ready = status.condition("Ready")
    return ready is not None and ready.reason == "Transitioning"


class CloudSteps:
    """The Instance reconciler's cloud steps over one :class:`~controller.passes.Pass`:
    ``converge`` a placed instance with its cloud counterpart, ``finalize`` a deleted one."""

    def __init__(
        self,
        deps: Deps,
        memory: PlacementMemory,
        hardware: Callable[[Instance], HardwareConstraints],
    ) -> None:
        self._deps = deps
        self._memory = memory
        self._hardware = hardware
        self._accounts = deps.manager.informer(ProviderAccount)
        self._lock = threading.Lock()
        self._created: dict[str, float] = {}
        self._started = deps.clock.now()

    def _since_create(self, uid: str) -> float:
        with self._lock:
            return self._deps.clock.now() - self._created.get(uid, self._started)

    # --- converge -------------------------------------------------------------------------

    def converge(
        self,
        pass_: Pass[Instance],
        handle: AccountHandle,
        subnet_id: SubnetId | None,
        firewall_ids: tuple[FirewallId, ...],
        user_data: str | None,
    ) -> Result:
        """``user_data``: what a create sends (``spec.userData``, or the boot string of an
        instance with a ``bootConfigRef``: ``reconcilers.instance.boot``)."""
        try:
            status = pass_.obj.status
            cloud = None
            if status.provider_id is not None or status.create_token is not None:
                # Nothing to look up otherwise (no create was ever sent for this spec: the
                # token is durable before the cloud call), and a fresh view of a large account
                # costs a listing of all of it: every new instance used to force one.
                max_age = TRANSITION_VIEW_SECONDS if _in_transition(pass_.obj) else None
                view = handle.inventory.instances(max_age=max_age)
                cloud = _lookup(view, status.provider_id, status.create_token)
            if cloud is None and status.provider_id is not None:
                waited = self._since_create(pass_.uid)
                if waited < LISTING_GRACE_SECONDS:
                    return Result(requeue_after=LISTING_GRACE_SECONDS - waited)
                fresh = handle.inventory.instances(max_age=FRESH_VIEW_SECONDS)
                cloud = _lookup(fresh, status.provider_id, None)
                if cloud is None:
                    return self._vanished(pass_)
            if cloud is None:
                created = self._create(pass_, handle, subnet_id, firewall_ids, user_data)
                if isinstance(created, Result):
                    return created
                cloud = created
            elif status.observed_generation != pass_.generation:
                outdated = self._outdated(pass_, cloud)
                if outdated is not None:
                    return self._renew(pass_, handle, cloud, *outdated)
            return self._observe(pass_, handle, cloud)
        except BudgetExhausted as exc:
            self._memory.record_budget_exhausted(handle.name, exc.delay)
            raise

    def _image_id(self, pass_: Pass[Instance], account: str) -> str:
        found = self._accounts.peek(ObjectKey(ProviderAccount.PLURAL, None, account))
        image = pass_.obj.spec.image
        image_id: str | None = found.spec.images.get(image) if found is not None else None
        if image_id is None:
            raise TerminalError(
                f"image {image} is not mapped for account {account}", reason="ImageNotMapped"
            )
        return image_id

    def _create(
        self,
        pass_: Pass[Instance],
        handle: AccountHandle,
        subnet_id: SubnetId | None,
        firewall_ids: tuple[FirewallId, ...],
        user_data: str | None,
    ) -> CloudInstance | Result:
        instance = pass_.obj
        status = instance.status
        placement = status.placement
        assert placement is not None
        if status.create_token is None:
            status.create_token = derived_token(pass_.uid, str(pass_.generation))
            status.phase = InstancePhase.PROVISIONING
            pass_.condition("Provisioned", False, "Creating", f"creating in {placement.account}")
            pass_.save()  # the intent is durable before the cloud call
            status = pass_.obj.status  # the stored copy: later changes go to it
        token = status.create_token
        assert token is not None
        cloud = handle.inventory.instances().by_token(token)
        if cloud is None:
            request = InstanceCreate(
                tags=cloud_tags(instance, token),
                size=SizeId(placement.size),
                image=ImageId(self._image_id(pass_, placement.account)),
                zone=ZoneName(placement.zone) if placement.zone else None,
                subnet_id=subnet_id,
                firewall_ids=firewall_ids,
                user_data=user_data,
                placement_group=placement.placement_group,
            )
            try:
                cloud = handle.provider.create_instance(request)
            except CapacityError as exc:
                return self._replace(pass_, exc)
            except TerminalError as exc:
                status.phase = InstancePhase.FAILED
                pass_.condition("Provisioned", False, exc.reason, exc.message)
                raise
        with self._lock:
            self._created[pass_.uid] = self._deps.clock.now()
        status.provider_id = cloud.id
        where = f"{placement.account}/{cloud.zone or placement.region}"
        pass_.condition("Provisioned", True, "Created", f"{cloud.id} in {where}")
        pass_.event("Normal", "Created", f"created {cloud.id} ({placement.size}) in {where}")
        log.info("instance created", provider_id=cloud.id, account=placement.account)
        return cloud

    def _replace(self, pass_: Pass[Instance], error: CapacityError) -> Result:
        status = pass_.obj.status
        placement = status.placement
        assert placement is not None
        member = placement.member or placement.account
        self._memory.record_failure(pass_.obj.spec.pool, member, pass_.uid)
        message = f"create on {member} failed ({error.reason}: {error.message}); re-placing"
        pass_.event("Warning", "Replacing", message)
        log.warning("instance re-placed", member=member, reason=error.reason)
        status.placement = None
        status.create_token = None
        status.phase = InstancePhase.PENDING
        pass_.condition("Scheduled", False, "Replacing", message)
        pass_.condition("Provisioned", False, error.reason, error.message)
        return Result(requeue_after=0.1)

    def _outdated(
        self, pass_: Pass[Instance], cloud: CloudInstance
    ) -> tuple[str, SizeId | None] | None:
        """Why ``cloud`` cannot serve the changed spec, and the size a new one gets (None:
        nothing on this account fits, place again); None if it still serves."""
        instance = pass_.obj
        placement = instance.status.placement
        assert placement is not None
        reasons = []
        image_id = self._image_id(pass_, placement.account)
        if cloud.image != image_id:
            reasons.append(f"image {instance.spec.image} is {image_id}, it runs {cloud.image}")
        size: SizeId | None = SizeId(placement.size)
        try:
            wanted: HardwareConstraints | None = self._hardware(instance)
        except UnknownProfileError:
            wanted = None  # a profile deleted after placement: keep what runs
        sizes = account_sizes(self._deps, placement.account)
        current = sizes.get(cloud.size)
        if wanted is not None and current is not None and not wanted.allows(current):
            reasons.append(f"its size {cloud.size} does not meet {wanted.describe()}")
            fitting = cheapest_match(sizes.values(), wanted)
            size = fitting.id if fitting is not None else None
        return ("; ".join(reasons), size) if reasons else None

    def _renew(
        self,
        pass_: Pass[Instance],
        handle: AccountHandle,
        cloud: CloudInstance,
        why: str,
        size: SizeId | None,
    ) -> Result:
        """Delete ``cloud`` and start over with ``size`` (or a new placement)."""
        placement = pass_.obj.status.placement
        assert placement is not None
        where = "the same account" if size is not None else "a new placement"
        message = f"replacing {cloud.id} on {where}: the spec changed ({why})"
        # No longer Ready before the delete (the status must never call an instance Ready
        # while it is going away), and the providerID is forgotten only after it: a crash
        # in between finds the recorded instance gone and recreates it, instead of leaving
        # one nothing refers to.
        self.leaving_ready(pass_, "Replacing", message, InstancePhase.PROVISIONING)
        handle.provider.delete_instance(cloud.id)
        handle.inventory.invalidate(ResourceKind.INSTANCE)
        pass_.event("Normal", "Replacing", message)
        log.info("instance replaced after a spec change", provider_id=cloud.id, why=why)
        status = pass_.obj.status
        status.placement = None if size is None else placement.model_copy(update={"size": size})
        status.provider_id = None
        status.create_token = None
        status.addresses = []
        if size is None:
            status.phase = InstancePhase.PENDING
            pass_.condition("Scheduled", False, "Replacing", message)
        pass_.condition("Provisioned", False, "Replacing", message)
        return Result(requeue_after=0.1)

    @staticmethod
    def leaving_ready(
        pass_: Pass[Instance], reason: str, message: str, phase: InstancePhase | None = None
    ) -> None:
        """Store ``Ready=False`` (``reason``), and ``phase`` if given, before a cloud call that
        takes the instance out of its current state (a stop, a start, a delete): written only
        afterwards, a failed write (a lost CAS race, a crash, a timeout of the call after it
        took effect) would leave the status Ready for an instance that no longer runs."""
        if phase is not None:
            pass_.obj.status.phase = phase
        pass_.condition("Ready", False, reason, message)
        pass_.save()

    def _vanished(self, pass_: Pass[Instance]) -> Result:
        """The recorded instance is gone from the cloud (terminated outside skybroker)."""
        instance = pass_.obj
        status = instance.status
        message = f"{status.provider_id} was terminated outside skybroker"
        spec_changed = status.observed_generation != pass_.generation
        if instance.spec.drift_policy == DriftPolicy.REPORT and not spec_changed:
            if pass_.condition("Drifted", True, "Terminated", message):
                pass_.event("Warning", "Drifted", message)
            status.phase = InstancePhase.FAILED
            pass_.condition("Ready", False, "Drifted", message)
            return Result()
        pass_.event("Normal", "DriftCorrected", f"{message}; recreating it")
        log.warning("instance vanished; recreating", provider_id=status.provider_id)
        status.create_token = derived_token(
            pass_.uid, str(pass_.generation), status.create_token or ""
        )
        status.provider_id = None
        status.addresses = []
        status.phase = InstancePhase.PROVISIONING
        pass_.condition("Drifted", False, "InSync")
        pass_.condition("Provisioned", False, "Recreating", message)
        pass_.condition("Ready", False, "Recreating", message)
        return Result(requeue_after=0.1)

    def _observe(
        self, pass_: Pass[Instance], handle: AccountHandle, cloud: CloudInstance
    ) -> Result:
        instance = pass_.obj
        status = instance.status
        status.provider_id = cloud.id
        status.addresses = _addresses(cloud)
        if cloud.state not in (InstanceState.RUNNING, InstanceState.STOPPED):
            if status.phase not in (InstancePhase.RUNNING, InstancePhase.STOPPED):
                status.phase = InstancePhase.PROVISIONING
            pass_.condition("Ready", False, "Transitioning", f"{cloud.id} is {cloud.state.value}")
            return Result(requeue_after=BOOT_POLL_SECONDS)
        actual = PowerState.RUNNING if cloud.state is InstanceState.RUNNING else PowerState.STOPPED
        desired = instance.spec.power_state
        if actual == desired:
            status.phase = _PHASE[actual]
            pass_.condition("Ready", True, actual.value)
            pass_.condition("Drifted", False, "InSync")
            return Result()
        spec_changed = status.observed_generation != pass_.generation
        drifted_before = status.condition("Drifted")
        drifted = not spec_changed and (
            status.phase == _PHASE[desired]
            or (drifted_before is not None and drifted_before.status == "True")
        )
        message = f"{cloud.id} is {actual.value} but spec.powerState is {desired.value}"
        if drifted and instance.spec.drift_policy == DriftPolicy.REPORT:
            if pass_.condition("Drifted", True, "PowerState", message):
                pass_.event("Warning", "Drifted", message)
            status.phase = _PHASE[actual]
            pass_.condition("Ready", False, "Drifted", message)
            return Result()
        if drifted:
            pass_.event("Normal", "DriftCorrected", f"{message}: changed outside skybroker")
        pass_.condition("Drifted", False, "InSync")
        going = f"{cloud.id}: going {desired.value}"
        self.leaving_ready(pass_, "Transitioning", going)
        if desired == PowerState.RUNNING:
            handle.provider.start_instance(cloud.id)
        else:
            handle.provider.stop_instance(cloud.id)
        handle.inventory.invalidate(ResourceKind.INSTANCE)
        return Result(requeue_after=BOOT_POLL_SECONDS)

    # --- deletion -------------------------------------------------------------------------

    def finalize(self, pass_: Pass[Instance], finalizer: str) -> Result:
        """Delete (or orphan) the cloud instance, then release ``finalizer``."""
        instance = pass_.obj
        status = instance.status
        if status.phase != InstancePhase.DELETING:
            status.phase = InstancePhase.DELETING
            pass_.condition("Ready", False, "Deleting")
            pass_.save()
        placement = status.placement
        if placement is None or (status.provider_id is None and status.create_token is None):
            pass_.remove_finalizer(finalizer)
            return Result()
        waited = self._since_create(pass_.uid)
        if waited < LISTING_GRACE_SECONDS:
            return Result(requeue_after=LISTING_GRACE_SECONDS - waited)
        handle = account_handle(self._deps, placement.account)
        view = handle.inventory.instances(max_age=FRESH_VIEW_SECONDS)
        ours = {c.id: c for c in view.by_uid(pass_.uid)}
        if instance.spec.deletion_policy == DeletionPolicy.ORPHAN:
            for cloud_id in ours:
                handle.provider.remove_tags(cloud_id, (TAG_UID, TAG_TOKEN))
            handle.inventory.invalidate(ResourceKind.INSTANCE)
            pass_.event("Normal", "Orphaned", f"left {sorted(ours) or 'nothing'} untagged")
        elif ours:
            for cloud in ours.values():
                if cloud.state is not InstanceState.SHUTTING_DOWN:
                    handle.provider.delete_instance(cloud.id)
            if pass_.condition("Provisioned", False, "Deleting", f"deleting {sorted(ours)}"):
                pass_.event("Normal", "Deleting", f"deleting {sorted(ours)}")
                pass_.save()
            return Result(requeue_after=DELETE_POLL_SECONDS)
        else:
            pass_.event("Normal", "Deleted", f"{status.provider_id or 'nothing'} is gone")
        with self._lock:
            self._created.pop(pass_.uid, None)
        pass_.remove_finalizer(finalizer)
        return Result()
