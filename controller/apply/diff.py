"""Diff: what an apply would change, as a unified diff of the live and the merged object.

Where it sits: beside the plan step of the apply engine (decode → prepare → **plan** → …),
writing nothing: skyctl's ``diff -f`` and a GitSource's plan show the same text. Status and
server bookkeeping are left out, so only what apply manages is compared.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable, Iterable
from typing import Any

import yaml

from controller.apply.backend import Backend, Wire
from controller.apply.plan import UNCHANGED, Change, get_or_none, plan_change
from controller.apply.prepare import SERVER_METADATA, Target

__all__ = ["diff_all", "unified_diff"]


def _comparable(obj: Wire | None) -> str:
    """YAML of what apply manages, for diffing: no status, no server bookkeeping."""
    if obj is None:
        return ""
    shown = copy.deepcopy(obj)
    shown.pop("status", None)
    metadata = shown.get("metadata") or {}
    for server_field in SERVER_METADATA:
        metadata.pop(server_field, None)
    return yaml.safe_dump(shown, sort_keys=True, default_flow_style=False)


def unified_diff(change: Change) -> str:
    """``live/…`` against ``merged/…`` for one change ("" when unchanged)."""
    if change.action == UNCHANGED:
        return ""
    target = change.target
    label = f"{target.info.plural}.{target.namespace or ''}.{target.name}".replace("..", ".")
    return "".join(
        difflib.unified_diff(
            _comparable(change.live).splitlines(keepends=True),
            _comparable(change.obj).splitlines(keepends=True),
            fromfile=f"live/{label}",
            tofile=f"merged/{label}",
        )
    )


def diff_all(backend: Backend, targets: Iterable[Target], write: Callable[[str], Any]) -> bool:
    """Write a unified diff per target whose apply would change something; True if any."""
    changed = False
    for target in targets:
        change = plan_change(target, get_or_none(backend, target))
        if change.action != UNCHANGED:
            changed = True
            write(unified_diff(change))
    return changed
