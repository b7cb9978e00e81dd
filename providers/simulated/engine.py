"""``SimulatedProvider``: the embedded default cloud — instances and volumes on top of SQLite.

Where it sits: registered as the ``simulated`` driver in ``providers.registry``; used
in-process by tests, by ``skybroker up`` and by the convergence benchmark. It behaves like a
small EC2: instances go pending → running (and stopping → stopped, shutting-down →
terminated) on the clock, volumes go creating → available, provider-side quotas and per-zone
capacity are enforced in the same transaction as the create, and every create adopts an
existing resource with the same ``skybroker/token`` instead of making a second one.
"""

from __future__ import annotations

import ipaddress
import sqlite3
import zlib
from typing import Any

from providers.simulated.faults import sim_error
from providers.simulated.network import NetworkOps
from providers.simulated.store import Row
from providers.types import (
    CloudInstance,
    CloudVolume,
    FirewallId,
    ImageId,
    InstanceCreate,
    InstanceId,
    InstanceState,
    NetworkId,
    ResourceKind,
    SizeId,
    SubnetId,
    VolumeCreate,
    VolumeId,
    VolumeState,
    ZoneName,
)

__all__ = ["SimulatedProvider"]

INSTANCE = ResourceKind.INSTANCE
VOLUME = ResourceKind.VOLUME
SUBNET = ResourceKind.SUBNET
FIREWALL = ResourceKind.FIREWALL

_TERMINATED_KEPT_SECONDS = 60.0
_MAX_VOLUME_GIB = 16384


