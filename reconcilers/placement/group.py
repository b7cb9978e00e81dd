"""The group scheduler (DESIGN §10): every replica of a VirtualCluster placed at once, under rules.

Where it sits: the pure core of VirtualCluster placement, beside the single-object policy
(``reconcilers.placement.policy``) it is built on. The VirtualCluster reconciler gathers the
same inputs as the pool scheduler (``inputs.candidates``, ``inputs.account_states``, load,
failures, the RoundRobin turn), translates the spec's members and ``placement`` rules into
:class:`Replica` and :class:`Rule` (decoupled from ``api_types``), passes the replicas that
already exist and stay as :class:`Fixed`, and gets a :class:`GroupDecision`: an option per
replica, or nothing at all with an explanation per rule and per pool member. No I/O, no clock.

API::

    decision = place_group(
        [Replica("lb", 0, need_lb0), Replica("lb", 1, need_lb1), Replica("db", 0, need_db0)],
        candidates_of_pool(pool.spec),
        accounts,                                   # name -> AccountState (with ``driver``)
        rules=[Rule(RuleType.ANTI_AFFINITY, ("lb",), Topology.ZONE, Mode.REQUIRED)],
        fixed=[Fixed("db", 1, Site.of("ec2-a", "us-east-1", "us-east-1a", accounts))],
        host_accounts={"ec2-a"},                    # accounts that can express host rules
        policy=pool.spec.policy, load=..., failures=..., now=..., rotation=turn,
    )
    decision.feasible        # False: nothing is placed, ``reason`` and the reports say why
    decision.assignments     # Assignment(replica, option, site) per replica, in input order
    decision.rules           # RuleOutcome(rule, kept, message) per rule, in input order
    decision.members         # MemberReport(member, account, reasons) per pool member

Each replica is first decided alone by ``policy.place`` (its filters and ranking; the replicas
take consecutive RoundRobin turns from ``rotation`` and each sees the load of the replicas
before it on their first choices, so without rules the group lands where one-by-one
scheduling would put it), and each option is widened to every zone the member allows
(``policy.zone_choices``, the policy's pick first). ``maxInstances`` caps the group's replicas
on a member to ``maxInstances - load`` (``load`` counts the fixed replicas like every placed
object). The namespace quota is checked per replica against the ``used`` in its ``Need``.

Rules, over the replicas of the listed members (fixed ones included; a Required rule the fixed
replicas already break makes the group infeasible, naming them — they are never moved):

* ``AntiAffinity``: pairwise-distinct domains; ``Proximity``: one domain for all.
* Domains: ``zone`` = (provider, region, zone) — zones of different regions differ even when
  named alike, and a zoneless account counts as one zone of its region; ``region`` =
  (provider, region); ``account``; ``provider`` = the account's driver
  (``AccountState.driver``; an unknown driver counts as the provider ``unknown``).
* ``host`` is not chosen here: the provider keeps it (EC2 placement groups: spread for
  AntiAffinity, cluster for Proximity). The scheduler only places the rule's replicas on
  accounts in ``host_accounts``; a host Proximity also needs one account and zone (a cluster
  placement group lives in one availability zone of one account). A Required host rule with no
  such account is infeasible and says so.

Objective: every Required rule holds (else nothing is placed). Preferred rules are tried all
together first; failing that, one by one in the order given, each kept if it can be together
with the Required rules and the Preferred rules kept before it; a broken one is reported, not
enforced. Among the placements keeping those, replicas are placed in input order, each on its
best-ranked option that still lets every later replica be placed (the lexicographically best
placement by rank).

The search (``reconcilers.placement.groupsearch``): root propagation (domain counting for
AntiAffinity, the domains able to host all for Proximity), then depth-first over the ranked
choices with forward checking. Complexity: O(R·C) per solve when nothing conflicts (R replicas,
C choices each: members times their zones), plus O(Rk·C) forward checks per assignment for the Rk
replicas of the rules it touches; backtracking is exponential in the worst case (colouring
reduces to AntiAffinity), so each solve is capped at ``budget`` assignments and a search that
runs out says so. At most 2 + Preferred solves when feasible; an infeasible group also solves
each Required rule alone to explain. 100 replicas over 20 members with three rules: 25-55 ms on
a shared 2-core machine, about half of it the 100 ``policy.place`` calls (``bench.groupsched``).

Worked example — three ``lb`` replicas, AntiAffinity on zone Required, a pool of ``sim-a``
(us-east-1, zones a and b) and ``sim-b`` (us-east-1, zone c), Priority policy, sim-a first::

    lb-0 -> sim-a us-east-1a,  lb-1 -> sim-a us-east-1b,  lb-2 -> sim-b us-east-1c
    AntiAffinity(lb) on zone, Required: kept: lb-0 in us-east-1a, lb-1 in us-east-1b, ...

With a fourth replica, nothing is placed::

    AntiAffinity(lb) on zone, Required: 4 replicas need 4 distinct zones, the pool offers 3
    (us-east-1a, us-east-1b, us-east-1c)
    sim-a: AntiAffinity(lb) on zone, Required: offers zones us-east-1a, us-east-1b to lb-0..lb-3
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import NamedTuple

from api_types import PoolPolicy
from reconcilers.placement.groupsearch import Constraint, Exhausted, Node, room, solve
from reconcilers.placement.grouptext import (
    describe_fixed_break,
    describe_outcome,
    label,
    labels,
    names,
)
from reconcilers.placement.grouptypes import (
    UNKNOWN_PROVIDER,
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
)
from reconcilers.placement.policy import (
    AccountState,
    Candidate,
    Decision,
    Option,
    place,
    zone_choices,
)

__all__ = [
    "SEARCH_BUDGET",
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
    "place_group",
]

#: Assignments one solve may try before it gives up (a few hundred ms of pathological search).
SEARCH_BUDGET = 20_000


class _Choice(NamedTuple):
    """An option of a replica in one of its member's zones (``site.zone``; ``option.zone`` is
    the policy's pick, replaced in the assignment only: thousands of choices are built)."""

    option: Option
    site: Site

    def placed(self) -> Option:
        same = self.option.zone == self.site.zone
        return self.option if same else replace(self.option, zone=self.site.zone)


