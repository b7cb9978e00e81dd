"""The agent's log: one line per event on stderr, and "once per state change" for retries.

Where it sits: every module of :mod:`skybroker.agent` logs through :func:`event`. Lines are
``{UTC time} skybroker-agent: {text}`` — plain, since the agent's output lands in a cloud
console or a journal. Callers never pass the secret (bodies and headers are never logged).
:class:`Reachability` keeps the retry loops from logging every attempt: it speaks when the
rendezvous stops answering and when it answers again.
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
    """Whether the rendezvous answers, shared by the agent's threads: logs the transitions
    (answering → not, with the first problem seen; not → answering again), not each attempt."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down = False

    def failed(self, problem: str) -> None:
        """An attempt failed because of ``problem``."""
        with self._lock:
            if self._down:
                return
            self._down = True
        event(f"rendezvous unavailable ({problem}); retrying with backoff")

    def answered(self) -> None:
        """An attempt got an answer."""
        with self._lock:
            if not self._down:
                return
            self._down = False
        event("rendezvous answers again")
