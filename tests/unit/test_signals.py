"""Stop signals in a real process: a SIGTERM that arrives while the main thread holds its stop
event's lock — where ``Event.wait`` is between taking and releasing it — still stops it.

A handler that called ``stop.set()`` itself would wait for that lock forever (the process hung
and ignored later signals). The child process plays that moment exactly: it takes the event's
lock, signals itself, and only then lets go.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import os, signal, threading, time
    from controller.signals import stop_on_signals

    stop = threading.Event()
    stop_on_signals(stop)
    with stop._cond:  # the main thread inside the event's critical section, as in wait()
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs here, before the lock is let go
        time.sleep(0.2)
    print("handler returned", flush=True)
    print("stopped" if stop.wait(30) else "not stopped", flush=True)
    """
)


def test_a_signal_while_the_stop_event_is_locked_still_stops() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["handler returned", "stopped"]


ELSEWHERE = textwrap.dedent(
    """
    import signal, threading, time
    from controller.signals import stop_on_signals, wait_for_stop

    stop = threading.Event()
    stop_on_signals(stop)

    def signal_this_thread():
        time.sleep(0.3)
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

    threading.Thread(target=signal_this_thread).start()
    wait_for_stop(stop)
    print("stopped", flush=True)
    """
)


def test_a_signal_handed_to_another_thread_still_stops_the_waiting_main_thread() -> None:
    """The kernel may hand a process's SIGTERM to any thread; CPython runs the handler only when
    the main thread next executes bytecode, so a main thread in ``stop.wait()`` never did."""
    done = subprocess.run(
        [sys.executable, "-c", ELSEWHERE], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "stopped"
