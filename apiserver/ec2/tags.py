"""The tag actions: CreateTags, DeleteTags, DescribeTags over every resource the front door maps.

Where it sits: EC2 action handlers (``registry``) over ``resources``: a resource id's prefix
names its kind (``i-`` Instance, ``subnet-`` Subnet, ``sg-`` Firewall, ``vol-`` Volume:
``resources.ID_PREFIXES``), ``resources.find`` looks it up in the key's namespace (the kind's
``….NotFound`` for an id that is not there, another tenant's included), and tags are labels
(``resources.tags_of``/``labels_of``) written by a JSON merge patch of ``metadata.labels``
through ``context.backend`` as the user (RBAC ``patch`` on the kind).

``Name`` is the object's name and names are immutable: CreateTags with ``Name`` equal to the
name changes nothing, with another value it is ``InvalidParameterValue``; DeleteTags of
``Name`` (any value, or the name's) is refused likewise — a ``Value`` that is not the name
deletes nothing, as EC2 does for a value that does not match. A ``vpc-`` id is a network of
subnets, not an object, so it has no tags of its own: refused, naming it. Both write actions
check every id and tag before writing anything (``DryRun`` stops there), then patch each
resource once.

- ``CreateTags``: ``ResourceId.N``, ``Tag.N.Key``/``Tag.N.Value`` (absent value = empty).
- ``DeleteTags``: ``ResourceId.N``, ``Tag.N.Key`` with an optional ``Tag.N.Value`` (then only
  if the value matches); no ``Tag.N`` at all deletes every tag but ``Name``.
- ``DescribeTags``: one item per (resource, tag), ``Name`` included, sorted by resource id
  then key; filters ``resource-id``, ``resource-type`` (``instance``, ``subnet``,
  ``security-group``, ``volume``), ``key``, ``value``; ``MaxResults``/``NextToken``
  (``resources.page``). Only the kinds the filters can match are listed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from api_types.registry import by_kind
from apiserver.ec2.context import ActionContext
from apiserver.ec2.errors import Ec2Error, dry_run_succeeded, invalid_parameter, missing_parameter
from apiserver.ec2.filters import apply_filters
from apiserver.ec2.params import Params
from apiserver.ec2.registry import ActionRegistry
from apiserver.ec2.resources import (
    ID_PREFIXES,
    NAME_TAG,
    find,
    id_of,
    labels_of,
    listed,
    page,
    tags_of,
)
from apiserver.ec2.xmlwriter import Fields, Value

__all__ = ["RESOURCE_TYPES", "create_tags", "delete_tags", "describe_tags", "register"]

Wire = dict[str, Any]

#: EC2's resource type of each kind.
RESOURCE_TYPES: Mapping[str, str] = {
    "Instance": "instance",
    "Subnet": "subnet",
    "Firewall": "security-group",
    "Volume": "volume",
}
_KIND_OF_PREFIX = {prefix: kind for kind, prefix in ID_PREFIXES.items()}
_FILTERS = ("resource-id", "resource-type", "key", "value")


def register(registry: ActionRegistry) -> None:
    registry.add("CreateTags", create_tags)
    registry.add("DeleteTags", delete_tags)
    registry.add("DescribeTags", describe_tags)


def _kind_of(resource_id: str) -> str:
    prefix = resource_id.partition("-")[0]
    if prefix == "vpc":
        raise invalid_parameter(
            "ResourceId",
            f"{resource_id} is a network of subnets, not an object: it has no tags of its own "
            "(tag its subnets)",
        )
    kind = _KIND_OF_PREFIX.get(prefix)
    if kind is None:
        raise Ec2Error("InvalidID", f"The ID '{resource_id}' is not valid")
    return kind


def _resources(context: ActionContext, params: Params) -> list[tuple[str, Wire]]:
    """``ResourceId.N`` as (kind, object), in the order given, each once; every id checked."""
    ids = list(dict.fromkeys(params.strings("ResourceId")))
    if not ids:
        raise missing_parameter("ResourceId.N")
    by_kind_ids: dict[str, list[str]] = {}
    for resource_id in ids:
        by_kind_ids.setdefault(_kind_of(resource_id), []).append(resource_id)
    found: dict[str, tuple[str, Wire]] = {}
    for kind, wanted in by_kind_ids.items():
        for resource_id, obj in zip(wanted, find(context, kind, wanted), strict=True):
            found[resource_id] = (kind, obj)
    return [found[resource_id] for resource_id in ids]


def _name_kept(kind: str, obj: Wire, value: str | None, action: str) -> None:
    """Refuse what would change or remove ``Name`` (the module docstring)."""
    name = str(obj["metadata"]["name"])
    if action == "create" and value == name:
        return
    if action == "delete" and value is not None and value != name:
        return
    raise invalid_parameter(
        f"Tag {NAME_TAG!r}",
        f"the Name tag of {id_of(kind, obj)} is its name ({name!r}), and names cannot be "
        "changed or removed",
    )


def _patch_labels(
    context: ActionContext, kind: str, obj: Wire, labels: Mapping[str, str | None], dry_run: bool
) -> None:
    if not labels:
        return
    context.backend.patch(
        by_kind(kind),
        context.namespace,
        str(obj["metadata"]["name"]),
        {"metadata": {"labels": dict(labels)}},
        dry_run=dry_run,
    )


def create_tags(context: ActionContext, params: Params) -> Fields:
    dry_run = params.boolean("DryRun")
    tags = {key: value or "" for key, value in params.tags().items()}
    if not tags:
        raise missing_parameter("Tag.N")
    labels: dict[str, str | None] = dict(labels_of(tags, "Tag"))
    targets = _resources(context, params)
    if NAME_TAG in tags:
        for kind, obj in targets:
            _name_kept(kind, obj, tags[NAME_TAG], "create")
    for kind, obj in targets:
        _patch_labels(context, kind, obj, labels, dry_run)
    if dry_run:
        raise dry_run_succeeded()
    return {"return": True}


def delete_tags(context: ActionContext, params: Params) -> Fields:
    dry_run = params.boolean("DryRun")
    tags = params.tags()
    targets = _resources(context, params)
    changes: list[tuple[str, Wire, dict[str, str | None]]] = []
    for kind, obj in targets:
        current: Mapping[str, str] = obj["metadata"].get("labels") or {}
        if NAME_TAG in tags:
            _name_kept(kind, obj, tags[NAME_TAG], "delete")
        wanted = tags or dict.fromkeys(current)  # no Tag.N: every tag but Name
        removed: dict[str, str | None] = {
            key: None
            for key, value in wanted.items()
            if key in current and (value is None or value == current[key])
        }
        changes.append((kind, obj, removed))
    for kind, obj, removed in changes:
        _patch_labels(context, kind, obj, removed, dry_run)
    if dry_run:
        raise dry_run_succeeded()
    return {"return": True}


def _kinds(filters: Mapping[str, Sequence[str]]) -> list[str]:
    """The kinds whose tags the resource-type and resource-id filters can match (exact values
    rule kinds out; a wildcard keeps them all)."""
    kinds = list(RESOURCE_TYPES)
    types = filters.get("resource-type")
    if types and not any("*" in t or "?" in t for t in types):
        kinds = [kind for kind in kinds if RESOURCE_TYPES[kind] in types]
    ids = filters.get("resource-id")
    if ids and not any("*" in i or "?" in i for i in ids):
        prefixes = {i.partition("-")[0] for i in ids}
        kinds = [kind for kind in kinds if ID_PREFIXES[kind] in prefixes]
    return kinds


def describe_tags(context: ActionContext, params: Params) -> Fields:
    dry_run = params.boolean("DryRun")
    filters = params.filters()
    items: list[dict[str, str]] = []
    for kind in _kinds(filters):
        for obj in listed(context, kind):
            resource_id = id_of(kind, obj)
            items += [
                {"resourceId": resource_id, "resourceType": RESOURCE_TYPES[kind], **tag}
                for tag in tags_of(obj)
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
