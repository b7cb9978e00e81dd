"""Instance: a virtual machine drawn from a pool (or one account), and how it is described.

Where it sits: pure data, namespaced. The instance reconciler schedules it (placement writes
``status.placement``, sticky once bound, with ``status.rejections`` explaining the members not
chosen), records the create intent in ``status.createToken``, creates it through the provider
and keeps it converged with ``spec`` (power state, drift per ``driftPolicy``).

An Instance may name a BootConfig (``spec.bootConfigRef``, DESIGN §11): it then boots with a
boot string as its user data (so ``spec.userData`` must be absent), its agent's reports land in
``status.agent``, and ``spec.health`` says what to do when the agent is lost.

``spec.hardware`` takes exactly one of three forms::

    hardware: {profile: small}                     # a HardwareProfile by name
    hardware: {cpu: 2, memoryMiB: {min: 4096}}     # inline: exact ints or {min, max}
    hardware: {size: t3.micro}                     # an explicit provider size

:class:`InstanceTemplate` is the spec without ``pool``/``account``; a VirtualCluster member's
``template`` is one (``api_types.clusters``), its pool coming from the VirtualCluster.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, StrictStr, model_validator

from api_types.accounts import Arch
from api_types.bootconfigs import ParameterMap
from api_types.common import (
    CpuOrRange,
    DiskOrRange,
    IntRange,
    MemoryOrRange,
    NonNegativeInt,
    ObjectName,
    PlacedStatus,
    Placement,
    ProviderToken,
    TargetSpec,
    as_range,
    bounded_duration,
    duration_seconds,
    field_error,
)
from api_types.meta import Resource, Scope, WireEnum, WireModel

__all__ = [
    "DEFAULT_REMEDIATION_AFTER",
    "MAX_REMEDIATION_AFTER_SECONDS",
    "MAX_USER_DATA_BYTES",
    "MIN_REMEDIATION_AFTER_SECONDS",
    "AddressType",
    "AgentState",
    "AgentStatus",
    "DeletionPolicy",
    "DriftPolicy",
    "HardwareSpec",
    "Instance",
    "InstanceAddress",
    "InstanceHealth",
    "InstancePhase",
    "InstancePlacement",
    "InstanceSpec",
    "InstanceStatus",
    "InstanceTemplate",
    "PlacementHints",
    "PowerState",
    "Remediation",
]

MAX_USER_DATA_BYTES = 16 * 1024
#: ``spec.health.after``: remediating more often than this would restart a slow boot in a loop
MIN_REMEDIATION_AFTER_SECONDS = 60
#: ... and a week is the longest wait that still means something.
MAX_REMEDIATION_AFTER_SECONDS = 7 * 24 * 3600
DEFAULT_REMEDIATION_AFTER = "5m"


class PowerState(StrEnum):
    RUNNING = "Running"
    STOPPED = "Stopped"


class DriftPolicy(StrEnum):
    """What to do when the cloud differs from spec: put it back, or only report it."""

    CORRECT = "Correct"
    REPORT = "Report"


class DeletionPolicy(StrEnum):
    """On delete: delete the cloud resource, or untag and leave it (orphan)."""

    DELETE = "Delete"
    ORPHAN = "Orphan"


class InstancePhase(StrEnum):
    """Pending → Scheduled → Provisioning → Running/Stopped; Failed; Deleting."""

    PENDING = "Pending"
    SCHEDULED = "Scheduled"
    PROVISIONING = "Provisioning"
    RUNNING = "Running"
    STOPPED = "Stopped"
    FAILED = "Failed"
    DELETING = "Deleting"


class AddressType(StrEnum):
    PUBLIC_IP = "PublicIP"
    PRIVATE_IP = "PrivateIP"
    HOSTNAME = "Hostname"


class Remediation(StrEnum):
    """What to do when an instance's agent is lost (DESIGN §11)."""

    NONE = "None"
    RESTART = "Restart"
    REPLACE = "Replace"


class AgentState(StrEnum):
    """Where the boot agent of an instance is: Booting until its first report."""

    BOOTING = "Booting"
    CONFIGURED = "Configured"
    FAILED = "Failed"
    LOST = "Lost"


