"""The GitSource reconciler: fetch a revision, apply it all or nothing, prune, revert drift.

Where it sits in the GitOps pipeline: **GitSource reconciler** → fetch → decode/plan → apply.
One pass over a GitSource (DESIGN §9):

1. deleted → with ``prune`` its inventory is deleted (reverse kind order), without it the
   objects stay and lose the :data:`~api_types.gitops.SOURCE_LABEL`; then the finalizer goes;
2. ``suspend`` → nothing fetched or applied (``Reconciling=False Suspended``);
3. ``dependsOn`` → each named GitSource must be Ready for its current generation first;
4. fetch (:func:`~reconcilers.gitsource.fetch.fetch`): an unchanged ref costs one ref lookup;
5. decode every manifest under ``path`` and apply them with the apply engine
   (:func:`controller.apply.apply_manifests`) **as the serviceAccount user** through the
   backend the composition root hands over (the API's own admission pipeline, in-process):
   all or nothing, in DESIGN's kind order, each object labelled with its source and stamped
   with the revision only when it changes — so an unchanged revision writes nothing;
6. prune what the last inventory held and this revision does not (``prune: true``);
7. with ``wait``, Ready only once every applied object reports Ready (``timeout`` bounds it).

Plans (``skyctl diff --gitsource``): a new ``plan-requested-at`` annotation is answered first,
by :class:`~reconcilers.gitsource.plan.Planner`, into ``status.plan``; a pass that only answers
a plan syncs nothing (the sync already queued, at the interval, still comes).

Drift: the controller watches every managed kind (but Secrets, which stay out of its caches:
their drift is put back at the next interval) and maps a spec change of a labelled object to
its GitSource; the pass that follows re-plans the same revision, writes back what git says and
posts a ``DriftReverted`` event naming who changed it (the object's history knows). The
echoes of a sync's own writes are dropped (:class:`OwnWrites`), so applying a revision costs no
second pass.

Statuses, in Flux's vocabulary: ``Ready`` (applied, and healthy when waiting), ``Reconciling``
(a sync is under way or waiting), ``Stalled`` (this revision cannot be applied: the file,
document and field are in the message; the last good revision stays applied), ``Healthy``
(``wait`` only).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import structlog

from api_types import GitSource, registry
from api_types.gitops import (
    PLAN_REQUESTED_AT_ANNOTATION,
    PLAN_REVISION_ANNOTATION,
    REQUESTED_AT_ANNOTATION,
    REVISION_ANNOTATION,
    SOURCE_LABEL,
    GitArtifact,
    GitSourceCondition,
    InventoryEntry,
)
from api_types.meta import ConditionStatus, Resource
from controller.apply import (
    UNCHANGED,
    ApiError,
    Change,
    LiveObject,
    ManifestError,
    Plan,
    StagingBackend,
    apply_manifests,
    in_prune_order,
    live_objects,
    prune,
)
from controller.controller import Controller
from controller.errors import NotFoundError, TerminalError
from controller.handler import EnqueueMapped
from controller.manager import Normalised
from controller.passes import Pass
from controller.predicate import GenerationChanged, LabelsChanged, any_of
from controller.reconcile import Request, Result
from controller.store.keys import ObjectKey as StoreKey
from reconcilers.deps import Deps
from reconcilers.gitsource.errors import GitFetchError
from reconcilers.gitsource.fetch import Checkout, ManifestLimits, fetch
from reconcilers.gitsource.plan import BackendFactory, Planner
from reconcilers.gitsource.source import (
    actor_of,
    credentials_of,
    inventory_key,
    labelled_manifests,
    prunable,
    service_account_of,
    still_managed,
)

__all__ = ["FINALIZER", "GitSourceReconciler", "register"]

log = structlog.get_logger(__name__)

FINALIZER = "gitops.skybroker.io/finalizer"
#: How often a GitSource waiting for its dependencies or for health looks again.
WAIT_POLL_SECONDS = 2.0
#: The kinds whose spec changes are watched for drift (Secrets are not cached by controllers).
_NOT_WATCHED = frozenset({"Secret"})

READY = GitSourceCondition.READY.value
RECONCILING = GitSourceCondition.RECONCILING.value
STALLED = GitSourceCondition.STALLED.value
HEALTHY = GitSourceCondition.HEALTHY.value


def _annotation(obj: Resource, name: str) -> str | None:
    return (obj.metadata.annotations or {}).get(name)


class OwnWrites:
    """The writes a sync is about to make, so the drift watch can drop their echoes.

    Each written object is noted with the resourceVersion its write is based on (None for a
    create) just before the writes start; the watch event of that write is the one whose old
    object is at that base, and it is dropped — a sync's own writes would otherwise bring the
    source straight back for a full pass that finds nothing to do. Any other change passes: a
    write by someone else lands on another base. An echo that never comes (the watch re-listed
    past it) leaves an entry that the next write of the same object replaces.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bases: dict[tuple[str, str | None, str], str | None] = {}

    def expect(self, plan: Plan) -> None:
        with self._lock:
            for change in plan.changes:
                if change.action == UNCHANGED:
                    continue
                base = ((change.live or {}).get("metadata") or {}).get("resourceVersion")
                self._bases[change.target.key] = None if base is None else str(base)

    def _is_echo(self, obj: Resource, base: str | None) -> bool:
        key = (obj.kind, obj.metadata.namespace, obj.metadata.name)
        with self._lock:
            if key in self._bases and self._bases[key] == base:
                del self._bases[key]
                return True
        return False

    # --- the predicate the drift watch applies ---------------------------------------------

    def create(self, obj: Resource) -> bool:
        return not self._is_echo(obj, None)

    def update(self, old: Resource, new: Resource) -> bool:
        return not self._is_echo(new, old.metadata.resource_version)

    def delete(self, obj: Resource) -> bool:
        return True


