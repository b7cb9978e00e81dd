"""VirtualCluster: a group of instances (and their volumes) with placement rules between them.

Where it sits: pure data, namespaced (DESIGN §10). The VirtualCluster reconciler creates the
children — ordinary Instances named :func:`instance_name` (``{vc}-{member}-{ordinal}``) and,
per replica, the Volumes of the member's ``volumes`` (:func:`volume_name`), owned by the
VirtualCluster and labelled :data:`VIRTUALCLUSTER_LABEL` and :data:`MEMBER_LABEL` — and the
group scheduler places every replica at once over the members of ``spec.pool``, honouring
``spec.placement``. Admission (``apiserver.admission``) refuses a ``host`` rule when an account
of the pool cannot express it (only :data:`HOST_TOPOLOGY_DRIVERS` can). A ``host`` rule is kept
by the provider: on each account its replicas are placed on, the reconciler makes a placement
group named :func:`placement_group_name` (spread for AntiAffinity, cluster for Proximity),
records it in ``status.placementGroups`` and launches the replicas in it.

What a rule means, for the scheduler and for whoever reads ``status.rules``:

- ``AntiAffinity`` over ``members`` by ``topology``: no two replicas of the listed members
  (together) share a domain of the topology — a zone, region, account, provider (the account's
  driver) or host;
- ``Proximity`` over ``members`` by ``topology``: every replica of the listed members lies in
  one domain of the topology;
- ``mode: Required`` (the default): placed only if the rule holds, else nothing is created and
  the rule is ``Infeasible``; ``Preferred``: the scheduler tries, and a rule it could not keep
  is reported ``Broken``, not enforced.

Everything a user writes is checked here, naming the field: member names are unique DNS labels;
``replicas`` are 0…:data:`MAX_REPLICAS` and add up to at most :data:`MAX_TOTAL_REPLICAS`; a
template is an Instance spec without ``pool`` or ``account`` (the pool comes from ``spec.pool``);
volume names and devices are unique within their member; a rule names existing members, each
once; a member is in at most one ``host`` rule (an instance is in one placement group); the
VirtualCluster's own name is at most 63 characters, since its children carry it as a label
value.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, StrictInt, field_validator, model_validator

from api_types.common import (
    DiskGiB,
    NonNegativeInt,
    ObjectName,
    Placement,
    PlacementRejection,
    ProviderToken,
    at_most,
    field_error,
)
from api_types.compute import InstanceSpec, InstanceTemplate
from api_types.meta import PhaselessStatus, Resource, Scope, WireEnum, WireModel
from api_types.validation import validate_dns1123_label

__all__ = [
    "HOST_TOPOLOGY_DRIVERS",
    "MAX_MEMBERS",
    "MAX_NAME_LENGTH",
    "MAX_REPLICAS",
    "MAX_RULES",
    "MAX_TOTAL_REPLICAS",
    "MAX_VOLUMES",
    "MEMBER_LABEL",
    "VIRTUALCLUSTER_LABEL",
    "MemberTemplate",
    "MemberVolume",
    "PlacementGroupStatus",
    "PlacementMode",
    "PlacementRule",
    "PlacementRuleType",
    "ReplicaPlacement",
    "RuleState",
    "RuleStatus",
    "Topology",
    "VirtualCluster",
    "VirtualClusterCondition",
    "VirtualClusterMember",
    "VirtualClusterMemberStatus",
    "VirtualClusterSpec",
    "VirtualClusterStatus",
    "group_strategy",
    "instance_name",
    "placement_group_name",
    "placing_group",
    "volume_name",
]

#: Label on every child (Instance, Volume): the name of its VirtualCluster.
VIRTUALCLUSTER_LABEL = "skybroker.io/virtualcluster"
#: Label on every child: the name of its member.
MEMBER_LABEL = "skybroker.io/member"

#: Replicas of one member, and of all members together.
MAX_REPLICAS = 1000
MAX_TOTAL_REPLICAS = 1000
#: Members, rules, and volumes per replica: generous for a group, small enough that the object
#: (a template of up to 16 KiB of user data per member) stays far below etcd's value limit.
MAX_MEMBERS = 32
MAX_RULES = 32
MAX_VOLUMES = 16
#: A VirtualCluster's name is a label value on its children (:data:`VIRTUALCLUSTER_LABEL`).
MAX_NAME_LENGTH = 63
#: Drivers whose accounts can express the ``host`` topology (EC2 placement groups: spread for
#: AntiAffinity, cluster for Proximity).
HOST_TOPOLOGY_DRIVERS = frozenset({"ec2"})

#: A member or volume name: a DNS-1123 label (it is part of child names and a label value).
MemberName = Annotated[str, AfterValidator(validate_dns1123_label)]
Replicas = Annotated[NonNegativeInt, at_most(MAX_REPLICAS)]


def instance_name(virtualcluster: str, member: str, ordinal: int) -> str:
    """The name of a member's Instance: ``{vc}-{member}-{ordinal}``."""
    return f"{virtualcluster}-{member}-{ordinal}"


