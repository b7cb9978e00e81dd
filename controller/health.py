"""The manager's health port: ``/healthz``, ``/readyz`` and ``/metrics``.

Where it sits: beside the :class:`~controller.manager.Manager`, which serves :func:`health_app`
on ``ManagerOptions.health_listen`` with the one HTTP stack (``controller.asgi``). Probes and
Prometheus read it; nothing on it needs a token. Answers::

    GET /healthz    200 "ok" (the process answers)
    GET /readyz     200 "ok", or 503 "not ready" (see Manager.ready)
    GET /metrics    the process registry, Prometheus' text format
    GET other       404 "not found"
    other methods   501
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from controller.asgi import Answer, Application, Receive, Scope, Send, metrics_answer

__all__ = ["health_app", "probe_routes"]


def probe_routes(ready: Callable[[], bool]) -> dict[str, Callable[[], Answer]]:
    """``/healthz``, ``/readyz`` and ``/metrics`` (the API server serves them too)."""

    def readyz() -> Answer:
        return Answer.text(200, "ok") if ready() else Answer.text(503, "not ready")

    return {
        "/healthz": lambda: Answer.text(200, "ok"),
        "/readyz": readyz,
        "/metrics": metrics_answer,
    }


def health_app(ready: Callable[[], bool]) -> Application:
    """The health port's ASGI application; ``ready()`` may block (it asks etcd), so every
    answer is made on a worker thread."""
    routes = probe_routes(ready)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method: str = scope["method"]
        route = routes.get(scope["path"])
        if method != "GET":
            answer = Answer.text(501, f"Unsupported method ({method!r})")
        elif route is None:
            answer = Answer.text(404, "not found")
        else:
            answer = await asyncio.to_thread(route)
        await answer.send(send)

    return app
