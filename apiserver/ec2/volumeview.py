"""What a skybroker Volume looks like through EC2: its state, its attachment, its
DescribeVolumes item and the attributes the filters match.

Where it sits: under the volume actions (``volumes``), which answer with it; on the shared
mapping of ``resources`` (ids, tags). It only reads: a Volume's phase (written by
``reconcilers.volume``: Pending → Scheduled → Provisioning → Available → Attached; Failed;
Deleting), its ``spec.attachTo`` (the attachment asked for) and its ``status.attachedTo`` (the
attachment seen in the cloud). The mapping (:func:`volume_state`, :func:`attachment_of`)::

    deletionTimestamp set, or phase Deleting         deleting
    phase Failed                                     error
    phase Pending/Scheduled/Provisioning (or none)   creating   (no cloud volume ready yet)
    Available/Attached, attachTo or attachedTo set   in-use
    Available/Attached, neither                      available

    attachment (at most one, EC2's attachmentSet):
    attachTo set, attachedTo the same instance       attached
    attachTo set, attachedTo none or another         attaching  (the instance named by attachTo)
    attachTo null, attachedTo set                    detaching  (the instance still seen)
    attachTo null, attachedTo null                   (no attachment)

An attachment's ``instanceId`` is the EC2 id of the Instance it names (``status.attachedTo``
names one by name, or — a VM skybroker does not manage — by the cloud's id, matched against
the instances' ``status.providerID``; an attachment to no known instance has none). Its
``attachTime`` is when the ``Attached`` condition last turned true, shown once attached. A
volume's zone is ``spec.zone``, else where it was placed; its type ``spec.type``, else
``DEFAULT_VOLUME_TYPE`` (what the reconciler makes). There are no snapshots, no encryption
and no multi-attach: ``snapshotId`` is empty, the rest ``false``.

A region is a Pool: the volumes and instances an action sees are those whose ``spec.pool`` is
the request's region (:func:`region_volumes`, :func:`region_instances`); one drawn straight
from an account, or from another pool, is not there, as another tenant's is not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from api_types import DEFAULT_VOLUME_TYPE, Instance, Volume
from api_types.meta import ConditionStatus
from apiserver.ec2.context import ActionContext
from apiserver.ec2.resources import id_of, listed, tags_of
from apiserver.ec2.xmlwriter import Fields, Value

__all__ = [
    "FILTERS",
    "TAG_FILTER",
    "Attachment",
    "Described",
    "InstanceIds",
    "attach_time",
    "attachment_of",
    "described",
    "region_instances",
    "region_volumes",
    "timestamp",
    "volume_state",
    "zone_of",
]

Wire = dict[str, Any]

_READY_PHASES = ("Available", "Attached")
#: The DescribeVolumes filters (and ``tag:KEY`` for any key).
FILTERS = (
    "volume-id",
    "status",
    "availability-zone",
    "size",
    "volume-type",
    "create-time",
    "encrypted",
    "multi-attach-enabled",
    "attachment.instance-id",
    "attachment.status",
    "attachment.device",
    "attachment.delete-on-termination",
    "tag-key",
    "tag-value",
)
TAG_FILTER = "tag:"


def volume_state(volume: Volume) -> str:
    """EC2's volume state of ``volume`` (the module docstring's table)."""
    phase = volume.status.phase
    if volume.metadata.deletion_timestamp is not None or phase == "Deleting":
        return "deleting"
    if phase == "Failed":
        return "error"
    if phase not in _READY_PHASES:
        return "creating"
    if volume.spec.attach_to is not None or volume.status.attached_to is not None:
        return "in-use"
    return "available"


@dataclass(frozen=True)
class Attachment:
    """A volume's one attachment as EC2 shows it: which instance (by name, or by the cloud's
    id for a VM skybroker does not manage), as which device, and its state."""

    instance: str
    provider_id: str | None
    device: str
    state: str


def attachment_of(volume: Volume) -> Attachment | None:
    """The attachment asked for or still seen (the module docstring's table); None if neither."""
    target, seen = volume.spec.attach_to, volume.status.attached_to
    if target is None:
        if seen is None:
            return None
        return Attachment(seen.instance, seen.provider_id, seen.device, "detaching")
    # The device is not compared: a cloud may report none, and the reconciler never moves a
    # volume between devices of one instance.
    settled = seen is not None and seen.instance == target.instance
    return Attachment(target.instance, None, target.device, "attached" if settled else "attaching")


def timestamp(moment: datetime | None) -> str | None:
    """EC2's timestamp form, ``2026-12-03T07:45:55.000Z``."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def attach_time(volume: Volume, attachment: Attachment) -> str | None:
    """When ``attachment`` was made: the ``Attached`` condition's last turn to true."""
    condition = volume.status.condition("Attached")
    if attachment.state != "attached" or condition is None:
        return None
    if condition.status != ConditionStatus.TRUE:
        return None
    return timestamp(condition.last_transition_time)


def zone_of(volume: Volume) -> str | None:
    """The zone asked for, else the one the volume was placed in (None before placement)."""
    placement = volume.status.placement
    return volume.spec.zone or (placement.zone if placement is not None else None)


# --------------------------------------------------------------------------- what the region holds


def _in_region(context: ActionContext, wire: Wire) -> bool:
    return bool(wire.get("spec", {}).get("pool") == context.region)


def region_volumes(context: ActionContext) -> list[Wire]:
    return [wire for wire in listed(context, Volume.KIND) if _in_region(context, wire)]


def region_instances(context: ActionContext) -> list[Wire]:
    return [wire for wire in listed(context, Instance.KIND) if _in_region(context, wire)]


class InstanceIds:
    """EC2 ids of the region's instances by name and by the cloud's id, listed on first use
    (a listing without attachments needs none)."""

    def __init__(self, context: ActionContext) -> None:
        self._context = context
        self._by_name: dict[str, str] | None = None
        self._by_provider_id: dict[str, str] = {}

    def of(self, attachment: Attachment) -> str | None:
        if self._by_name is None:
            instances = region_instances(self._context)
            self._by_name = {str(i["metadata"]["name"]): id_of(Instance.KIND, i) for i in instances}
            for instance in instances:
                provider_id = (instance.get("status") or {}).get("providerID")
                if provider_id:
                    self._by_provider_id[str(provider_id)] = id_of(Instance.KIND, instance)
        found = self._by_name.get(attachment.instance)
        if found is None and attachment.provider_id is not None:
            found = self._by_provider_id.get(attachment.provider_id)
        return found


# --------------------------------------------------------------------------- the answer


@dataclass(frozen=True)
class Described:
    """One volume as DescribeVolumes shows it (its fields and its filter attributes)."""

    volume_id: str
    volume: Volume
    tags: list[dict[str, str]]
    attachment: Attachment | None
    instance_id: str | None

    @property
    def state(self) -> str:
        return volume_state(self.volume)

    @property
    def volume_type(self) -> str:
        return self.volume.spec.type or DEFAULT_VOLUME_TYPE

    def attachment_fields(self) -> list[Value]:
        attachment = self.attachment
        if attachment is None:
            return []
        return [
            {
                "volumeId": self.volume_id,
                "instanceId": self.instance_id,
                "device": attachment.device,
                "status": attachment.state,
                "attachTime": attach_time(self.volume, attachment),
                "deleteOnTermination": False,
            }
        ]

    def fields(self) -> Fields:
        return {
            "volumeId": self.volume_id,
            "size": self.volume.spec.size_gib,
            "snapshotId": "",
            "availabilityZone": zone_of(self.volume),
            "status": self.state,
            "createTime": timestamp(self.volume.metadata.creation_timestamp),
            "attachmentSet": self.attachment_fields(),
            "tagSet": list(self.tags),
            "volumeType": self.volume_type,
            "encrypted": False,
            "multiAttachEnabled": False,
        }

    def attributes(self) -> Mapping[str, Sequence[str]]:
        attachment = self.attachment
        zone = zone_of(self.volume)
        created = timestamp(self.volume.metadata.creation_timestamp)
        found: dict[str, Sequence[str]] = {
            "volume-id": [self.volume_id],
            "status": [self.state],
            "availability-zone": [zone] if zone else [],
            "size": [str(self.volume.spec.size_gib)],
            "volume-type": [self.volume_type],
            "create-time": [created] if created else [],
            "encrypted": ["false"],
            "multi-attach-enabled": ["false"],
            "attachment.instance-id": [self.instance_id] if self.instance_id else [],
            "attachment.status": [attachment.state] if attachment else [],
            "attachment.device": [attachment.device] if attachment else [],
            "attachment.delete-on-termination": ["false"] if attachment else [],
            "tag-key": [tag["key"] for tag in self.tags],
            "tag-value": [tag["value"] for tag in self.tags],
        }
        for tag in self.tags:
            found[f"{TAG_FILTER}{tag['key']}"] = [tag["value"]]
        return found


def described(wire: Wire, instance_ids: InstanceIds) -> Described:
    volume = Volume.model_validate(wire)
    attachment = attachment_of(volume)
    return Described(
        volume_id=id_of(Volume.KIND, wire),
        volume=volume,
        tags=tags_of(wire),
        attachment=attachment,
        instance_id=instance_ids.of(attachment) if attachment is not None else None,
    )
