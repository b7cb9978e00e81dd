"""Security groups through EC2: they are Firewalls (DESIGN §3, §12).

Where it sits: EC2 action handlers (``registry``) registered by ``network``; the rules' side —
EC2 permissions read and written as a Firewall's ``spec.rules`` — is ``permissions``, the VPC
side (default groups, the VPC annotation) ``vpcs``. Every read and write goes through
``context.backend`` as the key's user.

- ``CreateSecurityGroup``: a Firewall named ``GroupName``, ``GroupDescription`` in
  annotation ``ec2.skybroker.io/description``, ``VpcId`` (optional; must be the namespace's)
  in ``ec2.skybroker.io/vpc`` as the network name, and EC2's initial rule: all traffic out to
  0.0.0.0/0. EC2 group names are free text (``allow_tls``, ``Web Servers``) and a group may
  carry a ``Name`` tag of its own, while the ``Name`` tag is the object's name here: so the
  Firewall is named by the ``Name`` tag if there is one, else by ``GroupName`` if that is an
  object name (a DNS-1123 subdomain), else ``sg-`` and 8 random hex digits; a ``GroupName``
  that is not the object's name is kept in ``ec2.skybroker.io/group-name``. Other tags are
  labels. Group names are unique in the namespace (``InvalidGroup.Duplicate``, as is a taken
  object name); ``default`` and ``default.*`` are the VPCs' default groups'.
- ``DescribeSecurityGroups``: the namespace's Firewalls not being deleted — those written
  through REST too (``groupDescription`` then says so; no ``vpcId``). ``GroupId.N``,
  ``GroupName.N`` (unknown: ``InvalidGroup.NotFound``); filters ``group-id``, ``group-name``,
  ``vpc-id``, ``description``, ``tag:<key>``, ``tag-key``, ``tag-value``; MaxResults/NextToken.
  ``ipPermissions``/``ipPermissionsEgress`` render the rules (``permissions.ip_permissions``).
- ``DeleteSecurityGroup`` (``GroupId`` or ``GroupName``): ``DependencyViolation`` while an
  instance lists the Firewall in ``firewallRefs`` (REST would accept the delete and leave it
  Deleting until they go — EC2 refuses instead); a VPC's default group is ``CannotDelete``
  (DeleteVpc removes it).
- ``Authorize``/``RevokeSecurityGroupIngress``/``Egress`` (``GroupId`` or ``GroupName``): the
  request's grants applied as a diff on ``spec.rules`` (``permissions.authorized``/``revoked``),
  written with the rules' ``resourceVersion`` as a precondition, re-read and re-diffed when a
  concurrent write wins, so no one's rule is lost.

Honest limits: a group's VPC is informational — a Firewall is realised in the network of each
instance that uses it (``reconcilers.firewall``), so a group used from a subnet of another VPC
works there too; a group, like a VPC, is the namespace's in every region (a Firewall has no
place of its own); group names are unique per namespace, not per VPC; ``GroupName`` that names
several default groups (one per VPC) is refused: use ``GroupId``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from api_types import Firewall, FirewallRule, RuleDirection
from api_types.meta import API_VERSION
from api_types.registry import by_kind
from api_types.validation import validate_dns1123_subdomain
from apiserver.ec2.context import ActionContext
from apiserver.ec2.errors import Ec2Error, dry_run_succeeded, invalid_parameter, missing_parameter
from apiserver.ec2.filters import apply_filters
from apiserver.ec2.params import Params
from apiserver.ec2.permissions import (
    Grant,
    authorized,
    ip_permissions,
    requested_grants,
    revoked,
)
from apiserver.ec2.registry import ActionRegistry
from apiserver.ec2.resources import (
    given_name,
    id_of,
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
)
from apiserver.ec2.vpcs import (
    DEFAULT_GROUP,
    DESCRIPTION_ANNOTATION,
    VPC_ANNOTATION,
    VpcIds,
    default_group_name,
    deleting,
    dependency_violation,
    everything_out,
    find_vpc,
    is_default_group,
    users_of,
)
from apiserver.ec2.xmlwriter import Fields, Value
from controller.errors import ApiError

__all__ = [
    "GROUP_NAME_ANNOTATION",
    "group_name_of",
    "groups_named",
    "register",
    "security_groups",
]

Wire = dict[str, Any]
#: On a security group whose ``GroupName`` is not its object name: the ``GroupName``.
GROUP_NAME_ANNOTATION = "ec2.skybroker.io/group-name"
#: EC2's limit on a group's name and description.
_MAX_TEXT = 255
#: Attempts at a rule change that keeps losing its compare-and-swap to concurrent writers
#: (each loss means another change landed; past this, ``Unavailable``, which clients retry).
_ATTEMPTS = 16


def register(registry: ActionRegistry) -> None:
    registry.add("CreateSecurityGroup", create_security_group)
    registry.add("DescribeSecurityGroups", describe_security_groups)
    registry.add("DeleteSecurityGroup", delete_security_group)
    registry.add("AuthorizeSecurityGroupIngress", _rule_change(authorized, RuleDirection.INGRESS))
    registry.add("AuthorizeSecurityGroupEgress", _rule_change(authorized, RuleDirection.EGRESS))
    registry.add("RevokeSecurityGroupIngress", _rule_change(revoked, RuleDirection.INGRESS))
    registry.add("RevokeSecurityGroupEgress", _rule_change(revoked, RuleDirection.EGRESS))


# --------------------------------------------------------------------------- shared


def security_groups(context: ActionContext) -> list[Wire]:
    """The namespace's Firewalls not being deleted: its security groups."""
    return [group for group in listed(context, Firewall.KIND) if not deleting(group)]


