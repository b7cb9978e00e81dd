"""Building blocks shared by the kinds: annotated field types, ranges, references, placement.

Where it sits: between ``api_types.validation`` (plain ``str -> str`` checks) and the kind
modules. Everything here is pure data.

Strictness, deliberately: numbers and booleans on the wire use pydantic's strict types, so
``"3"``, ``3.5`` or ``true`` are rejected where an integer is expected instead of being
silently coerced — a manifest that says ``cpu: "3"`` is almost always a templating mistake and
the API must say so, not guess. Floats accept integers (``requestsPerSecond: 5``). Strings are
never coerced from numbers (pydantic v2's default). Enums and timestamps stay lax because JSON
can only carry them as strings.

Bounds, deliberately too: every number a user states has an upper bound (:func:`at_most`, the
``Max*``/``Bounded*`` types below), generous enough for any real cloud and small enough that a
typo of a few digits (``cpu: 40000``), an absurd quota or a 4,000-digit number is refused at
once, naming the field, instead of being stored, summed and scheduled.

A rule that involves two fields (``pool`` xor ``account``, a subnet inside its network) raises
through :func:`field_error`, so the error still names the precise field (``spec.account``)
rather than the enclosing object.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Union

from pydantic import (
    AfterValidator,
    Discriminator,
    Field,
    StrictFloat,
    StrictInt,
    Tag,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from api_types.meta import Status, WireModel
from api_types.validation import (
    validate_cidr,
    validate_dns1123_label,
    validate_dns1123_subdomain,
    validate_label_map,
    validate_token,
)

__all__ = [
    "MAX_COUNT",
    "MAX_CPU",
    "MAX_DISK_GIB",
    "MAX_MEMORY_MIB",
    "MAX_RATE",
    "MAX_SECONDS",
    "SYSTEM_NAMESPACE",
    "BoundedCount",
    "Cidr",
    "CpuOrRange",
    "CpuRange",
    "DiskGiB",
    "DiskOrRange",
    "DiskRange",
    "IntOrRange",
    "IntRange",
    "LabelMap",
    "MemoryOrRange",
    "MemoryRange",
    "NamespaceName",
    "NonNegativeFloat",
    "NonNegativeInt",
    "ObjectName",
    "PlacedStatus",
    "Placement",
    "PlacementRejection",
    "PositiveFloat",
    "PositiveInt",
    "ProviderToken",
    "SecretReference",
    "TargetSpec",
    "as_range",
    "at_most",
    "bounded_duration",
    "duration_seconds",
    "field_error",
    "format_duration",
]

#: The namespace of the system's own objects (account credentials); it always exists.
SYSTEM_NAMESPACE = "skybroker-system"

#: Name of an object, or a reference to one: a DNS-1123 subdomain (≤ 253 characters).
ObjectName = Annotated[str, AfterValidator(validate_dns1123_subdomain)]
#: Name of a namespace: a DNS-1123 label (≤ 63 characters).
NamespaceName = Annotated[str, AfterValidator(validate_dns1123_label)]
#: A provider-side identifier (region, zone, size, image id): printable ASCII, no spaces.
ProviderToken = Annotated[str, AfterValidator(validate_token)]
#: An IPv4/IPv6 CIDR with a prefix length and no host bits, stored in canonical form.
Cidr = Annotated[str, AfterValidator(validate_cidr)]
#: A Kubernetes-style label map.
LabelMap = Annotated[dict[str, str], AfterValidator(validate_label_map)]

PositiveInt = Annotated[StrictInt, Field(gt=0)]
NonNegativeInt = Annotated[StrictInt, Field(ge=0)]
PositiveFloat = Annotated[StrictFloat, Field(gt=0)]
NonNegativeFloat = Annotated[StrictFloat, Field(ge=0)]

#: vCPUs of one instance (the largest cloud sizes have a few hundred).
MAX_CPU = 4096
#: Memory of one instance: 64 TiB in MiB.
MAX_MEMORY_MIB = 64 * 1024 * 1024
#: A disk or volume: 64 TiB in GiB (EC2's largest volume).
MAX_DISK_GIB = 64 * 1024
#: Counts: instances or volumes in a quota, a member's cap, weights, priorities, bursts.
MAX_COUNT = 1_000_000
#: Durations in seconds: one week.
MAX_SECONDS = 7 * 24 * 3600
#: Rates (calls per second).
MAX_RATE = 1_000_000


_DURATION = re.compile(r"(?:([0-9]{1,6})h)?(?:([0-9]{1,6})m)?(?:([0-9]{1,6})s)?")


def duration_seconds(value: str) -> int:
    """Seconds of a duration written ``"90s"``, ``"5m"``, ``"2h"`` or ``"1h30m15s"``."""
    match = _DURATION.fullmatch(value)
    if not value or match is None:
        raise ValueError(
            f"{value!r} is not a duration: write hours, minutes and seconds like 90s, 5m, 1h30m"
        )
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def format_duration(seconds: int) -> str:
    """``seconds`` written as :func:`duration_seconds` reads it: ``5s``, ``10m``, ``1h30m``."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n)
    return text or "0s"


def bounded_duration(low: int, high: int) -> AfterValidator:
    """A duration string (:func:`duration_seconds`) between ``low`` and ``high`` seconds; the
    string is kept as written."""

    def check(value: str) -> str:
        seconds = duration_seconds(value)
        if not low <= seconds <= high:
            raise ValueError(
                f"{value!r} must be between {format_duration(low)} and {format_duration(high)}"
            )
        return value

    return AfterValidator(check)


