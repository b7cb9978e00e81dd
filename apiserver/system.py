"""The system endpoints: every path of the API server outside the resource pipeline.

Where it sits: ``app`` hands it what ``dispatch`` does not serve. One route table, GET only::

    /healthz                        200 "ok"
    /readyz                         200 "ok", or 503 "not ready" (see ApiServer.ready)
    /metrics                        the process registry, Prometheus' text format
    /version                        {"gitVersion", "apiVersion"}
    /openapi.json                   the OpenAPI document (``openapi``)
    /apis                           APIGroupList (needs a token, no permission)
    /apis/skybroker.io/v1alpha1     APIResourceList (needs a token, no permission)

Errors are ``Status`` objects like the resource pipeline's: another method on one of these
paths is 405, any other path 404 — except one of these paths with trailing slashes, which is
redirected (307) to the path without them. Answers are made on a worker thread (readiness asks
etcd; authentication may re-read the token file).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from importlib import metadata
from urllib.parse import quote

from api_types import registry
from api_types.meta import API_VERSION
from apiserver.auth import TokenAuthenticator
from apiserver.dispatch import encode, failure
from apiserver.openapi import API_ROOT, openapi_document
from apiserver.status import ApiError, error_from
from controller.asgi import Answer, Receive, Scope, Send, request_headers
from controller.health import probe_routes

__all__ = ["SystemRoutes"]

_GROUP, _VERSION = API_VERSION.split("/")
#: What a client may send in a redirect's Location unescaped (as RFC 3986 allows there).
_LOCATION_SAFE = ":/%#?=@[]!$&'()*+,;"

Route = Callable[[Mapping[str, str]], Answer]


def _version() -> str:
    try:
        return metadata.version("skybroker")
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"


def _without_headers(answer: Callable[[], Answer]) -> Route:
    return lambda _: answer()


def _location(scope: Scope, path: str) -> str:
    """The absolute URL of ``path`` on the server ``scope`` was addressed to, same query."""
    host = request_headers(scope).get("host")
    if host is None:
        server_host, port = scope["server"]
        host = f"{server_host}:{port}"
    url = f"{scope.get('scheme', 'http')}://{host}{path}"
    query: bytes = scope.get("query_string", b"")
    if query:
        url += "?" + query.decode("latin-1")
    return quote(url, safe=_LOCATION_SAFE)


class SystemRoutes:
    """The system endpoints' ASGI application (the route table of the module docstring)."""

    def __init__(self, authenticator: TokenAuthenticator, ready: Callable[[], bool]) -> None:
        self.authenticator = authenticator
        version = _version()
        probes = probe_routes(ready)
        self.routes: dict[str, Route] = {
            **{path: _without_headers(probe) for path, probe in probes.items()},
            "/version": lambda _: Answer(
                200, encode({"gitVersion": version, "apiVersion": API_VERSION})
            ),
            "/openapi.json": lambda _: Answer(200, encode(openapi_document(version))),
            "/apis": self._groups,
            API_ROOT: self._resources,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        route = self.routes.get(path)
        if route is None:
            answer = self._not_found(scope, path)
        elif scope["method"] != "GET":
            answer = failure(ApiError(405, "MethodNotAllowed", "405: Method Not Allowed"))
        else:
            answer = await asyncio.to_thread(self._answer, route, request_headers(scope))
        await answer.send(send)

    def _answer(self, route: Route, headers: Mapping[str, str]) -> Answer:
        try:
            return route(headers)
        except Exception as exc:
            return failure(error_from(exc))

    def _not_found(self, scope: Scope, path: str) -> Answer:
        trimmed = path.rstrip("/")
        if trimmed != path and trimmed in self.routes:
            location = _location(scope, trimmed).encode("latin-1")
            return Answer(307, b"", content_type=None, headers=((b"location", location),))
        return failure(ApiError(404, "NotFound", "404: Not Found"))

    def _groups(self, headers: Mapping[str, str]) -> Answer:
        self.authenticator.authenticate(headers.get("authorization"))
        group_version = {"groupVersion": API_VERSION, "version": _VERSION}
        group = {"name": _GROUP, "versions": [group_version], "preferredVersion": group_version}
        return Answer(200, encode({"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]}))

    def _resources(self, headers: Mapping[str, str]) -> Answer:
        self.authenticator.authenticate(headers.get("authorization"))
        items = [
            {"name": info.plural, "kind": info.kind, "namespaced": info.namespaced}
            for info in registry.all_kinds()
        ]
        listing = {"kind": "APIResourceList", "groupVersion": API_VERSION, "resources": items}
        return Answer(200, encode(listing))