def group_name_of(group: Wire) -> str:
    if is_default_group(group):
        return DEFAULT_GROUP
    return _annotation(group, GROUP_NAME_ANNOTATION) or str(group["metadata"]["name"])


def _annotation(group: Wire, key: str) -> str | None:
    annotations: Mapping[str, str] = group["metadata"].get("annotations") or {}
    return annotations.get(key)


def _vpc_id(vpc_ids: VpcIds, group: Wire) -> str | None:
    network = _annotation(group, VPC_ANNOTATION)
    return None if network is None else vpc_ids(network)


def groups_named(groups: Sequence[Wire], names: Sequence[str]) -> list[Wire]:
    """The groups with these ``groupName`` s, all of them; ``InvalidGroup.NotFound`` naming
    the names no group has."""
    if missing := [name for name in names if all(group_name_of(g) != name for g in groups)]:
        raise Ec2Error(
            "InvalidGroup.NotFound", f"The security group '{', '.join(missing)}' does not exist"
        )
    return [group for group in groups if group_name_of(group) in names]


def _the_group(context: ActionContext, params: Params) -> Wire:
    """The one group ``GroupId`` (or else ``GroupName``) names."""
    groups = security_groups(context)
    wanted = params.get("GroupId")
    if wanted:
        (group,) = pick(Firewall.KIND, groups, [wanted])
        return group
    name = params.get("GroupName")
    if not name:
        raise missing_parameter("GroupId")
    found = groups_named(groups, [name])
    if len(found) > 1:
        raise invalid_parameter(
            "GroupName", f"{name!r} names {len(found)} groups (one per VPC): give GroupId"
        )
    return found[0]


def _group_fields(group: Wire, vpc_ids: VpcIds) -> Fields:
    rules = Firewall.model_validate(group).spec.rules
    description = _annotation(group, DESCRIPTION_ANNOTATION)
    return {
        "groupId": id_of(Firewall.KIND, group),
        "groupName": group_name_of(group),
        "groupDescription": description or f"Firewall {group['metadata']['name']}",
        "vpcId": _vpc_id(vpc_ids, group),
        "ipPermissions": ip_permissions(rules, RuleDirection.INGRESS),
        "ipPermissionsEgress": ip_permissions(rules, RuleDirection.EGRESS),
        "tagSet": tags_of(group),
    }


# --------------------------------------------------------------------------- actions


def _text(params: Params, name: str) -> str:
    value = params.require(name)
    if len(value) > _MAX_TEXT or not value.isprintable():
        raise invalid_parameter(name, f"must be at most {_MAX_TEXT} printable characters")
    return value


def _object_name(tags: Mapping[str, str], group_name: str) -> str:
    """The Firewall's name: the ``Name`` tag if it is an object name, else the group name if it
    is one (and not a default group's), else a generated ``sg-…`` (a ``Name`` tag that is not
    the name is kept as the tag: ``resources.name_annotations``)."""
    given = given_name(tags)
    if given is not None:
        return given
    try:
        validate_dns1123_subdomain(group_name)
    except ValueError:
        return name_of({}, "sg")
    return group_name


