"""Volume: a block device placed on a pool member, attached once its instance runs beside it.

Where it sits: the Volume controller, fed by the Volume cache and by Instances (a volume acts
when the instance named in ``spec.attachTo`` is placed, starts running, or is deleted).

Phases: ``Pending → Scheduled → Provisioning → Available → Attached``; ``Deleting``; ``Failed``
when the cloud refuses the create for good (condition ``Ready`` carries its reason).

1. Finalizer ``skybroker.io/volume``; a volume written straight into the store is held with
   ``QuotaExceeded=True`` while the namespace quota has no room for it (``reconcilers.quota``).
2. Placement by the pool policy with load and rotation (``reconcilers.placement.PoolScheduler``);
   with ``attachTo`` the volume goes where the instance is (account and zone) and waits until
   the instance is placed (an instance that does not exist is ``InstanceNotFound``, with a
   Warning event). Sticky.
3. Create intent in ``status.createToken`` before the cloud call; created idempotently.
4. Attach when the instance is Running in the same zone (condition ``Attached`` says what it
   waits for otherwise); once attached it stays attached whatever the instance's power state
   — stopping keeps volumes attached, as on EC2 (DESIGN §3); only a new attachment waits for
   Running. A volume detached behind skybroker's back is reattached (drift is always
   corrected); ``attachTo`` changed or removed, or the instance being deleted or replaced by
   a new VM, detaches.
5. Deletion: detach first, then delete, then the finalizer goes.
"""

from __future__ import annotations

from api_types import (
    DEFAULT_VOLUME_TYPE,
    HardwareProfile,
    Instance,
    InstancePhase,
    Placement,
    Quota,
    Volume,
    VolumeAttachmentStatus,
    usage_of,
)
from api_types.meta import Resource
from controller.errors import TerminalError
from controller.handler import EnqueueMapped
from controller.passes import Pass, finalized
from controller.reconcile import Request, Result
from controller.store.keys import ObjectKey
from providers import CloudVolume, InstanceId, ResourceKind, VolumeCreate, VolumeId, VolumeState
from providers.errors import is_not_found
from reconcilers._common import (
    TRANSITION_VIEW_SECONDS,
    VOLUMES_BY_INSTANCE,
    account_handle,
    cloud_tags,
    derived_token,
    install_indexes,
    namespaced_key,
)
from reconcilers.accounts import AccountHandle
from reconcilers.deps import Deps
from reconcilers.placement import PoolScheduler, Unschedulable
from reconcilers.quota import QUOTA_EXCEEDED, would_exceed

__all__ = ["FINALIZER", "VolumeReconciler", "register"]

FINALIZER = "skybroker.io/volume"
#: How often a volume waiting for its instance, its quota or its placement looks again.
WAIT_SECONDS = 5.0
#: How soon to look at a volume the cloud is still creating.
CREATING_SECONDS = 0.5


