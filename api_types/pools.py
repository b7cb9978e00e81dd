"""Pool: an aggregation of provider accounts, regions and zones with a placement policy.

Where it sits: pure data, cluster-scoped. The placement code in ``reconcilers`` filters the
members of a pool (healthy, budget open, a size matches, image mapped, quota and capacity left,
zone and subnet constraints) and scores the rest by ``spec.policy``; the pool reconciler writes
per-member usage and health into ``status.members``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import Field, StrictBool, StrictInt, model_validator

from api_types.common import (
    MAX_COUNT,
    MAX_SECONDS,
    BoundedCount,
    LabelMap,
    NamespaceName,
    NonNegativeInt,
    ObjectName,
    ProviderToken,
    at_most,
    field_error,
)
from api_types.meta import PhaselessStatus, Resource, Scope, WireEnum, WireModel

__all__ = [
    "DEFAULT_FAILURE_PENALTY_SECONDS",
    "Pool",
    "PoolMember",
    "PoolMemberStatus",
    "PoolPolicy",
    "PoolPolicyType",
    "PoolSpec",
    "PoolStatus",
]

DEFAULT_FAILURE_PENALTY_SECONDS = 300


class PoolPolicyType(StrEnum):
    """How the members that pass the filters are ranked."""

    PRIORITY = "Priority"
    LOWEST_COST = "LowestCost"
    ROUND_ROBIN = "RoundRobin"
    LEAST_LOADED = "LeastLoaded"
    WEIGHTED_RANDOM = "WeightedRandom"


class PoolMember(WireModel):
    """One account (optionally narrowed to a region and zones) taking part in a pool."""

    account: ObjectName = Field(description="Name of the ProviderAccount.")
    region: ProviderToken | None = Field(
        None, description="Region within the account; absent = the account's region."
    )
    zones: list[ProviderToken] = Field(
        default_factory=list, description="Zones allowed; empty = any zone of the region."
    )
    priority: Annotated[StrictInt, Field(ge=-MAX_COUNT), at_most(MAX_COUNT)] = Field(
        0, description="Higher is preferred by the Priority policy and breaks ties elsewhere."
    )
    weight: BoundedCount = Field(
        1, description="Relative share for WeightedRandom (≥ 0; 0 = never chosen by weight)."
    )
    max_instances: BoundedCount | None = Field(
        None, description="Cap on Instances placed on this member; absent = no cap."
    )
    labels: LabelMap = Field(
        default_factory=dict, description="Labels describing the member (e.g. tier: cheap)."
    )

    @property
    def key(self) -> str:
        """Identity of the member inside its pool: ``account`` or ``account/region``."""
        return self.account if self.region is None else f"{self.account}/{self.region}"


class PoolPolicy(WireModel):
    """Scoring policy plus a penalty for members that failed recently.

    ``failurePenalty`` is a duration in seconds: after a placement on a member fails (terminal
    provider error, capacity, provider quota), that member ranks after every member without a
    recent failure until the penalty has elapsed. 0 disables the penalty.
    """

    type: WireEnum[PoolPolicyType] = Field(
        PoolPolicyType.PRIORITY,
        description="Priority, LowestCost, RoundRobin, LeastLoaded or WeightedRandom.",
    )
    failure_penalty: Annotated[NonNegativeInt, at_most(MAX_SECONDS, "seconds")] = Field(
        DEFAULT_FAILURE_PENALTY_SECONDS,
        description="Seconds a member ranks last after a failed placement on it (0 = never).",
    )


class PoolSpec(WireModel):
    members: list[PoolMember] = Field(
        min_length=1, description="Accounts/regions/zones in the pool (at least one)."
    )
    policy: PoolPolicy = Field(
        default_factory=PoolPolicy, description="How members are ranked (default Priority)."
    )
    allowed_namespaces: list[NamespaceName] | None = Field(
        None, description="Namespaces that may use the pool; absent = every namespace."
    )

    @model_validator(mode="after")
    def _members_unique(self) -> PoolSpec:
        seen: set[str] = set()
        for index, member in enumerate(self.members):
            if member.key in seen:
                raise field_error(
                    ("members", index),
                    f"duplicate member {member.key!r}: each account/region appears once",
                    member.key,
                )
            seen.add(member.key)
        return self

    def allows(self, namespace: str) -> bool:
        """True if objects of ``namespace`` may be placed through this pool."""
        return self.allowed_namespaces is None or namespace in self.allowed_namespaces


class PoolMemberStatus(WireModel):
    """Usage and health of one member."""

    member: str = Field(description="PoolMember.key of the member.")
    account: str = Field(description="Account of the member.")
    region: str | None = Field(None, description="Region of the member.")
    healthy: StrictBool = Field(True, description="False while the account is unhealthy.")
    message: str = Field("", description="Why the member is unhealthy, if it is.")
    instances: NonNegativeInt = Field(0, description="Instances placed on the member.")
    volumes: NonNegativeInt = Field(0, description="Volumes placed on the member.")
    cpu: NonNegativeInt = Field(0, description="vCPUs of the instances placed.")
    memory_mib: NonNegativeInt = Field(
        0, alias="memoryMiB", description="Memory of the instances placed, MiB."
    )
    last_failure_time: datetime | None = Field(
        None, description="When a placement on the member last failed (failure penalty)."
    )
    last_failure_reason: str | None = Field(None, description="Why it failed.")


class PoolStatus(PhaselessStatus):
    members: list[PoolMemberStatus] = Field(
        default_factory=list, description="Usage and health per member."
    )


class Pool(Resource):
    """An aggregation of accounts/regions/zones that Instances, Volumes and Subnets draw on."""

    KIND: ClassVar[str] = "Pool"
    PLURAL: ClassVar[str] = "pools"
    SCOPE: ClassVar[Scope] = Scope.CLUSTER
    HAS_STATUS: ClassVar[bool] = True

    kind: Literal["Pool"] = Field("Pool", description="Pool.")
    spec: PoolSpec = Field(description="Members, policy and allowed namespaces.")
    status: PoolStatus = Field(default_factory=PoolStatus, description="Per-member status.")
