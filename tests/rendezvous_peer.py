"""A fake rendezvous: the agent side of DESIGN §11's protocol, on stdlib ``http.server``.

Where it sits: the peer of ``skybroker agent`` in tests that must not depend on the real API
server (``tests/integration/agent``, the simulated cloud's boot agents). It speaks the
protocol as written in §11 and ``notes/boot.md``: bearer secrets compared in constant time,
the same 401 for an unknown uuid and a wrong secret, ``GET configs/{uuid}`` with the
``afterRevision``/``timeoutSeconds`` long-poll, ``PUT configs/{uuid}/report`` → 204, and
``POST claims`` with an enrollment secret → 201 or 409. What the agents send is kept for the
test to read (:attr:`FakeRendezvous.reports`).

It can be stopped and started again on the same port (an API server restart): stopping closes
the waiting long-polls' connections without an answer, as a dying server would.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import socket
import threading
import uuid as uuidlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from api_types.boot import format_boot_string, new_boot_secret

__all__ = ["FakeRendezvous", "Report", "peer"]

PREFIX = "/rendezvous/v1"


@dataclass(frozen=True)
class Report:
    """One ``PUT …/report`` as received."""

    uuid: str
    body: dict[str, Any]


@dataclass
class _State:
    config: str = "#!/bin/sh\necho configured\n"
    parameters: dict[str, str] = field(default_factory=lambda: {"role": "web"})
    revision: int = 1
    heartbeat_seconds: int = 1
    secrets: dict[str, str] = field(default_factory=dict)
    refuse_all: bool = False
    enrollment_secret: str | None = None
    slots: int = 0
    claimed: list[str] = field(default_factory=list)
    reports: list[Report] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)


class FakeRendezvous:
    """A rendezvous on ``127.0.0.1`` (a free port, kept across :meth:`stop`/:meth:`start`)."""

    def __init__(self, heartbeat_seconds: int = 1) -> None:
        self._state = _State(heartbeat_seconds=heartbeat_seconds)
        self._changed = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()
        self._thread: threading.Thread | None = None
        self.port = 0
        self.up = False
        self.start()

    # --- running ---------------------------------------------------------------------------

    def start(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler_class(self))
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        with self._changed:
            self.up = True
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving; waiting long-polls lose their connection unanswered."""
        with self._changed:
            self.up = False
            self._changed.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._changed:
            connections = list(self._connections)
        for connection in connections:  # kept-alive connections die with the server too
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def _track(self, connection: socket.socket, open_: bool) -> None:
        with self._changed:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- what the test sets ------------------------------------------------------------------

    def identity(self) -> str:
        """A fresh pre-registered uuid; its boot string."""
        uid, secret = str(uuidlib.uuid4()), new_boot_secret()
        with self._changed:
            self._state.secrets[uid] = secret
        return format_boot_string(uid, secret, self.endpoint)

    def set_config(self, config: str, parameters: dict[str, str] | None = None) -> int:
        """A new config revision (long-polls answer at once); the new revision."""
        with self._changed:
            self._state.config = config
            if parameters is not None:
                self._state.parameters = dict(parameters)
            self._state.revision += 1
            self._changed.notify_all()
            return self._state.revision

    def refuse_all(self, refuse: bool = True) -> None:
        """Answer 401 to every request (the uuid's record removed)."""
        with self._changed:
            self._state.refuse_all = refuse

    def enable_claims(self, slots: int, secret: str | None = None) -> str:
        """A dynamic config with ``slots`` slots; its enrollment secret (``secret``, or a new
        one)."""
        secret = secret or new_boot_secret()
        with self._changed:
            self._state.enrollment_secret, self._state.slots = secret, slots
        return secret

    # --- what the test reads -----------------------------------------------------------------

    @property
    def reports(self) -> list[Report]:
        with self._changed:
            return list(self._state.reports)

    def reports_of(self, uid: str) -> list[dict[str, Any]]:
        return [r.body for r in self.reports if r.uuid == uid]

    @property
    def claimed(self) -> list[str]:
        with self._changed:
            return list(self._state.claimed)

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every request; a GET's path with its query."""
        with self._changed:
            return list(self._state.requests)

    @property
    def revision(self) -> int:
        with self._changed:
            return self._state.revision

    # --- serving (called by the handler's threads) --------------------------------------------

    def _authorised(self, uid: str, bearer: str | None) -> bool:
        with self._changed:
            refused = self._state.refuse_all
            known = uid in self._state.secrets
            expected = self._state.secrets.get(uid, "x" * 43)
        # Compared whether or not the uuid is known: both paths do the same work.
        matches = hmac.compare_digest((bearer or "").encode(), expected.encode())
        return matches and known and not refused

    def _config_answer(self, uid: str, after: int | None, wait: float) -> dict[str, Any] | None:
        with self._changed:
            if after is not None:
                self._changed.wait_for(
                    lambda: not self.up or self._state.revision != after, timeout=wait
                )
                if not self.up:
                    return None
            state = self._state
            return {
                "uuid": uid,
                "config": state.config,
                "parameters": dict(state.parameters),
                "revision": state.revision,
                "heartbeatSeconds": state.heartbeat_seconds,
            }

    def _record(self, uid: str, body: dict[str, Any]) -> None:
        with self._changed:
            self._state.reports.append(Report(uid, body))

    def _claim(self, bearer: str | None) -> tuple[int, dict[str, Any] | None]:
        with self._changed:
            expected = self._state.enrollment_secret or "x" * 43
            if self._state.refuse_all or not hmac.compare_digest(
                (bearer or "").encode(), expected.encode()
            ):
                return 401, None
            if len(self._state.claimed) >= self._state.slots:
                return 409, None
            uid, secret = str(uuidlib.uuid4()), new_boot_secret()
            self._state.secrets[uid] = secret
            self._state.claimed.append(uid)
            return 201, {"uuid": uid, "secret": secret, "endpoint": self.endpoint}

    def _log(self, method: str, path: str) -> None:
        with self._changed:
            self._state.requests.append((method, path))


