"""The one HTTP stack of skybroker: plain ASGI applications served by uvicorn.

Where it sits: under both HTTP servers — the manager's health port (``controller.health``) and
the REST API (``apiserver``, served by ``skybroker.apiserver``). Each is a small ASGI function
over a route table; this module gives them what they share: the ASGI types, :class:`Answer`
(a complete response), :func:`stream` (a chunked one that ends when its client goes away),
the ``/metrics`` answer, and :class:`AsgiServer` — uvicorn on a socket bound up front, so the
address is known (port 0 = any free port) and a taken port fails at once
(:class:`ListenError`), run in the foreground or on a thread.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, MutableMapping
from contextlib import aclosing
from dataclasses import dataclass
from types import FrameType
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from controller.errors import SkybrokerError

__all__ = [
    "Answer",
    "Application",
    "AsgiServer",
    "ListenError",
    "Receive",
    "Scope",
    "Send",
    "bind",
    "metrics_answer",
    "request_headers",
    "stream",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Application = Callable[[Scope, Receive, Send], Awaitable[None]]

_TEXT = b"text/plain; charset=utf-8"
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class Answer:
    """A complete response: status code, body, its media type (JSON unless said; None for a
    body that needs none, such as a redirect's) and extra headers (lower-case names)."""

    code: int
    body: bytes
    content_type: bytes | None = b"application/json"
    headers: tuple[tuple[bytes, bytes], ...] = ()

    @classmethod
    def text(cls, code: int, text: str) -> Answer:
        return cls(code, text.encode("utf-8"), _TEXT)

    async def send(self, send: Send) -> None:
        headers = [(b"content-length", str(len(self.body)).encode("ascii")), *self.headers]
        if self.content_type is not None:
            headers.insert(0, (b"content-type", self.content_type))
        await send({"type": "http.response.start", "status": self.code, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def metrics_answer() -> Answer:
    """``/metrics``: the process registry in Prometheus' text format."""
    return Answer(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST.encode("ascii"))


def request_headers(scope: Scope) -> dict[str, str]:
    """Request headers by lower-case name; the first of repeated headers wins."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        found.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return found


async def stream(
    receive: Receive, send: Send, content_type: bytes, chunks: AsyncGenerator[bytes, None]
) -> None:
    """Send ``chunks`` as one 200 response until they end or the client goes away, whichever
    comes first; the other side is cancelled and ``chunks`` closed (an abandoned stream
    releases what it holds at once)."""

    async def body() -> None:
        async with aclosing(chunks):
            headers = [(b"content-type", content_type)]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            async for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            continue

    tasks = [asyncio.ensure_future(body()), asyncio.ensure_future(disconnect())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            raise outcome  # an error of the stream is the request's error


class ListenError(SkybrokerError):
    """An address to serve on cannot be bound (taken, not local, not permitted)."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"cannot listen on {address}: {reason}")
        self.address = address
        self.reason = reason


def bind(listen: str) -> socket.socket:
    """A socket bound to ``host:port`` (IPv6 hosts in brackets; no host = 127.0.0.1)."""
    host, _, port = listen.rpartition(":")
    sock = socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it. uvicorn sets it only on sockets it binds itself; without
    # it a response written as headers + body waits ~40 ms for the client's delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host.strip("[]") or "127.0.0.1", int(port)))
    except OSError as exc:
        sock.close()
        raise ListenError(listen, exc.strerror or str(exc)) from None
    sock.set_inheritable(True)
    return sock


class _Uvicorn(uvicorn.Server):
    """uvicorn, calling ``on_shutdown`` on its event loop as its graceful shutdown begins."""

    def __init__(self, config: uvicorn.Config, on_shutdown: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_shutdown = on_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._on_shutdown()
        await super().shutdown(sockets)


class AsgiServer:
    """An ASGI application on a bound socket: :meth:`run` in the foreground or :meth:`start`
    on a thread. Binding happens in the constructor (:class:`ListenError` if it fails).

    ``on_shutdown`` runs on the event loop as a stop begins (e.g. to end open streams, which
    would otherwise hold the shutdown for the whole ``grace`` and then be cancelled).
    """

    def __init__(
        self,
        app: Application,
        listen: str,
        *,
        name: str,
        grace: int = 3,
        on_shutdown: Callable[[], None] = lambda: None,
    ) -> None:
        self.name = name
        self.grace = grace
        self._socket = bind(listen)
        host, port = self._socket.getsockname()[:2]
        self.address = (str(host), int(port))
        # http and loop stay "auto": uvicorn takes httptools and uvloop (dependencies, for
        # speed) when they import, and h11 / asyncio otherwise, with the same behaviour.
        config = uvicorn.Config(
            app,
            interface="asgi3",
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=grace,
            # A request's client is its TCP peer. uvicorn's default would take X-Forwarded-For
            # from any peer on 127.0.0.1, so a local client could pose as any address (and get
            # a fresh rendezvous rate-limit bucket per request).
            proxy_headers=False,
        )
        self._server = _Uvicorn(config, on_shutdown)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}"

    def run(self, starting: Callable[[], None] = lambda: None) -> None:
        """Call ``starting``, serve until SIGINT or SIGTERM, shut down gracefully and return
        (main thread only).

        While serving, uvicorn's own handlers catch the signals; after its graceful shutdown it
        restores the handlers it found and raises the signal again for them. Those are
        :meth:`_stop_requested`, so the signal ends in a normal return (exit code 0) instead of
        killing the process; a signal that arrives before uvicorn is up (during ``starting``)
        stops it as it starts.
        """
        previous = {sig: signal.signal(sig, self._stop_requested) for sig in _STOP_SIGNALS}
        try:
            starting()
            self._server.run(sockets=[self._socket])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _stop_requested(self, signum: int, frame: FrameType | None) -> None:
        self._server.should_exit = True

    def start(self) -> None:
        """Serve on a daemon thread; return once the server accepts connections."""
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name=self.name
        )
        self._thread.daemon = True
        self._thread.start()
        while not self._server.started and self._thread.is_alive():
            self._thread.join(0.01)

    def stop(self) -> None:
        """End :meth:`start`'s thread (open requests get ``grace`` seconds) and the socket."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(self.grace + 5)
        self._socket.close()
