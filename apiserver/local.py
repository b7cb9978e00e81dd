"""The API in-process: the resource operations of ``apiserver.handlers.Resources`` as one user.

Where it sits: beside the HTTP front (``app`` → ``dispatch``), for callers in the same process
as the store — skyctl's ``--etcd`` admin mode (``skyctl.etcd``, as a member of
``system:masters``) and, handed over by the composition root, the GitSource reconciler (as its
``serviceAccount`` user, whose ``User.actor`` names the GitSource and revision in the history
records of its writes). Everything a request through the API goes through applies: RBAC,
schema validation, admission, the quota reservation in the write's transaction,
compare-and-swap, and the same error codes — each failure becomes the
:class:`~controller.errors.ApiError` the REST API would answer. It implements the apply
engine's :class:`controller.apply.Backend` (plus ``patch`` and ``history``), and
:meth:`LocalBackend.staged` lets the engine's all-or-nothing plan dry-run each document as if
the ones before it had been written.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from api_types import registry
from api_types.registry import KindInfo
from apiserver.auth import User
from apiserver.handlers import Resources
from apiserver.paths import Target
from apiserver.status import error_from
from controller.apply import ListResult, deleted

__all__ = ["LocalBackend"]

Wire = dict[str, Any]
T = TypeVar("T")


def _call(operation: Callable[[], T]) -> T:
    """Run one API operation; its failure becomes the ApiError the REST API would answer."""
    try:
        return operation()
    except Exception as exc:
        raise error_from(exc) from None


def _target(obj: Wire, named: bool = False) -> Target:
    info = registry.by_kind(str(obj.get("kind")))
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace") if info.namespaced else None
    return Target(info, namespace, metadata.get("name")) if named else Target(info, namespace)


class LocalBackend:
    """The API's resource operations in-process, authorised as ``user`` (and recorded in
    history as ``user.history_actor``)."""

    def __init__(self, resources: Resources, user: User) -> None:
        self._resources = resources
        self._user = user

    def staged(self, objects: Sequence[Wire]) -> LocalBackend:
        """This backend as if ``objects`` (validated wire objects) were written: admission finds
        them (a reference, a namespace); for dry-runs — the store itself is unchanged."""
        resources = self._resources
        lookups = resources.lookups.staged(registry.parse_object(obj) for obj in objects)
        return LocalBackend(Resources(resources.store, resources.authorizer, lookups), self._user)

    def get(self, info: KindInfo, namespace: str | None, name: str) -> Wire:
        return _call(lambda: self._resources.get(self._user, Target(info, namespace, name)))

    def list(
        self,
        info: KindInfo,
        namespace: str | None,
        selector: str | None,
        *,
        fields: str | None = None,
    ) -> ListResult:
        target = Target(info, namespace)
        listed = _call(lambda: self._resources.list(self._user, target, selector, 0, None, fields))
        return ListResult(listed["items"], str(listed["metadata"]["resourceVersion"]))

    def create(self, obj: Wire, *, dry_run: bool) -> Wire:
        return _call(lambda: self._resources.create(self._user, _target(obj), obj, dry_run))

    def update(self, obj: Wire, *, dry_run: bool) -> Wire:
        return _call(
            lambda: self._resources.update(self._user, _target(obj, named=True), obj, dry_run)
        )

    def patch(
        self, info: KindInfo, namespace: str | None, name: str, patch: Wire, *, dry_run: bool
    ) -> Wire:
        target = Target(info, namespace, name)
        return _call(lambda: self._resources.patch(self._user, target, patch, dry_run))

    def delete(self, info: KindInfo, namespace: str | None, name: str, *, dry_run: bool) -> Wire:
        target = Target(info, namespace, name)
        answer = _call(lambda: self._resources.delete(self._user, target, dry_run))
        return deleted(info, namespace, name, answer)

    def history(self, info: KindInfo, namespace: str | None, name: str) -> builtins.list[Wire]:
        target = Target(info, namespace, name, "history")
        items: builtins.list[Wire] = _call(lambda: self._resources.history(self._user, target))[
            "items"
        ]
        return items
