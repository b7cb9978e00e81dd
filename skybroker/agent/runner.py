"""The agent's loop: fetch the config, apply it, report, heartbeat, follow config changes.

Where it sits: :func:`skybroker.agent.cli.run` builds an :class:`Agent` from a boot string and
calls :meth:`Agent.run`, which returns the exit code. Three threads:

- the main thread waits for the end: a stop (SIGTERM/SIGINT), a worker's verdict (401, ``--once``
  done), or — with ``$SKYBROKER_AGENT_PARENT_PID`` — its parent process gone;
- the worker fetches the config (retrying until the rendezvous answers), applies it, reports,
  then reports again every ``heartbeatSeconds`` (a heartbeat is a report) and applies every
  new revision the poller hands it;
- the poller long-polls ``?afterRevision=R`` and hands over each config whose revision moved.

Failures to reach the rendezvous (no connection, timeouts, 5xx) are retried with capped
exponential backoff and jitter, logged once per change of state, so an API server restart is
ridden out. A 401 ends the agent (exit 3): the boot string is not, or no longer, valid.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from api_types.boot import BootString
from skybroker.agent.apply import Applied, HandlerRunner
from skybroker.agent.client import (
    Backoff,
    Config,
    Refused,
    Rejected,
    RendezvousClient,
    Unavailable,
)
from skybroker.agent.errors import EXIT_FAILURE, EXIT_OK, EXIT_REFUSED, AgentExit
from skybroker.agent.logs import Reachability, event

__all__ = ["PARENT_PID_ENV", "Agent", "AgentOptions", "detect_address", "parent_watch"]

#: When set, the agent ends once the process with this pid is gone (the simulated cloud sets
#: it, so that its agents die with the controller that started them).
PARENT_PID_ENV = "SKYBROKER_AGENT_PARENT_PID"
#: How often the main thread looks at its parent (and the worker at the stop flag), seconds.
TICK = 0.5
#: A long-poll answered sooner than this with no new revision waits the rest before the next
#: one (a server that does not long-poll must not be polled in a hot loop).
MIN_POLL_INTERVAL = 1.0


@dataclass(frozen=True)
class AgentOptions:
    """What ``skybroker agent``'s flags set."""

    config_path: Path
    handler: str | None = None
    handler_timeout: float = 300.0
    address: str | None = None
    once: bool = False
    poll_seconds: int = 60
    retry_max: float = 30.0
    parent_pid: int | None = None


def detect_address(endpoint: str) -> str | None:
    """The local address of the route to the endpoint's host (a UDP "connect" sends nothing);
    None if the host does not resolve or has no route yet."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        family, kind, _, _, where = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, kind) as probe:
            probe.connect(where)
            address: Any = probe.getsockname()[0]
            return str(address)
    except (OSError, IndexError):
        return None


def parent_watch(pid: int) -> Callable[[], bool]:
    """A check that says True once process ``pid`` is gone: it no longer exists, or — if it
    was this process's parent at the start — this process was handed to another parent."""
    was_parent = os.getppid() == pid

    def gone() -> bool:
        if was_parent and os.getppid() != pid:
            return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    return gone


