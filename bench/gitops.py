"""A GitSource keeping N objects applied, against raw etcd and ``skyctl apply -R`` in one run.

Issue #12's benchmark: a repository of ``--objects`` Instances (one file each, under
``objects/``) served over git:// by a dulwich server that counts what crosses the wire (every
connection is one round trip; a connection that asks for objects is a pack fetch). The real
manager runs in-process on an embedded etcd with only the GitSource controller registered
(the Instances are never launched: their reconciler does not run), applying as a
serviceAccount bound to ``edit`` in the namespace, with ``interval: 5s``. Measured, in order:

1. raw etcd CAS transactions/s of one caller (an apply is sequential) — the limit;
2. first sync: seconds from the GitSource's creation until it is Ready at the first commit,
   every object in the store; objects/s and the ratio to the raw CAS rate;
3. ``--intervals`` passes with no new commit (real time, one per interval): etcd revisions
   (must be 0), git round trips (must be one ref lookup per pass, no pack fetched) and the
   seconds a pass takes (it re-plans the revision: one read per object);
4. ``skyctl diff --gitsource --revision next`` of a branch changing 10 objects: seconds from
   the request to the answer in ``status.plan``, etcd revisions (the request and the answer);
5. one commit changing 10 objects: etcd revisions and which keys changed (about 10 objects,
   their history records, the GitSource's status and its event);
6. ``skyctl --etcd … apply -R -f DIR`` of the same files (written to a temporary directory)
   into a fresh prefix of the same etcd, in-process: skyctl's admin mode runs the API server's
   admission in-process as ``system:masters`` (no RBAC lookups), where the GitSource goes
   through RBAC as its serviceAccount and dry-runs every document before writing any.

Writes are counted twice: etcd's revision (every transaction is one; this etcd serves nothing
else) and the keys under the run's prefix whose ``mod_revision`` moved, by kind of key.
The last line is exactly::

    gitops N=<n> first_sync_seconds=<s> skyctl_apply_seconds=<a> first_sync_over_skyctl=<s/a> \
raw_cas_per_s=<c> sync_ratio_to_raw=<r> idle_passes=<p> idle_writes=<w> \
round_trips_per_pass=<t> idle_pack_fetches=<f> commit_writes=<x> plan_seconds=<p> \
plan_writes=<q>

    python -m bench.gitops [--objects 1000] [--intervals 10] [--etcd-endpoints URL,...]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY

from api_types import GitSource, Instance, registry
from api_types.gitops import SOURCE_LABEL, GitPlan
from bench._common import Row, etcd_for_bench, print_table
from bench.store_limits import raw_cas_rate
from controller.clock import RealClock
from controller.logging import configure_logging
from controller.manager import Manager, ManagerOptions
from controller.metrics import RECONCILE_RESULTS
from controller.store.etcd import EtcdClient
from controller.store.keys import KeyLayout
from controller.store.objects import Store
from reconcilers import gitsource
from reconcilers.accounts import ProviderRegistry
from reconcilers.deps import Deps
from reconcilers.placement import PlacementMemory
from skybroker.main import tune_interpreter
from skybroker.wiring import GitOpsBackends
from skyctl.main import main as skyctl
from tests.etcd_writes import key_revisions, settled_revisions
from tests.gitservers import Origin, ServerLog, git_daemon
from tests.integration.gitsource.scenario import request_plan

API = "skybroker.io/v1alpha1"
NS = "bench"
SERVICE_ACCOUNT = "gitops-bench"
SOURCE = "infra"
DIRECTORY = "objects"
INTERVAL_SECONDS = 5  # the smallest interval a GitSource accepts
CHANGED = 10


# --- the repository and its server ------------------------------------------------------------


def instance_file(index: int, cpu: int = 1) -> bytes:
    """One Instance per file; no namespace (the GitSource's is the default, as ``-n`` is for
    skyctl)."""
    manifest = {
        "apiVersion": API,
        "kind": "Instance",
        "metadata": {"name": f"vm-{index:05d}"},
        "spec": {"pool": "general", "hardware": {"cpu": cpu}, "image": "ubuntu-22.04"},
    }
    return yaml.safe_dump(manifest, sort_keys=False).encode()


def repository_files(count: int, changed: int = 0) -> dict[str, bytes]:
    """``objects/vm-NNNNN.yaml`` for each object; the first ``changed`` get cpu 2."""
    return {
        f"{DIRECTORY}/vm-{i:05d}.yaml": instance_file(i, cpu=2 if i < changed else 1)
        for i in range(count)
    }


# --- the store ------------------------------------------------------------------------------


def cluster_manifests() -> list[dict[str, Any]]:
    """What the Instances need to pass admission, and the serviceAccount's binding."""
    return [
        {"apiVersion": API, "kind": "Namespace", "metadata": {"name": NS}},
        {
            "apiVersion": API,
            "kind": "ProviderAccount",
            "metadata": {"name": "sim-east"},
            "spec": {
                "driver": "simulated",
                "region": "sim-east-1",
                "images": {"ubuntu-22.04": "img-ubuntu-2204"},
            },
        },
        {
            "apiVersion": API,
            "kind": "Pool",
            "metadata": {"name": "general"},
            "spec": {"members": [{"account": "sim-east"}], "policy": {"type": "RoundRobin"}},
        },
        {
            "apiVersion": API,
            "kind": "RoleBinding",
            "metadata": {"name": "gitops-edit", "namespace": NS},
            "roleRef": {"kind": "ClusterRole", "name": "edit"},
            "subjects": [{"kind": "User", "name": SERVICE_ACCOUNT}],
        },
    ]


