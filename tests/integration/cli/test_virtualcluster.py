"""VirtualCluster in skyctl (DESIGN §7, §10): the example applies over examples/acme, ``get vc``
shows ready/replicas per member, ``describe vc`` the placement table and every rule's state,
and a bad rule is refused naming its field."""

from __future__ import annotations

from pathlib import Path

import pytest

from api_types import (
    Condition,
    ConditionStatus,
    PlacementGroupStatus,
    ReplicaPlacement,
    RuleState,
    RuleStatus,
    VirtualCluster,
    VirtualClusterMemberStatus,
)
from controller.store.objects import Store
from tests.integration.cli.helpers import Skyctl, running_api_server

EXAMPLES = Path(__file__).parents[3] / "examples"


def _placed(instance: str, zone: str) -> ReplicaPlacement:
    return ReplicaPlacement(
        instance=instance, account="sim-a", region="local", zone=zone, member="sim-a"
    )


def test_the_example_is_listed_described_and_checked(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SKYCONFIG", str(tmp_path / "no-config.yaml"))
    with running_api_server(store, tmp_path) as server:
        skyctl = Skyctl(("--server", server.url, "--token", "admin-token"))
        for name in ("00-tenant.yaml", "10-hardware.yaml", "20-network.yaml"):
            applied = skyctl("apply", "-f", str(EXAMPLES / "acme" / name))
            assert applied.code == 0, applied.err
        applied = skyctl("apply", "-f", str(EXAMPLES / "virtualcluster.yaml"))
        assert applied.code == 0, applied.err
        assert "virtualcluster.skybroker.io/shop" in applied.out

        listed = skyctl("get", "vc", "-n", "acme")
        assert listed.code == 0, listed.err
        header, row = listed.out.splitlines()
        assert header.split() == ["NAME", "POOL", "MEMBERS", "READY", "AGE"]
        assert row.split()[:4] == ["shop", "general", "lb:0/2,db:0/1", "<none>"]
        assert "shop" in skyctl("get", "all", "-n", "acme").out
        resources = skyctl("api-resources").out
        assert any(line.split()[:2] == ["virtualclusters", "vc"] for line in resources.splitlines())

        shop = store.get(VirtualCluster, "shop", "acme")
        shop.status.members = {
            "lb": VirtualClusterMemberStatus(
                replicas=2, ready=2,
                placements=[_placed("shop-lb-0", "local-a"), _placed("shop-lb-1", "local-b")],
            ),
            "db": VirtualClusterMemberStatus(
                replicas=1, ready=0, placements=[_placed("shop-db-0", "local-a")]
            ),
        }  # fmt: skip
        shop.status.rules = [
            RuleStatus(index=0, rule=shop.spec.placement[0].text, state=RuleState.SATISFIED),
            RuleStatus(index=1, rule=shop.spec.placement[1].text, state=RuleState.BROKEN,
                       message="db is in region local-2"),
        ]  # fmt: skip
        shop.status.conditions = [
            Condition(type="Ready", status=ConditionStatus.FALSE, reason="Provisioning"),
            Condition(type="PlacementSatisfied", status=ConditionStatus.TRUE, reason="Placed"),
        ]
        shop.status.placement_groups = [
            PlacementGroupStatus(
                account="aws", name="skybroker-acme-shop-spread-0", strategy="spread"
            )
        ]
        store.update_status(shop)

        row = skyctl("get", "virtualclusters", "-n", "acme").out.splitlines()[1]
        assert row.split()[:4] == ["shop", "general", "lb:2/2,db:0/1", "False"]

        described = skyctl("describe", "vc", "shop", "-n", "acme")
        assert described.code == 0, described.err
        text = described.out
        members = text[text.index("Members:") : text.index("Placements:")].splitlines()
        assert [line.split() for line in members[1:]] == [
            ["MEMBER", "REPLICAS", "READY"], ["lb", "2", "2"], ["db", "1", "0"]
        ]  # fmt: skip
        placements = text[text.index("Placements:") : text.index("Rules:")].splitlines()
        assert [line.split() for line in placements[1:]] == [
            ["MEMBER", "INSTANCE", "ACCOUNT", "REGION", "ZONE"],
            ["lb", "shop-lb-0", "sim-a", "local", "local-a"],
            ["lb", "shop-lb-1", "sim-a", "local", "local-b"],
            ["db", "shop-db-0", "sim-a", "local", "local-a"],
        ]
        rules = text[text.index("Rules:") : text.index("Events:")].splitlines()
        assert rules[1].split() == ["#", "RULE", "STATE", "MESSAGE"]
        assert rules[2].split() == [
            "0", "AntiAffinity", "of", "lb", "by", "zone", "(Required)", "Satisfied"
        ]  # fmt: skip
        assert rules[3].split() == [
            "1", "Proximity", "of", "lb,db", "by", "region", "(Preferred)", "Broken",
            "db", "is", "in", "region", "local-2",
        ]  # fmt: skip
        assert "PlacementSatisfied" in text  # the conditions table
        groups = text[text.index("Placement groups:") : text.index("Events:")].splitlines()
        assert [line.split() for line in groups[1:]] == [
            ["ACCOUNT", "PLACEMENT", "GROUP", "STRATEGY"],
            ["aws", "skybroker-acme-shop-spread-0", "spread"],
        ]

        bad = tmp_path / "bad.yaml"
        bad.write_text(
            (EXAMPLES / "virtualcluster.yaml").read_text().replace("members: [lb, db]",
                                                                   "members: [lb, web]")
        )  # fmt: skip
        refused = skyctl("apply", "-f", str(bad))
        assert refused.code != 0
        assert 'spec.placement[1].members[1]: no member named "web"' in refused.err
