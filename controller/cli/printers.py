"""Output of ``get`` and friends: kubectl-like plain tables, ``-o wide``, ``-o yaml|json``.

Where it sits: the last step of the read verbs. Tables have one row per object and columns
chosen per kind (``NAME`` first, ``NAMESPACE`` before it across namespaces, ``AGE`` last);
``wide`` adds the columns that make a line long (placement details, provider ids). Columns are
read from wire dicts with dotted paths, so a missing field prints ``<none>`` instead of failing.
``yaml``/``json`` print the objects as served, several of them wrapped in a ``List`` (which
``skyctl apply`` accepts back).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml

from api_types.meta import API_VERSION
from api_types.registry import KindInfo

__all__ = ["age", "format_objects", "lookup_path", "render_table", "table_rows"]

Wire = dict[str, Any]

NONE = "<none>"


def lookup_path(obj: Any, path: str) -> Any:
    """``obj`` at a dotted path (``status.placement.account``); None when any step is missing."""
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def age(timestamp: Any, now: datetime | None = None) -> str:
    """kubectl's compact age: ``45s``, ``12m``, ``5h``, ``3d``."""
    if not timestamp:
        return NONE
    try:
        then = datetime.fromisoformat(str(timestamp))
    except ValueError:
        return NONE
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    seconds = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "d" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _condition(obj: Wire, type_: str) -> str:
    for condition in lookup_path(obj, "status.conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == type_:
            return str(condition.get("status", NONE))
    return NONE


def _pool_or_account(obj: Wire) -> Any:
    return lookup_path(obj, "spec.pool") or lookup_path(obj, "spec.account")


def _addresses(obj: Wire) -> str:
    found = [a.get("address") for a in lookup_path(obj, "status.addresses") or []]
    return ",".join(str(a) for a in found if a) or NONE


def _range(value: Any) -> str:
    if isinstance(value, dict):
        low, high = value.get("min"), value.get("max")
        return f"{low or ''}-{high or ''}" if low != high else str(low)
    return NONE if value is None else str(value)


@dataclass(frozen=True)
class Column:
    header: str
    value: Callable[[Wire], Any]
    wide: bool = False


def _path(header: str, path: str, wide: bool = False) -> Column:
    return Column(header, lambda obj: lookup_path(obj, path), wide)


_PHASE = _path("PHASE", "status.phase")
_READY = Column("READY", lambda obj: _condition(obj, "Ready"))
_COLUMNS: dict[str, list[Column]] = {
    "Instance": [
        Column("POOL", _pool_or_account),
        _PHASE,
        _path("ACCOUNT", "status.placement.account"),
        _path("ZONE", "status.placement.zone", wide=True),
        _path("SIZE", "status.placement.size", wide=True),
        _path("PROVIDER-ID", "status.providerID", wide=True),
        Column("ADDRESSES", _addresses, wide=True),
    ],
    "Subnet": [
        Column("POOL", _pool_or_account),
        _path("CIDR", "spec.cidr"),
        _PHASE,
        _path("ACCOUNT", "status.placement.account", wide=True),
        _path("ZONE", "status.placement.zone", wide=True),
        _path("PROVIDER-ID", "status.providerID", wide=True),
    ],
    "Volume": [
        Column("POOL", _pool_or_account),
        _path("SIZE-GIB", "spec.sizeGiB"),
        _PHASE,
        _path("ATTACHED-TO", "status.attachedTo.instance"),
        _path("ACCOUNT", "status.placement.account", wide=True),
        _path("PROVIDER-ID", "status.providerID", wide=True),
    ],
    "Firewall": [
        Column("RULES", lambda obj: len(lookup_path(obj, "spec.rules") or [])),
        Column("REALISED", lambda obj: len(lookup_path(obj, "status.realisations") or [])),
        _READY,
    ],
    "ProviderAccount": [
        _path("DRIVER", "spec.driver"),
        _path("REGION", "spec.region"),
        _READY,
        _path("ENDPOINT", "spec.endpoint", wide=True),
        _path("INSTANCES", "status.managedResources.instances", wide=True),
    ],
    "Pool": [
        _path("POLICY", "spec.policy.type"),
        Column("MEMBERS", lambda obj: len(lookup_path(obj, "spec.members") or [])),
        _READY,
    ],
    "HardwareProfile": [
        Column("CPU", lambda obj: _range(lookup_path(obj, "spec.cpu"))),
        Column("MEMORY-MIB", lambda obj: _range(lookup_path(obj, "spec.memoryMiB"))),
        Column("DISK-GIB", lambda obj: _range(lookup_path(obj, "spec.diskGiB")), wide=True),
    ],
    "Quota": [
        Column("INSTANCES", lambda obj: _used(obj, "instances")),
        Column("CPU", lambda obj: _used(obj, "cpu")),
        Column("MEMORY-MIB", lambda obj: _used(obj, "memoryMiB"), wide=True),
        Column("VOLUMES", lambda obj: _used(obj, "volumes"), wide=True),
        Column("VOLUME-GIB", lambda obj: _used(obj, "volumeGiB"), wide=True),
    ],
    "Namespace": [_PHASE],
    "Secret": [
        _path("TYPE", "type"),
        Column("DATA", lambda obj: len(obj.get("data") or {})),
    ],
    "RoleBinding": [Column("ROLE", lambda obj: _role(obj))],
    "ClusterRoleBinding": [Column("ROLE", lambda obj: _role(obj))],
    "Event": [
        Column("LAST-SEEN", lambda obj: age(obj.get("lastTimestamp"))),
        _path("TYPE", "type"),
        _path("REASON", "reason"),
        Column("OBJECT", lambda obj: _involved(obj)),
        _path("COUNT", "count", wide=True),
        _path("MESSAGE", "message"),
    ],
}


def _used(obj: Wire, field: str) -> str:
    used = lookup_path(obj, f"status.used.{field}")
    hard = lookup_path(obj, f"spec.hard.{field}")
    return f"{used or 0}/{NONE if hard is None else hard}"


def _role(obj: Wire) -> str:
    return f"{lookup_path(obj, 'roleRef.kind')}/{lookup_path(obj, 'roleRef.name')}"


def _involved(obj: Wire) -> str:
    return f"{lookup_path(obj, 'involvedObject.kind')}/{lookup_path(obj, 'involvedObject.name')}"


def _cell(value: Any) -> str:
    if value is None or value == "":
        return NONE
    return str(value)


def render_table(rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by three spaces, kubectl's layout."""
    if not rows:
        return ""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return "\n".join(lines) + "\n"


def table_rows(
    info: KindInfo, objects: Sequence[Wire], *, wide: bool, namespaces: bool, header: bool = True
) -> list[list[str]]:
    columns = [c for c in _COLUMNS.get(info.kind, []) if wide or not c.wide]
    rows: list[list[str]] = []
    if header:
        rows.append(
            (["NAMESPACE"] if namespaces else []) + ["NAME"] + [c.header for c in columns] + ["AGE"]
        )
    for obj in objects:
        metadata = obj.get("metadata") or {}
        row = [_cell(metadata.get("namespace"))] if namespaces else []
        row.append(_cell(metadata.get("name")))
        row.extend(_cell(column.value(obj)) for column in columns)
        row.append(age(metadata.get("creationTimestamp")))
        rows.append(row)
    return rows


def format_objects(
    info: KindInfo, objects: Sequence[Wire], output: str | None, *, namespaces: bool, single: bool
) -> str:
    """Objects as ``output`` (None = table, ``wide``, ``yaml``, ``json``, ``name``)."""
    if output in ("yaml", "json"):
        document: Any = (
            objects[0]
            if single and objects
            else {"apiVersion": API_VERSION, "kind": "List", "items": list(objects)}
        )
        if output == "json":
            return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        return str(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    if output == "name":
        return "".join(
            f"{info.kind.lower()}.skybroker.io/{(o.get('metadata') or {}).get('name')}\n"
            for o in objects
        )
    return render_table(table_rows(info, objects, wide=output == "wide", namespaces=namespaces))
