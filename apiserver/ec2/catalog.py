"""The read-only "where" actions: what a client asks before it launches anything.

Where it sits: EC2 action handlers (``registry``), on the mapping of DESIGN §12 — a region is a
Pool, its availability zones are its members' zones, an image id is a logical image name the
pool's accounts map, an instance type is a HardwareProfile:

- ``DescribeRegions``: the pools the key's namespace may use (``allowedNamespaces`` absent or
  naming it) among those the user may list; ``regionEndpoint`` is this front door's URL.
  ``RegionName.N`` narrows (an unknown name is ``InvalidParameterValue``); filters
  ``region-name``, ``endpoint``, ``opt-in-status``.
- ``DescribeAvailabilityZones``: the request's pool's zones — a member's ``zones`` if it names
  any, else the zones its account's health probe last found available
  (``ProviderAccount.status.zones``, for a member in the account's own region); a zone two
  members share is listed once. ``ZoneName.N``/``ZoneId.N`` narrow; filters ``zone-name``,
  ``zone-id``, ``state``, ``region-name``, ``group-name``, ``zone-type``.
- ``DescribeImages``: the logical image names any of the pool's accounts maps, ``imageId`` =
  the name. ``ImageId.N`` narrows (unknown: ``InvalidAMIID.NotFound``); ``Owner.N`` and
  ``ExecutableBy.N`` are accepted and do not narrow (every image is the broker's, public to
  the pool's users); filters ``image-id``, ``name``, ``state``, ``image-type``, ``is-public``.
- ``DescribeInstanceTypes``: every HardwareProfile the user may list, with the least vCPUs
  and memory the profile guarantees (its ranges' minimum; a profile bounded only above
  answers its maximum) and the architectures it allows. ``InstanceType.N`` narrows (unknown:
  ``InvalidInstanceType``); filters ``instance-type``, ``vcpu-info.default-vcpus``,
  ``memory-info.size-in-mib``, ``processor-info.supported-architecture``.

Each honours ``DryRun=true``: the read runs (the region checked) and answers
``DryRunOperation`` (412) instead of its result.

The catalogue is read through ``context.lookups``, as a cloud's API shows it to every account
(see ``context``): which regions a key sees is its namespace's business (``allowedNamespaces``),
not an RBAC grant on cluster-scoped kinds that tenants are never given; every action but
DescribeRegions first resolves the request's region to its pool (``context.pool``). Of the
accounts behind a pool only their zones and image names are shown, never their names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from api_types.accounts import Arch, HardwareProfile, ProviderAccount
from api_types.common import IntRange
from api_types.pools import Pool
from apiserver.ec2.context import ActionContext
from apiserver.ec2.errors import Ec2Error, dry_run_succeeded
from apiserver.ec2.filters import apply_filters
from apiserver.ec2.params import Params
from apiserver.ec2.registry import ActionRegistry, Handler
from apiserver.ec2.xmlwriter import Fields, Value
from controller.errors import NotFoundError

__all__ = [
    "describe_availability_zones",
    "describe_images",
    "describe_instance_types",
    "describe_regions",
    "pool_images",
    "pool_zones",
    "register",
]

_AVAILABLE = "available"
_OPT_IN = "opt-in-not-required"


def register(registry: ActionRegistry) -> None:
    registry.add("DescribeRegions", _read_only(describe_regions))
    registry.add("DescribeAvailabilityZones", _read_only(describe_availability_zones))
    registry.add("DescribeImages", _read_only(describe_images))
    registry.add("DescribeInstanceTypes", _read_only(describe_instance_types))


def _read_only(handler: Handler) -> Handler:
    """``handler`` honouring ``DryRun``: a read changes nothing, so the dry run is the read
    itself (its refusals included), answered ``DryRunOperation`` when it succeeds."""

    def run(context: ActionContext, params: Params) -> Fields:
        dry_run = params.boolean("DryRun")
        fields = handler(context, params)
        if dry_run:
            raise dry_run_succeeded()
        return fields

    return run


def _unknown(requested: Sequence[str], known: Sequence[str]) -> list[str]:
    present = set(known)
    return [name for name in requested if name not in present]


# --------------------------------------------------------------------------- regions


def describe_regions(context: ActionContext, params: Params) -> Fields:
    pools = context.lookups.list(Pool)
    names = sorted(p.metadata.name for p in pools if p.spec.allows(context.namespace))
    requested = params.strings("RegionName")
    if missing := _unknown(requested, names):
        raise Ec2Error("InvalidParameterValue", f"Invalid region: {', '.join(missing)}")
    if requested:
        names = [name for name in names if name in requested]

    def attributes(name: str) -> Mapping[str, Sequence[str]]:
        return {"region-name": [name], "endpoint": [context.endpoint], "opt-in-status": [_OPT_IN]}

    supported = ("region-name", "endpoint", "opt-in-status")
    chosen = apply_filters(names, params.filters(), supported, attributes)
    regions = [
        {"regionName": name, "regionEndpoint": context.endpoint, "optInStatus": _OPT_IN}
        for name in chosen
    ]
    return {"regionInfo": regions}


# --------------------------------------------------------------------------- zones


def _account(context: ActionContext, name: str) -> ProviderAccount | None:
    """A member's account; None if it is missing (it offers nothing; the pool's status says
    so)."""
    try:
        return context.lookups.get(ProviderAccount, name)
    except NotFoundError:
        return None


def pool_zones(context: ActionContext, pool: Pool) -> list[str]:
    """The zones of the pool's members (the module docstring's rule), sorted, each once."""
    zones: set[str] = set()
    for member in pool.spec.members:
        if member.zones:
            zones.update(member.zones)
            continue
        account = _account(context, member.account)
        if account is not None and member.region in (None, account.spec.region):
            zones.update(account.status.zones)
    return sorted(zones)


def describe_availability_zones(context: ActionContext, params: Params) -> Fields:
    pool = context.pool()
    region = pool.metadata.name
    zones = pool_zones(context, pool)
    for parameter in ("ZoneName", "ZoneId"):
        requested = params.strings(parameter)
        if missing := _unknown(requested, zones):
            raise Ec2Error(
                "InvalidParameterValue", f"Invalid availability zone: [{', '.join(missing)}]"
            )
        if requested:
            zones = [zone for zone in zones if zone in requested]

    def attributes(zone: str) -> Mapping[str, Sequence[str]]:
        return {
            "zone-name": [zone],
            "zone-id": [zone],
            "state": [_AVAILABLE],
            "region-name": [region],
            "group-name": [region],
            "zone-type": ["availability-zone"],
        }

    supported = ("zone-name", "zone-id", "state", "region-name", "group-name", "zone-type")
    chosen = apply_filters(zones, params.filters(), supported, attributes)
    items: list[Value] = [
        {
            "zoneName": zone,
            "zoneState": _AVAILABLE,
            "regionName": region,
            "zoneId": zone,
            "zoneType": "availability-zone",
            "groupName": region,
            "networkBorderGroup": region,
            "optInStatus": _OPT_IN,
            "messageSet": [],
        }
        for zone in chosen
    ]
    return {"availabilityZoneInfo": items}


# --------------------------------------------------------------------------- images


def pool_images(context: ActionContext, pool: Pool) -> list[str]:
    """The logical image names any of the pool's accounts maps, sorted."""
    names: set[str] = set()
    for member in pool.spec.members:
        account = _account(context, member.account)
        if account is not None:
            names.update(account.spec.images)
    return sorted(names)


