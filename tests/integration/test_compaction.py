"""Compaction rounds (controller.store.compaction) on a real etcd of their own.

Compaction is cluster-wide, so these tests start their own etcd rather than compact the
session's, whose older revisions other tests may still be reading.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from controller.store.compaction import Compactor
from controller.store.embedded import EmbeddedEtcd
from controller.store.etcd import EtcdClient
from controller.store.keys import KeyLayout


@pytest.fixture
def own_etcd(tmp_path: Path) -> Iterator[EtcdClient]:
    server = EmbeddedEtcd(data_dir=tmp_path / "etcd")
    server.start()
    client = EtcdClient([server.endpoint])
    try:
        yield client
    finally:
        client.close()
        server.stop()


def readable_at(client: EtcdClient, revision: int) -> bool:
    try:
        client.range(b"/data/", b"/data0", revision=revision)
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.OUT_OF_RANGE, exc
        return False
    return True


def write(client: EtcdClient, count: int) -> int:
    for i in range(count):
        client.put(b"/data/k", str(i).encode())
    return client.current_revision()


def test_rounds_keep_one_interval_of_history_and_drop_the_rest(own_etcd: EtcdClient) -> None:
    compactor = Compactor(own_etcd, KeyLayout("/sky"))
    assert compactor.round() is None  # remembers what it found (nothing)
    write(own_etcd, 10)
    assert compactor.round() is None  # the first record: nothing older to compact to
    first_record = own_etcd.current_revision()
    for _ in range(5):  # every later round compacts to the previous round's record
        written = write(own_etcd, 10)
        compacted = compactor.round()
        assert compacted is not None and first_record <= compacted < written
        assert not readable_at(own_etcd, compacted - 1)  # older history is gone ...
        assert readable_at(own_etcd, compacted)  # ... the window since the last round stays
        assert readable_at(own_etcd, written)
    # The window is bounded: what etcd keeps is one round's worth, not everything since start.
    assert not readable_at(own_etcd, first_record)


def test_several_processes_compact_once_per_round_and_never_below_it(
    own_etcd: EtcdClient,
) -> None:
    a, b = (Compactor(own_etcd, KeyLayout("/sky")) for _ in range(2))
    assert a.round() is None and b.round() is None
    write(own_etcd, 5)
    assert a.round() is None  # creates the record
    assert b.round() is None  # a ran this round: b only learns the record
    recorded = own_etcd.current_revision()
    write(own_etcd, 5)
    compacted = a.round()
    assert compacted == recorded
    # b comes right after a in the same round: its CAS fails, so it cannot compact the
    # window a just kept down to nothing.
    assert b.round() is None
    assert readable_at(own_etcd, recorded)
