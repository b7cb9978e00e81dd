"""EC2 security group permissions ↔ Firewall rules: parsing, the authorize/revoke diff, the
``ipPermissions`` answer (``apiserver.ec2.permissions``)."""

from __future__ import annotations

import pytest

from api_types import FirewallRule, Protocol, RuleDirection
from apiserver.ec2.errors import Ec2Error
from apiserver.ec2.params import Params
from apiserver.ec2.permissions import (
    Grant,
    authorized,
    ip_permissions,
    requested_grants,
    revoked,
)

IN, OUT = RuleDirection.INGRESS, RuleDirection.EGRESS


def params(**values: str) -> Params:
    return Params([(name.replace("_", "."), value) for name, value in values.items()])


def refusal(**values: str) -> Ec2Error:
    with pytest.raises(Ec2Error) as raised:
        requested_grants(params(**values), IN)
    return raised.value


def rule(protocol: str, ports: str | None, *cidrs: str, direction: str = "Ingress") -> FirewallRule:
    return FirewallRule.model_validate(
        {"direction": direction, "protocol": protocol, "ports": ports, "cidrs": list(cidrs)}
    )


def test_permissions_in_both_forms() -> None:
    grants = requested_grants(
        params(
            IpPermissions_1_IpProtocol="tcp",
            IpPermissions_1_FromPort="8000",
            IpPermissions_1_ToPort="8080",
            IpPermissions_1_IpRanges_1_CidrIp="10.0.0.0/8",
            IpPermissions_1_IpRanges_2_CidrIp="192.168.0.0/16",
            IpPermissions_1_Ipv6Ranges_1_CidrIpv6="2001:DB8::/32",
            IpPermissions_2_IpProtocol="-1",
            IpPermissions_2_IpRanges_1_CidrIp="0.0.0.0/0",
            IpPermissions_3_IpProtocol="icmp",
            IpPermissions_3_FromPort="-1",
            IpPermissions_3_ToPort="-1",
            IpPermissions_3_IpRanges_1_CidrIp="10.0.0.0/8",
            IpPermissions_4_IpProtocol="17",
            IpPermissions_4_FromPort="53",
            IpPermissions_4_ToPort="53",
            IpPermissions_4_IpRanges_1_CidrIp="10.0.0.0/8",
            IpPermissions_4_IpRanges_1_Description="dns (not kept)",
        ),
        IN,
    )
    assert grants == [
        Grant(IN, Protocol.TCP, "8000-8080", "10.0.0.0/8"),
        Grant(IN, Protocol.TCP, "8000-8080", "192.168.0.0/16"),
        Grant(IN, Protocol.TCP, "8000-8080", "2001:db8::/32"),
        Grant(IN, Protocol.ALL, None, "0.0.0.0/0"),
        Grant(IN, Protocol.ICMP, None, "10.0.0.0/8"),
        Grant(IN, Protocol.UDP, "53", "10.0.0.0/8"),
    ]
    flat = params(IpProtocol="TCP", FromPort="0", ToPort="65535", CidrIp="10.1.0.0/16")
    assert requested_grants(flat, OUT) == [Grant(OUT, Protocol.TCP, "1-65535", "10.1.0.0/16")]
    every = params(IpProtocol="udp", FromPort="-1", ToPort="-1", CidrIp="10.1.0.0/16")
    assert requested_grants(every, IN)[0].ports == "1-65535"


def test_refusals_name_the_parameter() -> None:
    assert refusal().code == "MissingParameter"
    cases = {
        "IpPermissions.1.IpProtocol": dict(
            IpPermissions_1_IpProtocol="gre", IpPermissions_1_IpRanges_1_CidrIp="10.0.0.0/8"
        ),
        "IpPermissions.1.IpRanges.1.CidrIp": dict(
            IpPermissions_1_IpProtocol="-1", IpPermissions_1_IpRanges_1_CidrIp="10.0.0.1/8"
        ),
        "IpPermissions.1.FromPort": dict(
            IpPermissions_1_IpProtocol="icmp",
            IpPermissions_1_FromPort="8",
            IpPermissions_1_IpRanges_1_CidrIp="10.0.0.0/8",
        ),
        "IpPermissions.1.Groups": dict(
            IpPermissions_1_IpProtocol="-1", IpPermissions_1_Groups_1_GroupId="sg-1"
        ),
        "CidrIp": dict(IpProtocol="tcp", FromPort="22", ToPort="22", CidrIp="not-a-cidr"),
        "SourceSecurityGroupName": dict(SourceSecurityGroupName="web"),
    }
    for name, values in cases.items():
        error = refusal(**values)
        assert error.code == "InvalidParameterValue" and name in error.message, (name, error)
    missing_port = refusal(
        IpPermissions_1_IpProtocol="tcp",
        IpPermissions_1_FromPort="80",
        IpPermissions_1_IpRanges_1_CidrIp="10.0.0.0/8",
    )
    assert missing_port.code == "MissingParameter" and "IpPermissions.1.ToPort" in str(missing_port)
    backwards = refusal(IpProtocol="tcp", FromPort="90", ToPort="80", CidrIp="10.0.0.0/8")
    assert "FromPort" in backwards.message
    no_source = refusal(IpPermissions_1_IpProtocol="-1")
    assert no_source.code == "MissingParameter" and "IpPermissions.1.IpRanges" in str(no_source)