class HardwareSpec(WireModel):
    """Exactly one form: ``profile``; or ``size``; or inline ``cpu``/``memoryMiB``/``diskGiB``/
    ``arch`` (each number exact or ``{min, max}``)."""

    profile: ObjectName | None = Field(None, description="Name of a HardwareProfile.")
    size: ProviderToken | None = Field(
        None, description="Explicit provider size name, e.g. t3.micro."
    )
    cpu: CpuOrRange | None = Field(None, description="Inline: vCPUs, exact or {min, max}.")
    memory_mib: MemoryOrRange | None = Field(
        None, alias="memoryMiB", description="Inline: memory in MiB, exact or {min, max}."
    )
    disk_gib: DiskOrRange | None = Field(
        None, alias="diskGiB", description="Inline: root disk in GiB, exact or {min, max}."
    )
    arch: WireEnum[Arch] | None = Field(None, description="Inline: x86_64 or arm64.")

    @model_validator(mode="after")
    def _exactly_one_form(self) -> HardwareSpec:
        inline = [wire for name, wire in _INLINE_FIELDS if getattr(self, name) is not None]
        forms = [name for name in ("profile", "size") if getattr(self, name) is not None]
        if inline:
            forms.append("inline constraints (" + ", ".join(inline) + ")")
        if len(forms) != 1:
            got = " and ".join(forms) if forms else "none"
            raise field_error(
                (),
                "give exactly one of: profile; size; inline constraints (cpu, memoryMiB, "
                f"diskGiB, arch) — got {got}",
                None,
            )
        return self

    @property
    def inline(self) -> bool:
        """True for the inline-constraints form."""
        return self.profile is None and self.size is None

    def constraints(self) -> tuple[IntRange | None, IntRange | None, IntRange | None]:
        """Inline (cpu, memoryMiB, diskGiB) as ranges; exact numbers become min = max."""
        return as_range(self.cpu), as_range(self.memory_mib), as_range(self.disk_gib)


#: (Python name, wire name) of the inline-constraint fields: every field but profile and size.
_INLINE_FIELDS = tuple(
    (name, info.alias or name)
    for name, info in HardwareSpec.model_fields.items()
    if name not in ("profile", "size")
)


def _user_data_size(value: str) -> str:
    size = len(value.encode("utf-8"))
    if size > MAX_USER_DATA_BYTES:
        raise ValueError(f"must be at most {MAX_USER_DATA_BYTES} bytes (got {size})")
    return value


class PlacementHints(WireModel):
    """Constraints on where a pool may place the instance."""

    zone: ProviderToken | None = Field(None, description="Only this zone.")
    region: ProviderToken | None = Field(None, description="Only this region.")
    account: ObjectName | None = Field(None, description="Only this pool member's account.")


class InstanceHealth(WireModel):
    """How an instance with a boot agent is kept healthy: on ``AgentLost``, restart it
    (stop/start) or replace it (delete and recreate where its pool or VirtualCluster allows),
    at most once per ``after``."""

    remediation: WireEnum[Remediation] = Field(
        Remediation.NONE, description="None (only report), Restart or Replace."
    )
    after: Annotated[
        StrictStr, bounded_duration(MIN_REMEDIATION_AFTER_SECONDS, MAX_REMEDIATION_AFTER_SECONDS)
    ] = Field(
        DEFAULT_REMEDIATION_AFTER,
        description="At most one remediation per this duration (e.g. 5m; 1m to 168h).",
    )

    @property
    def after_seconds(self) -> int:
        return duration_seconds(self.after)


