"""The FastAPI application: routes of DESIGN §7, system endpoints, and the request pipeline.

Where it sits: the top of ``controller.apiserver``; ``skybroker apiserver`` and ``skybroker up``
serve :attr:`ApiServer.app` with uvicorn. Every request under ``/apis/skybroker.io/v1alpha1/``
goes through one dispatcher: authenticate (``auth``) → map the path (``paths``) → read the body
under the size limit (``body``) → the resource operation in a worker thread (``handlers``:
RBAC, validation, admission, quota, store) or a watch stream (``watch``) → a JSON answer, or a
``Status`` for any failure (``status``). Bad input never produces a 5xx.

Unauthenticated: ``/healthz``, ``/readyz``, ``/version``, ``/openapi.json`` and ``/metrics``
(as the controller manager's health port). Discovery (``/apis``, ``/apis/skybroker.io/
v1alpha1``) needs a token but no permission; ``selfsubjectaccessreviews`` answers "may I?"
for the caller (``skyctl auth can-i``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from starlette.exceptions import HTTPException

from api_types import registry
from api_types.meta import API_VERSION
from controller.apiserver.auth import TokenAuthenticator, User
from controller.apiserver.body import MAX_BODY_BYTES, decode_body, read_limited
from controller.apiserver.handlers import Resources
from controller.apiserver.openapi import API_ROOT, openapi_document
from controller.apiserver.paths import SUBRESOURCES, Target, parse_path
from controller.apiserver.rbac import BUILTIN_CLUSTER_ROLES, Attributes, Authorizer
from controller.apiserver.status import ApiError, error_from, status_response
from controller.apiserver.watch import open_watch
from controller.errors import AlreadyExistsError, StoreError
from controller.store.objects import Store

__all__ = ["ApiOptions", "ApiServer"]

log = structlog.get_logger(__name__)

_WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
_GROUP, _VERSION = API_VERSION.split("/")


def _version() -> str:
    try:
        return metadata.version("skybroker")
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"


@dataclass(frozen=True)
class ApiOptions:
    max_body_bytes: int = MAX_BODY_BYTES
    #: Seconds of quiet after which a watch stream sends a BOOKMARK.
    bookmark_interval: float = 30.0
    #: How long start() waits for the RBAC caches before giving up.
    sync_timeout: float = 30.0


class _Metrics:
    """Request counters on the process registry, created once (``up`` shares the process)."""

    _lock = threading.Lock()
    _instance: _Metrics | None = None

    def __init__(self) -> None:
        self.requests = Counter(
            "apiserver_requests_total",
            "API requests by HTTP method, resource (plural) and status code.",
            ["method", "resource", "code"],
        )
        self.duration = Histogram(
            "apiserver_request_duration_seconds",
            "Time to answer an API request (a watch: until its headers).",
            ["method"],
        )

    @classmethod
    def get(cls) -> _Metrics:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance


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


def _resource_label(path: str) -> str:
    """The plural a path addresses, for metrics; "other" keeps label values bounded."""
    segments = path.split("/")
    if segments[0] == "namespaces" and len(segments) >= 3 and segments[2] not in SUBRESOURCES:
        segments = segments[2:]
    known = {info.plural for info in registry.all_kinds()} | {"selfsubjectaccessreviews"}
    return segments[0] if segments[0] in known else "other"


class ApiServer:
    def __init__(
        self, store: Store, authenticator: TokenAuthenticator, options: ApiOptions | None = None
    ) -> None:
        self.store = store
        self.authenticator = authenticator
        self.options = options or ApiOptions()
        self.authorizer = Authorizer(store)
        self.resources = Resources(store, self.authorizer)
        self.metrics = _Metrics.get()
        self.app = self._build()

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the RBAC caches, wait for them, and store the built-in ClusterRoles."""
        self.authorizer.start()
        if not self.authorizer.wait_for_sync(self.options.sync_timeout):
            raise StoreError("RBAC caches did not sync; is etcd reachable?")
        self._bootstrap_roles()

    def stop(self) -> None:
        self.authorizer.stop()

    def _bootstrap_roles(self) -> None:
        """Make the built-in roles visible to ``skyctl get clusterroles`` (the code's copy is
        what authorizes, so an edited stored copy cannot widen or narrow them)."""
        for name, rules in BUILTIN_CLUSTER_ROLES.items():
            role = registry.parse_object(
                {
                    "kind": "ClusterRole",
                    "metadata": {"name": name, "labels": {"skybroker.io/bootstrapping": "true"}},
                    "rules": [rule.model_dump(mode="json", by_alias=True) for rule in rules],
                }
            )
            try:
                self.store.create(role, actor="system:apiserver")
            except AlreadyExistsError:
                continue

    def ready(self) -> bool:
        return self.authorizer.has_synced() and self.store.client.reachable()

    # --- the application ------------------------------------------------------------------

    def _build(self) -> FastAPI:
        app = FastAPI(title="skybroker", openapi_url=None, docs_url=None, redoc_url=None)
        version = _version()

        async def http_error(request: Request, exc: Exception) -> Response:
            code = exc.status_code if isinstance(exc, HTTPException) else 400
            reasons = {404: "NotFound", 405: "MethodNotAllowed"}
            return status_response(ApiError(code, reasons.get(code, "BadRequest"), str(exc)))

        app.add_exception_handler(HTTPException, http_error)
        app.add_exception_handler(RequestValidationError, http_error)

        @app.get("/healthz", response_class=PlainTextResponse)
        def healthz() -> str:
            return "ok"

        @app.get("/readyz")
        def readyz() -> Response:
            ok = self.ready()
            return PlainTextResponse("ok" if ok else "not ready", status_code=200 if ok else 503)

        @app.get("/metrics")
        def metrics() -> Response:
            return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

        @app.get("/version")
        def version_info() -> dict[str, str]:
            return {"gitVersion": version, "apiVersion": API_VERSION}

        @app.get("/openapi.json")
        def openapi() -> dict[str, Any]:
            return openapi_document(version)

        @app.get("/apis")
        def groups(request: Request) -> dict[str, Any]:
            self.authenticator.authenticate(request.headers.get("authorization"))
            group_version = {"groupVersion": API_VERSION, "version": _VERSION}
            group = {"name": _GROUP, "versions": [group_version], "preferredVersion": group_version}
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]}

        @app.get(API_ROOT)
        def resources(request: Request) -> dict[str, Any]:
            self.authenticator.authenticate(request.headers.get("authorization"))
            items = [
                {"name": info.plural, "kind": info.kind, "namespaced": info.namespaced}
                for info in registry.all_kinds()
            ]
            return {"kind": "APIResourceList", "groupVersion": API_VERSION, "resources": items}

        @app.post(f"{API_ROOT}/selfsubjectaccessreviews")
        async def access_review(request: Request) -> Response:
            return await self._answer(request, "selfsubjectaccessreviews", self._review)

        @app.api_route(f"{API_ROOT}/{{path:path}}", methods=["GET", *sorted(_WRITE_METHODS)])
        async def dispatch(request: Request, path: str) -> Response:
            return await self._answer(request, path, self._resource)

        return app

    async def _body(self, request: Request, *, patch: bool = False) -> dict[str, Any]:
        raw = await read_limited(
            request.stream(), request.headers.get("content-length"), self.options.max_body_bytes
        )
        return decode_body(raw, request.headers.get("content-type"), patch=patch)

    async def _answer(self, request: Request, path: str, handler: Any) -> Response:
        started = time.perf_counter()
        resource = _resource_label(path)
        try:
            user = self.authenticator.authenticate(request.headers.get("authorization"))
            response: Response = await handler(request, path, user)
        except Exception as exc:
            response = status_response(error_from(exc))
        self.metrics.requests.labels(request.method, resource, str(response.status_code)).inc()
        self.metrics.duration.labels(request.method).observe(time.perf_counter() - started)
        return response

    async def _review(self, request: Request, path: str, user: User) -> Response:
        body = await self._body(request)
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
        allowed = self.authorizer.allowed(user, attrs)
        reason = "allowed by RBAC" if allowed else f'User "{user.name}" cannot {attrs.describe()}'
        answer = {**body, "status": {"allowed": allowed, "reason": reason}}
        return JSONResponse(answer, status_code=201)

    async def _resource(self, request: Request, path: str, user: User) -> Response:
        target = parse_path(path)
        query = request.query_params
        method = request.method
        collection = target.name is None
        if collection and method not in ("GET", "POST"):
            raise ApiError(405, "MethodNotAllowed", f"{method} needs an object name in the path")
        if not collection and method == "POST":
            raise ApiError(405, "MethodNotAllowed", "create with POST on the collection")
        if target.subresource == "history" and method != "GET":
            raise ApiError(405, "MethodNotAllowed", "history is read-only")
        resources, code = self.resources, 200
        if method == "GET":
            if collection and _flag(query.get("watch"), "watch"):
                return await self._watch(request, target, user)
            if collection:
                result = await run_in_threadpool(
                    resources.list,
                    user,
                    target,
                    query.get("labelSelector"),
                    _limit(query.get("limit")),
                    query.get("continue"),
                )
            elif target.subresource == "history":
                result = await run_in_threadpool(resources.history, user, target)
            else:
                result = await run_in_threadpool(resources.get, user, target)
            return JSONResponse(result)
        dry_run = _dry_run(query.get("dryRun"))
        if method == "DELETE":
            result = await run_in_threadpool(resources.delete, user, target, dry_run)
        elif method == "POST":
            body = await self._body(request)
            result = await run_in_threadpool(resources.create, user, target, body, dry_run)
            code = 201
        elif method == "PUT":
            body = await self._body(request)
            result = await run_in_threadpool(resources.update, user, target, body, dry_run)
        else:
            body = await self._body(request, patch=True)
            result = await run_in_threadpool(resources.patch, user, target, body, dry_run)
        return JSONResponse(result, status_code=code)

    async def _watch(self, request: Request, target: Target, user: User) -> Response:
        query = request.query_params
        watch = await run_in_threadpool(
            open_watch,
            self.resources,
            user,
            target,
            query.get("labelSelector"),
            query.get("resourceVersion"),
            self.options.bookmark_interval,
        )
        return StreamingResponse(watch.stream(), media_type="application/json;stream=watch")
