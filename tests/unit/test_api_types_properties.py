"""api_types properties (hypothesis): generated valid names, labels, CIDRs and ports validate
and round-trip; generated arbitrary strings are accepted exactly when an independent oracle
says they are valid DNS-1123 names."""

from __future__ import annotations

import ipaddress
import string
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from api_types import Instance, Resource, field_errors, parse_object
from api_types.validation import validate_dns1123_label, validate_dns1123_subdomain

FAST = settings(max_examples=60, deadline=None)

_ALNUM = string.ascii_lowercase + string.digits


@st.composite
def dns_labels(draw: st.DrawFn, max_size: int = 63) -> str:
    size = draw(st.integers(1, max_size))
    if size == 1:
        return draw(st.sampled_from(_ALNUM))
    middle = draw(st.text(_ALNUM + "-", min_size=size - 2, max_size=size - 2))
    return draw(st.sampled_from(_ALNUM)) + middle + draw(st.sampled_from(_ALNUM))


@st.composite
def dns_subdomains(draw: st.DrawFn) -> str:
    parts = draw(st.lists(dns_labels(), min_size=1, max_size=5))
    return ".".join(parts)[:253].rstrip(".-") or "a"


label_values = st.one_of(
    st.just(""),
    st.builds(
        lambda a, mid, b: a + mid + b,
        st.sampled_from(string.ascii_letters + string.digits),
        st.text(string.ascii_letters + string.digits + "-_.", max_size=61),
        st.sampled_from(string.ascii_letters + string.digits),
    ),
)


@st.composite
def cidrs(draw: st.DrawFn) -> tuple[str, str]:
    """(network, subnet inside it) — IPv4 or IPv6."""
    bits = 32 if draw(st.booleans()) else 128
    address = draw(st.integers(0, 2**bits - 1))
    net = ipaddress.ip_network(
        (ipaddress.ip_address(address) if bits == 32 else ipaddress.IPv6Address(address),
         draw(st.integers(0, bits - 2))),
        strict=False,
    )  # fmt: skip
    extra = draw(st.integers(0, bits - net.prefixlen))
    subnets = net.subnets(prefixlen_diff=extra)
    sub = next(iter(subnets))
    return str(net), str(sub)


@st.composite
def port_ranges(draw: st.DrawFn) -> str:
    low = draw(st.integers(1, 65535))
    if draw(st.booleans()):
        return str(low)
    return f"{low}-{draw(st.integers(low, 65535))}"


def round_trips(obj: Resource) -> None:
    wire = obj.to_wire()
    again = parse_object(wire)
    assert again == obj
    assert again.to_wire() == wire


@FAST
@given(
    name=dns_subdomains(),
    namespace=dns_labels(),
    refs=st.lists(dns_subdomains(), max_size=3),
    labels=st.dictionaries(dns_labels(), label_values, max_size=4),
    cpu=st.one_of(st.integers(1, 512), st.builds(lambda a, b: {"min": a, "max": a + b},
                                                 st.integers(1, 64), st.integers(0, 64))),
)  # fmt: skip
def test_generated_instances_validate_and_round_trip(
    name: str, namespace: str, refs: list[str], labels: dict[str, str], cpu: Any
) -> None:
    obj = parse_object(
        {
            "apiVersion": "skybroker.io/v1alpha1",
            "kind": "Instance",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"pool": refs[0] if refs else name, "hardware": {"cpu": cpu},
                     "image": "ubuntu-22.04", "subnetRef": name, "firewallRefs": refs},
        }
    )  # fmt: skip
    assert isinstance(obj, Instance)
    assert obj.metadata.name == name and obj.spec.firewall_refs == refs
    round_trips(obj)


@FAST
@given(pair=cidrs(), name=dns_subdomains(), ports=port_ranges(), proto=st.sampled_from(["tcp",
       "udp"]))  # fmt: skip
def test_generated_networks_validate_and_round_trip(
    pair: tuple[str, str], name: str, ports: str, proto: str
) -> None:
    network, subnet = pair
    sub = parse_object(
        {
            "kind": "Subnet",
            "metadata": {"name": name, "namespace": "acme"},
            "spec": {"account": name, "network": {"name": name, "cidr": network}, "cidr": subnet},
        }
    )
    round_trips(sub)
    fw = parse_object(
        {
            "kind": "Firewall",
            "metadata": {"name": name, "namespace": "acme"},
            "spec": {"rules": [{"direction": "Egress", "protocol": proto, "ports": ports,
                                "cidrs": [network, subnet]}]},
        }
    )  # fmt: skip
    round_trips(fw)


def _oracle_label(text: str) -> bool:
    return (
        0 < len(text) <= 63
        and all(c in _ALNUM + "-" for c in text)
        and text[0] != "-"
        and text[-1] != "-"
    )


def _oracle_subdomain(text: str) -> bool:
    return 0 < len(text) <= 253 and all(
        part and all(c in _ALNUM + "-" for c in part) and part[0] != "-" and part[-1] != "-"
        for part in text.split(".")
    )


def _accepts(check: Any, text: str) -> bool:
    try:
        check(text)
    except ValueError:
        return False
    return True


names_near_valid = st.text(alphabet=_ALNUM + "-.A_é\n ", max_size=70) | st.text(max_size=20)


@settings(max_examples=300, deadline=None)
@given(text=names_near_valid)
def test_name_validators_match_an_independent_oracle(text: str) -> None:
    assert _accepts(validate_dns1123_label, text) == _oracle_label(text)
    assert _accepts(validate_dns1123_subdomain, text) == _oracle_subdomain(text)


@settings(max_examples=100, deadline=None)
@given(text=names_near_valid)
def test_invalid_names_are_reported_at_metadata_name(text: str) -> None:
    data = {"kind": "Namespace", "metadata": {"name": text}}
    try:
        parse_object(data)
    except ValidationError as exc:
        assert not _oracle_label(text)
        assert [path for path, _ in field_errors(exc)] == ["metadata.name"]
    else:
        assert _oracle_label(text)
