"""What the apply engine needs of a server: read, list, create, replace and delete, dry-run too.

Where it sits: under every step of the engine (``controller.apply``) that touches objects —
the plan reads the live objects and dry-runs each write, the write step creates and replaces,
prune lists and deletes. Implementations: skyctl's REST client (``skyctl.http``) and the API
server's own admission pipeline run in-process as one user (``apiserver.local.LocalBackend``,
used by skyctl's ``--etcd`` mode and by the GitSource reconciler). Objects cross this boundary
as wire dicts (what the API serves and etcd holds); every failure is a
:class:`~controller.errors.ApiError` shaped like the Kubernetes ``Status`` the API answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from api_types.registry import KindInfo
from controller.errors import ApiError

__all__ = ["ApiError", "Backend", "ListResult", "StagingBackend", "Wire", "deleted"]

Wire = dict[str, Any]


@dataclass(frozen=True)
class ListResult:
    """The objects of one list call and the revision a watch resumes from."""

    items: list[Wire]
    #: The revision the list is consistent at; a watch resumes from it.
    resource_version: str


def deleted(info: KindInfo, namespace: str | None, name: str, answer: Any) -> Wire:
    """The object a delete answered with; a finished delete answers with a ``Status`` (as in
    Kubernetes) and is then described by its kind and name only."""
    if isinstance(answer, dict) and answer.get("kind") != "Status":
        return answer
    return {"kind": info.kind, "metadata": {"name": name, "namespace": namespace}}


class Backend(Protocol):
    """The object operations of one server or store, as one user; ``dry_run`` writes run every
    check (schema, admission, RBAC, quota) and store nothing.

    ``namespace`` is None for cluster-scoped kinds, and for lists across every namespace.
    """

    def get(self, info: KindInfo, namespace: str | None, name: str) -> Wire: ...

    def list(
        self,
        info: KindInfo,
        namespace: str | None,
        selector: str | None,
        *,
        fields: str | None = None,
    ) -> ListResult:
        """Objects matching the label ``selector`` and the field selector ``fields``."""
        ...

    def create(self, obj: Wire, *, dry_run: bool) -> Wire: ...

    def update(self, obj: Wire, *, dry_run: bool) -> Wire:
        """Replace spec and user metadata; ``metadata.resourceVersion`` is a precondition."""
        ...

    def delete(self, info: KindInfo, namespace: str | None, name: str, *, dry_run: bool) -> Wire:
        """Request deletion (finalizers may keep the object a while); returns it as last seen."""
        ...


class StagingBackend(Backend, Protocol):
    """A backend that can dry-run a set of writes as a whole: :meth:`staged` is a view in
    which objects not yet written exist for admission (a reference, a namespace), so each
    document of a plan is checked as if the ones before it had been written
    (``apiserver.local.LocalBackend``; the REST API has no such view)."""

    def staged(self, objects: Sequence[Wire]) -> StagingBackend:
        """This backend as if ``objects`` (validated wire objects) were written; the store
        itself is unchanged, so only dry-runs should go through it."""
        ...
