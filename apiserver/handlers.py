"""The resource operations behind the REST routes: get, list, create, update, patch, delete.

Where it sits: called by ``app`` (which authenticates and reads the body) for every request on
``/apis/skybroker.io/v1alpha1/…``; each operation authorizes (``rbac``), decodes and validates
the body (the pydantic models), admits (``admission``), reserves quota (``quota``) and writes
through the object store, whose compare-and-swap makes every write all-or-nothing. The code
is synchronous (the store blocks on gRPC); the app runs it in a thread pool. Every write's
history records (and its quota reservation's) name ``User.history_actor``: the user, unless an
in-process caller gave it a distinct ``actor`` (``apiserver.local``).

Secret data is returned only to users allowed to ``get`` secrets in the namespace: a list (or
watch) by someone who may list but not get them carries the Secrets without ``data``.

A stored value that does not decode or validate (a bad direct write) never fails a whole list:
it is listed as a row of its kind with its name, ``status.phase: Invalid`` and a ``Ready=False``
condition whose message holds the errors (:func:`invalid_row`), left out only when a selector
asks for labels or fields it cannot be known to have; a GET of it answers the same row. DELETE
removes it as it stands (``Store.delete_invalid``), so it can always be cleaned up; an update or
a patch of it is refused (422, with the errors): delete it and create it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pydantic

from api_types import registry
from api_types.common import SYSTEM_NAMESPACE
from api_types.meta import API_VERSION, Resource
from api_types.tenancy import Namespace, Secret
from apiserver.admission import admit, default_for_create
from apiserver.auth import User
from apiserver.cachedreads import CachedReads, Warnings
from apiserver.lookups import Lookups
from apiserver.paths import Target, decode_continue, encode_continue
from apiserver.quota import usage_change, with_reservation
from apiserver.rbac import Attributes, Authorizer
from apiserver.status import ApiError, success_status
from controller.errors import ConflictError, FieldCause, InvalidObjectError
from controller.fields import FieldSelector, parse_field_selector
from controller.labels import LabelSelector, SelectorError
from controller.mergepatch import merge_patch
from controller.store.keys import ObjectKey
from controller.store.objects import Store
from controller.store.results import InvalidValue, TxnExtras

__all__ = ["INVALID_PHASE", "Resources", "Selection", "invalid_row", "parse_selection"]

Wire = dict[str, Any]
_PATCH_RETRIES = 5
#: The phase a listed value that does not decode or validate is shown with.
INVALID_PHASE = "Invalid"


@dataclass(frozen=True)
class Selection:
    """What a list or watch asks for: ``labelSelector`` and ``fieldSelector`` together."""

    labels: LabelSelector
    fields: FieldSelector

    @property
    def empty(self) -> bool:
        return self.labels.empty and self.fields.empty

    def matches(self, obj: Resource) -> bool:
        if not self.labels.matches(obj.metadata.labels):
            return False
        return self.fields.empty or self.fields.matches(obj.to_wire())


def parse_selection(labels: str | None, fields: str | None) -> Selection:
    """Both selectors of a request; 400 naming the bad term of either."""
    try:
        label_selector = LabelSelector.parse(labels)
    except SelectorError as exc:
        raise ApiError(400, "BadRequest", str(exc)) from None
    try:
        field_selector = parse_field_selector(fields)
    except ValueError as exc:
        raise ApiError(400, "BadRequest", f"fieldSelector: {exc}") from None
    return Selection(label_selector, field_selector)


def invalid_row(kind: str, value: InvalidValue) -> Wire:
    """How a stored value that does not decode or validate is listed: its kind and name, phase
    ``Invalid`` and its errors as the message of ``Ready=False`` (what tables already show)."""
    errors = "; ".join(str(cause) for cause in value.causes)
    metadata: Wire = {"name": value.key.name, "resourceVersion": str(value.mod_revision)}
    if value.key.namespace:
        metadata["namespace"] = value.key.namespace
    condition = {"type": "Ready", "status": "False", "reason": "InvalidObject", "message": errors}
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": metadata,
        "status": {"phase": INVALID_PHASE, "conditions": [condition]},
    }


def seen_as(obj: Resource, hide_data: bool) -> Wire:
    """The wire form of ``obj``, without a Secret's data when ``hide_data``."""
    wire = obj.to_wire()
    if hide_data:
        wire.pop("data", None)
        wire.pop("stringData", None)
    return wire


def _bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


