"""Benchmark of the group scheduler (``reconcilers.placement.group``), not part of ``make test``.

Where it sits: measures one VirtualCluster schedule — 100 replicas over a pool of 20 members
(4 regions, 2 drivers, 3 zones each, each capped at maxInstances 6), LeastLoaded, with the rules
of DESIGN §10's example: ``AntiAffinity(lb)`` on zone and ``AntiAffinity(db)`` on account,
Required, and ``Proximity(lb, db, web)`` on region, Preferred (it cannot be kept: the members
of one region have room for fewer than 100, so the scheduler also runs the fallback solves).
The floor of the same run is what the scheduler must do anyway: 100 independent
``policy.place`` calls (one per replica); the ratio is floor/schedule, so 1.0 would be "no
cost beyond deciding each replica alone". Medians over ``--runs``.

    python -m bench.groupsched [--runs 30]

The last line is exactly::

    groupsched replicas=100 members=20 median_ms=<m> place_floor_ms=<f> ratio=<f/m>
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from api_types import IntRange, PoolPolicy, PoolPolicyType
from providers.types import CloudSize, SizeId
from reconcilers.hardware import HardwareConstraints
from reconcilers.placement import (
    AccountState,
    Candidate,
    Mode,
    Need,
    Replica,
    Rule,
    RuleType,
    Topology,
    place,
    place_group,
)

__all__ = ["main", "scenario"]

SIZES = tuple(
    CloudSize(
        SizeId(f"s{c}"),
        cpu=c,
        memory_mib=c * 2048,
        disk_gib=20,
        price_per_hour=c / 10,
        arch="x86_64",
    )
    for c in (1, 2, 4, 8)
)


def scenario() -> tuple[list[Replica], list[Candidate], dict[str, AccountState], list[Rule]]:
    """The pool, the replicas and the rules measured (shared with a unit test that checks
    the decision, not its time)."""
    accounts: dict[str, AccountState] = {}
    candidates: list[Candidate] = []
    for n in range(20):
        region = f"region-{n % 4}"
        name = f"acct-{n:02d}"
        accounts[name] = AccountState(
            name,
            region,
            zones=tuple(f"{region}{z}" for z in "abc"),
            sizes=SIZES,
            images={"ubuntu": f"ami-{n}"},
            driver="ec2" if n % 2 else "simulated",
        )
        candidates.append(Candidate(name, member=name, priority=n % 3, max_instances=6))
    hardware = HardwareConstraints(cpu=IntRange(min=2))
    members = (("lb", 3), ("db", 5), ("web", 92))
    replicas = [
        Replica(member, i, Need(uid=f"shop/{member}/{i}", hardware=hardware, image="ubuntu"))
        for member, count in members
        for i in range(count)
    ]
    rules = [
        Rule(RuleType.ANTI_AFFINITY, ("lb",), Topology.ZONE, Mode.REQUIRED),
        Rule(RuleType.ANTI_AFFINITY, ("db",), Topology.ACCOUNT, Mode.REQUIRED),
        Rule(RuleType.PROXIMITY, ("lb", "db", "web"), Topology.REGION, Mode.PREFERRED),
    ]
    return replicas, candidates, accounts, rules


def _median_ms(operation: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        operation()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args(argv)
    replicas, candidates, accounts, rules = scenario()
    policy = PoolPolicy(type=PoolPolicyType.LEAST_LOADED)

    def schedule() -> object:
        return place_group(replicas, candidates, accounts, rules=rules, policy=policy)

    def floor() -> object:
        return [place(r.need, candidates, accounts, policy=policy) for r in replicas]

    decision = place_group(replicas, candidates, accounts, rules=rules, policy=policy)
    assert decision.feasible, decision.summary()
    for outcome in decision.rules:
        print(f"  {'kept  ' if outcome.kept else 'broken'} {outcome.message[:110]}")
    with_preferred = _median_ms(schedule, args.runs)
    without = _median_ms(
        lambda: place_group(replicas, candidates, accounts, rules=rules[:2], policy=policy),
        args.runs,
    )
    floor_ms = _median_ms(floor, args.runs)
    print(f"\n{'operation':<46} {'median ms':>10}")
    print(f"{'100 x policy.place (floor)':<46} {floor_ms:>10.2f}")
    print(f"{'place_group, Required rules only':<46} {without:>10.2f}")
    print(f"{'place_group, + Preferred Proximity (broken)':<46} {with_preferred:>10.2f}")
    print(
        f"groupsched replicas={len(replicas)} members={len(candidates)} "
        f"median_ms={with_preferred:.2f} place_floor_ms={floor_ms:.2f} "
        f"ratio={floor_ms / with_preferred:.2f}"
    )


if __name__ == "__main__":
    main()
