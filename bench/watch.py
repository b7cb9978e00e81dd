"""Many REST watchers on one API server: delivery latency, and what they cost the server.

One ``skybroker apiserver`` process (as ``bench.api`` starts it) on the bench's etcd; N
concurrent ``?watch=true`` streams on one plural (Firewalls of one namespace), all in this
process on one asyncio loop (raw sockets, a minimal HTTP/1.1 chunked NDJSON reader: threads or
a full HTTP client per watcher would cost the client more CPU than the server, on a machine
where they share the cores). Then W creates through skybroker's store (the same JSON, CAS and
history as any write; no admission), paced at ``--rate`` per second, and for every watcher and
every write the latency from the write's commit (the moment etcd's answer reached the writer)
to the moment that watcher read the event. The floor of the same run: the same writes seen by
one bare etcd watch (``PrefixWatch``, bytes only) in this process.

Before the writes, one warm-up object must reach every watcher, so every stream is subscribed
and the measured latencies are the steady state, not connection set-up. The server's threads
and RSS are read from ``/proc`` while all streams are open; its etcd watches from etcd's own
``/metrics`` (``etcd_debugging_mvcc_watcher_total``, or ``etcd_mvcc_watcher_total`` where etcd
names it so) once every stream is subscribed, less those open before the API server started.
Run it with ``--watchers 1`` too: threads and etcd watches must be the same.

The last line, exactly (for the issue's note)::

    watch watchers=<n> writes=<w> delivered=<got>/<expected> p50_ms=<> p99_ms=<> max_ms=<>
    apiserver_threads=<t> etcd_watches=<e> rss_mb=<m>

    python -m bench.watch [--watchers 1000] [--writes 1000] [--rate 20] [--etcd-endpoints URL,...]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from api_types import registry
from bench._common import etcd_for_bench
from bench.api import ROOT, TOKEN, apiservers, cpu_seconds_of
from controller.store.etcd import EtcdClient
from controller.store.keys import KeyLayout
from controller.store.objects import Store
from controller.store.watch import PrefixWatch
from skybroker.main import tune_interpreter

NAMESPACE = "bench"
PLURAL = "firewalls"
#: The ADDED line of write ``i`` (object ``w-i``): json.dumps keeps the event's key order
#: (type, then object) and the object's (apiVersion, kind, metadata with name first).
_ADDED = re.compile(rb'^\{"type":"ADDED","object":\{.*?"name":"w-(\d+)"', re.MULTILINE)
_WATCHER_METRICS = (b"etcd_debugging_mvcc_watcher_total", b"etcd_mvcc_watcher_total")
_CONNECT_BATCH = 100  # connections opened at once (the server's accept backlog is bigger)


def firewall(index: int) -> Any:
    rule = {"direction": "Ingress", "protocol": "tcp", "ports": "443", "cidrs": ["0.0.0.0/0"]}
    return registry.parse_object(
        {
            "apiVersion": "skybroker.io/v1alpha1",
            "kind": "Firewall",
            "metadata": {"name": f"w-{index}", "namespace": NAMESPACE},
            "spec": {"rules": [rule]},
        }
    )


def result_line(
    watchers: int,
    writes: int,
    got: int,
    latencies_ms: list[float],
    threads: int,
    etcd_watches: int,
    rss_mb: float,
) -> str:
    """The bench's last line, in the issue's exact format."""
    p50, p99, top = percentile(latencies_ms, 0.50), percentile(latencies_ms, 0.99), 0.0
    if latencies_ms:
        top = max(latencies_ms)
    return (
        f"watch watchers={watchers} writes={writes} delivered={got}/{watchers * writes} "
        f"p50_ms={p50:.1f} p99_ms={p99:.1f} max_ms={top:.1f} apiserver_threads={threads} "
        f"etcd_watches={etcd_watches} rss_mb={rss_mb:.1f}"
    )


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def proc_status(pid: int) -> tuple[int, float]:
    """Threads and resident MB of ``pid`` (Linux ``/proc``)."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) / 1024


