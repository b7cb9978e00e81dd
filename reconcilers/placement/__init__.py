"""Placement (DESIGN §6): where an object that names a pool or an account is created.

Where it sits: between the caches and clouds and the reconcilers that bind objects (Instance,
Subnet, Volume) to a pool member. The pipeline, one module per step:

* ``policy`` — pure functions: filter the candidates, rank them by the pool policy (no I/O, no
  clock; the worked example is there);
* ``inputs`` — what the policy needs, gathered from the caches and the accounts' catalogues:
  account states, a pool's candidates;
* ``group`` — :func:`place_group`, the VirtualCluster's group scheduler (DESIGN §10): every
  replica at once under AntiAffinity/Proximity rules, all or nothing (pure, like ``policy``;
  its types in ``grouptypes``, its search in ``groupsearch``, its wording in ``grouptext``);
* ``pool`` — :class:`PoolScheduler`, the decisions in a pool with load and RoundRobin turns,
  shared by every pooled kind;
* ``instance`` — :class:`Scheduler`, the Instance's namespace quota and its richer need;
* ``memory`` — :class:`PlacementMemory`, what the process learned from recent placements
  (failure penalty, exhausted API budgets), on the injected clock.
"""

from reconcilers.placement.group import (
    Assignment,
    Fixed,
    GroupDecision,
    MemberReport,
    Mode,
    Replica,
    Rule,
    RuleOutcome,
    RuleType,
    Site,
    Topology,
    place_group,
)
from reconcilers.placement.inputs import Targets, Unschedulable, account_states, candidates
from reconcilers.placement.instance import Forecast, QuotaVerdict, Scheduler, tightest
from reconcilers.placement.memory import SAME_MEMBER_BACKOFF_SECONDS, PlacementMemory
from reconcilers.placement.policy import (
    AccountState,
    Candidate,
    Decision,
    Need,
    Option,
    Rejection,
    RejectionCode,
    candidates_of_pool,
    place,
    zone_choices,
)
from reconcilers.placement.pool import (
    BY_PLACEMENT,
    PoolScheduler,
    placed_counts,
    placement_index,
    pool_index,
)

__all__ = [
    "BY_PLACEMENT",
    "SAME_MEMBER_BACKOFF_SECONDS",
    "AccountState",
    "Assignment",
    "Candidate",
    "Decision",
    "Fixed",
    "Forecast",
    "GroupDecision",
    "MemberReport",
    "Mode",
    "Need",
    "Option",
    "PlacementMemory",
    "PoolScheduler",
    "QuotaVerdict",
    "Rejection",
    "RejectionCode",
    "Replica",
    "Rule",
    "RuleOutcome",
    "RuleType",
    "Scheduler",
    "Site",
    "Targets",
    "Topology",
    "Unschedulable",
    "account_states",
    "candidates",
    "candidates_of_pool",
    "place",
    "place_group",
    "placed_counts",
    "placement_index",
    "pool_index",
    "tightest",
    "zone_choices",
]