def placing_group(obj: Resource) -> str | None:
    """The VirtualCluster that places ``obj`` (its controller owner of that kind), if any: the
    Instance reconciler then leaves the placement to the group scheduler."""
    for owner in obj.metadata.owner_references:
        if owner.controller and owner.kind == VirtualCluster.KIND:
            return owner.name
    return None


def volume_name(virtualcluster: str, member: str, ordinal: int, volume: str) -> str:
    """The name of a replica's Volume: ``{vc}-{member}-{ordinal}-{volume}``."""
    return f"{instance_name(virtualcluster, member, ordinal)}-{volume}"


def group_strategy(rule: PlacementRule) -> str:
    """The provider placement-group strategy keeping a ``host`` rule: ``spread`` for
    AntiAffinity (each instance on distinct hardware), ``cluster`` for Proximity."""
    return "spread" if rule.type == PlacementRuleType.ANTI_AFFINITY else "cluster"


def placement_group_name(namespace: str, virtualcluster: str, rule: PlacementRule) -> str:
    """The placement group of a ``host`` rule (the same name on every account it is made on):
    ``skybroker-{namespace}-{vc}-{strategy}-{digest}``, the digest of namespace, name,
    strategy and the rule's members (sorted). Named by what the rule is, not by its position,
    so reordering or removing other rules never moves a member to another group; a rule
    changing type gets a new group, never one of the other strategy. At most 156 characters
    (EC2 allows 255)."""
    strategy = group_strategy(rule)
    parts = [namespace, virtualcluster, strategy, *sorted(rule.members)]
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:10]
    return f"skybroker-{namespace}-{virtualcluster}-{strategy}-{digest}"


class PlacementRuleType(StrEnum):
    ANTI_AFFINITY = "AntiAffinity"
    PROXIMITY = "Proximity"


class Topology(StrEnum):
    """The domain a rule is about; ``provider`` is the account's driver."""

    ZONE = "zone"
    REGION = "region"
    ACCOUNT = "account"
    PROVIDER = "provider"
    HOST = "host"


class PlacementMode(StrEnum):
    REQUIRED = "Required"
    PREFERRED = "Preferred"


class MemberVolume(WireModel):
    """A volume created for, and attached to, each replica of the member."""

    name: MemberName = Field(description="Name, unique in the member (part of the Volume's name).")
    size_gib: DiskGiB = Field(alias="sizeGiB", description="Size in GiB (1 to 65536).")
    device: ProviderToken = Field(description="Device it is attached as, e.g. /dev/sdf.")
    type: ProviderToken | None = Field(
        None, description="Provider volume type (e.g. gp3); absent = the provider's default."
    )


def _repeated(values: list[Any]) -> tuple[int, int] | None:
    """(index of the first value listed twice, index of its first listing), or None."""
    seen: dict[Any, int] = {}
    for index, value in enumerate(values):
        if value in seen:
            return index, seen[value]
        seen[value] = index
    return None


class MemberTemplate(InstanceTemplate):
    """An Instance spec without ``pool`` or ``account``: a member's Instances are drawn from the
    VirtualCluster's ``spec.pool``."""

    # Declared, always absent, so that a pool written here is refused at its own path with a
    # reason (as a status.phase of a phaseless kind is), not merely as an unknown field.
    pool: None = Field(None, description="Always absent: the pool is the VirtualCluster's.")
    account: None = Field(None, description="Always absent: the pool is the VirtualCluster's.")

    @field_validator("pool", "account", mode="before")
    @classmethod
    def _no_target(cls, value: object) -> None:
        if value is None:
            return None
        raise ValueError(
            "a member's template has no pool or account: its Instances are drawn from spec.pool"
        )

    def instance_spec(self, pool: str) -> InstanceSpec:
        """The spec of an Instance made from this template on ``pool``."""
        fields = self.model_dump(by_alias=True, exclude_none=True)
        return InstanceSpec.model_validate({**fields, "pool": pool})


