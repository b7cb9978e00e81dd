"""skyctl output: tables like kubectl, wide columns, yaml/json, ages, explain."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import yaml

from api_types import registry
from skyctl.explain import ExplainError, explain
from skyctl.output import Output, format_groups
from skyctl.printers import age


def format_objects(
    info: registry.KindInfo,
    objects: list[dict],
    output: str | None,
    *,
    namespaces: bool,
    single: bool,
) -> str:
    return format_groups([(info, objects)], Output(output), namespaces=namespaces, single=single)


NOW = datetime(2026, 1, 1, tzinfo=UTC)


def web(name: str, namespace: str = "acme") -> dict:
    return {
        "kind": "Instance",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        },
        "spec": {"pool": "general"},
        "status": {
            "phase": "Running",
            "placement": {"account": "sim-east", "region": "r1", "zone": "r1a", "size": "m1"},
            "addresses": [{"type": "PublicIP", "address": "198.51.100.7"}],
        },
    }


def test_table_wide_and_all_namespaces() -> None:
    info = registry.lookup("instances")
    table = format_objects(
        info, [web("web-1"), web("a-much-longer-name")], None, namespaces=False, single=False
    )
    lines = table.splitlines()
    assert lines[0].split() == ["NAME", "POOL", "PHASE", "ACCOUNT", "AGE"]
    assert lines[1].split() == ["web-1", "general", "Running", "sim-east", "5m"]
    # Columns line up: every row starts its second column at the same offset.
    assert lines[1].index("general") == lines[2].index("general") == lines[0].index("POOL")
    wide = format_objects(info, [web("web-1")], "wide", namespaces=True, single=False)
    assert wide.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert "198.51.100.7" in wide and "r1a" in wide


def test_yaml_json_and_name_outputs_round_trip() -> None:
    info = registry.lookup("instance")
    one = yaml.safe_load(format_objects(info, [web("a")], "yaml", namespaces=False, single=True))
    assert one["metadata"]["name"] == "a"
    many = json.loads(
        format_objects(info, [web("a"), web("b")], "json", namespaces=False, single=False)
    )
    assert many["kind"] == "List" and len(many["items"]) == 2
    assert format_objects(info, [web("a")], "name", namespaces=False, single=False) == (
        "instance.skybroker.io/a\n"
    )


def test_age_units() -> None:
    assert age((NOW - timedelta(seconds=42)).isoformat(), NOW) == "42s"
    assert age((NOW - timedelta(minutes=3)).isoformat(), NOW) == "3m"
    assert age((NOW - timedelta(hours=5)).isoformat(), NOW) == "5h"
    assert age((NOW - timedelta(days=2)).isoformat(), NOW) == "2d"
    assert age(None, NOW) == "<none>"


def test_explain_walks_fields_lists_and_reports_unknown_ones() -> None:
    text = explain("instance.spec.hardware")
    assert "FIELD:    hardware <HardwareSpec>" in text and "profile" in text
    assert "account" in explain("pools.spec.members")
    try:
        explain("instance.spec.nope")
    except ExplainError as exc:
        assert "image" in str(exc)
    else:
        raise AssertionError("unknown field accepted")


def shop(status: dict | None = None) -> dict:
    return {
        "kind": "VirtualCluster",
        "metadata": {
            "name": "shop",
            "namespace": "acme",
            "creationTimestamp": (datetime.now(UTC) - timedelta(minutes=3)).isoformat(),
        },
        "spec": {
            "pool": "general",
            "members": [{"name": "lb", "replicas": 2}, {"name": "db", "replicas": 2}],
        },
        "status": status or {},
    }


def test_virtualcluster_table_shows_ready_over_replicas_per_member() -> None:
    info = registry.lookup("virtualclusters")
    fresh = format_objects(info, [shop()], None, namespaces=False, single=False).splitlines()
    assert fresh[0].split() == ["NAME", "POOL", "MEMBERS", "READY", "AGE"]
    assert fresh[1].split() == ["shop", "general", "lb:0/2,db:0/2", "<none>", "3m"]
    status = {
        "members": {"lb": {"replicas": 2, "ready": 2}, "db": {"replicas": 2, "ready": 1}},
        "conditions": [{"type": "Ready", "status": "False"},
                       {"type": "PlacementSatisfied", "status": "True"}],
    }  # fmt: skip
    wide = format_objects(info, [shop(status)], "wide", namespaces=False, single=False)
    header, row = wide.splitlines()
    assert header.split() == ["NAME", "POOL", "MEMBERS", "READY", "PLACEMENT", "AGE"]
    assert row.split() == ["shop", "general", "lb:2/2,db:1/2", "False", "True", "3m"]


def test_explain_a_virtualcluster_by_its_short_name() -> None:
    text = explain("vc.spec.placement")
    assert "topology" in text and "mode" in text
    assert "Always absent" in explain("virtualcluster.spec.members.template.pool")


def boot_config(spec: dict, status: dict | None = None) -> dict:
    return {
        "kind": "BootConfig",
        "metadata": {
            "name": "web",
            "namespace": "acme",
            "creationTimestamp": (datetime.now(UTC) - timedelta(minutes=7)).isoformat(),
        },
        "spec": spec,
        "status": status or {},
    }


def test_bootconfig_table_by_its_short_name() -> None:
    info = registry.lookup("bootconfigs")
    static = boot_config({"config": "#!/bin/sh\n"})  # as stored without defaults
    dynamic = boot_config({"dynamic": True, "slots": 5}, {"revision": 3, "claimed": 2})
    for output in (None, "wide"):
        header, *rows = format_objects(
            info, [static, dynamic], output, namespaces=False, single=False
        ).splitlines()
        assert header.split() == ["NAME", "DYNAMIC", "SLOTS", "CLAIMED", "REVISION", "AGE"]
        assert rows[0].split() == ["web", "False", "0", "0", "<none>", "7m"]
        assert rows[1].split() == ["web", "True", "5", "2", "3", "7m"]


def test_explain_a_bootconfig_by_its_short_name() -> None:
    text = explain("bc.spec")
    for field in ("config", "parameters", "dynamic", "slots", "staleAfter"):
        assert field in text
    assert "64 KiB" in explain("bc.spec.config") or "65536" in explain("bc.spec.config")
    assert "revision" in explain("bootconfig.status")


def test_instance_wide_columns_show_the_boot_agents_state() -> None:
    info = registry.lookup("instances")
    obj = web("web-1")
    obj["status"]["agent"] = {"state": "Configured", "address": "10.0.0.9"}
    plain = web("web-2")
    header, row, other = format_objects(
        info, [obj, plain], "wide", namespaces=False, single=False
    ).splitlines()
    assert header.split() == [
        "NAME", "POOL", "PHASE", "ACCOUNT", "ZONE", "SIZE", "PROVIDER-ID", "ADDRESSES", "AGENT",
        "AGE",
    ]  # fmt: skip
    assert row.split()[-2] == "Configured" and "10.0.0.9" not in row
    assert "Configured" not in other