def create_security_group(context: ActionContext, params: Params) -> Fields:
    dry_run = params.boolean("DryRun")
    context.pool()
    group_name = _text(params, "GroupName")
    if group_name == DEFAULT_GROUP or group_name.startswith(default_group_name("")):
        raise invalid_parameter(
            "GroupName", f"{group_name!r} is reserved for the default security groups of VPCs"
        )
    description = _text(params, "GroupDescription")
    annotations = {DESCRIPTION_ANNOTATION: description}
    if wanted_vpc := params.get("VpcId"):
        annotations[VPC_ANNOTATION] = find_vpc(context, wanted_vpc).name
    tags = requested_tags(params, "security-group")
    name = _object_name(tags, group_name)
    annotations.update(name_annotations(tags, name))
    if name != group_name:
        annotations[GROUP_NAME_ANNOTATION] = group_name
    duplicate = Ec2Error(
        "InvalidGroup.Duplicate", f"The security group '{group_name}' already exists"
    )
    if any(group_name_of(group) == group_name for group in security_groups(context)):
        raise duplicate
    wire: Wire = {
        "apiVersion": API_VERSION,
        "kind": Firewall.KIND,
        "metadata": {
            "name": name,
            "namespace": context.namespace,
            "labels": labels_of(tags, "TagSpecification"),
            "annotations": annotations,
        },
        "spec": {"rules": [everything_out()]},
    }
    try:
        created = context.backend.create(wire, dry_run=dry_run)
    except ApiError as exc:
        if exc.reason == "AlreadyExists":
            raise duplicate from None
        raise
    if dry_run:
        raise dry_run_succeeded()
    return {"return": True, "groupId": id_of(Firewall.KIND, created), "tagSet": tags_of(created)}


def describe_security_groups(context: ActionContext, params: Params) -> Fields:
    dry_run = params.boolean("DryRun")
    context.pool()
    groups = security_groups(context)
    vpc_ids = VpcIds(context, groups)  # every record is among them
    if ids := params.strings("GroupId"):
        groups = pick(Firewall.KIND, groups, ids)
    if names := params.strings("GroupName"):
        groups = groups_named(groups, names)

    def attributes(group: Wire) -> Mapping[str, Sequence[str]]:
        vpc = _vpc_id(vpc_ids, group)
        return {
            "group-id": [id_of(Firewall.KIND, group)],
            "group-name": [group_name_of(group)],
            "vpc-id": [vpc] if vpc else [],
            "description": [str(_group_fields(group, vpc_ids)["groupDescription"])],
            **tag_attributes(tags_of(group)),
        }

    filters = params.filters()
    supported = ["group-id", "group-name", "vpc-id", "description"]
    chosen = apply_filters(groups, filters, supported + tag_filter_names(filters), attributes)
    shown, token = page(chosen, lambda group: id_of(Firewall.KIND, group), params)
    if dry_run:
        raise dry_run_succeeded()
    items: list[Value] = [_group_fields(group, vpc_ids) for group in shown]
    return {"securityGroupInfo": items, "nextToken": token}


def delete_security_group(context: ActionContext, params: Params) -> Fields:
    dry_run = params.boolean("DryRun")
    context.pool()
    group = _the_group(context, params)
    group_id, name = id_of(Firewall.KIND, group), group["metadata"]["name"]
    if is_default_group(group):
        raise Ec2Error(
            "CannotDelete",
            f"the specified group: '{group_id}' name: '{DEFAULT_GROUP}' cannot be deleted by a "
            "user: it goes with its VPC (DeleteVpc)",
        )
    if users := users_of(context, group=name):
        raise dependency_violation(f"security group '{group_id}'", users)
    context.backend.delete(by_kind(Firewall.KIND), context.namespace, name, dry_run=dry_run)
    if dry_run:
        raise dry_run_succeeded()
    return {"return": True}


RuleEdit = Callable[[Sequence[FirewallRule], Sequence[Grant]], list[FirewallRule]]


def _rule_change(
    edit: RuleEdit, direction: RuleDirection
) -> Callable[[ActionContext, Params], Fields]:
    """An Authorize/Revoke action: ``edit`` (``authorized``/``revoked``) of the rules by the
    request's grants in ``direction``, written as the module docstring says."""

    def change(context: ActionContext, params: Params) -> Fields:
        dry_run = params.boolean("DryRun")
        context.pool()
        grants = requested_grants(params, direction)
        for attempt in range(_ATTEMPTS):
            group = _the_group(context, params)
            rules = edit(Firewall.model_validate(group).spec.rules, grants)
            patch = {
                "metadata": {"resourceVersion": group["metadata"]["resourceVersion"]},
                "spec": {"rules": [rule.model_dump(mode="json", by_alias=True,
                                                   exclude_none=True) for rule in rules]},
            }  # fmt: skip
            try:
                context.backend.patch(
                    by_kind(Firewall.KIND),
                    context.namespace,
                    group["metadata"]["name"],
                    patch,
                    dry_run=dry_run,
                )
                break
            except ApiError as exc:
                if not exc.conflict or attempt == _ATTEMPTS - 1:
                    raise
        if dry_run:
            raise dry_run_succeeded()
        return {"return": True}

    return change
