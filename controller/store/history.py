"""History records: the durable, append-only account of what changed on an object.

Where it sits: the object store writes one record in the same etcd transaction as every spec
change, every phase or condition transition and every deletion step, under
``{prefix}/history/{plural}/{namespace}/{name}/{sequence}``. A record's true revision is the
``mod_revision`` of its key, which equals the object's resourceVersion after that write.
Records are bounded per object by ``trim`` (run periodically by the manager).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from controller.store.codec import DecodeError, decode_value
from controller.store.etcd import EtcdClient
from controller.store.keys import KeyLayout, ObjectKey

__all__ = [
    "HistoryRecord",
    "condition_transitions",
    "diff_fields",
    "read_history",
    "status_changes",
    "trim_history",
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

    def redacted(self) -> HistoryRecord:
        """The record with every before/after value replaced (for Secrets)."""
        hidden = {"before", "after"}
        changes = tuple(
            {key: "(redacted)" if key in hidden else value for key, value in change.items()}
            for change in self.changes
        )
        return dataclasses.replace(self, changes=changes)

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


def read_history(client: EtcdClient, layout: KeyLayout, key: ObjectKey) -> list[HistoryRecord]:
    """An object's records, oldest first (by the revision of each record)."""
    records = []
    for kv in client.range_prefix(layout.history_prefix(key))[0]:
        try:
            records.append(HistoryRecord.from_wire(decode_value(kv.value), int(kv.mod_revision)))
        except (DecodeError, ValueError):
            continue
    return sorted(records, key=lambda record: record.revision)


def trim_history(client: EtcdClient, layout: KeyLayout, limit: int) -> int:
    """Keep the newest ``limit`` records per object; returns how many were deleted."""
    deleted = 0
    current_object: bytes | None = None
    keys: list[bytes] = []

    def flush() -> int:
        excess = keys[:-limit] if len(keys) > limit else []
        if excess:
            client.delete_range(excess[0], excess[-1] + b"\0")
        return len(excess)

    for kv in client.range_prefix(layout.history_root)[0]:
        record_key = bytes(kv.key)
        owner = record_key.rsplit(b"/", 1)[0]
        if owner != current_object:
            deleted += flush()
            current_object, keys = owner, []
        keys.append(record_key)
    return deleted + flush()
