"""The value types of the group scheduler: rules, replicas, sites and the decision.

Where it sits: the vocabulary of ``reconcilers.placement.group`` (the VirtualCluster
scheduler, DESIGN §10), shared with its wording (``grouptext``) and re-exported by ``group``.
A rule speaks the spec's own words (``api_types.clusters``: :data:`RuleType`, :data:`Topology`,
:data:`Mode` are its enums); the VirtualCluster reconciler turns its spec's members and
``placement`` rules into :class:`Replica` and :class:`Rule`, its existing replicas into
:class:`Fixed`, and reads back the :class:`GroupDecision`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

from api_types.clusters import PlacementMode as Mode
from api_types.clusters import PlacementRuleType as RuleType
from api_types.clusters import Topology
from reconcilers.placement.policy import AccountState, Need, Option

__all__ = [
    "UNKNOWN_PROVIDER",
    "Assignment",
    "Fixed",
    "GroupDecision",
    "MemberReport",
    "Mode",
    "Replica",
    "Rule",
    "RuleOutcome",
    "RuleType",
    "Site",
    "Topology",
]

#: The provider of an account whose driver is not known.
UNKNOWN_PROVIDER = "unknown"


@dataclass(frozen=True)
class Rule:
    """A placement rule between the replicas of ``members`` (all of them together)."""

    type: RuleType
    members: tuple[str, ...]
    topology: Topology
    mode: Mode = Mode.REQUIRED

    def __str__(self) -> str:
        return f"{self.type}({', '.join(self.members)}) on {self.topology}, {self.mode}"


@dataclass(frozen=True)
class Site:
    """Where a replica is, as far as the topologies go."""

    account: str
    region: str
    zone: str | None = None
    provider: str = UNKNOWN_PROVIDER

    @classmethod
    def of(
        cls, account: str, region: str, zone: str | None, accounts: Mapping[str, AccountState]
    ) -> Site:
        """A site whose provider is the account's driver (``UNKNOWN_PROVIDER`` if not known)."""
        state = accounts.get(account)
        driver = state.driver if state is not None else None
        return cls(account, region, zone, driver or UNKNOWN_PROVIDER)

    def domain(self, topology: Topology) -> Hashable:
        if topology is Topology.ZONE:
            return (self.provider, self.region, self.zone)
        if topology is Topology.REGION:
            return (self.provider, self.region)
        if topology is Topology.ACCOUNT:
            return self.account
        if topology is Topology.PROVIDER:
            return self.provider
        return (self.account, self.region, self.zone)  # host: a cluster group's account + zone


@dataclass(frozen=True)
class Replica:
    """A replica to place: ordinal ``ordinal`` of VirtualCluster member ``member``."""

    member: str
    ordinal: int
    need: Need

    @property
    def name(self) -> str:
        return f"{self.member}-{self.ordinal}"


@dataclass(frozen=True)
class Fixed:
    """A replica already placed that stays where it is; it counts for the rules."""

    member: str
    ordinal: int
    site: Site

    @property
    def name(self) -> str:
        return f"{self.member}-{self.ordinal}"


@dataclass(frozen=True)
class Assignment:
    replica: Replica
    option: Option
    site: Site

    @property
    def name(self) -> str:
        return self.replica.name


@dataclass(frozen=True)
class RuleOutcome:
    rule: Rule
    kept: bool
    message: str


@dataclass(frozen=True)
class MemberReport:
    """Why a pool member could not serve (policy rejections per replica, rules it fails)."""

    member: str | None
    account: str
    reasons: tuple[str, ...]

    @property
    def key(self) -> str:
        return self.member or self.account


@dataclass(frozen=True)
class GroupDecision:
    """A placement of every replica (``feasible``), or none with the reasons."""

    feasible: bool
    assignments: tuple[Assignment, ...]
    rules: tuple[RuleOutcome, ...]
    members: tuple[MemberReport, ...]
    reason: str = ""

    def summary(self) -> str:
        """One line: the reason and each rule's message (conditions, events)."""
        parts = [self.reason] if self.reason else []
        parts += [o.message for o in self.rules if not (self.feasible and o.kept)]
        return "; ".join(parts) or "every rule kept"
