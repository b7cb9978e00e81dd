"""The verbs of skyctl that talk to a backend: apply, create, diff, delete, wait, events,
history, auth can-i, version — and what every verb shares: the :class:`Session`, how KIND
words are read (``skyctl.kinds``: short names, ``KIND/NAME``, comma lists), durations.

Where it sits: between the argument parser (``skyctl.main``) and the backends. Each
verb takes a :class:`Session` — the backend plus the resolved namespace and output streams —
and the parsed arguments, and returns the exit code (``0`` ok, ``1`` failure or a negative
answer; usage errors are :class:`UsageError`, exit ``2``). API failures propagate as
``ApiError`` and are printed once, by ``main``. ``get`` and ``describe`` are in
``skyctl.getting``; ``patch``, ``label``, ``annotate`` and ``edit`` in
``skyctl.edits``.

``wait --for`` takes ``delete``, ``condition=TYPE[=STATUS]`` (a condition computed for an older
generation does not count) or ``jsonpath='{.path}'[=VALUE]`` (met when one of the path's values
prints as VALUE; without a value, when the path has a non-empty value).
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
from api_types.accesskeys import AccessKey
from api_types.registry import KindInfo
from controller.apply.manifests import load_manifests
from controller.errors import SkybrokerError
from controller.labels import LabelSelector, SelectorError
from skyctl import apply as applying
from skyctl.accesskeys import create_access_key
from skyctl.backend import ApiError, Backend
from skyctl.describe import format_history, object_events
from skyctl.jsonpath import JsonPathError, Template, format_value
from skyctl.kinds import UnknownKind, resolve_kind, resolve_kinds
from skyctl.output import Output, format_groups

__all__ = ["VERBS", "Session", "UsageError", "parse_duration", "poll_until"]

Wire = dict[str, Any]

_POLL_START, _POLL_MAX = 0.1, 1.0
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class UsageError(SkybrokerError, ValueError):
    """The command line is wrong (exit code 2)."""


@dataclass
class Session:
    """What every verb runs with: the backend, the namespace choice and the output streams."""
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
    for cause in error.causes:
        err.write(f"  {cause.field or '<object>'}: {cause.message}\n")


def parse_duration(text: str) -> float:
    """``30s``, ``2m``, ``1h``, ``500ms`` or plain seconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise UsageError(f"invalid duration {text!r} (use e.g. 30s, 5m, 1h)")
    return float(match[1]) * _UNITS[match[2]]


def kind_info(name: str) -> KindInfo:
    try:
        return resolve_kind(name)
    except UnknownKind as exc:
        raise UsageError(str(exc)) from None


def require_kind(kind: str | None) -> str:
    if not kind:
        raise UsageError(
            "a KIND is required, e.g. skyctl get instances (skyctl api-resources lists the kinds)"
        )
    return kind


def kind_and_names(kind: str | None, names: list[str]) -> tuple[KindInfo, list[str]]:
    """``KIND NAME…`` or ``KIND/NAME``."""
    kind = require_kind(kind)
    if "/" in kind:
        kind, name = kind.split("/", 1)
        return kind_info(kind), [name, *names]
    return kind_info(kind), names


def kind_groups(kind: str | None, names: list[str]) -> list[tuple[KindInfo, list[str]]]:
    """``get``'s words: ``KIND[,KIND…] [NAME…]`` (``all`` and short names too) or
    ``KIND/NAME…``; each kind with the names asked for (none = every object)."""
    words = [require_kind(kind), *names]
    if any("/" in word for word in words):
        groups: dict[KindInfo, list[str]] = {}
        for word in words:
            kind_name, slash, name = word.partition("/")
            if not slash or not name:
                raise UsageError(f"{word!r}: when one argument is KIND/NAME, all must be")
            groups.setdefault(kind_info(kind_name), []).append(name)
        return list(groups.items())
    try:
        kinds = resolve_kinds(words[0])
    except UnknownKind as exc:
        raise UsageError(str(exc)) from None
    return [(info, list(names)) for info in kinds]


def _selector(text: str | None) -> str | None:
    try:
        LabelSelector.parse(text)
    except SelectorError as exc:
        raise UsageError(str(exc)) from None
    return text


