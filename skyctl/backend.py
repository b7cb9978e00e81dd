"""The interface every skyctl verb is written against, and the one error type it raises.

Where it sits: between the verbs (``commands``, ``apply``, ``describe``) and the two ways of
reaching the objects — the REST API (``skyctl.http``) and the store itself in the
``--etcd`` admin mode (``skyctl.etcd``). Objects cross this boundary as wire dicts
(what the API serves and etcd holds), so both backends are interchangeable and the verbs never
see a transport.

The object operations apply needs (get, list, create, update, delete) are the apply engine's
:class:`controller.apply.Backend`; this protocol adds what the other verbs use.

Errors are :class:`~controller.errors.ApiError` (the API server's own class, re-exported
here), shaped like the Kubernetes ``Status`` object the API returns (code, reason, message,
field causes); the etcd backend maps the store's exceptions onto the same codes, so scripts see
one behaviour whichever backend is used.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Protocol

from api_types.registry import KindInfo
from controller.apply import backend as apply_backend
from controller.apply.backend import ListResult, deleted
from controller.errors import ApiError

__all__ = ["ApiError", "Backend", "ListResult", "WatchEvent", "client_version", "deleted"]

Wire = dict[str, Any]


@dataclass(frozen=True)
class WatchEvent:
    """One event of a watch stream, as the REST API sends it."""
    type: str  # ADDED | MODIFIED | DELETED | BOOKMARK
    object: Wire


def client_version() -> str:
    try:
        return version("skybroker")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


class Backend(apply_backend.Backend, Protocol):
    """CRUD, watch and the read-only extras (history, access review) of one server or store.

    ``namespace`` is None for cluster-scoped kinds, and for lists across every namespace.
    """

    description: str

    def patch(
        self, info: KindInfo, namespace: str | None, name: str, patch: Wire, *, dry_run: bool
    ) -> Wire:
        """Apply a JSON merge patch (RFC 7386) on the server, with the same validation as an
        update; a ``metadata.resourceVersion`` in the patch is a precondition (409 when moved),
        without one the server retries its own read-merge-write on a conflict."""
        ...

    def watch(
        self,
        info: KindInfo,
        namespace: str | None,
        selector: str | None,
        resource_version: str,
        *,
        fields: str | None = None,
    ) -> Iterator[WatchEvent]:
        """Changes after ``resource_version`` until the stream ends; 410 when it is compacted.
        Selectors narrow it where the server supports them; callers apply them again, since
        the ``--etcd`` backend sends every change of the kind (``skyctl.follow``)."""
        ...

    def history(self, info: KindInfo, namespace: str | None, name: str) -> builtins.list[Wire]:
        """Durable history records, oldest first: revision, time, action, actor, changes."""
        ...

    def can_i(self, verb: str, info: KindInfo, namespace: str | None) -> tuple[bool, str]:
        """(allowed, reason) for the current user."""
        ...

    def version(self) -> Wire: ...

    def close(self) -> None: ...
