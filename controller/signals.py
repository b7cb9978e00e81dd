"""Stopping on SIGTERM and SIGINT without taking a lock inside the signal handler.

Where it sits: the manager of ``skybroker controller`` and ``skybroker up`` turns a stop signal
into its stop event through :func:`stop_on_signals` (``Manager.install_signal_handlers``), and
so does ``skybroker agent`` (``skybroker.agent.cli``). The agent runs on a generic image and
imports only the standard library, httpx, ``api_types.boot`` and this module, so this module
imports the standard library alone (``tests/unit/test_agent_package.py`` checks both).

Why not ``signal.signal(sig, lambda *_: stop.set())``: CPython runs a handler in the main thread
between two bytecodes, wherever that thread is. If it is inside ``stop.wait()`` (or ``set``)
between taking and releasing the event's lock — a ``Condition`` over a non-reentrant ``Lock`` —
the handler's ``stop.set()`` waits for a lock its own thread holds: the process hangs and ignores
every later signal. A main thread that waits on its stop event, as these do, meets that window
whenever a signal arrives just as it starts waiting. Here the handler only records the signal; a
daemon thread sets the event, within :data:`RELAY_SECONDS`.

And why the main thread waits with :func:`wait_for_stop`, not ``stop.wait()``: the kernel hands a
process's signal to any thread that does not block it. If that is not the main thread, CPython
only notes it, and runs the handler when the main thread next executes bytecode, which is never
while the main thread is in an untimed wait. ``skybroker up`` then ignored a SIGTERM for good,
about one time in six on a loaded machine. :func:`wait_for_stop` wakes the main thread every
:data:`RELAY_SECONDS`.
"""

from __future__ import annotations

import signal
import threading

__all__ = ["RELAY_SECONDS", "stop_on_signals", "wait_for_stop"]

#: How often the relay looks for a recorded signal (and for the event set by other means).
RELAY_SECONDS = 0.1


def stop_on_signals(
    stop: threading.Event, signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)
) -> None:
    """Set ``stop`` soon after any of ``signals`` arrives (call from the main thread).

    The relay thread ends once ``stop`` is set, by a signal or otherwise.
    """
    received: list[int] = []

    def record(signum: int, frame: object) -> None:
        received.append(signum)  # list.append takes no lock that the main thread could hold

    def relay() -> None:
        while not stop.wait(RELAY_SECONDS):
            if received:
                stop.set()

    for sig in signals:
        signal.signal(sig, record)
    threading.Thread(target=relay, name="signal-relay", daemon=True).start()


def wait_for_stop(stop: threading.Event) -> None:
    """Block until ``stop`` is set, waking every :data:`RELAY_SECONDS` so that a signal the
    kernel handed to another thread gets its handler run (see the module)."""
    while not stop.wait(RELAY_SECONDS):
        pass