def place_group(
    replicas: Sequence[Replica],
    candidates: Sequence[Candidate],
    accounts: Mapping[str, AccountState],
    *,
    rules: Sequence[Rule] = (),
    fixed: Sequence[Fixed] = (),
    host_accounts: Collection[str] = frozenset(),
    policy: PoolPolicy | None = None,
    load: Mapping[str, int] | None = None,
    failures: Mapping[str, datetime] | None = None,
    now: datetime | None = None,
    rotation: int = 0,
    budget: int = SEARCH_BUDGET,
) -> GroupDecision:
    """Place every replica of ``replicas`` under ``rules``, or none; see the module."""
    _check_names(replicas, fixed)
    decisions = _decide_each(
        replicas, candidates, accounts, policy, load or {}, failures, now, rotation
    )
    problem = _Problem(
        list(replicas),
        list(fixed),
        list(rules),
        list(candidates),
        accounts,
        decisions,
        frozenset(host_accounts),
        _capacity(candidates, load or {}),
        budget,
    )
    return problem.decide()


def _check_names(replicas: Sequence[Replica], fixed: Sequence[Fixed]) -> None:
    seen: set[str] = set()
    for name in [r.name for r in replicas] + [f.name for f in fixed]:
        if name in seen:
            raise ValueError(f"replicas: {name} is given twice (to place and fixed together)")
        seen.add(name)