def seed(store: Store) -> None:
    for manifest in cluster_manifests():
        store.create(registry.parse_object(manifest), actor="bench")


def git_source(url: str) -> Any:
    return registry.parse_object(
        {
            "apiVersion": API,
            "kind": "GitSource",
            "metadata": {"name": SOURCE, "namespace": NS},
            "spec": {
                "url": url,
                "ref": {"branch": "main"},
                "path": DIRECTORY,
                "interval": f"{INTERVAL_SECONDS}s",
                "prune": True,
                "serviceAccount": SERVICE_ACCOUNT,
            },
        }
    )


def gitsource_reconciles() -> float:
    """GitSource passes finished so far in this process, whatever their result."""
    return sum(
        REGISTRY.get_sample_value("reconcile_total", {"kind": GitSource.KIND, "result": r}) or 0.0
        for r in RECONCILE_RESULTS
    )


def gitsource_pass_seconds() -> float:
    """Seconds spent in GitSource passes so far in this process."""
    labels = {"kind": GitSource.KIND}
    return REGISTRY.get_sample_value("reconcile_duration_seconds_sum", labels) or 0.0


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def applied(store: Store, sha: str) -> Callable[[], bool]:
    """The GitSource is Ready with ``sha`` applied."""
    revision = f"main@sha1:{sha}"

    def check() -> bool:
        source = store.get(GitSource, SOURCE, NS)
        ready = source.status.condition("Ready")
        return (
            ready is not None
            and ready.status == "True"
            and source.status.last_applied_revision == revision
        )

    return check


# --- what a window of the run wrote and fetched -----------------------------------------------


@dataclass(frozen=True)
class Mark:
    revision: int
    keys: dict[bytes, int]
    reconciles: float
    pass_seconds: float
    connections: int
    pack_fetches: int
    at: float


def mark(client: EtcdClient, prefix: str, log: ServerLog) -> Mark:
    connections, fetches = len(log.requests), len(log.fetches)
    return Mark(
        client.current_revision(),
        key_revisions(client, prefix),
        gitsource_reconciles(),
        gitsource_pass_seconds(),
        connections,
        fetches,
        time.monotonic(),
    )


