"""``controller.store.bridge``: blocking code on an event loop, its waits awaited there."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from controller.store.bridge import bridged, run_bridged, sleep, wait


async def _answer(value: int) -> int:
    await asyncio.sleep(0)
    return value


async def _refuse() -> None:
    raise KeyError("refused")


def test_a_bridged_function_gets_what_it_waits_for_and_its_result_comes_back() -> None:
    def blocking(a: int, b: int) -> tuple[bool, int]:
        return bridged(), wait(_answer(a)) + wait(_answer(b))

    assert asyncio.run(run_bridged(blocking, 2, 3)) == (True, 5)
    assert not bridged()


def test_errors_reach_the_bridged_caller_and_its_own_errors_reach_the_awaiting_one() -> None:
    def handles() -> str:
        try:
            wait(_refuse())
        except KeyError as exc:
            return f"handled {exc}"
        return "not raised"

    def fails() -> None:
        raise ValueError("from the function")

    assert asyncio.run(run_bridged(handles)) == "handled 'refused'"
    with pytest.raises(ValueError, match="from the function"):
        asyncio.run(run_bridged(fails))
    stray = _answer(1)
    with pytest.raises(RuntimeError, match="outside run_bridged"):
        wait(stray)
    stray.close()


def test_a_bridged_sleep_lets_the_loop_run_others_meanwhile() -> None:
    order: list[str] = []

    def sleeper() -> None:
        order.append("sleeping")
        sleep(0.05)
        order.append("woke")

    async def other() -> None:
        order.append("other ran")

    async def both() -> None:
        await asyncio.gather(run_bridged(sleeper), other())

    asyncio.run(both())
    assert order == ["sleeping", "other ran", "woke"]


def test_context_variables_of_the_caller_are_seen_by_the_bridged_function() -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")

    async def caller() -> str:
        request_id.set("r-1")
        return await run_bridged(request_id.get)

    assert asyncio.run(caller()) == "r-1"