def _capacity(candidates: Sequence[Candidate], load: Mapping[str, int]) -> dict[str, int]:
    """Room left per capped member: ``maxInstances`` minus what is placed there already."""
    return {
        c.key: max(0, c.max_instances - load.get(c.key, 0))
        for c in candidates
        if c.max_instances is not None
    }


def _decide_each(
    replicas: Sequence[Replica],
    candidates: Sequence[Candidate],
    accounts: Mapping[str, AccountState],
    policy: PoolPolicy | None,
    load: Mapping[str, int],
    failures: Mapping[str, datetime] | None,
    now: datetime | None,
    rotation: int,
) -> list[Decision]:
    """``place`` per replica, each with its RoundRobin turn and the load of the earlier
    replicas' first choices (LeastLoaded spreads the group as it would one by one)."""
    capacity = _capacity(candidates, load)
    earlier: Counter[str] = Counter()
    seen = dict(load)
    # Each cap is raised by the earlier replicas' share so that the filter still sees only
    # what is really placed: the search, not this heuristic load, enforces the caps.
    shifted = list(candidates)
    position = {c.key: n for n, c in enumerate(candidates)}
    decisions = []
    for turn, replica in enumerate(replicas):
        decision = place(
            replica.need,
            shifted,
            accounts,
            policy=policy,
            load=seen,
            failures=failures,
            now=now,
            rotation=rotation + turn,
        )
        ranked = tuple(
            o if o.candidate is candidates[o.index] else replace(o, candidate=candidates[o.index])
            for o in decision.ranked
        )
        decisions.append(Decision(ranked, decision.rejections))
        first = next(
            (o for o in ranked if earlier[o.key] < capacity.get(o.key, len(replicas))), None
        )
        if first is not None:
            earlier[first.key] += 1
            seen[first.key] = seen.get(first.key, 0) + 1
            original = candidates[position[first.key]]
            if original.max_instances is not None:
                shifted[position[first.key]] = replace(
                    original, max_instances=original.max_instances + earlier[first.key]
                )
    return decisions


