"""The group scheduler (``reconcilers.placement.group``, DESIGN §10): worked examples of each
rule and topology, then properties over small random pools — a placement always keeps every
Required rule, an infeasible group places nothing and says why, and whatever a brute-force
search can place, the scheduler places too."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Hashable, Sequence

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api_types import PoolPolicy, PoolPolicyType
from bench import groupsched
from reconcilers.placement import (
    AccountState,
    Candidate,
    Fixed,
    GroupDecision,
    Mode,
    Need,
    Replica,
    Rule,
    RuleType,
    Site,
    Topology,
    place,
    place_group,
    zone_choices,
)

AA, PROX = RuleType.ANTI_AFFINITY, RuleType.PROXIMITY
REQ, PREF = Mode.REQUIRED, Mode.PREFERRED


def account(
    name: str,
    region: str = "us-east-1",
    zones: Sequence[str] = (),
    driver: str = "simulated",
    image: bool = True,
) -> AccountState:
    return AccountState(
        name,
        region,
        zones=tuple(zones),
        images={"ubuntu": f"ami-{name}"} if image else {},
        driver=driver,
    )


def pool(
    *states: AccountState, caps: dict[str, int] | None = None
) -> tuple[list[Candidate], dict[str, AccountState]]:
    """Members in the given order, the first ranked best (Priority policy)."""
    caps = caps or {}
    candidates = [
        Candidate(s.name, member=s.name, priority=len(states) - n, max_instances=caps.get(s.name))
        for n, s in enumerate(states)
    ]
    return candidates, {s.name: s for s in states}


def replicas(member: str, count: int, start: int = 0) -> list[Replica]:
    return [
        Replica(member, i, Need(uid=f"shop/{member}/{i}", image="ubuntu"))
        for i in range(start, start + count)
    ]


def where(decision: GroupDecision, attribute: str = "zone") -> dict[str, str | None]:
    return {a.name: getattr(a.site, attribute) for a in decision.assignments}


THREE_ZONES = pool(
    account("sim-a", zones=("us-east-1a", "us-east-1b")),
    account("sim-b", zones=("us-east-1c",)),
)


def test_three_replicas_anti_affinity_on_zone_land_in_three_zones() -> None:
    rule = Rule(AA, ("lb",), Topology.ZONE, REQ)
    decision = place_group(replicas("lb", 3), *THREE_ZONES, rules=[rule])
    assert decision.feasible
    assert sorted(str(z) for z in where(decision).values()) == [
        "us-east-1a",
        "us-east-1b",
        "us-east-1c",
    ]
    # Best-ranked first: sim-a (the better member) takes both of its zones, sim-b the third.
    assert [a.option.key for a in decision.assignments] == ["sim-a", "sim-a", "sim-b"]
    assert all(a.option.zone == a.site.zone for a in decision.assignments)
    (outcome,) = decision.rules
    assert outcome.kept and outcome.message.startswith("AntiAffinity(lb) on zone, Required: kept")


def test_four_replicas_required_over_three_zones_place_nothing_and_say_why() -> None:
    rule = Rule(AA, ("lb",), Topology.ZONE, REQ)
    decision = place_group(replicas("lb", 4), *THREE_ZONES, rules=[rule])
    assert not decision.feasible and decision.assignments == ()
    expected = (
        "AntiAffinity(lb) on zone, Required: 4 replicas need 4 distinct zones, the pool offers 3 "
        "(us-east-1a, us-east-1b, us-east-1c)"
    )
    assert decision.reason == expected
    assert decision.rules[0].message == expected and not decision.rules[0].kept
    reports = {m.key: m.reasons for m in decision.members}
    assert reports["sim-a"] == (
        "AntiAffinity(lb) on zone, Required: offers zones us-east-1a, us-east-1b to lb-0..lb-3",
    )
    assert "offers zone us-east-1c" in reports["sim-b"][0]
    assert expected in decision.summary()


def test_proximity_on_region_keeps_every_replica_in_one_region() -> None:
    candidates, accounts = pool(
        account("east-a", "us-east-1"),
        account("west-a", "us-west-2"),
        account("east-b", "us-east-1"),
        caps={"east-a": 2},
    )
    group = replicas("db", 2) + replicas("web", 3)
    alone = place_group(group, candidates, accounts)
    assert set(where(alone, "region").values()) == {"us-east-1", "us-west-2"}  # overflow west
    rule = Rule(PROX, ("db", "web"), Topology.REGION, REQ)
    decision = place_group(group, candidates, accounts, rules=[rule])
    assert set(where(decision, "region").values()) == {"us-east-1"}
    assert Counter(a.option.key for a in decision.assignments) == {"east-a": 2, "east-b": 3}
    assert decision.rules[0].message == (
        "Proximity(db, web) on region, Required: kept: all 5 replicas in region us-east-1"
    )


def test_proximity_no_region_can_host_all_says_what_each_lacks() -> None:
    candidates, accounts = pool(
        account("east-a", "us-east-1"),
        account("west-a", "us-west-2", image=False),
        account("west-b", "us-west-2"),
        caps={"east-a": 2, "west-b": 1},
    )
    rule = Rule(PROX, ("web",), Topology.REGION, REQ)
    decision = place_group(replicas("web", 3), candidates, accounts, rules=[rule])
    assert not decision.feasible and decision.assignments == ()
    assert decision.reason == (
        "Proximity(web) on region, Required: no single region can host all 3 replicas: "
        "us-east-1 has room for 2; us-west-2 has room for 1"
    )
    reports = {m.key: m.reasons for m in decision.members}
    assert reports["west-a"][0] == "every replica: image ubuntu is not mapped for account west-a"
    assert "room for 2 of the 3 replicas it could take (maxInstances)" in reports["east-a"]


def test_a_broken_preferred_rule_is_reported_not_enforced() -> None:
    rule = Rule(AA, ("lb",), Topology.ZONE, PREF)
    decision = place_group(replicas("lb", 4), *THREE_ZONES, rules=[rule])
    assert decision.feasible and len(decision.assignments) == 4
    (outcome,) = decision.rules
    assert not outcome.kept
    assert outcome.message.startswith("AntiAffinity(lb) on zone, Preferred: ")
    assert "share zone" in outcome.message
    assert "(not kept: it cannot be kept together with the Required rules)" in outcome.message
    assert decision.summary() == outcome.message


def test_preferred_rules_are_kept_in_order_when_not_all_can_be() -> None:
    candidates, accounts = pool(account("a", "r1"), account("b", "r2"))
    together = Rule(PROX, ("x",), Topology.ACCOUNT, PREF)
    apart = Rule(AA, ("x",), Topology.ACCOUNT, PREF)
    decision = place_group(replicas("x", 2), candidates, accounts, rules=[together, apart])
    assert [o.kept for o in decision.rules] == [True, False]
    assert f"and {together}" in decision.rules[1].message
    reverse = place_group(replicas("x", 2), candidates, accounts, rules=[apart, together])
    assert [o.kept for o in reverse.rules] == [True, False]


def test_fixed_replicas_count_when_scaling_up() -> None:
    candidates, accounts = THREE_ZONES
    fixed = [
        Fixed("lb", 0, Site.of("sim-a", "us-east-1", "us-east-1a", accounts)),
        Fixed("lb", 1, Site.of("sim-b", "us-east-1", "us-east-1c", accounts)),
    ]
    rule = Rule(AA, ("lb",), Topology.ZONE, REQ)
    decision = place_group(
        replicas("lb", 1, start=2), candidates, accounts, rules=[rule], fixed=fixed
    )
    assert where(decision) == {"lb-2": "us-east-1b"}
    assert "lb-0 in us-east-1a" in decision.rules[0].message  # the fixed ones are counted
    more = place_group(replicas("lb", 2, start=2), candidates, accounts, rules=[rule], fixed=fixed)
    assert not more.feasible
    assert more.reason == (
        "AntiAffinity(lb) on zone, Required: 2 replicas need 2 distinct zones besides those of "
        "lb-0, lb-1 (us-east-1a, us-east-1c), the pool offers 1 more (us-east-1b)"
    )


def test_fixed_replicas_that_already_break_a_required_rule_block_the_group() -> None:
    candidates, accounts = THREE_ZONES
    fixed = [Fixed("lb", n, Site.of("sim-a", "us-east-1", "us-east-1a", accounts)) for n in (0, 1)]
    rule = Rule(AA, ("lb",), Topology.ZONE, REQ)
    decision = place_group(
        replicas("lb", 1, start=2), candidates, accounts, rules=[rule], fixed=fixed
    )
    assert not decision.feasible and decision.assignments == ()
    assert decision.reason == (
        "AntiAffinity(lb) on zone, Required: the fixed replicas lb-0, lb-1 share zone us-east-1a"
    )


def test_a_fixed_replica_pins_a_proximity_rule() -> None:
    candidates, accounts = pool(account("east", "us-east-1"), account("west", "us-west-2"))
    fixed = [Fixed("db", 0, Site.of("west", "us-west-2", None, accounts))]
    rule = Rule(PROX, ("db", "web"), Topology.REGION, REQ)
    decision = place_group(replicas("web", 2), candidates, accounts, rules=[rule], fixed=fixed)
    assert set(where(decision, "account").values()) == {"west"}


def test_host_rules_need_accounts_that_can_express_them() -> None:
    candidates, accounts = pool(
        account("sim-a", zones=("z1",)),
        account("ec2-a", zones=("us-east-1a", "us-east-1b"), driver="ec2"),
    )
    spread = Rule(AA, ("db",), Topology.HOST, REQ)
    decision = place_group(
        replicas("db", 3), candidates, accounts, rules=[spread], host_accounts={"ec2-a"}
    )
    assert set(where(decision, "account").values()) == {"ec2-a"}
    assert decision.rules[0].message == (
        "AntiAffinity(db) on host, Required: kept: left to the provider's spread placement "
        "group on ec2-a"
    )
    cluster = Rule(PROX, ("db",), Topology.HOST, REQ)
    packed = place_group(
        replicas("db", 3), candidates, accounts, rules=[cluster], host_accounts={"ec2-a"}
    )
    assert len(set(where(packed).values())) == 1  # a cluster group lives in one zone
    refused = place_group(replicas("db", 3), candidates, accounts, rules=[spread])
    assert not refused.feasible and refused.assignments == ()
    assert refused.reason == (
        "AntiAffinity(db) on host, Required: no member able to take db-0..db-2 is on an account "
        "that can express host placement (EC2 placement groups): not ec2-a, sim-a; capable: none"
    )
    reports = {m.key: m.reasons for m in refused.members}
    assert "account sim-a cannot express host placement" in reports["sim-a"][0]
    preferred = Rule(AA, ("db",), Topology.HOST, PREF)
    soft = place_group(replicas("db", 3), candidates, accounts, rules=[preferred])
    assert soft.feasible and not soft.rules[0].kept
    assert "which cannot express host placement" in soft.rules[0].message


def test_zones_of_different_regions_are_different_domains() -> None:
    candidates, accounts = pool(
        account("a", "r1", zones=("z1",)), account("b", "r2", zones=("z1",))
    )
    rule = Rule(AA, ("x",), Topology.ZONE, REQ)
    decision = place_group(replicas("x", 2), candidates, accounts, rules=[rule])
    assert set(where(decision, "account").values()) == {"a", "b"}
    bad = place_group(replicas("x", 3), candidates, accounts, rules=[rule])
    assert bad.reason.endswith("the pool offers 2 (simulated:r1/z1, simulated:r2/z1)")


def test_provider_topology_is_the_account_driver() -> None:
    candidates, accounts = pool(account("sim-a"), account("sim-b"), account("ec2-a", driver="ec2"))
    rule = Rule(AA, ("x",), Topology.PROVIDER, REQ)
    decision = place_group(replicas("x", 2), candidates, accounts, rules=[rule])
    assert where(decision, "provider") == {"x-0": "simulated", "x-1": "ec2"}
    assert place_group(replicas("x", 3), candidates, accounts, rules=[rule]).reason.endswith(
        "3 replicas need 3 distinct providers, the pool offers 2 (ec2, simulated)"
    )


def test_rules_that_hold_alone_but_not_together_name_each_other() -> None:
    candidates, accounts = pool(account("a", "r1"), account("b", "r2"))
    apart = Rule(AA, ("x",), Topology.REGION, REQ)
    together = Rule(PROX, ("x", "y"), Topology.REGION, REQ)
    group = replicas("x", 2) + replicas("y", 1)
    decision = place_group(group, candidates, accounts, rules=[apart, together])
    assert not decision.feasible
    assert decision.reason == f"{together}: can be kept alone, not together with {apart}"


def test_no_eligible_member_places_nothing_with_the_policy_rejections() -> None:
    candidates, accounts = pool(account("a", image=False), account("b", image=False))
    decision = place_group(replicas("x", 2), candidates, accounts)
    assert not decision.feasible
    assert decision.reason == "no member of the pool can take x-0, x-1"
    assert [m.reasons for m in decision.members] == [
        ("every replica: image ubuntu is not mapped for account a",),
        ("every replica: image ubuntu is not mapped for account b",),
    ]


def test_max_instances_caps_the_group_on_a_member() -> None:
    candidates, accounts = pool(account("a"), account("b"), caps={"a": 3})
    decision = place_group(replicas("x", 5), candidates, accounts, load={"a": 1})
    assert Counter(a.option.key for a in decision.assignments) == {"a": 2, "b": 3}
    full = place_group(
        replicas("x", 5),
        candidates,
        accounts,
        load={"a": 1},
        rules=[Rule(PROX, ("x",), Topology.ACCOUNT, REQ)],
    )
    assert [a.option.key for a in full.assignments] == ["b"] * 5


def test_without_rules_the_group_lands_where_one_by_one_scheduling_would() -> None:
    candidates, accounts = pool(*(account(n, zones=("z1", "z2")) for n in "abc"))
    group = replicas("x", 7)
    for kind in (PoolPolicyType.ROUND_ROBIN, PoolPolicyType.LEAST_LOADED):
        policy = PoolPolicy(type=kind)
        decision = place_group(group, candidates, accounts, policy=policy, rotation=5)
        load: Counter[str] = Counter()
        for turn, replica in enumerate(group):
            chosen = place(
                replica.need, candidates, accounts, policy=policy, load=load, rotation=5 + turn
            ).chosen
            assert chosen is not None
            assert decision.assignments[turn].option == chosen
            load[chosen.key] += 1


def test_same_inputs_same_decision() -> None:
    candidates, accounts = THREE_ZONES
    rules = [Rule(AA, ("lb",), Topology.ZONE, PREF), Rule(PROX, ("lb", "db"), Topology.REGION, REQ)]
    group = replicas("lb", 4) + replicas("db", 2)
    first = place_group(group, candidates, accounts, rules=rules)
    assert all(place_group(group, candidates, accounts, rules=rules) == first for _ in range(3))


def test_a_search_out_of_budget_places_nothing_and_says_so() -> None:
    rule = Rule(AA, ("lb",), Topology.ZONE, REQ)
    decision = place_group(replicas("lb", 3), *THREE_ZONES, rules=[rule], budget=2)
    assert not decision.feasible and decision.assignments == ()
    assert decision.reason == f"{rule}: the search gave up after 2 tries"


def test_a_replica_given_twice_is_refused() -> None:
    candidates, accounts = THREE_ZONES
    fixed = [Fixed("lb", 0, Site.of("sim-a", "us-east-1", "us-east-1a", accounts))]
    try:
        place_group(replicas("lb", 1), candidates, accounts, fixed=fixed)
    except ValueError as error:
        assert "lb-0 is given twice" in str(error)
    else:
        raise AssertionError("expected ValueError")


def test_the_benchmarked_decision_keeps_the_required_rules_and_breaks_the_preferred() -> None:
    """``bench.groupsched`` times this decision (a benchmark, not a timed test): it must stay
    the one its docstring describes, every replica placed and the fallback solves run."""
    group, candidates, accounts, rules = groupsched.scenario()
    policy = PoolPolicy(type=PoolPolicyType.LEAST_LOADED)
    decision = place_group(group, candidates, accounts, rules=rules, policy=policy)
    assert decision.feasible and len(decision.assignments) == len(group) == 100
    assert len(candidates) == 20
    assert [(o.rule.mode, o.kept) for o in decision.rules] == [
        (REQ, True),
        (REQ, True),
        (PREF, False),
    ]


# -- properties ------------------------------------------------------------------------------


def domain(topology: Topology, site: Site) -> Hashable:
    """The spec of the domains (DESIGN §10 as the module documents it), written out again."""
    return {
        Topology.ZONE: (site.provider, site.region, site.zone),
        Topology.REGION: (site.provider, site.region),
        Topology.ACCOUNT: site.account,
        Topology.PROVIDER: site.provider,
        Topology.HOST: (site.account, site.region, site.zone),
    }[topology]


def keeps(rule: Rule, placed: Sequence[tuple[str, Site]], host_accounts: set[str]) -> bool:
    sites = [s for member, s in placed if member in rule.members]
    if rule.topology is Topology.HOST and any(s.account not in host_accounts for s in sites):
        return False
    domains = [domain(rule.topology, s) for s in sites]
    if rule.type is AA:
        return rule.topology is Topology.HOST or len(set(domains)) == len(domains)
    return len(set(domains)) <= 1


@st.composite
def problems(draw: st.DrawFn) -> dict[str, object]:
    states = []
    for n in range(draw(st.integers(1, 3))):
        states.append(
            account(
                f"acct{n}",
                draw(st.sampled_from(["r1", "r2"])),
                draw(st.lists(st.sampled_from(["z1", "z2"]), unique=True, max_size=2)),
                draw(st.sampled_from(["ec2", "simulated"])),
                image=draw(st.booleans()) or n == 0,
            )
        )
    caps = {s.name: c for s in states if (c := draw(st.none() | st.integers(0, 3))) is not None}
    candidates, accounts = pool(*states, caps=caps)
    group = replicas("a", draw(st.integers(0, 2))) + replicas("b", draw(st.integers(0, 2)))
    fixed: list[Fixed] = []
    for member in draw(st.lists(st.sampled_from(["a", "b"]), max_size=2)):
        state = draw(st.sampled_from(states))
        zone = draw(st.sampled_from(state.zones)) if state.zones else None
        fixed.append(
            Fixed(member, 10 + len(fixed), Site.of(state.name, state.region, zone, accounts))
        )
    rules = draw(
        st.lists(
            st.builds(
                Rule,
                st.sampled_from(list(RuleType)),
                st.sampled_from([("a",), ("b",), ("a", "b")]),
                st.sampled_from(list(Topology)),
                st.sampled_from(list(Mode)),
            ),
            max_size=2,
        )
    )
    hosts = set(draw(st.lists(st.sampled_from([s.name for s in states]), max_size=2)))
    return {
        "replicas": group,
        "candidates": candidates,
        "accounts": accounts,
        "rules": rules,
        "fixed": fixed,
        "host_accounts": hosts,
    }


def brute_force(p: dict[str, object]) -> bool:
    """Whether any choice per replica (eligible member, allowed zone) keeps every Required rule
    and every member's cap: the scheduler must find one whenever this does."""
    group: list[Replica] = p["replicas"]  # type: ignore[assignment]
    candidates: list[Candidate] = p["candidates"]  # type: ignore[assignment]
    accounts: dict[str, AccountState] = p["accounts"]  # type: ignore[assignment]
    rules: list[Rule] = p["rules"]  # type: ignore[assignment]
    fixed: list[Fixed] = p["fixed"]  # type: ignore[assignment]
    hosts: set[str] = p["host_accounts"]  # type: ignore[assignment]
    per_replica = []
    for replica in group:
        options = place(replica.need, candidates, accounts).ranked
        per_replica.append(
            [
                (o.key, Site.of(o.account, o.region, z, accounts))
                for o in options
                for z in zone_choices(replica.need, o, accounts[o.account])
            ]
        )
    caps = {c.key: c.max_instances for c in candidates if c.max_instances is not None}
    required = [r for r in rules if r.mode is REQ]
    for combo in itertools.product(*per_replica):
        used = Counter(key for key, _ in combo)
        if any(used[k] > cap for k, cap in caps.items()):
            continue
        placed = [(r.member, s) for r, (_, s) in zip(group, combo, strict=True)]
        placed += [(f.member, f.site) for f in fixed]
        if all(keeps(rule, placed, hosts) for rule in required):
            return True
    return False


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_placements_keep_required_rules_and_infeasible_places_nothing(p: dict[str, object]) -> None:
    decision = place_group(**p)  # type: ignore[arg-type]
    group: list[Replica] = p["replicas"]  # type: ignore[assignment]
    rules: list[Rule] = p["rules"]  # type: ignore[assignment]
    hosts: set[str] = p["host_accounts"]  # type: ignore[assignment]
    fixed: list[Fixed] = p["fixed"]  # type: ignore[assignment]
    assert [o.rule for o in decision.rules] == rules
    assert all(o.message.startswith(str(o.rule)) for o in decision.rules)
    if decision.feasible:
        assert [a.replica for a in decision.assignments] == group
        placed = [(a.replica.member, a.site) for a in decision.assignments]
        placed += [(f.member, f.site) for f in fixed]
        for outcome in decision.rules:
            assert outcome.kept == keeps(outcome.rule, placed, hosts), outcome.message
            assert outcome.kept or outcome.rule.mode is PREF
        candidates: list[Candidate] = p["candidates"]  # type: ignore[assignment]
        used = Counter(a.option.key for a in decision.assignments)
        assert all(
            used[c.key] <= c.max_instances for c in candidates if c.max_instances is not None
        )
        assert all(a.option.zone == a.site.zone for a in decision.assignments)
    else:
        assert decision.assignments == ()
        assert decision.reason
        assert all(not o.kept for o in decision.rules)
    assert decision.feasible == brute_force(p)
