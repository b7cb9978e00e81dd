"""The tag actions: CreateTags, DeleteTags, DescribeTags over every resource the front door maps.

Where it sits: EC2 action handlers (``registry``) over ``resources``: a resource id's prefix
names its kind (``i-`` Instance, ``subnet-`` Subnet, ``sg-`` Firewall, ``vol-`` Volume:
``resources.ID_PREFIXES``) and is looked up among what the kind's own actions see (the
region's instances, volumes and subnets, the namespace's security groups: :func:`_seen`), the
kind's ``….NotFound`` for an id that is not there (another tenant's included). Tags are labels
(``resources.tags_of``/``labels_of``) written by a JSON merge patch of ``metadata.labels``
through ``context.backend`` as the user (RBAC ``patch`` on the kind). A ``vpc-`` id is a VPC,
which is no object: ``vpcs.vpcs`` finds it (``InvalidVpcID.NotFound``), its ``Name`` is its
network name and its other tags live in its record (the annotation
``vpcs.VPC_TAGS_ANNOTATION`` of its default group, JSON), written with the record's
``resourceVersion`` as a precondition (a concurrent write makes it ``Unavailable``, which
clients retry). A VPC known only from its subnets has no record, so no tags but ``Name``.

``Name`` is the object's name (or the text it was created with: ``resources.name_tag``) and
names are immutable: CreateTags with ``Name`` equal to it changes nothing, with another value
it is ``InvalidParameterValue``; DeleteTags of ``Name`` (any value, or the name's) is refused
likewise — a ``Value`` that is not the name deletes nothing, as EC2 does for a value that does
not match. Both write actions check every id and tag before writing anything (``DryRun`` stops
there), then write each resource once.

- ``CreateTags``: ``ResourceId.N``, ``Tag.N.Key``/``Tag.N.Value`` (absent value = empty).
- ``DeleteTags``: ``ResourceId.N``, ``Tag.N.Key`` with an optional ``Tag.N.Value`` (then only
  if the value matches); no ``Tag.N`` at all deletes every tag but ``Name``.
- ``DescribeTags``: one item per (resource, tag), ``Name`` included, sorted by resource id
  then key; filters ``resource-id``, ``resource-type`` (``instance``, ``subnet``,
  ``security-group``, ``volume``, ``vpc``), ``key``, ``value``; ``MaxResults``/``NextToken``
  (``resources.page``). Only the kinds the filters can match are listed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from api_types.compute import Instance
from api_types.network import Firewall, Subnet
from api_types.registry import by_kind
from api_types.storage import Volume
from apiserver.ec2.context import ActionContext
from apiserver.ec2.errors import Ec2Error, dry_run_succeeded, invalid_parameter, missing_parameter
from apiserver.ec2.filters import apply_filters
from apiserver.ec2.params import Params
from apiserver.ec2.registry import ActionRegistry
from apiserver.ec2.resources import (
    ID_PREFIXES,
    NAME_TAG,
    id_of,
    labels_of,
    name_tag,
    page,
    pick,
    tags_of,
)
from apiserver.ec2.securitygroups import security_groups
from apiserver.ec2.volumeview import region_instances, region_volumes
from apiserver.ec2.vpcs import VPC_TAGS_ANNOTATION, Vpc, find_vpc, regional_subnets, vpcs
from apiserver.ec2.xmlwriter import Fields, Value

__all__ = ["RESOURCE_TYPES", "create_tags", "delete_tags", "describe_tags", "register"]

Wire = dict[str, Any]
#: Tag changes: key → new value, None to delete.
Changes = dict[str, str | None]

#: EC2's resource type of each kind.
RESOURCE_TYPES: Mapping[str, str] = {
    "Instance": "instance",
    "Subnet": "subnet",
    "Firewall": "security-group",
    "Volume": "volume",
}
_VPC = "vpc"
_KIND_OF_PREFIX = {prefix: kind for kind, prefix in ID_PREFIXES.items()}
_FILTERS = ("resource-id", "resource-type", "key", "value")


def register(registry: ActionRegistry) -> None:
    registry.add("CreateTags", create_tags)
    registry.add("DeleteTags", delete_tags)
    registry.add("DescribeTags", describe_tags)


@dataclass
class _Tagged:
    """A resource as the tag actions see it: its id, name (its ``Name`` tag), other tags, and
    how to write changes to them."""

    resource_id: str
    name: str
    tags: Mapping[str, str]
    write: Callable[[Changes, bool], None]


def _object(context: ActionContext, kind: str, obj: Wire) -> _Tagged:
    metadata = obj["metadata"]

    def write(changes: Changes, dry_run: bool) -> None:
        patch = {"metadata": {"labels": dict(changes)}}
        name = str(metadata["name"])
        context.backend.patch(by_kind(kind), context.namespace, name, patch, dry_run=dry_run)

    return _Tagged(id_of(kind, obj), name_tag(obj), metadata.get("labels") or {}, write)


def _vpc(context: ActionContext, vpc: Vpc) -> _Tagged:
    tags = {tag["key"]: tag["value"] for tag in vpc.tags if tag["key"] != NAME_TAG}

    def write(changes: Changes, dry_run: bool) -> None:
        record = vpc.record
        if record is None:
            raise invalid_parameter(
                "ResourceId",
                f"{vpc.id} is known only from its subnets (it was not made by CreateVpc): it "
                "has no record to hold tags but its Name",
            )
        new = {k: v for k, v in {**tags, **changes}.items() if v is not None}
        metadata = {
            "resourceVersion": record["metadata"]["resourceVersion"],
            "annotations": {VPC_TAGS_ANNOTATION: json.dumps(new, sort_keys=True)},
        }
        name = str(record["metadata"]["name"])
        patch = {"metadata": metadata}
        context.backend.patch(by_kind(Firewall.KIND), context.namespace, name, patch,
                              dry_run=dry_run)  # fmt: skip

    name = next(tag["value"] for tag in vpc.tags if tag["key"] == NAME_TAG)
    return _Tagged(vpc.id, name, tags, write)


def _seen(context: ActionContext, kind: str) -> list[Wire]:
    """The objects of ``kind`` this request sees, as the kind's own actions do: the region's
    instances and volumes (``volumeview``), the region's subnets not being deleted
    (``vpcs``), the namespace's security groups not being deleted (``securitygroups``)."""
    if kind == Instance.KIND:
        return region_instances(context)
    if kind == Volume.KIND:
        return region_volumes(context)
    if kind == Subnet.KIND:
        return regional_subnets(context, context.region)
    return security_groups(context)