class _Problem:
    """One call of :func:`place_group`: the choices, the solves, the outcome."""

    def __init__(
        self,
        replicas: list[Replica],
        fixed: list[Fixed],
        rules: list[Rule],
        candidates: list[Candidate],
        accounts: Mapping[str, AccountState],
        decisions: list[Decision],
        host_accounts: frozenset[str],
        capacity: dict[str, int],
        budget: int,
    ) -> None:
        self.replicas, self.fixed, self.rules = replicas, fixed, rules
        self.candidates, self.decisions = candidates, decisions
        self.host_accounts, self.capacity, self.budget = host_accounts, capacity, budget
        self.choices: list[list[_Choice]] = []
        # Many replicas share a need's zone fields and so the zones and nodes of a member.
        zones: dict[tuple[str, str | None, str | None, str | None], tuple[str | None, ...]] = {}
        places: dict[tuple[str, str | None], tuple[Site, Node]] = {}
        topologies = {r.topology for r in rules}
        self.nodes: list[list[Node]] = []
        for replica, decision in zip(replicas, decisions, strict=True):
            row, node_row = [], []
            need = replica.need
            for option in decision.ranked:
                key = option.key
                cache = (key, option.zone, need.zone, need.location_zone)
                if cache not in zones:
                    zones[cache] = zone_choices(need, option, accounts[option.account])
                for zone in zones[cache]:
                    place_ = places.get((key, zone))
                    if place_ is None:
                        driver = accounts[option.account].driver or UNKNOWN_PROVIDER
                        site = Site(option.account, option.region, zone, driver)
                        domains = {t.value: site.domain(t) for t in topologies}
                        place_ = places[(key, zone)] = (site, Node(key, domains))
                    row.append(_Choice(option, place_[0]))
                    node_row.append(place_[1])
            self.choices.append(row)
            self.nodes.append(node_row)

    # -- the solves -------------------------------------------------------------------------

    def of_rule(self, rule: Rule) -> tuple[list[int], list[Fixed]]:
        """The replicas to place and the fixed replicas a rule is about."""
        return (
            [i for i, r in enumerate(self.replicas) if r.member in rule.members],
            [f for f in self.fixed if f.member in rule.members],
        )

    def allowed(self, rules: Sequence[Rule]) -> list[list[int]]:
        """Per replica its choices that the host rules among ``rules`` leave."""
        allowed = [list(range(len(row))) for row in self.choices]
        for rule in rules:
            if rule.topology is Topology.HOST:
                for i in self.of_rule(rule)[0]:
                    allowed[i] = [
                        j
                        for j in allowed[i]
                        if self.choices[i][j].site.account in self.host_accounts
                    ]
        return allowed

    def constraint(self, rule: Rule, replicas: list[int]) -> Constraint | None:
        """``rule`` as a search constraint over ``replicas`` (indices into the allowed rows)."""
        if rule.topology is Topology.HOST and rule.type is RuleType.ANTI_AFFINITY:
            return None  # the provider's spread group keeps them apart
        fixed = {f.site.domain(rule.topology) for f in self.of_rule(rule)[1]}
        if rule.type is RuleType.ANTI_AFFINITY:
            return Constraint(True, rule.topology, tuple(replicas), taken=frozenset(fixed))
        if fixed:
            return Constraint(
                False, rule.topology, tuple(replicas), pinned=next(iter(fixed)), pin=True
            )
        return Constraint(False, rule.topology, tuple(replicas))

    def attempt(self, rules: Sequence[Rule]) -> tuple[int, ...] | None:
        """A placement keeping ``rules`` (choice index per replica), or None; Exhausted."""
        if any(self.fixed_break(rule) for rule in rules):
            return None
        allowed = self.allowed(rules)
        constraints = [
            k for rule in rules if (k := self.constraint(rule, self.of_rule(rule)[0])) is not None
        ]
        nodes = [[self.nodes[i][j] for j in row] for i, row in enumerate(allowed)]
        found = solve(nodes, constraints, self.capacity, budget=self.budget)
        return None if found is None else tuple(allowed[i][j] for i, j in enumerate(found))

    def fixed_break(self, rule: Rule) -> str | None:
        return describe_fixed_break(rule, self.of_rule(rule)[1], self.host_accounts)

    # -- the decision -----------------------------------------------------------------------

    def decide(self) -> GroupDecision:
        missing = [r for r, row in zip(self.replicas, self.choices, strict=True) if not row]
        if missing:
            reason = f"no member of the pool can take {names(missing)}"
            messages = {r: f"{r}: not evaluated: {reason}" for r in self.rules}
            return self.infeasible(reason, messages, [])
        required = [r for r in self.rules if r.mode is Mode.REQUIRED]
        preferred = [r for r in self.rules if r.mode is Mode.PREFERRED]
        gave_up: set[Rule] = set()
        found = self.try_solve(self.rules, gave_up)
        kept = list(preferred)
        if found is None and preferred:
            found = self.try_solve(required, gave_up)
            if found is not None:
                kept = []
                for rule in preferred:
                    more = self.try_solve([*required, *kept, rule], gave_up)
                    if more is not None:
                        found = more
                        kept.append(rule)
        if found is None:
            return self.explain(required, gave_up)
        return self.placed(found, kept, gave_up)

    def try_solve(self, rules: Sequence[Rule], gave_up: set[Rule]) -> tuple[int, ...] | None:
        try:
            return self.attempt(rules)
        except Exhausted:
            gave_up.update(rules)
            return None

    def placed(self, found: tuple[int, ...], kept: list[Rule], gave_up: set[Rule]) -> GroupDecision:
        assignments = tuple(
            Assignment(replica, self.choices[i][j].placed(), self.choices[i][j].site)
            for i, (replica, j) in enumerate(zip(self.replicas, found, strict=True))
        )
        outcomes = []
        for rule in self.rules:
            why = ""
            if rule not in kept and rule.mode is Mode.PREFERRED:
                before = [r for r in kept if self.rules.index(r) < self.rules.index(rule)]
                why = "it cannot be kept together with the Required rules" + (
                    f" and {', '.join(map(str, before))}" if before else ""
                )
                if self.fixed_break(rule):
                    why = "the fixed replicas already break it"
                elif rule in gave_up:
                    why += f", or the search gave up after {self.budget} tries"
            kept_now, message = describe_outcome(
                rule, assignments, self.fixed, self.host_accounts, why
            )
            outcomes.append(RuleOutcome(rule, kept_now, message))
        return GroupDecision(True, assignments, tuple(outcomes), self.reports(()))

    def explain(self, required: list[Rule], gave_up: set[Rule]) -> GroupDecision:
        """Nothing placed: why, per Required rule and per member."""
        messages: dict[Rule, str] = {}
        alone_ok: list[Rule] = []
        for rule in required:
            text = self.why_not(rule)
            if text is None and self.try_solve([rule], gave_up) is None:
                text = (
                    f"{rule}: the search gave up after {self.budget} tries"
                    if rule in gave_up
                    else f"{rule}: the members' room (maxInstances) cannot hold the replicas "
                    "as it asks"
                )
            if text is None:
                alone_ok.append(rule)
            else:
                messages[rule] = text
        if not messages:
            active: list[Rule] = []
            for rule in alone_ok:
                if self.try_solve([*active, rule], gave_up) is None:
                    together = ", ".join(map(str, active)) or "the members' room (maxInstances)"
                    messages[rule] = f"{rule}: can be kept alone, not together with {together}"
                else:
                    active.append(rule)
        failing = [r for r in required if r in messages]
        reason = "; ".join(messages[r] for r in failing) or self.room_reason(gave_up)
        for rule in self.rules:
            messages.setdefault(rule, f"{rule}: not evaluated: {reason}")
        return self.infeasible(reason, messages, failing)

    def room_reason(self, gave_up: set[Rule]) -> str:
        if self.try_solve([], gave_up) is None:
            return "the members' room (maxInstances) cannot take every replica"
        return f"the search gave up after {self.budget} tries"

    def infeasible(
        self, reason: str, messages: Mapping[Rule, str], failing: Sequence[Rule]
    ) -> GroupDecision:
        outcomes = tuple(RuleOutcome(r, False, messages[r]) for r in self.rules)
        return GroupDecision(False, (), outcomes, self.reports(failing), reason)

    def reports(self, failing: Sequence[Rule]) -> tuple[MemberReport, ...]:
        """Per candidate: the policy's rejections (grouped by reason), the room it has, and
        its part in each failing rule."""
        reports = []
        for candidate in self.candidates:
            reasons: dict[str, list[Replica]] = {}
            for replica, decision in zip(self.replicas, self.decisions, strict=True):
                for rejection in decision.rejections:
                    if (rejection.member, rejection.account) == (
                        candidate.member,
                        candidate.account,
                    ):
                        reasons.setdefault(rejection.reason, []).append(replica)
            lines = [
                f"{'every replica' if len(who) == len(self.replicas) else names(who)}: {reason}"
                for reason, who in reasons.items()
            ]
            if failing:
                lines += self.member_parts(candidate, failing)
            reports.append(MemberReport(candidate.member, candidate.account, tuple(lines)))
        return tuple(reports)

    def member_parts(self, candidate: Candidate, failing: Sequence[Rule]) -> list[str]:
        takes = [
            (i, c)
            for i, row in enumerate(self.choices)
            for c in row
            if c.option.key == candidate.key
        ]
        lines = []
        room = self.capacity.get(candidate.key)
        could = {i for i, _ in takes}
        if room is not None and room < len(could):
            lines.append(
                f"room for {room} of the {len(could)} replicas it could take (maxInstances)"
            )
        for rule in failing:
            mine = set(self.of_rule(rule)[0]) & could
            if not mine:
                continue
            who = names([self.replicas[i] for i in sorted(mine)])
            if rule.topology is Topology.HOST and candidate.account not in self.host_accounts:
                lines.append(f"{rule}: account {candidate.account} cannot express host placement")
                continue
            domains = sorted({label(rule.topology, c.site) for i, c in takes if i in mine})
            plural = "" if len(domains) == 1 else "s"
            lines.append(f"{rule}: offers {rule.topology}{plural} {', '.join(domains)} to {who}")
        return lines

    def why_not(self, rule: Rule) -> str | None:
        """Why ``rule`` alone cannot be kept, where a count shows it; None if it may be."""
        broken = self.fixed_break(rule)
        if broken is not None:
            return broken
        mine, fixed = self.of_rule(rule)
        allowed = self.allowed([rule])
        if rule.topology is Topology.HOST:
            stuck = [self.replicas[i] for i in mine if not allowed[i]]
            if stuck:
                accounts = sorted({c.site.account for i in mine for c in self.choices[i]})
                return (
                    f"{rule}: no member able to take {names(stuck)} is on an account that can "
                    f"express host placement (EC2 placement groups): not {', '.join(accounts)}; "
                    f"capable: {', '.join(sorted(self.host_accounts)) or 'none'}"
                )
            if rule.type is RuleType.ANTI_AFFINITY:
                return None
        sites = {
            (i, c.site.domain(rule.topology)): c
            for i in mine
            for c in (self.choices[i][j] for j in allowed[i])
        }
        if rule.type is RuleType.ANTI_AFFINITY:
            return self.too_few_domains(rule, mine, fixed, [c.site for c in sites.values()])
        return self.no_host_domain(rule, mine, fixed, sites)

    def too_few_domains(
        self, rule: Rule, mine: list[int], fixed: list[Fixed], sites: list[Site]
    ) -> str | None:
        taken = {f.site.domain(rule.topology) for f in fixed}
        offered = [s for s in sites if s.domain(rule.topology) not in taken]
        count = len({s.domain(rule.topology) for s in offered})
        if count >= len(mine):
            return None
        top = rule.topology
        need = f"{len(mine)} replicas need {len(mine)} distinct {top}s"
        if taken:
            held = ", ".join(labels(top, [f.site for f in fixed]))
            need += f" besides those of {names(fixed)} ({held})"
        more = " more" if taken else ""
        listed = f" ({', '.join(labels(top, offered))})" if offered else ""
        return f"{rule}: {need}, the pool offers {count}{more}{listed}"

    def no_host_domain(
        self,
        rule: Rule,
        mine: list[int],
        fixed: list[Fixed],
        sites: Mapping[tuple[int, Hashable], _Choice],
    ) -> str | None:
        """Why no domain can host every replica of a Proximity rule, or None if one can."""
        top = rule.topology
        domains: dict[Hashable, Site] = {}
        for (_, domain), choice in sites.items():
            domains.setdefault(domain, choice.site)
        if fixed:
            domains = {fixed[0].site.domain(top): fixed[0].site}
        problems = []
        for domain, site in domains.items():
            lacking = [self.replicas[i] for i in mine if (i, domain) not in sites]
            members = {c.option.key for (_, d), c in sites.items() if d == domain}
            if lacking:
                problems.append(f"{label(top, site)} cannot take {names(lacking)}")
            elif (space := room(members, self.capacity)) < len(mine):
                problems.append(f"{label(top, site)} has room for {space:.0f}")
            else:
                return None
        if fixed:
            return f"{rule}: {names(fixed)} stay in {top} " + "; ".join(problems)
        return f"{rule}: no single {top} can host all {len(mine)} replicas: " + (
            "; ".join(sorted(problems)) or f"no {top} is offered"
        )
