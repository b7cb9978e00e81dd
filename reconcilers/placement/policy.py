"""Placement (DESIGN §6): filter the candidates of a pool, then rank them by the pool policy.

Where it sits: the pure core of the placement pipeline (``reconcilers.placement``): functions
over plain inputs, called through the schedulers (``pool.PoolScheduler`` for every pooled kind,
``instance.Scheduler`` for Instances). The callers gather the inputs from the caches
(``inputs``) — accounts and their catalogues, pool members, load, recent failures
(``memory``), the namespace quota — and write the outcome to ``status.placement`` and
``status.rejections``. Nothing here does I/O or reads a clock (``now`` is an argument), so
every policy is unit-testable.

API::

    decision = place(
        Need(uid=..., hardware=HardwareConstraints(...), image="ubuntu-22.04", zone=None, ...),
        candidates_of_pool(pool.spec) or [Candidate.for_account("sim-a")],
        accounts={"sim-a": AccountState(...), ...},
        policy=pool.spec.policy,              # None without a pool
        load={"sim-a": 3},                    # objects already placed per member key
        failures={"sim-b": datetime(...)},    # last failed placement per member key
        now=clock.wall(),                     # the caller reads its clock, never this module
        rotation=7,                           # RoundRobin cursor, supplied by the caller
    )
    decision.chosen      # Option | None: account, region, zone, size, image id, member key
    decision.ranked      # every eligible Option, best first (re-placement takes the next)
    decision.rejections  # Rejection(member, account, code, reason) for every other candidate
    decision.quota_only  # True when only the namespace quota stopped every candidate

Filters, in order, each with its reason: account missing; account unusable (Ready=False,
circuit open, API budget exhausted — ``AccountState.problem``); pool member region differs
from the account's; hints (``spec.placement`` account/region) and the location the object is
bound to (an instance goes where its subnet is); image not mapped; no size matches the hardware;
member full (``maxInstances``); namespace quota; no zone left after member zones, hints and
location (sizes must also have the image's architecture when ``AccountState.image_arch``
knows it). Policies: Priority (higher first), LowestCost (cheapest matching size), RoundRobin
(pool order rotated by ``rotation``), LeastLoaded (fewest placed), WeightedRandom (weighted
shuffle seeded by the uid, so the same object always draws the same order). Ties fall back to
priority, then pool order. Failure penalty: a member that failed less than
``policy.failurePenalty`` seconds ago ranks after every member that did not.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from api_types import PlacementRejection, PoolPolicy, PoolPolicyType, PoolSpec, QuotaUsage
from api_types.tenancy import QuotaLimits
from providers.types import CloudSize
from reconcilers.hardware import HardwareConstraints, cheapest_match

__all__ = [
    "AccountState",
    "Candidate",
    "Decision",
    "Need",
    "Option",
    "Rejection",
    "RejectionCode",
    "candidates_of_pool",
    "place",
    "zone_choices",
]


class RejectionCode(StrEnum):
    ACCOUNT_MISSING = "AccountMissing"
    ACCOUNT_UNAVAILABLE = "AccountUnavailable"
    REGION = "RegionMismatch"
    CONSTRAINT = "PlacementConstraint"
    IMAGE = "ImageNotMapped"
    HARDWARE = "NoMatchingSize"
    CAPACITY = "MemberFull"
    QUOTA = "QuotaExceeded"
    ZONE = "NoZone"


@dataclass(frozen=True)
class AccountState:
    """What placement needs to know of one ProviderAccount; ``problem`` set = unusable."""

    name: str
    region: str
    zones: tuple[str, ...] = ()
    sizes: tuple[CloudSize, ...] = ()
    images: Mapping[str, str] = field(default_factory=dict)
    problem: str | None = None
    #: Architecture of provider image ids, where known: sizes must match the image's.
    image_arch: Mapping[str, str] = field(default_factory=dict)
    #: The account's cloud driver (``ProviderAccount.spec.driver``): the ``provider`` topology
    #: of group placement rules (``reconcilers.placement.group``); None = not known.
    driver: str | None = None


@dataclass(frozen=True)
class Candidate:
    """A pool member, or the single account an object names (``member`` None)."""

    account: str
    member: str | None = None
    region: str | None = None
    zones: tuple[str, ...] = ()
    priority: int = 0
    weight: int = 1
    max_instances: int | None = None

    @classmethod
    def for_account(cls, account: str) -> Candidate:
        return cls(account=account)

    @property
    def key(self) -> str:
        """Member key (``PoolMember.key``), or the account name without a pool."""
        return self.member or self.account


def candidates_of_pool(pool: PoolSpec) -> list[Candidate]:
    """The members of a pool as candidates, in pool order."""
    return [
        Candidate(
            account=m.account,
            member=m.key,
            region=m.region,
            zones=tuple(m.zones),
            priority=m.priority,
            weight=m.weight,
            max_instances=m.max_instances,
        )
        for m in pool.members
    ]


@dataclass(frozen=True)
class Need:
    """What the object asks for. Unset fields do not constrain.

    ``hardware`` None = no size (subnets, volumes). ``location_*`` bind the object to where
    something it depends on already is (an instance's subnet). ``quota`` is the namespace's hard
    limits, ``used`` what the namespace already uses without this object and ``adds`` what this
    object adds besides cpu/memory (which come from the matched size).
    """

    uid: str
    hardware: HardwareConstraints | None = None
    image: str | None = None
    account: str | None = None
    region: str | None = None
    zone: str | None = None
    location_account: str | None = None
    location_region: str | None = None
    location_zone: str | None = None
    quota: QuotaLimits | None = None
    used: QuotaUsage = field(default_factory=QuotaUsage)
    adds: QuotaUsage = field(default_factory=QuotaUsage)


@dataclass(frozen=True)
class Option:
    """An eligible candidate with everything needed to create the object there."""

    candidate: Candidate
    region: str
    zone: str | None
    size: CloudSize | None
    image_id: str | None
    index: int

    @property
    def key(self) -> str:
        return self.candidate.key

    @property
    def account(self) -> str:
        return self.candidate.account


@dataclass(frozen=True)
class Rejection:
    member: str | None
    account: str
    code: RejectionCode
    reason: str

    def to_api(self) -> PlacementRejection:
        return PlacementRejection(member=self.member, account=self.account, reason=self.reason)


@dataclass(frozen=True)
class Decision:
    ranked: tuple[Option, ...]
    rejections: tuple[Rejection, ...]

    @property
    def chosen(self) -> Option | None:
        return self.ranked[0] if self.ranked else None

    @property
    def quota_only(self) -> bool:
        """Nothing eligible, and the namespace quota is what stopped every candidate."""
        return (
            not self.ranked
            and bool(self.rejections)
            and all(r.code is RejectionCode.QUOTA for r in self.rejections)
        )

    def summary(self) -> str:
        """One line listing every rejected candidate and why (events, conditions)."""
        return "; ".join(f"{r.member or r.account}: {r.reason}" for r in self.rejections)


class _Rejected(Exception):
    def __init__(self, code: RejectionCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _quota_excess(need: Need, size: CloudSize | None) -> str | None:
    if need.quota is None:
        return None
    adds = need.adds + QuotaUsage(
        cpu=size.cpu if size else 0, memory_mib=size.memory_mib if size else 0
    )
    over = (need.used + adds).exceeds(need.quota)
    if not over:
        return None
    parts = []
    for wire in over:
        name = next(n for n, i in QuotaUsage.model_fields.items() if (i.alias or n) == wire)
        parts.append(
            f"{wire} {getattr(need.used, name)}+{getattr(adds, name)} > {getattr(need.quota, name)}"
        )
    return "namespace quota exceeded: " + ", ".join(parts)


def _evaluate(
    need: Need,
    candidate: Candidate,
    index: int,
    account: AccountState | None,
    load: int,
) -> Option:
    """The option for ``candidate``, or raise ``_Rejected`` with the first failing filter."""
    account = _usable_account(need, candidate, account)
    image_id, size = _image_and_size(need, account)
    if candidate.max_instances is not None and load >= candidate.max_instances:
        raise _Rejected(
            RejectionCode.CAPACITY, f"member full: {load}/{candidate.max_instances} placed"
        )
    excess = _quota_excess(need, size)
    if excess:
        raise _Rejected(RejectionCode.QUOTA, excess)
    return Option(candidate, account.region, _zone(need, candidate, account), size, image_id, index)


def _usable_account(need: Need, candidate: Candidate, account: AccountState | None) -> AccountState:
    """``account`` if it exists, works, and is where the member and the need say."""
    if account is None:
        raise _Rejected(
            RejectionCode.ACCOUNT_MISSING, f"account {candidate.account} does not exist"
        )
    if account.problem:
        raise _Rejected(RejectionCode.ACCOUNT_UNAVAILABLE, account.problem)
    if candidate.region is not None and candidate.region != account.region:
        raise _Rejected(
            RejectionCode.REGION,
            f"member region {candidate.region} is not the account's region {account.region}",
        )
    for label, wanted, actual in (
        ("placement account", need.account, account.name),
        ("placement region", need.region, account.region),
        ("location account", need.location_account, account.name),
        ("location region", need.location_region, account.region),
    ):
        if wanted is not None and wanted != actual:
            raise _Rejected(RejectionCode.CONSTRAINT, f"{label} is {wanted}, not {actual}")
    return account


def _image_and_size(need: Need, account: AccountState) -> tuple[str | None, CloudSize | None]:
    """The account's image id for ``need.image`` and its cheapest size for ``need.hardware``
    (the image's architecture narrowing the hardware when the need names none)."""
    image_id = None
    if need.image is not None:
        image_id = account.images.get(need.image)
        if image_id is None:
            raise _Rejected(
                RejectionCode.IMAGE, f"image {need.image} is not mapped for account {account.name}"
            )
    size = None
    if need.hardware is not None:
        hardware = need.hardware
        arch = account.image_arch.get(image_id) if image_id else None
        if arch is not None and hardware.arch is None:
            hardware = replace(hardware, arch=arch)
        size = cheapest_match(account.sizes, hardware)
        if size is None:
            raise _Rejected(
                RejectionCode.HARDWARE,
                f"no size of account {account.name} matches {hardware.describe()}",
            )
    return image_id, size


def _allowed_zones(need: Need, candidate: Candidate, account: AccountState) -> list[str]:
    """The account's zones that the member and the need allow, in the account's order."""
    zones = [z for z in account.zones if not candidate.zones or z in candidate.zones]
    for wanted in (need.zone, need.location_zone):
        if wanted is not None:
            zones = [z for z in zones if z == wanted]
    return zones


def _zone(need: Need, candidate: Candidate, account: AccountState) -> str | None:
    """A zone allowed by the member and the need, spread by the object's uid; None where the
    account has no zones and nothing asks for one."""
    zones = _allowed_zones(need, candidate, account)
    if not zones and (account.zones or need.zone or need.location_zone or candidate.zones):
        raise _Rejected(RejectionCode.ZONE, _zone_reason(need, candidate, account))
    return zones[zlib.crc32(need.uid.encode()) % len(zones)] if zones else None


def zone_choices(need: Need, option: Option, account: AccountState) -> tuple[str | None, ...]:
    """Every zone ``need`` may take on ``option``'s member: ``option.zone`` (the one ``place``
    picked, spread by the uid) first, then the others in the account's order after it. The
    group scheduler (``reconcilers.placement.group``) picks among them to keep zone rules."""
    zones = _allowed_zones(need, option.candidate, account)
    if option.zone is None or option.zone not in zones:
        return (option.zone,)
    first = zones.index(option.zone)
    return tuple(zones[first:] + zones[:first])


def _zone_reason(need: Need, candidate: Candidate, account: AccountState) -> str:
    asked = [z for z in (need.zone, need.location_zone) if z]
    offered = [z for z in account.zones if not candidate.zones or z in candidate.zones]
    return f"no zone left: wanted {', '.join(asked) or 'any'}, member offers {offered}"


def _rank(
    options: list[Option],
    policy: PoolPolicy | None,
    uid: str,
    load: Mapping[str, int],
    rotation: int,
) -> list[Option]:
    kind = policy.type if policy is not None else PoolPolicyType.PRIORITY

    def tie(o: Option) -> tuple[int, int]:
        return (-o.candidate.priority, o.index)

    if kind is PoolPolicyType.LOWEST_COST:
        return sorted(
            options,
            key=lambda o: (
                math.inf
                if o.size is None or o.size.price_per_hour is None
                else o.size.price_per_hour,
                *tie(o),
            ),
        )
    if kind is PoolPolicyType.LEAST_LOADED:
        return sorted(options, key=lambda o: (load.get(o.key, 0), *tie(o)))
    if kind is PoolPolicyType.ROUND_ROBIN:
        ordered = sorted(options, key=lambda o: o.index)
        shift = rotation % len(ordered) if ordered else 0
        return ordered[shift:] + ordered[:shift]
    if kind is PoolPolicyType.WEIGHTED_RANDOM:
        rng = random.Random(uid)
        draws = {o.index: rng.random() for o in sorted(options, key=lambda o: o.index)}

        def weighted(o: Option) -> tuple[int, float, int, int]:
            weight = o.candidate.weight
            if weight <= 0:
                return (1, 0.0, *tie(o))
            # Efraimidis-Spirakis: larger u ** (1 / w) first = sampling without replacement.
            return (0, -(draws[o.index] ** (1.0 / weight)), *tie(o))

        return sorted(options, key=weighted)
    return sorted(options, key=tie)


def place(
    need: Need,
    candidates: Sequence[Candidate],
    accounts: Mapping[str, AccountState],
    *,
    policy: PoolPolicy | None = None,
    load: Mapping[str, int] | None = None,
    failures: Mapping[str, datetime] | None = None,
    now: datetime | None = None,
    rotation: int = 0,
) -> Decision:
    """Filter ``candidates`` for ``need``, rank the rest by ``policy``; see the module."""
    load = load or {}
    options: list[Option] = []
    rejections: list[Rejection] = []
    for index, candidate in enumerate(candidates):
        try:
            options.append(
                _evaluate(
                    need,
                    candidate,
                    index,
                    accounts.get(candidate.account),
                    load.get(candidate.key, 0),
                )
            )
        except _Rejected as rejected:
            rejections.append(
                Rejection(candidate.member, candidate.account, rejected.code, rejected.reason)
            )
    ranked = _rank(options, policy, need.uid, load, rotation)
    penalty = policy.failure_penalty if policy is not None else 0
    if penalty and failures and now is not None:

        def penalised(o: Option) -> bool:
            failed = failures.get(o.key)
            return failed is not None and (now - failed).total_seconds() < penalty

        ranked = [o for o in ranked if not penalised(o)] + [o for o in ranked if penalised(o)]
    return Decision(tuple(ranked), tuple(rejections))