def etcd_watchers(endpoint: str) -> int:
    """Open watches on the etcd member at ``endpoint``, from its Prometheus metrics."""
    with urllib.request.urlopen(f"{endpoint}/metrics", timeout=10) as response:
        text: bytes = response.read()
    for line in text.splitlines():
        name, _, value = line.partition(b" ")
        if name in _WATCHER_METRICS:
            return int(float(value))
    raise RuntimeError(f"etcd at {endpoint} exposes none of {_WATCHER_METRICS}")


@dataclass
class Clock:
    """Commit times of the writes, by index (NaN until written), shared with the readers."""

    committed: list[float]
    latencies_ms: list[float] = field(default_factory=list)
    delivered: int = 0


class Watcher(asyncio.Protocol):
    """One watch stream: the response head, then HTTP/1.1 chunks of NDJSON events.

    Each chunk is a batch of whole lines (the server writes line batches); a line split
    across chunks anyway is carried over, so nothing is lost or counted twice.
    """

    def __init__(self, clock: Clock, warm: asyncio.Event) -> None:
        self.clock = clock
        self.warm = warm
        self.buffer = b""
        self.head_done = False
        self.carry = b""
        self.seen = 0
        self.closed = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        buffer = self.buffer + data
        if not self.head_done:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            status = buffer.split(b" ", 2)[1]
            if status != b"200":
                raise RuntimeError(f"watch answered {buffer[:end].decode(errors='replace')}")
            self.head_done = True
            buffer = buffer[end + 4 :]
        payload = []
        position = 0
        while True:
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                break
            size = int(buffer[position:line_end].split(b";", 1)[0], 16)
            if len(buffer) < line_end + 2 + size + 2:
                break
            payload.append(buffer[line_end + 2 : line_end + 2 + size])
            position = line_end + 2 + size + 2
        self.buffer = buffer[position:]
        if payload:
            self._events(b"".join(payload), now)

    def _events(self, text: bytes, now: float) -> None:
        text = self.carry + text
        complete = text.rfind(b"\n") + 1
        self.carry = text[complete:]
        committed = self.clock.committed
        latencies = self.clock.latencies_ms
        for match in _ADDED.finditer(text, 0, complete):
            index = int(match.group(1))
            self.seen += 1
            if index == 0:
                self.warm.set()
                continue
            # The event may overtake the writer's answer from etcd: that counts as 0 ms.
            latencies.append(max(0.0, now - committed[index]) * 1000)
            self.clock.delivered += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(exc)


async def open_watch(port: int, clock: Clock) -> tuple[asyncio.Transport, Watcher, asyncio.Event]:
    loop = asyncio.get_running_loop()
    warm = asyncio.Event()
    transport, watcher = await loop.create_connection(
        lambda: Watcher(clock, warm), "127.0.0.1", port
    )
    path = f"{ROOT}/namespaces/{NAMESPACE}/{PLURAL}?watch=true"
    transport.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nAccept: application/json\r\n\r\n".encode()
    )
    return transport, watcher, warm


def floor_watch(client: EtcdClient, store: Store, clock: Clock, writes: int) -> list[float]:
    """The same writes seen by one bare etcd watch (bytes only), on a thread: the latencies it
    measured (filled in while the writes run)."""
    prefix = store.layout.kind_prefix(PLURAL, NAMESPACE)
    watch = PrefixWatch(client, prefix, client.current_revision() + 1)
    seen: list[float] = []

    def consume() -> None:
        for batch in watch:
            now = time.perf_counter()
            for event in batch:
                index = int(event.key.rsplit(b"/w-", 1)[-1])
                if index:
                    seen.append(max(0.0, now - clock.committed[index]) * 1000)
            if len(seen) >= writes:
                watch.stop()
                return

    threading.Thread(target=consume, name="floor-watch", daemon=True).start()
    return seen


def write_paced(store: Store, clock: Clock, first: int, last: int, rate: float) -> None:
    """Create ``w-first`` … ``w-last`` at ``rate`` per second, noting each commit time."""
    start = time.perf_counter()
    for index in range(first, last + 1):
        delay = start + (index - first) / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        store.create(firewall(index), actor="bench")
        clock.committed[index] = time.perf_counter()