def _kind_of(resource_id: str) -> str:
    prefix = resource_id.partition("-")[0]
    if prefix == _VPC:
        return _VPC
    kind = _KIND_OF_PREFIX.get(prefix)
    if kind is None:
        raise Ec2Error("InvalidID", f"The ID '{resource_id}' is not valid")
    return kind


def _resources(context: ActionContext, params: Params) -> list[_Tagged]:
    """``ResourceId.N`` in the order given, each once; every id checked."""
    ids = list(dict.fromkeys(params.strings("ResourceId")))
    if not ids:
        raise missing_parameter("ResourceId.N")
    context.pool()  # the region must be a pool the namespace may use, as for every action
    wanted: dict[str, list[str]] = {}
    for resource_id in ids:
        wanted.setdefault(_kind_of(resource_id), []).append(resource_id)
    found: dict[str, _Tagged] = {}
    for kind, kind_ids in wanted.items():
        if kind == _VPC:
            known = vpcs(context)
            for resource_id in kind_ids:
                found[resource_id] = _vpc(context, find_vpc(context, resource_id, known))
            continue
        for obj in pick(kind, _seen(context, kind), kind_ids):
            tagged = _object(context, kind, obj)
            found[tagged.resource_id] = tagged
    return [found[resource_id] for resource_id in ids]


