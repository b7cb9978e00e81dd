"""The GitOps scenario shared by the reconciler and plan tests: namespace ``acme`` with the
``general`` pool on ``sim-a``, the serviceAccount ``gitops-acme`` bound to ``edit`` there, the
GitSource reconciler running on the real in-process API backends, and builders of the documents
committed to the origin."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from api_types import GitSource
from api_types.gitops import PLAN_REQUESTED_AT_ANNOTATION, PLAN_REVISION_ANNOTATION
from controller.errors import ConflictError
from controller.store.objects import Store
from reconcilers import gitsource
from reconcilers.deps import Deps
from skybroker.wiring import GitOpsBackends
from tests.integration.reconcilers.harness import (
    API,
    Harness,
    instance_manifest,
    pool_manifest,
    sim_account,
)

__all__ = [
    "NS",
    "SA",
    "documents",
    "gitops_running",
    "gitsource_doc",
    "instance_doc",
    "ready_at",
    "request_plan",
]

NS = "acme"
SA = "gitops-acme"


def documents(*objects: dict[str, Any]) -> bytes:
    return yaml.safe_dump_all(objects, sort_keys=False).encode()


def instance_doc(name: str, cpu: int = 1, **extra: Any) -> dict[str, Any]:
    manifest = instance_manifest(name, NS, pool="general", hardware={"cpu": cpu})
    manifest["metadata"].pop("namespace")  # the GitSource's namespace is the default
    manifest["metadata"].update(extra)
    return manifest


def gitsource_doc(url: str, name: str = "infra", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url, "interval": "5s", "serviceAccount": SA, **spec}
    return {"apiVersion": API, "kind": "GitSource", "metadata": {"name": name, "namespace": NS},
            "spec": body}  # fmt: skip


@contextmanager
def gitops_running(
    harness: Harness,
    cache: Path,
    backend_for: Callable[[GitOpsBackends], Callable[[str, str], Any]] = lambda backends: backends,
) -> Iterator[Harness]:
    """The harness with namespace acme, the pool the manifests name, ``gitops-acme`` bound to
    ``edit`` in acme, and the GitSource reconciler running on ``backend_for(the real backends)``."""
    harness.apply(
        {"apiVersion": API, "kind": "Namespace", "metadata": {"name": NS}},
        sim_account("sim-a"),
        pool_manifest("general", [{"account": "sim-a"}]),
        {
            "apiVersion": API,
            "kind": "RoleBinding",
            "metadata": {"name": "gitops-edit", "namespace": NS},
            "roleRef": {"kind": "ClusterRole", "name": "edit"},
            "subjects": [{"kind": "User", "name": SA}],
        },
    )
    backends = GitOpsBackends(harness.store)

    def register(deps: Deps) -> None:
        gitsource.register(deps, backend_for(backends), cache)

    harness.start(register)
    try:
        yield harness
    finally:
        harness.stop()
        backends.stop()


def ready_at(revision: str | None = None) -> Any:
    def check(source: GitSource) -> bool:
        ready = source.status.condition("Ready")
        return (
            ready is not None
            and ready.status == "True"
            and source.status.observed_generation == source.metadata.generation
            and (revision is None or source.status.last_applied_revision == f"main@sha1:{revision}")
        )

    return check


def request_plan(store: Store, namespace: str, name: str, revision: str | None) -> str:
    """Ask GitSource ``namespace/name`` for the plan of ``revision`` (None: spec.ref) as
    ``skyctl diff --gitsource`` does; returns the request, echoed in ``status.plan.request``."""
    request = datetime.now(UTC).isoformat()
    while True:
        source = store.get(GitSource, name, namespace)
        annotations = dict(source.metadata.annotations or {})
        annotations[PLAN_REQUESTED_AT_ANNOTATION] = request
        annotations.pop(PLAN_REVISION_ANNOTATION, None)
        if revision is not None:
            annotations[PLAN_REVISION_ANNOTATION] = revision
        source.metadata.annotations = annotations
        try:
            store.update(source, actor="test")
            return request
        except ConflictError:  # the reconciler wrote the status meanwhile
            continue
