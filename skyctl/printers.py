"""Tables of ``get`` and friends: kubectl-like plain columns, ``-o wide``, ``--show-labels``.

Where it sits: the last step of the read verbs (the other ``-o`` formats are
``skyctl.output``'s). Tables have one row per object and columns chosen per kind
(``NAME`` first, ``NAMESPACE`` before it across namespaces, ``AGE`` last, ``LABELS`` after it
with ``--show-labels``; events have no NAME or AGE, as in kubectl, and their MESSAGE last);
``wide`` adds the columns that make a line long (placement details, provider ids). Columns are
read from wire dicts with dotted paths, so a missing field prints ``<none>`` instead of failing.

Columns line up: a :class:`TableLayout` fixes the widths from the header and the first rows,
and ``get -w`` keeps using it for every row it streams afterwards. A wide text column (an
event's MESSAGE) is cut to the terminal's width, except with ``-o wide`` or into a pipe.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from api_types.registry import KindInfo

__all__ = ["TableLayout", "age", "lookup_path", "render_table", "table_rows", "terminal_width"]

Wire = dict[str, Any]

NONE = "<none>"
#: Kinds whose NAME is a generated hash nobody types, and whose time column says when.
_WITHOUT_NAME_AND_AGE = frozenset({"Event"})
#: Headers of free-text columns cut to the terminal's width (they come last in their table).
_CUT_TO_FIT = frozenset({"MESSAGE"})
_SEPARATOR = "   "
_MIN_CUT_WIDTH = 20


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
    """One column of ``get`` output: header, how to read it, whether only ``-o wide`` shows it."""
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
        _path("AGENT", "status.agent.state", wide=True),
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
    "GitSource": [
        _path("URL", "spec.url"),
        _path("REVISION", "status.artifact.revision"),
        _READY,
        _path("APPLIED", "status.lastAppliedRevision", wide=True),
        Column("SUSPENDED", lambda obj: bool(lookup_path(obj, "spec.suspend")), wide=True),
    ],
    "VirtualCluster": [
        _path("POOL", "spec.pool"),
        Column("MEMBERS", lambda obj: _members(obj)),
        _READY,
        Column("PLACEMENT", lambda obj: _condition(obj, "PlacementSatisfied"), wide=True),
    ],
    "BootConfig": [
        Column("DYNAMIC", lambda obj: bool(lookup_path(obj, "spec.dynamic"))),
        Column("SLOTS", lambda obj: lookup_path(obj, "spec.slots") or 0),
        Column("CLAIMED", lambda obj: lookup_path(obj, "status.claimed") or 0),
        _path("REVISION", "status.revision"),  # <none> until the reconciler has seen it
    ],
    "Namespace": [_PHASE],
    # Never the secret: an AccessKey only names its Secret (secretRef), shown with -o wide.
    "AccessKey": [
        _path("ID", "spec.accessKeyId"),
        _path("USER", "spec.user"),
        _path("NAMESPACE", "spec.namespace"),
        Column("DISABLED", lambda obj: bool(lookup_path(obj, "spec.disabled"))),
        _path("SECRET", "spec.secretRef.name", wide=True),
    ],
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
        _path("MESSAGE", "message"),  # last: the one column cut to fit
    ],
}


def _used(obj: Wire, field: str) -> str:
    used = lookup_path(obj, f"status.used.{field}")
    hard = lookup_path(obj, f"spec.hard.{field}")
    return f"{used or 0}/{NONE if hard is None else hard}"


def _members(obj: Wire) -> str:
    """A VirtualCluster's members as ``name:ready/replicas``: ``lb:2/2,db:1/2``."""
    counts = lookup_path(obj, "status.members") or {}
    shown = []
    for member in lookup_path(obj, "spec.members") or []:
        if isinstance(member, dict):
            name = member.get("name")
            ready = lookup_path(counts, f"{name}.ready") if isinstance(name, str) else None
            shown.append(f"{name}:{ready or 0}/{member.get('replicas', 0)}")
    return ",".join(shown)


def _role(obj: Wire) -> str:
    return f"{lookup_path(obj, 'roleRef.kind')}/{lookup_path(obj, 'roleRef.name')}"


