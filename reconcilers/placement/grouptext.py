"""What the group scheduler says: domain labels, replica lists, each rule's state in words.

Where it sits: the wording of ``reconcilers.placement.group`` (the VirtualCluster scheduler),
kept apart from its search. The messages end up in ``PlacementSatisfied`` and in
``skyctl describe vc``; each starts with the rule (``AntiAffinity(lb) on zone, Required: …``).
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Sequence
from typing import Protocol

from reconcilers.placement.grouptypes import Assignment, Fixed, Rule, RuleType, Site, Topology

__all__ = ["describe_fixed_break", "describe_outcome", "label", "labels", "names"]


class _Named(Protocol):
    @property
    def member(self) -> str: ...

    @property
    def ordinal(self) -> int: ...


#: Replica names listed in one message before the rest are counted ("and 7 more").
NAMES_SHOWN = 12


def names(replicas: Sequence[_Named]) -> str:
    """``lb-0, lb-1, web-0..web-3``: members in first-seen order, runs of 3+ ordinals folded,
    at most ``NAMES_SHOWN`` items then a count of the rest."""
    by_member: dict[str, list[int]] = {}
    for r in replicas:
        by_member.setdefault(r.member, []).append(r.ordinal)
    parts: list[str] = []
    for member, ordinals in by_member.items():
        runs: list[list[int]] = []
        for n in sorted(set(ordinals)):
            if runs and n == runs[-1][-1] + 1:
                runs[-1].append(n)
            else:
                runs.append([n])
        for run in runs:
            if len(run) >= 3:
                parts.append(f"{member}-{run[0]}..{member}-{run[-1]}")
            else:
                parts.extend(f"{member}-{o}" for o in run)
    if len(parts) > NAMES_SHOWN:
        parts = [*parts[:NAMES_SHOWN], f"and {len(parts) - NAMES_SHOWN} more"]
    return ", ".join(parts)


def label(topology: Topology, site: Site, qualified: bool = False) -> str:
    """A domain as people read it: the zone, region, account or provider name."""
    if topology is Topology.ZONE:
        zone = site.zone or "(no zone)"
        return f"{site.provider}:{site.region}/{zone}" if qualified else zone
    if topology is Topology.REGION:
        return f"{site.provider}:{site.region}" if qualified else site.region
    if topology is Topology.ACCOUNT:
        return site.account
    if topology is Topology.PROVIDER:
        return site.provider
    return f"{site.account} {site.zone or site.region}"


def labels(topology: Topology, sites: Sequence[Site]) -> list[str]:
    """The distinct domains of ``sites``, sorted; qualified when two share a short name."""
    by_domain: dict[Hashable, Site] = {}
    for site in sites:
        by_domain.setdefault(site.domain(topology), site)
    short = [label(topology, s) for s in by_domain.values()]
    qualified = len(set(short)) < len(short)
    return sorted(label(topology, s, qualified) for s in by_domain.values())


def _plural(topology: Topology, count: int) -> str:
    return str(topology) if count == 1 else f"{topology}s"


def describe_fixed_break(
    rule: Rule, fixed: Sequence[Fixed], host_accounts: Collection[str]
) -> str | None:
    """How the fixed replicas alone already break ``rule``, or None."""
    return _broken(rule, [(f, f.site) for f in fixed], host_accounts, "the fixed replicas ")


def _broken(
    rule: Rule,
    placed: Sequence[tuple[_Named, Site]],
    host_accounts: Collection[str],
    who: str = "",
) -> str | None:
    if rule.topology is Topology.HOST:
        outside = [(r, s) for r, s in placed if s.account not in host_accounts]
        if outside:
            accounts = ", ".join(sorted({s.account for _, s in outside}))
            return (
                f"{rule}: {who}{names([r for r, _ in outside])} on {accounts}, which cannot "
                "express host placement"
            )
    groups: dict[Hashable, list[tuple[_Named, Site]]] = {}
    for r, s in placed:
        groups.setdefault(s.domain(rule.topology), []).append((r, s))
    if rule.type is RuleType.ANTI_AFFINITY:
        if rule.topology is Topology.HOST:
            return None
        shared = [g for g in groups.values() if len(g) > 1]
        if shared:
            parts = [
                f"{names([r for r, _ in g])} share {rule.topology} {label(rule.topology, g[0][1])}"
                for g in shared
            ]
            return f"{rule}: {who}" + "; ".join(parts)
        return None
    if len(groups) > 1:
        qualified = labels(rule.topology, [g[0][1] for g in groups.values()])
        spans = sorted(groups.values(), key=lambda g: labels(rule.topology, [g[0][1]])[0])
        parts = [
            f"{name} ({names([r for r, _ in g])})" for name, g in zip(qualified, spans, strict=True)
        ]
        return f"{rule}: {who}span {len(groups)} {_plural(rule.topology, 2)}: " + ", ".join(parts)
    return None


def describe_outcome(
    rule: Rule,
    assignments: Sequence[Assignment],
    fixed: Sequence[Fixed],
    host_accounts: Collection[str],
    why: str,
) -> tuple[bool, str]:
    """The state of ``rule`` in a placement: kept (and how) or broken (how, and ``why``)."""
    placed: list[tuple[_Named, Site]] = [
        (a.replica, a.site) for a in assignments if a.replica.member in rule.members
    ]
    placed += [(f, f.site) for f in fixed if f.member in rule.members]
    broken = _broken(rule, placed, host_accounts)
    if broken is not None:
        return (False, broken + (f" (not kept: {why})" if why else ""))
    if not placed:
        return (True, f"{rule}: kept: no replicas of {', '.join(rule.members)}")
    sites = [s for _, s in placed]
    if rule.topology is Topology.HOST:
        group = "spread" if rule.type is RuleType.ANTI_AFFINITY else "cluster"
        where = ", ".join(
            labels(rule.topology, sites)
            if group == "cluster"
            else sorted({s.account for s in sites})
        )
        return (True, f"{rule}: kept: left to the provider's {group} placement group on {where}")
    if rule.type is RuleType.PROXIMITY:
        where = labels(rule.topology, sites)[0]
        return (True, f"{rule}: kept: all {len(placed)} replicas in {rule.topology} {where}")
    ordered = sorted(placed, key=lambda p: (p[0].member, p[0].ordinal))
    spread = ", ".join(f"{names([r])} in {label(rule.topology, s)}" for r, s in ordered)
    return (True, f"{rule}: kept: {spread}")
