"""The HTTP backend: skyctl over the REST API of DESIGN §7 (httpx, Bearer token).

Where it sits: the normal implementation of ``skyctl.backend.Backend``. Paths are
``/apis/skybroker.io/v1alpha1/namespaces/{ns}/{plural}[/{name}]`` for namespaced kinds and
``/apis/skybroker.io/v1alpha1/{plural}[/{name}]`` for cluster-scoped kinds and cross-namespace
lists. Writes carry ``dryRun=All`` when asked; an update is a PUT whose
``metadata.resourceVersion`` is the precondition (the server answers 409 when it moved); a
patch is a PATCH with a JSON merge patch. Lists and watches send ``labelSelector`` and
``fieldSelector``. Error answers are Kubernetes ``Status`` objects, turned into
:class:`ApiError` with their field causes; a transport failure (refused, reset, dropped
mid-stream, a watch silent past its idle limit) is a retryable 503. One watch request is one
stream: resuming it after a drop, and re-listing after a 410, is ``skyctl.follow``'s job.

Several API servers (DESIGN §13: any number behind one etcd cluster) are given as a list or
comma-separated. Requests go to one of them until it fails; then the next is tried, once each:
a request whose connection was never made, whatever its method, and an idempotent one (GET,
PUT, DELETE) that failed in transit or was answered 503. A create or a patch that may have
reached a server is not sent again (the caller sees the 503 and decides). A watch that fails
moves the next attempt (``skyctl.follow``'s resume) to the next server.
"""

from __future__ import annotations

import builtins
import json
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from api_types import registry
from api_types.meta import API_VERSION
from api_types.registry import KindInfo
from controller.errors import FieldCause
from skyctl.backend import ApiError, ListResult, WatchEvent, client_version, deleted

__all__ = ["HttpBackend", "parse_servers"]

Wire = dict[str, Any]

_PAGE = 500
_TIMEOUT = 30.0
#: A watch that receives nothing for this long is dead (a half-open connection): the server
#: sends a BOOKMARK after every quiet ``bookmark_interval`` (default 30 s).
_WATCH_IDLE = 120.0
_MERGE_PATCH = "application/merge-patch+json"
#: Methods whose repetition leaves the server as one request would (RFC 9110 §9.2.2): sent
#: again to the next server after a failure in transit or a 503.
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
#: Failures that happen before any byte of the request left: safe to send anywhere again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)


def parse_servers(server: str | Sequence[str]) -> list[str]:
    """The API servers' base URLs from a list or a comma-separated string (``server`` of a
    context, ``--server``)."""
    items = server.split(",") if isinstance(server, str) else list(server)
    servers = [item.strip().rstrip("/") for item in items if item.strip()]
    if not servers:
        raise ValueError("server: no API server URL given")
    return servers


def _error(response: httpx.Response) -> ApiError:
    """The Status object of a failed answer (or what can be said without one)."""
    try:
        status = response.json()
    except ValueError:
        status = None
    if not isinstance(status, dict):
        text = response.text.strip()[:500] or response.reason_phrase
        return ApiError(response.status_code, response.reason_phrase, text)
    details = status.get("details") or {}
    causes = tuple(
        FieldCause(str(c.get("field", "")), str(c.get("message", "")))
        for c in details.get("causes") or []
        if isinstance(c, dict)
    )
    return ApiError(
        int(status.get("code") or response.status_code),
        str(status.get("reason") or response.reason_phrase),
        str(status.get("message") or response.reason_phrase),
        causes,
    )


