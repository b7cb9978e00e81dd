"""EC2 security group permissions and a Firewall's rules, both ways; the rule diff.

Where it sits: under the security group actions (``securitygroups``), pure — no I/O. EC2 speaks
of *permissions* (``IpPermissions.N.{IpProtocol, FromPort, ToPort, IpRanges.M.CidrIp,
Ipv6Ranges.M.CidrIpv6}``, or the old flat ``IpProtocol``/``FromPort``/``ToPort``/``CidrIp``),
a Firewall of ordered *rules* {direction, protocol, ports, cidrs} (``api_types.network``). Both
are read as :class:`Grant` s — one direction, protocol, port range and *one* CIDR — the unit
that Authorize adds and Revoke removes:

* :func:`authorized` appends each new grant to the first rule of the same direction, protocol
  and ports (or as a new rule at the end); a grant already there is
  ``InvalidPermission.Duplicate`` and nothing is written, as EC2 answers;
* :func:`revoked` takes each grant's CIDR out of every rule that has it, dropping a rule left
  with none; a grant that is not there is ``InvalidPermission.NotFound``, nothing written;
* :func:`ip_permissions` renders the rules of one direction as EC2's ``ipPermissions``: one
  item per protocol and port range, its CIDRs in the order the rules give them.

Protocols: ``tcp``/``6``, ``udp``/``17``, ``icmp``/``1``, ``-1``/``all``; anything else is
``InvalidParameterValue`` naming the parameter. Limits a Firewall rule sets, refused (naming
the parameter), never silently widened or narrowed:

* tcp and udp need ``FromPort`` and ``ToPort``; ``-1``/``-1`` and a range from ``0`` mean every
  port and are stored as ``1-65535`` (port 0 carries no traffic), so they read back so;
* a Firewall allows all of ICMP or none of it: ``FromPort``/``ToPort`` (type and code) must be
  ``-1`` or absent; protocol ``-1`` ignores ports, as EC2 does;
* sources are CIDRs only — ``Groups``/``UserIdGroupPairs`` (another group as source),
  ``PrefixListIds`` and the flat ``SourceSecurityGroupName``/``…OwnerId`` are refused;
  a range's ``Description`` is not kept (a rule has none).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from api_types.network import FirewallRule, Protocol, RuleDirection
from api_types.validation import validate_cidr, validate_port_range
from apiserver.ec2.errors import Ec2Error, invalid_parameter, missing_parameter
from apiserver.ec2.params import Params
from apiserver.ec2.xmlwriter import Fields

__all__ = ["Grant", "authorized", "grants_of", "ip_permissions", "requested_grants", "revoked"]

_PROTOCOLS = {
    "tcp": Protocol.TCP,
    "6": Protocol.TCP,
    "udp": Protocol.UDP,
    "17": Protocol.UDP,
    "icmp": Protocol.ICMP,
    "1": Protocol.ICMP,
    "-1": Protocol.ALL,
    "all": Protocol.ALL,
}
_EVERY_PORT = "1-65535"
_PORT = re.compile(r"-?[0-9]{1,5}")
#: Sources a CIDR rule cannot express, per place they are given.
_STRUCTURED_SOURCES = ("Groups", "UserIdGroupPairs", "PrefixListIds")
_FLAT_SOURCES = ("SourceSecurityGroupName", "SourceSecurityGroupOwnerId")


@dataclass(frozen=True)
class Grant:
    """One thing a group allows: a direction, a protocol, its ports (canonical, None for icmp
    and all) and one CIDR (canonical)."""

    direction: RuleDirection
    protocol: Protocol
    ports: str | None
    cidr: str

    @property
    def shape(self) -> tuple[RuleDirection, Protocol, str | None]:
        return self.direction, self.protocol, self.ports

    def __str__(self) -> str:
        ports = f" ports {self.ports}" if self.ports else ""
        return f"{self.direction.value.lower()} {self.protocol.value}{ports} {self.cidr}"


# --------------------------------------------------------------------------- reading requests


def _protocol(raw: str, name: str) -> Protocol:
    protocol = _PROTOCOLS.get(raw.lower())
    if protocol is None:
        raise invalid_parameter(name, f"{raw!r} is not tcp, udp, icmp or -1 (or 6, 17, 1)")
    return protocol


def _port(params: Params, name: str, where: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not _PORT.fullmatch(raw) or not -1 <= int(raw) <= 65535:
        raise invalid_parameter(f"{where}{name}", f"{raw!r} is not a port between -1 and 65535")
    return int(raw)


def _ports(protocol: Protocol, params: Params, where: str) -> str | None:
    low, high = _port(params, "FromPort", where), _port(params, "ToPort", where)
    if protocol is Protocol.ALL:
        return None
    if protocol is Protocol.ICMP:
        for name, value in (("FromPort", low), ("ToPort", high)):
            if value not in (None, -1):
                raise invalid_parameter(
                    f"{where}{name}",
                    "a Firewall rule allows all ICMP types and codes or none: only -1",
                )
        return None
    if low is None or high is None:
        raise missing_parameter(f"{where}{'FromPort' if low is None else 'ToPort'}")
    if (low, high) == (-1, -1):
        return _EVERY_PORT
    if low < 0 or high < 1 or low > high:
        raise invalid_parameter(
            f"{where}FromPort",
            f"{low}-{high} is not a port range of {protocol.value} (from 0-65535, at most ToPort)",
        )
    low = max(low, 1)  # port 0 carries no traffic: a range from 0 is the range from 1
    return str(low) if low == high else f"{low}-{high}"


def _cidr(raw: str, name: str, version: int) -> str:
    try:
        cidr = validate_cidr(raw)
    except ValueError as exc:
        raise invalid_parameter(name, str(exc)) from None
    if ipaddress.ip_network(cidr).version != version:
        raise invalid_parameter(name, f"{raw!r} is not an IPv{version} CIDR")
    return cidr


def _refuse_sources(params: Params, names: Iterable[str], where: str, flat: bool) -> None:
    for name in names:
        given = params.get(name) is not None if flat else bool(params.structures(name))
        if given:
            raise invalid_parameter(
                f"{where}{name}",
                "a Firewall rule allows CIDRs only; other groups and prefix lists as sources "
                "cannot be expressed",
            )


def _permission(
    params: Params, where: str, direction: RuleDirection, cidrs: list[str]
) -> list[Grant]:
    name = f"{where}IpProtocol"
    protocol = _protocol(params.require_named("IpProtocol", name), name)
    ports = _ports(protocol, params, where)
    if not cidrs:
        raise missing_parameter(f"{where}IpRanges")
    return [Grant(direction, protocol, ports, cidr) for cidr in cidrs]


def requested_grants(params: Params, direction: RuleDirection) -> list[Grant]:
    """The grants an Authorize/Revoke request names, each once, in the order given
    (``IpPermissions.N`` first, then the flat form); ``MissingParameter`` if there are none."""
    grants: list[Grant] = []
    for index, permission in params.structures("IpPermissions"):
        where = f"IpPermissions.{index}."
        _refuse_sources(permission, _STRUCTURED_SOURCES, where, flat=False)
        cidrs = [
            _cidr(r.require_named("CidrIp", f"{where}IpRanges.{m}.CidrIp"),
                  f"{where}IpRanges.{m}.CidrIp", 4)
            for m, r in permission.structures("IpRanges")
        ] + [
            _cidr(r.require_named("CidrIpv6", f"{where}Ipv6Ranges.{m}.CidrIpv6"),
                  f"{where}Ipv6Ranges.{m}.CidrIpv6", 6)
            for m, r in permission.structures("Ipv6Ranges")
        ]  # fmt: skip
        grants += _permission(permission, where, direction, cidrs)
    _refuse_sources(params, _FLAT_SOURCES, "", flat=True)
    if params.get("IpProtocol") is not None or params.get("CidrIp") is not None:
        cidrs = [_cidr(params.require("CidrIp"), "CidrIp", 4)]
        grants += _permission(params, "", direction, cidrs)
    if not grants:
        raise missing_parameter("IpPermissions")
    return list(dict.fromkeys(grants))


# --------------------------------------------------------------------------- rules


def _canonical_ports(rule: FirewallRule) -> str | None:
    """A rule's ports as :func:`_ports` spells them (a REST writer may have written ``080``)."""
    if rule.ports is None:
        return None
    low, high = validate_port_range(rule.ports)
    return str(low) if low == high else f"{low}-{high}"


