"""``skyctl sync gitsource/NAME [--wait] [--timeout 5m]``: sync a GitSource now (DESIGN §9),
like ``flux reconcile``.

Where it sits: a verb beside ``skyctl.edits`` (same :class:`~skyctl.commands.Session`, either
backend). It writes the "sync now" request of ``api_types.gitops`` — a JSON merge patch of the
GitSource's ``gitops.skybroker.io/requested-at`` annotation, set to the current time (RFC 3339)
— so it is an update of the GitSource's metadata, authorised by RBAC like ``skyctl annotate``.
With ``--wait`` it polls the GitSource until the reconciler has echoed that value into
``status.lastHandledRequest`` and is no longer ``Reconciling`` (a GitSource with ``wait: true``
stays Reconciling while what it applied becomes healthy, one with dependencies while they are
not Ready), then prints the Ready condition: exit 0 if Ready is True, 1
otherwise, and 1 with a message on timeout. Any other kind is a usage error (exit 2).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from api_types.gitops import REQUESTED_AT_ANNOTATION, GitSource, GitSourceCondition
from api_types.registry import KindInfo
from skyctl.backend import ApiError
from skyctl.commands import Session, UsageError, kind_and_names, parse_duration, poll_until

__all__ = ["VERBS"]

Wire = dict[str, Any]


def _gitsource(args: argparse.Namespace) -> tuple[KindInfo, str]:
    info, names = kind_and_names(args.kind, args.names)
    if info.kind != GitSource.KIND:
        raise UsageError(f"only a GitSource can be synced (gitsource/NAME), not a {info.kind}")
    if len(names) != 1:
        raise UsageError("sync needs exactly one GitSource: gitsource/NAME or gs NAME")
    return info, names[0]


class _Handled:
    """The check ``--wait`` polls: has the reconciler handled ``request`` and finished with it?
    Keeps the GitSource it last read, whose Ready condition is the answer."""

    def __init__(self, session: Session, info: KindInfo, name: str, request: str) -> None:
        self.session, self.info, self.name, self.request = session, info, name, request
        self.source: Wire = {}

    def __call__(self) -> bool:
        namespace = self.session.namespace_for(self.info)
        try:
            self.source = self.session.backend.get(self.info, namespace, self.name)
        except ApiError as exc:
            if exc.not_found:
                raise ApiError(404, "NotFound", f"gitsource/{self.name} was deleted") from None
            raise
        status = self.source.get("status") or {}
        reconciling = any(
            condition.get("type") == GitSourceCondition.RECONCILING
            and condition.get("status") == "True"
            for condition in status.get("conditions") or []
        )
        return status.get("lastHandledRequest") == self.request and not reconciling


def _ready(source: Wire) -> tuple[bool, str]:
    """(Ready is True, the Ready condition in one line)."""
    for condition in (source.get("status") or {}).get("conditions") or []:
        if condition.get("type") == GitSourceCondition.READY:
            status = str(condition.get("status"))
            words = [f"Ready={status}", condition.get("reason"), condition.get("message")]
            return status == "True", ": ".join(str(word) for word in words if word)
    return False, "Ready=Unknown: no Ready condition yet"


def cmd_sync(session: Session, args: argparse.Namespace) -> int:
    info, name = _gitsource(args)
    timeout = parse_duration(args.timeout)
    request = datetime.now(UTC).isoformat()
    patch = {"metadata": {"annotations": {REQUESTED_AT_ANNOTATION: request}}}
    session.backend.patch(info, session.namespace_for(info), name, patch, dry_run=False)
    session.say(f"gitsource/{name} sync requested")
    if not args.wait:
        return 0
    handled = _Handled(session, info, name, request)
    if not poll_until(timeout, handled):
        session.err.write(
            f"error: timed out after {args.timeout} waiting for gitsource/{name} to sync "
            f"(status.lastHandledRequest is not {request})\n"
        )
        return 1
    ready, line = _ready(handled.source)
    session.say(f"gitsource/{name} {line}")
    return 0 if ready else 1


VERBS = {"sync": cmd_sync}
