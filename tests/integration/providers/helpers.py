"""Test helpers for the provider suite: the fake clocks' start, free ports, a fault-injecting
HTTP proxy.

The proxy sits between the EC2 adapter and the real moto_server and, on demand, answers
with throttling or server errors, forwards a request and then drops the connection (the
change is applied but the caller never hears of it: the crash window), or answers late
(a client-side timeout). It can also play an EC2-compatible server that does not implement a
parameter of some Actions (``ignore_params``): ``Filter.`` — the server answers with
everything — or ``NextToken`` — it answers the first page again. It plays EC2's placement
groups, which moto lacks (``placement_shim``). Everything else is forwarded untouched, so the
EC2 path under test is the real one: libcloud, HTTP, moto.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit

from providers.types import ResourceTags
from tests.integration.providers.placement_shim import PlacementGroupShim, request_params

__all__ = ["CLOCK_START", "FaultProxy", "free_port", "tags"]

#: Where the provider tests' ``controller.clock.FakeClock`` starts: an epoch-seconds-like
#: reading, as the simulated cloud persists its clock's readings.
CLOCK_START = 1_000_000.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tags(name: str, token: str | None = None, uid: str | None = None) -> ResourceTags:
    return ResourceTags(name=name, uid=uid or f"uid-{name}", token=token or f"tok-{name}")


_THROTTLE_BODY = (
    "<Response><Errors><Error><Code>RequestLimitExceeded</Code>"
    "<Message>Request limit exceeded.</Message></Error></Errors>"
    "<RequestID>proxy-throttle-1</RequestID></Response>"
)
_INTERNAL_BODY = (
    "<Response><Errors><Error><Code>InternalError</Code>"
    "<Message>An internal error has occurred</Message></Error></Errors>"
    "<RequestID>proxy-internal-1</RequestID></Response>"
)


class FaultProxy:
    """HTTP proxy to ``upstream_port``; ``inject(kind, action=None)`` queues one fault.

    kinds: ``throttle`` (503 RequestLimitExceeded, Retry-After), ``internal`` (500),
    ``drop_after_apply`` (forward, then close without answering), ``slow`` (answer after
    ``slow_seconds``). ``action`` restricts the fault to one EC2 Action (e.g. RunInstances).
    ``ignore_params(prefix, *actions)`` drops the parameters named ``prefix…`` (``Filter.``,
    ``NextToken``) from requests of those Actions until ``clear()``. ``placement_groups`` (a
    ``PlacementGroupShim``, emptied by ``clear()``) answers what moto cannot.
    """

    def __init__(self, upstream_port: int, retry_after: int = 7, slow_seconds: float = 1.5):
        self.upstream_port = upstream_port
        self.retry_after = retry_after
        self.slow_seconds = slow_seconds
        self.faults: deque[tuple[str, str | None]] = deque()
        self.ignored: set[tuple[str, str]] = set()  # (Action, parameter prefix)
        self.placement_groups = PlacementGroupShim()
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()  # answers go out at once: no Nagle / delayed-ACK stalls
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy.handle(self)

            do_POST = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def inject(self, kind: str, action: str | None = None) -> None:
        with self.lock:
            self.faults.append((kind, action))

    def ignore_params(self, prefix: str, *actions: str) -> None:
        with self.lock:
            self.ignored.update((action, prefix) for action in actions)

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()
            self.ignored.clear()
        self.placement_groups.clear()

    def _unsupported_dropped(self, query: str) -> str:
        """``query`` without the parameters its Action is set to ignore."""
        params = parse_qsl(query, keep_blank_values=True)
        action = next((v for k, v in params if k == "Action"), None)
        with self.lock:
            prefixes = tuple(prefix for act, prefix in self.ignored if act == action)
        if not prefixes:
            return query
        return urlencode([(k, v) for k, v in params if not k.startswith(prefixes)])

    def _take(self, request_line: str) -> str | None:
        with self.lock:
            for fault in self.faults:
                kind, action = fault
                if action is None or f"Action={action}" in request_line:
                    self.faults.remove(fault)
                    return kind
        return None

    def _forward(
        self, handler: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        headers = {
            k: v
            for k, v in handler.headers.items()
            if k.lower() not in ("host", "content-length")  # the body may have been rewritten
        }
        headers["Host"] = f"127.0.0.1:{self.upstream_port}"
        conn.request(handler.command, handler.path, body=body or None, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        conn.close()
        return response.status, response.getheaders(), payload

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        url = urlsplit(handler.path)
        handler.path = url._replace(query=self._unsupported_dropped(url.query)).geturl()
        if body:
            body = self._unsupported_dropped(body.decode()).encode()
        fault = self._take(handler.path + "&" + body.decode(errors="replace"))
        if fault == "throttle":
            self._answer(
                handler, 503, _THROTTLE_BODY.encode(), {"Retry-After": str(self.retry_after)}
            )
            return
        if fault == "internal":
            self._answer(handler, 500, _INTERNAL_BODY.encode(), {})
            return
        params = request_params(urlsplit(handler.path).query, body.decode(errors="replace"))
        shimmed = self.placement_groups.intercept(params)
        if shimmed is not None:
            status, headers, payload = shimmed[0], [("Content-Type", "text/xml")], shimmed[1]
        else:
            status, headers, payload = self._forward(handler, body)
            payload = self.placement_groups.rewrite(params, status, payload)
        if fault == "drop_after_apply":
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "slow":
            time.sleep(self.slow_seconds)
        passthrough = {
            k: v
            for k, v in headers
            if k.lower() not in ("content-length", "connection", "transfer-encoding")
        }
        self._answer(handler, status, payload, passthrough)

    @staticmethod
    def _answer(
        handler: BaseHTTPRequestHandler, status: int, payload: bytes, headers: dict[str, str]
    ) -> None:
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
