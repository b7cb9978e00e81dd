"""The scale-out shape under faults (DESIGN §13): three etcd members, two API servers, three
controller processes, and 300 instances converging while members and a controller are killed.

Real processes on loopback: an :class:`~tests.etcd_cluster.EtcdCluster`, two ``skybroker
apiserver`` and three ``skybroker controller --shards 6``, every one given all three members
(``--etcd-endpoints a,b,c``), the controllers sharing one simulated cloud (its SQLite file).
The instances are created through the API servers by skyctl's REST client given both servers
(each creator prefers its own and falls back to the other); a REST watch client on each API
server follows the instances from a list, resuming from its last resourceVersion when its
stream breaks and re-listing on 410.

The faults, in order, while the instances are created and converge: SIGKILL a member that does
not lead; SIGKILL a controller; then SIGKILL the member that leads. Killing two of three members
would leave no quorum — nothing could be written, which is etcd's contract, not a fault we can
survive — so the first dead member is brought back before the leader is killed: replaced by an
empty member on its addresses (``EtcdCluster.replace``; the operator's procedure for a failed
member, and the way around etcd 3.5.1's inconsistent restart after SIGKILL). The creators
hold their last 120 instances until the leader is dead, so those are created, and all converge,
under that fault. The run ends on two members of three, and two controllers.

Afterwards: every instance Running and Ready; in the cloud exactly 300 instances, one per
object uid and one per create token, none without an object (no duplicate, no leak); and each
watch client's stream, cut into the stretches between its (re-)lists, holds exactly the etcd
events of its stretch, in order (it saw every event, or got 410 and re-listed), its final view
being the store's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from api_types import Instance, registry
from controller.store.etcd import EtcdClient
from controller.store.keys import KeyLayout
from controller.store.objects import Store
from controller.store.watch import PrefixWatch
from skyctl.backend import ApiError
from skyctl.http import HttpBackend
from tests.e2e.test_crash_and_faults import (
    API,
    assert_cloud_matches_store,
    cloud_instances,
    instance_manifest,
    seed,
)
from tests.e2e.up import free_port
from tests.etcd_cluster import EtcdCluster
from tests.waiting import eventually

pytestmark = pytest.mark.slow

COUNT = 300
SHARDS = 6
PREFIX = "/ha"
TOKEN = "tok-admin"
INSTANCES = registry.by_kind("Instance")
#: Failure detectors, not measurements (a loaded 2-core machine runs 8 servers here).
CREATE_DEADLINE = 120.0
CONVERGE_DEADLINE = 240.0

Event = tuple[int, str, str]  # resourceVersion, name, ADDED|MODIFIED|DELETED


def _spawn(log: Path, *args: str) -> subprocess.Popen[bytes]:
    with open(log, "wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "skybroker", "--log-level", "warning", *args],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def _tail(log: Path, limit: int = 3000) -> str:
    return f"--- {log.name} ---\n{log.read_text(errors='replace')[-limit:]}"


@dataclass
class Stretch:
    """What a watch client received between two (re-)lists: it starts at the list's
    resourceVersion and reached ``reached`` (an event's or a bookmark's)."""

    start: int
    reached: int
    events: list[Event] = field(default_factory=list)


class RestWatcher:
    """A REST watch client on one API server (skyctl's ``HttpBackend``): list, then watch from
    the list's resourceVersion; a broken stream resumes from the last one reached, a 410
    re-lists. It records every event per stretch, and its view (name → resourceVersion)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.backend = HttpBackend(url, TOKEN)
        self.view: dict[str, int] = {}
        self.stretches: list[Stretch] = []
        self.relists = self.resumes = 0
        self.problems: list[str] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch {url}", daemon=True)

    def start(self) -> None:
        self._relist()  # before any instance exists, so every stretch is covered
        self._thread.start()

    def stop(self) -> None:
        """Stop following; the thread ends when its API server stops (closing the client does
        not interrupt a stream being read)."""
        self._stopped.set()
        self.backend.close()

    def _relist(self) -> None:
        listed = self.backend.list(INSTANCES, "acme", None)
        version = int(listed.resource_version)
        self.view = {
            o["metadata"]["name"]: int(o["metadata"]["resourceVersion"]) for o in listed.items
        }
        self.stretches.append(Stretch(version, version))

    def _run(self) -> None:
        stale = False
        while not self._stopped.is_set():
            try:
                if stale:
                    self._relist()
                    self.relists, stale = self.relists + 1, False
                self._follow(self.stretches[-1])
            except ApiError as exc:
                if self._stopped.is_set():
                    return
                if exc.code == 410:
                    stale = True
                elif exc.retryable:
                    self.resumes += 1
                else:
                    self.problems.append(f"{exc.code} {exc}")
                time.sleep(0.2)
            except Exception as exc:  # recorded: the test fails on it
                if self._stopped.is_set():
                    return
                self.problems.append(repr(exc))
                time.sleep(0.2)

    def _follow(self, stretch: Stretch) -> None:
        for event in self.backend.watch(INSTANCES, "acme", None, str(stretch.reached)):
            metadata = event.object.get("metadata") or {}
            version = int(metadata["resourceVersion"])
            if version < stretch.reached or (
                event.type != "BOOKMARK" and version == stretch.reached
            ):
                self.problems.append(f"{event.type} at {version} after {stretch.reached}")
            if event.type != "BOOKMARK":
                name = metadata["name"]
                stretch.events.append((version, name, event.type))
                if event.type == "DELETED":
                    self.view.pop(name, None)
                else:
                    self.view[name] = version
            # Last: whoever reads ``reached`` finds every event up to it recorded.
            stretch.reached = max(stretch.reached, version)

    def recorded(self) -> list[Stretch]:
        """The stretches as they are now (the thread goes on appending to the last)."""
        copies = []
        for stretch in list(self.stretches):
            reached = stretch.reached
            events = [e for e in list(stretch.events) if e[0] <= reached]
            copies.append(Stretch(stretch.start, reached, events))
        return copies


def etcd_events(client: EtcdClient, prefix: bytes, after: int, until: int) -> list[Event]:
    """Every change under ``prefix`` in revisions (after, until], as etcd recorded it."""
    events: list[Event] = []
    watch = PrefixWatch(client, prefix, after + 1)
    for batch in watch:
        for e in batch:
            if e.mod_revision <= until:
                kind = "DELETED" if e.deleted else (
                    "ADDED" if e.create_revision == e.mod_revision else "MODIFIED"
                )  # fmt: skip
                events.append((e.mod_revision, e.key.decode().rsplit("/", 1)[1], kind))
        if watch.last_revision >= until:
            watch.stop()
    return events


class Creator:
    """Creates its share of the instances through skyctl's client given both API servers (its
    own first); a failed create is tried again, and an AlreadyExists answer means an earlier
    try went through before its answer was lost. After ``hold_after`` creates it waits for
    ``hold`` (set once the leader member is killed, so that the rest are created and converge
    under that fault however fast or slow the earlier steps were)."""

    def __init__(
        self, servers: list[str], indices: range, hold: threading.Event, hold_after: int
    ) -> None:
        self.backend = HttpBackend(servers, TOKEN)
        self.indices = indices
        self.hold, self.hold_after = hold, hold_after
        self.created = 0
        self.retries = 0
        self.failure: str | None = None
        self.thread = threading.Thread(target=self._run, name="creator", daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 2 * CREATE_DEADLINE
        try:
            for i in self.indices:
                if self.created == self.hold_after and not self.hold.wait(CREATE_DEADLINE):
                    raise TimeoutError("never released")
                while True:
                    try:
                        self.backend.create(instance_manifest(i), dry_run=False)
                        break
                    except ApiError as exc:
                        if exc.code == 409:
                            break
                        if not exc.retryable or time.monotonic() > deadline:
                            raise
                        self.retries += 1
                        time.sleep(0.1)
                self.created += 1
                time.sleep(0.03)  # spread the creates over the faults
        except Exception as exc:  # reported by the test
            self.failure = f"instance {i}: {exc!r}"
        finally:
            self.backend.close()


def test_three_members_two_apiservers_three_controllers_survive_kills(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    started = time.monotonic()
    cluster = EtcdCluster(tmp_path / "etcd")
    cluster.start()
    client = EtcdClient(cluster.endpoints)
    store = Store(client, KeyLayout(PREFIX))
    watchers: list[RestWatcher] = []
    try:
        namespace = {"apiVersion": API, "kind": "Namespace", "metadata": {"name": "acme"}}
        store.create(registry.parse_object(namespace))
        seed(store, 0, boot_seconds="2")  # the accounts and the pool, no instances
        tokens = tmp_path / "tokens.csv"
        tokens.write_text(f'{TOKEN},admin,u-admin,"system:masters"\n')
        etcd = ("--etcd-endpoints", cluster.endpoints_flag, "--prefix", PREFIX)
        ports = [free_port() for _ in range(2)]
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        logs = [tmp_path / f"apiserver-{n}.log" for n in range(2)]
        logs += [tmp_path / f"controller-{n}.log" for n in range(3)]
        for n, port in enumerate(ports):
            processes.append(
                _spawn(logs[n], "apiserver", *etcd, "--listen", f"127.0.0.1:{port}",
                       "--token-file", str(tokens))
            )  # fmt: skip
        controllers = [
            _spawn(logs[2 + n], "controller", *etcd, "--simulated-state-dir", str(tmp_path),
                   "--health-listen", "", "--identity", f"controller-{n}",
                   "--shards", str(SHARDS), "--workers", "4", "--lease-ttl", "3",
                   "--renew-every", "1")
            for n in range(3)
        ]  # fmt: skip
        processes.extend(controllers)

        def describe() -> str:
            phases = Counter(i.status.phase for i in store.list(Instance, "acme").items)
            return f"phases {dict(phases)}\n" + "\n".join(_tail(log) for log in logs)

        for url in urls:  # ready: its caches (admission's pools and accounts) are synced
            eventually(lambda u=url: _ready(u), timeout=90, poll=0.1, what=describe)  # type: ignore[misc]
        watchers = [RestWatcher(url) for url in urls]
        for watcher in watchers:
            watcher.start()

        first_create = time.monotonic()
        leader_killed = threading.Event()
        creators = [
            Creator([urls[k], urls[1 - k]], range(k, COUNT, 2), leader_killed, 3 * COUNT // 10)
            for k in range(2)
        ]  # fmt: skip
        for creator in creators:
            creator.thread.start()

        def created() -> int:
            return sum(c.created for c in creators)

        faults: list[str] = []
        eventually(lambda: created() >= COUNT // 5, timeout=CREATE_DEADLINE, what=describe)
        follower = cluster.follower()
        cluster.kill(follower)
        faults.append(f"member m{follower} killed at {created()} created")

        eventually(lambda: created() >= 2 * COUNT // 5, timeout=CREATE_DEADLINE, what=describe)
        controllers[0].send_signal(signal.SIGKILL)
        controllers[0].wait(timeout=10)
        faults.append(f"controller-0 killed at {created()} created")

        cluster.replace(follower)
        faults.append(f"member m{follower} replaced at {created()} created")
        leader = cluster.leader()
        running = sum(i.status.phase == "Running" for i in store.list(Instance, "acme").items)
        cluster.kill(leader)
        leader_killed.set()
        faults.append(f"leader m{leader} killed at {created()} created, {running} running")

        for creator in creators:
            creator.thread.join(timeout=CREATE_DEADLINE)
            assert creator.failure is None, f"{creator.failure}\n{describe()}"
        assert created() == COUNT

        def ready(instance: Instance) -> bool:
            condition = instance.status.condition("Ready")
            return (
                instance.status.phase == "Running"
                and str(getattr(condition, "status", "")) == "True"
            )

        def converged() -> bool:
            items = store.list(Instance, "acme").items
            return len(items) == COUNT and all(ready(i) for i in items)

        eventually(converged, timeout=CONVERGE_DEADLINE, poll=0.5, what=describe)
        converged_at = time.monotonic()

        # The cloud: exactly one instance per object, found by uid and by create token.
        assert_cloud_matches_store(store, tmp_path, COUNT)
        in_cloud = cloud_instances(tmp_path)
        tokens_seen = Counter(i.token for i in in_cloud)
        assert len(tokens_seen) == COUNT and set(tokens_seen.values()) == {1}, tokens_seen

        # The watch clients: their views reach the store's, and every stretch holds exactly
        # the events etcd recorded for it, in order.
        def in_store() -> dict[str, int]:
            listed = store.list(Instance, "acme").items
            return {i.metadata.name: int(i.metadata.resource_version or 0) for i in listed}

        for watcher in watchers:
            eventually(
                lambda w=watcher: w.view == in_store(),  # type: ignore[misc]
                timeout=60,
                poll=0.2,
                what=lambda w=watcher: f"{w.url}: {len(w.view)} seen, problems {w.problems}",  # type: ignore[misc]
            )
        recorded = {watcher.url: watcher.recorded() for watcher in watchers}
        prefix = store.layout.kind_prefix("instances", "acme")
        after = min(s.start for stretches in recorded.values() for s in stretches)
        until = max(s.reached for stretches in recorded.values() for s in stretches)
        truth = etcd_events(client, prefix, after, until)
        for watcher in watchers:
            assert not watcher.problems, f"{watcher.url}: {watcher.problems}"
            for stretch in recorded[watcher.url]:
                wanted = [e for e in truth if stretch.start < e[0] <= stretch.reached]
                assert stretch.events == wanted, (
                    f"{watcher.url}: stretch from {stretch.start} to {stretch.reached} "
                    f"differs from etcd's events"
                )
        report = ", ".join(
            f"{w.url}: {sum(len(s.events) for s in recorded[w.url])} events, "
            f"{w.resumes} resumes, {w.relists} re-lists"
            for w in watchers
        )
        retries = sum(c.retries for c in creators)
        print(
            f"\nsetup {first_create - started:.1f}s, converged {COUNT} "
            f"{converged_at - first_create:.1f}s after the first create, checked in "
            f"{time.monotonic() - converged_at:.1f}s; {'; '.join(faults)}; "
            f"create retries {retries}; {report}"
        )
    finally:
        stopping = time.monotonic()
        for watcher in watchers:
            watcher.stop()
        for process in processes:
            if process.poll() is None:
                process.kill()
        client.close()
        cluster.stop()
        print(f"stopped in {time.monotonic() - stopping:.1f}s")


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
