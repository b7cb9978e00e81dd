"""The Instance side of the boot rendezvous (DESIGN §11) on real etcd and the simulated cloud.

Pre-registration (owned Secret, rendezvous record, the boot string as the cloud's user data),
``status.agent`` from heartbeats written as the API server writes them
(``deps.rendezvous.beat``), staleness and ``spec.health`` remediation, and removal on delete.
No agent runs here: the tests write the heartbeats. The harness runs on the real clock, so a
stale agent is one whose heartbeat's ``reportedAt`` lies further back than ``staleAfter``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from prometheus_client import REGISTRY

from api_types import (
    Instance,
    InstancePhase,
    PowerState,
    ProviderAccount,
    Secret,
    VirtualCluster,
)
from api_types.compute import AgentState
from api_types.rendezvous import (
    INSTANCE_LABEL,
    SECRET_KEY,
    Heartbeat,
    ReportStatus,
    boot_secret_name,
    secret_digest,
)
from controller.store.keys import ObjectKey
from controller.store.objects import Store
from providers import ResourceKind
from providers.simulated.engine import SimulatedProvider
from reconcilers import instance, virtualcluster, volume
from tests.integration.reconcilers.harness import (
    API,
    RENDEZVOUS_URL,
    Harness,
    instance_manifest,
    pool_manifest,
    sim_account,
)

NS = "acme"
STALE_AFTER = 30
QUOTA = "options.skybroker.io/quota_instances"


def bootconfig(name: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "BootConfig",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"config": "#!/bin/sh\necho configured\n", "staleAfter": f"{STALE_AFTER}s"},
    }


def booted(name: str, **spec: Any) -> dict[str, Any]:
    return instance_manifest(name, NS, pool="general", bootConfigRef="web", **spec)


def start(harness: Harness, *accounts: dict[str, Any]) -> None:
    accounts = accounts or (sim_account("sim-a"),)
    members = [
        {"account": a["metadata"]["name"], "priority": 10 - i} for i, a in enumerate(accounts)
    ]
    harness.apply(*accounts, pool_manifest("general", members), bootconfig())
    harness.start(instance.register)


def running(obj: Instance) -> bool:
    return obj.status.phase == InstancePhase.RUNNING


def condition(obj: Instance, type_: str) -> tuple[str, str] | None:
    found = obj.status.condition(type_)
    return None if found is None else (found.status.value, found.reason)


def user_data(harness: Harness, account: str, provider_id: str) -> str | None:
    """The user data the simulated cloud holds for one of its instances."""
    cloud = cast(SimulatedProvider, harness.cloud(account))
    rows = {row.id: row for row in cloud.live_rows(ResourceKind.INSTANCE)}
    value = rows[provider_id].data.get("user_data")
    return None if value is None else str(value)


def boot_secret(harness: Harness, obj: Instance) -> str:
    found = harness.get(Secret, boot_secret_name(str(obj.metadata.uid)), NS)
    assert found is not None, "no boot Secret"
    value = found.get_text(SECRET_KEY)
    assert value is not None
    return value


def beat(
    harness: Harness,
    obj: Instance,
    status: ReportStatus = ReportStatus.CONFIGURED,
    *,
    age: float = 0.0,
    **fields: Any,
) -> Heartbeat:
    """Write a heartbeat for ``obj`` as the API server does, reported ``age`` seconds ago."""
    heartbeat = Heartbeat(
        uuid=str(obj.metadata.uid),
        boot_config="web",
        instance=obj.metadata.name,
        status=status,
        reported_at=datetime.now(UTC) - timedelta(seconds=age),
        **fields,
    )
    harness.deps.rendezvous.beat(NS, heartbeat, STALE_AFTER)
    return heartbeat


def calls(account: str, op: str) -> float:
    sample = REGISTRY.get_sample_value(
        "provider_calls_total", {"account": account, "op": op, "code": "OK"}
    )
    return sample or 0.0


def events(harness: Harness, name: str) -> dict[str, int]:
    recorder = harness.manager.recorder
    recorder.flush(10)
    found = recorder.list_events(involved=ObjectKey(Instance.PLURAL, NS, name))
    return {e.reason: e.count for e in found}


def test_pre_registration_gives_the_cloud_the_boot_string_of_an_owned_secret(
    harness: Harness,
) -> None:
    # sim-a ranks first but takes no instance: the first create fails there and is retried
    # on sim-b, with the same boot string.
    start(harness, sim_account("sim-a", quota_instances="0"), sim_account("sim-b"))
    harness.apply(booted("web-1"))

    obj = harness.wait_for(Instance, "web-1", NS, running, timeout=60)

    uid = str(obj.metadata.uid)
    assert obj.status.placement is not None and obj.status.placement.account == "sim-b"
    assert "Replacing" in events(harness, "web-1"), "the create was not retried elsewhere"
    secret_obj = harness.get(Secret, boot_secret_name(uid), NS)
    assert secret_obj is not None
    assert secret_obj.metadata.labels[INSTANCE_LABEL] == "web-1"
    (owner,) = secret_obj.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid) == ("Instance", "web-1", uid)
    secret = boot_secret(harness, obj)
    assert obj.status.provider_id is not None
    assert user_data(harness, "sim-b", obj.status.provider_id) == (
        f"skybroker-boot:v1:{uid}:{secret}:{RENDEZVOUS_URL}"
    )
    record = harness.deps.rendezvous.record(uid)
    assert record is not None
    assert (record.namespace, record.boot_config, record.instance, record.slot) == (
        NS,
        "web",
        "web-1",
        None,
    )
    assert record.secret_sha256 == secret_digest(secret)
    assert obj.status.agent is not None and obj.status.agent.state == AgentState.BOOTING
    assert condition(obj, "AgentReady") == ("False", "Booting")

    # The secret is nowhere in the Instance, its events or its history.
    assert secret not in json.dumps(obj.to_wire())
    harness.manager.recorder.flush(10)
    for event in harness.manager.recorder.list_events(NS):
        assert secret not in json.dumps(event.to_wire())
    for entry in harness.store.history(ObjectKey(Instance.PLURAL, NS, "web-1")):
        assert secret not in json.dumps(entry.to_wire(), default=str)
    for entry in harness.store.history(ObjectKey(Secret.PLURAL, NS, boot_secret_name(uid))):
        assert secret not in json.dumps(entry.to_wire(), default=str)


def test_a_missing_bootconfig_is_waited_for(harness: Harness) -> None:
    harness.apply(sim_account("sim-a"), pool_manifest("general", [{"account": "sim-a"}]))
    harness.start(instance.register)
    harness.apply(booted("web-1"))
    # Beside it, an instance without a BootConfig keeps its own user data.
    harness.apply(instance_manifest("plain", NS, pool="general", userData="#cloud-config\n"))

    harness.wait_for(
        Instance, "web-1", NS, lambda i: condition(i, "Ready") == ("False", "BootConfigNotFound")
    )
    harness.wait_for_event(Instance.PLURAL, "web-1", NS, "BootConfigNotFound")
    plain = harness.wait_for(Instance, "plain", NS, running, timeout=60)
    assert plain.status.provider_id is not None and plain.status.agent is None
    assert user_data(harness, "sim-a", plain.status.provider_id) == "#cloud-config\n"
    assert [c.id for c in harness.cloud("sim-a").list_instances()] == [plain.status.provider_id]

    harness.apply(bootconfig())
    harness.wait_for(Instance, "web-1", NS, running, timeout=60)


def test_heartbeats_move_the_agent_only_when_they_change_it(harness: Harness) -> None:
    start(harness)
    harness.apply(booted("web-1"))
    obj = harness.wait_for(Instance, "web-1", NS, running, timeout=60)
    uid = str(obj.metadata.uid)

    beat(harness, obj, address="10.0.0.5", parameters={"role": "web"}, config_revision=1)

    def configured(i: Instance) -> bool:
        return i.status.agent is not None and i.status.agent.state == AgentState.CONFIGURED

    obj = harness.wait_for(Instance, "web-1", NS, configured)
    agent = obj.status.agent
    assert agent is not None
    assert (agent.address, agent.parameters, agent.config_revision) == (
        "10.0.0.5",
        {"role": "web"},
        1,
    )
    assert agent.last_report is not None
    assert condition(obj, "AgentReady") == ("True", "Configured")
    harness.wait_for_event(Instance.PLURAL, "web-1", NS, "AgentConfigured")
    assert events(harness, "web-1")["AgentConfigured"] == 1
    history = harness.store.history(ObjectKey(Instance.PLURAL, NS, "web-1"))
    assert any(
        c["path"] == "status.conditions[AgentReady]" and "Configured" in str(c["after"])
        for entry in history
        for c in entry.changes
    )

    # The same report again (a later reportedAt, as every heartbeat has): nothing is written.
    version = obj.metadata.resource_version
    again = beat(harness, obj, address="10.0.0.5", parameters={"role": "web"}, config_revision=1)
    harness.eventually(lambda: harness.deps.heartbeats.get(NS, uid) == again)
    harness.wait_for_reconciles("Instance", 3)
    still = harness.get(Instance, "web-1", NS)
    assert still is not None and still.metadata.resource_version == version
    assert events(harness, "web-1")["AgentConfigured"] == 1

    beat(harness, obj, ReportStatus.FAILED, address="10.0.0.5", message="handler exited 3")

    def failed(i: Instance) -> bool:
        return condition(i, "AgentReady") == ("False", "AgentFailed")

    obj = harness.wait_for(Instance, "web-1", NS, failed)
    ready = obj.status.condition("AgentReady")
    assert ready is not None and "handler exited 3" in ready.message
    assert obj.status.agent is not None and obj.status.agent.state == AgentState.FAILED
    harness.wait_for_event(Instance.PLURAL, "web-1", NS, "AgentFailed")

    # Deleting the Instance removes its record and heartbeat (its Secret goes by owner GC).
    harness.store.delete(Instance, "web-1", NS)
    harness.wait_gone(Instance, "web-1", NS, timeout=60)
    harness.eventually(
        lambda: (
            harness.deps.rendezvous.record(uid) is None
            and harness.deps.rendezvous.heartbeat(NS, uid) is None
        )
    )
    harness.wait_gone(Secret, boot_secret_name(uid), NS)


def _state(state: AgentState) -> Any:
    def check(i: Instance) -> bool:
        return i.status.agent is not None and i.status.agent.state == state

    return check


def test_a_lost_agent_is_restarted_at_most_once_per_after(harness: Harness) -> None:
    start(harness)
    harness.apply(booted("web-1", health={"remediation": "Restart", "after": "10m"}))
    obj = harness.wait_for(Instance, "web-1", NS, running, timeout=60)
    stops, starts = calls("sim-a", "stop_instance"), calls("sim-a", "start_instance")

    # Its last report lies further back than staleAfter: Lost, then restarted.
    beat(harness, obj, address="10.0.0.5", age=STALE_AFTER + 30)
    harness.wait_for_event(Instance.PLURAL, "web-1", NS, "AgentLost")
    harness.wait_for_event(Instance.PLURAL, "web-1", NS, "Restarting")
    harness.eventually(lambda: calls("sim-a", "stop_instance") == stops + 1)
    harness.eventually(lambda: calls("sim-a", "start_instance") == starts + 1, timeout=60)
    obj = harness.wait_for(
        Instance, "web-1", NS, lambda i: running(i) and _state(AgentState.BOOTING)(i), timeout=60
    )
    assert obj.status.agent is not None and obj.status.agent.last_remediation is not None
    assert "DriftCorrected" not in events(harness, "web-1"), "the restart was taken for drift"
    agent_ready = [
        str(c["after"])
        for entry in harness.store.history(ObjectKey(Instance.PLURAL, NS, "web-1"))
        for c in entry.changes
        if c["path"] == "status.conditions[AgentReady]"
    ]
    assert any("AgentLost" in after for after in agent_ready), agent_ready
    assert "Booting" in agent_ready[-1], agent_ready
    assert obj.status.provider_id is not None
    assert harness.cloud("sim-a").list_instances()[0].state == "running"

    # Lost again within `after`: reported, not restarted again.
    beat(harness, obj, address="10.0.0.5", age=STALE_AFTER + 10)
    harness.wait_for(Instance, "web-1", NS, _state(AgentState.LOST))
    harness.wait_for_reconciles("Instance", 3)
    assert calls("sim-a", "stop_instance") == stops + 1
    assert events(harness, "web-1")["AgentLost"] == 2


def test_a_stopped_instance_has_its_agent_booting_not_lost(harness: Harness) -> None:
    start(harness)
    harness.apply(booted("web-1", health={"remediation": "Restart", "after": "10m"}))
    obj = harness.wait_for(Instance, "web-1", NS, running, timeout=60)
    beat(harness, obj, address="10.0.0.5")
    obj = harness.wait_for(Instance, "web-1", NS, _state(AgentState.CONFIGURED))

    obj.spec.power_state = PowerState.STOPPED
    harness.store.update(obj, actor="test")

    def stopped(i: Instance) -> bool:
        return i.status.phase == InstancePhase.STOPPED and _state(AgentState.BOOTING)(i)

    obj = harness.wait_for(Instance, "web-1", NS, stopped, timeout=60)
    assert condition(obj, "AgentReady") == ("False", "Booting")
    obj.spec.power_state = PowerState.RUNNING
    harness.store.update(obj, actor="test")
    obj = harness.wait_for(Instance, "web-1", NS, running, timeout=60)
    harness.wait_for_reconciles("Instance", 2)
    obj = harness.wait_for(Instance, "web-1", NS, _state(AgentState.BOOTING))
    assert "AgentLost" not in events(harness, "web-1")
    beat(harness, obj, address="10.0.0.6")
    obj = harness.wait_for(Instance, "web-1", NS, _state(AgentState.CONFIGURED))
    assert obj.status.agent is not None and obj.status.agent.address == "10.0.0.6"


def test_a_lost_agent_is_replaced_by_a_new_machine_with_the_same_boot_string(
    harness: Harness,
) -> None:
    start(harness)
    harness.apply(booted("web-1", health={"remediation": "Replace", "after": "10m"}))
    old = harness.wait_for(Instance, "web-1", NS, running, timeout=60)
    assert old.status.provider_id is not None
    boot_string = user_data(harness, "sim-a", old.status.provider_id)

    beat(harness, old, age=STALE_AFTER + 30)

    def replaced(i: Instance) -> bool:
        return running(i) and i.status.provider_id not in (None, old.status.provider_id)

    new = harness.wait_for(Instance, "web-1", NS, replaced, timeout=60)
    assert new.metadata.uid == old.metadata.uid
    assert new.status.provider_id is not None
    assert user_data(harness, "sim-a", new.status.provider_id) == boot_string
    assert new.status.agent is not None and new.status.agent.state == AgentState.BOOTING
    harness.wait_for_event(Instance.PLURAL, "web-1", NS, "Replacing")
    harness.eventually(
        lambda: (
            [c.id for c in harness.cloud("sim-a").list_instances() if c.state == "running"]
            == [new.status.provider_id]
        )
    )


def test_a_replaced_virtualcluster_member_keeps_its_groups_rule(harness: Harness) -> None:
    accounts = (sim_account("sim-a"), sim_account("sim-b"))
    members = [{"account": "sim-a", "priority": 10}, {"account": "sim-b", "priority": 9}]
    harness.apply(*accounts, pool_manifest("general", members), bootconfig())
    harness.start(instance.register, volume.register, virtualcluster.register)
    template = {
        "hardware": {"cpu": 1},
        "image": "ubuntu-22.04",
        "bootConfigRef": "web",
        "health": {"remediation": "Replace", "after": "10m"},
    }
    harness.apply(
        {
            "apiVersion": API,
            "kind": "VirtualCluster",
            "metadata": {"name": "shop", "namespace": NS},
            "spec": {
                "pool": "general",
                "members": [{"name": "lb", "replicas": 3, "template": template}],
                "placement": [
                    {"type": "AntiAffinity", "members": ["lb"], "topology": "zone"},
                ],
            },
        }
    )
    for ordinal in range(3):
        harness.wait_for(Instance, f"shop-lb-{ordinal}", NS, running, timeout=90)
    lost = harness.get(Instance, "shop-lb-1", NS)
    assert lost is not None and lost.status.placement is not None

    beat(harness, lost, age=STALE_AFTER + 30)

    def replaced(i: Instance) -> bool:
        return running(i) and i.status.provider_id not in (None, lost.status.provider_id)

    back = harness.wait_for(Instance, "shop-lb-1", NS, replaced, timeout=90)
    assert back.metadata.uid == lost.metadata.uid
    assert back.status.placement is not None
    assert back.status.placement.zone == lost.status.placement.zone
    harness.wait_for_event(Instance.PLURAL, "shop-lb-1", NS, "Replacing")

    def zones() -> list[str | None]:
        return sorted(
            c.zone
            for account in ("sim-a", "sim-b")
            for c in harness.cloud(account).list_instances()
            if c.state == "running"
        )

    harness.eventually(lambda: zones() == ["sim-easta", "sim-eastb", "sim-eastc"], timeout=60)
    shop = harness.get(VirtualCluster, "shop", NS)
    assert shop is not None and shop.status.rules[0].state == "Satisfied"


def test_without_a_rendezvous_url_the_instance_waits_and_says_why(
    harness: Harness,
) -> None:
    unset = Harness(harness.store, harness.state_dir, rendezvous_url=None)
    try:
        unset.apply(
            sim_account("sim-a"), pool_manifest("general", [{"account": "sim-a"}]), bootconfig()
        )
        unset.start(instance.register)
        unset.apply(booted("web-1"))
        obj = unset.wait_for(
            Instance,
            "web-1",
            NS,
            lambda i: condition(i, "Ready") == ("False", "RendezvousURLNotSet"),
        )
        ready = obj.status.condition("Ready")
        assert ready is not None and "--rendezvous-url" in ready.message
        assert unset.cloud("sim-a").list_instances() == []
    finally:
        unset.stop()


def test_a_restarted_controller_creates_with_the_secret_stored_before(
    store: Store, tmp_path: Path
) -> None:
    # The only account takes no instance: the first controller pre-registers and fails to
    # create; the account is fixed, and a new controller process creates with the same secret.
    first = Harness(store, tmp_path)
    try:
        first.apply(
            sim_account("sim-a", quota_instances="0"),
            pool_manifest("general", [{"account": "sim-a"}]),
            bootconfig(),
        )
        first.start(instance.register)
        first.apply(booted("web-1"))
        first.wait_for_event(Instance.PLURAL, "web-1", NS, "Replacing")
    finally:
        first.stop()
    obj = store.get(Instance, "web-1", NS)
    assert obj.status.provider_id is None
    secret = boot_secret(first, obj)
    account = store.get(ProviderAccount, "sim-a")
    account.metadata.annotations[QUOTA] = "10"
    store.update(account, actor="test")

    second = Harness(store, tmp_path)
    try:
        second.start(instance.register)
        obj = second.wait_for(Instance, "web-1", NS, running, timeout=60)
        assert obj.status.provider_id is not None
        uid = str(obj.metadata.uid)
        assert user_data(second, "sim-a", obj.status.provider_id) == (
            f"skybroker-boot:v1:{uid}:{secret}:{RENDEZVOUS_URL}"
        )
        assert boot_secret(second, obj) == secret
    finally:
        second.stop()
