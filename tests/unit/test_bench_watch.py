"""``bench.watch``'s own parts that a wrong number would come from: the last line's exact format
(the issue's note quotes it), the quantiles, and the watcher's chunked NDJSON reader fed in
awkward pieces. The benchmark itself is run by hand (it is not a timed test)."""

from __future__ import annotations

import asyncio
import json
import math

from bench.watch import Clock, Watcher, percentile, result_line


def test_last_line_has_the_issues_exact_format() -> None:
    line = result_line(1000, 1000, 999_000, [1.0, 2.0, 50.0], 67, 13, 183.04)
    assert line == (
        "watch watchers=1000 writes=1000 delivered=999000/1000000 p50_ms=2.0 p99_ms=50.0 "
        "max_ms=50.0 apiserver_threads=67 etcd_watches=13 rss_mb=183.0"
    )
    assert "p50_ms=0.0 p99_ms=0.0 max_ms=0.0" in result_line(1, 1, 0, [], 1, 1, 1.0)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.99)) == (51.0, 100.0)
    assert percentile([], 0.5) == 0.0


def _line(event_type: str, name: str) -> bytes:
    obj = {"apiVersion": "skybroker.io/v1alpha1", "kind": "Firewall",
           "metadata": {"name": name, "namespace": "bench"}, "spec": {"rules": []}}  # fmt: skip
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"


def _chunk(payload: bytes) -> bytes:
    return f"{len(payload):x}\r\n".encode() + payload + b"\r\n"


def test_watcher_reads_every_added_event_once_however_the_bytes_arrive() -> None:
    async def run() -> tuple[Clock, Watcher, bool]:
        clock = Clock([math.nan, 0.0, 0.0, 0.0])
        warm = asyncio.Event()
        watcher = Watcher(clock, warm)
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\n"
        head += b"transfer-encoding: chunked\r\n\r\n"
        split = _line("ADDED", "w-2")
        body = (
            _chunk(_line("ADDED", "w-0"))  # the warm-up object
            + _chunk(_line("ADDED", "w-1") + _line("BOOKMARK", "w-3"))
            + _chunk(split[:20])  # one line over two chunks
            + _chunk(split[20:] + _line("MODIFIED", "w-1") + _line("ADDED", "w-3"))
        )
        stream = head + body
        for start in range(0, len(stream), 7):  # arbitrary TCP segments
            watcher.data_received(stream[start : start + 7])
        return clock, watcher, warm.is_set()

    clock, watcher, warm = asyncio.run(run())
    assert warm
    assert clock.delivered == 3
    assert watcher.seen == 4
    assert len(clock.latencies_ms) == 3 and all(v >= 0 for v in clock.latencies_ms)
