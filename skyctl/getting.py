"""``get`` and ``describe``: the read verbs over one or several kinds.

Where it sits: beside ``skyctl.commands`` (same :class:`Session`, exit codes and kind
resolution). ``get`` takes what kubectl takes — ``KIND[,KIND…] [NAME…]`` (short names and
``all`` included), or ``KIND/NAME…`` — reads each kind (by name, or a list narrowed by the
label and field selectors), and prints them through ``skyctl.output``. A name that is
not found is reported on stderr after the others were printed (exit 1), as kubectl does.
``-w`` follows one kind through ``skyctl.follow``, its rows in the columns of the
first table. ``describe KIND`` without a name describes every object of the kind (``-l``
narrows it).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from api_types.registry import KindInfo
from skyctl.backend import ApiError
from skyctl.commands import Session, UsageError, kind_and_names, kind_groups
from skyctl.describe import describe
from skyctl.follow import Follower, Selection
from skyctl.output import Output, StreamPrinter, format_groups

__all__ = ["VERBS"]

Wire = dict[str, Any]


def _selection(args: argparse.Namespace, names: list[str]) -> Selection:
    try:
        return Selection.parse(args.selector, getattr(args, "field_selector", None), names)
    except ValueError as exc:  # SelectorError is one too
        raise UsageError(str(exc)) from None


def _read(
    session: Session, info: KindInfo, namespace: str | None, names: list[str], selection: Selection
) -> tuple[list[Wire], str, int]:
    """The objects of one kind (named ones that exist), the revision a watch resumes from,
    and how many names were not found (each reported on stderr)."""
    if not names:
        listed = session.backend.list(
            info, namespace, selection.label_text, fields=selection.field_text
        )
        return [o for o in listed.items if selection.matches(o)], listed.resource_version, 0
    found: list[Wire] = []
    for name in names:
        try:
            found.append(session.backend.get(info, namespace, name))
        except ApiError as exc:
            if not exc.not_found:
                raise
            session.warn(exc)
    revision = max((int(o["metadata"].get("resourceVersion") or 0) for o in found), default=0)
    # Named gets are not narrowed by the server; lists from an older server may not be either.
    matching = [o for o in found if selection.matches(o)]
    return matching, str(revision), len(names) - len(found)


def cmd_get(session: Session, args: argparse.Namespace) -> int:
    groups = kind_groups(args.kind, args.names)
    output: Output = args.output or Output()
    if args.watch and len(groups) > 1:
        raise UsageError("-w/--watch follows one kind at a time")
    all_namespaces = session.all_namespaces
    results: list[tuple[KindInfo, Sequence[Wire]]] = []
    resource_version, selection, missing = "0", _selection(args, []), 0
    for info, names in groups:
        if names and all_namespaces and info.namespaced:
            raise UsageError("a name cannot be looked up across all namespaces: use -n, not -A")
        selection = _selection(args, names)
        namespace = None if all_namespaces and info.namespaced else session.namespace_for(info)
        objects, resource_version, not_found = _read(session, info, namespace, names, selection)
        missing += not_found
        results.append((info, objects))
    named = [name for _, names in groups for name in names]
    if not any(objects for _, objects in results) and not args.watch:
        if not missing:
            kind_scoped = any(info.namespaced for info, _ in groups)
            where = "any namespace" if all_namespaces or not kind_scoped else session.namespace
            session.err.write(f"No resources found in {where}.\n")
        return 1 if missing else 0
    if not args.watch:
        single = len(named) == 1 and len(groups) == 1
        session.out.write(
            format_groups(
                results, output, namespaces=all_namespaces, single=single, labels=args.show_labels
            )
        )
        session.out.flush()
        return 1 if missing else 0
    info, listed = results[0]
    every_namespace = all_namespaces and info.namespaced
    printer = StreamPrinter(
        info, output, every_namespace, args.output_watch_events, args.show_labels
    )
    session.out.write(printer.first(listed))
    session.out.flush()
    follower = Follower(
        session.backend,
        info,
        None if every_namespace else session.namespace_for(info),
        selection,
        listed,
        resource_version,
        warn=lambda text: session.err.write(f"warning: {text}\n"),
    )
    for event in follower:
        session.out.write(printer.event(event.type, event.object))
        session.out.flush()
    return 0


def cmd_describe(session: Session, args: argparse.Namespace) -> int:
    info, names = kind_and_names(args.kind, args.names)
    every_namespace = session.all_namespaces and info.namespaced
    namespace = None if every_namespace else session.namespace_for(info)
    targets: list[tuple[str | None, str]] = [(namespace, name) for name in names]
    if not names:
        selection = _selection(args, [])
        listed = session.backend.list(info, namespace, selection.label_text).items
        metadata = [o.get("metadata") or {} for o in listed]
        targets = [
            (m.get("namespace") if info.namespaced else None, str(m.get("name"))) for m in metadata
        ]
        if not targets:
            scope = "any namespace" if every_namespace or not namespace else namespace
            session.err.write(f"No resources found in {scope}.\n")
            return 0
    elif every_namespace:
        raise UsageError("describe -A takes a KIND without names (a name needs its namespace)")
    for index, (in_namespace, name) in enumerate(targets):
        if index:
            session.out.write("\n")
        session.out.write(describe(session.backend, info, in_namespace, name))
    return 0


VERBS: dict[str, Callable[[Session, argparse.Namespace], int]] = {
    "get": cmd_get,
    "describe": cmd_describe,
}
