# mypy: disable-error-code="no-untyped-call"
# (libcloud ships py.typed but leaves the EC2 driver unannotated)
"""``Ec2Provider``: the ``ec2`` driver — instances, volumes, catalogue and tags over libcloud.

Where it sits: registered as ``ec2`` in ``providers.registry``; networks, subnets and
firewalls come from ``Ec2NetworkOps``. Idempotency is by the ``skybroker/token`` tag, looked up
before every create (EC2-compatible servers ignore ``ClientToken``); instances and volumes
carry their tags from birth (``TagSpecification``). libcloud's boolean returns are ignored:
no exception means the call was accepted, and state is read back by listing. Placement groups
are identified by their name (unique per account and region): ``ensure_placement_group``
looks the name up, creates what is missing (a ``Duplicate`` answer means another caller won
the race) and reads the group back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from libcloud.compute.base import Node, NodeImage, NodeSize, StorageVolume
from libcloud.compute.drivers.ec2 import (
    EC2NetworkSubnet,
    EC2NodeLocation,
    EC2PlacementGroup,
    ExEC2AvailabilityZone,
)

from controller.errors import ResourceBusyError, TerminalError, TransientError
from providers.ec2.base import LIVE_INSTANCE_STATES
from providers.ec2.driver import Ec2ApiError, ResourceRef
from providers.ec2.errors import ec2_errors, missing_ok
from providers.ec2.network import Ec2NetworkOps
from providers.errors import UnsupportedError
from providers.types import (
    CloudImage,
    CloudInstance,
    CloudPlacementGroup,
    CloudSize,
    CloudVolume,
    CloudZone,
    FirewallId,
    ImageId,
    InstanceCreate,
    InstanceId,
    InstanceState,
    NetworkId,
    PlacementStrategy,
    SizeId,
    SubnetId,
    VolumeCreate,
    VolumeId,
    VolumeState,
    ZoneName,
)

__all__ = ["Ec2Provider"]


def _enum(kind: type[InstanceState] | type[VolumeState], value: Any) -> Any:
    try:
        return kind(value)
    except ValueError:
        return kind("unknown")


def _arch(size: NodeSize) -> str:
    # A server's own type lists its architectures (x86_64 first when it allows both);
    # libcloud's AWS table names the processor.
    architectures: list[str] = size.extra.get("architectures") or []
    if architectures:
        return "x86_64" if "x86_64" in architectures else architectures[0]
    processor = str(size.extra.get("physicalProcessor", "")).lower()
    return "arm64" if "graviton" in processor else "x86_64"


class Ec2Provider(Ec2NetworkOps):
    """One EC2 account in one region (a ``CloudProvider``)."""

    # catalogue
    def list_zones(self) -> list[CloudZone]:
        with ec2_errors():
            return [
                CloudZone(ZoneName(z.name), z.region_name, z.zone_state == "available")
                for z in self.driver.ex_list_availability_zones(only_available=False)
            ]

    def list_sizes(self) -> list[CloudSize]:
        with ec2_errors():
            return [
                CloudSize(
                    id=SizeId(size.id),
                    cpu=int(size.extra.get("vcpu") or 0),
                    memory_mib=int(size.ram or 0),
                    disk_gib=int(size.disk or 0),
                    price_per_hour=float(size.price) if size.price is not None else None,
                    arch=_arch(size),
                )
                for size in self.driver.list_sizes()
            ]

    def list_images(self) -> list[CloudImage]:
        with ec2_errors():
            images = list(self.driver.list_images(ex_owner="self"))
            mapped = sorted(set(self.config.images.values()))
            if mapped:
                images += self.driver.list_images(ex_filters={"image-id": mapped})
            unique = {image.id: image for image in images}
            return [
                CloudImage(ImageId(i.id), i.name or i.id, i.extra.get("architecture") or "x86_64")
                for i in unique.values()
            ]

    # instances
    def _instance(self, node: Node) -> CloudInstance:
        extra = node.extra or {}
        tags = self.tags_of(node)
        groups: list[dict[str, str]] = extra.get("groups") or []
        return CloudInstance(
            id=InstanceId(str(node.id)),
            name=tags.get("Name", str(node.id)),
            state=_enum(InstanceState, extra.get("status")),
            size=SizeId(extra.get("instance_type") or ""),
            image=ImageId(extra.get("image_id") or ""),
            zone=ZoneName(extra["availability"]) if extra.get("availability") else None,
            subnet_id=SubnetId(extra["subnet_id"]) if extra.get("subnet_id") else None,
            network_id=NetworkId(extra["vpc_id"]) if extra.get("vpc_id") else None,
            firewall_ids=tuple(FirewallId(g["group_id"]) for g in groups if g.get("group_id")),
            private_ips=tuple(node.private_ips),
            public_ips=tuple(node.public_ips),
            tags=tags,
            placement_group=extra.get("placement_group") or None,
        )

    def _live_nodes(self, **filters: Any) -> list[Node]:
        nodes: list[Node] = self.driver.list_nodes(
            ex_filters={"instance-state-name": LIVE_INSTANCE_STATES, **filters}
        )
        return nodes

    def list_instances(self) -> list[CloudInstance]:
        with ec2_errors():
            return [self._instance(node) for node in self._live_nodes()]

    def create_instance(self, request: InstanceCreate) -> CloudInstance:
        if request.placement_group is not None and not self.placement_groups:
            raise self._no_placement_groups(request.placement_group)
        with ec2_errors():
            found = self.created_with(
                "instance", request.tags, lambda ids: self._live_nodes(**{"instance-id": ids})
            )
            if found is not None:
                return self._instance(found)
            if request.firewall_ids and not request.subnet_id:
                raise TerminalError(
                    "firewalls need a subnet",
                    reason="InvalidRequest",
                    code="InvalidParameterCombination",
                )
            kwargs: dict[str, Any] = {
                "ex_metadata": request.tags.as_dict(),
                "ex_userdata": request.user_data,
            }
            if request.subnet_id:
                kwargs["ex_subnet"] = EC2NetworkSubnet(request.subnet_id, "", "")
                kwargs["ex_security_group_ids"] = list(request.firewall_ids) or None
            elif request.zone:
                zone = ExEC2AvailabilityZone(request.zone, "available", self.region)
                kwargs["location"] = EC2NodeLocation(
                    request.zone, request.zone, "", self.driver, zone
                )
            if request.placement_group is not None:
                kwargs["ex_placement_group"] = request.placement_group
            node = self.driver.create_node(
                name=request.tags.name,
                size=NodeSize(request.size, request.size, 0, 0, 0, 0, self.driver),
                image=NodeImage(request.image, request.image, self.driver),
                **kwargs,
            )
            return self._instance(node)

    def start_instance(self, instance_id: InstanceId) -> None:
        with ec2_errors():
            self.driver.start_node(ResourceRef(instance_id))

    def stop_instance(self, instance_id: InstanceId) -> None:
        with ec2_errors():
            self.driver.stop_node(ResourceRef(instance_id))

    def delete_instance(self, instance_id: InstanceId) -> None:
        with ec2_errors(), missing_ok():
            self.driver.destroy_node(ResourceRef(instance_id))

    # volumes
    def _volume(self, vol: StorageVolume) -> CloudVolume:
        extra = vol.extra or {}
        tags = self.tags_of(vol)
        attached = (
            extra.get("instance_id") if extra.get("attachment_status") != "detached" else None
        )
        return CloudVolume(
            id=VolumeId(vol.id),
            name=tags.get("Name", vol.id),
            size_gib=int(vol.size),
            zone=ZoneName(extra.get("zone") or ""),
            state=_enum(VolumeState, extra.get("state")),
            volume_type=extra.get("volume_type") or "",
            attached_to=InstanceId(attached) if attached else None,
            device=extra.get("device") if attached else None,
            tags=tags,
        )

    def _read_volume(self, volume_id: VolumeId) -> StorageVolume:
        described = self.driver.list_volumes(ex_filters={"volume-id": volume_id})
        # The id is checked, not trusted to the filter (see ``adoptable``).
        vol: StorageVolume | None = self.first(v for v in described if v.id == volume_id)
        if vol is None:
            raise TerminalError(
                f"volume {volume_id} does not exist",
                reason="NotFound",
                code="InvalidVolume.NotFound",
            )
        return vol

    def list_volumes(self) -> list[CloudVolume]:
        with ec2_errors():
            return [self._volume(vol) for vol in self.driver.list_volumes()]

    def create_volume(self, request: VolumeCreate) -> CloudVolume:
        with ec2_errors():
            vol = self.created_with(
                "volume",
                request.tags,
                lambda ids: self.driver.list_volumes(ex_filters={"volume-id": ids}),
            ) or self.driver.ex_create_tagged_volume(
                request.size_gib, request.zone, request.volume_type, request.tags.as_dict()
            )
            return self._volume(vol)

    def attach_volume(self, volume_id: VolumeId, instance_id: InstanceId, device: str) -> None:
        with ec2_errors():
            current = self._volume(self._read_volume(volume_id))
            if current.attached_to == instance_id and current.device == device:
                return
            self.driver.attach_volume(ResourceRef(instance_id), ResourceRef(volume_id), device)

    def detach_volume(self, volume_id: VolumeId) -> None:
        with ec2_errors():
            current = self._volume(self._read_volume(volume_id))
            if current.attached_to is None:
                return
            self.driver.detach_volume(ResourceRef(volume_id), ex_instance_id=current.attached_to)

    def delete_volume(self, volume_id: VolumeId) -> None:
        with ec2_errors(), missing_ok():
            self.driver.destroy_volume(ResourceRef(volume_id))

    # placement groups
    @property
    def supports_placement_groups(self) -> bool:
        return self.placement_groups

    def _no_placement_groups(self, name: str) -> UnsupportedError:
        return UnsupportedError(
            f"account {self.account}: its endpoint has no placement groups (option "
            f"placement_groups=false; asked for {name!r})"
        )

    def _placement_group(self, group: EC2PlacementGroup) -> CloudPlacementGroup:
        extra = group.extra or {}
        tags: dict[str, str] = dict(extra.get("tags") or {})
        return CloudPlacementGroup(
            name=group.name,
            strategy=PlacementStrategy(group.strategy),
            state=extra.get("state") or "unknown",
            id=extra.get("group_id") or None,
            tags=tags,
        )

    def _placement_groups(self, name: str | None = None) -> list[CloudPlacementGroup]:
        """The groups not yet deleted (EC2 lists deleted ones for a while), all or ``name``'s
        (the name is checked, not trusted to the server's filter)."""
        filters = {"group-name": name} if name is not None else None
        return [
            group
            for group in map(self._placement_group, self.driver.ex_list_placement_groups(filters))
            if group.state != "deleted" and (name is None or group.name == name)
        ]

    def list_placement_groups(self) -> list[CloudPlacementGroup]:
        if not self.placement_groups:
            return []
        with ec2_errors():
            return self._placement_groups()

    def ensure_placement_group(
        self,
        name: str,
        strategy: PlacementStrategy,
        *,
        tags: Mapping[str, str] | None = None,
    ) -> CloudPlacementGroup:
        if not self.placement_groups:
            raise self._no_placement_groups(name)
        wanted = PlacementStrategy(strategy)
        with ec2_errors():
            group: CloudPlacementGroup | None = self.first(self._placement_groups(name))
            if group is None:
                try:
                    self.driver.ex_create_tagged_placement_group(name, wanted.value, tags or {})
                except Ec2ApiError as exc:
                    # Duplicate: made meanwhile (by another worker, or by an attempt whose
                    # answer was lost); it is read back below like a fresh one
                    if exc.code != "InvalidPlacementGroup.Duplicate":
                        raise
                group = self.first(self._placement_groups(name))
            if group is None:
                raise TransientError(
                    f"placement group {name!r} was created but is not listed yet",
                    code="NotYetVisible",
                )
            if group.state == "deleting":
                raise ResourceBusyError(
                    f"placement group {name!r} is being deleted", code="IncorrectState"
                )
            if group.strategy != wanted:
                raise TerminalError(
                    f"placement group {name!r} has strategy {group.strategy}, not {wanted}",
                    reason="InvalidRequest",
                    code="PlacementGroupStrategyMismatch",
                )
            return group

    def delete_placement_group(self, name: str) -> None:
        if not self.placement_groups:
            return
        with ec2_errors(), missing_ok():
            self.driver.ex_delete_placement_group(name)

    # tags
    def set_tags(self, resource_id: str, tags: Mapping[str, str]) -> None:
        with ec2_errors():
            self.driver.ex_create_tags(ResourceRef(resource_id), tags)

    def remove_tags(self, resource_id: str, keys: Iterable[str]) -> None:
        with ec2_errors():
            self.driver.ex_delete_tags(ResourceRef(resource_id), dict.fromkeys(keys))
