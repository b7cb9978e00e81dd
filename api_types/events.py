"""Event: a Kubernetes-like note about an object (reason, message, Normal/Warning, count).

Where it sits: pure data written by the event recorder of the controller runtime under
``{prefix}/events/{namespace}/{name}`` with an etcd lease (default TTL 24 h), aggregated by
(involved object, reason) with ``count`` and first/last timestamps. No status.

``involvedObject`` is deliberately lax (any non-empty kind and name): events also describe
objects that failed validation — a manifest written straight into etcd with a bad name still
gets a Warning event naming its key and the errors. Timestamps are not cross-checked either
(recorders on different hosts may disagree slightly about the time).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field

from api_types.common import PositiveInt
from api_types.meta import Resource, Scope, WireEnum, WireModel

__all__ = [
    "Event",
    "EventSource",
    "EventType",
    "InvolvedObject",
]


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


class InvolvedObject(WireModel):
    """The object an event is about."""

    kind: str = Field(min_length=1, description="Kind of the object.")
    namespace: str | None = Field(None, description="Namespace; absent for cluster-scoped.")
    name: str = Field(min_length=1, description="Name of the object (or its etcd key).")
    uid: str | None = Field(None, description="UID of the object, when known.")
    api_version: str | None = Field(None, description="apiVersion of the object.")
    resource_version: str | None = Field(None, description="resourceVersion the event refers to.")
    field_path: str | None = Field(None, description="Part of the object concerned.")


class EventSource(WireModel):
    """Who reported the event."""

    component: str = Field("", description="Reporting component, e.g. instance-controller.")
    host: str | None = Field(None, description="Host the component runs on.")


class Event(Resource):
    """Something that happened to an object, for humans (``skyctl events``/``describe``)."""

    KIND: ClassVar[str] = "Event"
    PLURAL: ClassVar[str] = "events"
    SCOPE: ClassVar[Scope] = Scope.NAMESPACED
    HAS_STATUS: ClassVar[bool] = False

    kind: Literal["Event"] = Field("Event", description="Event.")
    involved_object: InvolvedObject = Field(description="The object the event is about.")
    reason: str = Field(
        min_length=1, max_length=256, description="Short CamelCase reason, e.g. Scheduled."
    )
    message: str = Field("", description="Human-readable description.")
    type: WireEnum[EventType] = Field(EventType.NORMAL, description="Normal or Warning.")
    count: PositiveInt = Field(1, description="How many times it happened (aggregated).")
    first_timestamp: datetime | None = Field(None, description="First occurrence.")
    last_timestamp: datetime | None = Field(None, description="Latest occurrence.")
    source: EventSource = Field(default_factory=EventSource, description="Who reported it.")