def describe_images(context: ActionContext, params: Params) -> Fields:
    pool = context.pool()
    images = pool_images(context, pool)
    requested = params.strings("ImageId")
    if missing := _unknown(requested, images):
        raise Ec2Error(
            "InvalidAMIID.NotFound", f"The image id '[{', '.join(missing)}]' does not exist"
        )
    if requested:
        images = [image for image in images if image in requested]

    def attributes(image: str) -> Mapping[str, Sequence[str]]:
        return {
            "image-id": [image],
            "name": [image],
            "state": [_AVAILABLE],
            "image-type": ["machine"],
            "is-public": ["true"],
        }

    supported = ("image-id", "name", "state", "image-type", "is-public")
    chosen = apply_filters(images, params.filters(), supported, attributes)
    items: list[Value] = [
        {
            "imageId": image,
            "imageLocation": f"{pool.metadata.name}/{image}",
            "imageState": _AVAILABLE,
            "imageOwnerAlias": "skybroker",
            "isPublic": True,
            "name": image,
            "description": f"logical image {image} of pool {pool.metadata.name}",
            "imageType": "machine",
            "rootDeviceType": "ebs",
            "rootDeviceName": "/dev/sda1",
            "virtualizationType": "hvm",
        }
        for image in chosen
    ]
    return {"imagesSet": items}


# --------------------------------------------------------------------------- instance types


def _least(bounds: IntRange | None) -> int | None:
    if bounds is None:
        return None
    return bounds.min if bounds.min is not None else bounds.max


def _instance_type(profile: HardwareProfile) -> Fields:
    spec = profile.spec
    vcpus, memory = _least(spec.cpu), _least(spec.memory_mib)
    architectures = [spec.arch.value] if spec.arch is not None else [a.value for a in Arch]
    return {
        "instanceType": profile.metadata.name,
        "currentGeneration": True,
        "freeTierEligible": False,
        "supportedUsageClasses": ["on-demand"],
        "supportedRootDeviceTypes": ["ebs"],
        "supportedVirtualizationTypes": ["hvm"],
        "bareMetal": False,
        "processorInfo": {"supportedArchitectures": architectures},
        "vCpuInfo": {"defaultVCpus": vcpus} if vcpus is not None else None,
        "memoryInfo": {"sizeInMiB": memory} if memory is not None else None,
        "instanceStorageSupported": False,
    }


def describe_instance_types(context: ActionContext, params: Params) -> Fields:
    context.pool()  # the region must be a pool the namespace may use, as for every action
    profiles = sorted(context.lookups.list(HardwareProfile), key=lambda p: p.metadata.name)
    names = [profile.metadata.name for profile in profiles]
    requested = params.strings("InstanceType")
    if missing := _unknown(requested, names):
        raise Ec2Error(
            "InvalidInstanceType",
            f"The following supplied instance types do not exist: [{', '.join(missing)}]",
        )
    if requested:
        profiles = [profile for profile in profiles if profile.metadata.name in requested]

    def attributes(profile: HardwareProfile) -> Mapping[str, Sequence[str]]:
        vcpus, memory = _least(profile.spec.cpu), _least(profile.spec.memory_mib)
        arch = profile.spec.arch
        return {
            "instance-type": [profile.metadata.name],
            "vcpu-info.default-vcpus": [str(vcpus)] if vcpus is not None else [],
            "memory-info.size-in-mib": [str(memory)] if memory is not None else [],
            "processor-info.supported-architecture": (
                [arch.value] if arch is not None else [a.value for a in Arch]
            ),
        }

    supported = (
        "instance-type",
        "vcpu-info.default-vcpus",
        "memory-info.size-in-mib",
        "processor-info.supported-architecture",
    )
    chosen = apply_filters(profiles, params.filters(), supported, attributes)
    types: list[Value] = [_instance_type(profile) for profile in chosen]
    return {"instanceTypeSet": types}
