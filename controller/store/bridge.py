"""Blocking store code run on an asyncio event loop: etcd calls await instead of blocking.

Where it sits: between the API server's event loop (``apiserver.dispatch``) and the store
(``controller.store.objects`` over :class:`~controller.store.etcd.EtcdClient`). The store and
the API's handlers are plain blocking code, shared with the controllers' worker threads.
Running a request on a worker thread costs a thread hop and gRPC's blocking client; measured
in ``bench.ceiling``, that is half of a bare create's CPU (375 vs 180 µs), and through the
whole API a create went from 690 to 400 µs of server CPU.

:func:`run_bridged` runs a blocking function in a greenlet on the loop's thread. When the
function reaches etcd, :class:`EtcdClient` sees it is bridged (:func:`bridged`), starts the
call on gRPC's asyncio client and hands the awaitable to :func:`wait`, which switches back to
the loop; the loop awaits it and switches in again with the answer (or throws its error in).
Other requests run meanwhile. :func:`sleep` does the same for a pause (the client's retries).

What may run bridged: code whose only waits are etcd calls and :func:`sleep`, and which holds no
lock across them (another greenlet of the same thread would block the loop on that lock, or,
with an RLock, enter it). Anything that waits on a condition, or runs long on the CPU, belongs
on a worker thread, where it still works unchanged: outside a bridge, every function here falls
back to blocking.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import greenlet

__all__ = ["bridged", "run_bridged", "sleep", "wait"]

T = TypeVar("T")


class _Bridged(greenlet.greenlet):  # type: ignore[misc]
    """A greenlet whose parent awaits, on an event loop, what the greenlet hands it."""


def bridged() -> bool:
    """Whether the caller runs inside :func:`run_bridged` (so it may :func:`wait`)."""
    return isinstance(greenlet.getcurrent(), _Bridged)


async def run_bridged(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` on this thread, awaiting each awaitable it hands to :func:`wait`;
    the caller's context variables are copied in, as ``asyncio.to_thread`` does."""
    runner = _Bridged(function)
    runner.gr_context = contextvars.copy_context()
    handed = runner.switch(*args)
    while not runner.dead:
        try:
            answer = await handed
        except BaseException as exc:  # into the greenlet, where its caller handles it
            handed = runner.throw(exc)
        else:
            handed = runner.switch(answer)
    return cast(T, handed)


def wait(awaitable: Awaitable[T]) -> T:
    """The result of ``awaitable``, awaited by the loop while this greenlet is parked."""
    current = greenlet.getcurrent()
    if not isinstance(current, _Bridged):
        raise RuntimeError("wait() outside run_bridged()")
    return cast(T, current.parent.switch(awaitable))


def sleep(seconds: float) -> None:
    """Pause: on the loop when bridged (others run meanwhile), else by blocking."""
    if bridged():
        wait(asyncio.sleep(seconds))
    else:
        time.sleep(seconds)
