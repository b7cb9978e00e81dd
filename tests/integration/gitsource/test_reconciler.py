"""The GitSource reconciler end to end: a real manager, real etcd, repositories served for real.

Each test commits to an origin repository (``conftest.Origin``), points a GitSource at it and
waits for what a user would see: objects in the store, the GitSource's status and events, the
objects' history. Applies run as the serviceAccount ``gitops-acme``, bound to ``edit`` in
namespace ``acme`` only — so what a tenant may not do is refused as it would be for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from api_types import Condition, ConditionStatus, GitSource, Instance, Secret, registry
from api_types.gitops import REQUESTED_AT_ANNOTATION, REVISION_ANNOTATION, SOURCE_LABEL
from controller.apply import ApiError
from controller.errors import ConflictError
from controller.store.keys import ObjectKey
from skybroker.wiring import GitOpsBackends
from tests.gitservers import PASSWORD, USER, Origin, git_daemon, http_server
from tests.integration.gitsource.scenario import (
    NS,
    documents,
    gitops_running,
    gitsource_doc,
    instance_doc,
    ready_at,
)
from tests.integration.reconcilers.harness import API, Harness, sim_account


def _reason(source: GitSource, type_: str) -> str | None:
    condition = source.status.condition(type_)
    return None if condition is None else condition.reason


def _stalled(source: GitSource) -> bool:
    stalled = source.status.condition("Stalled")
    return stalled is not None and stalled.status == "True"


def _history_actors(harness: Harness, name: str) -> list[str]:
    return [r.actor for r in harness.store.history(ObjectKey("instances", NS, name))]


def test_first_sync_update_and_prune_and_an_unchanged_revision_writes_nothing(
    gitops: Harness, origin: Origin
) -> None:
    first = origin.commit({"web.yaml": documents(instance_doc("web-1"), instance_doc("web-2"))})
    gitops.apply(gitsource_doc(f"file://{origin.path}", prune=True))
    source = gitops.wait_for(GitSource, "infra", NS, ready_at(first))
    web1 = gitops.get(Instance, "web-1", NS)
    assert web1 is not None
    assert web1.metadata.labels[SOURCE_LABEL] == f"{NS}.infra"
    assert web1.metadata.annotations[REVISION_ANNOTATION] == f"main@sha1:{first}"
    assert {(e.kind, e.name) for e in source.status.inventory} == {
        ("Instance", "web-1"),
        ("Instance", "web-2"),
    }
    assert _history_actors(gitops, "web-1") == [f"gitsource/{NS}/infra@{first}"]

    # Unchanged: more intervals pass (the reconciler looks again), nothing is written.
    versions = {
        n: gitops.get(Instance, n, NS).metadata.resource_version for n in ("web-1", "web-2")
    }  # type: ignore[union-attr]
    source_version = gitops.get(GitSource, "infra", NS).metadata.resource_version  # type: ignore[union-attr]
    gitops.wait_for_reconciles("GitSource", 2, timeout=60)
    assert {n: gitops.get(Instance, n, NS).metadata.resource_version for n in versions} == versions  # type: ignore[union-attr]
    assert gitops.get(GitSource, "infra", NS).metadata.resource_version == source_version  # type: ignore[union-attr]

    # web-1 changes, web-2 leaves git: web-1 updated (only it re-stamped), web-2 pruned.
    second = origin.commit({"web.yaml": documents(instance_doc("web-1", cpu=2))})
    gitops.wait_for(GitSource, "infra", NS, ready_at(second))
    web1 = gitops.get(Instance, "web-1", NS)
    assert web1 is not None and web1.spec.hardware.cpu == 2
    assert web1.metadata.annotations[REVISION_ANNOTATION] == f"main@sha1:{second}"
    assert _history_actors(gitops, "web-1")[-1] == f"gitsource/{NS}/infra@{second}"
    gitops.wait_gone(Instance, "web-2", NS)


def test_a_bad_document_applies_nothing_and_names_file_document_and_field(
    gitops: Harness, origin: Origin
) -> None:
    first = origin.commit({"a.yaml": documents(instance_doc("web-1"))})
    gitops.apply(gitsource_doc(f"file://{origin.path}"))
    gitops.wait_for(GitSource, "infra", NS, ready_at(first))

    broken = instance_doc("web-3")
    broken["spec"]["hardware"] = {"cpu": "many"}
    bad = origin.commit(
        {
            "a.yaml": documents(instance_doc("web-1", cpu=2)),
            "b.yaml": documents(instance_doc("web-2"), broken),
        }
    )
    source = gitops.wait_for(GitSource, "infra", NS, _stalled)
    stalled = source.status.condition("Stalled")
    assert stalled is not None
    assert "b.yaml (document 2)" in stalled.message and "spec.hardware.cpu" in stalled.message
    assert source.status.last_attempted_revision == f"main@sha1:{bad}"
    assert source.status.last_applied_revision == f"main@sha1:{first}"
    assert gitops.get(Instance, "web-2", NS) is None
    web1 = gitops.get(Instance, "web-1", NS)
    assert web1 is not None and web1.spec.hardware.cpu == 1


def test_a_tenant_repository_cannot_reach_another_namespace_or_cluster_kinds(
    gitops: Harness, origin: Origin
) -> None:
    elsewhere = instance_doc("intruder")
    elsewhere["metadata"]["namespace"] = "kube-other"
    gitops.apply({"apiVersion": API, "kind": "Namespace", "metadata": {"name": "kube-other"}})
    origin.commit({"x.yaml": documents(instance_doc("web-1"), elsewhere)})
    gitops.apply(gitsource_doc(f"file://{origin.path}"))
    for files in (None, {"x.yaml": documents(instance_doc("web-1"), sim_account("stolen"))}):
        if files is not None:
            origin.commit(files)
        head = f"main@sha1:{origin.head()}"
        source = gitops.wait_for(
            GitSource,
            "infra",
            NS,
            lambda s, head=head: _stalled(s) and s.status.last_attempted_revision == head,
        )
        stalled = source.status.condition("Stalled")
        assert stalled is not None and stalled.reason == "Forbidden", stalled
        assert gitops.get(Instance, "web-1", NS) is None
        assert gitops.get(Instance, "intruder", "kube-other") is None


def test_drift_is_reverted_with_an_event_naming_who_changed_it(
    gitops: Harness, origin: Origin
) -> None:
    first = origin.commit({"web.yaml": documents(instance_doc("web-1"))})
    gitops.apply(gitsource_doc(f"file://{origin.path}", interval="1h"))
    gitops.wait_for(GitSource, "infra", NS, ready_at(first))
    web1 = gitops.get(Instance, "web-1", NS)
    assert web1 is not None
    web1.spec.image = "debian-12"
    gitops.store.update(web1, actor="alice")
    # interval is an hour: only the watch on managed objects can bring it back this soon
    gitops.wait_for(Instance, "web-1", NS, lambda i: i.spec.image == "ubuntu-22.04")
    gitops.wait_for_event("gitsources", "infra", NS, "DriftReverted")
    events = gitops.manager.recorder.list_events(involved=ObjectKey("gitsources", NS, "infra"))
    drift = next(e for e in events if e.reason == "DriftReverted")
    assert "alice" in drift.message and "spec.image" in drift.message


def test_a_managed_object_deleted_by_a_user_is_created_again_with_the_event(
    gitops: Harness, origin: Origin
) -> None:
    first = origin.commit({"web.yaml": documents(instance_doc("web-1"))})
    gitops.apply(gitsource_doc(f"file://{origin.path}", interval="1h"))
    gitops.wait_for(GitSource, "infra", NS, ready_at(first))
    web1 = gitops.get(Instance, "web-1", NS)
    assert web1 is not None
    gitops.store.delete(Instance, "web-1", NS, actor="bob")
    # interval is an hour: only the watch on managed objects can bring it back this soon
    gitops.wait_for(Instance, "web-1", NS, lambda i: i.metadata.uid != web1.metadata.uid)
    gitops.wait_for_event("gitsources", "infra", NS, "DriftReverted")
    events = gitops.manager.recorder.list_events(involved=ObjectKey("gitsources", NS, "infra"))
    drift = next(e for e in events if e.reason == "DriftReverted")
    assert "bob" in drift.message and "deleted" in drift.message


def test_depends_on_waits_for_the_other_source_and_suspend_stops_syncing(
    gitops: Harness, origin: Origin, tmp_path: Path
) -> None:
    network = Origin(tmp_path / "network.git")
    origin.commit({"web.yaml": documents(instance_doc("web-1"))})
    gitops.apply(gitsource_doc(f"file://{origin.path}", dependsOn=[{"name": "network"}]))
    waiting = gitops.wait_for(
        GitSource, "infra", NS, lambda s: _reason(s, "Ready") == "DependencyNotReady"
    )
    assert waiting.status.last_attempted_revision is None
    assert gitops.get(Instance, "web-1", NS) is None

    secret = {"apiVersion": API, "kind": "Secret", "metadata": {"name": "net"},
              "stringData": {"cidr": "10.0.0.0/16"}}  # fmt: skip
    net_head = network.commit({"net.yaml": documents(secret)})
    gitops.apply(gitsource_doc(f"file://{network.path}", name="network"))
    gitops.wait_for(GitSource, "network", NS, ready_at(net_head))
    gitops.wait_for(GitSource, "infra", NS, ready_at(origin.head()))
    assert gitops.get(Secret, "net", NS) is not None

    # suspended: a new commit is not applied
    source = gitops.get(GitSource, "infra", NS)
    assert source is not None
    source.spec.suspend = True
    gitops.store.update(source, actor="test")
    gitops.wait_for(GitSource, "infra", NS, lambda s: _reason(s, "Reconciling") == "Suspended")
    origin.commit({"web.yaml": documents(instance_doc("web-1"), instance_doc("web-2"))})
    gitops.wait_for_reconciles("GitSource", 3, timeout=60)
    assert gitops.get(Instance, "web-2", NS) is None


def test_unreachable_repository_is_reported_and_nothing_is_deleted(
    gitops: Harness, origin: Origin
) -> None:
    with git_daemon(origin) as served:
        first = origin.commit({"web.yaml": documents(instance_doc("web-1"))})
        gitops.apply(gitsource_doc(served.url, prune=True))
        gitops.wait_for(GitSource, "infra", NS, ready_at(first))
    # the server is gone
    source = gitops.wait_for(
        GitSource, "infra", NS,
        lambda s: (c := s.status.condition("Ready")) is not None and c.status == "False",
        timeout=60,
    )  # fmt: skip
    ready = source.status.condition("Ready")
    assert ready is not None and ready.reason == "RepositoryUnreachable", ready
    assert gitops.get(Instance, "web-1", NS) is not None

    # a sync asked for now is handled too (it failed, and the conditions say so)
    def request_sync() -> bool:
        current = gitops.get(GitSource, "infra", NS)
        assert current is not None
        current.metadata.annotations[REQUESTED_AT_ANNOTATION] = "now"
        try:
            gitops.store.update(current, actor="alice")
        except ConflictError:  # a status write in between: read again
            return False
        return True

    gitops.eventually(request_sync)
    gitops.wait_for(GitSource, "infra", NS, lambda s: s.status.last_handled_request == "now")


def test_force_push_over_http_is_followed(gitops: Harness, origin: Origin) -> None:
    with http_server(origin) as served:
        origin.commit({"web.yaml": documents(instance_doc("web-1"))})
        gitops.apply(gitsource_doc(served.url, prune=True))
        gitops.wait_for(GitSource, "infra", NS, ready_at(origin.head()))
        rewritten = origin.force_push({"web.yaml": documents(instance_doc("web-9"))})
        gitops.wait_for(GitSource, "infra", NS, ready_at(rewritten))
        gitops.wait_gone(Instance, "web-1", NS)
        assert gitops.get(Instance, "web-9", NS) is not None


@pytest.mark.parametrize("prune", [True, False])
def test_deleting_the_source_prunes_or_releases_its_objects(
    gitops: Harness, origin: Origin, prune: bool
) -> None:
    origin.commit({"web.yaml": documents(instance_doc("web-1"))})
    gitops.apply(gitsource_doc(f"file://{origin.path}", prune=prune))
    gitops.wait_for(GitSource, "infra", NS, ready_at(origin.head()))
    gitops.store.delete(GitSource, "infra", NS, actor="test")
    gitops.wait_gone(GitSource, "infra", NS)
    if prune:
        gitops.wait_gone(Instance, "web-1", NS)
    else:
        web1 = gitops.get(Instance, "web-1", NS)
        assert web1 is not None and SOURCE_LABEL not in web1.metadata.labels


def test_the_prune_disabled_annotation_keeps_an_object_that_left_git(
    gitops: Harness, origin: Origin
) -> None:
    kept = instance_doc("web-2", annotations={registry.PRUNE_ANNOTATION: registry.PRUNE_DISABLED})
    origin.commit({"web.yaml": documents(instance_doc("web-1"), kept)})
    gitops.apply(gitsource_doc(f"file://{origin.path}", prune=True))
    gitops.wait_for(GitSource, "infra", NS, ready_at(origin.head()))
    last = origin.commit({"web.yaml": documents(instance_doc("web-3"))})
    gitops.wait_for(GitSource, "infra", NS, ready_at(last))
    gitops.wait_gone(Instance, "web-1", NS)
    assert gitops.get(Instance, "web-2", NS) is not None


@pytest.mark.parametrize("prune", [True, False])
def test_a_removed_file_is_pruned_or_kept_and_what_other_writers_own_stays(
    gitops: Harness, origin: Origin, prune: bool
) -> None:
    first = origin.commit(
        {"web.yaml": documents(instance_doc("web-1")), "db.yaml": documents(instance_doc("db-1"))}
    )
    gitops.apply(gitsource_doc(f"file://{origin.path}", prune=prune))
    gitops.wait_for(GitSource, "infra", NS, ready_at(first))

    # Another writer labels web-1 and writes its status: fields git does not name, theirs.
    def annotate_web1() -> bool:
        web1 = gitops.get(Instance, "web-1", NS)
        assert web1 is not None
        web1.metadata.labels["owner"] = "alice"
        try:
            web1 = gitops.store.update(web1, actor="alice")  # as stored: its old status
            web1.status.conditions = [Condition(type="Ready", status=ConditionStatus.TRUE)]
            gitops.store.update_status(web1, actor="alice")
        except ConflictError:  # a write of the reconciler in between: read again
            return False
        return True

    gitops.eventually(annotate_web1)

    # db.yaml leaves git, web-1 changes: db-1 pruned with prune, else kept; the label and
    # the status web-1 got from someone else survive the update.
    second = origin.commit({"web.yaml": documents(instance_doc("web-1", cpu=2))})
    source = gitops.wait_for(GitSource, "infra", NS, ready_at(second))
    assert {(e.kind, e.name) for e in source.status.inventory} == {("Instance", "web-1")}
    web1 = gitops.get(Instance, "web-1", NS)
    assert web1 is not None and web1.spec.hardware.cpu == 2
    assert web1.metadata.labels["owner"] == "alice"
    ready = web1.status.condition("Ready")
    assert ready is not None and ready.status == "True"
    if prune:
        gitops.wait_gone(Instance, "db-1", NS)
    else:
        gitops.wait_for_reconciles("GitSource", 2, timeout=60)
        db1 = gitops.get(Instance, "db-1", NS)
        assert db1 is not None and db1.metadata.deletion_timestamp is None


def test_a_requested_sync_applies_a_new_commit_at_once_and_is_echoed(
    gitops: Harness, origin: Origin
) -> None:
    origin.commit({"web.yaml": documents(instance_doc("web-1"))})
    gitops.apply(gitsource_doc(f"file://{origin.path}", interval="1h"))
    gitops.wait_for(GitSource, "infra", NS, ready_at(origin.head()))
    second = origin.commit({"web.yaml": documents(instance_doc("web-1"), instance_doc("web-2"))})
    source = gitops.get(GitSource, "infra", NS)
    assert source is not None
    source.metadata.annotations[REQUESTED_AT_ANNOTATION] = "2026-12-03T05:00:00Z"
    gitops.store.update(source, actor="webhook")
    handled = gitops.wait_for(GitSource, "infra", NS, ready_at(second))
    assert handled.status.last_handled_request == "2026-12-03T05:00:00Z"
    assert gitops.get(Instance, "web-2", NS) is not None


def test_credentials_come_from_the_secret_and_a_missing_one_is_reported(
    gitops: Harness, origin: Origin
) -> None:
    secret = {
        "apiVersion": API,
        "kind": "Secret",
        "metadata": {"name": "git-creds", "namespace": NS},
        "stringData": {"username": USER, "password": PASSWORD},
    }
    with http_server(origin, basic_auth=True) as served:
        origin.commit({"web.yaml": documents(instance_doc("web-1"))})
        gitops.apply(gitsource_doc(served.url, credentialsRef={"name": "git-creds"}))
        missing = gitops.wait_for(
            GitSource, "infra", NS, lambda s: _reason(s, "Ready") == "CredentialsMissing"
        )
        ready = missing.status.condition("Ready")
        assert ready is not None and "git-creds" in ready.message
        gitops.apply(secret)
        gitops.wait_for(GitSource, "infra", NS, ready_at(origin.head()), timeout=60)
        assert gitops.get(Instance, "web-1", NS) is not None


def test_wait_gates_ready_on_the_health_of_what_was_applied(
    gitops: Harness, origin: Origin
) -> None:
    origin.commit({"web.yaml": documents(instance_doc("web-1"))})
    gitops.apply(gitsource_doc(f"file://{origin.path}", wait=True, timeout="2s"))
    # nothing makes instances Ready here (no instance controller): the timeout says so
    failed = gitops.wait_for(
        GitSource, "infra", NS, lambda s: _reason(s, "Ready") == "HealthCheckFailed"
    )
    healthy = failed.status.condition("Healthy")
    assert healthy is not None and healthy.status == "False"
    assert "Instance/web-1" in healthy.message
    assert failed.status.last_applied_revision == f"main@sha1:{origin.head()}"


def test_wait_holds_ready_until_what_was_applied_is_ready(gitops: Harness, origin: Origin) -> None:
    origin.commit({"web.yaml": documents(instance_doc("web-1"))})
    gitops.apply(gitsource_doc(f"file://{origin.path}", wait=True, timeout="5m"))
    waiting = gitops.wait_for(
        GitSource, "infra", NS, lambda s: _reason(s, "Ready") == "Progressing"
    )
    assert "Instance/web-1" in waiting.status.condition("Ready").message  # type: ignore[union-attr]
    assert waiting.status.last_applied_revision == f"main@sha1:{origin.head()}"

    # No instance controller runs here: the instance reports Ready as its controller would.
    def report_ready() -> bool:
        web1 = gitops.get(Instance, "web-1", NS)
        assert web1 is not None
        web1.status.conditions = [Condition(type="Ready", status=ConditionStatus.TRUE)]
        try:
            gitops.store.update_status(web1, actor="instance-controller")
        except ConflictError:
            return False
        return True

    gitops.eventually(report_ready)
    ready = gitops.wait_for(GitSource, "infra", NS, ready_at(origin.head()))
    healthy = ready.status.condition("Healthy")
    assert healthy is not None and healthy.status == "True"


class _FailingCreates:
    """The real backends, but a real (not dry-run) create of ``name`` is refused: a write that
    fails after every dry-run passed, as a quota taken meanwhile would."""

    def __init__(self, backends: GitOpsBackends, name: str) -> None:
        self._backends, self._name = backends, name

    def __call__(self, user: str, actor: str) -> Any:
        backend = self._backends(user, actor)
        create = backend.create

        def failing_create(obj: dict[str, Any], *, dry_run: bool) -> dict[str, Any]:
            if not dry_run and obj["metadata"]["name"] == self._name:
                raise ApiError(403, "Forbidden", "exceeded quota: taken meanwhile")
            return create(obj, dry_run=dry_run)

        backend.create = failing_create  # type: ignore[method-assign]
        return backend


def test_writes_that_stop_part_way_keep_what_they_wrote_managed(
    harness: Harness, origin: Origin, tmp_path: Path
) -> None:
    def failing(backends: GitOpsBackends) -> _FailingCreates:
        return _FailingCreates(backends, "web-2")

    with gitops_running(harness, tmp_path / "git-cache", failing) as gitops:
        origin.commit({"web.yaml": documents(instance_doc("web-1"), instance_doc("web-2"))})
        gitops.apply(gitsource_doc(f"file://{origin.path}", prune=True))
        source = gitops.wait_for(GitSource, "infra", NS, _stalled)
        stalled = source.status.condition("Stalled")
        assert stalled is not None and "writing stopped part-way" in stalled.message
        assert gitops.get(Instance, "web-1", NS) is not None
        assert ("Instance", "web-1") in {(e.kind, e.name) for e in source.status.inventory}
        # a revision without web-1 prunes it, although web-1 was never part of a good apply
        origin.commit({"web.yaml": documents(instance_doc("web-3"))})
        gitops.wait_for(GitSource, "infra", NS, ready_at(origin.head()))
        gitops.wait_gone(Instance, "web-1", NS)