def mark_after(
    passes: int, client: EtcdClient, prefix: str, log: ServerLog, timeout: float
) -> Mark:
    """A mark taken as soon as ``passes`` more GitSource passes have ended.

    Passes of one GitSource never overlap, and the next one starts an interval later unless
    a write queued it — so right after a pass ends none is under way, and the round trips
    and passes a window counts pair up (a pass opens its connection as it starts)."""
    start = gitsource_reconciles()
    wait_until(lambda: gitsource_reconciles() - start >= passes, timeout, f"{passes} passes")
    return mark(client, prefix, log)


@dataclass(frozen=True)
class Window:
    seconds: float
    revisions: int
    changed_keys: Counter[str]
    changed_objects: list[str]
    passes: int
    pass_seconds: float
    round_trips: int
    pack_fetches: int

    @classmethod
    def between(cls, before: Mark, after: Mark, prefix: str) -> Window:
        changed: Counter[str] = Counter()
        objects = []
        for key, revision in after.keys.items():
            if before.keys.get(key) == revision:
                continue
            parts = key.decode()[len(prefix) + 1 :].split("/")
            # registry/<plural>/…, history/<plural>/…, events/…: the kind of key that moved.
            kind = "/".join(parts[:2]) if parts[0] in ("registry", "history") else parts[0]
            changed[kind] += 1
            if kind == "registry/instances":
                objects.append(parts[-1])
        changed["deleted"] = len(before.keys.keys() - after.keys.keys())
        return cls(
            after.at - before.at,
            after.revision - before.revision,
            changed,
            sorted(objects),
            round(after.reconciles - before.reconciles),
            after.pass_seconds - before.pass_seconds,
            after.connections - before.connections,
            after.pack_fetches - before.pack_fetches,
        )

    def keys_summary(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(self.changed_keys.items()) if v) or "none"


# --- the run --------------------------------------------------------------------------------


def gitops_manager(store: Store, cache_dir: Path) -> tuple[Manager, GitOpsBackends]:
    """A manager running only the GitSource controller (the Instances it applies stay put),
    as in production otherwise: the API's admission and RBAC in-process."""
    clock = RealClock()
    manager = Manager(store, ManagerOptions(workers=4, health_listen=None), clock=clock)
    deps = Deps(manager, ProviderRegistry(store, clock=clock), clock, PlacementMemory(clock))
    backends = GitOpsBackends(store)
    gitsource.register(deps, backends, cache_dir)
    return manager, backends


@dataclass(frozen=True)
class GitOpsResult:
    first_sync_seconds: float
    first_sync_revisions: int
    idle: Window
    commit: Window
    commit_seconds: float
    plan_seconds: float
    plan_revisions: int
    plan_changes: int


def run_gitops(
    client: EtcdClient, prefix: str, origin: Origin, count: int, intervals: int, work: Path
) -> GitOpsResult:
    store = Store(client, KeyLayout(prefix))
    seed(store)
    first = origin.commit(repository_files(count), message=f"{count} objects")
    with git_daemon(origin) as served:
        url, log = served.url, served.log
        assert log is not None
        manager, backends = gitops_manager(store, work / "git-cache")
        started = threading.Event()
        thread = threading.Thread(
            target=manager.run, kwargs={"ready": started.set}, name="manager", daemon=True
        )
        thread.start()
        try:
            wait_until(started.is_set, 60, "the manager to start")
            wait_until(lambda: bool(manager.shards.owned()), 60, "the manager's shard lease")
            revision = client.current_revision()
            created = time.monotonic()
            store.create(git_source(url), actor="bench")
            wait_until(applied(store, first), 1800, f"the first sync of {count} objects")
            first_sync = time.monotonic() - created
            first_sync_revisions = client.current_revision() - revision
            instances = store.list(Instance, NS).items
            labelled = [i for i in instances if SOURCE_LABEL in (i.metadata.labels or {})]
            if len(labelled) != count:
                raise SystemExit(f"first sync: {len(labelled)} of {count} objects in the store")

            # Drift passes queued by the first sync's own writes, events: let them land. Every
            # window opens and closes right after a pass ends (see ``mark_after``).
            settled_revisions(client, prefix, quiet_for=2.0, timeout=600)
            idle_timeout = intervals * INTERVAL_SECONDS * 4 + 120
            before = mark_after(1, client, prefix, log, idle_timeout)
            after = mark_after(intervals, client, prefix, log, idle_timeout)
            idle = Window.between(before, after, prefix)

            plan_seconds, plan_revisions, plan = plan_of_a_branch(client, store, origin, count)
            before = mark_after(1, client, prefix, log, idle_timeout)
            second = origin.commit(repository_files(count, CHANGED), message=f"{CHANGED} objects")
            wait_until(applied(store, second), INTERVAL_SECONDS * 4 + 600, "the second commit")
            commit_seconds = time.monotonic() - before.at
            settled_revisions(client, prefix, quiet_for=2.0, timeout=600)
            after = mark_after(1, client, prefix, log, INTERVAL_SECONDS * 4 + 120)
            commit = Window.between(before, after, prefix)
        finally:
            manager.stop()
            thread.join(60)
            backends.stop()
    return GitOpsResult(
        first_sync, first_sync_revisions, idle, commit, commit_seconds, plan_seconds,
        plan_revisions, len(plan.changes) if plan else 0,
    )  # fmt: skip


