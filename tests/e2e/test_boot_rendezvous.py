"""The boot rendezvous end to end (DESIGN §11): ``skybroker up`` on its seeded simulated cloud,
whose instances boot real ``skybroker agent`` processes with their user data.

- five instances with a BootConfig configure themselves (the config's own script reports their
  parameters), a config change reaches the running agents, and the boot secret appears nowhere
  a user without ``get`` on secrets could read it, nor in any log;
- an agent killed with SIGKILL goes silent: its instance is AgentLost after ``staleAfter``, and
  with ``remediation: Replace`` a new machine configures itself under the same identity;
- a dynamic BootConfig with three slots and four claimant processes: three claims, one 409,
  and a claimant killed frees its slot for the fourth.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from providers.simulated.agents import agent_dir
from tests.e2e.up import ROOT, Up
from tests.waiting import eventually

pytestmark = pytest.mark.slow

NS = "boot"
DEADLINE = 180.0  # booting, a 30 s stale window, a replacement: generous on 2 busy cores
SCRIPT = """#!/bin/sh
echo "{\\"port\\": \\"PORT\\", \\"revision\\": \\"$SKYBROKER_REVISION\\"}"
"""


def _bootconfig(name: str, port: str = "8080", **spec: Any) -> dict[str, Any]:
    return {
        "kind": "BootConfig",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"config": SCRIPT.replace("PORT", port), "parameters": {"role": "web"},
                 "staleAfter": "30s", **spec},
    }  # fmt: skip


def _instance(name: str, bootconfig: str, **spec: Any) -> dict[str, Any]:
    return {
        "kind": "Instance",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"pool": "general", "hardware": {"cpu": 1}, "image": "ubuntu-22.04",
                 "bootConfigRef": bootconfig, **spec},
    }  # fmt: skip


@pytest.fixture
def up(tmp_path: Path, start_up: Callable[[Path], Up]) -> Up:
    started = start_up(tmp_path / "data")
    started.wait_ready()
    return started


@pytest.fixture
def api(up: Up) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{up.url}{ROOT}", headers=up.headers(), timeout=30) as client:
        created = client.post("/namespaces", json={"kind": "Namespace", "metadata": {"name": NS}})
        assert created.status_code == 201, created.text
        yield client


def _create(api: httpx.Client, plural: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = api.post(f"/namespaces/{NS}/{plural}", json=body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def _get(api: httpx.Client, plural: str, name: str) -> dict[str, Any]:
    answer = api.get(f"/namespaces/{NS}/{plural}/{name}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _agent(api: httpx.Client, name: str) -> dict[str, Any]:
    return dict(_get(api, "instances", name)["status"].get("agent") or {})


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [c for c in obj["status"].get("conditions", []) if c["type"] == kind]
    return found[0] if found else {}


def _secret_value(api: httpx.Client, name: str) -> str:
    secret = _get(api, "secrets", name)
    return base64.b64decode(secret["data"]["secret"]).decode()


def test_five_instances_configure_themselves_follow_a_change_and_never_show_the_secret(
    up: Up, api: httpx.Client
) -> None:
    _create(api, "bootconfigs", _bootconfig("web"))
    names = [f"web-{n}" for n in range(5)]
    for name in names:
        _create(api, "instances", _instance(name, "web"))

    def configured(port: str, revision: int) -> bool:
        agents = [_agent(api, name) for name in names]
        return all(
            a.get("state") == "Configured"
            and a.get("configRevision") == revision
            and a.get("parameters") == {"port": port, "revision": str(revision)}
            for a in agents
        )

    eventually(lambda: configured("8080", 1), DEADLINE, lambda: str(_agent(api, "web-0")))
    for name in names:
        instance = _get(api, "instances", name)
        addresses = {a["address"] for a in instance["status"]["addresses"]}
        assert instance["status"]["agent"]["address"] in addresses
        assert _condition(instance, "AgentReady")["status"] == "True"

    # The config changes: the running agents apply it and report the new revision.
    patch = {"spec": {"config": SCRIPT.replace("PORT", "9090")}}
    merge = {"Content-Type": "application/merge-patch+json"}
    assert api.patch(f"/namespaces/{NS}/bootconfigs/web", json=patch, headers=merge).is_success
    eventually(lambda: configured("9090", 2), DEADLINE, lambda: str(_agent(api, "web-0")))

    # The rendezvous answers a wrong secret and an unknown uuid alike.
    instance = _get(api, "instances", "web-0")
    uid = instance["metadata"]["uid"]
    secret = _secret_value(api, f"skybroker-boot-{uid}")
    config = f"{up.url}/rendezvous/v1/configs"
    right = httpx.get(f"{config}/{uid}", headers={"Authorization": f"Bearer {secret}"})
    assert right.status_code == 200 and right.json()["revision"] == 2
    wrong = httpx.get(f"{config}/{uid}", headers={"Authorization": f"Bearer {'x' * 43}"})
    unknown = httpx.get(
        f"{config}/00000000-0000-4000-8000-000000000000",
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.content == unknown.content

    # The secret is nowhere but in its Secret: not the Instance, its events or history, the
    # server's log, or the agent's.
    answers = [
        api.get(f"/namespaces/{NS}/instances/web-0"),
        api.get(f"/namespaces/{NS}/events"),
        api.get(f"/namespaces/{NS}/instances/web-0/history"),
    ]
    assert all(answer.status_code == 200 for answer in answers)
    assert "AgentConfigured" in answers[1].text and "AgentReady" in answers[2].text
    seen = [answer.text for answer in answers] + [up.output()]
    placement = instance["status"]["placement"]
    region = api.get(f"/provideraccounts/{placement['account']}").json()["spec"]["region"]
    files = agent_dir(
        str(up.data_dir / "simulated.sqlite"),
        placement["account"],
        region,
        instance["status"]["providerID"],
    )
    seen.append((files / "agent.log").read_text())
    for text in seen:
        assert secret not in text


def _agent_pid(up: Up, api: httpx.Client, name: str) -> int:
    instance = _get(api, "instances", name)
    placement = instance["status"]["placement"]
    region = api.get(f"/provideraccounts/{placement['account']}").json()["spec"]["region"]
    files = agent_dir(
        str(up.data_dir / "simulated.sqlite"),
        placement["account"],
        region,
        instance["status"]["providerID"],
    )
    return int((files / "agent.pid").read_text())


def test_a_killed_agent_is_lost_and_its_instance_replaced_configures_itself(
    up: Up, api: httpx.Client
) -> None:
    _create(api, "bootconfigs", _bootconfig("web"))
    _create(api, "instances", _instance("web-1", "web", health={"remediation": "Replace",
                                                                "after": "1m"}))  # fmt: skip
    eventually(lambda: _agent(api, "web-1").get("state") == "Configured", DEADLINE)
    first = _get(api, "instances", "web-1")
    os.kill(_agent_pid(up, api, "web-1"), signal.SIGKILL)

    def lost_or_replaced() -> bool:
        instance = _get(api, "instances", "web-1")
        return instance["status"].get("providerID") != first["status"]["providerID"]

    eventually(lost_or_replaced, DEADLINE, lambda: str(_get(api, "instances", "web-1")["status"]))
    eventually(
        lambda: _agent(api, "web-1").get("state") == "Configured",
        DEADLINE,
        lambda: str(_agent(api, "web-1")),
    )
    replaced = _get(api, "instances", "web-1")
    assert replaced["metadata"]["uid"] == first["metadata"]["uid"]
    assert replaced["status"]["agent"]["lastRemediation"] is not None
    events = api.get(f"/namespaces/{NS}/events").json()["items"]
    reasons = {e["reason"] for e in events if e["involvedObject"]["name"] == "web-1"}
    assert {"AgentLost", "Replacing", "AgentConfigured"} <= reasons, reasons


class Claimant:
    """``skybroker agent --claim URL -`` (the enrollment secret in the environment)."""

    def __init__(self, workdir: Path, endpoint: str, enrollment: str, *flags: str) -> None:
        workdir.mkdir(parents=True)
        self.log = workdir / "agent.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SKYBROKER_")}
        command = [
            sys.executable, "-m", "skybroker", "agent", "--claim", endpoint, "-",
            "--boot-string-file", str(workdir / "boot"), "--config-path",
            str(workdir / "config"), "--retry-max", "1", *flags,
        ]  # fmt: skip
        with open(self.log, "wb") as output:
            self.process = subprocess.Popen(
                command,
                env={**env, "SKYBROKER_ENROLLMENT_SECRET": enrollment},
                stdout=output,
                stderr=subprocess.STDOUT,
            )


@pytest.fixture
def claimants() -> Iterator[list[Claimant]]:
    started: list[Claimant] = []
    yield started
    for claimant in started:
        if claimant.process.poll() is None:
            claimant.process.kill()
        claimant.process.wait(timeout=30)


def test_three_slots_four_claimants_and_a_dead_claimants_slot_is_freed(
    up: Up, api: httpx.Client, tmp_path: Path, claimants: list[Claimant]
) -> None:
    _create(api, "bootconfigs", _bootconfig("pool", dynamic=True, slots=3))
    eventually(lambda: api.get(f"/namespaces/{NS}/secrets/pool-enrollment").is_success, DEADLINE)
    enrollment = _secret_value(api, "pool-enrollment")
    for n in range(3):
        claimants.append(Claimant(tmp_path / f"c{n}", up.url, enrollment))

    def claimed(count: int) -> bool:
        status = _get(api, "bootconfigs", "pool")["status"]
        return bool(status.get("claimed") == count)

    eventually(lambda: claimed(3), DEADLINE, lambda: str(_get(api, "bootconfigs", "pool")))
    fourth = Claimant(tmp_path / "c3", up.url, enrollment, "--once")
    claimants.append(fourth)
    assert fourth.process.wait(timeout=DEADLINE) == 4, fourth.log.read_text()
    assert "no free slot" in fourth.log.read_text()

    claimants[0].process.send_signal(signal.SIGKILL)
    claimants[0].process.wait(timeout=30)
    eventually(lambda: claimed(2), DEADLINE, lambda: str(_get(api, "bootconfigs", "pool")))
    again = Claimant(tmp_path / "c4", up.url, enrollment, "--once")
    claimants.append(again)
    assert again.process.wait(timeout=DEADLINE) == 0, again.log.read_text()
    eventually(lambda: claimed(3), DEADLINE, lambda: str(_get(api, "bootconfigs", "pool")))
    for claimant in claimants:
        assert enrollment not in claimant.log.read_text()
