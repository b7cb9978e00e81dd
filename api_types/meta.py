"""The object envelope shared by every kind: ObjectMeta, Condition, OwnerReference, Resource.

Where it sits: pure data at the bottom of the stack. The store serialises these to JSON in
etcd, the runtime reads ``metadata`` generically, the API server validates request bodies with
them. No I/O here and no imports of other skybroker packages.

Field names on the wire are camelCase (``resourceVersion``, ``ownerReferences``); Python
attributes are snake_case. Unknown fields are rejected everywhere except in ``status``
subtrees that a kind chooses to leave open.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from api_types.validation import (
    validate_dns1123_label,
    validate_dns1123_subdomain,
    validate_label_map,
)

__all__ = [
    "API_VERSION",
    "Condition",
    "ConditionStatus",
    "ObjectMeta",
    "OwnerReference",
    "PhaselessStatus",
    "Resource",
    "Scope",
    "Status",
    "WireEnum",
    "WireModel",
]

API_VERSION = "skybroker.io/v1alpha1"


_E = TypeVar("_E", bound=Enum)
_R = TypeVar("_R", bound="Resource")


def _enum_wire_value(value: object) -> object:
    return value.value if isinstance(value, Enum) else value


#: An enum field that validates strictly against the enum's values but also serialises a plain
#: string assigned in Python (``status.phase = "Running"``) without pydantic's warning.
#: Models are not re-validated on assignment (``validate_assignment=False``).
WireEnum = Annotated[_E, PlainSerializer(_enum_wire_value)]


class WireModel(BaseModel):
    """Base of every model: camelCase on the wire, snake_case in Python, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=False,
    )


class Scope(StrEnum):
    """Whether objects of a kind live in a namespace (keys and REST paths include it) or not."""

    NAMESPACED = "Namespaced"
    CLUSTER = "Cluster"


class ConditionStatus(StrEnum):
    """Kubernetes' tri-state condition status."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(WireModel):
    """One observation about an object, Kubernetes' shape."""

    type: str = Field(
        min_length=1,
        max_length=316,
        description="Condition type in CamelCase, e.g. Ready, Scheduled, Provisioned, Drifted.",
    )
    status: WireEnum[ConditionStatus] = Field(description="True, False or Unknown.")
    reason: str = Field("", description="One CamelCase word explaining the status.")
    message: str = Field("", description="Human-readable details.")
    last_transition_time: datetime | None = Field(
        None, description="When the status last changed (RFC 3339)."
    )
    observed_generation: StrictInt | None = Field(
        None, description="metadata.generation the condition was computed from."
    )


class OwnerReference(WireModel):
    """Points at the object that owns this one; owned objects are garbage collected after it."""

    api_version: str = Field(API_VERSION, description="apiVersion of the owner.")
    kind: str = Field(min_length=1, description="Kind of the owner.")
    name: str = Field(min_length=1, description="Name of the owner.")
    uid: str = Field(min_length=1, description="UID of the owner (guards against re-creation).")
    controller: StrictBool = Field(False, description="True for the managing controller's owner.")
    block_owner_deletion: StrictBool = Field(
        False, description="Owner deletion waits for this object when true."
    )


class ObjectMeta(WireModel):
    """Identity and bookkeeping of an object; the server fills uid, versions and timestamps."""

    name: str = Field(description="Object name: a DNS-1123 subdomain (≤ 253 characters).")
    namespace: str | None = Field(
        None,
        description="Namespace (a DNS-1123 label) of namespaced kinds; empty for cluster-scoped.",
    )
    uid: str | None = Field(None, description="Unique id set by the server at creation.")
    resource_version: str | None = Field(
        None, description="Opaque version (the etcd mod_revision) used for optimistic writes."
    )
    generation: StrictInt | None = Field(None, description="Incremented on every spec change.")
    creation_timestamp: datetime | None = Field(None, description="When the object was created.")
    deletion_timestamp: datetime | None = Field(
        None, description="Set when deletion was requested; finalizers still pending."
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Key/value labels used by label selectors."
    )
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Free-form key/value metadata for tools."
    )
    finalizers: list[str] = Field(
        default_factory=list, description="Deletion waits until this list is empty."
    )
    owner_references: list[OwnerReference] = Field(
        default_factory=list, description="Objects this one belongs to (garbage collection)."
    )

    @field_validator("name")
    @classmethod
    def _name_is_dns1123(cls, value: str) -> str:
        return validate_dns1123_subdomain(value)

    @field_validator("namespace")
    @classmethod
    def _namespace_is_dns1123(cls, value: str | None) -> str | None:
        return None if value is None else validate_dns1123_label(value)

    @field_validator("labels")
    @classmethod
    def _labels_are_valid(cls, value: dict[str, str]) -> dict[str, str]:
        return validate_label_map(value)