def plan_of_a_branch(
    client: EtcdClient, store: Store, origin: Origin, count: int
) -> tuple[float, int, GitPlan | None]:
    """``skyctl diff --gitsource --revision next`` of a branch changing ``CHANGED`` objects:
    seconds from the request to the answer, etcd revisions meanwhile, the plan."""
    origin.commit(repository_files(count, CHANGED), branch="next", message="plan me")
    revision = client.current_revision()
    started = time.monotonic()
    request = request_plan(store, NS, SOURCE, "next")

    def answered() -> bool:
        plan = store.get(GitSource, SOURCE, NS).status.plan
        return plan is not None and plan.request == request

    wait_until(answered, 600, "the plan of branch next")
    seconds = time.monotonic() - started
    plan = store.get(GitSource, SOURCE, NS).status.plan
    if plan is None or plan.error is not None or len(plan.changes) != CHANGED:
        raise SystemExit(f"the plan of branch next is not {CHANGED} updates: {plan}")
    return seconds, client.current_revision() - revision, plan


def skyctl_apply_seconds(prefix: str, client: EtcdClient, count: int) -> float:
    """``skyctl --etcd … apply -R -f DIR -n bench`` of the repository's files, in-process,
    into a fresh prefix seeded like the GitSource's."""
    seed(Store(client, KeyLayout(prefix)))
    with tempfile.TemporaryDirectory(prefix="skybroker-bench-apply-") as directory:
        for name, data in repository_files(count).items():
            path = Path(directory) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        out, err = io.StringIO(), io.StringIO()
        argv = [
            "--etcd",
            ",".join(client.endpoints),
            "--etcd-prefix",
            prefix,
            "apply",
            "-R",
            "-f",
            directory,
        ]
        started = time.monotonic()
        code = skyctl([*argv, "-n", NS], stdout=out, stderr=err)
        seconds = time.monotonic() - started
    created = out.getvalue().count(" created")
    if code != 0 or created != count:
        raise SystemExit(f"skyctl apply -R: exit {code}, {created} created\n{err.getvalue()}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--intervals", type=int, default=10, help="passes with no new commit")
    parser.add_argument("--raw-cas", type=int, default=1000, help="raw CAS transactions timed")
    parser.add_argument("--etcd-endpoints", default="")
    parser.add_argument("--log-level", default="warning", help="the controller's log level")
    args = parser.parse_args()
    if args.objects < CHANGED:
        parser.error(f"--objects: at least {CHANGED} (the second commit changes {CHANGED})")
    configure_logging(json=True, level=args.log_level)
    tune_interpreter()
    prefix = f"/gitops-{uuid.uuid4().hex[:8]}"
    with etcd_for_bench(args) as client, tempfile.TemporaryDirectory() as work:
        raw = raw_cas_rate(client, prefix + "-raw", 1, args.raw_cas)
        origin = Origin(Path(work) / "origin.git")
        result = run_gitops(client, prefix, origin, args.objects, args.intervals, Path(work))
        skyctl_seconds = skyctl_apply_seconds(prefix + "-skyctl", client, args.objects)

    n = args.objects
    sync_rate, skyctl_rate = n / result.first_sync_seconds, n / skyctl_seconds
    print_table(
        f"GitSource, {n} objects — objects/s against raw etcd CAS/s (1 caller)",
        [
            Row("first sync (GitSource)", raw, sync_rate, "objects/s"),
            Row("skyctl --etcd apply -R", raw, skyctl_rate, "objects/s"),
        ],
    )
    idle, commit = result.idle, result.commit
    per_pass = idle.round_trips / idle.passes if idle.passes else 0.0
    print(f"\n{'measure':<44} {'value':>12}  expected")
    lines = [
        ("first sync seconds (created → Ready)", f"{result.first_sync_seconds:.2f}", ""),
        ("  etcd revisions (all writes)", str(result.first_sync_revisions), f"~{n}"),
        ("skyctl apply -R seconds", f"{skyctl_seconds:.2f}", ""),
        ("first sync / skyctl apply -R", f"{result.first_sync_seconds / skyctl_seconds:.2f}", ""),
        ("floor seconds (one raw CAS per object)", f"{n / raw:.2f}", ""),
        (f"idle: passes (interval {INTERVAL_SECONDS}s)", str(idle.passes), f">= {args.intervals}"),
        ("  over seconds", f"{idle.seconds:.1f}", ""),
        ("  seconds per pass (reads every object)",
         f"{idle.pass_seconds / max(idle.passes, 1):.2f}", ""),
        ("  etcd revisions", str(idle.revisions), "0"),
        ("  git round trips (connections)", str(idle.round_trips), f"{idle.passes}"),
        ("  round trips per pass", f"{per_pass:.2f}", "1.00"),
        ("  pack fetches", str(idle.pack_fetches), "0"),
        (f"plan of a branch changing {CHANGED}: s to answer", f"{result.plan_seconds:.2f}",
         "~ a pass"),
        ("  etcd revisions (request + answer)", str(result.plan_revisions), "2"),
        ("  changes listed", str(result.plan_changes), str(CHANGED)),
        (f"commit of {CHANGED} just after a poll: s to applied", f"{result.commit_seconds:.2f}",
         f"<= {INTERVAL_SECONDS} + a pass"),
        ("  passes", str(commit.passes), ""),
        ("  etcd revisions", str(commit.revisions), f"~{CHANGED}"),
        ("  objects changed", str(len(commit.changed_objects)), str(CHANGED)),
        ("  git round trips / pack fetches", f"{commit.round_trips} / {commit.pack_fetches}",
         f"{commit.passes} / 1"),
    ]  # fmt: skip
    for label, value, expected in lines:
        print(f"{label:<44} {value:>12}  {expected}")
    print(f"idle keys written: {idle.keys_summary()}")
    print(f"commit keys written: {commit.keys_summary()}")
    print(
        f"gitops N={n} first_sync_seconds={result.first_sync_seconds:.2f} "
        f"skyctl_apply_seconds={skyctl_seconds:.2f} "
        f"first_sync_over_skyctl={result.first_sync_seconds / skyctl_seconds:.2f} "
        f"raw_cas_per_s={raw:.1f} sync_ratio_to_raw={sync_rate / raw:.3f} "
        f"idle_passes={idle.passes} idle_writes={idle.revisions} "
        f"round_trips_per_pass={per_pass:.2f} idle_pack_fetches={idle.pack_fetches} "
        f"commit_writes={commit.revisions} plan_seconds={result.plan_seconds:.2f} "
        f"plan_writes={result.plan_revisions}"
    )


if __name__ == "__main__":
    main()
