"""Leader election and sharding (controller.leader) against a real etcd and real processes.

Short timings throughout (TTL 2 s, renew every 0.5 s, so the local deadline is 1.6 s after the
last renewal sent). The two-process tests run tests/integration/leader_process.py with this
interpreter and kill or pause it with real signals.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from api_types import registry
from controller.clock import FakeClock
from controller.errors import ConflictError
from controller.leader import LeaderElector, Leadership, ShardSet, default_identity, shard_of
from controller.leader._session import DeadlinePassed, LeaseSession, call_before
from controller.store.embedded import EmbeddedEtcd
from controller.store.etcd import EtcdClient, op_put, prefix_range_end
from controller.store.keys import KeyLayout
from controller.store.objects import Store
from controller.store.results import TxnExtras
from tests.waiting import eventually

TTL = 2
RENEW = 0.5
MARGIN = TTL / 5  # the default safety margin
# Where a test tells "at once" from "after the lease expired", it runs on a lease so long that
# the two are many seconds apart, whatever the load on the machine.
LONG_TTL = 60
AT_ONCE = 10.0
# A dead holder's lease expires after TTL; the survivor's takeover then waits only for its
# process to be scheduled — seconds on a loaded machine, never another lease.
TAKEOVER_SLACK = 10.0
#: A failure deadline only: a Python process importing grpc and pydantic on a loaded 2-core
#: machine can take tens of seconds to report that it started.
PROCESS_REPORT_TIMEOUT = 120.0
HELPER = Path(__file__).with_name("leader_process.py")


# --- in-process electors ----------------------------------------------------------------------


class Tenures:
    """Runs an elector in a thread and records its callbacks with their times."""

    def __init__(self, elector: LeaderElector) -> None:
        self.started: list[tuple[float, Leadership]] = []
        self.stopped: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=elector.run, args=(self._on_started, self._on_stopped, self._stop), daemon=True
        )
        self._thread.start()

    def _on_started(self, lead: Leadership) -> None:
        self.started.append((time.monotonic(), lead))

    def _on_stopped(self) -> None:
        self.stopped.append(time.monotonic())

    @property
    def leading(self) -> bool:
        return len(self.started) > len(self.stopped)

    @property
    def current(self) -> Leadership:
        return self.started[-1][1]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        assert not self._thread.is_alive()


@contextmanager
def campaigning(elector: LeaderElector) -> Iterator[Tenures]:
    tenures = Tenures(elector)
    try:
        yield tenures
    finally:
        tenures.stop()


def elector(
    client: EtcdClient, layout: KeyLayout, identity: str, ttl: int = TTL
) -> LeaderElector:
    return LeaderElector(client, layout, "controller", identity, ttl=ttl, renew_every=RENEW)


def get(client: EtcdClient, key: bytes) -> Any:
    kvs = list(client.range(key).kvs)
    return kvs[0] if kvs else None


def test_acquire_renew_release(etcd_client: EtcdClient, layout: KeyLayout) -> None:
    key = layout.lease_key("controller")
    with campaigning(elector(etcd_client, layout, "alpha")) as alpha:
        eventually(lambda: alpha.leading)
        lead = alpha.current
        kv = get(etcd_client, key)
        assert (kv.value, kv.lease, kv.create_revision) == (
            b"alpha",
            lead.lease_id,
            lead.create_revision,
        )
        assert lead.identity == "alpha" and lead.is_valid()
        time.sleep(TTL + 0.5)  # past one TTL: only renewals keep it
        assert lead.is_valid() and alpha.leading
        assert get(etcd_client, key).create_revision == lead.create_revision
    assert alpha.stopped and not lead.is_valid()
    assert get(etcd_client, key) is None  # revoked at once, not left to expire


def test_follower_waits_and_release_hands_over_at_once(
    etcd_client: EtcdClient, layout: KeyLayout
) -> None:
    with campaigning(elector(etcd_client, layout, "alpha", LONG_TTL)) as alpha:
        eventually(lambda: alpha.leading)
        with campaigning(elector(etcd_client, layout, "beta", LONG_TTL)) as beta:
            time.sleep(3 * RENEW)
            assert not beta.leading
            released_at = time.monotonic()
            alpha.stop()
            eventually(lambda: beta.leading)
            handover = beta.started[-1][0] - released_at
            assert handover < AT_ONCE, f"handover took {handover:.3f}s: it waited for the TTL"
            assert alpha.stopped[-1] <= beta.started[-1][0]


def test_fence_fails_after_leadership_moves(
    etcd_client: EtcdClient, layout: KeyLayout, store: Store
) -> None:
    profile = registry.parse_object(
        {
            "apiVersion": "skybroker.io/v1alpha1",
            "kind": "HardwareProfile",
            "metadata": {"name": "small"},
            "spec": {"cpu": {"min": 1, "max": 2}},
        }
    )
    probe = f"{layout.prefix}/probe".encode()
    with campaigning(elector(etcd_client, layout, "alpha")) as alpha:
        eventually(lambda: alpha.leading)
        old = alpha.current
        created = store.create(profile, extras=TxnExtras(compares=old.fence()))
        assert etcd_client.txn(old.fence(), [op_put(probe, b"alpha")]).succeeded
    with campaigning(elector(etcd_client, layout, "beta")) as beta:
        eventually(lambda: beta.leading)
        new = beta.current
        assert new.create_revision > old.create_revision
        assert not etcd_client.txn(old.fence(), [op_put(probe, b"zombie")]).succeeded
        created.metadata.labels = {"by": "zombie"}
        with pytest.raises(ConflictError):
            store.update(created, extras=TxnExtras(compares=old.fence()))
        assert etcd_client.txn(new.fence(), [op_put(probe, b"beta")]).succeeded
    assert get(etcd_client, probe).value == b"beta"


def test_deleted_key_ends_leadership_then_recampaigns(
    etcd_client: EtcdClient, layout: KeyLayout
) -> None:
    with campaigning(elector(etcd_client, layout, "alpha", LONG_TTL)) as alpha:
        eventually(lambda: alpha.leading)
        first = alpha.current
        deleted_at = time.monotonic()
        etcd_client.delete_range(layout.lease_key("controller"))
        eventually(lambda: not first.is_valid())
        eventually(lambda: alpha.stopped)
        assert alpha.stopped[0] - deleted_at < AT_ONCE  # seen on the watch, not at a deadline
        eventually(lambda: alpha.leading)  # the key is free: a new tenure
        assert alpha.current.create_revision > first.create_revision


def test_unreachable_etcd_steps_down_by_local_deadline(tmp_path: Path) -> None:
    server = EmbeddedEtcd(data_dir=tmp_path / "etcd")
    server.start()
    client = EtcdClient([server.endpoint])
    layout = KeyLayout(f"/t-{uuid.uuid4().hex[:12]}")
    try:
        with campaigning(elector(client, layout, "alpha")) as alpha:
            eventually(lambda: alpha.leading)
            lead = alpha.current
            killed_at = time.monotonic()
            server.kill()
            # The last renewal was sent before the kill, so the local deadline is at most
            # TTL - MARGIN after it (the same monotonic clock), and is_valid() is false from
            # that instant on by itself, whatever the loop does or how late it runs.
            deadline = lead._session.deadline
            assert deadline <= killed_at + TTL - MARGIN
            eventually(lambda: not lead.is_valid())
            assert time.monotonic() >= deadline
            # ... and not at the first failed renewal: an etcd blip shorter than the deadline
            # costs nothing, the loop keeps the leadership until then.
            eventually(lambda: alpha.stopped)
            assert alpha.stopped[0] >= deadline
            server.start()
            # The old lease is revived with the restarted etcd and expires after one TTL.
            eventually(lambda: alpha.leading)
            assert alpha.current.create_revision > lead.create_revision
    finally:
        client.close()
        server.stop()


@pytest.mark.slow
def test_after_an_outage_past_the_deadline_leadership_returns_at_once(tmp_path: Path) -> None:
    """The session ended while etcd was down, so its revoke failed; a restarted etcd renews
    every lease, so without a second revoke the old lease would hold the key for a whole TTL
    more. The old lease is revoked as soon as etcd answers, and the key is re-acquired."""
    server = EmbeddedEtcd(data_dir=tmp_path / "etcd")
    server.start()
    client = EtcdClient([server.endpoint], retry_for=1.0, timeout=2.0)
    layout = KeyLayout(f"/t-{uuid.uuid4().hex[:12]}")
    # Local deadline 4 s after the last renewal; etcd's lease lives LONG_TTL (60 s).
    long_lease = LeaderElector(
        client, layout, "controller", "alpha", ttl=LONG_TTL, renew_every=1.0, safety_margin=55
    )
    try:
        with campaigning(long_lease) as alpha:
            eventually(lambda: alpha.leading)
            first = alpha.current
            server.kill()
            eventually(lambda: alpha.stopped)  # stepped down by its local deadline
            time.sleep(5)  # the outage outlasts every attempt of the ended session's revoke
            server.start()
            restarted_at = time.monotonic()
            eventually(lambda: alpha.leading)
            assert time.monotonic() - restarted_at < AT_ONCE  # not after the old lease's TTL
            assert alpha.current.lease_id != first.lease_id
    finally:
        client.close()
        server.stop()


class SlowAnswers(EtcdClient):
    """An etcd client whose keep-alive answers arrive 0.3 s (of a fake clock) after sending."""

    def __init__(self, endpoint: str, clock: FakeClock) -> None:
        super().__init__([endpoint])
        self.clock = clock

    def lease_keepalive_once(self, lease_id: int) -> int:
        remaining = super().lease_keepalive_once(lease_id)
        self.clock.step(0.3)
        return remaining


def test_local_deadline_counts_from_the_renewal_sent(etcd_server: EmbeddedEtcd) -> None:
    clock = FakeClock(100.0)
    client = SlowAnswers(etcd_server.endpoint, clock)
    try:
        session = LeaseSession.grant(client, clock, ttl=TTL, margin=MARGIN)
        assert session.deadline == 100.0 + TTL - MARGIN
        clock.step(1.0)
        session.renew()  # sent at 101.0, answered at 101.3
        assert clock.now() == 101.3 and session.deadline == 101.0 + TTL - MARGIN
        clock.set(session.deadline - 0.01)
        assert session.alive()
        clock.set(session.deadline)
        assert not session.alive()  # whatever etcd thinks: its lease outlives this instant
    finally:
        client.close()


def test_calls_are_abandoned_at_the_deadline() -> None:
    clock = FakeClock()
    never = threading.Event()
    failures: list[Exception] = []

    def caller() -> None:
        try:
            call_before(clock, 1.0, never.wait)
        except DeadlinePassed as exc:
            failures.append(exc)

    thread = threading.Thread(target=caller)
    thread.start()
    assert clock.block_until_waiting(deadline=1.0)
    clock.step(1.0)
    thread.join(timeout=30)
    assert len(failures) == 1
    never.set()


def test_shard_of_is_stable_and_spread() -> None:
    # Fixed values: the same in every process and every release (crc32 of "namespace/name").
    assert shard_of("acme", "web-1", 16) == zlib.crc32(b"acme/web-1") % 16 == 7
    assert shard_of(None, "general", 4) == shard_of("", "general", 4)
    counts = [0] * 8
    for i in range(8000):
        counts[shard_of(f"tenant-{i % 37}", f"instance-{i}", 8)] += 1
    assert min(counts) > 800 and max(counts) < 1200, counts
    with pytest.raises(ValueError):
        shard_of("acme", "web-1", 0)


def test_parameters_are_checked(etcd_client: EtcdClient, layout: KeyLayout) -> None:
    identity = default_identity()
    assert "/" not in identity and identity != default_identity()
    ShardSet(etcd_client, layout, 4, identity)
    with pytest.raises(ValueError):
        LeaderElector(etcd_client, layout, "c", "me", ttl=2, renew_every=1.8)
    with pytest.raises(ValueError):
        ShardSet(etcd_client, layout, 4, "a/b")


@contextmanager
def sharding(
    client: EtcdClient, layout: KeyLayout, identity: str, ttl: int = TTL
) -> Iterator[ShardSet]:
    shards = ShardSet(client, layout, 4, identity, ttl=ttl, renew_every=RENEW)
    stop = threading.Event()
    thread = threading.Thread(target=shards.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield shards
    finally:
        stop.set()
        thread.join(timeout=10)
        assert not thread.is_alive()


def test_shards_fair_share_and_release(etcd_client: EtcdClient, layout: KeyLayout) -> None:
    with (
        sharding(etcd_client, layout, "a", LONG_TTL) as a,
        sharding(etcd_client, layout, "b", LONG_TTL) as b,
    ):
        with sharding(etcd_client, layout, "c", LONG_TTL) as c:
            members = (a, b, c)

            def split() -> list[int]:
                return sorted(len(m.owned()) for m in members)

            eventually(lambda: split() == [1, 1, 2], what=lambda: str(split()))
            assert set().union(*(m.owned() for m in members)) == {0, 1, 2, 3}
            for namespace, name in [("acme", "web-1"), ("acme", "web-2"), (None, "pool")]:
                owners = [m for m in members if m.owns(namespace, name)]
                assert len(owners) == 1
                lead = owners[0].leadership_for(namespace, name)
                assert lead is not None and lead.name == f"shard-{shard_of(namespace, name, 4)}"
        # c released its shards on stop: the other two split them at once.
        stopped_at = time.monotonic()
        eventually(lambda: len(a.owned()) == len(b.owned()) == 2)
        assert time.monotonic() - stopped_at < AT_ONCE
        assert a.owned() | b.owned() == {0, 1, 2, 3}


def test_a_member_is_ready_only_while_it_holds_its_share(
    etcd_client: EtcdClient, layout: KeyLayout
) -> None:
    """A dead process's lease still holds the shard this member should have: not ready (it
    cannot reconcile those objects) until the shard is its own."""
    dead_lease = etcd_client.lease_grant(LONG_TTL)
    for key, value in ((layout.lease_key("members/a-dead"), b"a-dead"),
                       (layout.lease_key("shard-0"), b"a-dead")):  # fmt: skip
        etcd_client.put(key, value, lease=dead_lease)
    shards = ShardSet(etcd_client, layout, 1, "b", ttl=TTL, renew_every=RENEW)
    stop = threading.Event()
    thread = threading.Thread(target=shards.run, args=(stop,), daemon=True)
    thread.start()
    try:
        # "a-dead" ranks first and wants the one shard: b, second, wants none and is ready.
        eventually(shards.holds_its_share)
        assert shards.owned() == frozenset()
        etcd_client.delete_range(layout.lease_key("members/a-dead"))
        # Now b should hold shard 0, which the dead lease still holds: not ready.
        eventually(lambda: not shards.holds_its_share())
        etcd_client.lease_revoke(dead_lease)
        eventually(shards.holds_its_share)
        assert shards.owned() == frozenset({0})
    finally:
        stop.set()
        thread.join(timeout=30)


# --- real processes ---------------------------------------------------------------------------


class Process:
    """leader_process.py as a child process; its JSON reports are collected as they come."""

    def __init__(self, server: EmbeddedEtcd, prefix: str, identity: str, *args: str) -> None:
        self.identity = identity
        self.reports: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self.popen = subprocess.Popen(
            [sys.executable, str(HELPER), server.endpoint, prefix, identity,
             "--ttl", str(TTL), "--renew", str(RENEW), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._changed:
                self.reports.append(json.loads(line))
                self._changed.notify_all()

    def events(self, kind: str) -> list[dict[str, Any]]:
        with self._changed:
            return [r for r in self.reports if r["event"] == kind]

    def wait_for(
        self, kind: str, count: int = 1, timeout: float = PROCESS_REPORT_TIMEOUT
    ) -> dict[str, Any]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.events(kind)) >= count, timeout)
        found = self.events(kind)
        assert len(found) >= count, f"{self.identity}: no {kind!r} #{count} in {self.reports}"
        return found[count - 1]

    def signal(self, sig: signal.Signals) -> None:
        os.kill(self.popen.pid, sig)

    def finish(self) -> None:
        if self.popen.poll() is None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGKILL)
        self.popen.wait(timeout=10)


@contextmanager
def processes(server: EmbeddedEtcd) -> Iterator[Callable[..., Process]]:
    started: list[Process] = []

    def start(prefix: str, identity: str, *args: str) -> Process:
        process = Process(server, prefix, identity, *args)
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.finish()


def read_log(client: EtcdClient, layout: KeyLayout) -> list[tuple[int, dict[str, Any]]]:
    prefix = f"{layout.prefix}/test/log/".encode()
    response = client.range(prefix, prefix_range_end(prefix))
    return [(int(kv.mod_revision), json.loads(kv.value)) for kv in response.kvs]


@pytest.mark.slow
def test_two_processes_never_reconcile_at_once(
    etcd_server: EmbeddedEtcd, etcd_client: EtcdClient, layout: KeyLayout
) -> None:
    with processes(etcd_server) as start:
        p1 = start(layout.prefix, "p1", "elector", "--pause-after", "20")
        p1.wait_for("started")
        p2 = start(layout.prefix, "p2", "elector")
        p2.wait_for("ready")

        # p1 stops itself (SIGSTOP) in the middle of a reconcile: a zombie with a write pending.
        paused_at = p1.wait_for("pausing")["t"]
        took_over = p2.wait_for("started")
        assert took_over["t"] - paused_at <= TTL + TAKEOVER_SLACK
        count_at_takeover = len(read_log(etcd_client, layout))
        eventually(lambda: len(read_log(etcd_client, layout)) >= count_at_takeover + 10)

        # The zombie wakes up: its pending write must be refused by the fence.
        p1.signal(signal.SIGCONT)
        assert p1.wait_for("fenced")["tenure"] < took_over["tenure"]
        p1.wait_for("stopped")

        # Kill the leader: the survivor takes over once the lease has expired.
        count_at_kill = len(read_log(etcd_client, layout))
        killed_at = time.monotonic()
        p2.signal(signal.SIGKILL)
        retaken = p1.wait_for("started", count=2)
        assert retaken["t"] - killed_at <= TTL + TAKEOVER_SLACK
        eventually(lambda: len(read_log(etcd_client, layout)) >= count_at_kill + 10)
        p1.signal(signal.SIGTERM)
        p1.wait_for("exited")

    log = read_log(etcd_client, layout)
    assert [record["counter"] for _, record in log] == list(range(1, len(log) + 1))
    tenures: list[dict[str, Any]] = []  # consecutive runs of writes by one tenure, in order
    for revision, record in log:
        if not tenures or tenures[-1]["tenure"] != record["tenure"]:
            tenures.append({**record, "first_started": record["started"], "revisions": []})
        tenures[-1]["last_started"] = record["started"]
        tenures[-1]["revisions"].append(revision)
    assert [t["holder"] for t in tenures] == ["p1", "p2", "p1"]
    for before, after in itertools.pairwise(tenures):
        # No write from a holder after the next tenure began (etcd's order) ...
        assert max(before["revisions"]) < after["tenure"] <= min(after["revisions"])
        # ... and no reconcile began before the previous holder's last one (the clock's order):
        # the old holder had stopped before the new one even acquired.
        assert before["last_started"] < after["acquired_at"] <= after["first_started"]


@pytest.mark.slow
def test_two_processes_share_shards_and_survivor_takes_all(
    etcd_server: EmbeddedEtcd, etcd_client: EtcdClient, layout: KeyLayout
) -> None:
    def holders() -> dict[str, str]:
        prefix = layout.lease_key("shard-")
        response = etcd_client.range(prefix, prefix_range_end(prefix))
        return {kv.key.decode().rsplit("/", 1)[1]: kv.value.decode() for kv in response.kvs}

    def owned(process: Process) -> list[int]:
        changes = process.events("shards")
        return changes[-1]["owned"] if changes else []

    with processes(etcd_server) as start:
        a = start(layout.prefix, "a", "shards", "--total", "4")
        b = start(layout.prefix, "b", "shards", "--total", "4")

        def balanced() -> bool:
            held = sorted(holders().values())
            return held == ["a", "a", "b", "b"] and len(owned(a)) == len(owned(b)) == 2

        eventually(balanced, what=lambda: str((holders(), a.reports, b.reports)))
        assert set(owned(a)).isdisjoint(owned(b))

        killed_at = time.monotonic()
        a.signal(signal.SIGKILL)

        def survivor_has_all() -> bool:
            return sorted(holders().values()) == ["b"] * 4 and owned(b) == [0, 1, 2, 3]

        eventually(survivor_has_all, what=lambda: str((holders(), b.reports)))
        assert time.monotonic() - killed_at <= TTL + TAKEOVER_SLACK
