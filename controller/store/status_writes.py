"""Status writes: the value one stores, its history record, and writes that ride along.

Where it sits: inside ``controller.store.objects.Store``. ``Store.update_status`` computes the
value it puts with :func:`status_value` and its history record with :func:`status_record`. A
``StatusWrite`` (``controller.store.results``) named in ``TxnExtras.status_writes`` is prepared
the same way and sent in the transaction of another write (the API server reserves quota so:
the Quota's ``status.used`` rides with the create of the Instance that uses it) — a CAS on its
own resourceVersion, its own history record, remembered by the store as its own write once the
transaction committed (a :class:`Rider`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from controller.errors import FieldCause, InvalidObjectError
from controller.store.history import HistoryRecord, diff_fields, status_changes
from controller.store.keys import ObjectKey
from controller.store.results import refuse_added_finalizers_while_deleting

__all__ = ["Rider", "status_record", "status_value"]


@dataclass(frozen=True)
class Rider:
    """A :class:`StatusWrite` prepared by the store: what it adds to the transaction, and what
    to remember once it committed at a revision (None: it changes nothing, only compares)."""

    compares: Sequence[Any]
    operations: Sequence[Any]
    committed: Callable[[int], None] | None = None


def _without_version(metadata: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metadata.items() if k != "resourceVersion"}


def status_value(
    key: ObjectKey, base: dict[str, Any], wire: dict[str, Any], *, with_finalizers: bool
) -> dict[str, Any] | None:
    """The value a status write of ``wire`` over the stored ``base`` puts: ``base`` with the
    status of ``wire`` (and its finalizers if asked: only added, never once deletion started);
    None when that changes nothing."""
    new_status = wire.get("status", {})
    new = dict(base)
    new["metadata"] = _without_version(base["metadata"])
    if with_finalizers:
        new["metadata"]["finalizers"] = wire["metadata"].get("finalizers", [])
        refuse_added_finalizers_while_deleting(key, base["metadata"], new["metadata"])
        if set(base["metadata"].get("finalizers", [])) - set(new["metadata"]["finalizers"]):
            cause = FieldCause("metadata.finalizers", "only added here; remove by update")
            raise InvalidObjectError(f"{key}: finalizers removed by a status write", (cause,))
    if base.get("status", {}) == new_status and new["metadata"] == _without_version(
        base["metadata"]
    ):
        return None
    new["status"] = new_status
    return new


def status_record(
    base: dict[str, Any],
    new: dict[str, Any],
    actor: str,
    now: datetime,
    request_id: str | None = None,
    *,
    every_field: bool = False,
) -> HistoryRecord | None:
    """The history record of the status write ``base`` → ``new``: its phase and condition
    transitions, or with ``every_field`` every status field it changes (a write riding along
    records what the other write caused, e.g. a reservation); None when there is none."""
    before, after = base.get("status", {}), new["status"]
    changes = diff_fields(before, after, "status") if every_field else status_changes(before, after)
    if not changes:
        return None
    generation = new["metadata"].get("generation")
    return HistoryRecord("StatusChanged", actor, now, generation, tuple(changes), request_id)
