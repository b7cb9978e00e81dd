"""The resource pipeline: every request below ``/apis/skybroker.io/v1alpha1/``, as plain ASGI.

Where it sits: ``app`` hands it every request under the API root (``system`` answers the few
paths outside it). On the event loop only: authenticate (``auth``), read the body under the
size limit (``body``), send pre-serialised bytes back. Everything else — the path (``paths``),
the query, decoding the body, the operation (``handlers``: RBAC, validation, admission, quota,
store) and the JSON encoding of the answer or of the ``Status`` for any failure (``status``) —
is :meth:`Dispatcher.handle`, blocking code, run one of two ways:

- bridged on the event loop (``controller.store.bridge``) when its only waits are etcd calls
  and it is short: reads of one object (without a resourceVersion to wait for) and writes of
  a body up to ``_LOOP_BODY_BYTES``. Each etcd call is awaited there, so no thread hop and no
  blocking gRPC client: bench.api's creates went from 690 to about 400 µs of server CPU;
- on a worker thread, one hop there and one back, for the rest: lists, watches and history
  (long), reads at a resourceVersion (they may wait for the watch cache to catch up) and large
  bodies (YAML of megabytes). A watch is positioned in the worker (authorization, the initial
  list) and then streamed from the event loop (``watch``), holding no thread: its events come
  from the plural's shared watch cache (``watchcache``).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import parse_qsl

from prometheus_client import Counter, Histogram

from api_types import registry
from apiserver.auth import TokenAuthenticator, User
from apiserver.body import decode_body, read_request_body
from apiserver.cachedreads import Warnings, parse_resource_version
from apiserver.handlers import Resources, Wire
from apiserver.paths import SUBRESOURCES, Target, parse_path
from apiserver.rbac import Attributes
from apiserver.redaction import RequestFacts
from apiserver.status import ApiError, error_from, error_headers, status_object
from apiserver.watch import WatchRequest, open_watch
from apiserver.watchcache import WatchCaches
from controller.asgi import Answer, Receive, Scope, Send, request_headers, stream
from controller.store.bridge import run_bridged
from controller.store.codec import encode_value

__all__ = ["REVIEWS", "Dispatcher", "Request", "encode", "failure"]

#: The path (below the API root) of ``skyctl auth can-i``'s question.
REVIEWS = "selfsubjectaccessreviews"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_METHODS = frozenset({"GET", "DELETE"}) | _BODY_METHODS
_WATCH_MEDIA = b"application/json;stream=watch"
#: Bodies up to this size are decoded on the event loop; a larger one (YAML of megabytes takes
#: a while) on a worker thread, so no request holds the loop for long.
_LOOP_BODY_BYTES = 64 * 1024


def encode(value: Wire) -> bytes:
    """An answer's JSON: the store's own compact encoding (orjson, ``codec.encode_value``)."""
    return encode_value(value)


def warning_headers(warnings: Warnings) -> tuple[tuple[bytes, bytes], ...]:
    """Kubernetes' ``Warning: 299 - "text"`` headers, one per warning."""
    return tuple((b"warning", f'299 - "{text}"'.encode("latin-1")) for text in warnings)


def failure(error: ApiError) -> Answer:
    """The answer to a failed request: its ``Status`` and the headers that go with it."""
    headers = tuple(
        (name.lower().encode("ascii"), value.encode("ascii"))
        for name, value in error_headers(error).items()
    )
    return Answer(error.code, encode(status_object(error)), headers=headers)


@dataclass(frozen=True)
class Request:
    """What :meth:`Dispatcher.handle` needs of an HTTP request (the body already read)."""

    method: str
    path: str  # below the API root, without the leading slash
    query: dict[str, str]
    content_type: str | None
    body: bytes


def _on_loop(request: Request) -> bool:
    """Whether ``request`` runs bridged on the event loop (the module docstring's rule)."""
    if len(request.body) > _LOOP_BODY_BYTES:
        return False
    if request.method != "GET":
        return True
    try:
        target = parse_path(request.path)
    except ApiError:
        return False  # answered by the worker, with the error
    if target.name is None or target.subresource == "history":
        return False
    return request.query.get("resourceVersion") in (None, "", "0")


def _flag(value: str | None, name: str) -> bool:
    if value in (None, "", "false", "0"):
        return False
    if value in ("true", "1"):
        return True
    raise ApiError(400, "BadRequest", f"{name} must be true or false")


def _dry_run(value: str | None) -> bool:
    if not value:
        return False
    if value == "All":
        return True
    raise ApiError(400, "BadRequest", f"dryRun must be 'All', not {value!r}")


def _limit(value: str | None) -> int:
    if not value:
        return 0
    if not value.isdigit():
        raise ApiError(400, "BadRequest", "limit must be a non-negative integer")
    return int(value)


@cache
def _known_resources() -> frozenset[str]:
    return frozenset(info.plural for info in registry.all_kinds()) | {REVIEWS}


def _resource_label(path: str) -> str:
    """The plural a path addresses, for metrics; "other" keeps label values bounded."""
    segments = path.split("/")
    if segments[0] == "namespaces" and len(segments) >= 3 and segments[2] not in SUBRESOURCES:
        segments = segments[2:]
    return segments[0] if segments[0] in _known_resources() else "other"