class InstanceTemplate(WireModel):
    """An Instance spec apart from where it is drawn from (``pool``/``account``): what a
    VirtualCluster member's ``template`` holds, its pool coming from the VirtualCluster."""

    hardware: HardwareSpec = Field(description="A profile name, inline constraints or a size.")
    image: ProviderToken = Field(
        description="Logical image name, mapped per account by ProviderAccount.spec.images."
    )
    subnet_ref: ObjectName | None = Field(
        None, description="Subnet in the same namespace; the instance is placed where it is."
    )
    firewall_refs: list[ObjectName] = Field(
        default_factory=list, description="Firewalls in the same namespace applied to it."
    )
    user_data: Annotated[str, AfterValidator(_user_data_size)] | None = Field(
        None,
        description=f"Boot-time user data (cloud-init), ≤ {MAX_USER_DATA_BYTES} bytes; "
        "not with bootConfigRef.",
    )
    boot_config_ref: ObjectName | None = Field(
        None,
        description="BootConfig in the same namespace: the instance boots with a boot string "
        "as its user data and its agent fetches the config (exclusive with userData).",
    )
    health: InstanceHealth | None = Field(
        None,
        description="What to do when the boot agent is lost (needs bootConfigRef); absent = "
        "remediation None.",
    )
    power_state: WireEnum[PowerState] = Field(PowerState.RUNNING, description="Running or Stopped.")
    placement: PlacementHints | None = Field(
        None, description="Optional zone/region/account constraints for scheduling."
    )
    drift_policy: WireEnum[DriftPolicy] = Field(
        DriftPolicy.CORRECT, description="Correct drift from spec, or only Report it."
    )
    deletion_policy: WireEnum[DeletionPolicy] = Field(
        DeletionPolicy.DELETE, description="Delete the VM with the object, or Orphan it."
    )

    @model_validator(mode="after")
    def _firewalls_need_a_subnet(self) -> InstanceTemplate:
        # A firewall is realised in a subnet's network (an EC2 security group in its VPC):
        # without a subnet there is no network to realise it in, and the instance would wait
        # for it forever.
        if self.firewall_refs and self.subnet_ref is None:
            raise field_error(
                ("firewallRefs",),
                "firewalls are realised in a subnet's network: set subnetRef too",
                self.firewall_refs,
            )
        return self

    @model_validator(mode="after")
    def _boot_config_replaces_user_data(self) -> InstanceTemplate:
        if self.boot_config_ref is not None and self.user_data is not None:
            raise field_error(
                ("userData",),
                "must not be set together with bootConfigRef: the boot string is the user data",
                None,  # never echo user data: it may carry credentials
            )
        # Remediation acts on AgentLost, which only an agent (a BootConfig) can produce:
        # without one it would silently never act.
        if (
            self.health is not None
            and self.health.remediation != Remediation.NONE
            and self.boot_config_ref is None
        ):
            raise field_error(
                ("health", "remediation"),
                "acts when the boot agent is lost: set bootConfigRef too",
                self.health.remediation,
            )
        return self


# Bases in this order keep pool and account first on the wire: pydantic lists the fields of
# the last base first.
class InstanceSpec(InstanceTemplate, TargetSpec):
    """What an Instance is, and exactly one of ``pool`` or ``account`` to draw it from."""


class InstancePlacement(Placement):
    size: ProviderToken = Field(description="Provider size chosen.")
    placement_group: ProviderToken | None = Field(
        None,
        description="Provider placement group to launch in (a VirtualCluster's host rule: EC2 "
        "spread or cluster groups).",
    )


class InstanceAddress(WireModel):
    type: WireEnum[AddressType] = Field(description="PublicIP, PrivateIP or Hostname.")
    address: str = Field(min_length=1, description="The address.")


class AgentStatus(WireModel):
    """What the instance's boot agent last reported; changes only on a transition."""

    state: WireEnum[AgentState] = Field(description="Booting, Configured, Failed or Lost.")
    address: StrictStr | None = Field(
        None, max_length=255, description="The address the agent reported (IP or host name)."
    )
    parameters: ParameterMap = Field(
        default_factory=dict, description="Parameters the agent reported."
    )
    config_revision: NonNegativeInt | None = Field(
        None, description="The BootConfig status.revision the agent last applied."
    )
    last_report: datetime | None = Field(None, description="When the agent last reported.")
    last_transition_time: datetime | None = Field(
        None,
        description="When state last changed; a Booting agent's stale clock starts here.",
    )
    last_remediation: datetime | None = Field(
        None,
        description="When spec.health last acted (Restart or Replace): at most once per "
        "spec.health.after.",
    )


class InstanceStatus(PlacedStatus):
    phase: WireEnum[InstancePhase] | None = Field(
        None,
        description="Pending, Scheduled, Provisioning, Running, Stopped, Failed or Deleting.",
    )
    placement: InstancePlacement | None = Field(
        None, description="Account, region, zone and size chosen; sticky once bound."
    )
    addresses: list[InstanceAddress] = Field(
        default_factory=list, description="Addresses reported by the cloud."
    )
    agent: AgentStatus | None = Field(
        None,
        description="The boot agent's record (bootConfigRef): Booting from pre-registration "
        "until its first report.",
    )


class Instance(Resource):
    """A virtual machine. Conditions: Scheduled, Provisioned, Ready, Drifted, QuotaExceeded and,
    with a bootConfigRef, AgentReady."""

    KIND: ClassVar[str] = "Instance"
    PLURAL: ClassVar[str] = "instances"
    SCOPE: ClassVar[Scope] = Scope.NAMESPACED
    HAS_STATUS: ClassVar[bool] = True

    kind: Literal["Instance"] = Field("Instance", description="Instance.")
    spec: InstanceSpec = Field(description="Desired state of the VM.")
    status: InstanceStatus = Field(
        default_factory=InstanceStatus, description="Observed state of the VM."
    )