def _involved(obj: Wire) -> str:
    return f"{lookup_path(obj, 'involvedObject.kind')}/{lookup_path(obj, 'involvedObject.name')}"


def _cell(value: Any) -> str:
    if value is None or value == "":
        return NONE
    return str(value)


def terminal_width() -> int | None:
    """Columns of the terminal (``$COLUMNS`` first); None when output goes to a pipe or a
    file: what reads it there gets whole lines (``skyctl events | grep …``)."""
    if not os.environ.get("COLUMNS") and not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size().columns


@dataclass(frozen=True)
class TableLayout:
    """Column widths fixed once, so rows printed later (``get -w``) line up with the first.

    ``cut`` is the index of a column cut to keep lines within ``max_width`` (None: no cut).
    A later cell wider than its column still prints whole and pushes the rest of its row.
    """

    widths: tuple[int, ...]
    cut: int | None = None

    @classmethod
    def fit(
        cls, rows: Sequence[Sequence[str]], *, max_width: int | None = None, cut: int | None = None
    ) -> TableLayout:
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        if max_width is None or cut is None:
            return cls(tuple(widths))
        excess = sum(widths) + len(_SEPARATOR) * (len(widths) - 1) - max_width
        if excess > 0:
            widths[cut] = max(_MIN_CUT_WIDTH, widths[cut] - excess, len(rows[0][cut]))
        return cls(tuple(widths), cut)

    def line(self, row: Sequence[str]) -> str:
        cells = list(row)
        if self.cut is not None and len(cells[self.cut]) > self.widths[self.cut]:
            cells[self.cut] = cells[self.cut][: self.widths[self.cut] - 1] + "…"
        return _SEPARATOR.join(
            cell.ljust(width) for cell, width in zip(cells, self.widths, strict=True)
        ).rstrip()


def render_table(rows: Sequence[Sequence[str]], *, fit: bool = False) -> str:
    """Left-aligned columns separated by three spaces, kubectl's layout. With ``fit``, a
    free-text column (MESSAGE) is cut so that lines stay within the terminal's width."""
    if not rows:
        return ""
    layout = table_layout(rows, fit=fit)
    return "".join(layout.line(row) + "\n" for row in rows)


def table_layout(rows: Sequence[Sequence[str]], *, fit: bool) -> TableLayout:
    """The layout of ``rows`` (the header first); see :func:`render_table`."""
    cut = next((i for i, header in enumerate(rows[0]) if header in _CUT_TO_FIT), None)
    return TableLayout.fit(rows, max_width=terminal_width() if fit else None, cut=cut)


def _labels(metadata: Wire) -> str:
    labels = metadata.get("labels") or {}
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items())) or NONE


def table_rows(
    info: KindInfo,
    objects: Sequence[Wire],
    *,
    wide: bool,
    namespaces: bool,
    header: bool = True,
    labels: bool = False,
    name: Callable[[str], str] = str,
) -> list[list[str]]:
    """The header (unless ``header`` is false) and a row per object. ``labels`` adds LABELS
    (``--show-labels``); ``name`` shows a name (``kind.group/name`` when kinds are mixed)."""
    columns = [c for c in _COLUMNS.get(info.kind, []) if wide or not c.wide]
    name_and_age = info.kind not in _WITHOUT_NAME_AND_AGE
    rows: list[list[str]] = []
    if header:
        rows.append(
            (["NAMESPACE"] if namespaces else [])
            + (["NAME"] if name_and_age else [])
            + [c.header for c in columns]
            + (["AGE"] if name_and_age else [])
            + (["LABELS"] if labels else [])
        )
    for obj in objects:
        metadata = obj.get("metadata") or {}
        row = [_cell(metadata.get("namespace"))] if namespaces else []
        if name_and_age:
            row.append(name(_cell(metadata.get("name"))))
        row.extend(_cell(column.value(obj)) for column in columns)
        if name_and_age:
            row.append(age(metadata.get("creationTimestamp")))
        if labels:
            row.append(_labels(metadata))
        rows.append(row)
    return rows
