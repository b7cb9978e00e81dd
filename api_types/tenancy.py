"""Tenancy kinds: Namespace (a tenant), Quota (its limits) and Secret (Kubernetes' shape).

Where it sits: pure data. The API server validates requests with these models, the store
keeps their ``to_wire()`` form in etcd, the namespace and quota reconcilers read them.
Quota is enforced at admission and again by the controller for direct writes.
"""

from __future__ import annotations

import base64
from enum import StrEnum
from typing import Annotated, ClassVar, Literal, Protocol

from pydantic import AfterValidator, Field, StrictBool, field_validator

from api_types.accounts import HardwareProfile
from api_types.common import (
    MAX_COUNT,
    MAX_CPU,
    MAX_DISK_GIB,
    MAX_MEMORY_MIB,
    BoundedCount,
    NonNegativeInt,
    as_range,
    at_most,
    field_error,
)
from api_types.compute import Instance
from api_types.meta import (
    ObjectMeta,
    PhaselessStatus,
    Resource,
    Scope,
    Status,
    WireEnum,
    WireModel,
)
from api_types.storage import Volume
from api_types.validation import validate_base64, validate_dns1123_label, validate_secret_key

__all__ = [
    "Namespace",
    "NamespacePhase",
    "NamespaceSpec",
    "NamespaceStatus",
    "Quota",
    "QuotaLimits",
    "QuotaSpec",
    "QuotaStatus",
    "QuotaUsage",
    "Secret",
    "SecretData",
    "SecretStringData",
    "SizeShape",
    "usage_of",
]


# --------------------------------------------------------------------------- Namespace


class NamespacePhase(StrEnum):
    ACTIVE = "Active"
    TERMINATING = "Terminating"


class NamespaceSpec(WireModel):
    """A namespace has no desired-state fields yet; the empty spec is kept for symmetry."""


class NamespaceStatus(Status):
    phase: WireEnum[NamespacePhase] | None = Field(
        None, description="Active, or Terminating while its objects are being deleted."
    )


class Namespace(Resource):
    """A tenant: namespaced objects live in one. Its name is a DNS-1123 label (≤ 63)."""

    KIND: ClassVar[str] = "Namespace"
    PLURAL: ClassVar[str] = "namespaces"
    SCOPE: ClassVar[Scope] = Scope.CLUSTER
    HAS_STATUS: ClassVar[bool] = True

    kind: Literal["Namespace"] = Field("Namespace", description="Namespace.")
    spec: NamespaceSpec = Field(default_factory=NamespaceSpec, description="Empty.")
    status: NamespaceStatus = Field(
        default_factory=NamespaceStatus, description="Phase of the namespace."
    )

    @field_validator("metadata")
    @classmethod
    def _name_is_label(cls, value: ObjectMeta) -> ObjectMeta:
        try:
            validate_dns1123_label(value.name)
        except ValueError as exc:
            raise field_error(("name",), f"a namespace name {exc}", value.name) from None
        return value


# --------------------------------------------------------------------------- Quota


class QuotaLimits(WireModel):
    """Hard limits of a namespace; an absent field is not limited. Each is bounded by what
    ``MAX_COUNT`` objects of the largest size would use."""

    instances: BoundedCount | None = Field(None, description="Maximum number of Instances.")
    cpu: Annotated[NonNegativeInt, at_most(MAX_CPU * MAX_COUNT)] | None = Field(
        None, description="Maximum total vCPUs of Instances."
    )
    memory_mib: Annotated[NonNegativeInt, at_most(MAX_MEMORY_MIB * MAX_COUNT)] | None = Field(
        None, alias="memoryMiB", description="Maximum total memory of Instances, MiB."
    )
    volumes: BoundedCount | None = Field(None, description="Maximum number of Volumes.")
    volume_gib: Annotated[NonNegativeInt, at_most(MAX_DISK_GIB * MAX_COUNT)] | None = Field(
        None, alias="volumeGiB", description="Maximum total size of Volumes, GiB."
    )


class QuotaUsage(WireModel):
    """What a namespace uses now, in the same shape as the limits."""

    instances: NonNegativeInt = Field(0, description="Number of Instances.")
    cpu: NonNegativeInt = Field(0, description="Total vCPUs of Instances.")
    memory_mib: NonNegativeInt = Field(
        0, alias="memoryMiB", description="Total memory of Instances, MiB."
    )
    volumes: NonNegativeInt = Field(0, description="Number of Volumes.")
    volume_gib: NonNegativeInt = Field(0, alias="volumeGiB", description="Total Volume GiB.")

    def __add__(self, other: QuotaUsage) -> QuotaUsage:
        return QuotaUsage(
            **{name: getattr(self, name) + getattr(other, name) for name in QuotaUsage.model_fields}
        )

    def __sub__(self, other: QuotaUsage) -> QuotaUsage:
        """Less ``other``, which this usage includes (a negative part is invalid)."""
        return QuotaUsage(
            **{name: getattr(self, name) - getattr(other, name) for name in QuotaUsage.model_fields}
        )

    def __mul__(self, count: int) -> QuotaUsage:
        """The usage of ``count`` objects that each use this."""
        return QuotaUsage(**{name: getattr(self, name) * count for name in QuotaUsage.model_fields})

    def exceeds(self, hard: QuotaLimits) -> list[str]:
        """Wire names of the resources whose usage is above ``hard`` (empty = within quota)."""
        over: list[str] = []
        for name, info in QuotaLimits.model_fields.items():
            limit = getattr(hard, name)
            if limit is not None and getattr(self, name) > limit:
                over.append(info.alias or name)
        return over


