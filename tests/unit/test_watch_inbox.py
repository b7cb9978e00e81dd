"""A REST watch stream's inbox on a real event loop: everything handed over is taken at once,
in order; a quiet interval yields one empty take (the stream's bookmark), never sooner."""

from __future__ import annotations

import asyncio

from apiserver.watch import _Inbox

QUIET = 0.2


def test_items_are_taken_together_and_only_a_quiet_interval_yields_a_bookmark() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        inbox = _Inbox(loop, QUIET)
        try:
            inbox.put("a")
            inbox.put("b")
            assert len(inbox) == 2
            assert await inbox.take() == ["a", "b"]
            # A taker waiting is woken by the next item, long before the interval.
            loop.call_soon(inbox.put, "c")
            assert await inbox.take() == ["c"]
            taken = loop.time()
            assert await inbox.take() == []  # nothing for a whole interval: bookmark time
            assert loop.time() - taken >= QUIET - 0.01
            again = loop.time()
            assert await inbox.take() == []  # and again after the next quiet interval
            assert loop.time() - again >= QUIET - 0.01
            # Activity puts the next bookmark off: it is counted from the last take.
            loop.call_later(QUIET / 2, inbox.put, "d")
            assert await inbox.take() == ["d"]
            after = loop.time()
            assert await inbox.take() == []
            assert loop.time() - after >= QUIET - 0.01
        finally:
            inbox.close()

    asyncio.run(scenario())
