"""The rendezvous caches on real etcd: claims and heartbeats heard as they change, and a
compacted watch re-listed with only the differences told (one loop serves both caches)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from api_types.rendezvous import Heartbeat, RendezvousRecord, ReportStatus
from controller.rendezvous import ClaimCache, HeartbeatCache, RendezvousStore
from controller.store.objects import Store
from tests.waiting import eventually

NS = "acme"


def record(bootconfig: str) -> RendezvousRecord:
    return RendezvousRecord(
        namespace=NS, boot_config=bootconfig, secret_sha256="0" * 64, created_at=datetime.now(UTC)
    )


@pytest.fixture
def claims(store: Store) -> Iterator[ClaimCache]:
    cache = ClaimCache(store)
    yield cache
    cache.stop()


def test_claims_are_heard_when_made_and_freed(store: Store, claims: ClaimCache) -> None:
    heard: list[tuple[str, str, int, str | None]] = []
    claims.add_handler(lambda *change: heard.append(change))
    rendezvous = RendezvousStore(store)
    assert rendezvous.claim(2, "u-0", record("web")) == 0
    claims.start()
    assert claims.wait_for_sync(10)
    assert rendezvous.claim(2, "u-1", record("web")) == 1
    assert rendezvous.claim(1, "u-2", record("web-2")) == 0  # a name that prefixes another's
    eventually(lambda: len(heard) == 3)
    assert claims.claims(NS, "web") == {0: "u-0", 1: "u-1"}
    assert rendezvous.release(NS, "web", 0, "u-0")
    eventually(lambda: len(heard) == 4)
    assert heard == [
        (NS, "web", 0, "u-0"),
        (NS, "web", 1, "u-1"),
        (NS, "web-2", 0, "u-2"),
        (NS, "web", 0, None),
    ]
    assert claims.claims(NS, "web") == {1: "u-1"}


def test_a_compacted_watch_relists_and_tells_only_the_differences(store: Store) -> None:
    rendezvous = RendezvousStore(store)
    beats = HeartbeatCache(store)

    def heartbeat(uuid: str, address: str) -> Heartbeat:
        return Heartbeat(
            uuid=uuid,
            boot_config="web",
            slot=0,
            status=ReportStatus.CONFIGURED,
            address=address,
            reported_at=datetime(2026, 1, 1, tzinfo=UTC),
        )

    for uuid in ("keep", "change", "remove"):
        rendezvous.beat(NS, heartbeat(uuid, "10.0.0.1"), 60)
    # Hold the cache between its first list and its watch, change things and compact them
    # away: the watch fails as compacted and the cache re-lists.
    release = threading.Event()
    heard: list[tuple[str, str | None]] = []

    def hold(namespace: str, uuid: str, beat: Heartbeat | None) -> None:
        heard.append((uuid, beat.address if beat is not None else None))
        if len(heard) == 1:
            release.wait(10)

    beats.add_handler(hold)
    beats.start()
    try:
        eventually(lambda: beats.last_revision > 0)
        rendezvous.beat(NS, heartbeat("new", "10.0.0.1"), 60)
        rendezvous.beat(NS, heartbeat("change", "10.0.0.2"), 60)
        rendezvous.forget(NS, "remove")
        store.client.compact(store.client.current_revision())
        release.set()
        eventually(lambda: len(heard) == 6)
        assert sorted(heard[3:]) == [("change", "10.0.0.2"), ("new", "10.0.0.1"), ("remove", None)]
        assert beats.get(NS, "remove") is None
        assert beats.get(NS, "change") == heartbeat("change", "10.0.0.2")
    finally:
        beats.stop()
