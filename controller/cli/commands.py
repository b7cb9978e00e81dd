"""The verbs of skyctl that talk to a backend: apply, diff, get, describe, delete, wait, events,
history, auth can-i, version.

Where it sits: between the argument parser (``controller.cli.main``) and the backends. Each
verb takes a :class:`Session` — the backend plus the resolved namespace and output streams —
and the parsed arguments, and returns the exit code (``0`` ok, ``1`` failure or a negative
answer; usage errors are :class:`UsageError`, exit ``2``). API failures propagate as
``ApiError`` and are printed once, by ``main``.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import yaml

from api_types import registry
from api_types.registry import KindInfo
from controller.cli import apply as applying
from controller.cli.backend import ApiError, Backend, WatchEvent
from controller.cli.describe import describe, format_history, object_events
from controller.cli.follow import Follower, Selection
from controller.cli.manifests import load_manifests
from controller.cli.printers import format_objects, render_table, table_rows
from controller.labels import LabelSelector, SelectorError

__all__ = ["VERBS", "Session", "UsageError", "parse_duration"]

Wire = dict[str, Any]

_POLL_START, _POLL_MAX = 0.1, 1.0
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class UsageError(ValueError):
    """The command line is wrong (exit code 2)."""


@dataclass
class Session:
    backend: Backend
    namespace: str  # -n, else the context's, else "default"
    forced_namespace: str | None  # -n as given, to check manifests against
    all_namespaces: bool
    out: IO[str]
    err: IO[str]
    stdin: IO[bytes] | None = None

    def say(self, text: str) -> None:
        self.out.write(text if text.endswith("\n") else text + "\n")
        self.out.flush()

    def warn(self, error: ApiError) -> None:
        report_error(self.err, error)

    def namespace_for(self, info: KindInfo) -> str | None:
        return self.namespace if info.namespaced else None


def report_error(err: IO[str], error: ApiError) -> None:
    """The Status message, then one line per offending field, on stderr."""
    err.write(f"error: {error.message}\n")
    for field, message in error.causes:
        err.write(f"  {field or '<object>'}: {message}\n")


def parse_duration(text: str) -> float:
    """``30s``, ``2m``, ``1h``, ``500ms`` or plain seconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise UsageError(f"invalid duration {text!r} (use e.g. 30s, 5m, 1h)")
    return float(match[1]) * _UNITS[match[2]]


def kind_info(name: str) -> KindInfo:
    try:
        return registry.lookup(name)
    except registry.UnknownKindError as exc:
        raise UsageError(str(exc)) from None


def kind_and_names(kind: str, names: list[str]) -> tuple[KindInfo, list[str]]:
    """``KIND NAME…`` or ``KIND/NAME``."""
    if "/" in kind:
        kind, name = kind.split("/", 1)
        return kind_info(kind), [name, *names]
    return kind_info(kind), names


def _selector(text: str | None) -> str | None:
    try:
        LabelSelector.parse(text)
    except SelectorError as exc:
        raise UsageError(str(exc)) from None
    return text


def _targets(session: Session, args: argparse.Namespace) -> list[applying.Target]:
    manifests = load_manifests(args.filename, recursive=args.recursive, stdin=session.stdin)
    return [applying.prepare(m, session.namespace, session.forced_namespace) for m in manifests]


def cmd_apply(session: Session, args: argparse.Namespace) -> int:
    if args.prune and not args.selector:
        raise UsageError("--prune needs -l/--selector: only objects matching it are pruned")
    targets = _targets(session, args)
    failures = applying.apply_all(
        session.backend, targets, dry_run=args.dry_run, report=session.say, fail=session.warn
    )
    if args.prune and not failures:
        applying.prune(
            session.backend,
            targets,
            _selector(args.selector) or "",
            session.namespace,
            dry_run=args.dry_run,
            report=session.say,
        )
    return 1 if failures else 0


def cmd_diff(session: Session, args: argparse.Namespace) -> int:
    changed = applying.diff_all(session.backend, _targets(session, args), session.out.write)
    return 1 if changed else 0


