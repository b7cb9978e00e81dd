"""Waiting in tests: on the condition meant, never on a duration.

A test waits for what it means (an event recorded, a key written, a thread parked) by polling
:func:`eventually`. Its deadline is a failure detector, not a measurement: reaching it means
the condition will not hold, so it sits far beyond what any run needs, on a CI machine whose
cores are busy with other work (``make test-stress``). Timing behaviour is asserted on a
``FakeClock``, or as a lower bound (a loaded machine only makes things later), never as an
upper bound on elapsed wall time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["DEFAULT_TIMEOUT", "eventually"]

DEFAULT_TIMEOUT = 30.0


def eventually(
    check: Callable[[], object],
    timeout: float = DEFAULT_TIMEOUT,
    what: str | Callable[[], str] = "",
    poll: float = 0.01,
) -> None:
    """Return once ``check()`` is truthy; fail with ``what`` if it is not within ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            detail = what() if callable(what) else what
            raise AssertionError(f"not reached in {timeout} s: {detail or check}")
        time.sleep(poll)
