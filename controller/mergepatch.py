"""JSON merge patch (RFC 7386), the one implementation the API server and skyctl share.

Where it sits: under ``apiserver.handlers`` (PATCH with
``application/merge-patch+json``) and ``skyctl`` (``apply`` computes a patch with its
three-way merge and applies it to the live object to write the result; ``patch`` sends one).
"""

from __future__ import annotations

from typing import Any

__all__ = ["merge_patch"]


def merge_patch(target: Any, patch: Any) -> Any:
    """``patch`` applied to ``target``: objects merge recursively, ``null`` deletes, anything
    else replaces. ``target`` is not changed: every object the patch touches is a new dict,
    and sub-objects it leaves alone are shared with ``target``."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
