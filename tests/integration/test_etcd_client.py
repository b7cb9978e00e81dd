"""EtcdClient against a real etcd that goes away: riding over an outage, failing fast, or
leaving a dead member of a cluster for the next."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from controller.errors import StoreUnavailableError
from controller.store.bridge import run_bridged
from controller.store.embedded import EmbeddedEtcd
from controller.store.etcd import EtcdClient
from controller.store.watch import PrefixWatch
from tests.etcd_cluster import EtcdCluster
from tests.waiting import eventually


def failed_at_once(client: EtcdClient) -> bool:
    with pytest.raises(StoreUnavailableError):
        client.put(b"/ff/k", b"down")
    return True


@pytest.mark.slow
def test_a_fail_fast_client_answers_at_once_while_etcd_is_down_and_sees_it_return(
    tmp_path: Path,
) -> None:
    server = EmbeddedEtcd(data_dir=tmp_path / "etcd")
    server.start()
    retry_for = 3.0
    client = EtcdClient([server.endpoint], retry_for=retry_for, timeout=2.0, fail_fast=True)
    try:
        client.put(b"/ff/k", b"up")
        assert not client.known_down
        server.kill()
        failed_at_once(client)  # the first call rides the outage for retry_for, then gives up
        assert client.known_down
        # Now every call fails at once: 50 calls that each rode the outage would take 150 s.
        started = time.monotonic()
        for _ in range(50):
            failed_at_once(client)
        assert time.monotonic() - started < retry_for
        server.start()
        eventually(lambda: _reachable(client))  # a probe got through: the outage is over
        assert not client.known_down
        client.put(b"/ff/k", b"back")
        assert client.range(b"/ff/k").kvs[0].value == b"back"
    finally:
        client.close()
        server.stop()


def _reachable(client: EtcdClient) -> bool:
    try:
        client.range(b"/ff/k")
    except StoreUnavailableError:
        return False
    return True


@pytest.mark.slow
def test_a_dead_member_is_left_for_the_next_by_calls_and_by_a_quiet_watch(
    tmp_path: Path,
) -> None:
    """A watch that has delivered nothing yet (a quiet prefix) reconnects to another member when
    its own dies: a reconnect makes one call, which moves the client on, before it reopens."""
    cluster = EtcdCluster(tmp_path / "etcd")
    cluster.start()
    victim = cluster.follower()
    # The victim first: the client and its watch start on the member that will die.
    endpoints = [cluster.endpoints[victim]]
    endpoints += [e for i, e in enumerate(cluster.endpoints) if i != victim]
    client = EtcdClient(endpoints)
    writer = EtcdClient([e for i, e in enumerate(cluster.endpoints) if i != victim])
    seen: list[bytes] = []
    watch = PrefixWatch(client, b"/quiet/", client.current_revision() + 1)

    def follow() -> None:
        for batch in watch:
            seen.extend(event.key for event in batch)

    thread = threading.Thread(target=follow, daemon=True)
    try:
        thread.start()
        cluster.kill(victim)  # while the stream opens there or runs: either way it reconnects
        writer.put(b"/quiet/after", b"1")
        eventually(lambda: seen == [b"/quiet/after"], timeout=60, what=lambda: f"saw {seen}")
        assert client.range(b"/quiet/after").kvs[0].value == b"1"
    finally:
        watch.stop()
        client.close()
        writer.close()
        cluster.stop()


def test_bridged_calls_are_awaited_on_the_loop_so_other_requests_run_meanwhile(
    etcd_client: EtcdClient, key_prefix: str
) -> None:
    first, second = f"{key_prefix}/first".encode(), f"{key_prefix}/second".encode()

    def waits_for_the_other() -> int:
        # No pause between the reads: only an etcd call that yields to the loop lets the
        # other function run at all.
        etcd_client.put(first, b"1")
        for reads in range(1, 5000):
            if etcd_client.range(second).kvs:
                return reads
        return 0

    def writes() -> None:
        lease = etcd_client.lease_grant(30)
        assert etcd_client.lease_keepalive_once(lease) > 0
        etcd_client.put(second, b"2", lease=lease)

    async def both() -> list[object]:
        return await asyncio.gather(run_bridged(waits_for_the_other), run_bridged(writes))

    reads, _ = asyncio.run(both())
    assert reads > 0, "the other function never ran while the first one called etcd"
    assert etcd_client.range(second).kvs[0].value == b"2"


@pytest.mark.slow
def test_a_bridged_call_rides_an_outage_without_holding_the_loop(tmp_path: Path) -> None:
    server = EmbeddedEtcd(data_dir=tmp_path / "etcd")
    server.start()
    client = EtcdClient([server.endpoint], retry_for=1.0, timeout=2.0, fail_fast=True)
    ticks = 0

    async def tick_until(done: asyncio.Future[None]) -> None:
        nonlocal ticks
        while not done.done():
            ticks += 1
            await asyncio.sleep(0.01)

    async def put_while_down() -> None:
        done = asyncio.get_running_loop().create_future()
        ticker = asyncio.ensure_future(tick_until(done))
        try:
            with pytest.raises(StoreUnavailableError):
                await run_bridged(client.put, b"/bridged/k", b"v")
        finally:
            done.set_result(None)
            await ticker

    try:
        client.put(b"/bridged/k", b"up")
        server.kill()
        started = time.monotonic()
        asyncio.run(put_while_down())
        assert time.monotonic() - started >= 1.0  # it rode the outage for retry_for
        assert ticks >= 20  # ... while the loop went on (a blocked loop ticks once)
    finally:
        client.close()
        server.stop()
