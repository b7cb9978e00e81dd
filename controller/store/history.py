"""History records: the durable, append-only account of what changed on an object.

Where it sits: the object store writes one record in the same etcd transaction as every spec
change, every phase or condition transition and every deletion step, under
``{prefix}/history/{plural}/{namespace}/{name}/{sequence}``. A record's true revision is the
``mod_revision`` of its key, which equals the object's resourceVersion after that write.
Records are bounded per object by ``trim`` (run periodically by the manager).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "HistoryRecord",
    "condition_transitions",
    "diff_fields",
    "status_changes",
]

_SKIP = object()


@dataclass(frozen=True)
class HistoryRecord:
    """One change. ``changes`` lists {path, before, after}; ``revision`` is filled on read."""

    action: str  # Created | SpecChanged | StatusChanged | DeletionRequested | Deleted
    actor: str
    time: datetime
    generation: int | None
    changes: tuple[dict[str, Any], ...] = ()
    request_id: str | None = None
    revision: int = 0

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "action": self.action,
            "actor": self.actor,
            "time": self.time.isoformat(),
            "generation": self.generation,
            "changes": list(self.changes),
        }
        if self.request_id:
            wire["requestId"] = self.request_id
        return wire

    @classmethod
    def from_wire(cls, wire: dict[str, Any], revision: int) -> HistoryRecord:
        return cls(
            action=str(wire.get("action", "")),
            actor=str(wire.get("actor", "")),
            time=datetime.fromisoformat(str(wire.get("time"))),
            generation=wire.get("generation"),
            changes=tuple(wire.get("changes") or ()),
            request_id=wire.get("requestId"),
            revision=revision,
        )


def diff_fields(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    """Leaf-level differences between two JSON values, as {path, before, after}."""
    if isinstance(before, dict) and isinstance(after, dict):
        changes: list[dict[str, Any]] = []
        for key in sorted(set(before) | set(after)):
            child = f"{path}.{key}" if path else str(key)
            changes.extend(diff_fields(before.get(key, _SKIP), after.get(key, _SKIP), child))
        return changes
    if before == after:
        return []
    return [
        {
            "path": path,
            "before": None if before is _SKIP else before,
            "after": None if after is _SKIP else after,
        }
    ]


def condition_transitions(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """Changes of a condition's status or reason (a new message alone is no transition)."""

    def summary(status: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        return {
            str(c.get("type")): (c.get("status"), c.get("reason"))
            for c in status.get("conditions") or []
            if isinstance(c, dict)
        }

    old, new = summary(before), summary(after)
    changes = []
    for type_ in sorted(set(old) | set(new)):
        if old.get(type_) != new.get(type_):
            changes.append(
                {
                    "path": f"status.conditions[{type_}]",
                    "before": _condition_text(old.get(type_)),
                    "after": _condition_text(new.get(type_)),
                }
            )
    return changes


def _condition_text(value: tuple[Any, Any] | None) -> str | None:
    if value is None:
        return None
    status, reason = value
    return f"{status} ({reason})" if reason else str(status)


def status_changes(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """The changes worth a history record: phase and condition transitions."""
    changes = []
    if before.get("phase") != after.get("phase"):
        changes.append(
            {"path": "status.phase", "before": before.get("phase"), "after": after.get("phase")}
        )
    changes.extend(condition_transitions(before, after))
    return changes