class Resources:
    """The operations; ``lookups`` serves admission's reads (its caches are started by the API
    server; without them every read goes to etcd)."""

    def __init__(
        self,
        store: Store,
        authorizer: Authorizer,
        lookups: Lookups | None = None,
        reads: CachedReads | None = None,
    ) -> None:
        self.store = store
        self.authorizer = authorizer
        self.lookups = lookups or Lookups(store)
        self.reads = reads or CachedReads(store)

    # --- authorization --------------------------------------------------------------------

    def attributes(self, verb: str, target: Target, name: str | None = None) -> Attributes:
        name = name or target.name
        namespace = target.namespace
        if target.info.plural == "namespaces" and name:
            namespace = name  # a tenant may read its own Namespace object
        return Attributes(verb, target.rbac_resource, namespace, name)

    def authorize(self, user: User, verb: str, target: Target) -> None:
        self.authorizer.check(user, self.attributes(verb, target))

    def hides_data(self, user: User, obj: Resource) -> bool:
        """Whether ``user`` sees ``obj`` without its data: a Secret, without ``get secrets``."""
        if not isinstance(obj, Secret):
            return False
        attrs = Attributes("get", "secrets", obj.metadata.namespace, obj.metadata.name)
        return not self.authorizer.allowed(user, attrs)

    def visible(self, user: User, obj: Resource) -> Wire:
        """The wire form ``user`` may see (:func:`seen_as`)."""
        return seen_as(obj, self.hides_data(user, obj))

    # --- decoding -------------------------------------------------------------------------

    def parse(self, target: Target, body: Wire) -> Resource:
        """The body as an object of the target's kind, placed where the path says (400/422)."""
        info = target.info
        body.setdefault("apiVersion", API_VERSION)
        body.setdefault("kind", info.kind)
        if body["kind"] != info.kind:
            raise _bad_request(f"kind {body['kind']!r} does not belong under {info.plural}")
        metadata = body.setdefault("metadata", {})
        if isinstance(metadata, dict):
            if target.name is not None:
                metadata.setdefault("name", target.name)
                if metadata["name"] != target.name:
                    raise _bad_request(
                        f"the name in the body ({metadata['name']!r}) does not match the name "
                        f"in the path ({target.name!r})"
                    )
            if info.namespaced and target.namespace is not None:
                metadata.setdefault("namespace", target.namespace)
                if metadata["namespace"] != target.namespace:
                    raise _bad_request(
                        f"the namespace in the body ({metadata['namespace']!r}) does not match "
                        f"the namespace in the path ({target.namespace!r})"
                    )
        try:
            return registry.parse_object(body)
        except pydantic.ValidationError as exc:
            causes = tuple(FieldCause(p, m) for p, m in registry.field_errors(exc))
            raise InvalidObjectError(f"{info.kind} is invalid", causes) from None

    # --- reads ----------------------------------------------------------------------------

    def get(
        self,
        user: User,
        target: Target,
        resource_version: int | None = None,
        warnings: Warnings | None = None,
    ) -> Wire:
        """The object (``resource_version`` and ``warnings``: see ``cachedreads``)."""
        self.authorize(user, "get", target)
        info = target.info
        key = ObjectKey(info.plural, target.namespace, str(target.name))
        entry = self.reads.get(info, key, resource_version=resource_version, warnings=warnings)
        if isinstance(entry, InvalidValue):
            return invalid_row(info.kind, entry)
        return entry.to_wire()

    def history(self, user: User, target: Target) -> Wire:
        self.authorize(user, "get", target)
        key = ObjectKey(target.info.plural, target.namespace, str(target.name))
        items = [
            {**record.to_wire(), "revision": record.revision} for record in self.store.history(key)
        ]
        return {"apiVersion": API_VERSION, "kind": "HistoryList", "items": items}

    def list(
        self,
        user: User,
        target: Target,
        selector: str | None,
        limit: int,
        token: str | None,
        fields: str | None = None,
        resource_version: int | None = None,
        warnings: Warnings | None = None,
    ) -> Wire:
        """A page of the collection. With a field selector a page may hold fewer than
        ``limit`` items (even none) and still continue, as Kubernetes' may
        (``resource_version`` and ``warnings``: see ``cachedreads``)."""
        if limit < 0:
            raise _bad_request("limit must not be negative")
        self.authorize(user, "list", target)
        selection = parse_selection(selector, fields)
        info = target.info
        prefix = self.store.layout.kind_prefix(info.plural, target.namespace)
        revision, after = decode_continue(token, prefix) if token else (0, None)
        result = self.reads.list(
            info,
            target.namespace,
            selection.labels,
            limit=limit,
            continue_after=after,
            revision=revision,
            resource_version=resource_version,
            warnings=warnings,
        )
        metadata: Wire = {"resourceVersion": str(result.resource_version)}
        if result.continue_after is not None:
            metadata["continue"] = encode_continue(
                result.resource_version, result.continue_after, prefix
            )
        rows = [self.visible(user, obj) for obj in result.items]
        if selection.empty:
            rows.extend(invalid_row(info.kind, value) for value in result.invalid)
            rows.sort(
                key=lambda row: (row["metadata"].get("namespace") or "", row["metadata"]["name"])
            )
        return {
            "apiVersion": API_VERSION,
            "kind": f"{info.kind}List",
            "metadata": metadata,
            "items": [wire for wire in rows if selection.fields.matches(wire)],
        }

    # --- writes ---------------------------------------------------------------------------

    def create(self, user: User, target: Target, body: Wire, dry_run: bool) -> Wire:
        if target.name is not None:
            raise ApiError(405, "MethodNotAllowed", "create with POST on the collection")
        self.authorize(user, "create", target)
        admitted = admit(
            self.lookups, self.parse(target, body), writer=user, authorizer=self.authorizer
        )
        obj = default_for_create(self.lookups, admitted)
        actor = user.history_actor
        created = with_reservation(
            self.lookups,
            obj.metadata.namespace,
            usage_change(self.lookups, obj, None),
            actor,
            lambda extras: self.store.create(obj, actor=actor, dry_run=dry_run, extras=extras),
        )
        return created.to_wire()

    def _write(self, user: User, target: Target, obj: Resource, dry_run: bool) -> Resource:
        """Write spec (or, for /status, status) of an object whose resourceVersion is the base."""
        if target.subresource == "status":
            return self.store.update_status(obj, actor=user.history_actor, dry_run=dry_run)
        info = target.info
        old = self.store.get(info.model, str(target.name), target.namespace)
        obj = admit(self.lookups, obj, old, writer=user, authorizer=self.authorizer)
        leaving = old.metadata.deletion_timestamp is not None and not obj.metadata.finalizers
        delta = usage_change(self.lookups, None if leaving else obj, old)
        actor = user.history_actor
        return with_reservation(
            self.lookups,
            target.namespace,
            delta,
            actor,
            lambda extras: self.store.update(obj, actor=actor, dry_run=dry_run, extras=extras),
        )

    def update(self, user: User, target: Target, body: Wire, dry_run: bool) -> Wire:
        self.authorize(user, "update", target)
        return self._write(user, target, self.parse(target, body), dry_run).to_wire()

    def patch(self, user: User, target: Target, body: Wire, dry_run: bool) -> Wire:
        """JSON merge patch over the stored object; retried on a conflict unless the patch
        itself names the resourceVersion it expects."""
        self.authorize(user, "patch", target)
        precondition = isinstance(body.get("metadata"), dict) and bool(
            body["metadata"].get("resourceVersion")
        )
        for attempt in range(_PATCH_RETRIES):
            current = self.store.get(target.info.model, str(target.name), target.namespace)
            patched = merge_patch(current.to_wire(), body)
            try:
                return self._write(user, target, self.parse(target, patched), dry_run).to_wire()
            except ConflictError:
                if precondition or attempt == _PATCH_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def delete(self, user: User, target: Target, dry_run: bool) -> Wire:
        self.authorize(user, "delete", target)
        if target.info.plural == Namespace.PLURAL and target.name == SYSTEM_NAMESPACE:
            # It holds the accounts' credentials; every API server re-creates it at start.
            raise ApiError(
                403,
                "Forbidden",
                f'namespaces "{SYSTEM_NAMESPACE}" is forbidden: this namespace may not be deleted',
            )
        for attempt in range(_PATCH_RETRIES):
            try:
                return self._delete_once(user, target, dry_run)
            except ConflictError:
                if attempt == _PATCH_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _delete_once(self, user: User, target: Target, dry_run: bool) -> Wire:
        """Delete at the revision just read, releasing quota if the object leaves the store."""
        info, name = target.info, str(target.name)
        try:
            current = self.store.get(info.model, name, target.namespace)
        except InvalidObjectError:
            key = ObjectKey(info.plural, target.namespace, name)
            self.store.delete_invalid(key, actor=user.history_actor, dry_run=dry_run)
            return success_status(info.kind, name, None)
        # Usage is released only as the object leaves the store, with its last finalizer.
        removed = None if current.metadata.finalizers else current
        release = usage_change(self.lookups, None, removed)

        def delete(extras: TxnExtras | None) -> tuple[Resource, bool]:
            return self.store.delete(
                info.model,
                name,
                target.namespace,
                resource_version=current.metadata.resource_version,
                actor=user.history_actor,
                dry_run=dry_run,
                extras=extras,
            )

        obj, gone = with_reservation(
            self.lookups, target.namespace, release, user.history_actor, delete
        )
        return success_status(info.kind, name, obj.metadata.uid) if gone else obj.to_wire()
