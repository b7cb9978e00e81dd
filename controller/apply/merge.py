"""Three-way merge for ``apply``: what to change on the live object, as a JSON merge patch.

Where it sits: the pure heart of the plan step of the apply engine
(``controller.apply.plan``; no I/O, unit-tested alone). Like
``kubectl apply``, it compares three versions of an object:

- ``desired``: the manifest being applied (normalised by its model, so a default the server
  fills in compares equal to the same default implied by the manifest);
- ``live``: what the server holds, including fields other writers own (a controller's
  finalizers, labels added by another tool) — those are kept;
- ``last``: the manifest applied the previous time (the ``last-applied`` annotation): a field
  that was there and is no longer in ``desired`` was removed by the user, so it is deleted.

Maps merge key by key; lists are replaced whole (JSON merge patch semantics, RFC 7386).
The patch is empty exactly when applying would change nothing — then nothing is written;
``controller.mergepatch.merge_patch`` applies it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["three_way_patch"]

_MISSING = object()


def three_way_patch(last: Any, desired: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
    """The merge patch that brings ``live`` to ``desired`` and drops what ``last`` had.

    ``desired`` holds no None values (models serialise without them), so a None in the patch
    always means "delete this field".
    """
    previous = last if isinstance(last, dict) else {}
    patch: dict[str, Any] = {}
    for key, want in desired.items():
        have = live.get(key, _MISSING)
        if isinstance(want, dict) and isinstance(have, dict):
            nested = three_way_patch(previous.get(key), want, have)
            if nested:
                patch[key] = nested
        elif have is _MISSING or have != want:
            patch[key] = want
    for key in previous:
        if key not in desired and key in live:
            patch[key] = None
    return patch