def field_error(loc: tuple[str | int, ...], message: str, value: Any) -> ValidationError:
    """An error to raise from a model validator that points at ``loc`` inside the model.

    pydantic prefixes the location of the enclosing fields, so ``field_error(("account",), …)``
    raised while validating ``spec`` is reported at ``spec.account``.
    """
    return ValidationError.from_exception_data(
        "ValueError",
        [
            InitErrorDetails(
                type=PydanticCustomError("value_error", message),
                loc=loc,
                input=value,
            )
        ],
    )


class IntRange(WireModel):
    """An inclusive range of positive integers; either bound may be absent (unbounded)."""

    min: PositiveInt | None = Field(None, description="Smallest acceptable value (inclusive).")
    max: PositiveInt | None = Field(None, description="Largest acceptable value (inclusive).")

    @model_validator(mode="after")
    def _min_le_max(self) -> IntRange:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise field_error(("max",), f"max ({self.max}) is less than min ({self.min})", self.max)
        return self

    def contains(self, value: int) -> bool:
        """True if ``value`` satisfies both bounds."""
        if self.min is not None and value < self.min:
            return False
        return self.max is None or value <= self.max


def at_most(limit: int, unit: str = "") -> AfterValidator:
    """A bound for a number or an :class:`IntRange` (each of its ends), naming the end."""
    text = f"must be at most {limit}{' ' + unit if unit else ''}"

    def check(value: Any) -> Any:
        ends: tuple[tuple[tuple[str, ...], Any], ...] = (((), value),)
        if isinstance(value, IntRange):
            ends = (("min",), value.min), (("max",), value.max)
        for loc, number in ends:
            if number is not None and not number <= limit:  # NaN is out of bounds too
                raise field_error(loc, text, number)
        return value

    return AfterValidator(check)


def _int_or_range(value: Any) -> str:
    return "range" if isinstance(value, dict | IntRange) else "value"


#: A positive integer (exact) or an :class:`IntRange` ``{min, max}``, kept as written.
IntOrRange = Annotated[
    Union[  # noqa: UP007 - the tagged members need the explicit Union form
        Annotated[PositiveInt, Tag("value")],
        Annotated[IntRange, Tag("range")],
    ],
    Discriminator(_int_or_range),
]


#: A count that is bounded: 0 ≤ n ≤ ``MAX_COUNT``.
BoundedCount = Annotated[NonNegativeInt, at_most(MAX_COUNT)]
#: Quantities of one machine, exact or ``{min, max}`` (instances) or ranges only (profiles).
CpuRange = Annotated[IntRange, at_most(MAX_CPU, "vCPUs")]
CpuOrRange = Annotated[IntOrRange, at_most(MAX_CPU, "vCPUs")]
MemoryRange = Annotated[IntRange, at_most(MAX_MEMORY_MIB, "MiB (64 TiB)")]
MemoryOrRange = Annotated[IntOrRange, at_most(MAX_MEMORY_MIB, "MiB (64 TiB)")]
DiskGiB = Annotated[PositiveInt, at_most(MAX_DISK_GIB, "GiB (64 TiB)")]
DiskRange = Annotated[IntRange, at_most(MAX_DISK_GIB, "GiB (64 TiB)")]
DiskOrRange = Annotated[IntOrRange, at_most(MAX_DISK_GIB, "GiB (64 TiB)")]


def as_range(value: int | IntRange | None) -> IntRange | None:
    """Normalise an :data:`IntOrRange` value: an exact ``n`` becomes ``{min: n, max: n}``."""
    if value is None or isinstance(value, IntRange):
        return value
    return IntRange(min=value, max=value)


class SecretReference(WireModel):
    """Points at a Secret by namespace and name."""

    namespace: NamespaceName = Field(
        SYSTEM_NAMESPACE, description="Namespace of the Secret (default skybroker-system)."
    )
    name: ObjectName = Field(description="Name of the Secret.")


class TargetSpec(WireModel):
    """Mixin of specs placed on a cloud: exactly one of ``pool`` or ``account`` is required."""

    pool: ObjectName | None = Field(
        None, description="Pool to schedule onto (exclusive with account)."
    )
    account: ObjectName | None = Field(
        None, description="ProviderAccount to use directly, bypassing pools (exclusive with pool)."
    )

    @model_validator(mode="after")
    def _pool_xor_account(self) -> TargetSpec:
        if self.pool is not None and self.account is not None:
            raise field_error(
                ("account",), "must not be set together with pool: give exactly one", self.account
            )
        if self.pool is None and self.account is None:
            raise field_error(("pool",), "exactly one of pool or account is required", None)
        return self


class Placement(WireModel):
    """Where a scheduler put an object; sticky once bound."""

    account: ObjectName = Field(description="ProviderAccount chosen.")
    region: ProviderToken = Field(description="Region chosen.")
    zone: ProviderToken | None = Field(None, description="Availability zone chosen, if any.")
    member: str | None = Field(
        None, description="Pool member chosen (see PoolMember.key); absent without a pool."
    )


class PlacementRejection(WireModel):
    """Why one candidate (pool member or account) was not chosen; makes placement explainable."""

    member: str | None = Field(None, description="Pool member key (account or account/region).")
    account: str | None = Field(None, description="Account of the rejected candidate.")
    reason: str = Field(min_length=1, description="Why it was rejected, for humans.")


class PlacedStatus(Status):
    """Status fields common to objects realised on a cloud (subnets, volumes, instances)."""

    placement: Placement | None = Field(None, description="Where the object was placed.")
    provider_id: str | None = Field(
        None, alias="providerID", description="The cloud's id of the realised resource."
    )
    create_token: str | None = Field(
        None,
        description="Create intent (from uid and generation) recorded before the cloud call; "
        "cloud resources carry it as the skybroker/token tag.",
    )
    rejections: list[PlacementRejection] = Field(
        default_factory=list,
        description="Candidates rejected at the last scheduling attempt, with reasons.",
    )