class VirtualClusterMember(WireModel):
    """A set of identical replicas: ``replicas`` Instances made from ``template``."""

    name: MemberName = Field(description="Name, unique in the VirtualCluster (a DNS-1123 label).")
    replicas: Replicas = Field(description=f"Number of Instances (0 to {MAX_REPLICAS}).")
    template: MemberTemplate = Field(
        description="An Instance spec without pool or account: the pool is spec.pool."
    )
    volumes: Annotated[list[MemberVolume], Field(max_length=MAX_VOLUMES)] = Field(
        default_factory=list, description="Volumes created and attached per replica."
    )

    @model_validator(mode="after")
    def _volumes_are_distinct(self) -> VirtualClusterMember:
        for field in ("name", "device"):
            repeat = _repeated([getattr(volume, field) for volume in self.volumes])
            if repeat is not None:
                index, first = repeat
                value = getattr(self.volumes[index], field)
                raise field_error(
                    ("volumes", index, field),
                    f'"{value}" is already the {field} of volumes[{first}]',
                    value,
                )
        return self


class PlacementRule(WireModel):
    """A rule between the replicas of some members (the module docstring says what each means)."""

    type: WireEnum[PlacementRuleType] = Field(description="AntiAffinity or Proximity.")
    members: Annotated[list[MemberName], Field(min_length=1, max_length=MAX_MEMBERS)] = Field(
        description="Names of the members whose replicas the rule is about (each once)."
    )
    topology: WireEnum[Topology] = Field(
        description="zone, region, account, provider (the account's driver) or host."
    )
    mode: WireEnum[PlacementMode] = Field(
        PlacementMode.REQUIRED,
        description="Required (nothing is placed unless it holds) or Preferred (reported "
        "when broken).",
    )

    @model_validator(mode="after")
    def _members_once(self) -> PlacementRule:
        repeat = _repeated(self.members)
        if repeat is not None:
            index, first = repeat
            value = self.members[index]
            raise field_error(
                ("members", index), f'member "{value}" is listed twice (also at [{first}])', value
            )
        return self

    @property
    def text(self) -> str:
        """The rule for humans, as ``status.rules[].rule`` and ``skyctl describe`` show it:
        ``AntiAffinity of lb,db by zone (Required)``."""
        return (
            f"{PlacementRuleType(self.type).value} of {','.join(self.members)} by "
            f"{Topology(self.topology).value} ({PlacementMode(self.mode).value})"
        )


class VirtualClusterSpec(WireModel):
    pool: ObjectName = Field(description="Pool every replica is placed on.")
    members: Annotated[list[VirtualClusterMember], Field(min_length=1, max_length=MAX_MEMBERS)] = (
        Field(description="The sets of identical replicas, each with a unique name.")
    )
    placement: Annotated[list[PlacementRule], Field(max_length=MAX_RULES)] = Field(
        default_factory=list, description="Rules between the replicas of the members."
    )

    @model_validator(mode="after")
    def _members_fit_together(self) -> VirtualClusterSpec:
        names = [member.name for member in self.members]
        repeat = _repeated(names)
        if repeat is not None:
            index, first = repeat
            raise field_error(
                ("members", index, "name"),
                f'"{names[index]}" is already the name of members[{first}]',
                names[index],
            )
        total = sum(member.replicas for member in self.members)
        if total > MAX_TOTAL_REPLICAS:
            raise field_error(
                ("members",),
                f"the replicas of all members add up to {total}: at most {MAX_TOTAL_REPLICAS}",
                total,
            )
        host: dict[str, int] = {}  # member -> the host rule it is in
        for rule_index, rule in enumerate(self.placement):
            for index, name in enumerate(rule.members):
                if name not in names:
                    raise field_error(
                        ("placement", rule_index, "members", index),
                        f'no member named "{name}"',
                        name,
                    )
                if rule.topology != Topology.HOST:
                    continue
                if name in host:
                    raise field_error(
                        ("placement", rule_index, "members", index),
                        f'member "{name}" is already in the host rule placement[{host[name]}]: '
                        "an instance can be in one placement group only",
                        name,
                    )
                host[name] = rule_index
        return self

    def host_rule(self, member: str) -> PlacementRule | None:
        """The ``host`` rule ``member`` is in, if any (at most one)."""
        return next(
            (r for r in self.placement if r.topology == Topology.HOST and member in r.members),
            None,
        )

    def member(self, name: str) -> VirtualClusterMember | None:
        """The member called ``name``, if any."""
        return next((member for member in self.members if member.name == name), None)


