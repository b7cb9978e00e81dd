"""``apply``, ``diff`` and ``--prune`` for skyctl: the apply engine (``controller.apply``) per
document, with skyctl's report lines.

Where it sits: called by ``skyctl.commands`` with manifests from
``controller.apply.manifests`` and a ``Backend`` (the REST API or the store). Each manifest
is prepared, then applied on its own (``apply_one``: created / configured / unchanged, nothing
written when unchanged); a failure is reported and the next one applied. ``--prune -l SEL``
then deletes the objects matching the selector that apply created and that are no longer in
the applied set. ``diff`` plans without writing and shows live vs. merged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from controller.apply import (
    LAST_APPLIED,
    ApiError,
    Backend,
    Target,
    applied_objects,
    apply_one,
    decide,
    diff_all,
    prepare,
    resource_ref,
)
from controller.apply import prune as prune_candidates

__all__ = [
    "LAST_APPLIED",
    "Target",
    "apply_all",
    "decide",
    "diff_all",
    "prepare",
    "prune",
    "resource_ref",
]


def apply_all(
    backend: Backend,
    targets: Iterable[Target],
    *,
    dry_run: bool,
    report: Callable[[str], None],
    fail: Callable[[ApiError], None],
) -> int:
    """Apply every target, reporting each outcome; returns the number of failures."""
    suffix = " (dry run)" if dry_run else ""
    failures = 0
    for target in targets:
        try:
            report(f"{target.ref} {apply_one(backend, target, dry_run=dry_run)}{suffix}")
        except ApiError as exc:
            exc.message = f"{target.ref}: {exc.message}"
            fail(exc)
            failures += 1
    return failures


def prune(
    backend: Backend,
    targets: list[Target],
    selector: str,
    default_namespace: str,
    *,
    dry_run: bool,
    report: Callable[[str], None],
) -> None:
    """Delete applied objects matching ``selector`` that are not among ``targets``."""
    namespaces = sorted({t.namespace for t in targets if t.namespace}) or [default_namespace]
    prune_candidates(
        backend,
        applied_objects(backend, selector, namespaces),
        {target.key for target in targets},
        dry_run=dry_run,
        report=report,
    )
