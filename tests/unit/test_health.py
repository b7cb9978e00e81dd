"""The manager's health port application (``controller.health``), in process over ASGI."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client import CONTENT_TYPE_LATEST

from controller.health import health_app

TEXT = "text/plain; charset=utf-8"


def _get(ready: bool, method: str, path: str) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=health_app(lambda: ready))
        async with httpx.AsyncClient(transport=transport, base_url="http://health") as client:
            response = await client.request(method, path)
            await response.aread()
            return response

    return asyncio.run(call())


def test_probes_and_metrics() -> None:
    for ready, path, code, body in [
        (True, "/healthz", 200, b"ok"),
        (False, "/healthz", 200, b"ok"),
        (True, "/readyz", 200, b"ok"),
        (False, "/readyz", 503, b"not ready"),
        (True, "/nope", 404, b"not found"),
        (True, "/healthz/", 404, b"not found"),
    ]:
        response = _get(ready, "GET", path)
        assert (response.status_code, response.content) == (code, body), path
        assert response.headers["content-type"] == TEXT
        assert response.headers["content-length"] == str(len(body))
    metrics = _get(True, "GET", "/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"] == CONTENT_TYPE_LATEST
    assert b"# TYPE " in metrics.content


def test_only_get_is_served() -> None:
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        for path in ("/healthz", "/nope"):
            response = _get(True, method, path)
            assert response.status_code == 501
            assert response.text == f"Unsupported method ('{method}')"
