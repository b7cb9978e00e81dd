"""The GitOps verbs (DESIGN §9): ``skyctl sync gitsource/NAME [--wait] [--timeout 5m]`` syncs a
GitSource now, like ``flux reconcile``; ``skyctl diff --gitsource NAME [--revision REF]`` shows
the plan of a revision.

Where it sits: a verb beside ``skyctl.edits`` (same :class:`~skyctl.commands.Session`, either
backend). It writes the "sync now" request of ``api_types.gitops`` — a JSON merge patch of the
GitSource's ``gitops.skybroker.io/requested-at`` annotation, set to the current time (RFC 3339)
— so it is an update of the GitSource's metadata, authorised by RBAC like ``skyctl annotate``.
With ``--wait`` it polls the GitSource until the reconciler has echoed that value into
``status.lastHandledRequest`` and is no longer ``Reconciling`` (a GitSource with ``wait: true``
stays Reconciling while what it applied becomes healthy, one with dependencies while they are
not Ready), then prints the Ready condition: exit 0 if Ready is True, 1
otherwise, and 1 with a message on timeout. Any other kind is a usage error (exit 2).

``diff --gitsource`` asks the GitSource's reconciler — it runs where the clouds' catalogues and
the scheduler are — for a plan the same way: it patches ``gitops.skybroker.io/plan-requested-at``
(and ``plan-revision``: REF, or removed for ``spec.ref``), polls until ``status.plan.request``
answers it, and prints the plan — creates (each new Instance with the member it would be placed
on, its size and hourly price, or why it could not be placed now), updates with the fields and
the unified diff, prunes. Exit 0 if the revision changes nothing, 1 if it changes something or
cannot be applied (the file, document and field on stderr); nothing of the revision is
written. ``diff -f FILE`` stays the apply engine's diff (``skyctl.commands``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from api_types.gitops import (
    PLAN_REQUESTED_AT_ANNOTATION,
    PLAN_REVISION_ANNOTATION,
    REQUESTED_AT_ANNOTATION,
    GitRef,
    GitSource,
    GitSourceCondition,
)
from api_types.registry import KindInfo
from skyctl.backend import ApiError
from skyctl.commands import VERBS as COMMAND_VERBS
from skyctl.commands import (
    Session,
    UsageError,
    kind_and_names,
    kind_info,
    parse_duration,
    poll_until,
)

__all__ = ["VERBS"]

Wire = dict[str, Any]


def _gitsource(args: argparse.Namespace) -> tuple[KindInfo, str]:
    info, names = kind_and_names(args.kind, args.names)
    if info.kind != GitSource.KIND:
        raise UsageError(f"only a GitSource can be synced (gitsource/NAME), not a {info.kind}")
    if len(names) != 1:
        raise UsageError("sync needs exactly one GitSource: gitsource/NAME or gs NAME")
    return info, names[0]


class _Answered:
    """What ``--wait`` and ``diff --gitsource`` poll: has the reconciler answered the request
    (``answered(status)``)? Keeps the GitSource it last read, whose status is the answer."""

    def __init__(
        self, session: Session, info: KindInfo, name: str, answered: Callable[[Wire], bool]
    ) -> None:
        self.session, self.info, self.name, self.answered = session, info, name, answered
        self.source: Wire = {}

    @property
    def status(self) -> Wire:
        return self.source.get("status") or {}

    def __call__(self) -> bool:
        namespace = self.session.namespace_for(self.info)
        try:
            self.source = self.session.backend.get(self.info, namespace, self.name)
        except ApiError as exc:
            if exc.not_found:
                raise ApiError(404, "NotFound", f"gitsource/{self.name} was deleted") from None
            raise
        return self.answered(self.status)


def _synced(request: str) -> Callable[[Wire], bool]:
    """The sync ``request`` is handled and the GitSource no longer Reconciling (with ``wait:
    true``, until what it applied is healthy)."""

    def check(status: Wire) -> bool:
        reconciling = any(
            condition.get("type") == GitSourceCondition.RECONCILING
            and condition.get("status") == "True"
            for condition in status.get("conditions") or []
        )
        return status.get("lastHandledRequest") == request and not reconciling

    return check


def _planned(request: str) -> Callable[[Wire], bool]:
    """The plan ``request`` is answered in ``status.plan``."""
    return lambda status: (status.get("plan") or {}).get("request") == request


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
    handled = _Answered(session, info, name, _synced(request))
    if not poll_until(timeout, handled):
        session.err.write(
            f"error: timed out after {args.timeout} waiting for gitsource/{name} to sync "
            f"(status.lastHandledRequest is not {request})\n"
        )
        return 1
    ready, line = _ready(handled.source)
    session.say(f"gitsource/{name} {line}")
    return 0 if ready else 1


def _where(placement: Wire) -> str:
    member = placement.get("member")
    zone = placement.get("zone") or "zone at creation"
    place = f"{placement.get('region')}/{zone}"
    on = (
        f"member {member} (account {placement['account']}, {place})"
        if member
        else (f"account {placement['account']} ({place})")
    )
    price = placement.get("pricePerHour")
    cost = f", ${price:.4f}/h" if isinstance(price, int | float) else ", price unknown"
    return f"{on}, size {placement.get('size') or 'unknown'}{cost}"


def _change_line(change: Wire) -> str:
    sign = {"Create": "+", "Update": "~", "Prune": "-"}.get(str(change.get("action")), "?")
    namespace = change.get("namespace")
    line = f"{sign} {change.get('kind')} {namespace + '/' if namespace else ''}{change.get('name')}"
    if change.get("placement"):
        line += f" → {_where(change['placement'])}"
    elif change.get("unplaced"):
        line += f" → not placeable now: {change['unplaced']}"
    elif change.get("fields"):
        line += f": {', '.join(change['fields'])}"
    return line


def print_plan(session: Session, name: str, plan: Wire) -> int:
    """Print a GitSource's ``status.plan``; 0 if it changes nothing, else 1."""
    if plan.get("error"):
        at = f" at {plan['revision']}" if plan.get("revision") else ""
        session.err.write(f"error: gitsource/{name}{at} cannot be applied: {plan['error']}\n")
        return 1
    changes: list[Wire] = plan.get("changes") or []
    counts = {action: 0 for action in ("Create", "Update", "Prune")}
    for change in changes:
        counts[str(change.get("action"))] = counts.get(str(change.get("action")), 0) + 1
    session.say(
        f"gitsource/{name} plan for {plan.get('revision')}: {counts['Create']} to create, "
        f"{counts['Update']} to update, {counts['Prune']} to prune, "
        f"{plan.get('unchanged', 0)} unchanged (nothing written)"
    )
    for change in changes:
        session.say(_change_line(change))
        if change.get("diff"):
            session.out.write(change["diff"])
    if plan.get("omitted"):
        session.say(f"… and {plan['omitted']} more changes (the plan lists at most {len(changes)})")
    return 1 if changes or plan.get("omitted") else 0


