"""BootConfig: the configuration a booting instance fetches from the rendezvous point (§11).

Where it sits: pure data, namespaced. Instances name it (``spec.bootConfigRef``) and get a boot
string (``api_types.boot``) as their user data; their agent fetches ``spec.config`` and
``spec.parameters`` through the rendezvous endpoints and reports back (``Instance.status.agent``).
The BootConfig reconciler owns the status: ``revision`` moves whenever ``spec.config`` or
``spec.parameters`` change (agents long-poll on it; ``configDigest`` is what it counts), ``claimed``
counts the dynamic slots taken and ``claims`` lists the first :data:`MAX_LISTED_CLAIMS` of them.

Rules, each refused at its own field:

- ``config`` is opaque (cloud-init, a script, anything) and at most :data:`MAX_CONFIG_BYTES`
  (UTF-8);
- ``parameters``: at most :data:`MAX_PARAMETERS` entries; keys are 1-253 characters of
  alphanumerics, ``-``, ``_`` or ``.`` (they become environment-like names on the instance);
  each value at most :data:`MAX_PARAMETER_VALUE_BYTES`;
- ``dynamic`` and ``slots`` go together: a dynamic BootConfig (handed out first come, first
  served) needs ``slots ≥ 1``, and a static one has no slots (``slots: 0``, the default) —
  either mistake is refused at ``spec.slots``, since a dynamic config nobody may claim, or a
  slot count that is silently ignored, is never what was meant;
- ``staleAfter``: a duration between :data:`MIN_STALE_AFTER_SECONDS` and
  :data:`MAX_STALE_AFTER_SECONDS` (default ``10m``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, StrictBool, StrictStr, model_validator

from api_types.common import (
    BoundedCount,
    NonNegativeInt,
    bounded_duration,
    duration_seconds,
    field_error,
)
from api_types.meta import PhaselessStatus, Resource, Scope, WireModel
from api_types.validation import validate_secret_key

__all__ = [
    "DEFAULT_STALE_AFTER",
    "MAX_CONFIG_BYTES",
    "MAX_LISTED_CLAIMS",
    "MAX_PARAMETERS",
    "MAX_PARAMETER_VALUE_BYTES",
    "MAX_STALE_AFTER_SECONDS",
    "MIN_STALE_AFTER_SECONDS",
    "BootConfig",
    "BootConfigClaim",
    "BootConfigCondition",
    "BootConfigSpec",
    "BootConfigStatus",
    "ParameterMap",
]

#: ``spec.config``: 64 KiB, four times EC2's user data — it is fetched, not passed at boot.
MAX_CONFIG_BYTES = 64 * 1024
#: ``spec.parameters`` (and what an agent reports): entries ...
MAX_PARAMETERS = 256
#: ... and bytes of one value.
MAX_PARAMETER_VALUE_BYTES = 4096
#: Agents heartbeat a few times within ``staleAfter``: shorter than this only loads the store.
MIN_STALE_AFTER_SECONDS = 30
#: A day: an agent silent longer than that is lost, whatever the workload.
MAX_STALE_AFTER_SECONDS = 24 * 3600
DEFAULT_STALE_AFTER = "10m"
#: ``status.claims`` lists at most this many claims (the lowest slots); ``claimed`` counts all.
MAX_LISTED_CLAIMS = 50


def _config_size(value: str) -> str:
    size = len(value.encode("utf-8"))
    if size > MAX_CONFIG_BYTES:
        raise ValueError(f"must be at most {MAX_CONFIG_BYTES} bytes (64 KiB; got {size})")
    return value


def _parameter_map(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_PARAMETERS:
        raise ValueError(f"must have at most {MAX_PARAMETERS} entries (got {len(value)})")
    for key, item in value.items():
        try:
            validate_secret_key(key)
        except ValueError as exc:
            raise field_error((key,), f"parameter {exc}", key) from None
        size = len(item.encode("utf-8"))
        if size > MAX_PARAMETER_VALUE_BYTES:
            raise field_error(
                (key,), f"must be at most {MAX_PARAMETER_VALUE_BYTES} bytes (got {size})", None
            )
    return value


#: A parameter map: bounded count, keys like Secret data keys, bounded values. The Instance's
#: ``status.agent.parameters`` (what agents report) has the same bounds.
ParameterMap = Annotated[dict[str, StrictStr], AfterValidator(_parameter_map)]
StaleAfter = Annotated[
    StrictStr, bounded_duration(MIN_STALE_AFTER_SECONDS, MAX_STALE_AFTER_SECONDS)
]


class BootConfigSpec(WireModel):
    """What agents fetch (config, parameters) and how the config is handed out."""

    config: Annotated[StrictStr, AfterValidator(_config_size)] = Field(
        "",
        description=f"Opaque payload handed to the agent (cloud-init, a script, …), "
        f"≤ {MAX_CONFIG_BYTES} bytes.",
    )
    parameters: ParameterMap = Field(
        default_factory=dict,
        description="Initial parameter map, merged with what agents report; keys are "
        "alphanumerics, '-', '_' or '.'.",
    )
    dynamic: StrictBool = Field(
        False, description="True: handed out first come, first served to agents that claim it."
    )
    slots: BoundedCount = Field(
        0, description="Dynamic only (then ≥ 1): how many agents may claim it; 0 when static."
    )
    stale_after: StaleAfter = Field(
        DEFAULT_STALE_AFTER,
        description="An agent not reporting within this is lost (e.g. 10m; 30s to 24h).",
    )

    @model_validator(mode="after")
    def _slots_go_with_dynamic(self) -> BootConfigSpec:
        if self.dynamic and self.slots == 0:
            raise field_error(
                ("slots",), "a dynamic BootConfig needs slots ≥ 1: how many agents may claim it", 0
            )
        if not self.dynamic and self.slots > 0:
            raise field_error(
                ("slots",),
                "slots are for dynamic BootConfigs: set dynamic: true, or slots: 0",
                self.slots,
            )
        return self

    @property
    def stale_after_seconds(self) -> int:
        return duration_seconds(self.stale_after)


class BootConfigCondition(StrEnum):
    """The condition types a BootConfig reports."""

    READY = "Ready"


class BootConfigClaim(WireModel):
    """One claimed dynamic slot, as of the last status write (heartbeats are not written to
    the BootConfig: ``lastReport`` is refreshed when the claims change, and at least once
    within ``staleAfter`` while the claimant reports)."""

    slot: NonNegativeInt = Field(description="The slot claimed.")
    uuid: StrictStr = Field(description="The claimant's uuid (its rendezvous identity).")
    address: StrictStr | None = Field(None, description="The address the claimant reported.")
    last_report: datetime | None = Field(
        None, description="When the claimant last reported; absent: not yet."
    )


class BootConfigStatus(PhaselessStatus):
    """Owned by the BootConfig reconciler."""

    revision: NonNegativeInt | None = Field(
        None,
        description="Moves whenever spec.config or spec.parameters change; agents long-poll "
        "on it. Absent until the reconciler has seen the BootConfig.",
    )
    config_digest: StrictStr | None = Field(
        None,
        description="SHA-256 (hex) of the canonical JSON of spec.config and spec.parameters "
        "that revision was last moved for.",
    )
    claimed: NonNegativeInt = Field(0, description="Dynamic slots claimed by agents.")
    claims: list[BootConfigClaim] = Field(
        default_factory=list,
        max_length=MAX_LISTED_CLAIMS,
        description=f"The claimed slots (the lowest {MAX_LISTED_CLAIMS}; claimed counts all).",
    )
    # Not ObjectName: a BootConfig name near the limit makes a name too long for a Secret,
    # which Ready=False reports; the status must still be writable then.
    enrollment_secret: StrictStr | None = Field(
        None,
        description="Dynamic only: the Secret (this namespace) whose entry 'secret' claimants "
        "present to claim a slot.",
    )


class BootConfig(Resource):
    """Configuration fetched by booting instances through the rendezvous point."""

    KIND: ClassVar[str] = "BootConfig"
    PLURAL: ClassVar[str] = "bootconfigs"
    SCOPE: ClassVar[Scope] = Scope.NAMESPACED
    HAS_STATUS: ClassVar[bool] = True

    kind: Literal["BootConfig"] = Field("BootConfig", description="BootConfig.")
    spec: BootConfigSpec = Field(description="Config, parameters and how it is handed out.")
    status: BootConfigStatus = Field(
        default_factory=BootConfigStatus, description="Revision and claimed slots."
    )