class SizeShape(Protocol):
    """The vCPUs and memory of a provider size (``providers.CloudSize`` is one)."""

    @property
    def cpu(self) -> int: ...

    @property
    def memory_mib(self) -> int: ...


def usage_of(
    obj: Resource | None, profile: HardwareProfile | None = None, size: SizeShape | None = None
) -> QuotaUsage:
    """What ``obj`` counts against its namespace's quota (nothing for None or another kind).

    - Instance: 1 instance; cpu and memoryMiB of ``size``, the provider size it runs on, when
      the caller knows it; else the declared minimum — of ``profile``, the HardwareProfile its
      ``spec.hardware.profile`` names (resolved by the caller; None when missing: 0), or of the
      inline constraints (an exact number, or a range's ``min``). An explicit provider size of
      unknown shape counts 0 cpu and 0 memory.
    - Volume: 1 volume and ``spec.sizeGiB`` GiB.
    """
    if isinstance(obj, Volume):
        return QuotaUsage(volumes=1, volume_gib=obj.spec.size_gib)
    if not isinstance(obj, Instance):
        return QuotaUsage()
    if size is not None:
        return QuotaUsage(instances=1, cpu=size.cpu, memory_mib=size.memory_mib)
    hardware = obj.spec.hardware
    cpu, memory = as_range(hardware.cpu), as_range(hardware.memory_mib)
    if hardware.profile is not None:
        cpu, memory = (profile.spec.cpu, profile.spec.memory_mib) if profile else (None, None)
    return QuotaUsage(
        instances=1,
        cpu=(cpu.min if cpu else None) or 0,
        memory_mib=(memory.min if memory else None) or 0,
    )


class QuotaSpec(WireModel):
    hard: QuotaLimits = Field(
        default_factory=QuotaLimits, description="Hard limits; an absent field is unlimited."
    )


class QuotaStatus(PhaselessStatus):
    used: QuotaUsage = Field(
        default_factory=QuotaUsage, description="Current usage including reservations."
    )


class Quota(Resource):
    """Hard limits on instances, cpu, memoryMiB, volumes and volumeGiB of one namespace."""

    KIND: ClassVar[str] = "Quota"
    PLURAL: ClassVar[str] = "quotas"
    SCOPE: ClassVar[Scope] = Scope.NAMESPACED
    HAS_STATUS: ClassVar[bool] = True

    kind: Literal["Quota"] = Field("Quota", description="Quota.")
    spec: QuotaSpec = Field(default_factory=QuotaSpec, description="The limits.")
    status: QuotaStatus = Field(default_factory=QuotaStatus, description="The usage.")


# --------------------------------------------------------------------------- Secret


def _validate_data(value: dict[str, str]) -> dict[str, str]:
    for key, encoded in value.items():
        validate_secret_key(key)
        try:
            validate_base64(encoded)
        except ValueError as exc:
            raise ValueError(f"key {key!r}: {exc}") from None
    return value


def _validate_string_data(value: dict[str, str]) -> dict[str, str]:
    for key in value:
        validate_secret_key(key)
    return value


SecretData = Annotated[dict[str, str], AfterValidator(_validate_data)]
SecretStringData = Annotated[dict[str, str], AfterValidator(_validate_string_data)]


class Secret(Resource):
    """Kubernetes' Secret: base64 ``data`` and/or plain ``stringData`` (which wins on a clash).

    Provider credentials use the keys ``key`` and ``secret`` (libcloud's names), with
    driver-specific extras beside them. Encrypted at rest by the store; no status.
    """

    KIND: ClassVar[str] = "Secret"
    PLURAL: ClassVar[str] = "secrets"
    SCOPE: ClassVar[Scope] = Scope.NAMESPACED
    HAS_STATUS: ClassVar[bool] = False
    LAST_APPLIED_KEYS_ONLY: ClassVar[tuple[str, ...]] = ("data", "stringData")

    kind: Literal["Secret"] = Field("Secret", description="Secret.")
    type: str = Field(
        "Opaque", min_length=1, max_length=253, description="Free-form type, default Opaque."
    )
    data: SecretData = Field(
        default_factory=dict, description="Key → base64-encoded value (standard alphabet)."
    )
    string_data: SecretStringData = Field(
        default_factory=dict,
        description="Key → plain-text value; write-only convenience, merged over data.",
    )
    immutable: StrictBool | None = Field(
        None, description="If true, data cannot be changed after creation."
    )

    def decoded(self) -> dict[str, bytes]:
        """All values as bytes: ``data`` decoded, then ``stringData`` merged over it."""
        values = {key: base64.b64decode(encoded) for key, encoded in self.data.items()}
        values.update({key: text.encode("utf-8") for key, text in self.string_data.items()})
        return values

    def folded(self) -> Secret:
        """A copy in the form the store keeps: ``stringData`` folded into base64 ``data`` (it
        wins on a clash) and left empty, as Kubernetes' admission does. One mechanism for the
        API server's admission and skyctl's comparison of a manifest with the live Secret."""
        data = dict(self.data)
        for key, text in self.string_data.items():
            data[key] = base64.b64encode(text.encode("utf-8")).decode("ascii")
        return self.model_copy(update={"data": data, "string_data": {}}, deep=True)

    def stored_form(self) -> Secret:
        return self.folded()

    def get_text(self, key: str) -> str | None:
        """One value as UTF-8 text, or None when absent (e.g. ``get_text("secret")``)."""
        value = self.decoded().get(key)
        return None if value is None else value.decode("utf-8")
