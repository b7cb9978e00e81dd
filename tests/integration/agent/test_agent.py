"""``skybroker agent`` as a real process against a fake rendezvous (``tests.rendezvous_peer``).

The real API server's endpoints are proven against the agent end to end elsewhere; here the
agent's own behaviour: the config written (0600) and handled, the handler's parameters and
environment, failures reported with the stderr tail, a new revision re-applied, heartbeats,
401 → exit 3, an outage ridden out (and logged once, not per attempt), claims (201, saved and
reused; 409 → exit 4), bad boot strings → exit 2 without the secret, SIGTERM → 0, and the end
of the parent process named by ``$SKYBROKER_AGENT_PARENT_PID``.
"""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from api_types.boot import new_boot_secret, parse_boot_string
from tests.integration.agent.helpers import AgentProcess
from tests.rendezvous_peer import FakeRendezvous
from tests.waiting import eventually

pytestmark = pytest.mark.slow

HANDLER = """\
import json, os, sys
config = open(sys.argv[1]).read()
env = {k: v for k, v in os.environ.items() if k.startswith("SKYBROKER_")}
open(os.path.join(os.path.dirname(sys.argv[1]), "handler-env.json"), "w").write(json.dumps(env))
print("configuring...")
print(json.dumps({"lines": len(config.splitlines()), "ok": True, "name": "web-1"}))
"""


@pytest.fixture
def agents() -> Iterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.end()


def _handler(tmp_path: Path) -> str:
    script = tmp_path / "handler.py"
    script.write_text(HANDLER)
    return f"{sys.executable} {script}"


def test_once_writes_the_config_runs_the_handler_and_reports(
    tmp_path: Path, peer: FakeRendezvous, agents: list[AgentProcess]
) -> None:
    boot = peer.identity()
    uid, secret = parse_boot_string(boot).uuid, parse_boot_string(boot).secret
    peer.set_config("line one\nline two\n", {"role": "db"})
    agent = AgentProcess(
        tmp_path / "a", "--once", "--handler", _handler(tmp_path), env={"SKYBROKER_BOOT": boot}
    )
    agents.append(agent)
    assert agent.wait() == 0, agent.log
    assert agent.config_path.read_text() == "line one\nline two\n"
    assert stat.S_IMODE(agent.config_path.stat().st_mode) == 0o600
    [report] = peer.reports_of(uid)
    assert report == {
        "status": "Configured",
        "parameters": {"lines": "2", "ok": "true", "name": "web-1"},
        "configRevision": 2,
        "address": "127.0.0.1",
    }
    env = json.loads((tmp_path / "a" / "handler-env.json").read_text())
    assert env == {
        "SKYBROKER_CONFIG": str(agent.config_path),
        "SKYBROKER_PARAMETERS": json.dumps({"role": "db"}, separators=(",", ":")),
        "SKYBROKER_REVISION": "2",
        "SKYBROKER_UUID": uid,
    }  # and not SKYBROKER_BOOT: the handler never sees the secret
    assert secret not in agent.log


def test_a_shebang_config_runs_itself_with_the_given_address(
    tmp_path: Path, peer: FakeRendezvous, agents: list[AgentProcess]
) -> None:
    boot = peer.identity()
    peer.set_config('#!/bin/sh\necho \'{"role": "cache", "rev": \'$SKYBROKER_REVISION\'}\'\n')
    agent = AgentProcess(tmp_path, "--once", "--boot-string", boot, "--address", "10.1.2.3")
    agents.append(agent)
    assert agent.wait() == 0, agent.log
    [report] = peer.reports_of(parse_boot_string(boot).uuid)
    assert report["parameters"] == {"role": "cache", "rev": "2"}
    assert report["address"] == "10.1.2.3"
    assert agent.config_path.stat().st_mode & stat.S_IXUSR


@pytest.mark.parametrize(
    ("script", "timeout", "expected"),
    [
        ("import sys; sys.stderr.write('step 1 ok\\ndisk is full\\n'); sys.exit(3)", "300",
         "exited with 3: step 1 ok\ndisk is full"),
        ("echo waiting >&2; exec sleep 60", "2", "timed out after 2 s: waiting"),
    ],
    ids=["exit-code", "timeout"],
)  # fmt: skip
def test_a_failing_handler_is_reported_failed_with_its_stderr_tail(
    tmp_path: Path,
    peer: FakeRendezvous,
    agents: list[AgentProcess],
    script: str,
    timeout: str,
    expected: str,
) -> None:
    boot = peer.identity()
    shell = script.startswith("echo")  # the timeout case: a shell starts at once, even loaded
    handler = tmp_path / ("handler.sh" if shell else "handler.py")
    handler.write_text(script)
    agent = AgentProcess(
        tmp_path / "a", "--once", "--boot-string", boot,
        "--handler", f"{'/bin/sh' if shell else sys.executable} {handler}",
        "--handler-timeout", timeout,
    )  # fmt: skip
    agents.append(agent)
    assert agent.wait() == 0, agent.log
    [report] = peer.reports_of(parse_boot_string(boot).uuid)
    assert report["status"] == "Failed"
    assert report["message"].endswith(expected)
    assert report["parameters"] == {}