def _targets(session: Session, args: argparse.Namespace) -> list[applying.Target]:
    manifests = load_manifests(args.filename, recursive=args.recursive, stdin=session.stdin)
    return [applying.prepare(m, session.namespace, session.forced_namespace) for m in manifests]


def dry_run(args: argparse.Namespace) -> bool:
    """``--dry-run`` in either form; ``client`` also wrapped the backend (``main``)."""
    return getattr(args, "dry_run", None) is not None


def cmd_apply(session: Session, args: argparse.Namespace) -> int:
    if args.prune and not args.selector:
        raise UsageError("--prune needs -l/--selector: only objects matching it are pruned")
    targets = _targets(session, args)
    failures = applying.apply_all(
        session.backend, targets, dry_run=dry_run(args), report=session.say, fail=session.warn
    )
    if args.prune and not failures:
        applying.prune(
            session.backend,
            targets,
            _selector(args.selector) or "",
            session.namespace,
            dry_run=dry_run(args),
            report=session.say,
        )
    return 1 if failures else 0


def cmd_create(session: Session, args: argparse.Namespace) -> int:
    """Create every object of the manifests; one that exists is an error (unlike apply).
    ``create accesskey NAME …`` creates an access key instead (:func:`create_accesskey`)."""
    if args.kind:
        if args.filename:
            raise UsageError("give either -f FILE or accesskey NAME, not both")
        return create_accesskey(session, args)
    if not args.filename:
        raise UsageError("create needs -f FILE, or accesskey NAME --user U --namespace NS")
    if args.user or args.groups:
        raise UsageError("--user and --group belong to create accesskey NAME")
    suffix = " (dry run)" if dry_run(args) else ""
    failures = 0
    for target in _targets(session, args):
        try:
            session.backend.create(target.created, dry_run=dry_run(args))
        except ApiError as exc:
            exc.message = f"{target.ref}: {exc.message}"
            session.warn(exc)
            failures += 1
            continue
        session.say(f"{target.ref} created{suffix}")
    return 1 if failures else 0


def create_accesskey(session: Session, args: argparse.Namespace) -> int:
    """``create accesskey NAME --user U [--group G…] --namespace NS``: prints exactly two
    lines, ``accessKeyId: …`` and ``secretAccessKey: …`` — the only time the secret is shown
    (``skyctl.accesskeys``); a dry run prints what would be created, and no secret."""
    info, names = kind_and_names(args.kind, args.names)
    if info.kind != AccessKey.KIND:
        raise UsageError(
            f"create takes -f FILE; only accesskey is created by name, not {args.kind}"
        )
    if len(names) != 1:
        raise UsageError("create accesskey needs exactly one NAME")
    if not args.user:
        raise UsageError("create accesskey needs --user USER: the user its requests act as")
    if not session.forced_namespace:
        raise UsageError("create accesskey needs --namespace NS: the namespace it acts in")
    created = create_access_key(
        session.backend,
        names[0],
        user=args.user,
        groups=list(args.groups),
        namespace=session.forced_namespace,
        dry_run=dry_run(args),
    )
    if dry_run(args):
        session.say(f"{applying.resource_ref(info, created.name)} created (dry run)")
        return 0
    session.say(f"accessKeyId: {created.access_key_id}")
    session.say(f"secretAccessKey: {created.secret_access_key}")
    return 0


def cmd_diff(session: Session, args: argparse.Namespace) -> int:
    changed = applying.diff_all(session.backend, _targets(session, args), session.out.write)
    return 1 if changed else 0


def poll_until(timeout: float, check: Callable[[], bool]) -> bool:
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
    suffix = " (dry run)" if dry_run(args) else ""
    failures = 0
    for info, namespace, name in refs:
        try:
            session.backend.delete(info, namespace, name, dry_run=dry_run(args))
        except ApiError as exc:
            if exc.not_found and args.ignore_not_found:
                continue
            exc.message = f"{applying.resource_ref(info, name)}: {exc.message}"
            session.warn(exc)
            failures += 1
            continue
        session.say(f"{applying.resource_ref(info, name)} deleted{suffix}")
    if args.wait and not dry_run(args):
        timeout = parse_duration(args.timeout)
        for info, namespace, name in refs:
            if not poll_until(timeout, _gone(session.backend, info, namespace, name)):
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


