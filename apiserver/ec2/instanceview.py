"""Instances as EC2 sees them: states from phases, reservations, and DescribeInstances.

Where it sits: under the instance actions (``instances``: RunInstances and the power actions
answer with these items and states too), over ``resources`` (ids, tags, pages). Nothing here
writes.

**States** (EC2 code, name) from ``status.phase`` (``api_types.compute.InstancePhase``) and
``spec.powerState``, the first rule that applies::

    deletionTimestamp set, or phase Deleting       32 shutting-down
    phase Failed                                   48 terminated (stateReason: why, from the
                                                      Provisioned/Ready condition; the object
                                                      stays until TerminateInstances deletes it)
    phase Running, spec Stopped                    64 stopping (a stop asked, not done yet)
    phase Running                                  16 running
    phase Stopped, spec Running                     0 pending (a start asked, not done yet —
                                                      EC2's stopped → pending → running)
    phase Stopped                                  80 stopped
    no phase yet, Pending, Scheduled, Provisioning  0 pending

A deleted object is gone at once (EC2 lists ``terminated`` instances for a while; the store
keeps nothing to list).

**Reservations**: the instances one RunInstances made share the reservation id it recorded in
the annotation :data:`RESERVATION` (with :data:`LAUNCH_INDEX`, EC2's ``amiLaunchIndex``); an
instance made otherwise (REST, skyctl, GitOps) is a reservation of its own, ``r-`` and the
digits of its instance id.

**DescribeInstances**: the namespace's instances in the request's region (``spec.pool`` = the
region: ``volumeview.region_instances``, what every instance action sees); ``InstanceId.N``
(each must be one of them: ``InvalidInstanceID.NotFound`` otherwise, another tenant's or
another region's included), ``Filter.N`` (the names
in :data:`FILTERS`, plus ``tag:KEY``, ``tag-key``, ``tag-value``), ``MaxResults``/``NextToken``
(over instances, by id; EC2 refuses ``MaxResults`` beside ``InstanceId``:
``InvalidParameterCombination``); each page's instances grouped into their reservations, in the
order of their first instance. ``vpcId`` is the VPC of the instance's subnet's network
(``vpcs.VpcIds``), ``groupSet`` its firewalls (security groups, named as
``securitygroups.group_name_of`` says), addresses its ``status.addresses`` (first private and
first public IP, a hostname as ``dnsName``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from api_types.compute import Instance
from apiserver.ec2.context import ActionContext
from apiserver.ec2.errors import Ec2Error, dry_run_succeeded
from apiserver.ec2.filters import apply_filters
from apiserver.ec2.params import Params
from apiserver.ec2.resources import (
    id_of,
    listed,
    owner_id,
    page,
    pick,
    tag_attributes,
    tag_filter_names,
    tags_of,
)
from apiserver.ec2.securitygroups import group_name_of
from apiserver.ec2.volumeview import region_instances
from apiserver.ec2.vpcs import VpcIds
from apiserver.ec2.xmlwriter import Fields, Value

__all__ = [
    "FILTERS",
    "LAUNCH_INDEX",
    "RESERVATION",
    "Related",
    "describe_instances",
    "filtered",
    "instance_item",
    "instance_type",
    "launch_index",
    "reservation",
    "reservation_of",
    "reservations",
    "state_of",
]

Wire = dict[str, Any]

#: The annotation holding the id of the reservation (RunInstances call) an instance came from.
RESERVATION = "ec2.skybroker.io/reservation-id"
#: The annotation holding its index in that reservation (``amiLaunchIndex``).
LAUNCH_INDEX = "ec2.skybroker.io/launch-index"

PENDING, RUNNING, SHUTTING_DOWN = (0, "pending"), (16, "running"), (32, "shutting-down")
TERMINATED, STOPPING, STOPPED = (48, "terminated"), (64, "stopping"), (80, "stopped")

#: The filters DescribeInstances knows besides the tag filters (``resources.TAG_FILTERS``).
FILTERS = (
    "availability-zone",
    "group-id",
    "group-name",
    "image-id",
    "instance-id",
    "instance-state-code",
    "instance-state-name",
    "instance-type",
    "ip-address",
    "launch-index",
    "private-ip-address",
    "reservation-id",
    "subnet-id",
    "vpc-id",
)


def state_of(obj: Wire) -> tuple[int, str]:
    """EC2's (code, name) of an Instance (the module docstring's table)."""
    metadata, spec = obj["metadata"], obj.get("spec") or {}
    phase = (obj.get("status") or {}).get("phase")
    stopped_wanted = spec.get("powerState") == "Stopped"
    if metadata.get("deletionTimestamp") or phase == "Deleting":
        return SHUTTING_DOWN
    if phase == "Failed":
        return TERMINATED
    if phase == "Running":
        return STOPPING if stopped_wanted else RUNNING
    if phase == "Stopped":
        return STOPPED if stopped_wanted else PENDING
    return PENDING


def _state_reason(obj: Wire) -> Fields | None:
    """Why a Failed instance is ``terminated``: its Provisioned (else Ready) condition."""
    if (obj.get("status") or {}).get("phase") != "Failed":
        return None
    conditions = {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or []}
    condition = conditions.get("Provisioned") or conditions.get("Ready") or {}
    reason = condition.get("reason") or "Failed"
    return {"code": f"Server.{reason}", "message": condition.get("message") or reason}


def reservation_of(obj: Wire) -> str:
    annotations: Mapping[str, str] = obj["metadata"].get("annotations") or {}
    found = annotations.get(RESERVATION)
    # Alone in its reservation: the reservation takes the instance id's digits.
    return found if found else "r-" + id_of("Instance", obj).removeprefix("i-")


def launch_index(obj: Wire) -> int:
    annotations: Mapping[str, str] = obj["metadata"].get("annotations") or {}
    raw = annotations.get(LAUNCH_INDEX, "0")
    return int(raw) if raw.isdigit() else 0


def instance_type(obj: Wire) -> str | None:
    """The InstanceType an Instance answers: its HardwareProfile, else its size (inline
    constraints have no EC2 name: the size placement chose, once there is one)."""
    hardware = obj["spec"].get("hardware") or {}
    placement = (obj.get("status") or {}).get("placement") or {}
    found = hardware.get("profile") or hardware.get("size") or placement.get("size")
    return str(found) if found else None


def _zone(obj: Wire) -> str | None:
    placed = ((obj.get("status") or {}).get("placement") or {}).get("zone")
    asked = (obj["spec"].get("placement") or {}).get("zone")
    return placed or asked


def _address(obj: Wire, kind: str) -> str | None:
    for address in (obj.get("status") or {}).get("addresses") or []:
        if address.get("type") == kind:
            return str(address.get("address"))
    return None


class Related:
    """The subnets and firewalls an answer's instances reference, listed once per request
    (and only if some instance references one): their ids, and a subnet's VPC."""

    def __init__(self, context: ActionContext) -> None:
        self._context = context
        self._by_kind: dict[str, dict[str, Wire]] = {}
        self._vpc_ids = VpcIds(context)

    def _named(self, kind: str) -> dict[str, Wire]:
        if kind not in self._by_kind:
            objects = listed(self._context, kind)
            self._by_kind[kind] = {str(o["metadata"]["name"]): o for o in objects}
        return self._by_kind[kind]

    def subnet(self, obj: Wire) -> tuple[str | None, str | None]:
        """(subnetId, vpcId) of the instance's subnet; None, None without one (or if it is
        gone: the instance waits for it)."""
        name = obj["spec"].get("subnetRef")
        subnet = self._named("Subnet").get(name) if name else None
        if subnet is None:
            return None, None
        network = str(subnet["spec"]["network"]["name"])
        return id_of("Subnet", subnet), self._vpc_ids(network)

    def groups(self, obj: Wire) -> list[Fields]:
        """``groupSet``: each firewall the instance references that exists."""
        names: list[str] = obj["spec"].get("firewallRefs") or []
        firewalls = self._named("Firewall") if names else {}
        return [
            {
                "groupId": id_of("Firewall", firewalls[name]),
                "groupName": group_name_of(firewalls[name]),
            }
            for name in names
            if name in firewalls
        ]