def test_heartbeats_and_a_new_revision_is_applied_then_sigterm_exits_0(
    tmp_path: Path, peer: FakeRendezvous, agents: list[AgentProcess]
) -> None:
    boot = peer.identity()
    uid = parse_boot_string(boot).uuid
    agent = AgentProcess(
        tmp_path / "a", "--boot-string", boot, "--handler", _handler(tmp_path),
        "--poll-seconds", "30",
    )  # fmt: skip
    agents.append(agent)
    eventually(lambda: len(peer.reports_of(uid)) >= 3, what=lambda: agent.log)  # heartbeats
    assert {r["configRevision"] for r in peer.reports_of(uid)} == {1}
    revision = peer.set_config("one\ntwo\nthree\n")
    eventually(
        lambda: any(r["configRevision"] == revision for r in peer.reports_of(uid)),
        what=lambda: agent.log,
    )
    latest = peer.reports_of(uid)[-1]
    assert latest["parameters"]["lines"] == "3"
    assert agent.config_path.read_text() == "one\ntwo\nthree\n"
    # The change came by the long-poll.
    polls = [path for method, path in peer.requests if "afterRevision=1&" in path]
    assert polls and all("timeoutSeconds=30" in path for path in polls)
    agent.process.send_signal(signal.SIGTERM)
    assert agent.wait(timeout=30) == 0, agent.log
    assert "stopped" in agent.log


def test_a_401_ends_the_agent_with_exit_3(
    tmp_path: Path, peer: FakeRendezvous, agents: list[AgentProcess]
) -> None:
    boot = peer.identity()
    uid, secret = parse_boot_string(boot).uuid, parse_boot_string(boot).secret
    agent = AgentProcess(tmp_path / "a", "--boot-string", boot)
    agents.append(agent)
    eventually(lambda: peer.reports_of(uid), what=lambda: agent.log)
    peer.refuse_all()
    assert agent.wait() == 3, agent.log
    assert "refused this boot string" in agent.log
    assert secret not in agent.log
    # At the start too: an unknown uuid is refused.
    stranger = FakeRendezvous()
    try:
        other = AgentProcess(tmp_path / "b", "--once", "--boot-string", stranger_boot(stranger))
        agents.append(other)
        assert other.wait() == 3, other.log
    finally:
        stranger.stop()


def stranger_boot(peer: FakeRendezvous) -> str:
    """A well-formed boot string for a uuid ``peer`` does not know."""
    boot = parse_boot_string(peer.identity())
    return f"skybroker-boot:v1:{'0' * 8}-0000-4000-8000-{'0' * 12}:{boot.secret}:{boot.endpoint}"


def test_the_agent_rides_out_a_rendezvous_outage(
    tmp_path: Path, peer: FakeRendezvous, agents: list[AgentProcess]
) -> None:
    boot = peer.identity()
    uid = parse_boot_string(boot).uuid
    agent = AgentProcess(tmp_path / "a", "--boot-string", boot, "--poll-seconds", "30")
    agents.append(agent)
    eventually(lambda: peer.reports_of(uid), what=lambda: agent.log)
    peer.stop()
    eventually(lambda: "rendezvous unavailable" in agent.log, what=lambda: agent.log)
    before = len(peer.reports_of(uid))
    # The outage itself (not a wait for something): long enough for many failed attempts
    # (heartbeat every 1 s, retries at most 0.5 s apart), each of which must not be logged.
    time.sleep(3.0)
    peer.start()
    eventually(lambda: len(peer.reports_of(uid)) > before, what=lambda: agent.log)
    eventually(lambda: "rendezvous answers again" in agent.log, what=lambda: agent.log)
    revision = peer.set_config("after the restart\n")
    eventually(
        lambda: any(r["configRevision"] == revision for r in peer.reports_of(uid)),
        what=lambda: agent.log,
    )
    assert agent.process.poll() is None
    # Logged per change of state, not per failed attempt.
    assert agent.log.count("rendezvous unavailable") <= 2, agent.log


