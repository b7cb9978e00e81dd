# mypy: disable-error-code="no-untyped-call"
# (libcloud ships py.typed but leaves the EC2 driver unannotated)
"""EC2 networks (VPCs), subnets and firewalls (VPC security groups) for ``Ec2Provider``.

Where it sits: the network half of the EC2 adapter. A Subnet's ``network`` is a VPC; a
Firewall is a security group in that VPC, named ``{name}.{token}`` so that firewalls of the
same name from different namespaces never collide. Rule changes read the group first and send
only what is missing or present (so a retried change is a no-op), batched per direction.

A network's token is shared by every same-named subnet of a namespace, so several workers may
create it at once; EC2 has no conditional create, so this provider serialises the token lookup
and the CreateVpc (one provider object serves every worker of an account): the first creates,
the others adopt. Other tokens belong to one object, which one worker reconciles at a time.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from libcloud.compute.drivers.ec2 import EC2Network, EC2NetworkSubnet, EC2SecurityGroup

from controller.errors import TerminalError
from providers.config import AccountConfig
from providers.ec2.base import Ec2Base
from providers.ec2.driver import IpPermission
from providers.ec2.errors import ec2_errors, missing_ok
from providers.rules import Direction, FirewallRule, IpProtocol, diff_rules
from providers.types import (
    CloudFirewall,
    CloudNetwork,
    CloudSubnet,
    FirewallCreate,
    FirewallId,
    NetworkCreate,
    NetworkId,
    SubnetCreate,
    SubnetId,
    ZoneName,
)

__all__ = ["Ec2NetworkOps"]

_ACTIONS = {
    (True, Direction.INGRESS): "AuthorizeSecurityGroupIngress",
    (True, Direction.EGRESS): "AuthorizeSecurityGroupEgress",
    (False, Direction.INGRESS): "RevokeSecurityGroupIngress",
    (False, Direction.EGRESS): "RevokeSecurityGroupEgress",
}


def _port(value: Any) -> int | None:
    if value in (None, ""):
        return None
    port = int(value)
    return None if port < 0 else port


def _rules(direction: Direction, permissions: Iterable[dict[str, Any]]) -> set[FirewallRule]:
    rules: set[FirewallRule] = set()
    for perm in permissions:
        raw = str(perm.get("protocol") or "-1").lower()
        protocol = IpProtocol.ALL if raw in ("-1", "all") else IpProtocol(raw)
        low, high = _port(perm.get("from_port")), _port(perm.get("to_port"))
        if protocol is IpProtocol.ALL or low is None or high is None:
            low = high = None
        rules.update(FirewallRule(direction, protocol, low, high, c) for c in perm["cidr_ips"])
    return rules


def _permissions(rules: Iterable[FirewallRule]) -> dict[Direction, list[IpPermission]]:
    grouped: dict[tuple[Direction, IpProtocol, int | None, int | None], list[str]] = defaultdict(
        list
    )
    for rule in sorted(rules):
        grouped[(rule.direction, rule.protocol, rule.port_from, rule.port_to)].append(rule.cidr)
    out: dict[Direction, list[IpPermission]] = defaultdict(list)
    for (direction, protocol, low, high), cidrs in grouped.items():
        proto = "-1" if protocol is IpProtocol.ALL else protocol.value
        if protocol is IpProtocol.ICMP and low is None:
            low = high = -1
        out[direction].append(IpPermission(proto, low, high, tuple(cidrs)))
    return out


class Ec2NetworkOps(Ec2Base):
    """Networks, subnets and firewalls of one EC2 account."""

    def __init__(self, config: AccountConfig) -> None:
        super().__init__(config)
        self._network_creation = threading.Lock()

    # networks
    def _network(self, net: EC2Network) -> CloudNetwork:
        tags = self.tags_of(net)
        return CloudNetwork(NetworkId(net.id), tags.get("Name", net.id), net.cidr_block, tags)

    def list_networks(self) -> list[CloudNetwork]:
        with ec2_errors():
            return [self._network(net) for net in self.driver.ex_list_networks()]

    def create_network(self, request: NetworkCreate) -> CloudNetwork:
        with ec2_errors(), self._network_creation:
            net = self.created_with(
                "vpc",
                request.tags,
                lambda ids: self.driver.ex_list_networks(filters={"vpc-id": ids}),
            ) or self.driver.ex_create_tagged_network(request.cidr, request.tags.as_dict())
            return self._network(net)

    def delete_network(self, network_id: NetworkId) -> None:
        with ec2_errors(), missing_ok():
            self.driver.ex_delete_network(EC2Network(network_id, "", ""))

    # subnets
    def _subnet(self, sub: EC2NetworkSubnet) -> CloudSubnet:
        tags = self.tags_of(sub)
        return CloudSubnet(
            id=SubnetId(sub.id),
            name=tags.get("Name", sub.id),
            network_id=NetworkId(sub.extra["vpc_id"]),
            cidr=sub.extra["cidr_block"],
            zone=ZoneName(sub.extra["zone"]),
            tags=tags,
        )

    def list_subnets(self) -> list[CloudSubnet]:
        with ec2_errors():
            return [self._subnet(sub) for sub in self.driver.ex_list_subnets()]

    def create_subnet(self, request: SubnetCreate) -> CloudSubnet:
        with ec2_errors():
            sub = self.created_with(
                "subnet",
                request.tags,
                lambda ids: self.driver.ex_list_subnets(filters={"subnet-id": ids}),
            ) or self.driver.ex_create_tagged_subnet(
                request.network_id, request.cidr, request.zone, request.tags.as_dict()
            )
            return self._subnet(sub)

    def delete_subnet(self, subnet_id: SubnetId) -> None:
        with ec2_errors(), missing_ok():
            self.driver.ex_delete_subnet(EC2NetworkSubnet(subnet_id, "", ""))

    # firewalls
    def _firewall(self, group: EC2SecurityGroup) -> CloudFirewall:
        tags = self.tags_of(group)
        rules = _rules(Direction.INGRESS, group.ingress_rules)
        rules |= _rules(Direction.EGRESS, group.egress_rules)
        vpc_id = group.extra.get("vpc_id")
        return CloudFirewall(
            id=FirewallId(group.id),
            name=tags.get("Name", group.name),
            network_id=NetworkId(vpc_id) if vpc_id else None,
            rules=frozenset(rules),
            tags=tags,
        )

    def _group(self, firewall_id: FirewallId) -> CloudFirewall:
        group = self.first(self.driver.ex_get_security_groups(group_ids=[firewall_id]))
        if group is None:  # EC2 answers NotFound itself; an empty answer means the same
            raise TerminalError(
                f"security group {firewall_id} does not exist",
                reason="NotFound",
                code="InvalidGroup.NotFound",
            )
        return self._firewall(group)

    def list_firewalls(self) -> list[CloudFirewall]:
        with ec2_errors():
            return [self._firewall(group) for group in self.driver.ex_get_security_groups()]

    def create_firewall(self, request: FirewallCreate) -> CloudFirewall:
        with ec2_errors():
            tags = request.tags
            found = self.created_with(
                "security-group",
                tags,
                lambda ids: self.driver.ex_get_security_groups(filters={"group-id": ids}),
            )
            group_id = FirewallId(found.id) if found is not None else None
            if group_id is None:
                group_id = FirewallId(
                    self.driver.ex_create_tagged_security_group(
                        f"{tags.name}.{tags.token}"[:255],
                        request.description,
                        request.network_id,
                        tags.as_dict(),
                    )
                )
            current = self._firewall(found) if found is not None else self._group(group_id)
            change = diff_rules(current.rules, request.rules)
            if not change:
                return current
            self._apply(group_id, change.authorize, change.revoke)
            return self._group(group_id)

    def update_firewall_rules(
        self,
        firewall_id: FirewallId,
        *,
        authorize: Iterable[FirewallRule] = (),
        revoke: Iterable[FirewallRule] = (),
    ) -> None:
        with ec2_errors():
            current = self._group(firewall_id).rules
            self._apply(firewall_id, frozenset(authorize) - current, frozenset(revoke) & current)

    def _apply(
        self,
        group_id: FirewallId,
        authorize: Iterable[FirewallRule],
        revoke: Iterable[FirewallRule],
    ) -> None:
        for grant, rules in ((False, revoke), (True, authorize)):
            for direction, permissions in _permissions(rules).items():
                self.driver.ex_change_rules(_ACTIONS[(grant, direction)], group_id, permissions)

    def delete_firewall(self, firewall_id: FirewallId) -> None:
        with ec2_errors(), missing_ok():
            self.driver.ex_delete_security_group_by_id(firewall_id)
