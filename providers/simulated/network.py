"""The simulated cloud's networks (VPCs), subnets and firewalls (security groups).

Where it sits: the network half of ``SimulatedProvider``. It enforces what EC2 enforces, so
reconcilers meet the same errors on both drivers: CIDRs inside their network and not
overlapping (``InvalidSubnet.Range`` / ``.Conflict``), no delete while something depends on
the resource (``DependencyViolation``), idempotent rule changes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from providers.rules import Direction, FirewallRule, IpProtocol
from providers.simulated.base import SimBase
from providers.simulated.faults import sim_error
from providers.simulated.store import Row
from providers.types import (
    CloudFirewall,
    CloudNetwork,
    CloudSubnet,
    FirewallCreate,
    FirewallId,
    NetworkCreate,
    NetworkId,
    ResourceKind,
    SubnetCreate,
    SubnetId,
    ZoneName,
)

__all__ = ["NetworkOps"]

NET = ResourceKind.NETWORK
SUBNET = ResourceKind.SUBNET
FIREWALL = ResourceKind.FIREWALL


def _network(row: Row) -> CloudNetwork:
    return CloudNetwork(NetworkId(row.id), row.tags.get("Name", row.id), row.data["cidr"], row.tags)


def _subnet(row: Row) -> CloudSubnet:
    return CloudSubnet(
        id=SubnetId(row.id),
        name=row.tags.get("Name", row.id),
        network_id=NetworkId(row.data["network_id"]),
        cidr=row.data["cidr"],
        zone=ZoneName(row.data["zone"]),
        tags=row.tags,
    )


def _encode_rules(rules: Iterable[FirewallRule]) -> list[list[object]]:
    return [
        [r.direction.value, r.protocol.value, r.port_from, r.port_to, r.cidr] for r in sorted(rules)
    ]


def _decode_rules(data: list[list[object]]) -> frozenset[FirewallRule]:
    return frozenset(
        FirewallRule(Direction(str(d)), IpProtocol(str(p)), _port(lo), _port(hi), str(cidr))
        for d, p, lo, hi, cidr in data
    )


def _port(value: object) -> int | None:
    return None if value is None else int(str(value))


def _firewall(row: Row) -> CloudFirewall:
    return CloudFirewall(
        id=FirewallId(row.id),
        name=row.tags.get("Name", row.id),
        network_id=NetworkId(row.data["network_id"]),
        rules=_decode_rules(row.data["rules"]),
        tags=row.tags,
    )


def _parse_cidr(cidr: str, code: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(cidr, strict=True)
    except ValueError:
        raise sim_error(code, f"the CIDR {cidr!r} is invalid") from None
    if not isinstance(net, ipaddress.IPv4Network) or not 16 <= net.prefixlen <= 28:
        raise sim_error(code, f"the CIDR {cidr!r} is invalid (want IPv4, /16 to /28)")
    return net


class NetworkOps(SimBase):
    """Networks, subnets and firewalls of one simulated account."""

    # networks
    def list_networks(self) -> list[CloudNetwork]:
        with self.faults.around("list_networks"):
            return [_network(row) for row in self.live_rows(NET)]

    def create_network(self, request: NetworkCreate) -> CloudNetwork:
        with self.faults.around("create_network"):
            _parse_cidr(request.cidr, "InvalidVpc.Range")
            with self.store.transaction() as conn:
                row = self.adopt(conn, NET, request.tags.token)
                if row is None:
                    row = self.new_row(NET, request.tags, {"cidr": request.cidr})
                    self.scope.put(conn, row)
            return _network(row)

    def delete_network(self, network_id: NetworkId) -> None:
        with self.faults.around("delete_network"), self.store.transaction() as conn:
            if self.live(self.scope.get(conn, network_id), NET) is None:
                return
            if any(
                self.live(r, SUBNET) or self.live(r, FIREWALL)
                for r in self.scope.by_ref(conn, network_id)
            ):
                raise sim_error("DependencyViolation", f"network {network_id} has dependencies")
            self.scope.delete(conn, network_id)

    # subnets
    def list_subnets(self) -> list[CloudSubnet]:
        with self.faults.around("list_subnets"):
            return [_subnet(row) for row in self.live_rows(SUBNET)]

    def create_subnet(self, request: SubnetCreate) -> CloudSubnet:
        with self.faults.around("create_subnet"):
            cidr = _parse_cidr(request.cidr, "InvalidSubnet.Range")
            zone = self.check_zone(request.zone)
            with self.store.transaction() as conn:
                row = self.adopt(conn, SUBNET, request.tags.token)
                if row is not None:
                    return _subnet(row)
                network = self.require(conn, NET, request.network_id)
                if not cidr.subnet_of(ipaddress.IPv4Network(network.data["cidr"])):
                    raise sim_error("InvalidSubnet.Range", f"the CIDR {request.cidr!r} is invalid")
                for sibling in self.scope.by_ref(conn, network.id):
                    if sibling.kind == SUBNET.value and cidr.overlaps(
                        ipaddress.IPv4Network(sibling.data["cidr"])
                    ):
                        raise sim_error(
                            "InvalidSubnet.Conflict", f"the CIDR {request.cidr!r} conflicts"
                        )
                data = {
                    "network_id": network.id,
                    "cidr": request.cidr,
                    "zone": zone,
                    "allocated": 0,
                }
                row = self.new_row(SUBNET, request.tags, data)
                row.ref = network.id
                self.scope.put(conn, row)
            return _subnet(row)

    def delete_subnet(self, subnet_id: SubnetId) -> None:
        with self.faults.around("delete_subnet"), self.store.transaction() as conn:
            if self.live(self.scope.get(conn, subnet_id), SUBNET) is None:
                return
            if any(self.live(r, ResourceKind.INSTANCE) for r in self.scope.by_ref(conn, subnet_id)):
                raise sim_error("DependencyViolation", f"subnet {subnet_id} has instances")
            self.scope.delete(conn, subnet_id)

    # firewalls
    def list_firewalls(self) -> list[CloudFirewall]:
        with self.faults.around("list_firewalls"):
            return [_firewall(row) for row in self.live_rows(FIREWALL)]

    def create_firewall(self, request: FirewallCreate) -> CloudFirewall:
        with self.faults.around("create_firewall"), self.store.transaction() as conn:
            row = self.adopt(conn, FIREWALL, request.tags.token)
            if row is None:
                network = self.require(conn, NET, request.network_id)
                data = {"network_id": network.id, "rules": _encode_rules(request.rules)}
                row = self.new_row(FIREWALL, request.tags, data)
                row.ref = network.id
                self.scope.put(conn, row)
        return _firewall(row)

    def update_firewall_rules(
        self,
        firewall_id: FirewallId,
        *,
        authorize: Iterable[FirewallRule] = (),
        revoke: Iterable[FirewallRule] = (),
    ) -> None:
        with self.faults.around("update_firewall_rules"), self.store.transaction() as conn:
            row = self.require(conn, FIREWALL, firewall_id)
            rules = (_decode_rules(row.data["rules"]) - frozenset(revoke)) | frozenset(authorize)
            row.data["rules"] = _encode_rules(rules)
            self.scope.put(conn, row)

    def delete_firewall(self, firewall_id: FirewallId) -> None:
        with self.faults.around("delete_firewall"), self.store.transaction() as conn:
            if self.live(self.scope.get(conn, firewall_id), FIREWALL) is None:
                return
            users = self.scope.mentioning(conn, ResourceKind.INSTANCE.value, firewall_id)
            if any(self.live(r, ResourceKind.INSTANCE) for r in users):
                raise sim_error("DependencyViolation", f"firewall {firewall_id} is in use")
            self.scope.delete(conn, firewall_id)