def _handler_class(peer: FakeRendezvous) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return None

        def setup(self) -> None:
            super().setup()
            peer._track(self.connection, True)

        def finish(self) -> None:
            peer._track(self.connection, False)
            super().finish()

        def _down(self) -> bool:
            """Stopped: a request on a connection kept alive from before is dropped."""
            if peer.up:
                return False
            self.close_connection = True
            return True

        def _bearer(self) -> str | None:
            header = self.headers.get("Authorization", "")
            return header[len("Bearer ") :] if header.startswith("Bearer ") else None

        def _answer(self, code: int, body: dict[str, Any] | None = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(code)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _refused(self) -> None:
            self._answer(401, {"message": "the rendezvous refused this request"})

        def _uuid(self, path: str, suffix: str = "") -> str | None:
            head = f"{PREFIX}/configs/"
            if not (path.startswith(head) and path.endswith(suffix)):
                return None
            uid = path[len(head) : len(path) - len(suffix)]
            return uid if uid and "/" not in uid else None

        def do_GET(self) -> None:
            if self._down():
                return
            parts = urlsplit(self.path)
            peer._log("GET", self.path)
            uid = self._uuid(parts.path)
            if uid is None:
                self._answer(404, {"message": "not found"})
                return
            if not peer._authorised(uid, self._bearer()):
                self._refused()
                return
            query = parse_qs(parts.query)
            after = int(query["afterRevision"][0]) if "afterRevision" in query else None
            wait = float(query.get("timeoutSeconds", ["0"])[0])
            answer = peer._config_answer(uid, after, wait)
            if answer is None:  # stopped while waiting: drop the connection unanswered
                self.close_connection = True
                return
            self._answer(200, answer)

        def do_PUT(self) -> None:
            if self._down():
                return
            parts = urlsplit(self.path)
            peer._log("PUT", parts.path)
            uid = self._uuid(parts.path, "/report")
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length) if length else b""
            if uid is None:
                self._answer(404, {"message": "not found"})
                return
            if not peer._authorised(uid, self._bearer()):
                self._refused()
                return
            try:
                body = json.loads(raw)
            except ValueError:
                self._answer(400, {"message": "not JSON"})
                return
            if body.get("status") not in ("Configured", "Failed"):
                self._answer(422, {"message": "status must be Configured or Failed"})
                return
            peer._record(uid, body)
            self.send_response(204)
            self.end_headers()

        def do_POST(self) -> None:
            if self._down():
                return
            parts = urlsplit(self.path)
            peer._log("POST", parts.path)
            length = int(self.headers.get("Content-Length", "0"))
            if length:
                self.rfile.read(length)
            if parts.path != f"{PREFIX}/claims":
                self._answer(404, {"message": "not found"})
                return
            code, body = peer._claim(self._bearer())
            if code == 401:
                self._refused()
            elif code == 409:
                self._answer(409, {"message": "no free slot"})
            else:
                self._answer(code, body)

    return Handler


@pytest.fixture
def peer() -> Iterator[FakeRendezvous]:
    """A fake rendezvous asking for a heartbeat every second; stopped after the test."""
    server = FakeRendezvous(heartbeat_seconds=1)
    yield server
    server.stop()
