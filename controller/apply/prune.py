"""Prune: delete what was applied before and is no longer in the applied set.

Where it sits: the last step of the apply engine (decode → prepare → plan → write →
**prune**). Two ways of finding the candidates, one way of deleting them (:func:`prune`):

- skyctl's ``apply --prune -l SEL`` lists every kind by the selector and takes the objects
  that carry the :data:`~controller.apply.prepare.LAST_APPLIED` annotation, in registry order
  (:func:`applied_objects`);
- the GitOps mode reads the objects it applied last time (its inventory) and orders them with
  :func:`in_prune_order`: the reverse of :data:`~api_types.registry.APPLY_ORDER`, and without
  those annotated :data:`~api_types.registry.PRUNE_ANNOTATION`:
  :data:`~api_types.registry.PRUNE_DISABLED`, which are never pruned.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass

from api_types import registry
from api_types.registry import KindInfo
from controller.apply.backend import Backend, Wire
from controller.apply.prepare import LAST_APPLIED, ObjectKey, resource_ref
from controller.errors import ApiError

__all__ = ["LiveObject", "applied_objects", "in_prune_order", "live_objects", "prune"]


@dataclass(frozen=True)
class LiveObject:
    """An object as the backend holds it, with its kind."""

    info: KindInfo
    obj: Wire

    @property
    def metadata(self) -> Wire:
        metadata: Wire = self.obj.get("metadata") or {}
        return metadata

    @property
    def key(self) -> ObjectKey:
        return (self.info.kind, self.metadata.get("namespace"), str(self.metadata.get("name")))


def applied_objects(backend: Backend, selector: str, namespaces: list[str]) -> Iterator[LiveObject]:
    """Objects of every kind (but Event) in ``namespaces`` matching ``selector`` that apply
    created; kinds the user may not list are skipped (they cannot be theirs)."""
    for info in registry.all_kinds():
        if info.kind == "Event":
            continue
        for namespace in namespaces if info.namespaced else [None]:
            try:
                listed = backend.list(info, namespace, selector).items
            except ApiError as exc:
                if exc.code == 403:
                    continue
                raise
            for obj in listed:
                if LAST_APPLIED in ((obj.get("metadata") or {}).get("annotations") or {}):
                    yield LiveObject(info, obj)


def live_objects(backend: Backend, keys: Iterable[ObjectKey]) -> Iterator[LiveObject]:
    """The objects of ``keys`` that still exist (an inventory read back)."""
    for kind, namespace, name in keys:
        info = registry.by_kind(kind)
        try:
            yield LiveObject(info, backend.get(info, namespace, name))
        except ApiError as exc:
            if not exc.not_found:
                raise


def in_prune_order(objects: Iterable[LiveObject]) -> list[LiveObject]:
    """``objects`` in reverse apply order (stable), without those whose prune is disabled."""
    kept = [
        live
        for live in objects
        if (live.metadata.get("annotations") or {}).get(registry.PRUNE_ANNOTATION)
        != registry.PRUNE_DISABLED
    ]
    return sorted(kept, key=lambda live: -registry.apply_rank(live.info.kind))


def prune(
    backend: Backend,
    candidates: Iterable[LiveObject],
    keep: Collection[ObjectKey],
    *,
    dry_run: bool,
    report: Callable[[str], None],
) -> list[LiveObject]:
    """Delete, in the order given, each candidate not in ``keep`` and not already being
    deleted; reports ``<ref> pruned`` for each and returns them."""
    suffix = " (dry run)" if dry_run else ""
    pruned = []
    for live in candidates:
        if live.key in keep or live.metadata.get("deletionTimestamp"):
            continue
        _, namespace, name = live.key
        backend.delete(live.info, namespace, name, dry_run=dry_run)
        report(f"{resource_ref(live.info, name)} pruned{suffix}")
        pruned.append(live)
    return pruned
