"""Volume: a block device drawn from a pool (or one account), optionally attached.

Where it sits: pure data, namespaced. The volume reconciler places it like an instance, creates
it through the provider, and attaches it once the instance named in ``spec.attachTo`` is
Running in the same zone (it waits until then); ``status.attachedTo`` reports the attachment
that exists in the cloud.

Phases (free-form ``status.phase``, by convention): Pending, Scheduled, Provisioning,
Available, Attached, Failed, Deleting.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from api_types.common import DiskGiB, ObjectName, PlacedStatus, ProviderToken, TargetSpec
from api_types.meta import Resource, Scope, WireModel

__all__ = [
    "DEFAULT_VOLUME_TYPE",
    "Volume",
    "VolumeAttachment",
    "VolumeAttachmentStatus",
    "VolumeSpec",
    "VolumeStatus",
]

#: The volume type made when ``spec.type`` is absent (the volume reconciler asks the cloud for
#: it; the EC2 front door reports it as the volume's ``volumeType``).
DEFAULT_VOLUME_TYPE = "gp3"


class VolumeAttachment(WireModel):
    """Which instance (same namespace) to attach to, and as which device."""

    instance: ObjectName = Field(description="Instance in the same namespace.")
    device: ProviderToken = Field(description="Device name, e.g. /dev/sdf.")


class VolumeSpec(TargetSpec):
    size_gib: DiskGiB = Field(alias="sizeGiB", description="Size in GiB (1 to 65536).")
    type: ProviderToken | None = Field(
        None, description="Provider volume type (e.g. gp3); absent = the provider's default."
    )
    zone: ProviderToken | None = Field(
        None, description="Zone; absent = chosen at placement (the instance's, if attached)."
    )
    attach_to: VolumeAttachment | None = Field(
        None, description="Attach to this instance once it is Running in the same zone."
    )


class VolumeAttachmentStatus(WireModel):
    """The attachment as observed in the cloud."""

    instance: str = Field(description="Instance name.")
    device: str = Field(description="Device name.")
    provider_id: str | None = Field(
        None, alias="providerID", description="The cloud's id of the instance."
    )


class VolumeStatus(PlacedStatus):
    attached_to: VolumeAttachmentStatus | None = Field(
        None, description="Current attachment, if any."
    )


class Volume(Resource):
    """A block storage volume."""

    KIND: ClassVar[str] = "Volume"
    PLURAL: ClassVar[str] = "volumes"
    SCOPE: ClassVar[Scope] = Scope.NAMESPACED
    HAS_STATUS: ClassVar[bool] = True

    kind: Literal["Volume"] = Field("Volume", description="Volume.")
    spec: VolumeSpec = Field(description="Pool or account, size, type, zone, attachment.")
    status: VolumeStatus = Field(
        default_factory=VolumeStatus, description="Placement, provider id and attachment."
    )