class Agent:
    """One boot string's agent; :meth:`run` blocks until it ends and returns the exit code."""

    def __init__(
        self,
        boot: BootString,
        options: AgentOptions,
        stop: threading.Event,
        reach: Reachability | None = None,
    ) -> None:
        self._boot = boot
        self._options = options
        self._stop = stop
        self._reach = reach or Reachability()
        self._client = RendezvousClient(boot)
        self._handler = HandlerRunner(options.handler, options.config_path, options.handler_timeout)
        self._address = options.address
        self._configs: queue.Queue[Config] = queue.Queue()
        self._verdict: tuple[int, str | None] | None = None
        self._verdict_lock = threading.Lock()

    # --- the end ---------------------------------------------------------------------------

    def _finish(self, code: int, message: str | None = None) -> None:
        with self._verdict_lock:
            if self._verdict is None:
                self._verdict = (code, message)
        self._stop.set()

    def run(self) -> int:
        """Work until stopped; the exit code (AgentExit's message is logged here)."""
        event(f"starting for uuid {self._boot.uuid} at {self._boot.endpoint}")
        parent_gone = parent_watch(self._options.parent_pid) if self._options.parent_pid else None
        worker = threading.Thread(
            target=self._guarded, args=(self._work,), name="agent", daemon=True
        )
        worker.start()
        while not self._stop.wait(TICK):
            if parent_gone is not None and parent_gone():
                event(f"parent process {self._options.parent_pid} is gone; stopping")
                self._finish(EXIT_OK)
        self._handler.stop()
        with self._verdict_lock:
            code, message = self._verdict or (EXIT_OK, None)
        if message:
            event(message)
        if code == EXIT_OK:
            event("stopped")
        return code

    def _guarded(self, work: Any) -> None:
        try:
            work()
        except Refused:
            self._finish(EXIT_REFUSED, "the rendezvous refused this boot string (HTTP 401)")
        except AgentExit as exc:
            self._finish(exc.code, exc.message)
        except Exception as exc:  # a bug: end visibly rather than hang without reporting
            self._finish(EXIT_FAILURE, f"unexpected error: {type(exc).__name__}: {exc}")

    # --- worker ----------------------------------------------------------------------------

    def _fetch_first(self) -> Config:
        backoff = Backoff(cap=self._options.retry_max)
        while True:
            try:
                config = self._client.fetch()
                self._reach.answered()
                return config
            except Unavailable as exc:
                self._reach.failed(exc.problem)
            except Rejected as exc:
                self._reach.failed(str(exc))
            if self._stop.wait(backoff.delay()):
                raise AgentExit(EXIT_OK, "")

    def _apply(self, config: Config) -> Applied:
        event(f"fetched config revision {config.revision} ({len(config.config)} characters)")
        applied = self._handler.apply(
            self._boot.uuid, config.config, config.parameters, config.revision
        )
        if applied.message:
            event(f"revision {config.revision}: {applied.status}: {applied.message}")
        return applied

    def _report_body(self, applied: Applied) -> dict[str, Any]:
        if self._address is None:
            self._address = detect_address(self._boot.endpoint)
        body: dict[str, Any] = {
            "status": applied.status,
            "parameters": applied.parameters,
            "configRevision": applied.revision,
        }
        if self._address:
            body["address"] = self._address
        if applied.message:
            body["message"] = applied.message
        return body

    def _report(self, applied: Applied) -> bool:
        """One report; True if the rendezvous took it (Refused propagates)."""
        try:
            self._client.report(self._report_body(applied))
        except Unavailable as exc:
            self._reach.failed(exc.problem)
            return False
        except Rejected as exc:
            self._reach.failed(str(exc))
            return False
        self._reach.answered()
        return True

    def _work(self) -> None:
        config = self._fetch_first()
        heartbeat = config.heartbeat_seconds
        applied = self._apply(config)
        backoff = Backoff(cap=self._options.retry_max)
        announce = True  # log the first report taken after each apply
        if self._options.once:
            while not self._report(applied):
                if self._stop.wait(backoff.delay()):
                    return
            event(f"reported {applied.status} for revision {applied.revision}")
            self._finish(EXIT_OK)
            return
        poller = threading.Thread(
            target=self._guarded,
            args=(lambda: self._poll(config.revision),),
            name="poll",
            daemon=True,
        )
        poller.start()
        next_beat = time.monotonic()
        while not self._stop.is_set():
            try:
                new = self._configs.get(timeout=max(0.0, min(TICK, next_beat - time.monotonic())))
            except queue.Empty:
                new = None
            if new is not None:
                heartbeat = new.heartbeat_seconds
                if new.revision != applied.revision:
                    applied = self._apply(new)
                    announce, next_beat = True, time.monotonic()
            if time.monotonic() < next_beat or self._stop.is_set():
                continue
            if self._report(applied):
                backoff.reset()
                next_beat = time.monotonic() + heartbeat
                if announce:
                    event(f"reported {applied.status} for revision {applied.revision}")
                    announce = False
            else:
                next_beat = time.monotonic() + min(backoff.delay(), heartbeat)

    # --- poller ----------------------------------------------------------------------------

    def _poll(self, revision: int) -> None:
        backoff = Backoff(cap=self._options.retry_max)
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                config = self._client.fetch(revision, self._options.poll_seconds)
            except (Unavailable, Rejected) as exc:
                self._reach.failed(exc.problem if isinstance(exc, Unavailable) else str(exc))
                self._stop.wait(backoff.delay())
                continue
            self._reach.answered()
            backoff.reset()
            if config.revision != revision:
                revision = config.revision
                self._configs.put(config)
            else:
                self._stop.wait(max(0.0, MIN_POLL_INTERVAL - (time.monotonic() - started)))