def cmd_diff(session: Session, args: argparse.Namespace) -> int:
    """``diff -f FILE`` (the apply engine's diff), or ``diff --gitsource NAME [--revision]``:
    ask the GitSource's reconciler for the plan of a revision and print it."""
    if args.gitsource is None:
        if args.revision is not None:
            raise UsageError("--revision goes with --gitsource NAME")
        if not args.filename:
            raise UsageError("diff needs -f FILE or --gitsource NAME")
        return COMMAND_VERBS["diff"](session, args)
    if args.filename:
        raise UsageError("give either -f FILE or --gitsource NAME, not both")
    if args.revision is not None:
        try:
            GitRef.parse(args.revision)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    info = kind_info(GitSource.KIND)
    name = args.gitsource
    timeout = parse_duration(args.timeout)
    request = datetime.now(UTC).isoformat()
    annotations = {PLAN_REQUESTED_AT_ANNOTATION: request, PLAN_REVISION_ANNOTATION: args.revision}
    patch = {"metadata": {"annotations": annotations}}
    session.backend.patch(info, session.namespace_for(info), name, patch, dry_run=False)
    planned = _Answered(session, info, name, _planned(request))
    if not poll_until(timeout, planned):
        session.err.write(
            f"error: timed out after {args.timeout} waiting for gitsource/{name}'s plan "
            f"(status.plan.request is not {request}): is the controller running?\n"
        )
        return 1
    return print_plan(session, name, planned.status["plan"])


VERBS = {"sync": cmd_sync, "diff": cmd_diff}