@dataclass(frozen=True)
class _WatchPrinter:
    """One line (or YAML document) per event; ``typed`` (``--output-watch-events``) names the
    event type on every one — ``{"type", "object"}`` in JSON/YAML, an EVENT column in tables —
    else only DELETED rows of a table are marked."""

    session: Session
    info: KindInfo
    output: str | None
    namespaces: bool
    typed: bool

    def header(self) -> None:
        if self.output not in ("yaml", "json"):
            rows = table_rows(self.info, [], wide=self.output == "wide", namespaces=self.namespaces)
            self.session.say(f"{'EVENT':<9} " + render_table(rows))

    def __call__(self, event: WatchEvent) -> None:
        if self.output in ("yaml", "json"):
            document = {"type": event.type, "object": event.object} if self.typed else event.object
            self.session.say(
                json.dumps(document, ensure_ascii=False)
                if self.output == "json"
                else "---\n" + yaml.safe_dump(document, sort_keys=False)
            )
            return
        row = table_rows(
            self.info,
            [event.object],
            wide=self.output == "wide",
            namespaces=self.namespaces,
            header=False,
        )
        prefix = f"{event.type:<9} " if self.typed or event.type == "DELETED" else ""
        self.session.say(prefix + render_table(row))


def _selection(args: argparse.Namespace, names: list[str]) -> Selection:
    try:
        return Selection.parse(args.selector, args.field_selector, names)
    except ValueError as exc:  # SelectorError is one too
        raise UsageError(str(exc)) from None


def cmd_get(session: Session, args: argparse.Namespace) -> int:
    info, names = kind_and_names(args.kind, args.names)
    selection = _selection(args, names)
    all_namespaces = session.all_namespaces and info.namespaced
    namespace = None if all_namespaces else session.namespace_for(info)
    output = args.output
    if names:
        objects = [session.backend.get(info, namespace, name) for name in names]
        resource_version = str(max(int(o["metadata"].get("resourceVersion") or 0) for o in objects))
    else:
        listed = session.backend.list(
            info, namespace, selection.label_text, fields=selection.field_text
        )
        objects, resource_version = listed.items, listed.resource_version
    # Lists come narrowed; named gets do not (nor lists from a server older than fieldSelector).
    objects = [obj for obj in objects if selection.matches(obj)]
    if not objects and not args.watch:
        where = "any namespace" if all_namespaces or not info.namespaced else namespace
        session.err.write(f"No resources found in {where}.\n")
        return 0
    show = _WatchPrinter(session, info, output, all_namespaces, args.output_watch_events)
    if args.watch and show.typed:  # the objects listed first are events too: ADDED
        show.header()
        for obj in objects:
            show(WatchEvent("ADDED", obj))
    else:
        session.out.write(
            format_objects(info, objects, output, namespaces=all_namespaces, single=len(names) == 1)
        )
        session.out.flush()
    if not args.watch:
        return 0
    follower = Follower(
        session.backend,
        info,
        namespace,
        selection,
        objects,
        resource_version,
        warn=lambda text: session.err.write(f"warning: {text}\n"),
    )
    for event in follower:
        show(event)
    return 0


def cmd_describe(session: Session, args: argparse.Namespace) -> int:
    info, names = kind_and_names(args.kind, args.names)
    if not names:
        raise UsageError("describe needs a NAME (KIND NAME or KIND/NAME)")
    for index, name in enumerate(names):
        if index:
            session.out.write("\n")
        session.out.write(describe(session.backend, info, session.namespace_for(info), name))
    return 0


def _until(timeout: float, check: Callable[[], bool]) -> bool:
    """Poll ``check`` with a growing interval until it holds or ``timeout`` passes.

    Polling, not a watch: it behaves the same over both backends and needs no stream that
    must itself time out; the interval stays short (≤ 1 s) so scripts wait little extra.
    """
    deadline = time.monotonic() + timeout
    interval = _POLL_START
    while True:
        if check():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(interval, remaining))
        interval = min(interval * 2, _POLL_MAX)