class ReplicaPlacement(Placement):
    """Where one replica (an Instance) was placed."""

    instance: ObjectName = Field(description="Name of the Instance.")


class PlacementGroupStatus(WireModel):
    """A provider placement group made for a ``host`` rule on one account: recorded before it
    is made, removed once it is deleted (with the VirtualCluster, or when no replica uses it)."""

    account: ObjectName = Field(description="The ProviderAccount it is made in.")
    name: ProviderToken = Field(description="Its name in the cloud (placementGroup of replicas).")
    strategy: ProviderToken = Field(description="spread (AntiAffinity) or cluster (Proximity).")


class VirtualClusterMemberStatus(WireModel):
    replicas: NonNegativeInt = Field(0, description="Replicas the member has (Instances).")
    ready: NonNegativeInt = Field(0, description="Replicas whose Instance is Ready.")
    placements: list[ReplicaPlacement] = Field(
        default_factory=list, description="Where each placed replica is, by ordinal."
    )


class RuleState(StrEnum):
    """Satisfied: it holds. Broken: a Preferred rule the placement does not keep. Infeasible:
    no placement keeps it (for a Required rule nothing is created)."""

    SATISFIED = "Satisfied"
    BROKEN = "Broken"
    INFEASIBLE = "Infeasible"


class RuleStatus(WireModel):
    """How one rule of ``spec.placement`` fares."""

    index: Annotated[StrictInt, Field(ge=0)] = Field(
        description="Position of the rule in spec.placement."
    )
    rule: str = Field(description="The rule for humans, e.g. AntiAffinity of lb by zone.")
    state: WireEnum[RuleState] = Field(description="Satisfied, Broken or Infeasible.")
    message: str = Field("", description="Why, for humans (which members and domains).")


class VirtualClusterCondition(StrEnum):
    """The condition types a VirtualCluster reports."""

    #: Every replica of every member is Ready.
    READY = "Ready"
    #: Every Required rule holds (False names the rule and why, per pool member).
    PLACEMENT_SATISFIED = "PlacementSatisfied"


class VirtualClusterStatus(PhaselessStatus):
    """Replicas and placements per member, each rule's state; conditions Ready and
    PlacementSatisfied."""

    members: dict[str, VirtualClusterMemberStatus] = Field(
        default_factory=dict, description="Per member name: replicas, ready and placements."
    )
    rules: list[RuleStatus] = Field(
        default_factory=list, description="State of each rule of spec.placement."
    )
    rejections: list[PlacementRejection] = Field(
        default_factory=list,
        description="Pool members rejected at the last scheduling attempt, with reasons.",
    )
    placement_groups: list[PlacementGroupStatus] = Field(
        default_factory=list,
        description="Provider placement groups made for host rules, per account.",
    )


class VirtualCluster(Resource):
    """A group of Instances (and their Volumes) placed jointly under placement rules."""

    KIND: ClassVar[str] = "VirtualCluster"
    PLURAL: ClassVar[str] = "virtualclusters"
    SCOPE: ClassVar[Scope] = Scope.NAMESPACED
    HAS_STATUS: ClassVar[bool] = True

    kind: Literal["VirtualCluster"] = Field("VirtualCluster", description="VirtualCluster.")
    spec: VirtualClusterSpec = Field(description="Pool, members and placement rules.")
    status: VirtualClusterStatus = Field(
        default_factory=VirtualClusterStatus,
        description="Replicas, placements and rule states; conditions Ready and "
        "PlacementSatisfied.",
    )

    @model_validator(mode="after")
    def _name_fits_a_label(self) -> VirtualCluster:
        name = self.metadata.name
        if len(name) > MAX_NAME_LENGTH:
            raise field_error(
                ("metadata", "name"),
                f"must be no more than {MAX_NAME_LENGTH} characters (got {len(name)}): the "
                f"children carry it in the label {VIRTUALCLUSTER_LABEL}",
                name,
            )
        return self