def instance_item(obj: Wire, related: Related) -> Fields:
    """One ``instancesSet`` item as boto3 parses it."""
    code, name = state_of(obj)
    subnet_id, vpc = related.subnet(obj)
    return {
        "instanceId": id_of("Instance", obj),
        "imageId": obj["spec"].get("image"),
        "instanceState": {"code": code, "name": name},
        "privateDnsName": "",
        "dnsName": _address(obj, "Hostname") or "",
        "reason": "",
        "amiLaunchIndex": launch_index(obj),
        "productCodes": [],
        "instanceType": instance_type(obj),
        "launchTime": obj["metadata"].get("creationTimestamp"),
        "placement": {"availabilityZone": _zone(obj), "groupName": "", "tenancy": "default"},
        "monitoring": {"state": "disabled"},
        "subnetId": subnet_id,
        "vpcId": vpc,
        "privateIpAddress": _address(obj, "PrivateIP"),
        "ipAddress": _address(obj, "PublicIP"),
        "sourceDestCheck": True,
        "groupSet": related.groups(obj),
        "stateReason": _state_reason(obj),
        "rootDeviceType": "ebs",
        "rootDeviceName": "/dev/sda1",
        "blockDeviceMapping": [],
        "virtualizationType": "hvm",
        "tagSet": tags_of(obj),
        "hypervisor": "xen",
    }