def test_claim_saves_and_reuses_the_boot_string_and_409_exits_4(
    tmp_path: Path, peer: FakeRendezvous, agents: list[AgentProcess]
) -> None:
    # A secret may start with '-' (1 in 64 of them): given as '-', it is read from the
    # environment, where argparse cannot take it for a flag.
    enrollment = peer.enable_claims(slots=1, secret="-" + new_boot_secret()[1:])
    from_env = {"SKYBROKER_ENROLLMENT_SECRET": enrollment}
    saved = tmp_path / "state" / "boot"
    claim = ["--claim", peer.endpoint, "-", "--boot-string-file", str(saved), "--once"]
    first = AgentProcess(tmp_path / "a", *claim, env=from_env)
    agents.append(first)
    assert first.wait() == 0, first.log
    [uid] = peer.claimed
    assert parse_boot_string(saved.read_text()).uuid == uid
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert len(peer.reports_of(uid)) == 1
    # A restart reuses the saved identity: no second claim.
    again = AgentProcess(tmp_path / "a", *claim, env=from_env)
    agents.append(again)
    assert again.wait() == 0, again.log
    assert peer.claimed == [uid] and len(peer.reports_of(uid)) == 2
    # Another claimant finds no free slot.
    third = AgentProcess(tmp_path / "c", "--claim", peer.endpoint, "-", "--once", env=from_env)
    agents.append(third)
    assert third.wait() == 4, third.log
    assert "no free slot" in third.log
    # A wrong enrollment secret is refused.
    wrong = AgentProcess(tmp_path / "d", "--claim", peer.endpoint, "x" * 43, "--once")
    agents.append(wrong)
    assert wrong.wait() == 3, wrong.log
    for agent in (first, again, third, wrong):
        assert enrollment not in agent.log
        assert parse_boot_string(saved.read_text()).secret not in agent.log


SECRET = "A" * 42 + "E"  # well-formed (43 characters, canonical): must never be printed


@pytest.mark.parametrize(
    ("text", "part"),
    [
        (f"skybroker-boot:v1:not-a-uuid:{SECRET}:http://127.0.0.1:1", "uuid"),
        (f"skybroker-boot:v1:{'0' * 8}-0000-4000-8000-{'0' * 12}:{SECRET}x:http://h", "secret"),
        (f"skybroker-boot:v1:{'0' * 8}-0000-4000-8000-{'0' * 12}:{SECRET}:ftp://h", "endpoint"),
        (f"skybroker-boot:v9:{'0' * 8}-0000-4000-8000-{'0' * 12}:{SECRET}:http://h", "version"),
        (f"{SECRET}", "expected"),
    ],
    ids=["uuid", "secret", "endpoint", "version", "bare-secret"],
)
@pytest.mark.parametrize("source", ["flag", "file", "env"])
def test_a_bad_boot_string_exits_2_naming_the_part_never_the_secret(
    tmp_path: Path, agents: list[AgentProcess], text: str, part: str, source: str
) -> None:
    args: list[str] = []
    env: dict[str, str] = {}
    if source == "flag":
        args = ["--boot-string", text]
    elif source == "file":
        (tmp_path / "boot").write_text(text + "\n")
        args = ["--boot-string-file", str(tmp_path / "boot")]
    else:
        env = {"SKYBROKER_BOOT": text}
    agent = AgentProcess(tmp_path / "a", *args, env=env)
    agents.append(agent)
    assert agent.wait() == 2, agent.log
    [line] = agent.log.splitlines()
    assert part in line
    assert SECRET not in agent.log and SECRET[:20] not in agent.log


def test_no_source_or_two_sources_exit_2(tmp_path: Path, agents: list[AgentProcess]) -> None:
    none = AgentProcess(tmp_path / "a")
    agents.append(none)
    assert none.wait() == 2 and "no boot string" in none.log
    both = AgentProcess(tmp_path / "b", "--boot-string", "x", env={"SKYBROKER_BOOT": "y"})
    agents.append(both)
    assert both.wait() == 2 and "two boot strings" in both.log


def test_the_agent_ends_with_the_parent_named_in_its_environment(
    tmp_path: Path, peer: FakeRendezvous, agents: list[AgentProcess]
) -> None:
    boot = peer.identity()
    uid = parse_boot_string(boot).uuid
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        agent = AgentProcess(
            tmp_path / "a", "--boot-string", boot,
            env={"SKYBROKER_AGENT_PARENT_PID": str(parent.pid)},
        )  # fmt: skip
        agents.append(agent)
        eventually(lambda: peer.reports_of(uid), what=lambda: agent.log)
        assert agent.process.poll() is None
    finally:
        parent.kill()
        parent.wait()
    assert agent.wait() == 0, agent.log
    assert f"parent process {parent.pid} is gone" in agent.log
