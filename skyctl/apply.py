"""``apply``, ``diff`` and ``--prune``: the one declarative-sync logic, for both backends.

Where it sits: called by ``skyctl.main`` with manifests from
``skyctl.manifests`` and a ``Backend`` (the REST API or the store). For each manifest:

1. **prepare** — look the kind up, settle the namespace (the manifest's, else the context's;
   ``-n`` that disagrees with the manifest is an error, like kubectl), drop what the server
   owns (status, uid, resourceVersion, …), record the manifest itself in the
   ``skybroker.io/last-applied-configuration`` annotation, and validate with the kind's model;
2. **decide** — read the live object; absent → create; present → the three-way merge patch of
   ``skyctl.merge``: empty → *unchanged* and **nothing is written**, else *configured*
   with a PUT of the merged object whose resourceVersion is the precondition; a 409 (someone
   wrote in between) re-reads and decides again;
3. **prune** (``--prune -l SEL``) — objects matching the selector that carry the annotation (so
   were created by apply) but are no longer in the applied set are deleted.

``diff`` runs steps 1 and 2 without writing and shows live vs. merged as a unified diff.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pydantic
import yaml

from api_types import registry
from api_types.registry import KindInfo
from api_types.tenancy import Secret
from controller.errors import FieldCause
from controller.mergepatch import merge_patch
from skyctl.backend import ApiError, Backend
from skyctl.manifests import Manifest
from skyctl.merge import three_way_patch

__all__ = [
    "LAST_APPLIED",
    "Target",
    "apply_all",
    "decide",
    "diff_all",
    "prepare",
    "prune",
    "resource_ref",
]

Wire = dict[str, Any]

LAST_APPLIED = "skybroker.io/last-applied-configuration"
#: Metadata the server owns; a manifest saved with ``get -o yaml`` carries them, apply ignores
#: them (a stale resourceVersion from a saved file must not turn into a precondition).
_SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
)
_USER_METADATA = ("labels", "annotations", "finalizers", "ownerReferences")
_CONFLICT_RETRIES = 5


@dataclass(frozen=True)
class Target:
    """One manifest made ready to apply."""

    info: KindInfo
    namespace: str | None
    name: str
    desired: Wire  # normalised, without status, user metadata only
    last_applied: Wire

    @property
    def ref(self) -> str:
        return resource_ref(self.info, self.name)

    @property
    def created(self) -> Wire:
        """What ``create`` sends: the object without apply's last-applied record (created
        imperatively, it is not apply's to prune or merge against)."""
        created = copy.deepcopy(self.desired)
        annotations = created["metadata"].get("annotations") or {}
        annotations.pop(LAST_APPLIED, None)
        if not annotations:
            created["metadata"].pop("annotations", None)
        return created


def resource_ref(info: KindInfo, name: str) -> str:
    """``instance.skybroker.io/web-1``: how apply names what it did."""
    return f"{info.kind.lower()}.skybroker.io/{name}"


def _invalid(source: str, message: str, causes: list[tuple[str, str]]) -> ApiError:
    found = tuple(FieldCause(field, text) for field, text in causes)
    return ApiError(422, "Invalid", f"{source}: {message}", found)


def prepare(manifest: Manifest, default_namespace: str, forced_namespace: str | None) -> Target:
    """Validate one manifest and normalise it for comparison with the live object."""
    obj = copy.deepcopy(manifest.obj)
    obj.pop("status", None)
    try:
        info = registry.by_kind(str(obj.get("kind")))
    except registry.UnknownKindError as exc:
        raise _invalid(manifest.source, "unknown kind", [("kind", str(exc))]) from None
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
        raise _invalid(manifest.source, "invalid", [("metadata.name", "required")])
    for server_field in _SERVER_METADATA:
        metadata.pop(server_field, None)
    if info.namespaced:
        given = metadata.get("namespace")
        if given and forced_namespace and given != forced_namespace:
            raise _invalid(
                manifest.source,
                f"the namespace {given!r} does not match the namespace {forced_namespace!r} "
                "given on the command line",
                [("metadata.namespace", "conflicts with -n")],
            )
        metadata["namespace"] = given or forced_namespace or default_namespace
    else:
        metadata.pop("namespace", None)
    annotations = dict(metadata.get("annotations") or {})
    annotations.pop(LAST_APPLIED, None)
    metadata["annotations"] = annotations
    last_applied = copy.deepcopy(obj)
    for secret_field in ("data", "stringData") if info.kind == "Secret" else ():
        # The annotation is served to anyone who may list Secrets, even without `get`: keep
        # only the keys (all the three-way merge needs to see what was removed).
        if isinstance(last_applied.get(secret_field), dict):
            last_applied[secret_field] = dict.fromkeys(last_applied[secret_field], "")
    annotations[LAST_APPLIED] = json.dumps(last_applied, sort_keys=True, separators=(",", ":"))
    try:
        parsed = registry.parse_object(obj)
    except pydantic.ValidationError as exc:
        raise _invalid(manifest.source, "invalid", registry.field_errors(exc)) from None
    if isinstance(parsed, Secret):
        # Compare in the form the server stores (admission folds stringData the same way):
        # unfolded, an unchanged Secret would look changed on every apply.
        parsed = parsed.folded()
    desired = parsed.to_wire()
    desired.pop("status", None)
    normalised_metadata = desired["metadata"]
    desired["metadata"] = {
        key: value
        for key, value in normalised_metadata.items()
        if key in ("name", "namespace", "annotations") or key in metadata
    }
    return Target(info, metadata.get("namespace"), metadata["name"], desired, last_applied)