def reservation(
    context: ActionContext, reservation_id: str, members: Sequence[Wire], related: Related
) -> Fields:
    """One reservation: its id, owner and instances (by launch index)."""
    return {
        "reservationId": reservation_id,
        "ownerId": owner_id(context.namespace),
        "groupSet": [],
        "instancesSet": [instance_item(obj, related) for obj in sorted(members, key=launch_index)],
    }


def reservations(context: ActionContext, objects: Sequence[Wire], related: Related) -> list[Value]:
    """``reservationSet``: ``objects`` grouped by reservation, in the order of their first
    instance."""
    grouped: dict[str, list[Wire]] = {}
    for obj in objects:
        grouped.setdefault(reservation_of(obj), []).append(obj)
    return [reservation(context, found, members, related) for found, members in grouped.items()]


def _attributes(obj: Wire, related: Related) -> dict[str, list[str]]:
    code, name = state_of(obj)
    subnet_id, vpc = related.subnet(obj)
    found: dict[str, list[str]] = {
        "availability-zone": [zone] if (zone := _zone(obj)) else [],
        "group-id": [str(g["groupId"]) for g in related.groups(obj)],
        "group-name": [str(g["groupName"]) for g in related.groups(obj)],
        "image-id": [str(obj["spec"].get("image"))],
        "instance-id": [id_of("Instance", obj)],
        "instance-state-code": [str(code)],
        "instance-state-name": [name],
        "instance-type": [kind] if (kind := instance_type(obj)) else [],
        "ip-address": [ip] if (ip := _address(obj, "PublicIP")) else [],
        "launch-index": [str(launch_index(obj))],
        "private-ip-address": [ip] if (ip := _address(obj, "PrivateIP")) else [],
        "reservation-id": [reservation_of(obj)],
        "subnet-id": [subnet_id] if subnet_id else [],
        "vpc-id": [vpc] if vpc else [],
    }
    return {**found, **tag_attributes(tags_of(obj))}


def filtered(
    objects: Sequence[Wire], filters: Mapping[str, Sequence[str]], related: Related
) -> list[Wire]:
    """``objects`` that pass DescribeInstances' filters (``tag:KEY`` for any key)."""
    supported = [*FILTERS, *tag_filter_names(filters)]
    return apply_filters(objects, filters, supported, lambda obj: _attributes(obj, related))


def describe_instances(context: ActionContext, params: Params) -> Fields:
    dry_run = params.boolean("DryRun")
    ids = params.strings("InstanceId")
    if ids and params.get("MaxResults") is not None:
        raise Ec2Error(
            "InvalidParameterCombination",
            "The parameter instancesSet cannot be used with the parameter maxResults",
        )
    context.pool()  # the region must be a pool the namespace may use, as for every action
    objects = region_instances(context)
    if ids:
        objects = pick(Instance.KIND, objects, ids)
    related = Related(context)
    chosen = filtered(objects, params.filters(), related)
    shown, token = page(chosen, lambda obj: id_of("Instance", obj), params)
    if dry_run:
        raise dry_run_succeeded()
    return {"reservationSet": reservations(context, shown, related), "nextToken": token}