def _name_kept(resource: _Tagged, value: str | None, action: str) -> None:
    """Refuse what would change or remove ``Name`` (the module docstring)."""
    if action == "create" and value == resource.name:
        return
    if action == "delete" and value is not None and value != resource.name:
        return
    raise invalid_parameter(
        f"Tag {NAME_TAG!r}",
        f"the Name tag of {resource.resource_id} is its name ({resource.name!r}), and names "
        "cannot be changed or removed",
    )


def create_tags(context: ActionContext, params: Params) -> Fields:
    dry_run = params.boolean("DryRun")
    tags = {key: value or "" for key, value in params.tags().items()}
    if not tags:
        raise missing_parameter("Tag.N")
    changes: Changes = dict(labels_of(tags, "Tag"))
    targets = _resources(context, params)
    if NAME_TAG in tags:
        for resource in targets:
            _name_kept(resource, tags[NAME_TAG], "create")
    if changes:
        for resource in targets:
            resource.write(changes, dry_run)
    if dry_run:
        raise dry_run_succeeded()
    return {"return": True}


def delete_tags(context: ActionContext, params: Params) -> Fields:
    dry_run = params.boolean("DryRun")
    tags = params.tags()
    targets = _resources(context, params)
    writes: list[tuple[_Tagged, Changes]] = []
    for resource in targets:
        if NAME_TAG in tags:
            _name_kept(resource, tags[NAME_TAG], "delete")
        wanted = tags or dict.fromkeys(resource.tags)  # no Tag.N: every tag but Name
        removed: Changes = {
            key: None
            for key, value in wanted.items()
            if key in resource.tags and (value is None or value == resource.tags[key])
        }
        if removed:
            writes.append((resource, removed))
    for resource, removed in writes:
        resource.write(removed, dry_run)
    if dry_run:
        raise dry_run_succeeded()
    return {"return": True}


def _types(filters: Mapping[str, Sequence[str]]) -> list[str]:
    """The resource types whose tags the resource-type and resource-id filters can match
    (exact values rule types out; a wildcard keeps them all)."""
    prefixes = {**{RESOURCE_TYPES[kind]: ID_PREFIXES[kind] for kind in RESOURCE_TYPES}, _VPC: _VPC}
    types = list(prefixes)
    asked = filters.get("resource-type")
    if asked and not any("*" in t or "?" in t for t in asked):
        types = [rtype for rtype in types if rtype in asked]
    ids = filters.get("resource-id")
    if ids and not any("*" in i or "?" in i for i in ids):
        wanted = {i.partition("-")[0] for i in ids}
        types = [rtype for rtype in types if prefixes[rtype] in wanted]
    return types


def describe_tags(context: ActionContext, params: Params) -> Fields:
    dry_run = params.boolean("DryRun")
    filters = params.filters()
    context.pool()
    items: list[dict[str, str]] = []
    kinds = {rtype: kind for kind, rtype in RESOURCE_TYPES.items()}
    for rtype in _types(filters):
        if rtype == _VPC:
            tagged = [(vpc.id, vpc.tags) for vpc in vpcs(context).values()]
        else:
            kind = kinds[rtype]
            tagged = [(id_of(kind, obj), tags_of(obj)) for obj in _seen(context, kind)]
        items += [
            {"resourceId": resource_id, "resourceType": rtype, **tag}
            for resource_id, tags in tagged
            for tag in tags
        ]

    def attributes(item: Mapping[str, str]) -> Mapping[str, Sequence[str]]:
        return {
            "resource-id": [item["resourceId"]],
            "resource-type": [item["resourceType"]],
            "key": [item["key"]],
            "value": [item["value"]],
        }

    chosen = apply_filters(items, filters, _FILTERS, attributes)
    # A tab sorts before any character of a key: a resource's tags stay together, by key.
    shown, token = page(chosen, lambda item: f"{item['resourceId']}\t{item['key']}", params)
    if dry_run:
        raise dry_run_succeeded()
    tag_set: list[Value] = list(shown)
    return {"tagSet": tag_set, "nextToken": token}