def grants_of(rules: Sequence[FirewallRule]) -> list[Grant]:
    """Every grant of ``rules``, in order."""
    return [
        Grant(RuleDirection(rule.direction), Protocol(rule.protocol), _canonical_ports(rule), cidr)
        for rule in rules
        for cidr in rule.cidrs
    ]


def authorized(rules: Sequence[FirewallRule], grants: Sequence[Grant]) -> list[FirewallRule]:
    """``rules`` with ``grants`` added (the module docstring's rule)."""
    present = set(grants_of(rules))
    if duplicate := next((grant for grant in grants if grant in present), None):
        raise Ec2Error(
            "InvalidPermission.Duplicate",
            f'the specified rule "{duplicate}" already exists',
        )
    result = [rule.model_copy(deep=True) for rule in rules]
    for grant in grants:
        same = next(
            (
                rule
                for rule in result
                if (rule.direction, rule.protocol, _canonical_ports(rule)) == grant.shape
            ),
            None,
        )
        if same is not None:
            same.cidrs.append(grant.cidr)
        else:
            result.append(
                FirewallRule(
                    direction=grant.direction,
                    protocol=grant.protocol,
                    ports=grant.ports,
                    cidrs=[grant.cidr],
                )
            )
    return result


def revoked(rules: Sequence[FirewallRule], grants: Sequence[Grant]) -> list[FirewallRule]:
    """``rules`` without ``grants`` (the module docstring's rule)."""
    present = set(grants_of(rules))
    if absent := next((grant for grant in grants if grant not in present), None):
        raise Ec2Error(
            "InvalidPermission.NotFound",
            f'The specified rule does not exist in this security group: "{absent}"',
        )
    gone = set(grants)
    result: list[FirewallRule] = []
    for rule in rules:
        kept = [grant.cidr for grant in grants_of([rule]) if grant not in gone]
        if kept:
            result.append(rule.model_copy(update={"cidrs": kept}, deep=True))
    return result


# --------------------------------------------------------------------------- answers


def ip_permissions(rules: Sequence[FirewallRule], direction: RuleDirection) -> list[Fields]:
    """EC2's ``ipPermissions`` (or ``…Egress``) of the rules of ``direction``."""
    by_shape: dict[tuple[Protocol, str | None], list[str]] = {}
    for grant in grants_of(rules):
        if grant.direction is direction:
            cidrs = by_shape.setdefault((grant.protocol, grant.ports), [])
            if grant.cidr not in cidrs:
                cidrs.append(grant.cidr)
    permissions: list[Fields] = []
    for (protocol, ports), cidrs in by_shape.items():
        low, high = validate_port_range(ports) if ports is not None else (-1, -1)
        permissions.append(
            {
                "ipProtocol": "-1" if protocol is Protocol.ALL else protocol.value,
                "fromPort": None if protocol is Protocol.ALL else low,
                "toPort": None if protocol is Protocol.ALL else high,
                "groups": [],
                "ipRanges": [{"cidrIp": c} for c in cidrs if ":" not in c],
                "ipv6Ranges": [{"cidrIpv6": c} for c in cidrs if ":" in c],
                "prefixListIds": [],
            }
        )
    return permissions