async def measure(args: argparse.Namespace, client: EtcdClient, tmp: Path) -> str:
    endpoint = client.endpoints[0]
    prefix = f"/bench-{uuid.uuid4().hex[:8]}"
    store = Store(client, KeyLayout(prefix))
    clock = Clock([float("nan")] * (args.writes + 1))
    before = etcd_watchers(endpoint)
    with apiservers(endpoint, prefix, tmp, 1) as servers:
        port, pid = servers.ports[0], servers.pids[0]
        idle_threads, idle_rss = proc_status(pid)
        streams = []
        for batch in range(0, args.watchers, _CONNECT_BATCH):
            count = min(_CONNECT_BATCH, args.watchers - batch)
            streams += await asyncio.gather(*(open_watch(port, clock) for _ in range(count)))
        # The warm-up object: once every watcher has it, every stream is subscribed.
        await asyncio.to_thread(write_paced, store, clock, 0, 0, args.rate)
        await asyncio.wait_for(asyncio.gather(*(warm.wait() for _, _, warm in streams)), 120)
        watches = etcd_watchers(endpoint) - before  # before the floor's own watch opens
        floor = floor_watch(client, store, clock, args.writes)
        cpu_before = cpu_seconds_of([pid])
        started = time.perf_counter()
        await asyncio.to_thread(write_paced, store, clock, 1, args.writes, args.rate)
        wrote = time.perf_counter() - started
        expected = args.watchers * args.writes
        deadline = time.monotonic() + args.drain_timeout
        while clock.delivered < expected and time.monotonic() < deadline:
            if any(watcher.closed.done() for _, watcher, _ in streams):
                break  # a stream ended (the server cut a slow client): report what arrived
            await asyncio.sleep(0.05)
        drained = time.perf_counter() - started
        cpu = cpu_seconds_of([pid]) - cpu_before
        threads, rss = proc_status(pid)
        ended = sum(watcher.closed.done() for _, watcher, _ in streams)
        for transport, _, _ in streams:
            transport.close()
        # Let the server see the disconnects before it is stopped (it ends open watches then).
        await asyncio.sleep(2)
    got = max(1, clock.delivered)
    print(
        f"writes: {args.writes} in {wrote:.1f} s ({args.writes / wrote:.0f}/s, asked "
        f"{args.rate:g}/s); streams ended by the server: {ended}\n"
        f"fan-out: {clock.delivered / drained:.0f} events/s delivered to watchers; apiserver CPU "
        f"{cpu:.1f} s = {cpu / got * 1e6:.0f} µs per delivered event\n"
        f"floor, one bare etcd watch in this process: p50 {percentile(floor, 0.5):.1f} ms, "
        f"p99 {percentile(floor, 0.99):.1f} ms ({len(floor)}/{args.writes} events)\n"
        f"apiserver before the watchers: {idle_threads} threads, {idle_rss:.1f} MB RSS; "
        f"with them: {threads} threads, {rss:.1f} MB RSS "
        f"({(rss - idle_rss) * 1024 / max(1, args.watchers):.1f} KB per watcher)"
    )
    return result_line(
        args.watchers,
        args.writes,
        clock.delivered,
        clock.latencies_ms,
        threads,
        watches,
        rss,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--watchers", type=int, default=1000, help="concurrent REST watches")
    parser.add_argument("--writes", type=int, default=1000, help="objects created meanwhile")
    parser.add_argument(
        "--rate",
        type=float,
        default=20.0,
        help="writes per second (times watchers: lines/s to send)",
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=120.0, help="seconds to wait for stragglers"
    )
    parser.add_argument("--etcd-endpoints", default="")
    args = parser.parse_args()
    tune_interpreter()
    with etcd_for_bench(args) as client, tempfile.TemporaryDirectory() as tmp:
        line = asyncio.run(measure(args, client, Path(tmp)))
    print(line)


if __name__ == "__main__":
    main()
