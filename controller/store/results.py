"""What the object store returns besides objects: lists, invalid values, transaction extras.

Where it sits: beside ``controller.store.objects``; the informer, the API server and the
reconcilers read these shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from api_types.meta import Resource
from controller.errors import FieldCause, InvalidObjectError
from controller.store.keys import ObjectKey

__all__ = [
    "InvalidValue",
    "ObjectList",
    "StatusWrite",
    "TxnExtras",
    "refuse_added_finalizers_while_deleting",
    "spec_part",
]

R = TypeVar("R", bound=Resource)

_ENVELOPE = ("apiVersion", "kind", "metadata", "status")


def spec_part(wire: dict[str, Any]) -> dict[str, Any]:
    """Everything a user declares: the wire object minus envelope and status."""
    return {k: v for k, v in wire.items() if k not in _ENVELOPE}


@dataclass(frozen=True)
class InvalidValue:
    """A stored value that does not decode or validate (typically a bad direct write)."""

    key: ObjectKey
    mod_revision: int
    causes: tuple[FieldCause, ...]


@dataclass(frozen=True)
class ObjectList(Generic[R]):
    """One list answer: the valid items, the revision it was read at, the invalid values seen."""
    items: list[R]
    resource_version: int
    invalid: list[InvalidValue] = field(default_factory=list)
    #: Opaque continuation for paged lists: the last key returned (None = complete).
    continue_after: bytes | None = None


@dataclass(frozen=True)
class StatusWrite:
    """Write ``obj``'s status in another write's transaction, by CAS on ``obj``'s
    resourceVersion; ``actor`` signs its history record (see ``status_writes``)."""

    obj: Resource
    actor: str


@dataclass(frozen=True)
class TxnExtras:
    """More to run atomically with a write: raw compares and operations (a leadership fence),
    and status writes of other objects through the store (a quota reservation)."""

    compares: Sequence[Any] = ()
    operations: Sequence[Any] = ()
    status_writes: Sequence[StatusWrite] = ()


def refuse_added_finalizers_while_deleting(
    key: ObjectKey, base_metadata: dict[str, Any], new_metadata: dict[str, Any]
) -> None:
    """A finalizer may not be added once deletion started (it could hold the object forever)."""
    if not base_metadata.get("deletionTimestamp"):
        return
    added = set(new_metadata.get("finalizers", [])) - set(base_metadata.get("finalizers", []))
    if added:
        raise InvalidObjectError(
            f"{key} is being deleted",
            (FieldCause("metadata.finalizers", f"cannot add {sorted(added)} now"),),
        )