class SimulatedProvider(NetworkOps):
    """One simulated account in one region (a ``CloudProvider``)."""

    # instances
    def _instance(self, row: Row) -> CloudInstance:
        data = row.data
        return CloudInstance(
            id=InstanceId(row.id),
            name=row.tags.get("Name", row.id),
            state=InstanceState(row.effective_state(self.clock.now())),
            size=SizeId(data["size"]),
            image=ImageId(data["image"]),
            zone=ZoneName(data["zone"]),
            subnet_id=SubnetId(data["subnet_id"]) if data["subnet_id"] else None,
            network_id=NetworkId(data["network_id"]) if data["network_id"] else None,
            firewall_ids=tuple(FirewallId(f) for f in data["firewall_ids"]),
            private_ips=(data["private_ip"],),
            tags=row.tags,
        )

    def list_instances(self) -> list[CloudInstance]:
        with self.faults.around("list_instances"):
            return [self._instance(row) for row in self.live_rows(INSTANCE)]

    def create_instance(self, request: InstanceCreate) -> CloudInstance:
        if request.placement_group is not None:
            raise self.unsupported_placement_group(request.placement_group)
        with self.faults.around("create_instance"):
            size = self.sizes.get(request.size)
            if size is None:
                raise sim_error("InvalidInstanceType", f"unknown size {request.size!r}")
            image = self.images.get(request.image)
            if image is None:
                raise sim_error(
                    "InvalidAMIID.NotFound", f"the image {request.image!r} does not exist"
                )
            if image.arch != size.arch:
                raise sim_error(
                    "InvalidParameterValue",
                    f"image {image.id} is {image.arch} but size {size.id} is {size.arch}",
                )
            with self.store.transaction() as conn:
                row = self.adopt(conn, INSTANCE, request.tags.token)
                if row is None:
                    row = self._launch(conn, request, size.cpu)
            return self._instance(row)

    def _launch(self, conn: sqlite3.Connection, request: InstanceCreate, cpu: int) -> Row:
        subnet = self.require(conn, SUBNET, request.subnet_id) if request.subnet_id else None
        if subnet is not None:
            zone = ZoneName(subnet.data["zone"])
            if request.zone and request.zone != zone:
                raise sim_error("InvalidParameterValue", f"subnet {subnet.id} is in {zone}")
        else:
            zone = self.check_zone(request.zone or self.zones[0].name)
        if request.firewall_ids and subnet is None:
            raise sim_error("InvalidParameterCombination", "firewalls need a subnet")
        for firewall_id in request.firewall_ids:
            firewall = self.require(conn, FIREWALL, firewall_id)
            if subnet is not None and firewall.data["network_id"] != subnet.data["network_id"]:
                raise sim_error(
                    "InvalidParameter", f"firewall {firewall_id} is not in the subnet's network"
                )
        usage = self.scope.usage(conn, self.account_scope())
        if usage.instances + 1 > self.options.quota_instances:
            raise sim_error("InstanceLimitExceeded", "instance quota of the account reached")
        if usage.vcpus + cpu > self.options.quota_vcpus:
            raise sim_error("VcpuLimitExceeded", "vCPU quota of the account reached")
        zone_scope = self.zone_scope(self.region, zone)
        if self.scope.usage(conn, zone_scope).vcpus + cpu > self.options.zone_capacity_vcpus:
            raise sim_error("InsufficientInstanceCapacity", f"no capacity left in {zone}")
        data: dict[str, Any] = {
            "size": request.size,
            "image": request.image,
            "zone": zone,
            "cpu": cpu,
            "subnet_id": subnet.id if subnet else None,
            "network_id": subnet.data["network_id"] if subnet else None,
            "firewall_ids": list(request.firewall_ids),
            "user_data": request.user_data,
        }
        row = self.new_row(INSTANCE, request.tags, data)
        row.data["private_ip"] = self._allocate_ip(conn, subnet, row.id)
        row.ref = subnet.id if subnet else None
        row.transition("pending", "running", self.due(self.options.boot_seconds))
        self.scope.put(conn, row)
        self.scope.add_usage(conn, self.account_scope(), instances=1, vcpus=cpu)
        self.scope.add_usage(conn, zone_scope, vcpus=cpu)
        return row

    def _allocate_ip(self, conn: sqlite3.Connection, subnet: Row | None, rid: str) -> str:
        if subnet is None:  # the account's default network
            return str(ipaddress.IPv4Address("172.31.0.4") + zlib.crc32(rid.encode()) % 65000)
        network = ipaddress.IPv4Network(subnet.data["cidr"])
        subnet.data["allocated"] += 1
        if subnet.data["allocated"] > network.num_addresses - 5:  # AWS reserves five
            raise sim_error("InsufficientFreeAddressesInSubnet", f"subnet {subnet.id} is full")
        self.scope.put(conn, subnet)
        return str(network.network_address + 3 + subnet.data["allocated"])

    def start_instance(self, instance_id: InstanceId) -> None:
        self._power(instance_id, "start_instance", start=True)

    def stop_instance(self, instance_id: InstanceId) -> None:
        self._power(instance_id, "stop_instance", start=False)

    def _power(self, instance_id: InstanceId, op: str, *, start: bool) -> None:
        with self.faults.around(op), self.store.transaction() as conn:
            row = self.require(conn, INSTANCE, instance_id)
            state = row.effective_state(self.clock.now())
            settled, moving = ("running", "pending") if start else ("stopped", "stopping")
            if state in (settled, moving):
                return
            if state != ("stopped" if start else "running"):
                raise sim_error("IncorrectInstanceState", f"instance {instance_id} is {state}")
            delay = self.options.boot_seconds if start else self.options.stop_seconds
            row.transition(moving, settled, self.due(delay))
            self.scope.put(conn, row)

    def delete_instance(self, instance_id: InstanceId) -> None:
        with self.faults.around("delete_instance"), self.store.transaction() as conn:
            row = self.live(self.scope.get(conn, instance_id), INSTANCE)
            if row is None:
                return
            if row.effective_state(self.clock.now()) == "shutting-down":
                return
            cpu = int(row.data["cpu"])
            self.scope.add_usage(conn, self.account_scope(), instances=-1, vcpus=-cpu)
            self.scope.add_usage(conn, self.zone_scope(self.region, row.data["zone"]), vcpus=-cpu)
            for volume in self.scope.by_ref(conn, instance_id):
                if volume.kind == VOLUME.value:
                    self._detached(volume)
                    self.scope.put(conn, volume)
            due = self.due(self.options.terminate_seconds)
            if due is None:
                self.scope.delete(conn, instance_id)
            else:
                row.transition("shutting-down", "terminated", due)
                self.scope.put(conn, row)
            self.scope.purge_terminated(conn, self.clock.now() - _TERMINATED_KEPT_SECONDS)

    # volumes
    def _volume(self, row: Row) -> CloudVolume:
        data = row.data
        return CloudVolume(
            id=VolumeId(row.id),
            name=row.tags.get("Name", row.id),
            size_gib=int(data["size_gib"]),
            zone=ZoneName(data["zone"]),
            state=VolumeState(row.effective_state(self.clock.now())),
            volume_type=data["volume_type"],
            attached_to=InstanceId(data["attached_to"]) if data.get("attached_to") else None,
            device=data.get("device"),
            tags=row.tags,
        )

    def list_volumes(self) -> list[CloudVolume]:
        with self.faults.around("list_volumes"):
            return [self._volume(row) for row in self.live_rows(VOLUME)]

    def create_volume(self, request: VolumeCreate) -> CloudVolume:
        with self.faults.around("create_volume"):
            zone = self.check_zone(request.zone)
            if not 1 <= request.size_gib <= _MAX_VOLUME_GIB:
                raise sim_error("InvalidParameterValue", f"volume size {request.size_gib} GiB")
            with self.store.transaction() as conn:
                row = self.adopt(conn, VOLUME, request.tags.token)
                if row is None:
                    if (
                        self.scope.usage(conn, self.account_scope()).volumes
                        >= self.options.quota_volumes
                    ):
                        raise sim_error(
                            "VolumeLimitExceeded", "volume quota of the account reached"
                        )
                    data = {
                        "size_gib": request.size_gib,
                        "zone": zone,
                        "volume_type": request.volume_type,
                    }
                    row = self.new_row(VOLUME, request.tags, data)
                    row.transition("creating", "available", self.due(self.options.volume_seconds))
                    self.scope.put(conn, row)
                    self.scope.add_usage(conn, self.account_scope(), volumes=1)
            return self._volume(row)

    def attach_volume(self, volume_id: VolumeId, instance_id: InstanceId, device: str) -> None:
        with self.faults.around("attach_volume"), self.store.transaction() as conn:
            volume = self.require(conn, VOLUME, volume_id)
            instance = self.require(conn, INSTANCE, instance_id)
            if (
                volume.data.get("attached_to") == instance_id
                and volume.data.get("device") == device
            ):
                return
            now = self.clock.now()
            if volume.effective_state(now) != "available":
                code = "VolumeInUse" if volume.data.get("attached_to") else "IncorrectState"
                raise sim_error(code, f"volume {volume_id} is {volume.effective_state(now)}")
            if volume.data["zone"] != instance.data["zone"]:
                raise sim_error(
                    "InvalidVolume.ZoneMismatch", f"volume {volume_id} is in another zone"
                )
            state = instance.effective_state(now)
            if state not in ("running", "stopped"):
                raise sim_error("IncorrectInstanceState", f"instance {instance_id} is {state}")
            if any(v.data.get("device") == device for v in self.scope.by_ref(conn, instance_id)):
                raise sim_error("InvalidParameterValue", f"device {device} is already in use")
            volume.data.update(attached_to=instance_id, device=device)
            volume.ref = instance_id
            volume.transition("in-use")
            self.scope.put(conn, volume)

    def _detached(self, volume: Row) -> None:
        volume.data.update(attached_to=None, device=None)
        volume.ref = None
        volume.transition("available")

    def detach_volume(self, volume_id: VolumeId) -> None:
        with self.faults.around("detach_volume"), self.store.transaction() as conn:
            volume = self.require(conn, VOLUME, volume_id)
            if volume.data.get("attached_to"):
                self._detached(volume)
                self.scope.put(conn, volume)

    def delete_volume(self, volume_id: VolumeId) -> None:
        with self.faults.around("delete_volume"), self.store.transaction() as conn:
            volume = self.live(self.scope.get(conn, volume_id), VOLUME)
            if volume is None:
                return
            if volume.data.get("attached_to"):
                raise sim_error("VolumeInUse", f"volume {volume_id} is attached")
            self.scope.delete(conn, volume_id)
            self.scope.add_usage(conn, self.account_scope(), volumes=-1)
