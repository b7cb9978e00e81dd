"""Network kinds: Subnet (a CIDR inside a named network/VPC) and Firewall (ordered rules).

Where it sits: pure data, namespaced. The subnet reconciler places a subnet like an instance
(pool or account) and creates the network on first use; instances referencing a subnet are
placed where it is. A Firewall is logical: it is realised in every account/network where a
referencing instance lives, and rule changes are applied as a diff (authorize/revoke).

Firewall ``ports`` rule, chosen and enforced: required for ``tcp`` and ``udp`` (a single port
``"80"`` or an inclusive range ``"8000-8100"``, always a string); forbidden for ``icmp`` and
``all``, which have no ports — a manifest that gives them is rejected rather than silently
widened or narrowed.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field, StrictStr, model_validator

from api_types.common import (
    Cidr,
    ObjectName,
    PlacedStatus,
    ProviderToken,
    TargetSpec,
    field_error,
)
from api_types.meta import Resource, Scope, Status, WireEnum, WireModel
from api_types.validation import validate_cidr_within, validate_port_range

__all__ = [
    "Firewall",
    "FirewallRealisation",
    "FirewallRule",
    "FirewallSpec",
    "FirewallStatus",
    "NetworkSpec",
    "Protocol",
    "RuleDirection",
    "Subnet",
    "SubnetSpec",
    "SubnetStatus",
]


# --------------------------------------------------------------------------- Subnet


class NetworkSpec(WireModel):
    """The network (VPC) a subnet belongs to; subnets naming the same network share it."""

    name: ObjectName = Field(description="Network name grouping subnets into one VPC.")
    cidr: Cidr = Field(description="CIDR of the whole network, e.g. 10.10.0.0/16.")


class SubnetSpec(TargetSpec):
    network: NetworkSpec = Field(description="The network (VPC) and its CIDR.")
    cidr: Cidr = Field(description="CIDR of the subnet; must lie inside network.cidr.")
    zone: ProviderToken | None = Field(None, description="Zone; absent = chosen at placement.")

    @model_validator(mode="after")
    def _cidr_inside_network(self) -> SubnetSpec:
        try:
            validate_cidr_within(self.cidr, self.network.cidr)
        except ValueError as exc:
            raise field_error(("cidr",), str(exc), self.cidr) from None
        return self


class SubnetStatus(PlacedStatus):
    network_id: str | None = Field(
        None, alias="networkID", description="The cloud's id of the network (VPC)."
    )


class Subnet(Resource):
    """A subnet of a named network, placed on a pool member or an account."""

    KIND: ClassVar[str] = "Subnet"
    PLURAL: ClassVar[str] = "subnets"
    SCOPE: ClassVar[Scope] = Scope.NAMESPACED
    HAS_STATUS: ClassVar[bool] = True

    kind: Literal["Subnet"] = Field("Subnet", description="Subnet.")
    spec: SubnetSpec = Field(description="Pool or account, network, CIDR and zone.")
    status: SubnetStatus = Field(
        default_factory=SubnetStatus, description="Placement and provider ids."
    )


# --------------------------------------------------------------------------- Firewall


class RuleDirection(StrEnum):
    INGRESS = "Ingress"
    EGRESS = "Egress"


class Protocol(StrEnum):
    TCP = "tcp"
    UDP = "udp"
    ICMP = "icmp"
    ALL = "all"


class FirewallRule(WireModel):
    """One allow rule. ``ports`` is required for tcp/udp and forbidden for icmp/all."""

    direction: WireEnum[RuleDirection] = Field(description="Ingress or Egress.")
    protocol: WireEnum[Protocol] = Field(description="tcp, udp, icmp or all.")
    ports: StrictStr | None = Field(
        None,
        description='Port "80" or inclusive range "8000-8100" (a string); required for tcp '
        "and udp, forbidden for icmp and all.",
    )
    cidrs: list[Cidr] = Field(
        min_length=1, description="Peer CIDRs the rule allows (at least one)."
    )

    @model_validator(mode="after")
    def _ports_match_protocol(self) -> FirewallRule:
        if self.protocol in (Protocol.TCP, Protocol.UDP):
            if self.ports is None:
                raise field_error(
                    ("ports",), f"is required for protocol {self.protocol.value}", None
                )
            try:
                validate_port_range(self.ports)
            except ValueError as exc:
                raise field_error(("ports",), str(exc), self.ports) from None
        elif self.ports is not None:
            raise field_error(
                ("ports",),
                f"must not be set for protocol {self.protocol.value} (it has no ports)",
                self.ports,
            )
        return self

    @property
    def port_range(self) -> tuple[int, int] | None:
        """Inclusive (low, high) ports, or None for icmp/all."""
        return None if self.ports is None else validate_port_range(self.ports)


class FirewallSpec(WireModel):
    rules: list[FirewallRule] = Field(
        default_factory=list, description="Ordered allow rules; empty = allow nothing."
    )


class FirewallRealisation(WireModel):
    """One place where the logical firewall exists as a cloud security group."""

    account: ObjectName = Field(description="ProviderAccount.")
    region: ProviderToken = Field(description="Region.")
    network: str | None = Field(None, description="Network (VPC) name; absent = default.")
    provider_id: str = Field(
        alias="providerID", min_length=1, description="The cloud's security group id."
    )


class FirewallStatus(Status):
    realisations: list[FirewallRealisation] = Field(
        default_factory=list, description="Where the firewall is realised."
    )


class Firewall(Resource):
    """A logical firewall, realised wherever a referencing instance lives."""

    KIND: ClassVar[str] = "Firewall"
    PLURAL: ClassVar[str] = "firewalls"
    SCOPE: ClassVar[Scope] = Scope.NAMESPACED
    HAS_STATUS: ClassVar[bool] = True

    kind: Literal["Firewall"] = Field("Firewall", description="Firewall.")
    spec: FirewallSpec = Field(description="Ordered rules.")
    status: FirewallStatus = Field(
        default_factory=FirewallStatus, description="Realisations per account/network."
    )