@dataclass(frozen=True)
class _Applied:
    """What one apply of a revision did."""

    plan: Plan
    inventory: list[InventoryEntry]
    pruned: list[LiveObject]


class GitSourceReconciler:
    """Keeps each GitSource's directory applied (see the module for one pass)."""

    def __init__(
        self,
        deps: Deps,
        backend_for: BackendFactory,
        cache_dir: Path,
        limits: ManifestLimits | None = None,
    ) -> None:
        self._deps = deps
        self._backend_for = backend_for
        self._cache_dir = cache_dir
        self._limits = limits or ManifestLimits()
        self._planner = Planner(deps, backend_for, cache_dir, self._limits)
        self._sources = deps.manager.informer(GitSource)
        #: This reconciler's writes in flight, whose watch echoes are not drift.
        self.own_writes = OwnWrites()

    # --- event mapping ----------------------------------------------------------------------

    def source_of(self, obj: Resource) -> list[Request]:
        """The GitSource that manages ``obj`` (by its :data:`SOURCE_LABEL`), if any."""
        value = (obj.metadata.labels or {}).get(SOURCE_LABEL)
        if not value or "." not in value:
            return []
        namespace, name = value.split(".", 1)
        return [Request(StoreKey(GitSource.PLURAL, namespace, name))]

    def dependents_of(self, obj: Resource) -> list[Request]:
        """GitSources of ``obj``'s namespace that depend on it (a GitSource)."""
        return [
            Request(StoreKey(GitSource.PLURAL, other.metadata.namespace, other.metadata.name))
            for other in self._sources.list(obj.metadata.namespace)
            if any(dep.name == obj.metadata.name for dep in other.spec.depends_on)
        ]

    # --- the pass ---------------------------------------------------------------------------

    def reconcile(self, request: Request) -> Result:
        source = self._sources.get(request.key)
        if source is None:
            return Result()
        with Pass(self._deps.manager, source) as pass_:
            if source.metadata.deletion_timestamp is not None:
                self._release(source)
                pass_.remove_finalizer(FINALIZER)
                return Result()
            pass_.add_finalizer(FINALIZER)
            if self._answer_plan_request(source) and not _sync_due(source):
                # A plan writes nothing, and brings no sync forward: the one already queued
                # (interval, backoff) still comes.
                return Result()
            try:
                return self._sync(pass_)
            finally:
                # Handled also when it failed: the conditions say how, and `sync --wait` ends.
                handled = _annotation(source, REQUESTED_AT_ANNOTATION)
                pass_.obj.status.last_handled_request = handled
                pass_.observe_generation()

    def _answer_plan_request(self, source: GitSource) -> bool:
        """A new plan-requested-at value: the plan of the revision it names, into the status
        (before any sync, so a suspended or failing source still answers). True if answered."""
        request = _annotation(source, PLAN_REQUESTED_AT_ANNOTATION)
        answered = source.status.plan
        if request is None or (answered is not None and answered.request == request):
            return False
        revision = _annotation(source, PLAN_REVISION_ANNOTATION)
        source.status.plan = self._planner.plan(source, request, revision)
        return True

    def _sync(self, pass_: Pass[GitSource]) -> Result:
        source = pass_.obj
        spec = source.spec
        interval = float(spec.interval_seconds)
        if spec.suspend:
            pass_.condition(RECONCILING, False, "Suspended", "spec.suspend is true")
            return Result()
        waiting = self._dependencies_not_ready(source)
        if waiting:
            message = f"waiting for GitSource {', '.join(waiting)} to be Ready"
            pass_.condition(READY, False, "DependencyNotReady", message)
            pass_.condition(RECONCILING, True, "DependencyNotReady", message)
            return Result(requeue_after=WAIT_POLL_SECONDS)
        try:
            checkout = fetch(
                spec.url, spec.ref, credentials_of(self._deps.store, source), self._cache_dir
            )
        except (GitFetchError, TerminalError) as exc:
            # Unreachable: retried with backoff. Refused (no such repository or ref, bad
            # credentials): looked at again every interval, since a push or a Secret fixes it.
            # Either way nothing applied is touched.
            reason = exc.reason if isinstance(exc, TerminalError) else "RepositoryUnreachable"
            pass_.condition(READY, False, reason, str(exc))
            pass_.condition(RECONCILING, False, reason, str(exc))
            if isinstance(exc, TerminalError):
                return Result(requeue_after=interval)
            raise
        revision = str(checkout.revision)
        status = source.status
        if status.artifact is None or status.artifact.revision != revision:
            status.artifact = GitArtifact(revision=revision, fetched_at=self._deps.clock.wall())
        previous = status.last_applied_revision
        try:
            applied = self._apply(source, checkout)
        except (ManifestError, GitFetchError) as exc:
            return self._stalled(pass_, revision, "InvalidManifest", str(exc), interval)
        status.last_attempted_revision = revision
        failure = applied.plan.failure
        if failure is not None:
            reason = "Forbidden" if failure.error.code == 403 else "ApplyFailed"
            status.inventory = applied.inventory
            stopped = "writing stopped part-way: " if applied.plan.written else ""
            return self._stalled(pass_, revision, reason, f"{stopped}{failure}", interval)
        if previous == revision:
            self._report_drift(pass_, applied.plan.changes)
        status.last_applied_revision = revision
        status.inventory = applied.inventory
        pass_.condition(STALLED, False, "Applied", f"applied revision {revision}")
        if applied.plan.creates or applied.plan.updates or applied.pruned:
            summary = (
                f"{len(applied.plan.creates)} created, {len(applied.plan.updates)} configured, "
                f"{len(applied.pruned)} pruned"
            )
            pass_.event("Normal", "Applied", f"revision {revision}: {summary}")
        if spec.wait:
            return self._gate_on_health(pass_, revision, interval)
        pass_.condition(READY, True, "Applied", f"applied revision {revision}")
        pass_.condition(RECONCILING, False, "Applied", f"applied revision {revision}")
        return Result(requeue_after=interval)

    def _stalled(
        self, pass_: Pass[GitSource], revision: str, reason: str, message: str, interval: float
    ) -> Result:
        """This revision cannot be applied: the last good one stays (nothing of this one was
        written, unless the writes themselves failed part-way — the message then says so)."""
        pass_.obj.status.last_attempted_revision = revision
        kept = pass_.obj.status.last_applied_revision
        suffix = f" (revision {kept} stays applied)" if kept else ""
        pass_.condition(STALLED, True, reason, message)
        pass_.condition(READY, False, reason, message + suffix)
        pass_.condition(RECONCILING, False, reason, message)
        return Result(requeue_after=interval)

    # --- steps ------------------------------------------------------------------------------

    def _dependencies_not_ready(self, source: GitSource) -> list[str]:
        waiting = []
        for dependency in source.spec.depends_on:
            other = self._sources.get(
                StoreKey(GitSource.PLURAL, source.metadata.namespace, dependency.name)
            )
            ready = None if other is None else other.status.condition(READY)
            if (
                other is None
                or ready is None
                or ready.status != ConditionStatus.TRUE
                or other.status.observed_generation != other.metadata.generation
            ):
                waiting.append(dependency.name)
        return waiting

    def _apply(self, source: GitSource, checkout: Checkout) -> _Applied:
        backend = self._backend_for(service_account_of(source), actor_of(source, checkout.revision))
        namespace = source.metadata.namespace or ""
        plan = apply_manifests(
            backend,
            list(labelled_manifests(source, checkout, self._limits)),
            namespace,
            stage=backend,
            stamp={REVISION_ANNOTATION: str(checkout.revision)},
            before_write=self.own_writes.expect,
        )
        if plan.failure is not None:
            inventory = list(source.status.inventory)
            if plan.written:
                # The writes stopped part-way (a conflict that kept coming, quota taken
                # meanwhile): what they may have written stays managed, so that a revision
                # without it prunes it.
                known = {inventory_key(entry) for entry in inventory}
                inventory += [
                    InventoryEntry(kind=key[0], namespace=key[1], name=key[2])
                    for key in (change.target.key for change in plan.changes)
                    if key not in known
                ]
            return _Applied(plan, inventory, [])
        inventory = [self._entry(backend, change) for change in plan.changes]
        pruned: list[LiveObject] = []
        if source.spec.prune:
            kept = {inventory_key(entry) for entry in inventory}
            gone = prunable(backend, source, kept)
            pruned = prune(backend, gone, kept, dry_run=False, report=log.info)
        return _Applied(plan, inventory, pruned)

    @staticmethod
    def _entry(backend: StagingBackend, change: Change) -> InventoryEntry:
        target = change.target
        live = change.live
        if live is None:  # just created: its uid is the server's
            try:
                live = backend.get(target.info, target.namespace, target.name)
            except ApiError:
                live = None
        uid = ((live or {}).get("metadata") or {}).get("uid")
        return InventoryEntry(
            kind=target.info.kind, namespace=target.namespace, name=target.name, uid=uid
        )

    def _report_drift(self, pass_: Pass[GitSource], changes: Iterable[Change]) -> None:
        """The revision did not move, yet objects were written: someone changed them."""
        for change in changes:
            if change.action == UNCHANGED:
                continue
            target = change.target
            what = ", ".join(change.fields) if change.fields else "the object was deleted"
            who = self._last_writer(pass_.obj, change)
            pass_.event(
                "Warning",
                "DriftReverted",
                f"{target.info.kind} {target.namespace + '/' if target.namespace else ''}"
                f"{target.name}: {what} changed by {who}; put back to git's revision",
            )

    def _last_writer(self, source: GitSource, change: Change) -> str:
        """Who last changed the object's spec (or deleted it) before this source put it back,
        from its durable history."""
        own = actor_of(source, None) + "@"
        target = change.target
        key = StoreKey(target.info.plural, target.namespace, target.name)
        wanted = ("SpecChanged",) if change.live is not None else ("Deleted", "DeletionRequested")
        try:
            records = self._deps.store.history(key)
        except NotFoundError:
            return "unknown"
        for record in reversed(records):
            if record.action in wanted and not record.actor.startswith(own):
                return record.actor
        return "unknown"

    def _gate_on_health(self, pass_: Pass[GitSource], revision: str, interval: float) -> Result:
        """Ready once every inventory object is Ready; Ready=False after ``timeout``."""
        source = pass_.obj
        backend = self._backend_for(service_account_of(source), actor_of(source, None))
        waiting = [
            f"{live.info.kind}/{live.key[2]}"
            for live in live_objects(backend, map(inventory_key, source.status.inventory))
            if not _is_ready(live)
        ]
        if not waiting:
            pass_.condition(HEALTHY, True, "Healthy", "every applied object is Ready")
            pass_.condition(READY, True, "Applied", f"applied revision {revision}, healthy")
            pass_.condition(RECONCILING, False, "Applied", f"applied revision {revision}")
            return Result(requeue_after=interval)
        shown = ", ".join(waiting[:5]) + (
            f" and {len(waiting) - 5} more" if len(waiting) > 5 else ""
        )
        healthy = source.status.condition(HEALTHY)
        since = healthy.last_transition_time if healthy is not None else None
        if healthy is None or healthy.status == ConditionStatus.TRUE:
            pass_.condition(HEALTHY, False, "Progressing", f"waiting for {shown}")
            since = self._deps.clock.wall()
        timeout = timedelta(seconds=source.spec.timeout_seconds)
        if since is not None and self._deps.clock.wall() - since >= timeout:
            message = f"not Ready after {source.spec.timeout}: {shown}"
            pass_.condition(HEALTHY, False, "HealthCheckFailed", message)
            pass_.condition(READY, False, "HealthCheckFailed", message)
            pass_.condition(RECONCILING, False, "HealthCheckFailed", message)
            return Result(requeue_after=interval)
        pass_.condition(
            READY, False, "Progressing", f"applied revision {revision}; waiting for {shown}"
        )
        pass_.condition(RECONCILING, True, "Progressing", f"waiting for {shown}")
        return Result(requeue_after=WAIT_POLL_SECONDS)

    # --- deletion ---------------------------------------------------------------------------

    def _release(self, source: GitSource) -> None:
        """Deleted GitSource: prune its objects, or leave them unlabelled (``prune: false``)."""
        backend = self._backend_for(service_account_of(source), actor_of(source, None))
        objects = still_managed(
            source, live_objects(backend, map(inventory_key, source.status.inventory))
        )
        if source.spec.prune:
            prune(backend, in_prune_order(objects), (), dry_run=False, report=log.info)
            return
        for live in objects:
            if live.metadata.get("deletionTimestamp"):
                continue  # on its way out (its namespace is being deleted, say)
            unlabelled = dict(live.obj)
            labels = {k: v for k, v in live.metadata.get("labels", {}).items() if k != SOURCE_LABEL}
            unlabelled["metadata"] = {**live.metadata, "labels": labels}
            try:
                backend.update(unlabelled, dry_run=False)
            except ApiError as exc:
                if not exc.not_found:
                    raise


def _sync_due(source: GitSource) -> bool:
    """A change the last pass has not handled: a new generation or a sync request."""
    return (
        source.status.observed_generation != source.metadata.generation
        or _annotation(source, REQUESTED_AT_ANNOTATION) != source.status.last_handled_request
    )


def _is_ready(live: LiveObject) -> bool:
    conditions = (live.obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == READY and c.get("status") == "True" for c in conditions)


def register(deps: Deps, backend_for: BackendFactory, cache_dir: Path) -> Controller:
    reconciler = GitSourceReconciler(deps, backend_for, cache_dir)
    controller = deps.manager.add_controller(
        GitSource,
        reconciler,
        workers=2,
        watches=[(GitSource, EnqueueMapped(reconciler.dependents_of))],
    )
    drifted = any_of(GenerationChanged(), LabelsChanged())
    for info in registry.all_kinds():
        if info.kind not in registry.APPLY_ORDER or info.kind in _NOT_WATCHED:
            continue
        controller.watch(
            deps.manager.informer(info.model),
            EnqueueMapped(reconciler.source_of),
            Normalised(),
            drifted,
            reconciler.own_writes,
        )
    return controller
