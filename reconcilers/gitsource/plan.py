"""The plan of a revision: what applying it would create, update and prune, and where each new
Instance would be placed — computed on request, nothing of it written.

Where it sits: beside the apply pass in the GitOps pipeline (GitSource reconciler → fetch →
decode/**plan** → apply). ``skyctl diff --gitsource NAME [--revision REF]`` sets the GitSource's
``gitops.skybroker.io/plan-requested-at`` annotation (and ``plan-revision``); the reconciler,
which runs where the clouds' catalogues and the scheduler are, calls :meth:`Planner.plan` and
stores the :class:`~api_types.gitops.GitPlan` in ``status.plan``, answering the request:

1. the revision is fetched like a sync's (the same cache, credentials and limits);
2. every document is decoded and dry-run admitted as the serviceAccount, staged in kind order
   (:func:`controller.apply.plan_manifests`: RBAC, admission and quota as a sync would meet
   them) — a failure is the plan's ``error``, naming the file, the document and the field;
3. with ``prune``, the inventory's objects the revision drops are listed (those still labelled
   and not ``prune: disabled``, as a sync prunes);
4. each Instance to create is forecast by the process's scheduler
   (:meth:`reconcilers.placement.Scheduler.forecast`: member, size and hourly price, in
   creation order so each counts for the quota and load of the next), or why no member could
   take it; its zone only when the instance pins one (otherwise it is spread by the uid the
   server gives at creation).

The list is bounded (:data:`~api_types.gitops.MAX_PLAN_CHANGES` changes, diffs cut at
:data:`~api_types.gitops.MAX_PLAN_DIFF_CHARS`) so the status stays small; ``omitted`` counts
what was left out.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from api_types import GitSource, Instance
from api_types.gitops import (
    MAX_PLAN_CHANGES,
    MAX_PLAN_DIFF_CHARS,
    REVISION_ANNOTATION,
    GitPlan,
    GitRef,
    PlanAction,
    PlannedChange,
    PlannedPlacement,
)
from controller.apply import (
    CREATED,
    UNCHANGED,
    Change,
    LiveObject,
    ManifestError,
    Plan,
    StagingBackend,
    plan_manifests,
    unified_diff,
)
from controller.errors import TerminalError
from reconcilers.deps import Deps
from reconcilers.gitsource.errors import GitFetchError
from reconcilers.gitsource.fetch import ManifestLimits, fetch
from reconcilers.gitsource.source import (
    actor_of,
    credentials_of,
    labelled_manifests,
    prunable,
    service_account_of,
)
from reconcilers.placement import Forecast

__all__ = ["BackendFactory", "Planner"]

#: ``(user, history actor) -> backend``: the API's resource operations in-process, authorised
#: as ``user`` (RBAC, admission, quota), with history records naming ``actor``.
BackendFactory = Callable[[str, str], StagingBackend]


class Planner:
    """Computes a GitSource's plan for a revision (see the module)."""

    def __init__(
        self, deps: Deps, backend_for: BackendFactory, cache_dir: Path, limits: ManifestLimits
    ) -> None:
        self._deps = deps
        self._backend_for = backend_for
        self._cache_dir = cache_dir
        self._limits = limits
        # Built now, at registration: the caches it reads are made with it, and a cache made
        # once the manager runs is never started.
        self._scheduler = deps.scheduler

    def plan(self, source: GitSource, request: str, revision: str | None) -> GitPlan:
        """The plan of ``revision`` (:meth:`GitRef.parse`; None = ``spec.ref``), answering
        ``request``; whatever goes wrong is its ``error``, never an exception."""
        answer = GitPlan(request=request, computed_at=self._deps.clock.wall())
        try:
            ref = source.spec.ref if revision is None else GitRef.parse(revision)
        except ValueError as exc:
            answer.error = f"annotation gitops.skybroker.io/plan-revision: {exc}"
            return answer
        try:
            checkout = fetch(
                source.spec.url, ref, credentials_of(self._deps.store, source), self._cache_dir
            )
            answer.revision = str(checkout.revision)
            backend = self._backend_for(
                service_account_of(source), actor_of(source, checkout.revision)
            )
            plan = plan_manifests(
                backend,
                list(labelled_manifests(source, checkout, self._limits)),
                source.metadata.namespace or "",
                stage=backend,
                stamp={REVISION_ANNOTATION: str(checkout.revision)},
            )
        except (GitFetchError, TerminalError, ManifestError) as exc:
            answer.error = str(exc)
            return answer
        if plan.failure is not None:
            answer.error = str(plan.failure)
            return answer
        pruned = prunable(backend, source, plan.keys) if source.spec.prune else []
        changes = self._changes(plan) + [_pruned(live) for live in pruned]
        answer.changes = changes[:MAX_PLAN_CHANGES]
        answer.omitted = len(changes) - len(answer.changes)
        answer.unchanged = len(plan.unchanged)
        return answer

    def _changes(self, plan: Plan) -> list[PlannedChange]:
        """Creates and updates in apply order; new Instances with their forecast."""
        creating = [
            Instance.model_validate(change.obj)
            for change in plan.changes
            if change.action == CREATED and change.target.info.kind == Instance.KIND
        ]
        forecasts = {
            (forecast.instance.metadata.namespace, forecast.instance.metadata.name): forecast
            for forecast in self._scheduler.forecast(creating)
        }
        planned = []
        for change in plan.changes:
            if change.action == UNCHANGED:
                continue
            target = change.target
            planned.append(_planned(change, forecasts.get((target.namespace, target.name))))
        return planned


def _planned(change: Change, forecast: Forecast | None) -> PlannedChange:
    target = change.target
    planned = PlannedChange(
        action=PlanAction.CREATE if change.action == CREATED else PlanAction.UPDATE,
        kind=target.info.kind,
        namespace=target.namespace,
        name=target.name,
    )
    if change.action != CREATED:
        planned.fields = list(change.fields)
        diff = unified_diff(change)
        planned.diff = (
            diff
            if len(diff) <= MAX_PLAN_DIFF_CHARS
            else diff[:MAX_PLAN_DIFF_CHARS] + f"\n… ({len(diff) - MAX_PLAN_DIFF_CHARS} more)\n"
        )
    if forecast is not None and target.info.kind == Instance.KIND:
        option = forecast.option
        if option is None:
            planned.unplaced = forecast.unplaced
        else:
            spec = forecast.instance.spec
            # The zone is spread by the uid the server has not given yet: shown only when the
            # instance pins it (a zone hint, or its subnet's zone).
            pinned = (spec.placement is not None and spec.placement.zone) or spec.subnet_ref
            planned.placement = PlannedPlacement(
                member=option.candidate.member,
                account=option.account,
                region=option.region,
                zone=option.zone if pinned else None,
                size=option.size.id if option.size else None,
                price_per_hour=option.size.price_per_hour if option.size else None,
            )
    return planned


def _pruned(live: LiveObject) -> PlannedChange:
    kind, namespace, name = live.key
    return PlannedChange(action=PlanAction.PRUNE, kind=kind, namespace=namespace, name=name)
