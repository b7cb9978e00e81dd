"""Plan and write: what applying each target changes, checked by the server, then written.

Where it sits: the third and fourth steps of the apply engine (decode → prepare → **plan →
write** → prune). For one target, :func:`plan_change` reads nothing and decides against the live
object: absent → *created*; present → the three-way merge patch of
:mod:`controller.apply.merge`: empty → *unchanged* (nothing is written), else *configured*
with a replace of the merged object whose resourceVersion is the precondition.
:func:`apply_one` does that against the backend, re-reading and deciding again on a 409
(someone wrote in between) — skyctl's ``apply`` runs it per document.

:func:`apply_manifests` is the all-or-nothing mode (GitOps, DESIGN §9): every document is
prepared and **dry-run** against the backend (so schema, admission, RBAC and quota answer)
before anything is written, in the registry's :data:`~api_types.registry.APPLY_ORDER` — with
a ``stage`` (a :class:`~controller.apply.backend.StagingBackend` such as
``apiserver.local.LocalBackend``) each dry-run sees the objects planned
before it, so an Instance may name a HardwareProfile of the same set; only if all pass are the
changes written, in that order. The returned :class:`Plan` lists creates, updates
(with the fields they change) and unchanged objects, and the first failure with its file,
document index and field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace

from api_types.registry import apply_rank
from controller.apply.backend import Backend, StagingBackend, Wire
from controller.apply.manifests import Manifest
from controller.apply.merge import three_way_patch
from controller.apply.prepare import LAST_APPLIED, ObjectKey, Target, prepare
from controller.errors import ApiError, FieldCause
from controller.mergepatch import merge_patch

__all__ = [
    "CONFIGURED",
    "CREATED",
    "UNCHANGED",
    "Change",
    "Failure",
    "Plan",
    "apply_manifests",
    "apply_one",
    "decide",
    "get_or_none",
    "plan_change",
    "plan_manifests",
]

CREATED = "created"
CONFIGURED = "configured"
UNCHANGED = "unchanged"
_CONFLICT_RETRIES = 5
#: Apply's own bookkeeping changes with every other field: not listed among an update's fields.
_LAST_APPLIED_PATH = f"metadata.annotations.{LAST_APPLIED}"


@dataclass(frozen=True)
class Change:
    """What applying one target does to the live object."""

    target: Target
    action: str  # CREATED | CONFIGURED | UNCHANGED
    live: Wire | None
    #: What is written: the desired object (created) or the merged one (configured).
    obj: Wire | None
    #: The dotted paths an update changes (``spec.image``, ``metadata.labels.tier``).
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class Failure:
    """The first document of a plan (or write) that failed, and where."""

    file: str
    document: int  # from 1 in its file
    field: str  # the first field the server named, "" when it named none (a 403)
    error: ApiError

    def __str__(self) -> str:
        where = f"{self.file} (document {self.document})"
        return f"{where}: {self.field}: {self.error}" if self.field else f"{where}: {self.error}"


@dataclass(frozen=True)
class Plan:
    """The changes of a set of manifests in write order; ``failure`` set → nothing written
    (or, when ``written``, the write stopped there)."""

    changes: tuple[Change, ...] = ()
    failure: Failure | None = None
    written: bool = False
    keys: frozenset[ObjectKey] = field(default_factory=frozenset)

    def _of(self, action: str) -> list[Change]:
        return [change for change in self.changes if change.action == action]

    @property
    def creates(self) -> list[Change]:
        return self._of(CREATED)

    @property
    def updates(self) -> list[Change]:
        return self._of(CONFIGURED)

    @property
    def unchanged(self) -> list[Change]:
        return self._of(UNCHANGED)


def _last_applied_of(live: Wire) -> Wire:
    text = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    try:
        value = json.loads(text) if text else {}
    except ValueError:  # edited by hand into garbage: behave as if never applied
        return {}
    return value if isinstance(value, dict) else {}


def _paths(patch: Wire, prefix: str = "") -> Iterator[str]:
    for key, value in patch.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value:
            yield from _paths(value, path)
        else:
            yield path


def plan_change(target: Target, live: Wire | None) -> Change:
    """What applying ``target`` over ``live`` (None: absent) changes; no I/O."""
    if live is None:
        return Change(target, CREATED, None, target.desired)
    patch = three_way_patch(_last_applied_of(live), target.desired, live)
    if not patch:
        return Change(target, UNCHANGED, live, None)
    merged = merge_patch(live, patch)
    merged.pop("status", None)
    changed = (path for path in _paths(patch) if path != _LAST_APPLIED_PATH)
    return Change(target, CONFIGURED, live, merged, tuple(changed))


def decide(target: Target, live: Wire | None) -> tuple[str, Wire | None]:
    """("created", new) | ("configured", merged) | ("unchanged", None) against ``live``."""
    change = plan_change(target, live)
    return change.action, change.obj


def get_or_none(backend: Backend, target: Target) -> Wire | None:
    """The live object of ``target``, None when there is none."""
    try:
        return backend.get(target.info, target.namespace, target.name)
    except ApiError as exc:
        if exc.not_found:
            return None
        raise


def _write(backend: Backend, change: Change, *, dry_run: bool) -> None:
    if change.action == CREATED:
        backend.create(change.target.desired, dry_run=dry_run)
    elif change.obj is not None:
        backend.update(change.obj, dry_run=dry_run)


def apply_one(backend: Backend, target: Target, *, dry_run: bool) -> str:
    """Apply one target; returns the action taken."""
    for _ in range(_CONFLICT_RETRIES):
        change = plan_change(target, get_or_none(backend, target))
        try:
            _write(backend, change, dry_run=dry_run)
            return change.action
        except ApiError as exc:
            # Someone wrote (or created) it since we read it: read again and decide again.
            if not (exc.conflict or (exc.code == 409 and change.action == CREATED)):
                raise
    raise ApiError(409, "Conflict", f"{target.ref}: kept changing while being applied; retry")


def _failure(file: str, document: int, exc: ApiError) -> Failure:
    return Failure(file, document, exc.causes[0].field if exc.causes else "", exc)


def _with_annotations(manifest: Manifest, annotations: Mapping[str, str]) -> Manifest:
    if not annotations:
        return manifest
    obj = dict(manifest.obj)
    metadata = dict(obj.get("metadata") or {})
    metadata["annotations"] = {**(metadata.get("annotations") or {}), **annotations}
    obj["metadata"] = metadata
    return replace(manifest, obj=obj)


def _stamp_kept(stamp: Mapping[str, str], live: Wire | None) -> dict[str, str]:
    """The stamp annotations as ``live`` carries them (the new value where it has none)."""
    annotations = ((live or {}).get("metadata") or {}).get("annotations") or {}
    return {key: str(annotations.get(key, value)) for key, value in stamp.items()}


def _plan_stamped(
    manifest: Manifest, namespace: str, stamp: Mapping[str, str], live: Wire | None
) -> Change:
    """The change of ``manifest`` over ``live`` where the ``stamp`` annotations move only with
    a real change: planned first with the values ``live`` has, and only if something else
    differs, again with the new values."""
    change = plan_change(
        prepare(_with_annotations(manifest, _stamp_kept(stamp, live)), namespace, None), live
    )
    if change.action == UNCHANGED or _stamp_kept(stamp, live) == dict(stamp):
        return change
    return plan_change(prepare(_with_annotations(manifest, stamp), namespace, None), live)


def _prepare_new(manifest: Manifest, namespace: str, seen: set[ObjectKey]) -> Target:
    """``manifest`` prepared (namespaced kinds default to ``namespace``) and added to ``seen``;
    an object already seen is an error: which document should win is not the engine's guess."""
    target = prepare(manifest, namespace, None)
    if target.key in seen:
        raise ApiError(
            422,
            "Invalid",
            f"{manifest.source}: {target.ref} is already in an earlier document",
            (FieldCause("metadata.name", "duplicate"),),
        )
    seen.add(target.key)
    return target