def _jsonpath_wait(spec: str) -> tuple[Template, str | None]:
    """``{.status.phase}=Running`` (or ``.status.phase=Running``; without ``=VALUE``: the
    field exists and is not empty)."""
    if spec.startswith("{"):
        end = spec.find("}")
        expression, rest = spec[: end + 1], spec[end + 1 :]
        if end < 0 or (rest and not rest.startswith("=")):
            raise UsageError("--for=jsonpath='{.path}'=VALUE")
        wanted = rest[1:] if rest else None
    else:
        path, equals, value = spec.partition("=")
        expression, wanted = "{" + path + "}", value if equals else None
    try:
        return Template.parse(expression), wanted
    except JsonPathError as exc:
        raise UsageError(f"--for=jsonpath: {exc}") from None


def _jsonpath_met(obj: Wire, template: Template, wanted: str | None) -> bool:
    values = [format_value(value) for value in template.results(obj) if value is not None]
    if wanted is None:
        return any(values)
    return wanted in values


def _wait_check(
    session: Session, info: KindInfo, name: str, spec: str
) -> tuple[Callable[[], bool], str]:
    """What ``--for`` waits for: a check to poll and what to say when it holds."""
    namespace = session.namespace_for(info)
    if spec == "delete":
        return _gone(session.backend, info, namespace, name), "deleted"
    test: Callable[[Wire], bool]
    if spec.startswith("condition="):
        type_, _, wanted = spec[len("condition=") :].partition("=")
        if not type_:
            raise UsageError("--for=condition=TYPE[=STATUS]")
        test, met = (lambda obj: _condition_met(obj, type_, wanted or "True")), "condition met"
    elif spec.startswith("jsonpath="):
        template, value = _jsonpath_wait(spec[len("jsonpath=") :])
        test, met = (lambda obj: _jsonpath_met(obj, template, value)), "condition met"
    else:
        raise UsageError(
            "--for must be delete, condition=TYPE[=STATUS] or jsonpath='{.path}'[=VALUE]"
        )

    def check() -> bool:
        try:
            obj = session.backend.get(info, namespace, name)
        except ApiError as exc:
            if exc.not_found:  # created a moment later by a script: keep waiting
                return False
            raise
        return test(obj)

    return check, met


def cmd_wait(session: Session, args: argparse.Namespace) -> int:
    info, names = kind_and_names(args.kind, args.names)
    if not names:
        raise UsageError("wait needs KIND/NAME")
    timeout = parse_duration(args.timeout)
    for name in names:
        check, met = _wait_check(session, info, name, args.for_)
        if not poll_until(timeout, check):
            ref = applying.resource_ref(info, name)
            session.err.write(f"error: timed out waiting for the condition on {ref}\n")
            return 1
        session.say(f"{applying.resource_ref(info, name)} {met}")
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
    output: Output = args.output or Output()
    session.out.write(format_groups([(info, events)], output, namespaces=session.all_namespaces))
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


def _server_version(server: Any) -> str:
    """The API server's ``gitVersion``; in the ``--etcd`` admin mode, there is none."""
    if isinstance(server, dict):
        if server.get("gitVersion"):
            return str(server["gitVersion"])
        if server.get("store"):
            return f"none (--etcd admin mode on {server['store']})"
        return json.dumps(server)
    return str(server)


def cmd_version(session: Session, args: argparse.Namespace) -> int:
    versions = session.backend.version()
    session.say(f"Client Version: {versions['client']}")
    session.say(f"Server Version: {_server_version(versions['server'])}")
    return 0


VERBS: dict[str, Callable[[Session, argparse.Namespace], int]] = {
    "apply": cmd_apply,
    "create": cmd_create,
    "diff": cmd_diff,
    "delete": cmd_delete,
    "wait": cmd_wait,
    "events": cmd_events,
    "history": cmd_history,
    "can-i": cmd_can_i,
    "version": cmd_version,
}
