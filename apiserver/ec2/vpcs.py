"""VPCs and subnets through EC2: Create/Describe/DeleteVpc, Create/Describe/DeleteSubnet.

Where it sits: EC2 action handlers (``registry``) registered by ``network``, whose docstring
gives the mapping — a VPC is the ``spec.network`` of Subnets, recorded before its first subnet
by its *default security group*, a Firewall ``default.{network}`` carrying the annotations
below. This module owns that record: :func:`vpcs` reads every VPC of the key's namespace,
:func:`find_vpc` one by id, :class:`VpcIds` the id of a network's VPC (what subnets, security
groups and instances answer as ``vpcId``), and the security group actions
(``securitygroups``) read the annotations through :func:`is_default_group` and
:data:`VPC_ANNOTATION`.

A VPC's id is derived from its record's uid (``resources.vpc_id``), so a VPC deleted and
created again under the same name has another id, and the old one is
``InvalidVpcID.NotFound``. Lookups stay cheap: an id is looked for among the namespace's
records first, listed once per request (the subnets only when no record has it); a network's
id is one read of ``default.{network}`` by name, once per network and request (none when the
caller listed the Firewalls already). A VPC known only from subnets (no record: written
through REST) has the id of its namespace and network name.

The VPC of a namespace is found by its id among (a) the default groups not being deleted — the
network name and CIDR their annotations give — and (b) the networks the namespace's subnets
name, those being deleted included (a VPC exists until nothing uses it). A record wins over
subnets; without one, the oldest subnet's ``network.cidr`` is the VPC's (subnets written
through REST could disagree; the Subnet reconciler creates the network from whichever comes
first, and CreateSubnet checks against the one shown here).

Subnets are regional: DescribeSubnets, DeleteSubnet and a ``SubnetId`` see only the subnets
of the request's region (``spec.pool`` = the pool the region names); one of another region
is ``InvalidSubnetID.NotFound``, as EC2 answers. Subnets being deleted are gone from the EC2
view already (an EC2 subnet is gone when DeleteSubnet answers), though their VPC still counts
them as dependencies until the Subnet reconciler has removed them from the cloud.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from api_types import Firewall, Instance, RuleDirection, Subnet
from api_types.meta import API_VERSION
from api_types.registry import by_kind
from api_types.validation import validate_cidr, validate_label_map
from apiserver.ec2.catalog import pool_zones
from apiserver.ec2.context import ActionContext
from apiserver.ec2.errors import Ec2Error, dry_run_succeeded, invalid_parameter
from apiserver.ec2.filters import apply_filters
from apiserver.ec2.params import Params
from apiserver.ec2.registry import ActionRegistry
from apiserver.ec2.resources import (
    NAME_TAG,
    given_name,
    id_of,
    kept_name,
    labels_of,
    listed,
    name_annotations,
    name_of,
    page,
    pick,
    requested_tags,
    tag_attributes,
    tag_filter_names,
    tags_of,
    vpc_id,
)
from apiserver.ec2.xmlwriter import Fields, Value
from controller.errors import ApiError

__all__ = [
    "DEFAULT_GROUP",
    "DESCRIPTION_ANNOTATION",
    "VPC_ANNOTATION",
    "VPC_CIDR_ANNOTATION",
    "VPC_NAME_ANNOTATION",
    "VPC_TAGS_ANNOTATION",
    "Vpc",
    "VpcIds",
    "default_group_name",
    "deleting",
    "dependency_violation",
    "find_vpc",
    "is_default_group",
    "regional_subnets",
    "register",
    "users_of",
    "vpcs",
]

Wire = dict[str, Any]

#: On a security group made in a VPC (its default group included): the VPC's network name.
VPC_ANNOTATION = "ec2.skybroker.io/vpc"
#: On a VPC's default group only — what makes it the VPC's record: the VPC's CIDR.
VPC_CIDR_ANNOTATION = "ec2.skybroker.io/vpc-cidr"
#: On a VPC's default group: the VPC's tags but ``Name`` (the network name, or
#: :data:`VPC_NAME_ANNOTATION`), JSON.
VPC_TAGS_ANNOTATION = "ec2.skybroker.io/vpc-tags"
#: On a VPC's default group: the VPC's ``Name`` tag when it is not the network name (text
#: that is no name, or a Name another VPC has: ``resources.kept_name``).
VPC_NAME_ANNOTATION = "ec2.skybroker.io/vpc-name"
#: On a security group: its ``GroupDescription``.
DESCRIPTION_ANNOTATION = "ec2.skybroker.io/description"
#: The ``groupName`` of every VPC's default group, as in EC2.
DEFAULT_GROUP = "default"
#: The IPv4 prefix lengths EC2 allows for a VPC and a subnet.
_SHORTEST, _LONGEST = 16, 28
#: Addresses EC2 reserves in every subnet (network, router, DNS, future, broadcast).
_RESERVED_ADDRESSES = 5
_AVAILABLE = "available"


@dataclass(frozen=True)
class Vpc:
    """One VPC of the namespace: its network name and CIDR, its tags (``Name`` first) and its
    record (the default group's wire object; None for a VPC known only from subnets)."""

    id: str
    name: str
    cidr: str
    tags: list[dict[str, str]]
    record: Wire | None


def register(registry: ActionRegistry) -> None:
    registry.add("CreateVpc", create_vpc)
    registry.add("DescribeVpcs", describe_vpcs)
    registry.add("DeleteVpc", delete_vpc)
    registry.add("CreateSubnet", create_subnet)
    registry.add("DescribeSubnets", describe_subnets)
    registry.add("DeleteSubnet", delete_subnet)


# --------------------------------------------------------------------------- shared


def default_group_name(network: str) -> str:
    """The Firewall that is network ``network``'s default group and VPC record."""
    return f"{DEFAULT_GROUP}.{network}"


def _annotations(obj: Wire) -> Mapping[str, str]:
    annotations: Mapping[str, str] = obj["metadata"].get("annotations") or {}
    return annotations


def is_default_group(obj: Wire) -> bool:
    """Whether the Firewall ``obj`` is a VPC's default group (so the VPC's record)."""
    annotations = _annotations(obj)
    network = annotations.get(VPC_ANNOTATION)
    return (
        network is not None
        and VPC_CIDR_ANNOTATION in annotations
        and obj["metadata"]["name"] == default_group_name(network)
    )


def deleting(obj: Wire) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def dependency_violation(what: str, users: Sequence[str]) -> Ec2Error:
    return Ec2Error(
        "DependencyViolation",
        f"The {what} has dependencies and cannot be deleted: {', '.join(users)}",
    )


def users_of(
    context: ActionContext, group: str | None = None, subnet: str | None = None
) -> list[str]:
    """The ids of the namespace's instances that use the security group or the subnet named
    so (those being deleted included: they hold it until they are gone)."""
    users = []
    for obj in listed(context, Instance.KIND):
        spec = obj["spec"]
        if (group is not None and group in (spec.get("firewallRefs") or ())) or (
            subnet is not None and spec.get("subnetRef") == subnet
        ):
            users.append(id_of(Instance.KIND, obj))
    return sorted(users)


def _record_tags(obj: Wire) -> dict[str, str]:
    """A record's VPC tags; an annotation a REST writer spoiled counts as none."""
    try:
        tags = json.loads(_annotations(obj).get(VPC_TAGS_ANNOTATION, "{}"))
        return validate_label_map(tags) if isinstance(tags, dict) else {}
    except ValueError:
        return {}


def _tag_set(name: str, tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": NAME_TAG, "value": name}] + [
        {"key": key, "value": tags[key]} for key in sorted(tags) if key != NAME_TAG
    ]


def _recorded(context: ActionContext, group: Wire) -> Vpc | None:
    """The VPC the Firewall ``group`` records, if it is a record: a default group not being
    deleted whose CIDR is one (a record a REST writer spoiled records nothing)."""
    if not is_default_group(group) or deleting(group):
        return None
    annotations = _annotations(group)
    try:
        cidr = validate_cidr(annotations[VPC_CIDR_ANNOTATION])
    except ValueError:
        return None
    network = annotations[VPC_ANNOTATION]
    tags = _tag_set(annotations.get(VPC_NAME_ANNOTATION) or network, _record_tags(group))
    uid = str(group["metadata"]["uid"])
    return Vpc(vpc_id(context.namespace, network, uid), network, cidr, tags, group)


def _records(context: ActionContext, groups: Sequence[Wire]) -> dict[str, Vpc]:
    """The VPCs recorded among the Firewalls ``groups``, by id."""
    return {vpc.id: vpc for group in groups if (vpc := _recorded(context, group)) is not None}


def vpcs(
    context: ActionContext,
    groups: Sequence[Wire] | None = None,
    subnets: Sequence[Wire] | None = None,
) -> dict[str, Vpc]:
    """Every VPC of the key's namespace by id (the module docstring's rule); ``groups`` and
    ``subnets`` are the namespace's Firewalls and Subnets when the caller listed them."""
    if groups is None:
        groups = listed(context, Firewall.KIND)
    if subnets is None:
        subnets = listed(context, Subnet.KIND)
    found = {vpc.name: vpc for vpc in _records(context, groups).values()}
    oldest_first = sorted(
        subnets,
        key=lambda s: (str(s["metadata"].get("creationTimestamp", "")), s["metadata"]["name"]),
    )
    for subnet in oldest_first:
        network, cidr = subnet["spec"]["network"]["name"], subnet["spec"]["network"]["cidr"]
        if network not in found:
            vpc = vpc_id(context.namespace, network, None)
            found[network] = Vpc(vpc, network, cidr, _tag_set(network, {}), None)
    return {vpc.id: vpc for vpc in found.values()}


def find_vpc(context: ActionContext, wanted: str, known: Mapping[str, Vpc] | None = None) -> Vpc:
    """The VPC with id ``wanted`` (among ``known``, :func:`vpcs`' answer, when the caller has
    it); ``InvalidVpcID.NotFound`` if the namespace has none."""
    if known is None:
        groups = listed(context, Firewall.KIND)
        known = _records(context, groups)
        if wanted not in known:  # a VPC known only from subnets, or none: they tell
            known = vpcs(context, groups)
    found = known.get(wanted)
    if found is None:
        raise Ec2Error("InvalidVpcID.NotFound", f"The vpc ID '{wanted}' does not exist")
    return found


class VpcIds:
    """The id of the VPC of each network name of the namespace, for one request: a recorded
    VPC's from its record — read by name (``default.{network}``) the first time a network is
    asked, or found among ``groups`` when the caller listed the namespace's Firewalls —, else
    that of a VPC known only from subnets (``resources.vpc_id``)."""

    def __init__(self, context: ActionContext, groups: Sequence[Wire] | None = None) -> None:
        self._context = context
        self._read = groups is None
        self._ids: dict[str, str] = {}
        if groups is not None:
            self._ids = {vpc.name: vpc.id for vpc in _records(context, groups).values()}

    def __call__(self, network: str) -> str:
        found = self._ids.get(network)
        if found is None:
            record = self._record(network) if self._read else None
            vpc = None if record is None else _recorded(self._context, record)
            found = vpc_id(self._context.namespace, network, None) if vpc is None else vpc.id
            self._ids[network] = found
        return found

    def _record(self, network: str) -> Wire | None:
        info, namespace = by_kind(Firewall.KIND), self._context.namespace
        try:
            return self._context.backend.get(info, namespace, default_group_name(network))
        except ApiError as exc:
            if exc.not_found:
                return None
            raise


def _ipv4_block(raw: str, name: str) -> ipaddress.IPv4Network:
    """An IPv4 CIDR parameter of a VPC or subnet, or ``InvalidParameterValue`` naming it."""
    try:
        network = ipaddress.ip_network(validate_cidr(raw))
    except ValueError as exc:
        raise invalid_parameter(name, str(exc)) from None
    if not isinstance(network, ipaddress.IPv4Network):
        raise invalid_parameter(name, f"{raw!r} is not an IPv4 CIDR")
    return network


# --------------------------------------------------------------------------- VPCs


def _vpc_fields(vpc: Vpc) -> Fields:
    return {
        "vpcId": vpc.id,
        "state": _AVAILABLE,
        "cidrBlock": vpc.cidr,
        "cidrBlockAssociationSet": [
            {
                "cidrBlock": vpc.cidr,
                "associationId": vpc.id.replace("vpc-", "vpc-cidr-assoc-", 1),
                "cidrBlockState": {"state": "associated"},
            }
        ],
        "ipv6CidrBlockAssociationSet": [],
        "dhcpOptionsId": "default",
        "instanceTenancy": "default",
        "isDefault": False,
        "tagSet": list(vpc.tags),
    }


def create_vpc(context: ActionContext, params: Params) -> Fields:
    dry_run = params.boolean("DryRun")
    context.pool()
    block = _ipv4_block(params.require("CidrBlock"), "CidrBlock")
    if not _SHORTEST <= block.prefixlen <= _LONGEST:
        raise Ec2Error(
            "InvalidVpc.Range",
            f"The CIDR '{block}' is invalid: a VPC is a /{_SHORTEST} to a /{_LONGEST}",
        )
    tags = requested_tags(params, "vpc")
    labels = labels_of(tags, "TagSpecification")
    # The network is named by the Name tag when that is a name no VPC of the namespace has
    # and no Firewall holds its record's name (a deleted VPC's record lingers while the
    # Firewall reconciler cleans up); else (any text, or a Name two VPCs share, as EC2
    # allows) it gets a generated name and the record keeps the tag.
    groups = listed(context, Firewall.KIND)
    taken = {vpc.name for vpc in vpcs(context, groups).values()}
    held = {str(group["metadata"]["name"]) for group in groups}
    network = given_name(tags)
    while network is None or network in taken or default_group_name(network) in held:
        network = name_of({}, "vpc")
    annotations = {
        VPC_ANNOTATION: network,
        VPC_CIDR_ANNOTATION: str(block),
        VPC_TAGS_ANNOTATION: json.dumps(labels, sort_keys=True),
        DESCRIPTION_ANNOTATION: f"default VPC security group of {network}",
    }
    if (kept := kept_name(tags, network)) is not None:
        annotations[VPC_NAME_ANNOTATION] = kept
    record: Wire = {
        "apiVersion": API_VERSION,
        "kind": Firewall.KIND,
        "metadata": {
            "name": default_group_name(network),
            "namespace": context.namespace,
            "annotations": annotations,
        },
        "spec": {"rules": [everything_out()]},
    }
    created = context.backend.create(record, dry_run=dry_run)
    if dry_run:
        raise dry_run_succeeded()
    vpc = Vpc(vpc_id(context.namespace, network, str(created["metadata"]["uid"])), network,
              str(block), _tag_set(kept or network, labels), created)  # fmt: skip
    return {"vpc": _vpc_fields(vpc)}


def everything_out() -> Wire:
    """The rule EC2 gives every new security group: all traffic out to anywhere (IPv4)."""
    return {"direction": RuleDirection.EGRESS.value, "protocol": "all", "cidrs": ["0.0.0.0/0"]}


def describe_vpcs(context: ActionContext, params: Params) -> Fields:
    dry_run = params.boolean("DryRun")
    context.pool()
    known = vpcs(context)
    requested = params.strings("VpcId")
    chosen = [find_vpc(context, wanted, known) for wanted in requested] or list(known.values())

    def attributes(vpc: Vpc) -> Mapping[str, Sequence[str]]:
        return {
            "vpc-id": [vpc.id],
            "cidr": [vpc.cidr],
            "cidr-block-association.cidr-block": [vpc.cidr],
            "state": [_AVAILABLE],
            "is-default": ["false"],
            **tag_attributes(vpc.tags),
        }

    filters = params.filters()
    supported = ["vpc-id", "cidr", "cidr-block-association.cidr-block", "state", "is-default"]
    chosen = apply_filters(chosen, filters, supported + tag_filter_names(filters), attributes)
    shown, token = page(chosen, lambda vpc: vpc.id, params)
    if dry_run:
        raise dry_run_succeeded()
    items: list[Value] = [_vpc_fields(vpc) for vpc in shown]
    return {"vpcSet": items, "nextToken": token}


def delete_vpc(context: ActionContext, params: Params) -> Fields:
    dry_run = params.boolean("DryRun")
    context.pool()
    groups, subnets = listed(context, Firewall.KIND), listed(context, Subnet.KIND)
    vpc = find_vpc(context, params.require("VpcId"), vpcs(context, groups, subnets))
    users = [
        id_of(Subnet.KIND, subnet)
        for subnet in subnets
        if subnet["spec"]["network"]["name"] == vpc.name
    ]
    users += [
        id_of(Firewall.KIND, group)
        for group in groups
        if _annotations(group).get(VPC_ANNOTATION) == vpc.name and not is_default_group(group)
    ]
    if vpc.record is not None:
        users += users_of(context, group=vpc.record["metadata"]["name"])
    if users:
        raise dependency_violation(f"vpc '{vpc.id}'", sorted(users))
    if vpc.record is not None:
        info = by_kind(Firewall.KIND)
        name = vpc.record["metadata"]["name"]
        context.backend.delete(info, context.namespace, name, dry_run=dry_run)
    if dry_run:
        raise dry_run_succeeded()
    return {"return": True}


# --------------------------------------------------------------------------- subnets


def regional_subnets(context: ActionContext, region: str) -> list[Wire]:
    """The namespace's subnets in ``region`` (its pool) not being deleted."""
    return [
        subnet
        for subnet in listed(context, Subnet.KIND)
        if subnet["spec"].get("pool") == region and not deleting(subnet)
    ]


def _subnet_state(subnet: Subnet) -> str:
    if subnet.status.phase == "Ready":
        return _AVAILABLE
    return "failed" if subnet.status.phase == "Failed" else "pending"


def _subnet_fields(wire: Wire, vpc: str) -> Fields:
    """One ``subnetSet`` item; ``vpc`` is the id of its network's VPC (:class:`VpcIds`)."""
    subnet = Subnet.model_validate(wire)
    placement = subnet.status.placement
    zone = subnet.spec.zone or (placement.zone if placement is not None else None)
    block = ipaddress.ip_network(subnet.spec.cidr)
    return {
        "subnetId": id_of(Subnet.KIND, wire),
        "state": _subnet_state(subnet),
        "vpcId": vpc,
        "cidrBlock": subnet.spec.cidr,
        "ipv6CidrBlockAssociationSet": [],
        # The addresses the CIDR offers, as EC2 counts them; not reduced by the instances in it.
        "availableIpAddressCount": max(block.num_addresses - _RESERVED_ADDRESSES, 0),
        "availabilityZone": zone,
        "availabilityZoneId": zone,
        "defaultForAz": False,
        "mapPublicIpOnLaunch": False,
        "assignIpv6AddressOnCreation": False,
        "tagSet": tags_of(wire),
    }


def create_subnet(context: ActionContext, params: Params) -> Fields:
    dry_run = params.boolean("DryRun")
    pool = context.pool()
    subnets = listed(context, Subnet.KIND)
    vpc = find_vpc(context, params.require("VpcId"), vpcs(context, subnets=subnets))
    block = _ipv4_block(params.require("CidrBlock"), "CidrBlock")
    outer = ipaddress.ip_network(vpc.cidr)
    if not (block.version == outer.version and block.subnet_of(outer)):
        raise Ec2Error(
            "InvalidSubnet.Range", f"The CIDR '{block}' is not within the VPC's CIDR {vpc.cidr}"
        )
    if block.prefixlen > _LONGEST:
        raise Ec2Error("InvalidSubnet.Range", f"The CIDR '{block}' is smaller than a /{_LONGEST}")
    for other in subnets:
        if other["spec"]["network"]["name"] == vpc.name and block.overlaps(
            ipaddress.ip_network(other["spec"]["cidr"])
        ):
            raise Ec2Error(
                "InvalidSubnet.Conflict",
                f"The CIDR '{block}' conflicts with another subnet ({id_of(Subnet.KIND, other)})",
            )
    # A zone's id is its name here (DescribeAvailabilityZones answers both alike).
    zone_parameter = "AvailabilityZone" if params.get("AvailabilityZone") else "AvailabilityZoneId"
    zone = params.get(zone_parameter) or None
    zones = pool_zones(context, pool)
    if zone is not None and zones and zone not in zones:
        raise invalid_parameter(
            zone_parameter,
            f"{zone!r} is not a zone of region {pool.metadata.name}: {', '.join(zones)}",
        )
    tags = requested_tags(params, "subnet")
    spec: Wire = {
        "pool": pool.metadata.name,
        "network": {"name": vpc.name, "cidr": vpc.cidr},
        "cidr": str(block),
    }
    if zone is not None:
        spec["zone"] = zone
    name = name_of(tags, "subnet")
    wire: Wire = {
        "apiVersion": API_VERSION,
        "kind": Subnet.KIND,
        "metadata": {
            "name": name,
            "namespace": context.namespace,
            "labels": labels_of(tags, "TagSpecification"),
            "annotations": name_annotations(tags, name),
        },
        "spec": spec,
    }
    created = context.backend.create(wire, dry_run=dry_run)
    if dry_run:
        raise dry_run_succeeded()
    return {"subnet": _subnet_fields(created, vpc.id)}


def describe_subnets(context: ActionContext, params: Params) -> Fields:
    dry_run = params.boolean("DryRun")
    pool = context.pool()
    subnets = regional_subnets(context, pool.metadata.name)
    if requested := params.strings("SubnetId"):
        subnets = pick(Subnet.KIND, subnets, requested)
    vpc_ids = VpcIds(context)

    def fields_of(wire: Wire) -> Fields:
        return _subnet_fields(wire, vpc_ids(wire["spec"]["network"]["name"]))

    def attributes(wire: Wire) -> Mapping[str, Sequence[str]]:
        fields = fields_of(wire)
        zone = fields["availabilityZone"]
        return {
            "subnet-id": [str(fields["subnetId"])],
            "vpc-id": [str(fields["vpcId"])],
            "cidr-block": [str(fields["cidrBlock"])],
            "cidr": [str(fields["cidrBlock"])],
            "availability-zone": [str(zone)] if zone else [],
            "state": [str(fields["state"])],
            "default-for-az": ["false"],
            **tag_attributes(tags_of(wire)),
        }

    filters = params.filters()
    supported = ["subnet-id", "vpc-id", "cidr-block", "cidr", "availability-zone", "state",
                 "default-for-az"]  # fmt: skip
    chosen = apply_filters(subnets, filters, supported + tag_filter_names(filters), attributes)
    shown, token = page(chosen, lambda wire: id_of(Subnet.KIND, wire), params)
    if dry_run:
        raise dry_run_succeeded()
    items: list[Value] = [fields_of(wire) for wire in shown]
    return {"subnetSet": items, "nextToken": token}


def delete_subnet(context: ActionContext, params: Params) -> Fields:
    dry_run = params.boolean("DryRun")
    pool = context.pool()
    wanted = params.require("SubnetId")
    (subnet,) = pick(Subnet.KIND, regional_subnets(context, pool.metadata.name), [wanted])
    name = subnet["metadata"]["name"]
    if users := users_of(context, subnet=name):
        raise dependency_violation(f"subnet '{wanted}'", users)
    context.backend.delete(by_kind(Subnet.KIND), context.namespace, name, dry_run=dry_run)
    if dry_run:
        raise dry_run_succeeded()
    return {"return": True}
