"""The plan of a revision (``skyctl diff --gitsource``) computed by the GitSource reconciler:
creates with each new Instance's forecast placement, size and price, updates with their field
diff, prunes, and failures named by file, document and field — nothing of it written.

A plan is requested as ``skyctl diff --gitsource`` does: the plan-requested-at annotation (and
plan-revision) on the GitSource, answered in ``status.plan``.
"""

from __future__ import annotations

from typing import Any

from api_types import GitSource, Instance, Pool, ProviderAccount
from api_types.gitops import GitPlan
from controller.store.keys import ObjectKey
from tests.gitservers import Origin
from tests.integration.gitsource.scenario import (
    NS,
    documents,
    gitsource_doc,
    instance_doc,
    ready_at,
    request_plan,
)
from tests.integration.reconcilers.harness import (
    Harness,
    instance_manifest,
    pool_manifest,
    sim_account,
)


def _plan(gitops: Harness, revision: str | None = None) -> GitPlan:
    """Request a plan of ``revision`` (None: spec.ref) and wait for the answer."""
    request = request_plan(gitops.store, NS, "infra", revision)

    def answered(source: GitSource) -> bool:
        return source.status.plan is not None and source.status.plan.request == request

    plan = gitops.wait_for(GitSource, "infra", NS, answered).status.plan
    assert plan is not None
    return plan


def _summary(plan: GitPlan) -> list[tuple[str, str, str]]:
    return [(str(change.action), change.kind, change.name) for change in plan.changes]


def _spread_instance(name: str) -> dict[str, Any]:
    manifest = instance_manifest(name, NS, pool="spread", hardware={"cpu": 1})
    manifest["metadata"].pop("namespace")
    return manifest


def test_a_plan_forecasts_each_new_instance_and_writes_nothing(
    gitops: Harness, origin: Origin
) -> None:
    gitops.apply(
        sim_account("sim-b"),
        pool_manifest("spread", [{"account": "sim-a"}, {"account": "sim-b"}], "LeastLoaded"),
    )
    # The forecast reads the reconciler's caches: let them show the pool and its new member.
    cached_pool = ObjectKey(Pool.PLURAL, None, "spread")
    cached_account = ObjectKey(ProviderAccount.PLURAL, None, "sim-b")
    gitops.eventually(
        lambda: gitops.manager.informer(Pool).peek(cached_pool) is not None
        and gitops.manager.informer(ProviderAccount).peek(cached_account) is not None
    )
    first = origin.commit({"web.yaml": documents(_spread_instance("w-1"), _spread_instance("w-2"))})
    gitops.apply(gitsource_doc(f"file://{origin.path}", suspend=True))

    plan = _plan(gitops)

    assert plan.error is None
    assert plan.revision == f"main@sha1:{first}"
    assert _summary(plan) == [("Create", "Instance", "w-1"), ("Create", "Instance", "w-2")]
    placements = [change.placement for change in plan.changes]
    assert all(p is not None and p.size and p.price_per_hour for p in placements)
    # LeastLoaded: the first forecast counts as load for the second
    assert sorted(p.account for p in placements if p is not None) == ["sim-a", "sim-b"]
    assert gitops.get(Instance, "w-1", NS) is None and gitops.get(Instance, "w-2", NS) is None


def test_a_plan_lists_updates_with_their_diff_creates_and_prunes_and_syncs_nothing(
    gitops: Harness, origin: Origin
) -> None:
    first = origin.commit({"web.yaml": documents(instance_doc("web-1"), instance_doc("web-2"))})
    gitops.apply(gitsource_doc(f"file://{origin.path}", prune=True, interval="1h"))
    gitops.wait_for(GitSource, "infra", NS, ready_at(first))
    web1_history = gitops.store.history(ObjectKey("instances", NS, "web-1"))
    upgrade = origin.commit(
        {"web.yaml": documents(instance_doc("web-1", cpu=2), instance_doc("web-3"))}
    )

    plan = _plan(gitops)  # of spec.ref, which has moved: the pass answering it syncs nothing

    assert plan.error is None
    assert plan.revision == f"main@sha1:{upgrade}"
    assert _summary(plan) == [
        ("Update", "Instance", "web-1"),
        ("Create", "Instance", "web-3"),
        ("Prune", "Instance", "web-2"),
    ]
    update, create, _ = plan.changes
    assert "spec.hardware.cpu" in update.fields
    assert update.diff is not None and "-    cpu: 1" in update.diff and "+    cpu: 2" in update.diff
    assert create.placement is not None and create.placement.account == "sim-a"
    # nothing written: web-1 as before, web-3 absent, web-2 kept
    web1 = gitops.get(Instance, "web-1", NS)
    assert web1 is not None and web1.spec.hardware.cpu == 1
    assert gitops.store.history(ObjectKey("instances", NS, "web-1")) == web1_history
    assert gitops.get(Instance, "web-3", NS) is None
    assert gitops.get(Instance, "web-2", NS) is not None
    source = gitops.store.get(GitSource, "infra", NS)
    assert source.status.last_applied_revision == f"main@sha1:{first}"

    # the applied revision, by the form the status shows: nothing to do
    same = _plan(gitops, f"main@sha1:{first}")
    assert same.error is None and same.changes == [] and same.unchanged == 2


def test_a_plan_that_cannot_be_applied_says_why_and_writes_nothing(
    gitops: Harness, origin: Origin
) -> None:
    origin.commit({"web.yaml": documents(instance_doc("web-1"))})
    origin.commit(
        {"a.yaml": documents(instance_doc("web-4")), "b.yaml": documents(
            instance_doc("web-5"), instance_doc("web-6", cpu="many"))},
        branch="broken",
    )  # fmt: skip
    gitops.apply(gitsource_doc(f"file://{origin.path}", suspend=True))

    broken = _plan(gitops, "broken")
    assert broken.error is not None and broken.changes == []
    assert "b.yaml (document 2)" in broken.error and "spec.hardware.cpu" in broken.error

    missing = _plan(gitops, "no-such-branch")
    assert missing.error is not None and "no-such-branch" in missing.error

    malformed = _plan(gitops, "bad..ref")
    assert malformed.error is not None
    assert "plan-revision" in malformed.error and "bad..ref" in malformed.error
    assert all(gitops.get(Instance, f"web-{i}", NS) is None for i in range(1, 7))
