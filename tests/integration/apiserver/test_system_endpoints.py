"""The system endpoints' exact answers (status, headers, body) through a real server: the paths
outside the resource tree are part of the REST contract like the rest (DESIGN §7)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from api_types import registry
from skybroker.apiserver import HttpServer
from tests.integration.apiserver.conftest import ROOT, firewall
from tests.waiting import eventually

TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
SYSTEM_PATHS = ["/healthz", "/readyz", "/metrics", "/version", "/openapi.json", "/apis", ROOT]


def _status(code: int, reason: str, message: str) -> bytes:
    return (
        '{"apiVersion":"v1","kind":"Status","metadata":{},"status":"Failure",'
        f'"message":"{message}","reason":"{reason}","code":{code}}}'
    ).encode()


def _headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k not in ("date", "server")}


@pytest.fixture
def anonymous(client: Callable[[str | None], httpx.Client]) -> httpx.Client:
    return client(None)


def test_probes_version_and_metrics(anonymous: httpx.Client, admin: httpx.Client) -> None:
    for path in ("/healthz", "/readyz", "/healthz?verbose=1"):
        response = anonymous.get(path)
        assert (response.status_code, _headers(response), response.content) == (
            200, {"content-length": "2", "content-type": TEXT}, b"ok"
        )  # fmt: skip
    version = anonymous.get("/version")
    assert version.status_code == 200 and version.headers["content-type"] == JSON
    assert version.content.startswith(b'{"gitVersion":"')
    assert version.content.endswith(b'","apiVersion":"skybroker.io/v1alpha1"}')
    admin.get(f"{ROOT}/namespaces/team-a/firewalls")
    metrics = anonymous.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain; version=")
    assert 'apiserver_requests_total{code="200",method="GET",resource="firewalls"}' in metrics.text
    document = anonymous.get("/openapi.json")
    assert document.status_code == 200 and document.headers["content-type"] == JSON
    assert document.json()["openapi"] == "3.1.0"


def test_discovery_needs_a_token_and_no_permission(
    anonymous: httpx.Client, client: Callable[[str | None], httpx.Client]
) -> None:
    for path in ("/apis", ROOT):
        refused = anonymous.get(path)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert refused.content == _status(401, "Unauthorized", "a valid Bearer token is required")
    nobody = client("nobody")
    groups = nobody.get("/apis")
    assert groups.status_code == 200 and groups.headers["content-type"] == JSON
    assert groups.content == (
        b'{"kind":"APIGroupList","apiVersion":"v1","groups":[{"name":"skybroker.io","versions":'
        b'[{"groupVersion":"skybroker.io/v1alpha1","version":"v1alpha1"}],"preferredVersion":'
        b'{"groupVersion":"skybroker.io/v1alpha1","version":"v1alpha1"}}]}'
    )
    resources = nobody.get(ROOT).json()
    assert resources["kind"] == "APIResourceList"
    assert {"name": "pools", "kind": "Pool", "namespaced": False} in resources["resources"]


@pytest.mark.parametrize("method", ["HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_other_methods_are_405_before_authentication(anonymous: httpx.Client, method: str) -> None:
    body = _status(405, "MethodNotAllowed", "405: Method Not Allowed")
    for path in SYSTEM_PATHS:
        response = anonymous.request(method, path)
        assert response.status_code == 405, path
        headers = {"content-length": str(len(body)), "content-type": JSON}
        assert _headers(response) == headers, path
        assert response.content == (b"" if method == "HEAD" else body), path


def test_a_method_http_does_not_know_is_refused(anonymous: httpx.Client) -> None:
    """httptools (llhttp), the HTTP parser uvicorn runs on for speed, refuses a method token it
    does not know with 400 before any application sees it; h11, uvicorn's fallback, passes it
    on and the application answers 405. Refused either way, never served."""
    for path in (*SYSTEM_PATHS, f"{ROOT}/namespaces"):
        assert anonymous.request("FOO", path).status_code in (400, 405), path


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "DELETE"])
def test_unknown_paths_are_404(admin: httpx.Client, method: str) -> None:
    body = _status(404, "NotFound", "404: Not Found")
    for path in ("/", "/nope", "//healthz", "/apis/skybroker.io", "/openapi.json/x"):
        response = admin.request(method, path)
        assert response.status_code == 404, path
        assert _headers(response) == {"content-length": str(len(body)), "content-type": JSON}
        assert response.content == (b"" if method == "HEAD" else body), path


def test_trailing_slashes_redirect_to_the_endpoint(anonymous: httpx.Client) -> None:
    base = str(anonymous.base_url).rstrip("/")
    for path, target in [("/healthz/", "/healthz"), ("/apis//", "/apis"),
                         ("/version/?a=1", "/version?a=1")]:  # fmt: skip
        for method in ("GET", "POST"):
            response = anonymous.request(method, path)
            assert response.status_code == 307, path
            assert _headers(response) == {"content-length": "0", "location": base + target}
    # below the API root a trailing slash is the resource pipeline's (no route: 404)
    assert anonymous.get(f"{ROOT}/").status_code == 401


def test_a_watch_ends_when_its_client_goes_away(admin: httpx.Client, server: HttpServer) -> None:
    """The stream is cancelled at the disconnect, not at its next write: an idle watcher that
    left must not keep its subscription to the watch cache until the next event."""
    collection = f"{ROOT}/namespaces/team-a/firewalls"
    admin.post(collection, json=firewall("web"))
    cache = server.api.watch_caches.get(registry.by_plural("firewalls"))
    assert cache is not None
    with admin.stream("GET", collection, params={"watch": "true"}) as response:
        assert response.headers["content-type"] == "application/json;stream=watch"
        assert response.headers["transfer-encoding"] == "chunked"
        lines = response.iter_lines()
        assert '"type":"ADDED"' in next(lines)
        # a BOOKMARK comes from the loop that waits on the cache: it is subscribed
        assert '"type":"BOOKMARK"' in next(lines)
        assert cache.subscribers == 1, "the watch is subscribed to its plural's cache"
    eventually(lambda: cache.subscribers == 0, what="the watch outlived its client")