def _gone(backend: Backend, info: KindInfo, namespace: str | None, name: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            backend.get(info, namespace, name)
        except ApiError as exc:
            if exc.not_found:
                return True
            raise
        return False

    return check


def cmd_delete(session: Session, args: argparse.Namespace) -> int:
    refs: list[tuple[KindInfo, str | None, str]] = []
    if args.filename:
        if args.kind:
            raise UsageError("give either KIND NAME… or -f FILE, not both")
        refs = [(t.info, t.namespace, t.name) for t in _targets(session, args)]
    elif args.kind:
        info, names = kind_and_names(args.kind, args.names)
        if not names:
            raise UsageError("delete needs a NAME (KIND NAME or KIND/NAME) or -f FILE")
        refs = [(info, session.namespace_for(info), name) for name in names]
    else:
        raise UsageError("delete needs KIND NAME… or -f FILE")
    suffix = " (dry run)" if args.dry_run else ""
    failures = 0
    for info, namespace, name in refs:
        try:
            session.backend.delete(info, namespace, name, dry_run=args.dry_run)
        except ApiError as exc:
            if exc.not_found and args.ignore_not_found:
                continue
            exc.message = f"{applying.resource_ref(info, name)}: {exc.message}"
            session.warn(exc)
            failures += 1
            continue
        session.say(f"{applying.resource_ref(info, name)} deleted{suffix}")
    if args.wait and not args.dry_run:
        timeout = parse_duration(args.timeout)
        for info, namespace, name in refs:
            if not _until(timeout, _gone(session.backend, info, namespace, name)):
                session.err.write(
                    f"error: timed out waiting for {applying.resource_ref(info, name)} to go\n"
                )
                failures += 1
    return 1 if failures else 0


def _condition_met(obj: Wire, type_: str, wanted: str) -> bool:
    metadata = obj.get("metadata") or {}
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") != type_:
            continue
        observed = condition.get("observedGeneration")
        # A condition computed from an older spec says nothing about the current one.
        stale = observed is not None and observed < (metadata.get("generation") or 0)
        return not stale and str(condition.get("status")).lower() == wanted.lower()
    return False


def cmd_wait(session: Session, args: argparse.Namespace) -> int:
    info, names = kind_and_names(args.kind, args.names)
    if not names:
        raise UsageError("wait needs KIND/NAME")
    timeout = parse_duration(args.timeout)
    spec = args.for_
    for name in names:
        ref = applying.resource_ref(info, name)
        if spec == "delete":
            check = _gone(session.backend, info, session.namespace_for(info), name)
            met = "deleted"
        elif spec.startswith("condition="):
            type_, _, wanted = spec[len("condition=") :].partition("=")
            if not type_:
                raise UsageError("--for=condition=TYPE[=STATUS]")
            met = "condition met"

            def check(type_: str = type_, wanted: str = wanted or "True", name: str = name) -> bool:
                try:
                    obj = session.backend.get(info, session.namespace_for(info), name)
                except ApiError as exc:
                    if exc.not_found:  # created a moment later by a script: keep waiting
                        return False
                    raise
                return _condition_met(obj, type_, wanted)
        else:
            raise UsageError("--for must be delete or condition=TYPE[=STATUS]")
        if not _until(timeout, check):
            session.err.write(f"error: timed out waiting for the condition on {ref}\n")
            return 1
        session.say(f"{ref} {met}")
    return 0


def cmd_events(session: Session, args: argparse.Namespace) -> int:
    info = registry.by_kind("Event")
    if args.object:
        about, names = kind_and_names(args.object, [])
        if len(names) != 1:
            raise UsageError("events --for needs KIND/NAME")
        events = object_events(session.backend, about, session.namespace_for(about), names[0])
    else:
        namespace = None if session.all_namespaces else session.namespace
        listed = session.backend.list(info, namespace, None).items
        events = sorted(listed, key=lambda e: str(e.get("lastTimestamp") or ""))
    if not events:
        session.err.write("No events found.\n")
        return 0
    session.out.write(
        format_objects(info, events, args.output, namespaces=session.all_namespaces, single=False)
    )
    return 0


def cmd_history(session: Session, args: argparse.Namespace) -> int:
    info, names = kind_and_names(args.kind, args.names)
    if len(names) != 1:
        raise UsageError("history needs KIND/NAME")
    records = session.backend.history(info, session.namespace_for(info), names[0])
    if args.output == "json":
        session.say(json.dumps(records, indent=2, ensure_ascii=False))
    elif args.output == "yaml":
        session.say(yaml.safe_dump(records, sort_keys=False))
    else:
        session.out.write(format_history(records))
    return 0


def cmd_can_i(session: Session, args: argparse.Namespace) -> int:
    info = kind_info(args.kind)
    allowed, reason = session.backend.can_i(args.verb_to_check, info, session.namespace_for(info))
    session.say("yes" if allowed else "no")
    if reason:
        session.err.write(f"{reason}\n")
    return 0 if allowed else 1


def cmd_version(session: Session, args: argparse.Namespace) -> int:
    versions = session.backend.version()
    session.say(f"Client Version: {versions['client']}")
    server = versions["server"]
    session.say(f"Server Version: {json.dumps(server) if isinstance(server, dict) else server}")
    return 0


VERBS: dict[str, Callable[[Session, argparse.Namespace], int]] = {
    "apply": cmd_apply,
    "diff": cmd_diff,
    "get": cmd_get,
    "describe": cmd_describe,
    "delete": cmd_delete,
    "wait": cmd_wait,
    "events": cmd_events,
    "history": cmd_history,
    "can-i": cmd_can_i,
    "version": cmd_version,
}