def plan_manifests(
    backend: Backend,
    manifests: Iterable[Manifest],
    namespace: str,
    *,
    stage: StagingBackend | None = None,
    stamp: Mapping[str, str] | None = None,
) -> Plan:
    """Prepare every manifest, then dry-run each change against ``backend`` in write order;
    the changes, or the first failure. With ``stage`` (the same user's backend, able to stage),
    each dry-run runs on it staged with the changes planned before, so a document may refer to
    another of the same set. ``stamp`` annotations (GitOps' revision) are written only on the
    objects that change: an unchanged object keeps the values it has, and costs no write."""
    targets: list[tuple[Target, Manifest]] = []
    seen: set[ObjectKey] = set()
    for manifest in manifests:
        try:
            targets.append((_prepare_new(manifest, namespace, seen), manifest))
        except ApiError as exc:
            return Plan(failure=_failure(manifest.file or manifest.source, manifest.document, exc))
    changes: list[Change] = []
    checker: Backend = stage or backend
    for target, manifest in sorted(targets, key=lambda pair: apply_rank(pair[0].info.kind)):
        try:
            live = get_or_none(backend, target)
            if stamp:
                change = _plan_stamped(manifest, namespace, stamp, live)
            else:
                change = plan_change(target, live)
            _write(checker, change, dry_run=True)
        except ApiError as exc:
            return Plan(failure=_failure(target.file, target.document, exc))
        changes.append(change)
        if stage is not None and change.obj is not None:
            stage = stage.staged([change.obj])
            checker = stage
    return Plan(tuple(changes), keys=frozenset(seen))


def apply_manifests(
    backend: Backend,
    manifests: Iterable[Manifest],
    namespace: str,
    *,
    stage: StagingBackend | None = None,
    stamp: Mapping[str, str] | None = None,
    dry_run: bool = False,
    before_write: Callable[[Plan], None] | None = None,
) -> Plan:
    """All or nothing: :func:`plan_manifests`, then — only when every document passed and
    not ``dry_run`` — write the changes in order (unchanged objects are not written).
    ``before_write`` is told the plan just before its first write (a watcher of the written
    objects can then tell its own writes' echoes from other writers')."""
    plan = plan_manifests(backend, manifests, namespace, stage=stage, stamp=stamp)
    if plan.failure is not None or dry_run:
        return plan
    if before_write is not None:
        before_write(plan)
    written: list[Change] = []
    for change in plan.changes:
        if change.action == UNCHANGED:
            written.append(change)
            continue
        try:
            action = apply_one(backend, change.target, dry_run=False)
        except ApiError as exc:
            failure = _failure(change.target.file, change.target.document, exc)
            return replace(plan, failure=failure, written=True)
        written.append(replace(change, action=action))
    return replace(plan, changes=tuple(written), written=True)
