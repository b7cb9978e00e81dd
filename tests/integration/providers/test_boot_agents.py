"""The simulated cloud's boot agents (``boot-agents: "true"``, DESIGN §11): a real
``skybroker agent`` process per running instance whose user data is a boot string.

The agents talk to a fake rendezvous (``tests.rendezvous_peer``): the report it receives, with
the instance's private IP as the address, proves a real agent ran with that instance's user
data. The clock is fake: an instance runs when the test moves the clock past its boot.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from api_types.boot import parse_boot_string
from controller.clock import FakeClock
from providers.config import AccountConfig
from providers.simulated import SimOptions, SimulatedProvider
from providers.simulated.agents import agent_dir, agents_root
from providers.types import ImageId, InstanceCreate, InstanceId, SizeId
from tests.integration.agent.helpers import ROOT
from tests.integration.providers.conftest import REGION
from tests.integration.providers.helpers import CLOCK_START, tags
from tests.rendezvous_peer import FakeRendezvous
from tests.waiting import eventually

pytestmark = pytest.mark.slow

TRANSITION = 5.0  # seconds of fake time for boot, stop and terminate


@pytest.fixture
def providers() -> Iterator[list[SimulatedProvider]]:
    made: list[SimulatedProvider] = []
    yield made
    for provider in made:
        provider.close()


def _provider(
    tmp_path: Path,
    clock: FakeClock,
    made: list[SimulatedProvider],
    agents: str | None = "true",
) -> SimulatedProvider:
    options = {f"{k}_seconds": str(TRANSITION) for k in ("boot", "stop", "terminate")}
    if agents is not None:
        options["boot-agents"] = agents
    config = AccountConfig(
        "sim-agents", "simulated", REGION, endpoint=str(tmp_path / "cloud.db"), options=options
    )
    tmp_path.mkdir(parents=True, exist_ok=True)
    provider = SimulatedProvider(config, clock=clock)
    made.append(provider)
    return provider


def _launch(provider: SimulatedProvider, name: str, user_data: str | None) -> InstanceId:
    request = InstanceCreate(
        tags(name), SizeId("s1.small"), ImageId("img-ubuntu-2204"), user_data=user_data
    )
    return provider.create_instance(request).id


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _passes(provider: SimulatedProvider, count: int = 3) -> None:
    """Wait until the supervisor has made ``count`` more passes."""
    assert provider.boot_agents is not None
    target = provider.boot_agents.passes + count
    eventually(lambda: provider.boot_agents is not None and provider.boot_agents.passes >= target)


def test_an_agent_runs_while_the_instance_runs_and_only_then(
    tmp_path: Path, peer: FakeRendezvous, providers: list[SimulatedProvider]
) -> None:
    clock = FakeClock(CLOCK_START)
    cloud = _provider(tmp_path, clock, providers)
    boot = peer.identity()
    uid = parse_boot_string(boot).uuid
    vm = _launch(cloud, "vm-1", boot)
    address = cloud.list_instances()[0].private_ips[0]
    _passes(cloud)
    assert cloud.agent_pid(vm) is None  # pending: no agent yet

    clock.step(TRANSITION)  # running
    eventually(lambda: peer.reports_of(uid), what="the agent's first report")
    first = cloud.agent_pid(vm)
    assert first is not None and _alive(first)
    assert peer.reports_of(uid)[0]["address"] == address
    files = agent_dir(str(tmp_path / "cloud.db"), "sim-agents", REGION, vm)
    assert (files / "agent.pid").read_text().strip() == str(first)
    assert (files / "boot").read_text().strip() == boot
    assert (files / "boot").stat().st_mode & 0o077 == 0
    assert (files / "config").exists()

    cloud.stop_instance(vm)  # stopping: the agent is stopped
    eventually(lambda: cloud.agent_pid(vm) is None and not _alive(first))
    assert not (files / "agent.pid").exists()
    clock.step(TRANSITION)
    cloud.start_instance(vm)
    clock.step(TRANSITION)  # running again: a new agent
    eventually(lambda: cloud.agent_pid(vm) not in (None, first))
    second = cloud.agent_pid(vm)
    assert second is not None
    seen = len(peer.reports_of(uid))
    eventually(lambda: len(peer.reports_of(uid)) > seen, what="the new agent's report")

    cloud.delete_instance(vm)  # terminating: gone
    eventually(lambda: cloud.agent_pid(vm) is None and not _alive(second))


def test_an_agent_that_dies_is_restarted_only_by_a_new_run(
    tmp_path: Path, peer: FakeRendezvous, providers: list[SimulatedProvider]
) -> None:
    clock = FakeClock(CLOCK_START)
    cloud = _provider(tmp_path, clock, providers)
    boot = peer.identity()
    vm = _launch(cloud, "vm-1", boot)
    clock.step(TRANSITION)
    eventually(lambda: peer.reports_of(parse_boot_string(boot).uuid))
    killed = cloud.agent_pid(vm)
    assert killed is not None
    os.kill(killed, signal.SIGKILL)
    _passes(cloud, 4)
    assert cloud.agent_pid(vm) == killed  # the dead agent's run, not a new agent
    assert not _alive(killed) or _zombie(killed)
    cloud.stop_instance(vm)
    clock.step(TRANSITION)
    cloud.start_instance(vm)
    clock.step(TRANSITION)
    eventually(lambda: cloud.agent_pid(vm) not in (None, killed))


def _zombie(pid: int) -> bool:
    """True if ``pid`` has exited but is not reaped yet (still answers signal 0)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def test_no_agent_without_the_option_or_without_a_boot_string(
    tmp_path: Path, peer: FakeRendezvous, providers: list[SimulatedProvider]
) -> None:
    clock = FakeClock(CLOCK_START)
    plain = _provider(tmp_path / "off", clock, providers, agents=None)
    assert plain.boot_agents is None
    off = _launch(plain, "vm-off", peer.identity())
    cloud = _provider(tmp_path / "on", clock, providers)
    other = [
        _launch(cloud, "vm-cloud-init", "#cloud-config\npackages: [nginx]\n"),
        _launch(cloud, "vm-none", None),
        _launch(cloud, "vm-mangled", "skybroker-boot:v1:not-a-uuid:x:http://h"),
    ]
    clock.step(TRANSITION)
    _passes(cloud)
    assert plain.agent_pid(off) is None
    assert all(cloud.agent_pid(vm) is None for vm in other)
    assert not agents_root(str(tmp_path / "off" / "cloud.db")).exists()
    assert peer.reports == []


