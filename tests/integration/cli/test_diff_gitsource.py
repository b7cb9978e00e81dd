"""``skyctl diff --gitsource NAME [--revision REF]`` over both backends: the request is the
plan-requested-at (and plan-revision) annotation; the answer is ``status.plan``, written here by
a test thread playing the reconciler, which echoes the request with the plan it was given."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from api_types import registry
from api_types.gitops import PLAN_REQUESTED_AT_ANNOTATION, PLAN_REVISION_ANNOTATION, GitSource
from controller.errors import ConflictError
from controller.store.objects import Store
from tests.integration.cli.helpers import Skyctl
from tests.waiting import eventually

REVISION = "next@sha1:" + "a" * 40
DIFF = "--- live/instances.acme.web-1\n+++ merged/instances.acme.web-1\n-    cpu: 1\n+    cpu: 2\n"
CHANGES: list[dict[str, Any]] = [
    {
        "action": "Update",
        "kind": "Instance",
        "namespace": "acme",
        "name": "web-1",
        "fields": ["spec.hardware.cpu"],
        "diff": DIFF,
    },
    {
        "action": "Create",
        "kind": "Instance",
        "namespace": "acme",
        "name": "web-3",
        "placement": {
            "member": "sim-b",
            "account": "sim-b",
            "region": "sim-1",
            "size": "m1.small",
            "pricePerHour": 0.0231,
        },
    },
    {
        "action": "Create",
        "kind": "Instance",
        "namespace": "acme",
        "name": "web-4",
        "unplaced": "namespace quota exceeded for instances",
    },
    {"action": "Prune", "kind": "Volume", "namespace": "acme", "name": "old"},
]


@pytest.fixture
def skyctl(with_gitsource: Skyctl) -> Skyctl:
    return with_gitsource


def _annotations(store: Store) -> dict[str, str]:
    return dict(store.get(GitSource, "infra", "acme").metadata.annotations or {})


@pytest.fixture
def planner(store: Store) -> Iterator[Callable[[dict[str, Any]], None]]:
    """A thread that answers the first plan request with the plan a test gives it."""
    answer: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        while not done.is_set():
            eventually(
                lambda: PLAN_REQUESTED_AT_ANNOTATION in _annotations(store) or done.is_set()
            )
            request = _annotations(store).get(PLAN_REQUESTED_AT_ANNOTATION)
            if request is None:
                return
            wire = store.get(GitSource, "infra", "acme").to_wire()
            wire["status"] = {"plan": {"request": request, "computedAt": "2026-12-03T00:00:00Z",
                                       **answer}}  # fmt: skip
            try:
                store.update_status(registry.parse_object(wire), actor="gitsource-reconciler")
            except ConflictError:  # skyctl's write and this read crossed: read again
                continue
            done.set()

    thread = threading.Thread(target=run, name="play-planner", daemon=True)

    def answer_with(plan: dict[str, Any]) -> None:
        answer.update(plan)
        thread.start()

    yield answer_with
    done.set()
    if thread.is_alive():
        thread.join(35)


def test_diff_prints_the_plan_and_exits_1(
    skyctl: Skyctl, store: Store, planner: Callable[[dict[str, Any]], None]
) -> None:
    planner({"revision": REVISION, "changes": CHANGES, "unchanged": 3})
    done = skyctl("diff", "--gitsource", "infra", "--revision", "next", "-n", "acme")
    assert done.code == 1, done.err
    assert done.out == (
        f"gitsource/infra plan for {REVISION}: 2 to create, 1 to update, 1 to prune, "
        "3 unchanged (nothing written)\n"
        "~ Instance acme/web-1: spec.hardware.cpu\n"
        f"{DIFF}"
        "+ Instance acme/web-3 → member sim-b (account sim-b, sim-1/zone at creation), "
        "size m1.small, "
        "$0.0231/h\n"
        "+ Instance acme/web-4 → not placeable now: namespace quota exceeded for instances\n"
        "- Volume acme/old\n"
    )
    annotations = _annotations(store)
    assert annotations[PLAN_REVISION_ANNOTATION] == "next"
    assert store.get(GitSource, "infra", "acme").metadata.generation == 1  # metadata only


def test_a_revision_that_changes_nothing_exits_0(
    skyctl: Skyctl, store: Store, planner: Callable[[dict[str, Any]], None]
) -> None:
    store_revision = "main@sha1:" + "b" * 40
    planner({"revision": store_revision, "changes": [], "unchanged": 5})
    done = skyctl("diff", "--gitsource", "infra", "-n", "acme")
    assert (done.code, done.err) == (0, "")
    assert done.out == (
        f"gitsource/infra plan for {store_revision}: 0 to create, 0 to update, 0 to prune, "
        "5 unchanged (nothing written)\n"
    )
    assert PLAN_REVISION_ANNOTATION not in _annotations(store)  # spec.ref


def test_a_plan_that_cannot_be_applied_exits_1_with_the_reason(
    skyctl: Skyctl, planner: Callable[[dict[str, Any]], None]
) -> None:
    reason = "b.yaml (document 2): spec.hardware.cpu: Input should be a valid integer"
    planner({"revision": REVISION, "error": reason})
    done = skyctl("diff", "--gitsource", "infra", "--revision", "next", "-n", "acme")
    assert (done.code, done.out) == (1, "")
    assert done.err == f"error: gitsource/infra at {REVISION} cannot be applied: {reason}\n"


def test_usage_errors_write_nothing(skyctl: Skyctl, store: Store, tmp_path: Path) -> None:
    manifest = tmp_path / "gitsource.yaml"
    for argv, message in [
        (("diff", "--revision", "main"), "--revision goes with --gitsource"),
        (("diff",), "diff needs -f FILE or --gitsource NAME"),
        (("diff", "-f", str(manifest), "--gitsource", "infra"), "not both"),
        (("diff", "--gitsource", "infra", "--revision", "bad..ref"), "'bad..ref'"),
    ]:
        refused = skyctl(*argv, "-n", "acme")
        assert refused.code == 2 and message in refused.err, (argv, refused.err)
    missing = skyctl("diff", "--gitsource", "absent", "-n", "acme")
    assert missing.code == 1 and "not found" in missing.err
    assert PLAN_REQUESTED_AT_ANNOTATION not in _annotations(store)


def test_no_answer_times_out_cleanly(skyctl: Skyctl, store: Store) -> None:
    done = skyctl("diff", "--gitsource", "infra", "-n", "acme", "--timeout", "0.3s")
    assert done.code == 1 and done.out == ""
    assert done.err.startswith("error: timed out after 0.3s waiting for gitsource/infra's plan")
    assert PLAN_REQUESTED_AT_ANNOTATION in _annotations(store)
