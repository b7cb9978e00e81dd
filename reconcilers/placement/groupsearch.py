"""The backtracking search behind the group scheduler: replicas onto ranked choices under rules.

Where it sits: the pure core of ``reconcilers.placement.group``, which turns a VirtualCluster's
replicas, the policy's ranked options and the placement rules into the plain problem solved
here — one list of choices per replica (best first), ``Constraint`` s between replicas, and
each member's remaining capacity — and explains the outcome. Nothing here knows of pools,
policies or rules' names.

A choice carries its member (capacity) and its topology domain per topology name. Two kinds of
constraint: ``distinct`` (the replicas take pairwise-distinct domains, none of ``taken``) and
``same`` (the replicas share one domain, ``pinned`` when replicas that are not moved already
chose it). :func:`solve` returns, per replica, the index of its choice, or None.

The search: first root propagation (drop choices in a ``taken`` or non-pinned domain; for a
``same`` constraint keep only domains where every replica has a choice and the members there
have room for all; repeat to a fixpoint; a ``distinct`` constraint needs as many domains as
replicas). Then depth-first in replica order, trying each replica's choices best first, with
forward checking after each assignment: every replica whose options the assignment may have
narrowed (it shares a ``distinct`` constraint, or a ``same`` constraint this assignment pinned,
or the member just filled up) must keep a consistent choice — found through a cached support
(the last consistent choice seen; undoing an assignment only relaxes, so supports stay valid
until a later assignment invalidates them); every ``distinct`` constraint touched must keep as
many free domains as unplaced replicas; every pinned ``same`` constraint must keep room for its
unplaced replicas. The first complete assignment is the lexicographically best one by rank in
replica order among those satisfying every constraint.

Complexity: root propagation O(R·C·K) for R replicas, C choices each, K constraints. The
search visits R nodes when nothing conflicts; each node costs O(C) for its choice scan plus the
forward checks, O(Rk·C) for the Rk replicas of the touched constraints in the worst case but
O(Rk) amortised through supports. Backtracking is exponential in the worst case (the problem
is NP-hard: graph colouring reduces to ``distinct`` constraints), so the number of assignments
tried is capped by ``budget``; :class:`Exhausted` says it ran out.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["Constraint", "Exhausted", "Node", "solve"]


@dataclass(frozen=True)
class Node:
    """One choice of a replica: the member it uses and its domain per topology name."""

    member: str
    domains: Mapping[str, Hashable]


@dataclass(frozen=True)
class Constraint:
    """``distinct``: pairwise-distinct domains, none in ``taken``; else one shared domain
    (``pinned`` when already decided). ``replicas`` index the replicas to place."""

    distinct: bool
    topology: str
    replicas: tuple[int, ...]
    taken: frozenset[Hashable] = frozenset()
    pinned: Hashable | None = None
    pin: bool = field(default=False)  # ``pinned`` is set (None is a valid domain)


class Exhausted(Exception):
    """The search tried ``budget`` assignments without settling."""


def propagate(
    choices: Sequence[Sequence[Node]],
    constraints: Sequence[Constraint],
    capacity: Mapping[str, int],
) -> list[list[int]]:
    """Root propagation: per replica the indices of its choices that survive (see module)."""
    alive = [list(range(len(c))) for c in choices]
    changed = True
    while changed:
        changed = False
        for k in constraints:
            keep = _root_domains(k, choices, alive, capacity)
            for i in k.replicas:
                narrowed = [j for j in alive[i] if keep(choices[i][j].domains[k.topology])]
                if len(narrowed) != len(alive[i]):
                    alive[i] = narrowed
                    changed = True
    return alive


def _root_domains(
    k: Constraint,
    choices: Sequence[Sequence[Node]],
    alive: Sequence[Sequence[int]],
    capacity: Mapping[str, int],
) -> _Keep:
    if k.distinct:
        return _Keep(excluded=k.taken)
    if k.pin:
        return _Keep(only=frozenset([k.pinned]))
    return _Keep(only=frozenset(hosting_domains(k, choices, alive, capacity)))


@dataclass(frozen=True)
class _Keep:
    only: frozenset[Hashable] | None = None
    excluded: frozenset[Hashable] = frozenset()

    def __call__(self, domain: Hashable) -> bool:
        if self.only is not None:
            return domain in self.only
        return domain not in self.excluded


def room(members: set[str], capacity: Mapping[str, int]) -> float:
    """How many more replicas ``members`` can take together (inf if any is uncapped)."""
    total = 0.0
    for member in members:
        if member not in capacity:
            return float("inf")
        total += capacity[member]
    return total


def hosting_domains(
    k: Constraint,
    choices: Sequence[Sequence[Node]],
    alive: Sequence[Sequence[int]],
    capacity: Mapping[str, int],
) -> list[Hashable]:
    """Domains of a ``same`` constraint where every replica has a choice and the members there
    have room for all, in the order the first replica ranks them."""
    if not k.replicas:
        return []
    members: dict[Hashable, set[str]] = {}
    per_replica: list[set[Hashable]] = []
    for i in k.replicas:
        seen: set[Hashable] = set()
        for j in alive[i]:
            node = choices[i][j]
            domain = node.domains[k.topology]
            seen.add(domain)
            members.setdefault(domain, set()).add(node.member)
        per_replica.append(seen)
    common = set.intersection(*per_replica)
    ordered: list[Hashable] = []
    for j in alive[k.replicas[0]]:
        domain = choices[k.replicas[0]][j].domains[k.topology]
        fits = room(members.get(domain, set()), capacity) >= len(k.replicas)
        if domain in common and domain not in ordered and fits:
            ordered.append(domain)
    return ordered


def solve(
    choices: Sequence[Sequence[Node]],
    constraints: Sequence[Constraint],
    capacity: Mapping[str, int],
    *,
    budget: int,
) -> tuple[int, ...] | None:
    """The first assignment (choice index per replica) keeping every constraint and capacity,
    or None; raises :class:`Exhausted` past ``budget`` assignments tried."""
    return _Search(choices, constraints, capacity, budget).run()


class _Search:
    def __init__(
        self,
        choices: Sequence[Sequence[Node]],
        constraints: Sequence[Constraint],
        capacity: Mapping[str, int],
        budget: int,
    ) -> None:
        self.n = len(choices)
        self.constraints = list(constraints)
        self.capacity = dict(capacity)
        alive = propagate(choices, constraints, capacity)
        self.choices: list[list[Node]] = [[choices[i][j] for j in alive[i]] for i in range(self.n)]
        self.index = alive  # position in self.choices -> index in the caller's list
        self.of: list[list[int]] = [[] for _ in range(self.n)]
        for ci, k in enumerate(self.constraints):
            for i in k.replicas:
                self.of[i].append(ci)
        self.taken: list[set[Hashable]] = [set(k.taken) for k in self.constraints]
        self.pinned: list[Hashable | None] = [k.pinned for k in self.constraints]
        self.pin: list[bool] = [k.pin for k in self.constraints]
        self.pinned_by: list[int] = [-1] * len(self.constraints)  # replica that pinned it
        self.members_in: list[dict[Hashable, set[str]]] = []
        for k in self.constraints:
            domains: dict[Hashable, set[str]] = {}
            for i in k.replicas:
                for node in self.choices[i]:
                    domains.setdefault(node.domains[k.topology], set()).add(node.member)
            self.members_in.append(domains)
        self.used: dict[str, int] = {}
        self.assigned = [-1] * self.n
        self.support = [0] * self.n
        self.budget = budget

    def run(self) -> tuple[int, ...] | None:
        if any(not c for c in self.choices):
            return None
        for ci, k in enumerate(self.constraints):
            if not self._enough(ci, k):
                return None
        if not self._dfs(0):
            return None
        return tuple(self.index[i][j] for i, j in enumerate(self.assigned))

    def _ok(self, i: int, node: Node) -> bool:
        cap = self.capacity.get(node.member)
        if cap is not None and self.used.get(node.member, 0) >= cap:
            return False
        for ci in self.of[i]:
            domain = node.domains[self.constraints[ci].topology]
            if self.constraints[ci].distinct:
                if domain in self.taken[ci]:
                    return False
            elif self.pin[ci] and self.pinned[ci] != domain:
                return False
        return True

    def _supported(self, i: int) -> bool:
        nodes = self.choices[i]
        if self._ok(i, nodes[self.support[i]]):
            return True
        for j, node in enumerate(nodes):
            if self._ok(i, node):
                self.support[i] = j
                return True
        return False

    def _enough(self, ci: int, k: Constraint) -> bool:
        """Unplaced replicas of ``k`` still fit: free domains (distinct), room (same)."""
        rest = [i for i in k.replicas if self.assigned[i] < 0]
        if not rest:
            return True
        if k.distinct:
            free: set[Hashable] = set()
            for i in rest:
                free.update(n.domains[k.topology] for n in self.choices[i] if self._ok(i, n))
                if len(free) >= len(rest):
                    return True
            return False
        if not self.pin[ci]:
            return True
        return room(self._members_of(ci), self._free_capacity()) >= len(rest)

    def _members_of(self, ci: int) -> set[str]:
        return self.members_in[ci].get(self.pinned[ci], set())

    def _free_capacity(self) -> dict[str, int]:
        return {m: c - self.used.get(m, 0) for m, c in self.capacity.items()}

    def _dfs(self, i: int) -> bool:
        if i == self.n:
            return True
        for j, node in enumerate(self.choices[i]):
            if not self._ok(i, node):
                continue
            self.budget -= 1
            if self.budget < 0:
                raise Exhausted
            touched = self._assign(i, j, node)
            if self._forward(i, node, touched) and self._dfs(i + 1):
                return True
            self._unassign(i, node, touched)
        return False

    def _assign(self, i: int, j: int, node: Node) -> list[int]:
        """Record the assignment; the constraints it narrowed (distinct, or pinned now)."""
        self.assigned[i] = j
        self.used[node.member] = self.used.get(node.member, 0) + 1
        touched = []
        for ci in self.of[i]:
            domain = node.domains[self.constraints[ci].topology]
            if self.constraints[ci].distinct:
                self.taken[ci].add(domain)
                touched.append(ci)
            elif not self.pin[ci]:
                self.pin[ci], self.pinned[ci], self.pinned_by[ci] = True, domain, i
                touched.append(ci)
        return touched

    def _unassign(self, i: int, node: Node, touched: list[int]) -> None:
        self.assigned[i] = -1
        self.used[node.member] -= 1
        for ci in touched:
            if self.constraints[ci].distinct:
                self.taken[ci].discard(node.domains[self.constraints[ci].topology])
            elif self.pinned_by[ci] == i:
                self.pin[ci], self.pinned[ci], self.pinned_by[ci] = False, None, -1

    def _forward(self, i: int, node: Node, touched: list[int]) -> bool:
        cap = self.capacity.get(node.member)
        if cap is not None and self.used[node.member] >= cap:
            check: Sequence[int] = range(i + 1, self.n)  # the member filled up: anyone
        else:
            check = sorted({r for ci in touched for r in self.constraints[ci].replicas if r > i})
        if not all(self._supported(r) for r in check if self.assigned[r] < 0):
            return False
        return all(
            self._enough(ci, self.constraints[ci])
            for ci in self.of[i]
            if self.constraints[ci].distinct or self.pin[ci]
        )
