"""The agent's log: one line per event on stderr, and "once per state change" for retries.

Where it sits: every module of :mod:`skybroker.agent` logs through :func:`event`. Lines are
``{UTC time} skybroker-agent: {text}`` — plain, since the agent's output lands in a cloud
console or a journal. Callers never pass the secret (bodies and headers are never logged).
:class:`Reachability` keeps a retry loop from logging every attempt: it speaks when the
rendezvous becomes unreachable (or fails another way) and when it answers again.
"""

from __future__ import annotations

import sys
import threading
import time

__all__ = ["Reachability", "event"]

_lock = threading.Lock()


def event(text: str) -> None:
    """Log one event (one line: newlines in ``text`` are flattened)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    line = " ".join(text.split("\n"))
    with _lock:
        sys.stderr.write(f"{stamp} skybroker-agent: {line}\n")
        sys.stderr.flush()


class Reachability:
    """Whether the rendezvous answers, shared by the agent's threads; logs transitions only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._problem: str | None = None

    def failed(self, problem: str) -> None:
        """An attempt failed because of ``problem`` (logged if it is a new problem)."""
        with self._lock:
            if problem == self._problem:
                return
            self._problem = problem
        event(f"rendezvous unavailable ({problem}); retrying with backoff")

    def answered(self) -> None:
        """An attempt got an answer (logged if the last one had failed)."""
        with self._lock:
            if self._problem is None:
                return
            self._problem = None
        event("rendezvous answers again")
