"""A controller stand-in for the two-process election tests (tests/integration/test_leader.py).

Run as a real OS process with the venv's python so that tests can SIGKILL and SIGSTOP it:

    leader_process.py ENDPOINT PREFIX IDENTITY --ttl 2 --renew 0.5 elector [--pause-after N]
    leader_process.py ENDPOINT PREFIX IDENTITY --ttl 2 --renew 0.5 shards --total 4

``elector``: campaigns for the election ``controller``; while leader, runs a "reconcile" loop
that increments ``{prefix}/test/counter`` with a CAS txn carrying the leadership's fence, and
in the same txn appends ``{prefix}/test/log/{counter}`` = {holder, counter, tenure, started,
acquired_at} (``started`` is read *before* ``is_valid()``, so it never postdates the check).
With ``--pause-after N`` the process SIGSTOPs itself once, after N writes, between
``is_valid()`` and the txn — a deterministic zombie whose late write the fence must reject.

``shards``: holds a fair share of ``--total`` shards and reports every change.

Reports go to stdout as JSON lines with ``t`` = ``time.monotonic()`` (CLOCK_MONOTONIC is
system-wide on Linux, so the test can compare it with its own clock); logs go to stderr.
SIGTERM stops cleanly (the lease is released).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from typing import Any

import structlog

from controller.leader import LeaderElector, Leadership, ShardSet
from controller.store.etcd import EtcdClient, cmp_mod_revision, op_get, op_put
from controller.store.keys import KeyLayout

ELECTION = "controller"
_print_lock = threading.Lock()


def report(event: str, **fields: Any) -> None:
    with _print_lock:
        print(json.dumps({"event": event, "t": time.monotonic(), **fields}), flush=True)


def reconcile_once(
    client: EtcdClient,
    layout: KeyLayout,
    identity: str,
    lead: Leadership,
    started: float,
    acquired_at: float,
    pause: bool,
) -> str:
    counter_key = f"{layout.prefix}/test/counter".encode()
    current = client.range(counter_key)
    kvs = list(current.kvs)
    value = int(kvs[0].value) if kvs else 0
    mod_revision = int(kvs[0].mod_revision) if kvs else 0
    if pause:
        report("pausing", counter=value)
        os.kill(os.getpid(), signal.SIGSTOP)
    record = {
        "holder": identity,
        "counter": value + 1,
        "tenure": lead.create_revision,
        "started": started,
        "acquired_at": acquired_at,
    }
    response = client.txn(
        [cmp_mod_revision(counter_key, mod_revision), *lead.fence()],
        [
            op_put(counter_key, str(value + 1).encode()),
            op_put(
                f"{layout.prefix}/test/log/{value + 1:08d}".encode(), json.dumps(record).encode()
            ),
        ],
        [op_get(lead.key)],
    )
    if response.succeeded:
        return "written"
    election = list(response.responses[0].response_range.kvs)
    if not election or int(election[0].create_revision) != lead.create_revision:
        return "fenced"
    return "conflict"


def run_elector(
    client: EtcdClient,
    layout: KeyLayout,
    identity: str,
    args: argparse.Namespace,
    stop: threading.Event,
) -> None:
    elector = LeaderElector(
        client, layout, ELECTION, identity, ttl=args.ttl, renew_every=args.renew
    )
    acquired: dict[int, float] = {}

    def on_started(lead: Leadership) -> None:
        acquired[lead.create_revision] = time.monotonic()
        report("started", tenure=lead.create_revision)

    thread = threading.Thread(
        target=elector.run, args=(on_started, lambda: report("stopped"), stop), daemon=True
    )
    thread.start()
    written = 0
    paused = False
    while not stop.is_set():
        started = time.monotonic()
        lead = elector.leadership()  # None unless is_valid()
        if lead is None or lead.create_revision not in acquired:
            # Not ours, or won an instant ago and its on_started (run by the elector's thread
            # right after) has not recorded it yet: reading it then crashed this process.
            stop.wait(0.01)
            continue
        pause = args.pause_after is not None and not paused and written >= args.pause_after
        paused = paused or pause
        outcome = reconcile_once(
            client, layout, identity, lead, started, acquired[lead.create_revision], pause
        )
        if outcome == "written":
            written += 1
        else:
            report(outcome, tenure=lead.create_revision)
        stop.wait(0.005)
    thread.join()


def run_shards(
    client: EtcdClient,
    layout: KeyLayout,
    identity: str,
    args: argparse.Namespace,
    stop: threading.Event,
) -> None:
    shards = ShardSet(client, layout, args.total, identity, ttl=args.ttl, renew_every=args.renew)
    shards.run(stop, lambda owned: report("shards", owned=sorted(owned)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("endpoint")
    parser.add_argument("prefix")
    parser.add_argument("identity")
    parser.add_argument("--ttl", type=int, default=2)
    parser.add_argument("--renew", type=float, default=0.5)
    modes = parser.add_subparsers(dest="mode", required=True)
    elector = modes.add_parser("elector")
    elector.add_argument("--pause-after", type=int, default=None)
    shards = modes.add_parser("shards")
    shards.add_argument("--total", type=int, default=4)
    args = parser.parse_args()

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    client = EtcdClient([args.endpoint])
    layout = KeyLayout(args.prefix)
    report("ready", pid=os.getpid())
    if args.mode == "elector":
        run_elector(client, layout, args.identity, args, stop)
    else:
        run_shards(client, layout, args.identity, args, stop)
    report("exited")


if __name__ == "__main__":
    main()
