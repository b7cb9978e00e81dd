"""EC2 placement groups for the provider tests, which moto (5.0.28, and still 5.2.5) lacks.

Where it sits: inside the tests' ``FaultProxy``, in front of the real moto_server. moto
answers CreatePlacementGroup, DeletePlacementGroup and DescribePlacementGroups with a bare
HTTP 500 (``NotImplementedError`` in its log), accepts ``Placement.GroupName`` on RunInstances
and drops it, and reports every instance with an empty ``placement/groupName``. This shim plays
that part of EC2 as AWS documents it, and nothing else:

* the three placement-group Actions are answered here (``GroupName.N`` and the ``group-name``,
  ``group-id``, ``strategy`` and ``state`` filters; ``TagSpecification`` of type
  ``placement-group``); a deleted group stays listed as ``deleted`` until its name is
  created again, as EC2 lists deleted groups for a while;
* errors use EC2's codes: ``InvalidPlacementGroup.Duplicate``, ``.Unknown``, ``.InUse``,
  ``InvalidParameterValue``, ``MissingParameter``;
* RunInstances naming an unknown group is refused (``InvalidPlacementGroup.Unknown``) before
  moto sees it; otherwise moto launches the instance, and the shim notes the group of every
  instance id in the answer and writes it into ``placement/groupName`` of RunInstances and
  DescribeInstances answers; TerminateInstances (forwarded) takes an instance out of its
  group's use, so the group may be deleted.

Not emulated: spread groups' limit of seven running instances per zone, cluster groups'
refusal of burstable sizes, partition groups' partitions.
"""

from __future__ import annotations

import itertools
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

__all__ = ["PlacementGroupShim", "request_params"]

_NAMESPACE = "http://ec2.amazonaws.com/doc/2016-11-15/"
_STRATEGIES = frozenset({"cluster", "spread", "partition"})
_FILTERS = {"group-name": "name", "group-id": "group_id", "strategy": "strategy", "state": "state"}
_ACTIONS = frozenset({"CreatePlacementGroup", "DeletePlacementGroup", "DescribePlacementGroups"})

Answer = tuple[int, bytes]


def request_params(query: str, body: str) -> dict[str, str]:
    """The parameters of an EC2 Query API request (query string and form body)."""
    return dict(parse_qsl(query, keep_blank_values=True) + parse_qsl(body, keep_blank_values=True))


@dataclass
class _Group:
    name: str
    strategy: str
    group_id: str
    state: str = "available"
    tags: dict[str, str] = field(default_factory=dict)


def _numbered(params: dict[str, str], prefix: str) -> list[str]:
    """``prefix.1``, ``prefix.2``, … in order (EC2's list parameters)."""
    values: list[str] = []
    for index in itertools.count(1):
        value = params.get(f"{prefix}.{index}")
        if value is None:
            return values
        values.append(value)
    return values


def _error(status: int, code: str, message: str) -> Answer:
    root = ET.Element("Response")
    error = ET.SubElement(ET.SubElement(root, "Errors"), "Error")
    ET.SubElement(error, "Code").text = code
    ET.SubElement(error, "Message").text = message
    ET.SubElement(root, "RequestID").text = "placement-shim"
    return status, ET.tostring(root)


def _ok(action: str, fill: dict[str, str] | None = None) -> ET.Element:
    root = ET.Element(f"{action}Response", xmlns=_NAMESPACE)
    ET.SubElement(root, "requestId").text = "placement-shim"
    for key, value in (fill or {}).items():
        ET.SubElement(root, key).text = value
    return root


def _group_xml(parent: ET.Element, tag: str, group: _Group) -> None:
    element = ET.SubElement(parent, tag)
    for key, value in (
        ("groupName", group.name),
        ("state", group.state),
        ("strategy", group.strategy),
        ("groupId", group.group_id),
    ):
        ET.SubElement(element, key).text = value
    tag_set = ET.SubElement(element, "tagSet")
    for key, value in group.tags.items():
        item = ET.SubElement(tag_set, "item")
        ET.SubElement(item, "key").text = key
        ET.SubElement(item, "value").text = value


