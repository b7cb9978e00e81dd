"""skybroker's own picture of cloud resources: what every provider returns and accepts.

Where it sits: between the reconcilers and the cloud adapters. Drivers translate their cloud's
objects (libcloud nodes, SQLite rows) into these frozen dataclasses and take these request
objects in; nothing above ``providers/`` ever sees a libcloud object. Every resource skybroker
creates carries three tags: ``Name``, ``skybroker/uid`` (the owning object's uid) and
``skybroker/token`` (the create token, derived from uid and generation), which make creates
idempotent and let the leak sweeper find resources whose owner is gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NewType, Protocol

from providers.rules import FirewallRule

__all__ = [
    "TAG_NAME",
    "TAG_TOKEN",
    "TAG_UID",
    "CloudFirewall",
    "CloudImage",
    "CloudInstance",
    "CloudNetwork",
    "CloudPlacementGroup",
    "CloudResource",
    "CloudSize",
    "CloudSubnet",
    "CloudVolume",
    "CloudZone",
    "FirewallCreate",
    "FirewallId",
    "FirewallRule",
    "ImageId",
    "InstanceCreate",
    "InstanceId",
    "InstanceState",
    "NetworkCreate",
    "NetworkId",
    "PlacementStrategy",
    "ResourceKind",
    "ResourceTags",
    "SizeId",
    "SubnetCreate",
    "SubnetId",
    "Tagged",
    "VolumeCreate",
    "VolumeId",
    "VolumeState",
    "ZoneName",
]

TAG_NAME = "Name"
TAG_UID = "skybroker/uid"
TAG_TOKEN = "skybroker/token"

InstanceId = NewType("InstanceId", str)
NetworkId = NewType("NetworkId", str)
SubnetId = NewType("SubnetId", str)
FirewallId = NewType("FirewallId", str)
VolumeId = NewType("VolumeId", str)
ImageId = NewType("ImageId", str)
SizeId = NewType("SizeId", str)
ZoneName = NewType("ZoneName", str)


class ResourceKind(StrEnum):
    """The kinds of cloud resource a provider manages (also the inventory's partitions)."""

    INSTANCE = "instance"
    NETWORK = "network"
    SUBNET = "subnet"
    FIREWALL = "firewall"
    VOLUME = "volume"


class InstanceState(StrEnum):
    """EC2's instance life cycle, which the simulated cloud copies."""

    PENDING = "pending"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    SHUTTING_DOWN = "shutting-down"
    TERMINATED = "terminated"
    UNKNOWN = "unknown"


class VolumeState(StrEnum):
    """EC2's volume life cycle (``in-use`` = attached)."""

    CREATING = "creating"
    AVAILABLE = "available"
    IN_USE = "in-use"
    DELETING = "deleting"
    ERROR = "error"
    UNKNOWN = "unknown"


class PlacementStrategy(StrEnum):
    """How a placement group spreads its instances over the cloud's hardware (``host`` topology).

    ``spread``: each instance on distinct hardware (AntiAffinity); ``cluster``: packed close
    together in one zone for low latency (Proximity). ``partition`` groups are listed as the
    cloud has them, never made by skybroker.
    """

    SPREAD = "spread"
    CLUSTER = "cluster"
    PARTITION = "partition"


@dataclass(frozen=True)
class ResourceTags:
    """The tags skybroker puts on a resource it creates: ownership, create token, name, extras."""

    name: str
    uid: str
    token: str
    extra: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, str]:
        """All tags as the cloud stores them (the three skybroker tags win over extras)."""
        tags = dict(self.extra)
        tags.update({TAG_NAME: self.name, TAG_UID: self.uid, TAG_TOKEN: self.token})
        return tags


class _TagView:
    """Accessors shared by every resource for the tags skybroker reads back."""

    tags: Mapping[str, str]

    @property
    def uid(self) -> str | None:
        """The owning object's uid, or None when skybroker does not manage the resource."""
        return self.tags.get(TAG_UID)

    @property
    def token(self) -> str | None:
        """The create token the resource was made with."""
        return self.tags.get(TAG_TOKEN)


class Tagged(Protocol):
    """What the inventory and the leak sweeper need from any resource."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def tags(self) -> Mapping[str, str]: ...

    @property
    def uid(self) -> str | None: ...

    @property
    def token(self) -> str | None: ...


@dataclass(frozen=True)
class CloudInstance(_TagView):
    id: InstanceId
    name: str
    state: InstanceState
    size: SizeId
    image: ImageId
    zone: ZoneName | None
    subnet_id: SubnetId | None = None
    network_id: NetworkId | None = None
    firewall_ids: tuple[FirewallId, ...] = ()
    private_ips: tuple[str, ...] = ()
    public_ips: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)
    placement_group: str | None = None
    """The placement group the instance was launched in, as the cloud reports it."""


@dataclass(frozen=True)
class CloudNetwork(_TagView):
    id: NetworkId
    name: str
    cidr: str
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class CloudSubnet(_TagView):
    id: SubnetId
    name: str
    network_id: NetworkId
    cidr: str
    zone: ZoneName
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class CloudFirewall(_TagView):
    """A security group; ``rules`` is its complete, canonical rule set (see ``rules.py``)."""

    id: FirewallId
    name: str
    network_id: NetworkId | None
    rules: frozenset[FirewallRule]
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class CloudVolume(_TagView):
    id: VolumeId
    name: str
    size_gib: int
    zone: ZoneName
    state: VolumeState
    volume_type: str
    attached_to: InstanceId | None = None
    device: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class CloudPlacementGroup(_TagView):
    """A placement group: named (unique per account and region), with its strategy.

    ``state`` is the cloud's (EC2: ``pending``, ``available``, ``deleting``, ``deleted``).
    """

    name: str
    strategy: PlacementStrategy
    state: str
    id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class CloudSize:
    """An instance type; placement matches HardwareProfiles against these."""

    id: SizeId
    cpu: int
    memory_mib: int
    disk_gib: int
    price_per_hour: float | None
    arch: str


@dataclass(frozen=True)
class CloudImage:
    id: ImageId
    name: str
    arch: str


@dataclass(frozen=True)
class CloudZone:
    name: ZoneName
    region: str
    available: bool = True


CloudResource = CloudInstance | CloudNetwork | CloudSubnet | CloudFirewall | CloudVolume


@dataclass(frozen=True)
class InstanceCreate:
    """Everything needed to create an instance; creating twice with one token adopts."""

    tags: ResourceTags
    size: SizeId
    image: ImageId
    zone: ZoneName | None = None
    subnet_id: SubnetId | None = None
    firewall_ids: tuple[FirewallId, ...] = ()
    #: Out of the repr: it may be a boot string (its secret) or carry credentials.
    user_data: str | None = field(default=None, repr=False)
    placement_group: str | None = None
    """Launch inside this placement group (``ensure_placement_group`` made it); only on
    providers whose ``supports_placement_groups`` is true."""


@dataclass(frozen=True)
class NetworkCreate:
    tags: ResourceTags
    cidr: str


@dataclass(frozen=True)
class SubnetCreate:
    tags: ResourceTags
    network_id: NetworkId
    cidr: str
    zone: ZoneName


@dataclass(frozen=True)
class FirewallCreate:
    """A firewall in ``network_id`` holding exactly ``rules`` (cloud default rules revoked)."""

    tags: ResourceTags
    network_id: NetworkId
    rules: frozenset[FirewallRule] = frozenset()
    description: str = "managed by skybroker"


@dataclass(frozen=True)
class VolumeCreate:
    tags: ResourceTags
    size_gib: int
    zone: ZoneName
    volume_type: str = "gp3"