class HttpBackend:
    """The default backend: the REST API over HTTP with a bearer token."""

    def __init__(
        self, server: str | Sequence[str], token: str | None, *, verify: bool = True
    ) -> None:
        self._servers = parse_servers(server)
        self.description = ",".join(self._servers)
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._lock = threading.Lock()
        self._current = 0
        self._http = httpx.Client(headers=headers, timeout=_TIMEOUT, verify=verify)

    @property
    def _base(self) -> str:
        """The server requests go to now."""
        return self._servers[self._current]

    def _failed(self, base: str) -> None:
        """``base`` failed: later requests go to the next server (unless one moved on already)."""
        with self._lock:
            if self._servers[self._current] == base:
                self._current = (self._current + 1) % len(self._servers)

    def close(self) -> None:
        self._http.close()

    # --- paths ----------------------------------------------------------------------------

    @staticmethod
    def _collection(info: KindInfo, namespace: str | None) -> str:
        if info.namespaced and namespace:
            return f"/apis/{API_VERSION}/namespaces/{namespace}/{info.plural}"
        return f"/apis/{API_VERSION}/{info.plural}"

    def _item(self, info: KindInfo, namespace: str | None, name: str) -> str:
        return f"{self._collection(info, namespace)}/{name}"

    @staticmethod
    def _placement(obj: Wire) -> tuple[KindInfo, str | None, str]:
        try:
            info = registry.by_kind(str(obj.get("kind")))
        except registry.UnknownKindError as exc:
            cause = FieldCause("kind", str(exc))
            raise ApiError(422, "Invalid", "invalid object", (cause,)) from None
        metadata = obj.get("metadata") or {}
        return info, metadata.get("namespace"), str(metadata.get("name", ""))

    # --- requests -------------------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer of the first server that gives one worth keeping, trying each once."""
        unavailable: ApiError | None = None
        for _ in self._servers:
            base = self._base
            try:
                response = self._http.request(method, base + path, **kwargs)
            except httpx.HTTPError as exc:
                self._failed(base)
                unavailable = ApiError(503, "ServiceUnavailable", f"{base}: {exc}")
                if isinstance(exc, _NOT_SENT) or method in _IDEMPOTENT:
                    continue
                raise unavailable from None
            if response.status_code == 503:
                self._failed(base)
                if method in _IDEMPOTENT:
                    unavailable = _error(response)
                    continue
            return response
        assert unavailable is not None
        raise unavailable

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        if response.status_code >= 400:
            raise _error(response)
        try:
            return response.json()
        except ValueError:
            raise ApiError(502, "BadGateway", f"{method} {path}: the answer is not JSON") from None

    @staticmethod
    def _dry_run(dry_run: bool) -> dict[str, str]:
        return {"dryRun": "All"} if dry_run else {}

    def get(self, info: KindInfo, namespace: str | None, name: str) -> Wire:
        result: Wire = self._request("GET", self._item(info, namespace, name))
        return result

    @staticmethod
    def _selectors(selector: str | None, fields: str | None) -> dict[str, str]:
        params = {"labelSelector": selector, "fieldSelector": fields}
        return {name: value for name, value in params.items() if value}

    def list(
        self,
        info: KindInfo,
        namespace: str | None,
        selector: str | None,
        *,
        fields: str | None = None,
    ) -> ListResult:
        items: list[Wire] = []
        params: dict[str, str | int] = {"limit": _PAGE, **self._selectors(selector, fields)}
        while True:
            page = self._request("GET", self._collection(info, namespace), params=params)
            items.extend(page.get("items") or [])
            metadata = page.get("metadata") or {}
            if not metadata.get("continue"):
                return ListResult(items, str(metadata.get("resourceVersion", "0")))
            params["continue"] = metadata["continue"]

    def create(self, obj: Wire, *, dry_run: bool) -> Wire:
        info, namespace, _ = self._placement(obj)
        result: Wire = self._request(
            "POST", self._collection(info, namespace), json=obj, params=self._dry_run(dry_run)
        )
        return result

    def update(self, obj: Wire, *, dry_run: bool) -> Wire:
        info, namespace, name = self._placement(obj)
        result: Wire = self._request(
            "PUT", self._item(info, namespace, name), json=obj, params=self._dry_run(dry_run)
        )
        return result

    def patch(
        self, info: KindInfo, namespace: str | None, name: str, patch: Wire, *, dry_run: bool
    ) -> Wire:
        result: Wire = self._request(
            "PATCH",
            self._item(info, namespace, name),
            content=json.dumps(patch).encode(),
            headers={"Content-Type": _MERGE_PATCH},
            params=self._dry_run(dry_run),
        )
        return result

    def delete(self, info: KindInfo, namespace: str | None, name: str, *, dry_run: bool) -> Wire:
        answer = self._request(
            "DELETE", self._item(info, namespace, name), params=self._dry_run(dry_run)
        )
        return deleted(info, namespace, name, answer)

    def watch(
        self,
        info: KindInfo,
        namespace: str | None,
        selector: str | None,
        resource_version: str,
        *,
        fields: str | None = None,
    ) -> Iterator[WatchEvent]:
        params = {
            "watch": "true",
            "resourceVersion": resource_version,
            **self._selectors(selector, fields),
        }
        timeout = httpx.Timeout(_TIMEOUT, read=_WATCH_IDLE)
        base = self._base
        url = base + self._collection(info, namespace)
        try:
            with self._http.stream("GET", url, params=params, timeout=timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    if response.status_code == 503:
                        self._failed(base)
                    raise _error(response)
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    try:
                        event = json.loads(line)
                    except ValueError:
                        raise ApiError(502, "BadGateway", "a watch event is not JSON") from None
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        raise ApiError(
                            int(status.get("code") or 500),
                            str(status.get("reason") or "InternalError"),
                            str(status.get("message") or "watch failed"),
                        )
                    yield WatchEvent(str(event.get("type")), event.get("object") or {})
        except httpx.HTTPError as exc:
            self._failed(base)  # the resume goes to the next server
            raise ApiError(503, "ServiceUnavailable", f"{base}: {exc}") from None

    def history(self, info: KindInfo, namespace: str | None, name: str) -> builtins.list[Wire]:
        result = self._request("GET", self._item(info, namespace, name) + "/history")
        items: builtins.list[Wire] = result.get("items", []) if isinstance(result, dict) else result
        return items

    def can_i(self, verb: str, info: KindInfo, namespace: str | None) -> tuple[bool, str]:
        review = {
            "apiVersion": API_VERSION,
            "kind": "SelfSubjectAccessReview",
            "spec": {
                "resourceAttributes": {
                    "verb": verb,
                    "resource": info.plural,
                    "namespace": namespace if info.namespaced else None,
                }
            },
        }
        result = self._request("POST", f"/apis/{API_VERSION}/selfsubjectaccessreviews", json=review)
        status = result.get("status") or {}
        return bool(status.get("allowed")), str(status.get("reason") or "")

    def version(self) -> Wire:
        server = self._request("GET", "/version")
        return {"server": server, "client": client_version()}