class PlacementGroupShim:
    """The placement groups of one (test) account and region; see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: dict[str, _Group] = {}
        self._placed: dict[str, str] = {}  # instance id -> group name, as EC2 reports it
        self._live: set[str] = set()  # placed instances not terminated
        self._ids = itertools.count(1)

    def clear(self) -> None:
        with self._lock:
            self._groups.clear()
            self._placed.clear()
            self._live.clear()

    def intercept(self, params: dict[str, str]) -> Answer | None:
        """The answer to a request moto cannot give, or None to forward it."""
        action = params.get("Action", "")
        with self._lock:
            if action == "CreatePlacementGroup":
                return self._create(params)
            if action == "DeletePlacementGroup":
                return self._delete(params)
            if action == "DescribePlacementGroups":
                return self._describe(params)
            if action == "RunInstances":
                name = params.get("Placement.GroupName")
                if name and not self._exists(name):
                    return _error(
                        400,
                        "InvalidPlacementGroup.Unknown",
                        f"The Placement Group '{name}' is unknown.",
                    )
        return None

    def rewrite(self, params: dict[str, str], status: int, payload: bytes) -> bytes:
        """moto's answer with what the shim knows of placement groups written in."""
        action = params.get("Action", "")
        if status != 200 or action not in (
            "RunInstances",
            "DescribeInstances",
            "TerminateInstances",
        ):
            return payload
        with self._lock:
            if action == "TerminateInstances":
                self._live.difference_update(_numbered(params, "InstanceId"))
                return payload
            group = params.get("Placement.GroupName") if action == "RunInstances" else None
            if not group and not self._placed:
                return payload
            root = ET.fromstring(payload)
            namespace = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
            ns = f"{{{namespace}}}" if namespace else ""
            for item in root.iter(f"{ns}item"):
                instance_id = item.findtext(f"{ns}instanceId")
                placement = item.find(f"{ns}placement")
                if instance_id is None or placement is None:
                    continue
                if group:
                    self._placed[instance_id] = group
                    self._live.add(instance_id)
                if instance_id in self._placed:
                    name = placement.find(f"{ns}groupName")
                    if name is None:
                        name = ET.SubElement(placement, f"{ns}groupName")
                    name.text = self._placed[instance_id]
            return ET.tostring(root, default_namespace=namespace or None)

    # the Actions moto lacks
    def _exists(self, name: str) -> bool:
        group = self._groups.get(name)
        return group is not None and group.state != "deleted"

    def _create(self, params: dict[str, str]) -> Answer:
        name, strategy = params.get("GroupName"), params.get("Strategy")
        if not name:
            return _error(
                400, "MissingParameter", "The request must contain the parameter GroupName"
            )
        if strategy not in _STRATEGIES:
            return _error(400, "InvalidParameterValue", f"Invalid strategy {strategy!r}")
        if self._exists(name):
            return _error(
                400,
                "InvalidPlacementGroup.Duplicate",
                f"The Placement Group '{name}' already exists.",
            )
        tags: dict[str, str] = {}
        if params.get("TagSpecification.1.ResourceType") == "placement-group":
            for index in itertools.count(1):
                key = params.get(f"TagSpecification.1.Tag.{index}.Key")
                if key is None:
                    break
                tags[key] = params.get(f"TagSpecification.1.Tag.{index}.Value", "")
        group = _Group(name, strategy, f"pg-{next(self._ids):017x}", tags=tags)
        self._groups[name] = group
        root = _ok("CreatePlacementGroup", {"return": "true"})
        _group_xml(root, "placementGroup", group)
        return 200, ET.tostring(root)

    def _delete(self, params: dict[str, str]) -> Answer:
        name = params.get("GroupName", "")
        if not self._exists(name):
            return _error(
                400, "InvalidPlacementGroup.Unknown", f"The Placement Group '{name}' is unknown."
            )
        if any(self._placed.get(i) == name for i in self._live):
            return _error(
                400, "InvalidPlacementGroup.InUse", f"The Placement Group '{name}' is in use."
            )
        self._groups[name].state = "deleted"
        return 200, ET.tostring(_ok("DeletePlacementGroup", {"return": "true"}))

    def _describe(self, params: dict[str, str]) -> Answer:
        groups = list(self._groups.values())
        names = _numbered(params, "GroupName")
        for name in names:
            if not self._exists(name):
                return _error(
                    400,
                    "InvalidPlacementGroup.Unknown",
                    f"The Placement Group '{name}' is unknown.",
                )
        if names:
            groups = [g for g in groups if g.name in names]
        for index in itertools.count(1):
            filter_name = params.get(f"Filter.{index}.Name")
            if filter_name is None:
                break
            attribute = _FILTERS.get(filter_name)
            if attribute is None:
                return _error(
                    400, "InvalidParameterValue", f"The filter '{filter_name}' is invalid"
                )
            values = set(_numbered(params, f"Filter.{index}.Value"))
            groups = [g for g in groups if getattr(g, attribute) in values]
        root = _ok("DescribePlacementGroups")
        group_set = ET.SubElement(root, "placementGroupSet")
        for group in groups:
            _group_xml(group_set, "item", group)
        return 200, ET.tostring(root)
