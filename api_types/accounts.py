"""Provider-side kinds: ProviderAccount (credentials in one cloud) and HardwareProfile.

Where it sits: pure data, cluster-scoped. The account reconciler probes each account and
writes its health; providers are constructed from ``ProviderAccount.spec``; placement matches
``HardwareProfile`` constraints against provider sizes (the cheapest size satisfying all wins).
Tenants never see credentials: an account only points at a Secret (credential multiplexing).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field

from api_types.common import (
    MAX_COUNT,
    MAX_RATE,
    CpuRange,
    DiskRange,
    MemoryRange,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ProviderToken,
    SecretReference,
    at_most,
)
from api_types.meta import PhaselessStatus, Resource, Scope, WireEnum, WireModel
from api_types.validation import validate_dns1123_label, validate_http_url, validate_token

__all__ = [
    "ApiBudget",
    "Arch",
    "DriverName",
    "HardwareProfile",
    "HardwareProfileSpec",
    "HardwareProfileStatus",
    "HttpUrl",
    "ManagedResourceCounts",
    "ProviderAccount",
    "ProviderAccountSpec",
    "ProviderAccountStatus",
]

#: Driver names are DNS-1123 labels so new drivers can be added without touching the schema.
DriverName = Annotated[str, AfterValidator(validate_dns1123_label)]
HttpUrl = Annotated[str, AfterValidator(validate_http_url)]


class Arch(StrEnum):
    """CPU architecture of a size or image."""

    X86_64 = "x86_64"
    ARM64 = "arm64"


# --------------------------------------------------------------------------- ProviderAccount


class ApiBudget(WireModel):
    """Per-account token bucket shared by all workers (deletes go first)."""

    requests_per_second: Annotated[PositiveFloat, at_most(MAX_RATE)] = Field(
        10.0, description="Sustained cloud API calls per second (> 0)."
    )
    burst: Annotated[PositiveInt, at_most(MAX_COUNT)] = Field(
        20, description="Bucket size: calls allowed at once (≥ 1)."
    )


def _validate_images(value: dict[str, str]) -> dict[str, str]:
    for logical, provider_id in value.items():
        try:
            validate_token(logical)
            validate_token(provider_id)
        except ValueError as exc:
            raise ValueError(f"image {logical!r}: {exc}") from None
    return value


class ProviderAccountSpec(WireModel):
    driver: DriverName = Field(
        description="Cloud driver: 'simulated', 'ec2', … (a DNS-1123 label; unknown drivers are "
        "reported by the account's Ready condition, not rejected here)."
    )
    region: ProviderToken = Field(description="Region of the account, e.g. us-east-1.")
    endpoint: HttpUrl | None = Field(
        None,
        description="http(s) URL overriding the driver's endpoint, e.g. http://127.0.0.1:5000.",
    )
    credentials_ref: SecretReference | None = Field(
        None,
        description="Secret holding 'key' and 'secret' (libcloud's names) plus driver-specific "
        "extras; absent for drivers needing no credentials (simulated).",
    )
    images: Annotated[dict[str, str], AfterValidator(_validate_images)] = Field(
        default_factory=dict,
        description="Logical image name → provider image id, e.g. ubuntu-22.04: ami-0abc1234.",
    )
    api_budget: ApiBudget = Field(
        default_factory=ApiBudget, description="Cloud API rate limit for this account."
    )


class ManagedResourceCounts(WireModel):
    """How many cloud resources skybroker manages in an account."""

    instances: NonNegativeInt = Field(0, description="Instances.")
    subnets: NonNegativeInt = Field(0, description="Subnets.")
    firewalls: NonNegativeInt = Field(0, description="Firewall realisations.")
    volumes: NonNegativeInt = Field(0, description="Volumes.")


class ProviderAccountStatus(PhaselessStatus):
    """Health from periodic probes (condition Ready), error rate, latency, managed counts, and
    the zones the last successful probe found available (what the EC2 front door's
    DescribeAvailabilityZones answers for a pool member that names no zones, DESIGN §12)."""

    zones: list[ProviderToken] = Field(
        default_factory=list,
        description="Available zones of the account's region, as last probed (sorted).",
    )

    error_rate: NonNegativeFloat | None = Field(
        None, le=1, description="Fraction of recent cloud calls that failed (0..1)."
    )
    latency_ms: NonNegativeFloat | None = Field(
        None, description="Recent cloud call latency (median), milliseconds."
    )
    managed_resources: ManagedResourceCounts = Field(
        default_factory=ManagedResourceCounts, description="Counts of managed cloud resources."
    )


class ProviderAccount(Resource):
    """One set of credentials in one cloud region."""

    KIND: ClassVar[str] = "ProviderAccount"
    PLURAL: ClassVar[str] = "provideraccounts"
    SCOPE: ClassVar[Scope] = Scope.CLUSTER
    HAS_STATUS: ClassVar[bool] = True

    kind: Literal["ProviderAccount"] = Field("ProviderAccount", description="ProviderAccount.")
    spec: ProviderAccountSpec = Field(description="Driver, region, endpoint, credentials.")
    status: ProviderAccountStatus = Field(
        default_factory=ProviderAccountStatus, description="Health of the account."
    )


# --------------------------------------------------------------------------- HardwareProfile


class HardwareProfileSpec(WireModel):
    """Constraints a provider size must satisfy; an absent constraint matches any size."""

    cpu: CpuRange | None = Field(None, description="vCPUs {min, max}.")
    memory_mib: MemoryRange | None = Field(
        None, alias="memoryMiB", description="Memory in MiB {min, max}."
    )
    disk_gib: DiskRange | None = Field(
        None, alias="diskGiB", description="Root disk in GiB {min, max}."
    )
    arch: WireEnum[Arch] | None = Field(None, description="x86_64 or arm64; absent = any.")


class HardwareProfileStatus(PhaselessStatus):
    """Condition ``Ready`` says which size each account gives the profile; no fields of its own."""


class HardwareProfile(Resource):
    """Named hardware constraints (cpu, memoryMiB, diskGiB as min/max, arch)."""

    KIND: ClassVar[str] = "HardwareProfile"
    PLURAL: ClassVar[str] = "hardwareprofiles"
    SCOPE: ClassVar[Scope] = Scope.CLUSTER
    HAS_STATUS: ClassVar[bool] = True

    kind: Literal["HardwareProfile"] = Field("HardwareProfile", description="HardwareProfile.")
    spec: HardwareProfileSpec = Field(description="The constraints.")
    status: HardwareProfileStatus = Field(
        default_factory=HardwareProfileStatus, description="The size each account gives it."
    )