def test_authorize_merges_into_rules_and_refuses_duplicates() -> None:
    rules = [rule("tcp", "80", "0.0.0.0/0"), rule("all", None, "0.0.0.0/0", direction="Egress")]
    more = authorized(
        rules,
        [
            Grant(IN, Protocol.TCP, "80", "10.0.0.0/8"),
            Grant(IN, Protocol.TCP, "443", "0.0.0.0/0"),
        ],
    )
    assert [(r.protocol, r.ports, r.cidrs) for r in more] == [
        ("tcp", "80", ["0.0.0.0/0", "10.0.0.0/8"]),
        ("all", None, ["0.0.0.0/0"]),
        ("tcp", "443", ["0.0.0.0/0"]),
    ]
    assert rules[0].cidrs == ["0.0.0.0/0"]  # the input is left alone
    with pytest.raises(Ec2Error) as duplicate:
        authorized(more, [Grant(IN, Protocol.TCP, "443", "1.2.3.0/24"),
                          Grant(IN, Protocol.TCP, "80", "10.0.0.0/8")])  # fmt: skip
    assert duplicate.value.code == "InvalidPermission.Duplicate"
    assert "tcp ports 80 10.0.0.0/8" in duplicate.value.message
    # A REST writer's spelling of the same ports is the same rule.
    assert authorized([rule("tcp", "080", "0.0.0.0/0")], [Grant(IN, Protocol.TCP, "80",
                      "1.0.0.0/8")])[0].cidrs == ["0.0.0.0/0", "1.0.0.0/8"]  # fmt: skip


def test_revoke_removes_grants_and_empty_rules() -> None:
    rules = [rule("tcp", "80", "0.0.0.0/0", "10.0.0.0/8"), rule("udp", "53", "10.0.0.0/8")]
    fewer = revoked(rules, [Grant(IN, Protocol.UDP, "53", "10.0.0.0/8"),
                            Grant(IN, Protocol.TCP, "80", "0.0.0.0/0")])  # fmt: skip
    assert [(r.protocol, r.ports, r.cidrs) for r in fewer] == [("tcp", "80", ["10.0.0.0/8"])]
    with pytest.raises(Ec2Error) as absent:
        revoked(rules, [Grant(OUT, Protocol.TCP, "80", "10.0.0.0/8")])
    assert absent.value.code == "InvalidPermission.NotFound"


def test_ip_permissions_answer() -> None:
    rules = [
        rule("tcp", "8000-8080", "10.0.0.0/8"),
        rule("icmp", None, "10.0.0.0/8"),
        rule("tcp", "8000-8080", "2001:db8::/32", "10.0.0.0/8"),
        rule("all", None, "0.0.0.0/0", direction="Egress"),
    ]
    assert ip_permissions(rules, IN) == [
        {
            "ipProtocol": "tcp",
            "fromPort": 8000,
            "toPort": 8080,
            "groups": [],
            "ipRanges": [{"cidrIp": "10.0.0.0/8"}],
            "ipv6Ranges": [{"cidrIpv6": "2001:db8::/32"}],
            "prefixListIds": [],
        },
        {
            "ipProtocol": "icmp",
            "fromPort": -1,
            "toPort": -1,
            "groups": [],
            "ipRanges": [{"cidrIp": "10.0.0.0/8"}],
            "ipv6Ranges": [],
            "prefixListIds": [],
        },
    ]
    (egress,) = ip_permissions(rules, OUT)
    assert egress["ipProtocol"] == "-1" and egress["fromPort"] is None
