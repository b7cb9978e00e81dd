"""Prepare: one decoded manifest made ready to compare with the live object.

Where it sits: the second step of the apply engine (decode → **prepare** → plan → write →
prune). It looks the kind up in the registry, settles the namespace (the manifest's, else the
default; a forced namespace that disagrees with the manifest is an error, like kubectl's
``-n``), drops what the server owns (status, uid, resourceVersion, …), records the manifest
itself in the :data:`LAST_APPLIED` annotation (the "last" of the next three-way merge; fields a
kind declares keys-only, such as a Secret's values, are recorded by key alone), and validates
with the kind's model, normalising to the form the store keeps. Failures are 422
:class:`~controller.errors.ApiError`\\ s naming the manifest and the fields.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

import pydantic

from api_types import registry
from api_types.registry import KindInfo
from controller.apply.backend import Wire
from controller.apply.manifests import Manifest
from controller.errors import ApiError, FieldCause

__all__ = ["LAST_APPLIED", "SERVER_METADATA", "ObjectKey", "Target", "prepare", "resource_ref"]

LAST_APPLIED = "skybroker.io/last-applied-configuration"
#: Metadata the server owns; a manifest saved with ``get -o yaml`` carries them, apply ignores
#: them (a stale resourceVersion from a saved file must not turn into a precondition).
SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
)

#: (kind, namespace or None, name): how the engine tells objects apart.
ObjectKey = tuple[str, str | None, str]


def resource_ref(info: KindInfo, name: str) -> str:
    """``instance.skybroker.io/web-1``: how apply names what it did."""
    return f"{info.kind.lower()}.skybroker.io/{name}"


@dataclass(frozen=True)
class Target:
    """One manifest made ready to apply."""

    info: KindInfo
    namespace: str | None
    name: str
    desired: Wire  # normalised, without status, user metadata only
    last_applied: Wire
    #: Where the manifest came from (``Manifest.file``/``document``), for a plan's failure.
    file: str = ""
    document: int = 0

    @property
    def ref(self) -> str:
        return resource_ref(self.info, self.name)

    @property
    def key(self) -> ObjectKey:
        return (self.info.kind, self.namespace, self.name)

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


def _invalid(source: str, message: str, causes: list[tuple[str, str]]) -> ApiError:
    found = tuple(FieldCause(field, text) for field, text in causes)
    return ApiError(422, "Invalid", f"{source}: {message}", found)


def _settle_namespace(
    source: str,
    metadata: Wire,
    info: KindInfo,
    default_namespace: str,
    forced_namespace: str | None,
) -> None:
    if not info.namespaced:
        metadata.pop("namespace", None)
        return
    given = metadata.get("namespace")
    if given and forced_namespace and given != forced_namespace:
        raise _invalid(
            source,
            f"the namespace {given!r} does not match the namespace {forced_namespace!r} "
            "given on the command line",
            [("metadata.namespace", "conflicts with -n")],
        )
    metadata["namespace"] = given or forced_namespace or default_namespace


def _record_last_applied(info: KindInfo, obj: Wire) -> Wire:
    """Put the manifest in its own :data:`LAST_APPLIED` annotation; returns what it records."""
    annotations = dict(obj["metadata"].get("annotations") or {})
    annotations.pop(LAST_APPLIED, None)
    obj["metadata"]["annotations"] = annotations
    last_applied = copy.deepcopy(obj)
    for keys_only in info.last_applied_keys_only:
        # The annotation is served to anyone who may list the kind, even without `get`: keep
        # only the keys (all the three-way merge needs to see what was removed).
        if isinstance(last_applied.get(keys_only), dict):
            last_applied[keys_only] = dict.fromkeys(last_applied[keys_only], "")
    annotations[LAST_APPLIED] = json.dumps(last_applied, sort_keys=True, separators=(",", ":"))
    return last_applied


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
    for server_field in SERVER_METADATA:
        metadata.pop(server_field, None)
    _settle_namespace(manifest.source, metadata, info, default_namespace, forced_namespace)
    last_applied = _record_last_applied(info, obj)
    try:
        # Compare in the form the server stores (admission folds a Secret's stringData the
        # same way): otherwise an unchanged manifest would look changed on every apply.
        parsed = registry.parse_object(obj).stored_form()
    except pydantic.ValidationError as exc:
        raise _invalid(manifest.source, "invalid", registry.field_errors(exc)) from None
    desired = parsed.to_wire()
    desired.pop("status", None)
    desired["metadata"] = {
        key: value
        for key, value in desired["metadata"].items()
        if key in ("name", "namespace", "annotations") or key in metadata
    }
    return Target(
        info,
        metadata.get("namespace"),
        metadata["name"],
        desired,
        last_applied,
        manifest.file or manifest.source,
        manifest.document,
    )
