"""The volume actions: EBS volumes as skybroker Volumes (DESIGN §3, §12).

Where it sits: EC2 action handlers (``registry``) on the shared mapping of ``resources`` (``vol-``
ids from uids, the ``Name`` tag as the name, other tags as labels, pages). They read and write
Volumes through ``context.backend`` as the key's user — RBAC, admission and the namespace's
quota apply as for REST — and only ever write the desired state (``spec.attachTo``, deletion);
the volume reconciler (``reconcilers.volume``) makes the cloud follow, and what it observed
(``status``) is what these actions report. A region is a Pool: the actions see the volumes
and instances whose ``spec.pool`` is the request's region (a volume drawn straight from an
account, or from another pool, is not there: ``InvalidVolume.NotFound``, as an id of another
tenant's volume is).

- ``CreateVolume``: ``Size`` (GiB) → ``spec.sizeGiB``; ``AvailabilityZone`` (or
  ``AvailabilityZoneId``: a zone's id is its name, ``catalog``) → ``spec.zone``, one of the
  pool's zones (``catalog.pool_zones``) else ``InvalidZone.NotFound``; ``VolumeType`` →
  ``spec.type`` (absent: left absent, made and reported as ``DEFAULT_VOLUME_TYPE``); ``spec.pool``
  = the region. ``TagSpecification.N`` of resource type ``volume``: ``Name`` is the object's
  name, other tags its labels; without ``Name`` the name is generated (``volume-`` + hex).
  ``ClientToken`` makes it idempotent: the token is kept in the annotation
  ``ec2.skybroker.io/client-token`` and a generated name is derived from it, so a retry meets
  its first attempt by name (the store's create is the arbiter: two racing retries cannot both
  create) and answers that volume; the same token with other parameters is
  ``IdempotentParameterMismatch``. ``SnapshotId`` is ``InvalidSnapshot.NotFound`` (there are
  no snapshots); ``Iops``, ``Throughput``, ``KmsKeyId``, ``OutpostArn``, ``Encrypted=true`` and
  ``MultiAttachEnabled=true`` ask for what a Volume cannot express and are
  ``InvalidParameterValue`` rather than silently dropped. Answers at once with ``creating``.
- ``DescribeVolumes``: ``VolumeId.N`` (unknown, another region's or another tenant's:
  ``InvalidVolume.NotFound``; not together with ``MaxResults``, as EC2 says); filters
  ``volume-id``, ``status``, ``availability-zone``, ``size``, ``volume-type``, ``create-time``,
  ``encrypted``, ``multi-attach-enabled``, ``attachment.instance-id``, ``attachment.status``,
  ``attachment.device``, ``attachment.delete-on-termination``, ``tag:KEY``, ``tag-key``,
  ``tag-value``; ``MaxResults``/``NextToken`` (``resources.page``, by volume id).
- ``AttachVolume``: ``VolumeId``, ``InstanceId`` (``resources.find``), ``Device`` → merge patch
  ``spec.attachTo {instance: its name, device}`` at the volume's resourceVersion (a concurrent
  change loses the race: ``Unavailable``, retried by clients). Refused as EC2 does: a volume
  not ``available`` (creating, failed or being deleted: ``IncorrectState``; attached or
  attaching: ``VolumeInUse``), an instance being terminated (``IncorrectState``), an instance
  placed (or pinned, ``spec.placement.zone``) in another zone than the volume
  (``InvalidVolume.ZoneMismatch``). An instance not yet running is accepted: the reconciler
  attaches once it runs (EC2 would refuse a pending one; the broker's own wait is kinder and
  reported as ``attaching``). Answers ``attaching``.
- ``DetachVolume``: ``attachTo`` → null at the volume's resourceVersion; ``InstanceId`` and
  ``Device``, when given, must name the attachment (``InvalidAttachment.NotFound``); ``Force``
  is accepted (the reconciler's detach is the only kind there is). A volume with no
  attachment asked for is ``IncorrectState``. Answers ``detaching``.
- ``DeleteVolume``: ``VolumeInUse`` while an attachment is asked for or still seen (attaching,
  attached or detaching); else the Volume is deleted (the reconciler deletes the cloud volume,
  then lets the object go). Answers ``true``.

Every action honours ``DryRun=true``: the same checks and the write as a dry run (RBAC,
admission, quota), answered ``DryRunOperation``.

The states every answer shows (``creating``/``available``/``in-use``/``deleting``/``error``;
attachments ``attaching``/``attached``/``detaching``) are mapped from the Volume's phase,
``spec.attachTo`` and ``status.attachedTo`` in ``volumeview``, which documents the mapping.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from api_types import API_VERSION, Instance, Volume
from api_types.common import MAX_DISK_GIB
from api_types.registry import by_kind
from apiserver.ec2.catalog import pool_zones
from apiserver.ec2.context import ActionContext
from apiserver.ec2.errors import Ec2Error, dry_run_succeeded, invalid_parameter, missing_parameter
from apiserver.ec2.filters import apply_filters
from apiserver.ec2.params import Params
from apiserver.ec2.registry import ActionRegistry
from apiserver.ec2.resources import (
    client_token,
    given_name,
    labels_of,
    name_annotations,
    page,
    pick,
)
from apiserver.ec2.volumeview import (
    FILTERS,
    TAG_FILTER,
    InstanceIds,
    attach_time,
    attachment_of,
    described,
    region_instances,
    region_volumes,
    timestamp,
    volume_state,
    zone_of,
)
from apiserver.ec2.xmlwriter import Fields
from controller.errors import ApiError

__all__ = [
    "CLIENT_TOKEN_ANNOTATION",
    "attach_volume",
    "create_volume",
    "delete_volume",
    "describe_volumes",
    "detach_volume",
    "register",
]

Wire = dict[str, Any]

#: Where CreateVolume keeps the ``ClientToken`` it was given (idempotency).
CLIENT_TOKEN_ANNOTATION = "ec2.skybroker.io/client-token"
_GENERATED_PREFIX = "volume-"
_TOKEN_HEX_DIGITS = 17
#: Parameters that ask for what a Volume cannot express (the module docstring).
_UNSUPPORTED = ("Iops", "Throughput", "KmsKeyId", "OutpostArn")
_UNSUPPORTED_TRUE = ("Encrypted", "MultiAttachEnabled")


def register(registry: ActionRegistry) -> None:
    registry.add("CreateVolume", create_volume)
    registry.add("DescribeVolumes", describe_volumes)
    registry.add("AttachVolume", attach_volume)
    registry.add("DetachVolume", detach_volume)
    registry.add("DeleteVolume", delete_volume)


def _one_volume(context: ActionContext, params: Params) -> tuple[str, Wire, Volume]:
    """``VolumeId``, its Volume as stored (wire) and parsed; ``InvalidVolume.NotFound``."""
    volume_id = params.require("VolumeId")
    (wire,) = pick(Volume.KIND, region_volumes(context), [volume_id])
    return volume_id, wire, Volume.model_validate(wire)


# --------------------------------------------------------------------------- DescribeVolumes


def describe_volumes(context: ActionContext, params: Params) -> Fields:
    dry_run = params.boolean("DryRun")
    context.pool()  # the region must be a pool the namespace may use, as for every action
    ids = params.strings("VolumeId")
    if ids and params.get("MaxResults") is not None:
        raise Ec2Error(
            "InvalidParameterCombination",
            "The parameter volumeSet cannot be used with the parameter maxResults",
        )
    here = region_volumes(context)
    wires = pick(Volume.KIND, here, ids) if ids else here
    instance_ids = InstanceIds(context)
    filters = params.filters()
    # ``tag:KEY`` names any key: each one asked for is a filter this action knows.
    supported = [*FILTERS, *(name for name in filters if name.startswith(TAG_FILTER))]
    chosen = apply_filters(
        [described(wire, instance_ids) for wire in wires],
        filters,
        supported,
        lambda item: item.attributes(),
    )
    shown, next_token = page(chosen, lambda item: item.volume_id, params)
    if dry_run:
        raise dry_run_succeeded()
    return {"volumeSet": [item.fields() for item in shown], "nextToken": next_token}


# --------------------------------------------------------------------------- CreateVolume


def _tags(params: Params) -> dict[str, str]:
    """The tags of the ``volume`` TagSpecifications; another resource type is refused."""
    tags: dict[str, str] = {}
    for index, specification in enumerate(params.tag_specifications(), start=1):
        if specification.resource_type != "volume":
            raise invalid_parameter(
                f"TagSpecification.{index}.ResourceType",
                f"{specification.resource_type!r} is not a resource CreateVolume makes "
                "(only 'volume')",
            )
        for key, value in specification.tags.items():
            if key in tags:
                raise invalid_parameter(f"TagSpecification.{index}", f"duplicate tag key {key!r}")
            tags[key] = value
    return tags


def _name(tags: Mapping[str, str], token: str | None) -> str:
    """The Volume's name: the ``Name`` tag when it is an object name (other text is kept as
    the tag: ``resources.name_annotations``); else derived from the client token (so a retry
    meets its first attempt); else random."""
    given = given_name(tags)
    if given is not None:
        return given
    if token is not None:
        digest = hashlib.sha256(token.encode("utf-8")).hexdigest()[:_TOKEN_HEX_DIGITS]
        return f"{_GENERATED_PREFIX}{digest}"
    return f"{_GENERATED_PREFIX}{secrets.token_hex(8)}"


def _refuse_unsupported(params: Params) -> None:
    for name in _UNSUPPORTED:
        if params.get(name) is not None:
            raise invalid_parameter(name, "a skybroker Volume has no such setting")
    for name in _UNSUPPORTED_TRUE:
        if params.boolean(name):
            raise invalid_parameter(name, "a skybroker Volume offers no such option")


def _earlier(context: ActionContext, wanted: Wire, token: str, taken: ApiError) -> Wire:
    """The volume an earlier request with ``token`` made under ``wanted``'s name (``taken``
    if the name is another volume's); ``IdempotentParameterMismatch`` if it was asked for
    with other parameters."""
    metadata = wanted["metadata"]
    info = by_kind(Volume.KIND)
    existing = context.backend.get(info, metadata["namespace"], metadata["name"])
    annotations = existing["metadata"].get("annotations") or {}
    if annotations.get(CLIENT_TOKEN_ANNOTATION) != token:
        raise taken
    before, now = Volume.model_validate(existing).spec, Volume.model_validate(wanted).spec
    # What CreateVolume sets; ``attachTo`` may have changed since, by AttachVolume.
    if (before.pool, before.size_gib, before.zone, before.type) != (
        now.pool,
        now.size_gib,
        now.zone,
        now.type,
    ):
        raise Ec2Error(
            "IdempotentParameterMismatch",
            f"The client token '{token}' was used with other parameters",
        )
    return existing


def create_volume(context: ActionContext, params: Params) -> Fields:
    dry_run = params.boolean("DryRun")
    pool = context.pool()
    snapshot = params.get("SnapshotId")
    if snapshot:
        raise Ec2Error("InvalidSnapshot.NotFound", f"The snapshot '{snapshot}' does not exist.")
    size = params.integer("Size", 1, MAX_DISK_GIB)
    if size is None:
        raise missing_parameter("Size")
    zone = params.get("AvailabilityZone") or params.get("AvailabilityZoneId")
    if not zone:
        raise missing_parameter("AvailabilityZone")
    zones = pool_zones(context, pool)
    if zone not in zones:
        raise Ec2Error(
            "InvalidZone.NotFound",
            f"The zone '{zone}' does not exist in region '{pool.metadata.name}' "
            f"(its zones: {', '.join(zones) or 'none'})",
        )
    _refuse_unsupported(params)
    tags = _tags(params)
    token = client_token(params)
    name = _name(tags, token)
    metadata: Wire = {
        "name": name,
        "namespace": context.namespace,
        "labels": labels_of(tags, "tag"),
    }
    annotations = name_annotations(tags, name)
    if token is not None:
        annotations[CLIENT_TOKEN_ANNOTATION] = token
    if annotations:
        metadata["annotations"] = annotations
    spec: Wire = {"pool": pool.metadata.name, "sizeGiB": size, "zone": zone}
    volume_type = params.get("VolumeType")
    if volume_type:
        spec["type"] = volume_type
    wanted = {"apiVersion": API_VERSION, "kind": Volume.KIND, "metadata": metadata, "spec": spec}
    try:
        created = context.backend.create(wanted, dry_run=dry_run)
    except ApiError as exc:
        if token is None or exc.reason != "AlreadyExists":
            raise
        created = _earlier(context, wanted, token, exc)
    if dry_run:
        raise dry_run_succeeded()
    return described(created, InstanceIds(context)).fields()


# --------------------------------------------------------------------------- Attach / Detach


def _patch(context: ActionContext, wire: Wire, spec: Wire, dry_run: bool) -> Wire:
    """Merge-patch ``spec`` into the volume at the resourceVersion the action judged it by."""
    metadata = wire["metadata"]
    body = {"metadata": {"resourceVersion": metadata["resourceVersion"]}, "spec": spec}
    info = by_kind(Volume.KIND)
    return context.backend.patch(
        info, metadata["namespace"], metadata["name"], body, dry_run=dry_run
    )


def _now() -> str:
    stamp = timestamp(datetime.now(UTC))
    assert stamp is not None
    return stamp


def _instance_zone(instance: Instance) -> str | None:
    if instance.status.placement is not None and instance.status.placement.zone:
        return instance.status.placement.zone
    hints = instance.spec.placement
    return hints.zone if hints is not None else None


def attach_volume(context: ActionContext, params: Params) -> Fields:
    dry_run = params.boolean("DryRun")
    context.pool()
    volume_id, wire, volume = _one_volume(context, params)
    instance_id = params.require("InstanceId")
    device = params.require("Device")
    (instance_wire,) = pick(Instance.KIND, region_instances(context), [instance_id])
    instance = Instance.model_validate(instance_wire)
    state = volume_state(volume)
    if state == "in-use":
        raise Ec2Error("VolumeInUse", f"{volume_id} is already attached to an instance")
    if state != "available":
        raise Ec2Error(
            "IncorrectState", f"The volume '{volume_id}' is not 'available': it is '{state}'"
        )
    if instance.metadata.deletion_timestamp is not None:
        raise Ec2Error("IncorrectState", f"The instance '{instance_id}' is being terminated")
    mine, theirs = zone_of(volume), _instance_zone(instance)
    if mine and theirs and mine != theirs:
        raise Ec2Error(
            "InvalidVolume.ZoneMismatch",
            f"The volume '{volume_id}' is in zone {mine}, the instance '{instance_id}' in {theirs}",
        )
    attach_to = {"instance": instance.metadata.name, "device": device}
    _patch(context, wire, {"attachTo": attach_to}, dry_run)
    if dry_run:
        raise dry_run_succeeded()
    return {
        "volumeId": volume_id,
        "instanceId": instance_id,
        "device": device,
        "status": "attaching",
        "attachTime": _now(),
        "deleteOnTermination": False,
    }


def detach_volume(context: ActionContext, params: Params) -> Fields:
    dry_run = params.boolean("DryRun")
    params.boolean("Force")  # accepted (it must parse); the reconciler's detach is the only one
    context.pool()
    volume_id, wire, volume = _one_volume(context, params)
    target = volume.spec.attach_to
    attachment = attachment_of(volume)
    if target is None or attachment is None:
        what = "already detaching" if attachment is not None else f"'{volume_state(volume)}'"
        raise Ec2Error(
            "IncorrectState", f"The volume '{volume_id}' is {what}: there is nothing to detach"
        )
    attached_to = InstanceIds(context).of(attachment)
    asked_instance, asked_device = params.get("InstanceId"), params.get("Device")
    if (asked_instance is not None and asked_instance != attached_to) or (
        asked_device is not None and asked_device != target.device
    ):
        raise Ec2Error(
            "InvalidAttachment.NotFound",
            f"The volume '{volume_id}' is not attached to instance "
            f"'{asked_instance or attached_to}' as device '{asked_device or target.device}'",
        )
    _patch(context, wire, {"attachTo": None}, dry_run)
    if dry_run:
        raise dry_run_succeeded()
    return {
        "volumeId": volume_id,
        "instanceId": attached_to,
        "device": target.device,
        "status": "detaching",
        "attachTime": attach_time(volume, attachment),
        "deleteOnTermination": False,
    }


# --------------------------------------------------------------------------- DeleteVolume


def delete_volume(context: ActionContext, params: Params) -> Fields:
    dry_run = params.boolean("DryRun")
    context.pool()
    volume_id, wire, volume = _one_volume(context, params)
    attachment = attachment_of(volume)
    if attachment is not None:
        instance_id = InstanceIds(context).of(attachment) or attachment.instance
        raise Ec2Error("VolumeInUse", f"Volume {volume_id} is currently attached to {instance_id}")
    metadata = wire["metadata"]
    info = by_kind(Volume.KIND)
    context.backend.delete(info, metadata["namespace"], metadata["name"], dry_run=dry_run)
    if dry_run:
        raise dry_run_succeeded()
    return {"return": True}
