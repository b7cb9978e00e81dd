"""VirtualCluster's schema (DESIGN §10): a good spec validates and round-trips; every bad field
is refused at its own path, with a reason; status, rule texts and child names."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from api_types import (
    InstanceSpec,
    PlacementRule,
    VirtualCluster,
    field_errors,
    json_schema,
    parse_object,
    registry,
)
from api_types.clusters import (
    MAX_TOTAL_REPLICAS,
    VIRTUALCLUSTER_LABEL,
    instance_name,
    placement_group_name,
    volume_name,
)
from tests.unit.test_api_types_properties import dns_labels, round_trips

Wire = dict[str, Any]

GOOD: Wire = {
    "apiVersion": "skybroker.io/v1alpha1",
    "kind": "VirtualCluster",
    "metadata": {"name": "shop", "namespace": "acme"},
    "spec": {
        "pool": "general",
        "members": [
            {
                "name": "lb",
                "replicas": 2,
                "template": {"hardware": {"profile": "small"}, "image": "ubuntu-22.04",
                             "subnetRef": "web", "firewallRefs": ["web"]},
                "volumes": [{"name": "data", "sizeGiB": 10, "device": "/dev/sdf"}],
            },
            {"name": "db", "replicas": 1,
             "template": {"hardware": {"cpu": 2}, "image": "ubuntu-22.04"}},
        ],
        "placement": [
            {"type": "AntiAffinity", "members": ["lb"], "topology": "zone"},
            {"type": "Proximity", "members": ["lb", "db"], "topology": "region",
             "mode": "Preferred"},
        ],
    },
}  # fmt: skip


def _errors(change: Callable[[Wire], object]) -> list[tuple[str, str]]:
    wire = copy.deepcopy(GOOD)
    change(wire)
    with pytest.raises(ValidationError) as refused:
        parse_object(wire)
    return field_errors(refused.value)


def _member(wire: Wire, index: int) -> Wire:
    member: Wire = wire["spec"]["members"][index]
    return member


def _rule(wire: Wire, index: int) -> Wire:
    rule: Wire = wire["spec"]["placement"][index]
    return rule


def test_a_good_virtualcluster_validates_defaults_and_round_trips() -> None:
    vc = parse_object(GOOD)
    assert isinstance(vc, VirtualCluster)
    assert registry.by_plural("virtualclusters").model is VirtualCluster
    assert registry.lookup("VirtualCluster").namespaced
    lb, db = vc.spec.members
    assert (lb.name, lb.replicas, db.replicas) == ("lb", 2, 1)
    assert lb.volumes[0].size_gib == 10 and lb.volumes[0].device == "/dev/sdf"
    assert vc.spec.placement[0].mode == "Required"  # the default
    assert [rule.text for rule in vc.spec.placement] == [
        "AntiAffinity of lb by zone (Required)",
        "Proximity of lb,db by region (Preferred)",
    ]
    assert vc.status.phase is None and vc.status.members == {} and vc.status.rules == []
    assert vc.spec.member("db") is db and vc.spec.member("web") is None
    round_trips(vc)
    # Neither the always-absent pool nor account of a template shows on the wire.
    assert set(vc.to_wire()["spec"]["members"][1]["template"]) == {
        "hardware", "image", "firewallRefs", "powerState", "driftPolicy", "deletionPolicy"
    }  # fmt: skip


def test_a_template_makes_the_spec_of_an_instance_on_the_pool() -> None:
    vc = parse_object(GOOD)
    assert isinstance(vc, VirtualCluster)
    spec = vc.spec.members[0].template.instance_spec(vc.spec.pool)
    assert isinstance(spec, InstanceSpec)
    assert (spec.pool, spec.account, spec.hardware.profile) == ("general", None, "small")
    assert spec.firewall_refs == ["web"] and spec.image == "ubuntu-22.04"


def test_child_names_and_labels() -> None:
    assert instance_name("shop", "lb", 0) == "shop-lb-0"
    assert volume_name("shop", "lb", 1, "data") == "shop-lb-1-data"
    assert VIRTUALCLUSTER_LABEL == "skybroker.io/virtualcluster"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(lambda w: w["spec"].pop("pool"), ("spec.pool", "required field is missing"),
                     id="no-pool"),
        pytest.param(lambda w: w["spec"].update(members=[]),
                     ("spec.members", "List should have at least 1 item after validation, not 0"),
                     id="no-members"),
        pytest.param(lambda w: _member(w, 0)["template"].update(pool="other"),
                     ("spec.members[0].template.pool",
                      "a member's template has no pool or account: its Instances are drawn "
                      "from spec.pool"), id="template-pool"),
        pytest.param(lambda w: _member(w, 1)["template"].update(account="sim-east"),
                     ("spec.members[1].template.account",
                      "a member's template has no pool or account: its Instances are drawn "
                      "from spec.pool"), id="template-account"),
        pytest.param(lambda w: _member(w, 1)["template"].pop("image"),
                     ("spec.members[1].template.image", "required field is missing"),
                     id="template-image"),
        pytest.param(lambda w: _member(w, 1)["template"]["hardware"].update(size="t3.micro"),
                     ("spec.members[1].template.hardware",
                      "give exactly one of: profile; size; inline constraints (cpu, memoryMiB, "
                      "diskGiB, arch) — got size and inline constraints (cpu)"),
                     id="template-hardware"),
        pytest.param(lambda w: _member(w, 1).update(name="lb"),
                     ("spec.members[1].name", '"lb" is already the name of members[0]'),
                     id="member-twice"),
        pytest.param(lambda w: _member(w, 1).update(name="DB"),
                     ("spec.members[1].name",
                      "'DB' is not a DNS-1123 label: lower case alphanumerics or '-', starting "
                      "and ending with an alphanumeric"), id="member-name"),
        pytest.param(lambda w: _member(w, 1).update(replicas=-1),
                     ("spec.members[1].replicas", "Input should be greater than or equal to 0"),
                     id="replicas-negative"),
        pytest.param(lambda w: _member(w, 1).update(replicas=1001),
                     ("spec.members[1].replicas", "must be at most 1000"), id="replicas-bound"),
        pytest.param(lambda w: _member(w, 1).update(replicas="2"),
                     ("spec.members[1].replicas", "Input should be a valid integer"),
                     id="replicas-string"),
        pytest.param(lambda w: [_member(w, i).update(replicas=600) for i in (0, 1)],
                     ("spec.members",
                      f"the replicas of all members add up to 1200: at most {MAX_TOTAL_REPLICAS}"),
                     id="total-replicas"),
        pytest.param(lambda w: _member(w, 1).pop("template"),
                     ("spec.members[1].template", "required field is missing"),
                     id="no-template"),
        pytest.param(lambda w: _member(w, 0)["volumes"].append(
                         {"name": "data", "sizeGiB": 1, "device": "/dev/sdg"}),
                     ("spec.members[0].volumes[1].name",
                      '"data" is already the name of volumes[0]'), id="volume-twice"),
        pytest.param(lambda w: _member(w, 0)["volumes"].append(
                         {"name": "logs", "sizeGiB": 1, "device": "/dev/sdf"}),
                     ("spec.members[0].volumes[1].device",
                      '"/dev/sdf" is already the device of volumes[0]'), id="device-twice"),
        pytest.param(lambda w: _member(w, 0)["volumes"][0].update(sizeGiB=0),
                     ("spec.members[0].volumes[0].sizeGiB", "Input should be greater than 0"),
                     id="volume-size"),
        pytest.param(lambda w: _member(w, 0)["volumes"][0].update(sizeGiB=70000),
                     ("spec.members[0].volumes[0].sizeGiB", "must be at most 65536 GiB (64 TiB)"),
                     id="volume-size-bound"),
        pytest.param(lambda w: _member(w, 0)["volumes"][0].pop("device"),
                     ("spec.members[0].volumes[0].device", "required field is missing"),
                     id="volume-device"),
        pytest.param(lambda w: _rule(w, 1)["members"].__setitem__(0, "x"),
                     ("spec.placement[1].members[0]", 'no member named "x"'), id="rule-unknown"),
        pytest.param(lambda w: _rule(w, 1).update(members=["db", "lb", "db"]),
                     ("spec.placement[1].members[2]", 'member "db" is listed twice (also at [0])'),
                     id="rule-twice"),
        pytest.param(lambda w: _rule(w, 0).update(members=[]),
                     ("spec.placement[0].members",
                      "List should have at least 1 item after validation, not 0"),
                     id="rule-empty"),
        pytest.param(lambda w: _rule(w, 0).update(topology="rack"),
                     ("spec.placement[0].topology",
                      "Input should be 'zone', 'region', 'account', 'provider' or 'host'"),
                     id="rule-topology"),
        pytest.param(lambda w: _rule(w, 0).update(type="Affinity"),
                     ("spec.placement[0].type", "Input should be 'AntiAffinity' or 'Proximity'"),
                     id="rule-type"),
        pytest.param(lambda w: _rule(w, 0).update(mode="Sometimes"),
                     ("spec.placement[0].mode", "Input should be 'Required' or 'Preferred'"),
                     id="rule-mode"),
        pytest.param(lambda w: _rule(w, 0).update(zone="a"),
                     ("spec.placement[0].zone", "unknown field"), id="rule-extra"),
        pytest.param(lambda w: [_rule(w, i).update(topology="host") for i in (0, 1)],
                     ("spec.placement[1].members[0]",
                      'member "lb" is already in the host rule placement[0]: an instance can be '
                      "in one placement group only"), id="host-rules-overlap"),
        pytest.param(lambda w: w["metadata"].update(name="v" * 64),
                     ("metadata.name",
                      "must be no more than 63 characters (got 64): the children carry it in "
                      "the label skybroker.io/virtualcluster"), id="long-name"),
    ],
)  # fmt: skip
def test_each_bad_field_is_refused_at_its_path(
    change: Callable[[Wire], object], expected: tuple[str, str]
) -> None:
    assert _errors(change) == [expected]


def test_host_rules_over_distinct_members_are_accepted_each_with_its_group() -> None:
    wire = copy.deepcopy(GOOD)
    wire["spec"]["placement"] = [
        {"type": "AntiAffinity", "members": ["lb"], "topology": "host"},
        {"type": "Proximity", "members": ["db"], "topology": "host"},
        {"type": "Proximity", "members": ["lb", "db"], "topology": "region"},
    ]
    vc = parse_object(wire)
    assert isinstance(vc, VirtualCluster)
    spread, cluster, _ = vc.spec.placement
    assert vc.spec.host_rule("lb") is spread and vc.spec.host_rule("db") is cluster
    lb_group = placement_group_name("acme", "shop", spread)
    db_group = placement_group_name("acme", "shop", cluster)
    assert lb_group.startswith("skybroker-acme-shop-spread-") and len(lb_group) == 37
    assert db_group.startswith("skybroker-acme-shop-cluster-")
    # named by the rule, not its position; another VirtualCluster or namespace differs
    moved = PlacementRule.model_validate({**spread.model_dump(by_alias=True), "mode": "Preferred"})
    assert placement_group_name("acme", "shop", moved) == lb_group
    assert placement_group_name("acme", "shop2", spread) != lb_group
    assert placement_group_name("acme2", "shop", spread) != lb_group
    longest = placement_group_name("n" * 63, "v" * 63, cluster)
    assert len(longest) <= 255  # EC2's limit on placement group names
    assert vc.status.placement_groups == []


def test_status_takes_members_placements_rules_and_conditions_but_no_phase() -> None:
    wire = copy.deepcopy(GOOD)
    wire["status"] = {
        "observedGeneration": 3,
        "members": {"lb": {"replicas": 2, "ready": 1, "placements": [
            {"instance": "shop-lb-0", "account": "sim-east", "region": "r1", "zone": "r1a",
             "member": "sim-east"}]}},
        "rules": [{"index": 0, "rule": "AntiAffinity of lb by zone (Required)",
                   "state": "Satisfied"},
                  {"index": 1, "rule": "Proximity of lb,db by region (Preferred)",
                   "state": "Broken", "message": "lb in r1, db in r2"}],
        "conditions": [{"type": "PlacementSatisfied", "status": "True"}],
        "rejections": [{"member": "sim-west", "reason": "no size matches"}],
    }  # fmt: skip
    vc = parse_object(wire)
    assert isinstance(vc, VirtualCluster)
    assert vc.status.members["lb"].placements[0].instance == "shop-lb-0"
    assert vc.status.rules[1].state == "Broken"
    round_trips(vc)
    wire["status"]["rules"][0]["state"] = "Fine"
    with pytest.raises(ValidationError) as refused:
        parse_object(wire)
    assert field_errors(refused.value) == [
        ("status.rules[0].state", "Input should be 'Satisfied', 'Broken' or 'Infeasible'")
    ]
    wire["status"] = {"phase": "Running"}
    with pytest.raises(ValidationError) as refused:
        parse_object(wire)
    assert field_errors(refused.value)[0][0] == "status.phase"


def test_the_schema_documents_every_field() -> None:
    schema = json_schema("VirtualCluster")
    defs = schema["$defs"]
    member = defs["VirtualClusterMember"]["properties"]
    assert set(member) == {"name", "replicas", "template", "volumes"}
    assert set(defs["PlacementRule"]["properties"]) == {"type", "members", "topology", "mode"}
    assert "Always absent" in defs["MemberTemplate"]["properties"]["pool"]["description"]


def test_the_example_manifest_is_valid() -> None:
    path = Path(__file__).parents[2] / "examples" / "virtualcluster.yaml"
    vc = parse_object(yaml.safe_load(path.read_text()))
    assert isinstance(vc, VirtualCluster) and vc.spec.pool == "general"


@st.composite
def virtualclusters(draw: st.DrawFn) -> Wire:
    names = draw(st.lists(dns_labels(max_size=20), min_size=1, max_size=4, unique=True))
    members = [
        {
            "name": name,
            "replicas": draw(st.integers(0, 250)),
            "template": {"hardware": {"cpu": draw(st.integers(1, 64))}, "image": "img"},
            "volumes": [
                {"name": f"v{i}", "sizeGiB": draw(st.integers(1, 1000)), "device": f"/dev/sd{i}"}
                for i in range(draw(st.integers(0, 2)))
            ],
        }
        for name in names
    ]
    rules = [
        {
            "type": draw(st.sampled_from(["AntiAffinity", "Proximity"])),
            "members": draw(st.lists(st.sampled_from(names), min_size=1, unique=True)),
            "topology": draw(st.sampled_from(["zone", "region", "account", "provider", "host"])),
            "mode": draw(st.sampled_from(["Required", "Preferred"])),
        }
        for _ in range(draw(st.integers(0, 3)))
    ]
    in_host_rules: set[str] = set()  # a member is in one host rule at most
    for rule in rules:
        if rule["topology"] == "host" and in_host_rules & set(rule["members"]):
            rule["topology"] = "zone"
        elif rule["topology"] == "host":
            in_host_rules.update(rule["members"])
    return {
        "kind": "VirtualCluster",
        "metadata": {"name": draw(dns_labels()), "namespace": "acme"},
        "spec": {"pool": "general", "members": members, "placement": rules},
    }


@settings(max_examples=60, deadline=None)
@given(wire=virtualclusters())
def test_generated_virtualclusters_validate_and_round_trip(wire: Wire) -> None:
    vc = parse_object(wire)
    assert isinstance(vc, VirtualCluster)
    assert [m.name for m in vc.spec.members] == [m["name"] for m in wire["spec"]["members"]]
    assert all(isinstance(rule, PlacementRule) for rule in vc.spec.placement)
    round_trips(vc)
