"""``describe``, ``history`` and ``events``: the human account of one object.

Where it sits: read verbs over any ``Backend``. ``describe`` gathers the object, its events
(from the namespace the event recorder files them under) and its durable history, and prints
kubectl-style sections: metadata, spec, conditions, placement with the pool members that were
rejected and why (``status.rejections``, DESIGN §6), an Instance's boot agent
(``status.agent``, DESIGN §11), recent events, recent history.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from pydantic import ValidationError

from api_types.clusters import PlacementRule, VirtualCluster
from api_types.registry import KindInfo, by_kind
from controller.events import DEFAULT_NAMESPACE
from skyctl.apply import LAST_APPLIED
from skyctl.backend import ApiError, Backend
from skyctl.printers import NONE, age, lookup_path, render_table, table_rows

__all__ = ["describe", "format_history", "object_events"]

Wire = dict[str, Any]

_RECENT_HISTORY = 10
_CHANGE_LIMIT = 60


def object_events(backend: Backend, info: KindInfo, namespace: str | None, name: str) -> list[Wire]:
    """Events about one object, oldest first. Cluster-scoped objects' events are filed in
    the ``default`` namespace by the recorder (``controller.events``)."""
    listed = backend.list(by_kind("Event"), namespace or DEFAULT_NAMESPACE, None).items
    mine = [
        e
        for e in listed
        if lookup_path(e, "involvedObject.kind") == info.kind
        and lookup_path(e, "involvedObject.name") == name
        and lookup_path(e, "involvedObject.namespace") == namespace
    ]
    return sorted(mine, key=lambda e: str(e.get("lastTimestamp") or ""))


def _short(value: Any) -> str:
    text = "<none>" if value is None else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _CHANGE_LIMIT else text[: _CHANGE_LIMIT - 1] + "…"


def _changes(record: Wire) -> str:
    changes = record.get("changes") or []
    return (
        "; ".join(
            f"{c.get('path')}: {_short(c.get('before'))} → {_short(c.get('after'))}"
            for c in changes
            if isinstance(c, dict)
        )
        or "-"
    )


def format_history(records: list[Wire]) -> str:
    rows = [["REVISION", "TIME", "ACTION", "ACTOR", "GENERATION", "CHANGES"]]
    for record in records:
        rows.append(
            [
                str(record.get("revision", NONE)),
                str(record.get("time", NONE)),
                str(record.get("action", NONE)),
                str(record.get("actor", NONE)),
                str(record.get("generation") if record.get("generation") is not None else NONE),
                _changes(record),
            ]
        )
    return render_table(rows)


def _indent(text: str, by: int = 2) -> str:
    pad = " " * by
    return "".join(pad + line + "\n" for line in text.splitlines())


def _mapping(values: dict[str, Any] | None) -> str:
    shown = {k: v for k, v in (values or {}).items() if k != LAST_APPLIED}
    return ",".join(f"{k}={v}" for k, v in sorted(shown.items())) or NONE


def _conditions(obj: Wire) -> str:
    conditions = lookup_path(obj, "status.conditions") or []
    if not conditions:
        return "Conditions:  <none>\n"
    rows = [["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"]]
    rows += [
        [
            str(c.get("type")),
            str(c.get("status")),
            str(c.get("reason") or NONE),
            age(c.get("lastTransitionTime")),
            str(c.get("message") or ""),
        ]
        for c in conditions
    ]
    return "Conditions:\n" + _indent(render_table(rows))


def _rejected(rejections: list[Wire], heading: str, by: int) -> str:
    """The pool members a scheduler rejected, and why (DESIGN §6), indented ``by``."""
    if not rejections:
        return ""
    rows = [["MEMBER", "ACCOUNT", "REASON"]]
    rows += [
        [str(r.get("member") or NONE), str(r.get("account") or NONE), str(r.get("reason"))]
        for r in rejections
    ]
    return " " * (by - 2) + heading + "\n" + _indent(render_table(rows), by)


def _placement(obj: Wire) -> str:
    placement = lookup_path(obj, "status.placement")
    rejections = lookup_path(obj, "status.rejections") or []
    if placement is None and not rejections:
        return ""
    text = "Placement:\n"
    if placement:
        fields = ("account", "region", "zone", "size", "member")
        text += "".join(f"  {f.capitalize()}: {placement[f]}\n" for f in fields if f in placement)
    else:
        text += "  <not placed>\n"
    return text + _rejected(rejections, "Rejected:", 4)


def _agent(obj: Wire) -> str:
    """An Instance's boot agent (``status.agent``, DESIGN §11): state, address, parameters,
    the config revision it applied and when it last reported."""
    agent = lookup_path(obj, "status.agent")
    if not isinstance(agent, dict):
        return ""
    parameters = agent.get("parameters")
    revision = agent.get("configRevision")
    fields = [
        ("State", agent.get("state") or NONE),
        ("Address", agent.get("address") or NONE),
        ("Parameters", _mapping(parameters if isinstance(parameters, dict) else None)),
        ("Config revision", NONE if revision is None else revision),
        ("Last report", _when(agent.get("lastReport"))),
        ("Since", _when(agent.get("lastTransitionTime"))),
        ("Remediated", _when(agent.get("lastRemediation"))),
    ]
    width = max(len(label) for label, _ in fields) + 2
    return "Agent:\n" + "".join(f"  {label + ':':<{width}}{value}\n" for label, value in fields)


def _when(timestamp: Any) -> str:
    return NONE if not timestamp else f"{timestamp} ({age(timestamp)} ago)"


def _rule_text(rule: Any, index: int, states: dict[int, Wire]) -> str:
    """A rule of ``spec.placement`` as :attr:`PlacementRule.text` writes it (what the status
    recorded, if the spec's rule cannot be read)."""
    try:
        return PlacementRule.model_validate(rule).text
    except ValidationError:
        return str(states.get(index, {}).get("rule") or json.dumps(rule))


def _virtual_cluster(obj: Wire) -> str:
    """Members (ready/replicas), where every replica is, each rule's state and the placement
    groups of host rules (DESIGN §10)."""
    members = [m for m in lookup_path(obj, "spec.members") or [] if isinstance(m, dict)]
    observed = lookup_path(obj, "status.members") or {}
    rows = [["MEMBER", "REPLICAS", "READY"]]
    placed = [["MEMBER", "INSTANCE", "ACCOUNT", "REGION", "ZONE"]]
    for member in members:
        name = str(member.get("name"))
        status = observed.get(name) if isinstance(observed, dict) else None
        status = status if isinstance(status, dict) else {}
        rows.append([name, str(member.get("replicas", 0)), str(status.get("ready", 0))])
        placed += [
            [name, *(str(p.get(f) or NONE) for f in ("instance", "account", "region", "zone"))]
            for p in status.get("placements") or []
            if isinstance(p, dict)
        ]
    text = "Members:\n" + _indent(render_table(rows))
    text += "Placements:\n" + (_indent(render_table(placed)) if len(placed) > 1 else "  <none>\n")
    rules = lookup_path(obj, "spec.placement") or []
    states = {
        r["index"]: r
        for r in lookup_path(obj, "status.rules") or []
        if isinstance(r, dict) and isinstance(r.get("index"), int)
    }
    if rules:
        table = [["#", "RULE", "STATE", "MESSAGE"]]
        table += [
            [
                str(i),
                _rule_text(rule, i, states),
                str(states.get(i, {}).get("state") or NONE),
                str(states.get(i, {}).get("message") or ""),
            ]
            for i, rule in enumerate(rules)
        ]
        text += "Rules:\n" + _indent(render_table(table))
    else:
        text += "Rules:        <none>\n"
    groups = [g for g in lookup_path(obj, "status.placementGroups") or [] if isinstance(g, dict)]
    if groups:  # host rules: the provider placement groups made for them
        table = [["ACCOUNT", "PLACEMENT GROUP", "STRATEGY"]]
        table += [[str(g.get(f) or NONE) for f in ("account", "name", "strategy")] for g in groups]
        text += "Placement groups:\n" + _indent(render_table(table))
    rejections = lookup_path(obj, "status.rejections") or []
    return text + _rejected(rejections, "Rejected pool members:", 2)


def describe(backend: Backend, info: KindInfo, namespace: str | None, name: str) -> str:
    obj = backend.get(info, namespace, name)
    metadata = obj.get("metadata") or {}
    lines = [
        f"Name:         {metadata.get('name')}",
        *([f"Namespace:    {metadata.get('namespace')}"] if info.namespaced else []),
        f"Kind:         {info.kind}",
        f"Labels:       {_mapping(metadata.get('labels'))}",
        f"Annotations:  {_mapping(metadata.get('annotations'))}",
        f"Created:      {metadata.get('creationTimestamp', NONE)} "
        f"({age(metadata.get('creationTimestamp'))} ago)",
        f"Generation:   {metadata.get('generation', NONE)} "
        f"(observed {lookup_path(obj, 'status.observedGeneration') or NONE})",
    ]
    if metadata.get("deletionTimestamp"):
        lines.append(
            f"Deleting:     since {metadata['deletionTimestamp']}, "
            f"finalizers {metadata.get('finalizers') or []}"
        )
    phase = lookup_path(obj, "status.phase")
    if phase:  # kinds without a life cycle (Quota, Pool, …) have none
        lines.append(f"Phase:        {phase}")
    text = "\n".join(lines) + "\n"
    envelope = ("apiVersion", "kind", "metadata", "status")
    desired = {k: v for k, v in obj.items() if k not in envelope}
    if set(desired) == {"spec"}:  # most kinds; Secrets and RBAC kinds keep top-level fields
        desired = desired["spec"]
    if desired:
        text += "Spec:\n" + _indent(yaml.safe_dump(desired, sort_keys=False).rstrip())
    if info.kind == VirtualCluster.KIND:
        text += _conditions(obj) + _virtual_cluster(obj)
    elif info.has_status:
        text += _conditions(obj) + _placement(obj) + _agent(obj)
    # The object itself was read; a failure to read its events or history (an API server
    # without that route, no permission on events) should not hide it.
    try:
        events = object_events(backend, info, namespace, name)
    except ApiError as exc:
        text += f"Events:       <unavailable: {exc.message}>\n"
    else:
        if events:
            rows = table_rows(by_kind("Event"), events, wide=True, namespaces=False)
            text += "Events:\n" + _indent(render_table(rows))
        else:
            text += "Events:       <none>\n"
    try:
        history = backend.history(info, namespace, name)
    except ApiError as exc:
        text += f"History:      <unavailable: {exc.message}>\n"
    else:
        recent = history[-_RECENT_HISTORY:]
        text += f"History (last {_RECENT_HISTORY}):\n" + _indent(format_history(recent))
    return text