class Status(WireModel):
    """Fields every status carries; kinds extend it with their own."""

    phase: str | None = Field(None, description="Coarse lifecycle phase.")
    conditions: list[Condition] = Field(
        default_factory=list, description="Current observations (Ready, Scheduled, …)."
    )
    observed_generation: StrictInt | None = Field(
        None, description="metadata.generation the controller last acted upon."
    )

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    def set_condition(
        self,
        type_: str,
        value: bool | ConditionStatus,
        reason: str,
        message: str = "",
        *,
        generation: int | None,
        now: datetime | None = None,
    ) -> bool:
        """Set condition ``type_``; True if anything about it changed.

        ``lastTransitionTime`` moves only when the status flips, so re-asserting a condition
        (every converged reconcile does) changes nothing and writes nothing.
        """
        if isinstance(value, bool):
            value = ConditionStatus.TRUE if value else ConditionStatus.FALSE
        previous = self.condition(type_)
        if previous is not None and (
            previous.status,
            previous.reason,
            previous.message,
            previous.observed_generation,
        ) == (value, reason, message, generation):
            return False
        flipped = previous is None or previous.status != value
        condition = Condition(
            type=type_,
            status=value,
            reason=reason,
            message=message,
            last_transition_time=(
                (now or datetime.now(UTC))
                if flipped or previous is None
                else previous.last_transition_time
            ),
            observed_generation=generation,
        )
        self.conditions = [c for c in self.conditions if c.type != type_] + [condition]
        return True


class PhaselessStatus(Status):
    """The status of a kind without a life cycle (Quota, HardwareProfile, ProviderAccount,
    Pool): its conditions say how it is, and a phase would only ever read ``Pending``.

    ``status.phase`` is always absent. ``Pending`` — what earlier versions' admission wrote
    into every new object, so stored objects still carry it — is read as absent; any other
    value is refused.
    """

    phase: None = Field(None, description="Always absent: this kind has no life cycle.")

    @field_validator("phase", mode="before")
    @classmethod
    def _no_phase(cls, value: object) -> None:
        if value is None or value == _LEGACY_INITIAL_PHASE:
            return None
        raise ValueError("this kind has no life cycle: status.phase must be absent")


#: The phase earlier versions gave every new object, phaseless kinds included.
_LEGACY_INITIAL_PHASE = "Pending"


class Resource(WireModel):
    """Base of every kind. Subclasses set ``KIND``, ``PLURAL``, ``SCOPE`` and their own fields.

    Most kinds add ``spec`` and ``status``; Secret and the RBAC kinds keep Kubernetes' top-level
    fields (``data``, ``rules``, ``roleRef``, ``subjects``). The store treats everything except
    ``apiVersion``, ``kind``, ``metadata`` and ``status`` as the desired state ("spec part"):
    changes to it bump ``metadata.generation``.
    """

    KIND: ClassVar[str] = ""
    PLURAL: ClassVar[str] = ""
    SCOPE: ClassVar[Scope] = Scope.NAMESPACED
    #: Kinds without a status subresource (Secret, RBAC, Namespace-less config) set False.
    HAS_STATUS: ClassVar[bool] = True
    #: Top-level wire fields whose values must not be copied into the apply engine's
    #: last-applied annotation (readable by anyone who may list the kind): only their keys are
    #: recorded, all the three-way merge needs to see what was removed.
    LAST_APPLIED_KEYS_ONLY: ClassVar[tuple[str, ...]] = ()

    api_version: str = Field(API_VERSION, description=f"Always {API_VERSION}.")
    kind: str = Field(description="The kind of the object.")
    metadata: ObjectMeta = Field(description="Name, namespace, labels and server bookkeeping.")

    @field_validator("api_version")
    @classmethod
    def _api_version_is_ours(cls, value: str) -> str:
        if value != API_VERSION:
            raise ValueError(f"must be {API_VERSION!r}")
        return value

    @model_validator(mode="after")
    def _cluster_scoped_has_no_namespace(self) -> Resource:
        # Kubernetes' behaviour: a namespace given for a cluster-scoped kind is ignored.
        if self.SCOPE is Scope.CLUSTER and self.metadata.namespace is not None:
            self.metadata.namespace = None
        return self

    @classmethod
    def namespaced(cls) -> bool:
        """True for namespaced kinds."""
        return cls.SCOPE is Scope.NAMESPACED

    def clone(self: _R) -> _R:
        """An independent deep copy. ``model_copy(deep=True)`` walks the object with Python's
        ``deepcopy``; dumping and re-validating runs in pydantic-core, several times faster."""
        return type(self).model_validate(self.model_dump(by_alias=True))

    def stored_form(self: _R) -> _R:
        """The object in the form the store keeps it (kinds whose admission rewrites fields,
        such as Secret's ``stringData``, override this); the apply engine compares manifests
        with live objects in this form, so an unchanged manifest never looks changed."""
        return self

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict stored in etcd and served by the API (camelCase, no None)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