def test_close_stops_every_agent_and_one_instance_never_has_two(
    tmp_path: Path, peer: FakeRendezvous, providers: list[SimulatedProvider]
) -> None:
    clock = FakeClock(CLOCK_START)
    cloud = _provider(tmp_path, clock, providers)
    twin = _provider(tmp_path, clock, providers)  # the same account on the same file
    vms = [_launch(cloud, f"vm-{n}", peer.identity()) for n in range(2)]
    clock.step(TRANSITION)
    eventually(lambda: len({r.uuid for r in peer.reports}) == 2, what="both agents report")
    _passes(cloud)
    _passes(twin)
    pids = [cloud.agent_pid(vm) or twin.agent_pid(vm) for vm in vms]
    assert all(pids)
    for vm in vms:  # exactly one of the two providers runs it
        assert (cloud.agent_pid(vm) is None) != (twin.agent_pid(vm) is None)
    cloud.close()
    twin.close()
    assert not any(_alive(pid) for pid in pids if pid)


def test_the_option_reads_true_or_false() -> None:
    assert SimOptions.parse({"boot-agents": "true"}).boot_agents is True
    assert SimOptions.parse({"boot_agents": "False"}).boot_agents is False
    assert SimOptions.parse({}).boot_agents is False
    with pytest.raises(ValueError, match="boot-agents must be true or false"):
        SimOptions.parse({"boot-agents": "yes"})


def test_agents_die_with_the_process_that_started_them(
    tmp_path: Path, peer: FakeRendezvous
) -> None:
    """The controller SIGKILLed: nothing stops its agents but ``$SKYBROKER_AGENT_PARENT_PID``.
    The test, in another process, finds the agent through its pid file."""
    state = tmp_path / "cloud.db"
    boot = peer.identity()
    script = textwrap.dedent(
        f"""
        import sys, time
        from providers.config import AccountConfig
        from providers.simulated import SimulatedProvider
        from providers.types import ImageId, InstanceCreate, ResourceTags, SizeId
        config = AccountConfig("sim-agents", "simulated", "{REGION}", endpoint={str(state)!r},
                               options={{"boot_seconds": "0", "boot-agents": "true"}})
        cloud = SimulatedProvider(config)
        vm = cloud.create_instance(InstanceCreate(ResourceTags("vm", "u", "t"),
                                   SizeId("s1.small"), ImageId("img-ubuntu-2204"),
                                   user_data={boot!r}))
        print(vm.id, flush=True)
        time.sleep(600)
        """
    )
    controller = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert controller.stdout is not None
        vm = controller.stdout.readline().strip()
        pid_file = agent_dir(str(state), "sim-agents", REGION, vm) / "agent.pid"
        eventually(pid_file.exists, what="the agent's pid file")
        agent = int(pid_file.read_text())
        eventually(lambda: peer.reports_of(parse_boot_string(boot).uuid), what="a report")
    finally:
        controller.kill()
        controller.wait()
    eventually(lambda: not _alive(agent) or _zombie(agent), what="the orphaned agent ending")
