"""The ``--etcd ENDPOINTS`` admin backend: skyctl on the object store itself, no API server.

Where it sits: an implementation of ``controller.cli.backend.Backend`` over
``controller.store.objects.Store``. It is for operators who hold the etcd endpoints (bootstrap,
repair, a dead API server): RBAC does not apply, but validation does — every write goes through
the store's own validation and compare-and-swap, exactly as the API server's writes do. Store
exceptions become :class:`ApiError` with the HTTP codes the API would answer, so verbs and exit
codes behave the same in both modes.
"""

from __future__ import annotations

import builtins
import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pydantic

from api_types import registry
from api_types.meta import Resource
from api_types.registry import KindInfo
from controller.cli.backend import ApiError, ListResult, WatchEvent, client_version
from controller.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidObjectError,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
)
from controller.labels import LabelSelector, SelectorError
from controller.store.codec import DecodeError, decode_value
from controller.store.etcd import EtcdClient
from controller.store.keys import KeyLayout, ObjectKey
from controller.store.objects import Store
from controller.store.watch import PrefixWatch

__all__ = ["EtcdBackend"]

Wire = dict[str, Any]


@contextmanager
def _as_api_errors() -> Iterator[None]:
    """Give store failures the codes and reasons the REST API uses for them."""
    try:
        yield
    except NotFoundError as exc:
        raise ApiError(404, "NotFound", str(exc)) from None
    except AlreadyExistsError as exc:
        raise ApiError(409, "AlreadyExists", str(exc)) from None
    except ConflictError as exc:
        raise ApiError(409, "Conflict", str(exc)) from None
    except InvalidObjectError as exc:
        causes = [(c.field, c.message) for c in exc.causes]
        raise ApiError(422, "Invalid", exc.message, causes) from None
    except StoreUnavailableError as exc:
        raise ApiError(503, "ServiceUnavailable", str(exc)) from None
    except StoreError as exc:
        raise ApiError(500, "InternalError", str(exc)) from None
    except SelectorError as exc:
        raise ApiError(400, "BadRequest", str(exc)) from None


def _parse(obj: Wire) -> Resource:
    try:
        return registry.parse_object(obj)
    except pydantic.ValidationError as exc:
        raise ApiError(422, "Invalid", "invalid object", registry.field_errors(exc)) from None
    except registry.UnknownKindError as exc:
        raise ApiError(422, "Invalid", "invalid object", [("kind", str(exc))]) from None


class EtcdBackend:
    def __init__(self, endpoints: list[str], prefix: str = "/skybroker") -> None:
        self.description = f"etcd {','.join(endpoints)} (prefix {prefix})"
        self._client = EtcdClient(endpoints)
        self._store = Store(self._client, KeyLayout(prefix))
        # The durable history names who made each change; here that is the local operator.
        self._actor = f"etcd-admin:{getpass.getuser()}"

    def close(self) -> None:
        self._client.close()

    def get(self, info: KindInfo, namespace: str | None, name: str) -> Wire:
        with _as_api_errors():
            return self._store.get(info.model, name, namespace).to_wire()

    def list(self, info: KindInfo, namespace: str | None, selector: str | None) -> ListResult:
        with _as_api_errors():
            listed = self._store.list(info.model, namespace, LabelSelector.parse(selector))
        return ListResult([o.to_wire() for o in listed.items], str(listed.resource_version))

    def create(self, obj: Wire, *, dry_run: bool) -> Wire:
        with _as_api_errors():
            return self._store.create(_parse(obj), actor=self._actor, dry_run=dry_run).to_wire()

    def update(self, obj: Wire, *, dry_run: bool) -> Wire:
        with _as_api_errors():
            return self._store.update(_parse(obj), actor=self._actor, dry_run=dry_run).to_wire()

    def delete(self, info: KindInfo, namespace: str | None, name: str, *, dry_run: bool) -> Wire:
        with _as_api_errors():
            obj, _ = self._store.delete(
                info.model, name, namespace, actor=self._actor, dry_run=dry_run
            )
        return obj.to_wire()

    def watch(
        self, info: KindInfo, namespace: str | None, selector: str | None, resource_version: str
    ) -> Iterator[WatchEvent]:
        with _as_api_errors():
            wanted = LabelSelector.parse(selector)
        layout = self._store.layout
        watch = PrefixWatch(
            self._client,
            layout.kind_prefix(info.plural, namespace),
            int(resource_version) + 1,
            prev_kv=True,
        )
        try:
            for batch in watch:
                if not batch:
                    metadata = {"resourceVersion": str(watch.last_revision)}
                    yield WatchEvent("BOOKMARK", {"kind": info.kind, "metadata": metadata})
                for event in batch:
                    key = layout.parse_object_key(event.key)
                    raw = event.prev_value if event.deleted else event.value
                    obj = self._decode_event(key, raw)
                    if obj is None or not wanted.matches(obj.metadata.labels):
                        continue
                    obj.metadata.resource_version = str(event.mod_revision)
                    if event.deleted:
                        kind = "DELETED"
                    elif event.create_revision == event.mod_revision:
                        kind = "ADDED"
                    else:
                        kind = "MODIFIED"
                    yield WatchEvent(kind, obj.to_wire())
        finally:
            watch.stop()

    def _decode_event(self, key: ObjectKey | None, raw: bytes | None) -> Resource | None:
        """The object of a watch event; None for values that do not validate (skipped, as the
        API server skips them: `get` reports those keys)."""
        if key is None or not raw:
            return None
        try:
            return self._store.validate_at_key(key, decode_value(raw))
        except (DecodeError, InvalidObjectError):
            return None

    def history(self, info: KindInfo, namespace: str | None, name: str) -> builtins.list[Wire]:
        with _as_api_errors():
            records = self._store.history(ObjectKey(info.plural, namespace, name))
        return [{**r.to_wire(), "revision": r.revision} for r in records]

    def can_i(self, verb: str, info: KindInfo, namespace: str | None) -> tuple[bool, str]:
        return True, "the --etcd admin mode is not subject to RBAC"

    def version(self) -> Wire:
        return {"server": self.description, "client": client_version()}
