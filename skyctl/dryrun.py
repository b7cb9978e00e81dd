"""``--dry-run=client``: every write verb run against the real reads, with no write sent.

Where it sits: wrapped around the session's backend by ``skyctl.main`` when a verb is
given ``--dry-run=client``, so ``apply``, ``create``, ``delete``, ``patch``, ``label`` and
``annotate`` need no client-side variant of their own. Reads go to the server as usual (apply
still decides created/configured/unchanged against the live object, delete still says when the
object does not exist); writes are answered here with what the server would have been asked to
store, checked against the kind's schema only — admission (references, quota, RBAC) is the
server's, and is what ``--dry-run=server`` (or a bare ``--dry-run``) asks it for.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from typing import Any

import pydantic

from api_types import registry
from api_types.registry import KindInfo
from controller.errors import FieldCause
from controller.mergepatch import merge_patch
from skyctl.backend import ApiError, Backend, ListResult, WatchEvent

__all__ = ["ClientDryRun"]

Wire = dict[str, Any]


def _checked(obj: Wire) -> Wire:
    """``obj`` if the kind's schema accepts it; else the 422 the server would answer."""
    try:
        registry.parse_object(obj)
    except pydantic.ValidationError as exc:
        causes = tuple(FieldCause(field, text) for field, text in registry.field_errors(exc))
        raise ApiError(422, "Invalid", "invalid (client dry run)", causes) from None
    except registry.UnknownKindError as exc:
        cause = FieldCause("kind", str(exc))
        raise ApiError(422, "Invalid", "invalid (client dry run)", (cause,)) from None
    return obj


class ClientDryRun:
    """A :class:`Backend` that reads through ``backend`` and writes nowhere."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self.description = f"{backend.description} (client dry run)"

    def get(self, info: KindInfo, namespace: str | None, name: str) -> Wire:
        return self._backend.get(info, namespace, name)

    def list(
        self,
        info: KindInfo,
        namespace: str | None,
        selector: str | None,
        *,
        fields: str | None = None,
    ) -> ListResult:
        return self._backend.list(info, namespace, selector, fields=fields)

    def create(self, obj: Wire, *, dry_run: bool) -> Wire:
        return _checked(obj)

    def update(self, obj: Wire, *, dry_run: bool) -> Wire:
        return _checked(obj)

    def patch(
        self, info: KindInfo, namespace: str | None, name: str, patch: Wire, *, dry_run: bool
    ) -> Wire:
        return _checked(merge_patch(self._backend.get(info, namespace, name), patch))

    def delete(self, info: KindInfo, namespace: str | None, name: str, *, dry_run: bool) -> Wire:
        return self._backend.get(info, namespace, name)

    def watch(
        self,
        info: KindInfo,
        namespace: str | None,
        selector: str | None,
        resource_version: str,
        *,
        fields: str | None = None,
    ) -> Iterator[WatchEvent]:
        return self._backend.watch(info, namespace, selector, resource_version, fields=fields)

    def history(self, info: KindInfo, namespace: str | None, name: str) -> builtins.list[Wire]:
        return self._backend.history(info, namespace, name)

    def can_i(self, verb: str, info: KindInfo, namespace: str | None) -> tuple[bool, str]:
        return self._backend.can_i(verb, info, namespace)

    def version(self) -> Wire:
        return self._backend.version()

    def close(self) -> None:
        self._backend.close()
