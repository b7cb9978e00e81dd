"""Firewall rules in one canonical form, and the diff that turns current rules into desired ones.

Where it sits: the Firewall reconciler expands each spec rule (direction, protocol, a port or a
range, several CIDRs) with ``expand_rules`` into canonical single-CIDR ``FirewallRule`` values;
providers report a firewall's rules in the same form, so applying a change is a set difference
(``diff_rules``) sent to the cloud as authorize/revoke calls, never a delete-and-recreate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "DEFAULT_EGRESS",
    "Direction",
    "FirewallRule",
    "IpProtocol",
    "RuleDiff",
    "diff_rules",
    "expand_rules",
]


class Direction(StrEnum):
    """Which traffic a firewall rule admits: inbound or outbound."""
    INGRESS = "Ingress"
    EGRESS = "Egress"


class IpProtocol(StrEnum):
    """The IP protocol of a firewall rule (``all`` = every protocol)."""
    TCP = "tcp"
    UDP = "udp"
    ICMP = "icmp"
    ALL = "all"


@dataclass(frozen=True, order=True)
class FirewallRule:
    """One permission: traffic of ``protocol`` on ports ``port_from..port_to`` from/to ``cidr``.

    Ports are None when the rule covers every port (protocol ``all``, or ICMP of any type).
    """

    direction: Direction
    protocol: IpProtocol
    port_from: int | None
    port_to: int | None
    cidr: str

    def __post_init__(self) -> None:
        if (self.port_from is None) != (self.port_to is None):
            raise ValueError("port_from and port_to are both set or both None")
        if self.protocol is IpProtocol.ALL and self.port_from is not None:
            raise ValueError("protocol 'all' takes no ports")
        ranged = self.port_from is not None and self.port_to is not None
        if ranged and self.protocol in (IpProtocol.TCP, IpProtocol.UDP):
            assert self.port_from is not None and self.port_to is not None
            if not 0 <= self.port_from <= self.port_to <= 65535:
                raise ValueError(f"bad port range {self.port_from}-{self.port_to}")


DEFAULT_EGRESS = FirewallRule(Direction.EGRESS, IpProtocol.ALL, None, None, "0.0.0.0/0")


def _parse_ports(protocol: IpProtocol, ports: str | None) -> tuple[int | None, int | None]:
    if protocol is IpProtocol.ALL or ports in (None, "", "*"):
        if protocol in (IpProtocol.TCP, IpProtocol.UDP):
            return 0, 65535
        return None, None
    assert ports is not None
    low, sep, high = ports.partition("-")
    try:
        first = int(low)
        last = int(high) if sep else first
    except ValueError:
        raise ValueError(f"bad ports {ports!r}: want N or N-M") from None
    return first, last


def expand_rules(
    direction: str, protocol: str, ports: str | None, cidrs: Iterable[str]
) -> list[FirewallRule]:
    """Canonical rules for one spec rule: one per CIDR, ports parsed ("80", "8000-8100")."""
    proto = IpProtocol(protocol.lower())
    first, last = _parse_ports(proto, ports)
    return [FirewallRule(Direction(direction), proto, first, last, cidr) for cidr in cidrs]


@dataclass(frozen=True)
class RuleDiff:
    """The rules to authorize and to revoke to turn one rule set into another."""
    authorize: frozenset[FirewallRule]
    revoke: frozenset[FirewallRule]

    def __bool__(self) -> bool:
        return bool(self.authorize or self.revoke)


def diff_rules(current: Iterable[FirewallRule], desired: Iterable[FirewallRule]) -> RuleDiff:
    """The authorize/revoke calls that turn ``current`` into ``desired``."""
    have, want = frozenset(current), frozenset(desired)
    return RuleDiff(authorize=want - have, revoke=have - want)