class VolumeReconciler:
    """Admits (quota), places, creates and attaches each Volume to the instance it names, and
    detaches and deletes it when it goes (see the module for the phases)."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._volumes = deps.manager.informer(Volume)
        self._instances = deps.manager.informer(Instance)
        self._quotas = deps.manager.informer(Quota)
        self._profiles = deps.manager.informer(HardwareProfile)
        self._ledger = deps.ledger
        self._scheduler = PoolScheduler(deps, Volume)
        install_indexes(deps)

    def volumes_of_instance(self, obj: Resource) -> list[Request]:
        key = namespaced_key(obj.metadata.namespace, obj.metadata.name)
        return [
            Request.of(Volume.PLURAL, v.metadata.namespace, v.metadata.name)
            for v in self._volumes.by_index(VOLUMES_BY_INSTANCE, key)
        ]

    def _instance(self, volume: Volume) -> Instance | None:
        target = volume.spec.attach_to
        if target is None:
            return None
        return self._instances.get(
            ObjectKey(Instance.PLURAL, volume.metadata.namespace, target.instance)
        )

    def reconcile(self, request: Request) -> Result:
        return finalized(
            self._deps.manager,
            self._volumes.get(request.key),
            FINALIZER,
            converge=self._converge,
            delete=self._delete,
        )

    def _converge(self, pass_: Pass[Volume]) -> Result:
        if pass_.obj.status.placement is None:
            waiting = self._quota_problem(pass_) or self._place(pass_)
            if waiting is not None:
                pass_.phase = "Pending"
                return Result(requeue_after=WAIT_SECONDS)
            pass_.save()  # the placement and the create intent, durably
        volume, status = pass_.obj, pass_.obj.status
        placement = status.placement
        assert placement is not None
        handle = account_handle(self._deps, placement.account)
        with pass_.failed_on_terminal():
            cloud = self._ensure(handle, volume, placement)
        status.provider_id = str(cloud.id)
        pass_.observe_generation()
        if cloud.state is VolumeState.CREATING:
            pass_.phase = "Provisioning"
            return Result(requeue_after=CREATING_SECONDS)
        cloud = self._attachment(pass_, handle, cloud)
        status.attached_to = self._observed(volume, cloud)
        pass_.phase = "Attached" if status.attached_to else "Available"
        pass_.condition("Ready", True, "Provisioned", str(cloud.id))
        attached = volume.spec.attach_to is None or status.attached_to is not None
        return Result() if attached else Result(requeue_after=WAIT_SECONDS)

    # --- admission and placement ------------------------------------------------------------

    def _quota_problem(self, pass_: Pass[Volume]) -> str | None:
        volume = pass_.obj
        namespace = volume.metadata.namespace or ""
        quotas = self._quotas.list(namespace)
        over: list[str] = []
        if quotas:  # counted as the Quota's status counts (placed instances at their size)
            profiles = {p.metadata.name: p for p in self._profiles.list()}
            used = self._ledger.total(namespace, profiles, without_volume=str(volume.metadata.uid))
            extra = usage_of(volume)
            over = sorted({name for q in quotas for name in would_exceed(q, used, extra)})
        if over:
            pass_.condition(
                QUOTA_EXCEEDED,
                True,
                "QuotaExceeded",
                f"the namespace quota has no room for: {', '.join(over)}",
            )
            return "quota"
        if volume.status.condition(QUOTA_EXCEEDED) is not None:
            pass_.condition(QUOTA_EXCEEDED, False, "WithinQuota")
        return None

    def _place(self, pass_: Pass[Volume]) -> str | None:
        """Write the placement and create token into the volume's status; or why it must wait."""
        volume, status = pass_.obj, pass_.obj.status
        bound_to: Placement | None = None
        if volume.spec.attach_to is not None:
            name = volume.spec.attach_to.instance
            instance = self._instance(volume)
            if instance is None:
                message = f"instance {name} not found in namespace {volume.metadata.namespace}"
                if pass_.condition("Scheduled", False, "InstanceNotFound", message):
                    pass_.event("Warning", "InstanceNotFound", message)
                return message
            if instance.status.placement is None:
                message = f"waiting for instance {name} to be placed"
                pass_.condition("Scheduled", False, "WaitingForInstance", message)
                return message
            bound_to = instance.status.placement
        try:
            decision = self._scheduler.schedule(volume, zone=volume.spec.zone, bound_to=bound_to)
        except Unschedulable as exc:
            pass_.condition("Scheduled", False, "Unschedulable", str(exc))
            return str(exc)
        chosen = decision.chosen
        assert chosen is not None
        status.placement = Placement(
            account=chosen.account, region=chosen.region, zone=chosen.zone, member=chosen.key
        )
        status.rejections = [r.to_api() for r in decision.rejections]
        status.create_token = derived_token(pass_.uid, str(pass_.generation))
        pass_.phase = "Scheduled"
        pass_.condition("Scheduled", True, "Placed", chosen.key)
        pass_.event("Normal", "Scheduled", f"placed on {chosen.key} in {chosen.zone}")
        return None

    # --- cloud ------------------------------------------------------------------------------

    def _ensure(self, handle: AccountHandle, volume: Volume, placement: Placement) -> CloudVolume:
        token, known = str(volume.status.create_token), volume.status.provider_id
        # A cached view: create_volume itself adopts a volume that already carries the token, so
        # a fresh list here would only spend the account's API budget on every retry; a fresher
        # one only while the volume is being created.
        creating = volume.status.phase == "Provisioning"
        view = handle.inventory.volumes(max_age=TRANSITION_VIEW_SECONDS if creating else None)
        found = (view.get(known) if known else None) or view.by_token(token)
        if found is not None:
            return found
        assert placement.zone is not None
        created = handle.provider.create_volume(
            VolumeCreate(
                tags=cloud_tags(volume, token),
                size_gib=volume.spec.size_gib,
                zone=placement.zone,  # type: ignore[arg-type]
                volume_type=volume.spec.type or DEFAULT_VOLUME_TYPE,
            )
        )
        handle.inventory.invalidate(ResourceKind.VOLUME)
        self._deps.recorder.record(volume, "Normal", "Created", f"volume {created.id}")
        return created

    def _attachment(
        self, pass_: Pass[Volume], handle: AccountHandle, cloud: CloudVolume
    ) -> CloudVolume:
        """Attach, detach or leave ``cloud`` as ``spec.attachTo`` and the instance allow."""
        volume, status = pass_.obj, pass_.obj.status
        target = volume.spec.attach_to
        instance = self._instance(volume)
        wanted: str | None = None
        reason, message = "NotRequested", ""
        if target is not None:
            reason, message = self._attach_blocker(volume, instance, cloud)
            if not reason and instance is not None:
                wanted = instance.status.provider_id
        if cloud.attached_to is not None and cloud.attached_to != wanted:
            handle.provider.detach_volume(cloud.id)
            pass_.event("Normal", "Detached", f"detached from {cloud.attached_to}")
            cloud = self._reread(handle, cloud)
        if wanted is not None and target is not None and cloud.attached_to != wanted:
            if status.attached_to is not None:  # it was attached: someone detached it
                pass_.event("Warning", "DriftCorrected", "found detached; reattaching")
            handle.provider.attach_volume(cloud.id, InstanceId(wanted), target.device)
            pass_.event("Normal", "Attached", f"attached to {target.instance} as {target.device}")
            cloud = self._reread(handle, cloud)
        attached = wanted is not None and cloud.attached_to == wanted
        if attached and instance is not None and target is not None:
            message = f"{target.device} on instance {target.instance}"
            if instance.status.phase != InstancePhase.RUNNING:
                message += f", kept while it is {instance.status.phase}"
        pass_.condition("Attached", attached, "Attached" if attached else reason, message)
        return cloud

    @staticmethod
    def _attach_blocker(
        volume: Volume, instance: Instance | None, cloud: CloudVolume
    ) -> tuple[str, str]:
        """("", "") when the volume belongs on the instance's VM now (attached to it already,
        whatever its power state, or ready to be: Running in the same zone), else (reason,
        message)."""
        name = volume.spec.attach_to.instance if volume.spec.attach_to else ""
        if instance is None or instance.metadata.deletion_timestamp is not None:
            return "InstanceGone", f"instance {name} does not exist or is being deleted"
        vm = instance.status.provider_id
        if vm is None:
            return "WaitingForInstance", f"instance {name} is not Running"
        zone = instance.status.placement.zone if instance.status.placement else None
        mine = volume.status.placement.zone if volume.status.placement else None
        if zone != mine:
            return "ZoneMismatch", f"instance {name} is in zone {zone}, the volume in {mine}"
        if cloud.attached_to != vm and instance.status.phase != InstancePhase.RUNNING:
            return "WaitingForInstance", f"instance {name} is not Running"
        return "", ""

    @staticmethod
    def _reread(handle: AccountHandle, cloud: CloudVolume) -> CloudVolume:
        handle.inventory.invalidate(ResourceKind.VOLUME)
        return handle.inventory.volumes().get(cloud.id) or cloud

    def _observed(self, volume: Volume, cloud: CloudVolume) -> VolumeAttachmentStatus | None:
        if cloud.attached_to is None:
            return None
        target = volume.spec.attach_to
        instance = self._instance(volume)
        ours = instance is not None and instance.status.provider_id == cloud.attached_to
        return VolumeAttachmentStatus(
            instance=target.instance if ours and target else str(cloud.attached_to),
            device=cloud.device or "",
            provider_id=str(cloud.attached_to),
        )

    # --- delete -----------------------------------------------------------------------------

    def _delete(self, pass_: Pass[Volume]) -> Result:
        status = pass_.obj.status
        pass_.phase = "Deleting"
        if status.placement is not None and status.provider_id:
            handle = account_handle(self._deps, status.placement.account)
            volume_id = VolumeId(status.provider_id)
            try:
                # Detach before delete, always: the cloud refuses to delete an attached volume.
                handle.provider.detach_volume(volume_id)
                handle.provider.delete_volume(volume_id)
            except TerminalError as exc:
                if not is_not_found(exc.code):
                    raise  # already gone (deleted behind our back) is what we wanted
            handle.inventory.invalidate(ResourceKind.VOLUME)
            status.provider_id = None
            status.attached_to = None
            pass_.save()
        pass_.remove_finalizer(FINALIZER)
        return Result()


def register(deps: Deps) -> None:
    reconciler = VolumeReconciler(deps)
    deps.manager.add_controller(
        Volume,
        reconciler,
        watches=[(Instance, EnqueueMapped(reconciler.volumes_of_instance))],
    )
