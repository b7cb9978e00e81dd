"""The rendezvous records on a real etcd: one write per heartbeat, leased; slots never shared;
a stale slot freed only by the claimant that holds it; the heartbeat cache follows the store."""

from __future__ import annotations

import threading
import uuid as uuids
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from api_types.rendezvous import (
    EnrollmentRecord,
    Heartbeat,
    RendezvousRecord,
    ReportStatus,
    secret_digest,
)
from controller.rendezvous import HeartbeatCache, RendezvousStore
from controller.store.objects import Store
from tests.etcd_writes import key_revisions
from tests.waiting import eventually

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def _record(instance: str | None = "web-1") -> RendezvousRecord:
    return RendezvousRecord(
        namespace="team-a",
        boot_config="web",
        instance=instance,
        secret_sha256=secret_digest("s" * 43),
        created_at=NOW,
    )


def _beat(uuid: str, **changes: object) -> Heartbeat:
    beat = Heartbeat(
        uuid=uuid,
        boot_config="web",
        instance="web-1",
        status=ReportStatus.CONFIGURED,
        address="10.0.0.5",
        parameters={"port": "8080"},
        config_revision=1,
        reported_at=NOW,
    )
    return beat.model_copy(update=changes)


@pytest.fixture
def rendezvous(store: Store) -> RendezvousStore:
    return RendezvousStore(store, lambda: NOW.timestamp())


def test_a_record_is_read_back_and_forgotten_with_its_heartbeat(
    store: Store, rendezvous: RendezvousStore, key_prefix: str
) -> None:
    uid = str(uuids.uuid4())
    rendezvous.register(uid, _record())
    assert rendezvous.record(uid) == _record()
    rendezvous.beat("team-a", _beat(uid), 60)
    assert rendezvous.heartbeat("team-a", uid) == _beat(uid)
    rendezvous.forget("team-a", uid)
    assert rendezvous.record(uid) is None and rendezvous.heartbeat("team-a", uid) is None
    assert key_revisions(store.client, key_prefix) == {}


def test_a_heartbeat_is_one_leased_put_and_later_beats_share_the_lease(
    store: Store, rendezvous: RendezvousStore, key_prefix: str
) -> None:
    first, second = str(uuids.uuid4()), str(uuids.uuid4())
    rendezvous.beat("team-a", _beat(first), 60)  # grants the bucket's lease
    before = store.client.current_revision()
    rendezvous.beat("team-a", _beat(second), 60)
    assert store.client.current_revision() == before + 1  # one write, no lease grant
    leases = {
        bytes(kv.key): int(kv.lease)
        for kv in store.client.range_prefix(f"{key_prefix}/heartbeats/".encode())[0]
    }
    assert len(leases) == 2 and len(set(leases.values())) == 1 and 0 not in leases.values()
    ttl = store.client.lease_keepalive_once(next(iter(leases.values())))
    assert 120 <= ttl <= 150  # twice staleAfter, plus at most half of it (the bucket)


def test_a_slot_is_never_given_twice_and_none_past_the_last(rendezvous: RendezvousStore) -> None:
    results: list[int | None] = []
    lock = threading.Lock()

    def claim() -> None:
        slot = rendezvous.claim(3, str(uuids.uuid4()), _record(instance=None))
        with lock:
            results.append(slot)

    threads = [threading.Thread(target=claim) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r for r in results if r is not None) == [0, 1, 2]
    assert results.count(None) == 2
    claims = rendezvous.claims("team-a", "web")
    assert sorted(claims) == [0, 1, 2]
    for slot, uid in claims.items():
        stored = rendezvous.record(uid)
        assert stored is not None and stored.slot == slot and stored.instance is None


def test_only_the_holder_releases_a_slot_and_its_record_goes_with_it(
    rendezvous: RendezvousStore,
) -> None:
    holder = str(uuids.uuid4())
    assert rendezvous.claim(1, holder, _record(instance=None)) == 0
    rendezvous.beat("team-a", _beat(holder, instance=None, slot=0), 60)
    assert rendezvous.release("team-a", "web", 0, str(uuids.uuid4())) is False
    assert rendezvous.claims("team-a", "web") == {0: holder}
    assert rendezvous.release("team-a", "web", 0, holder) is True
    assert rendezvous.claims("team-a", "web") == {}
    assert rendezvous.record(holder) is None and rendezvous.heartbeat("team-a", holder) is None
    assert rendezvous.claim(1, str(uuids.uuid4()), _record(instance=None)) == 0


def test_enrollments_are_found_by_digest(rendezvous: RendezvousStore) -> None:
    digest = secret_digest("enroll-me")
    rendezvous.enroll(digest, EnrollmentRecord(namespace="team-a", boot_config="web"))
    assert rendezvous.enrollment(digest) == EnrollmentRecord(namespace="team-a", boot_config="web")
    rendezvous.unenroll(digest)
    assert rendezvous.enrollment(digest) is None


@pytest.fixture
def cache(store: Store) -> Iterator[HeartbeatCache]:
    made = HeartbeatCache(store)
    yield made
    made.stop()


def test_the_heartbeat_cache_lists_then_follows_every_change(
    store: Store, rendezvous: RendezvousStore, cache: HeartbeatCache
) -> None:
    listed, later = str(uuids.uuid4()), str(uuids.uuid4())
    rendezvous.beat("team-a", _beat(listed), 60)
    heard: list[tuple[str, str, Heartbeat | None]] = []
    cache.add_handler(lambda ns, uid, beat: heard.append((ns, uid, beat)))
    cache.start()
    assert cache.wait_for_sync(30)
    assert cache.get("team-a", listed) == _beat(listed)
    assert heard == [("team-a", listed, _beat(listed))]

    rendezvous.beat("team-b", _beat(later, address="10.0.0.9"), 60)
    eventually(lambda: cache.get("team-b", later) is not None, what="the new beat")
    assert heard[-1] == ("team-b", later, _beat(later, address="10.0.0.9"))
    rendezvous.forget("team-a", listed)
    eventually(lambda: cache.get("team-a", listed) is None, what="the forgotten beat")
    assert heard[-1] == ("team-a", listed, None)
