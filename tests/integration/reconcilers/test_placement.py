"""Placement as pure functions: hardware matching, every filter's reason, the five policies."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from api_types import HardwareProfileSpec, HardwareSpec, IntRange, PoolPolicy, PoolSpec, QuotaUsage
from api_types.tenancy import QuotaLimits
from providers import CloudSize, SizeId
from reconcilers.hardware import HardwareConstraints, cheapest_match
from reconcilers.placement import (
    AccountState,
    Candidate,
    Need,
    RejectionCode,
    candidates_of_pool,
    place,
)


def size(name: str, cpu: int, mem: int, price: float | None, arch: str = "x86_64") -> CloudSize:
    return CloudSize(SizeId(name), cpu, mem, cpu * 20, price, arch)


SIZES = (
    size("small", 1, 2048, 0.02),
    size("medium", 2, 4096, 0.04),
    size("big", 4, 8192, 0.08),
    size("arm", 2, 4096, 0.01, "arm64"),
    size("odd", 2, 4096, None),
)
NOW = datetime(2024, 1, 1, tzinfo=UTC)


def account(name: str, factor: float = 1.0, **fields: object) -> AccountState:
    sizes = tuple(
        CloudSize(
            s.id,
            s.cpu,
            s.memory_mib,
            s.disk_gib,
            None if s.price_per_hour is None else s.price_per_hour * factor,
            s.arch,
        )
        for s in SIZES
    )
    base: dict[str, object] = {
        "name": name,
        "region": "r1",
        "zones": ("r1a", "r1b", "r1c"),
        "sizes": sizes,
        "images": {"ubuntu": f"img-{name}"},
    }
    base.update(fields)
    return AccountState(**base)  # type: ignore[arg-type]


def pool(policy: str, *members: dict[str, object], penalty: int = 300) -> PoolSpec:
    return PoolSpec.model_validate(
        {"members": list(members), "policy": {"type": policy, "failurePenalty": penalty}}
    )


ACCOUNTS = {name: account(name, factor) for name, factor in (("a", 1.0), ("b", 0.5), ("c", 2.0))}
CPU2 = HardwareConstraints(cpu=IntRange(min=2, max=2), arch="x86_64")


def test_hardware_cheapest_match_honours_every_constraint() -> None:
    assert cheapest_match(SIZES, HardwareConstraints(cpu=IntRange(min=2))) == SIZES[3]
    assert cheapest_match(SIZES, CPU2) == SIZES[1]  # the unpriced one ranks after
    assert cheapest_match(SIZES, HardwareConstraints(memory_mib=IntRange(min=5000))) == SIZES[2]
    assert cheapest_match(SIZES, HardwareConstraints(disk_gib=IntRange(max=10))) is None
    assert cheapest_match(SIZES, HardwareConstraints(size="odd")) == SIZES[4]
    profile = HardwareProfileSpec.model_validate({"cpu": {"min": 1, "max": 2}, "arch": "arm64"})
    by_profile = HardwareConstraints.from_spec(
        HardwareSpec.model_validate({"profile": "p"}), {"p": profile}.get
    )
    assert cheapest_match(SIZES, by_profile) == SIZES[3]
    inline = HardwareConstraints.from_spec(
        HardwareSpec.model_validate({"cpu": 4, "memoryMiB": {"min": 1024}}), lambda _: None
    )
    assert inline.describe() == "cpu=4, memoryMiB>=1024"
    assert cheapest_match(SIZES, inline) == SIZES[2]


def test_every_rejected_candidate_has_a_reason() -> None:
    spec = pool(
        "Priority",
        {"account": "missing"},
        {"account": "sick"},
        {"account": "noimg"},
        {"account": "tiny"},
        {"account": "full", "maxInstances": 2},
        {"account": "zoned", "zones": ["r1z"]},
        {"account": "a", "region": "r9"},
        {"account": "ok"},
    )
    accounts = {
        "sick": account("sick", problem="account is not Ready: probe failed"),
        "noimg": account("noimg", images={}),
        "tiny": account("tiny", sizes=(SIZES[0],)),
        "full": account("full"),
        "zoned": account("zoned"),
        "a": account("a"),
        "ok": account("ok"),
    }
    need = Need(uid="u1", hardware=CPU2, image="ubuntu")
    decision = place(need, candidates_of_pool(spec), accounts, policy=spec.policy, load={"full": 2})
    assert decision.chosen is not None and decision.chosen.account == "ok"
    assert decision.chosen.image_id == "img-ok" and decision.chosen.size == SIZES[1]
    assert decision.chosen.zone in ("r1a", "r1b", "r1c")
    codes = {r.member: r.code for r in decision.rejections}
    assert codes == {
        "missing": RejectionCode.ACCOUNT_MISSING,
        "sick": RejectionCode.ACCOUNT_UNAVAILABLE,
        "noimg": RejectionCode.IMAGE,
        "tiny": RejectionCode.HARDWARE,
        "full": RejectionCode.CAPACITY,
        "zoned": RejectionCode.ZONE,
        "a/r9": RejectionCode.REGION,
    }
    assert "probe failed" in decision.summary() and "2/2" in decision.summary()
    assert decision.rejections[0].to_api().reason == "account missing does not exist"


def test_hints_location_and_quota() -> None:
    spec = pool("Priority", {"account": "a"}, {"account": "b"}, {"account": "c"})
    candidates = candidates_of_pool(spec)
    hinted = place(Need(uid="u", account="b", zone="r1c"), candidates, ACCOUNTS)
    assert hinted.chosen is not None and (hinted.chosen.account, hinted.chosen.zone) == ("b", "r1c")
    assert {r.code for r in hinted.rejections} == {RejectionCode.CONSTRAINT}
    located = place(Need(uid="u", location_account="c", location_zone="r1b"), candidates, ACCOUNTS)
    assert located.chosen is not None and (located.chosen.account, located.chosen.zone) == (
        "c",
        "r1b",
    )
    over = Need(
        uid="u",
        hardware=CPU2,
        quota=QuotaLimits(cpu=4, instances=5),
        used=QuotaUsage(cpu=3, instances=1),
        adds=QuotaUsage(instances=1),
    )
    blocked = place(over, candidates, ACCOUNTS)
    assert blocked.chosen is None and blocked.quota_only
    assert "cpu 3+2 > 4" in blocked.rejections[0].reason
    arm_image = {"a": account("a", image_arch={"img-a": "arm64"})}
    armed = place(
        Need(uid="u", hardware=HardwareConstraints(cpu=IntRange(min=2)), image="ubuntu"),
        [Candidate.for_account("a")],
        arm_image,
    )
    assert armed.chosen is not None and armed.chosen.size == SIZES[3]
    x86_only = place(
        Need(uid="u", hardware=HardwareConstraints(size="big"), image="ubuntu"),
        [Candidate.for_account("a")],
        arm_image,
    )
    assert x86_only.chosen is None and "size big, arch=arm64" in x86_only.summary()
    single = place(Need(uid="u"), [Candidate.for_account("a")], ACCOUNTS)
    assert single.chosen is not None and single.chosen.key == "a"


def chosen_accounts(spec: PoolSpec, **kwargs: object) -> list[str]:
    decision = place(
        Need(uid="u-1", hardware=CPU2),
        candidates_of_pool(spec),
        ACCOUNTS,
        policy=spec.policy,
        **kwargs,  # type: ignore[arg-type]
    )
    return [o.account for o in decision.ranked]


def test_policies() -> None:
    members = (
        {"account": "a", "priority": 5, "weight": 1},
        {"account": "b", "priority": 1, "weight": 0},
        {"account": "c", "priority": 9, "weight": 3},
    )
    assert chosen_accounts(pool("Priority", *members)) == ["c", "a", "b"]
    assert chosen_accounts(pool("LowestCost", *members)) == ["b", "a", "c"]
    assert chosen_accounts(pool("LeastLoaded", *members), load={"c": 4, "a": 1}) == ["b", "a", "c"]
    assert chosen_accounts(pool("RoundRobin", *members), rotation=0) == ["a", "b", "c"]
    assert chosen_accounts(pool("RoundRobin", *members), rotation=4) == ["b", "c", "a"]
    weighted = pool("WeightedRandom", *members)
    first = chosen_accounts(weighted)
    assert first == chosen_accounts(weighted)  # seeded by the uid: deterministic
    assert first[-1] == "b"  # weight 0 is never drawn before a weighted member
    draws = Counter(
        place(Need(uid=f"u{i}"), candidates_of_pool(weighted), ACCOUNTS, policy=weighted.policy)
        .ranked[0]
        .account
        for i in range(400)
    )
    assert draws["b"] == 0 and 2.0 < draws["c"] / draws["a"] < 4.5


def test_failure_penalty_ranks_a_recent_failure_last() -> None:
    spec = pool("Priority", {"account": "a", "priority": 9}, {"account": "b"}, penalty=60)
    recent = {"a": NOW - timedelta(seconds=10)}
    assert chosen_accounts(spec, failures=recent, now=NOW) == ["b", "a"]
    later = NOW + timedelta(seconds=120)
    assert chosen_accounts(spec, failures=recent, now=later) == ["a", "b"]
    no_penalty = pool("Priority", {"account": "a", "priority": 9}, {"account": "b"}, penalty=0)
    assert chosen_accounts(no_penalty, failures=recent, now=NOW) == ["a", "b"]
    assert PoolPolicy().failure_penalty == 300