class Dispatcher:
    """Serves every path below the API root (the module docstring's pipeline): :meth:`__call__`
    is the ASGI entry on the event loop, :meth:`handle` the operation, bridged on the loop or
    on a worker thread."""

    def __init__(
        self,
        resources: Resources,
        authenticator: TokenAuthenticator,
        *,
        max_body_bytes: int,
        bookmark_interval: float,
        watch_caches: WatchCaches,
        workers: int,
        requests: Counter,
        duration: Histogram,
    ) -> None:
        self.resources = resources
        self.authenticator = authenticator
        self.max_body_bytes = max_body_bytes
        self.bookmark_interval = bookmark_interval
        self.watch_caches = watch_caches
        self._requests, self._duration = requests, duration
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="api-worker")
        self._watches: set[WatchRequest] = set()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def end_watches(self) -> None:
        """End every open watch stream (on the event loop, as shutdown begins)."""
        for watch in list(self._watches):
            watch.stop()

    # --- the event loop side --------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        started = time.perf_counter()
        method: str = scope["method"]
        headers = request_headers(scope)
        try:
            user = self.authenticator.authenticate(headers.get("authorization"))
            if method not in _METHODS:
                raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")
            body = b""
            if method in _BODY_METHODS:
                length = headers.get("content-length")
                body = await read_request_body(receive, length, self.max_body_bytes)
            query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
            request = Request(method, path, query, headers.get("content-type"), body)
            if _on_loop(request):
                result = await run_bridged(self.handle, request, user)
            else:
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(self._pool, self.handle, request, user)
        except Exception as exc:
            facts = RequestFacts(method, path, authorization=headers.get("authorization"))
            result = failure(error_from(exc, facts))
        code = result.code if isinstance(result, Answer) else 200
        self._requests.labels(method, _resource_label(path), str(code)).inc()
        self._duration.labels(method).observe(time.perf_counter() - started)
        if isinstance(result, Answer):
            await result.send(send)
        else:
            self._watches.add(result)
            try:
                await stream(receive, send, _WATCH_MEDIA, result.stream())
            finally:
                self._watches.discard(result)

    # --- the operation (bridged on the loop, or on a worker thread) -----------------------

    def handle(self, request: Request, user: User) -> Answer | WatchRequest:
        """The whole operation, synchronously: an answer, or a watch positioned to stream."""
        try:
            if request.path == REVIEWS:
                return self._review(request, user)
            return self._resource(request, user)
        except Exception as exc:
            facts = RequestFacts(request.method, request.path, request.body)
            return failure(error_from(exc, facts))

    def _body(self, request: Request, *, patch: bool = False) -> dict[str, Any]:
        return decode_body(request.body, request.content_type, patch=patch)

    def _review(self, request: Request, user: User) -> Answer:
        if request.method != "POST":
            raise ApiError(405, "MethodNotAllowed", f"{REVIEWS} only answers POST")
        body = self._body(request)
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        attributes = spec.get("resourceAttributes") if isinstance(spec, dict) else None
        if not isinstance(attributes, dict) or not isinstance(attributes.get("verb"), str):
            raise ApiError(400, "BadRequest", "spec.resourceAttributes.verb is required")
        resource = str(attributes.get("resource") or "")
        if attributes.get("subresource"):
            resource = f"{resource}/{attributes['subresource']}"
        attrs = Attributes(
            attributes["verb"],
            resource,
            attributes.get("namespace") or None,
            attributes.get("name") or None,
        )
        allowed = self.resources.authorizer.allowed(user, attrs)
        reason = "allowed by RBAC" if allowed else f'User "{user.name}" cannot {attrs.describe()}'
        return Answer(201, encode({**body, "status": {"allowed": allowed, "reason": reason}}))

    def _resource(self, request: Request, user: User) -> Answer | WatchRequest:
        target = parse_path(request.path)
        query, method = request.query, request.method
        collection = target.name is None
        if collection and method not in ("GET", "POST"):
            raise ApiError(405, "MethodNotAllowed", f"{method} needs an object name in the path")
        if not collection and method == "POST":
            raise ApiError(405, "MethodNotAllowed", "create with POST on the collection")
        if target.subresource == "history" and method != "GET":
            raise ApiError(405, "MethodNotAllowed", "history is read-only")
        if method == "GET":
            if collection and _flag(query.get("watch"), "watch"):
                return self._watch(request, target, user)
            warnings: Warnings = []
            wire = self._read(request, target, user, warnings)
            return Answer(200, encode(wire), headers=warning_headers(warnings))
        resources, code = self.resources, 200
        dry_run = _dry_run(query.get("dryRun"))
        if method == "DELETE":
            result = resources.delete(user, target, dry_run)
        elif method == "POST":
            result = resources.create(user, target, self._body(request), dry_run)
            code = 201
        elif method == "PUT":
            result = resources.update(user, target, self._body(request), dry_run)
        else:
            result = resources.patch(user, target, self._body(request, patch=True), dry_run)
        return Answer(code, encode(result))

    def _read(self, request: Request, target: Target, user: User, warnings: Warnings) -> Wire:
        query = request.query
        resource_version = parse_resource_version(query.get("resourceVersion"))
        if target.name is None:
            return self.resources.list(
                user,
                target,
                query.get("labelSelector"),
                _limit(query.get("limit")),
                query.get("continue"),
                query.get("fieldSelector"),
                resource_version,
                warnings,
            )
        if target.subresource == "history":
            return self.resources.history(user, target)
        return self.resources.get(user, target, resource_version, warnings)

    def _watch(self, request: Request, target: Target, user: User) -> WatchRequest:
        query = request.query
        return open_watch(
            self.resources,
            user,
            target,
            query.get("labelSelector"),
            query.get("fieldSelector"),
            query.get("resourceVersion"),
            self.bookmark_interval,
            self.watch_caches,
        )