def _last_applied_of(live: Wire) -> Wire:
    text = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    try:
        value = json.loads(text) if text else {}
    except ValueError:  # edited by hand into garbage: behave as if never applied
        return {}
    return value if isinstance(value, dict) else {}


def decide(target: Target, live: Wire | None) -> tuple[str, Wire | None]:
    """("created", new) | ("configured", merged) | ("unchanged", None) against ``live``."""
    if live is None:
        return "created", target.desired
    patch = three_way_patch(_last_applied_of(live), target.desired, live)
    if not patch:
        return "unchanged", None
    merged = merge_patch(live, patch)
    merged.pop("status", None)
    return "configured", merged


def _get_or_none(backend: Backend, target: Target) -> Wire | None:
    try:
        return backend.get(target.info, target.namespace, target.name)
    except ApiError as exc:
        if exc.not_found:
            return None
        raise


def apply_one(backend: Backend, target: Target, *, dry_run: bool) -> str:
    """Apply one target; returns the action taken."""
    for _ in range(_CONFLICT_RETRIES):
        action, obj = decide(target, _get_or_none(backend, target))
        try:
            if action == "created":
                backend.create(target.desired, dry_run=dry_run)
            elif obj is not None:
                backend.update(obj, dry_run=dry_run)
            return action
        except ApiError as exc:
            # Someone wrote (or created) it since we read it: read again and decide again.
            if not (exc.conflict or (exc.code == 409 and action == "created")):
                raise
    raise ApiError(409, "Conflict", f"{target.ref}: kept changing while being applied; retry")


def apply_all(
    backend: Backend,
    targets: Iterable[Target],
    *,
    dry_run: bool,
    report: Callable[[str], None],
    fail: Callable[[ApiError], None],
) -> int:
    """Apply every target, reporting each outcome; returns the number of failures."""
    suffix = " (dry run)" if dry_run else ""
    failures = 0
    for target in targets:
        try:
            report(f"{target.ref} {apply_one(backend, target, dry_run=dry_run)}{suffix}")
        except ApiError as exc:
            exc.message = f"{target.ref}: {exc.message}"
            fail(exc)
            failures += 1
    return failures


def prune(
    backend: Backend,
    targets: list[Target],
    selector: str,
    default_namespace: str,
    *,
    dry_run: bool,
    report: Callable[[str], None],
) -> None:
    """Delete applied objects matching ``selector`` that are not among ``targets``."""
    keep = {(t.info.kind, t.namespace, t.name) for t in targets}
    namespaces = sorted({t.namespace for t in targets if t.namespace}) or [default_namespace]
    suffix = " (dry run)" if dry_run else ""
    for info in registry.all_kinds():
        if info.kind == "Event":
            continue
        for namespace in namespaces if info.namespaced else [None]:
            try:
                listed = backend.list(info, namespace, selector).items
            except ApiError as exc:
                if exc.code == 403:  # a kind the user may not list is one they did not apply
                    continue
                raise
            for obj in listed:
                metadata = obj.get("metadata") or {}
                name = str(metadata.get("name"))
                if (
                    (info.kind, metadata.get("namespace"), name) in keep
                    or LAST_APPLIED not in (metadata.get("annotations") or {})
                    or metadata.get("deletionTimestamp")
                ):
                    continue
                backend.delete(info, metadata.get("namespace"), name, dry_run=dry_run)
                report(f"{resource_ref(info, name)} pruned{suffix}")


def _comparable(obj: Wire | None) -> str:
    """YAML of what apply manages, for diffing: no status, no server bookkeeping."""
    if obj is None:
        return ""
    shown = copy.deepcopy(obj)
    shown.pop("status", None)
    metadata = shown.get("metadata") or {}
    for server_field in _SERVER_METADATA:
        metadata.pop(server_field, None)
    return yaml.safe_dump(shown, sort_keys=True, default_flow_style=False)


def diff_all(backend: Backend, targets: Iterable[Target], write: Callable[[str], Any]) -> bool:
    """Print a unified diff per target whose apply would change something; True if any."""
    changed = False
    for target in targets:
        live = _get_or_none(backend, target)
        action, obj = decide(target, live)
        if action == "unchanged":
            continue
        changed = True
        label = f"{target.info.plural}.{target.namespace or ''}.{target.name}".replace("..", ".")
        write(
            "".join(
                difflib.unified_diff(
                    _comparable(live).splitlines(keepends=True),
                    _comparable(obj).splitlines(keepends=True),
                    fromfile=f"live/{label}",
                    tofile=f"merged/{label}",
                )
            )
        )
    return changed
