"""PrefixWatch against a real etcd that is SIGKILLed and restarted under an open watch."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from controller.errors import StoreUnavailableError
from controller.store.embedded import EmbeddedEtcd
from controller.store.etcd import EtcdClient
from controller.store.watch import PrefixWatch, WatchCompacted, WatchEvent, WatchHistoryLost
from tests.waiting import eventually


def _collect(watch: PrefixWatch, sink: list[WatchEvent]) -> threading.Thread:
    def run() -> None:
        for batch in watch:
            sink.extend(batch)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_watch_survives_etcd_sigkill_without_missing_or_duplicating(tmp_path: Path) -> None:
    server = EmbeddedEtcd(data_dir=tmp_path / "etcd")
    server.start()
    client = EtcdClient([server.endpoint], timeout=2.0, retry_for=1.0)
    try:
        start = client.current_revision() + 1
        events: list[WatchEvent] = []
        watch = PrefixWatch(client, b"/w/", start)
        thread = _collect(watch, events)
        written: dict[int, bytes] = {}  # mod_revision -> key, of every acknowledged write

        def write(i: int) -> None:
            key = f"/w/k{i % 7}".encode()
            response = client.put(key, str(i).encode())
            written[int(response.header.revision)] = key

        for i in range(50):
            write(i)
        eventually(lambda: len(events) >= 50)
        server.kill()
        with pytest.raises(StoreUnavailableError):
            client.put(b"/w/lost", b"etcd is down")
        server.start()
        for i in range(50, 120):
            write(i)
        client.delete_range(b"/w/k3")
        eventually(lambda: any(e.deleted for e in events))
        watch.stop()
        thread.join(timeout=10)
        assert not thread.is_alive()

        revisions = [e.mod_revision for e in events if not e.deleted]
        assert revisions == sorted(set(revisions)), "duplicated or out-of-order events"
        assert {e.mod_revision: e.key for e in events if not e.deleted} == written
        assert watch.reconnects >= 1
    finally:
        client.close()
        server.stop()


def test_compaction_past_the_watch_revision_raises(
    etcd_client: EtcdClient, key_prefix: str
) -> None:
    prefix = f"{key_prefix}/c/".encode()
    first = int(etcd_client.put(prefix + b"a", b"1").header.revision)
    for i in range(5):
        etcd_client.put(prefix + b"a", str(i).encode())
    current = etcd_client.current_revision()
    etcd_client.compact(current)
    watch = PrefixWatch(etcd_client, prefix, first)
    with pytest.raises(WatchCompacted) as err:
        for _ in watch:
            pass
    assert err.value.compact_revision == current


def test_reachable_answers_at_once_for_a_dead_endpoint(etcd_client: EtcdClient) -> None:
    from controller.store.embedded import free_port

    assert etcd_client.reachable()
    # Retrying would take retry_for (60 s); reachable() answers after one refused attempt.
    dead = EtcdClient([f"http://127.0.0.1:{free_port()}"], timeout=1.0, retry_for=60.0)
    started = time.monotonic()
    assert not dead.reachable()
    assert time.monotonic() - started < 20.0
    dead.close()


@pytest.mark.slow
def test_reconnects_leave_no_thread_behind(tmp_path: Path) -> None:
    """gRPC keeps a thread per stream reading the request iterator: each stream's iterator must
    end with the stream, or every etcd restart leaks one thread per open watch for good."""
    server = EmbeddedEtcd(data_dir=tmp_path / "etcd")
    server.start()
    client = EtcdClient([server.endpoint], timeout=2.0, retry_for=5.0)
    watches = [PrefixWatch(client, f"/leak/{i}/".encode(), 1) for i in range(5)]
    seen: list[list[WatchEvent]] = [[] for _ in watches]
    threads = [_collect(w, sink) for w, sink in zip(watches, seen, strict=True)]

    def all_delivered(round_: int) -> bool:
        return all(
            any(e.value == str(round_).encode() for e in sink) for sink in seen
        )

    def write_round(round_: int) -> None:
        for i in range(len(watches)):
            client.put(f"/leak/{i}/k".encode(), str(round_).encode())
        eventually(lambda: all_delivered(round_), what=f"round {round_} not delivered")

    try:
        write_round(0)
        baseline = threading.active_count()
        for round_ in range(1, 6):
            server.kill()
            server.start()
            write_round(round_)  # every watch has reconnected and delivers again
            eventually(
                lambda: threading.active_count() <= baseline,
                what=lambda: f"{threading.active_count()} threads, {baseline} before",
            )
        assert all(w.reconnects >= 5 for w in watches)
    finally:
        for watch in watches:
            watch.stop()
        for thread in threads:
            thread.join(timeout=10)
        client.close()
        server.stop()


@pytest.mark.slow
def test_a_quiet_watch_resumes_after_compaction_and_restart_without_410(
    tmp_path: Path,
) -> None:
    """Progress notifications move a caught-up watch's revision with the store although its
    prefix sees no event, so compaction and a dropped connection do not force a re-list."""
    server = EmbeddedEtcd(data_dir=tmp_path / "etcd", progress_notify_interval="1s")
    server.start()
    client = EtcdClient([server.endpoint], timeout=2.0, retry_for=5.0)
    client.put(b"/quiet/k", b"0")
    watch = PrefixWatch(client, b"/quiet/", client.current_revision() + 1)
    events: list[WatchEvent] = []
    failures: list[Exception] = []

    def run() -> None:
        try:
            for batch in watch:
                events.extend(batch)
        except WatchCompacted as exc:
            failures.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        for i in range(20):
            client.put(b"/busy/k", str(i).encode())  # the store moves on; /quiet/ does not
        busy = client.current_revision()
        eventually(lambda: watch.last_revision >= busy, what="no progress notification")
        client.compact(busy)
        server.kill()
        server.start()
        client.put(b"/quiet/k", b"1")
        eventually(lambda: events or failures)
        assert not failures, failures
        assert [e.value for e in events] == [b"1"]
    finally:
        watch.stop()
        thread.join(timeout=10)
        client.close()
        server.stop()


@pytest.mark.slow
@pytest.mark.parametrize("reused_before_reconnect", [False, True])
def test_a_watch_whose_history_etcd_lost_re_lists_instead_of_missing_writes(
    tmp_path: Path, reused_before_reconnect: bool
) -> None:
    """etcd restarted from an older state (a restored backup; etcd 3.5.0 to 3.5.2 can lose its
    last writes when killed) gives the lost revisions to new writes: a watch resumed after the
    last revision it delivered would skip those writes for good, so it must raise instead."""
    server = EmbeddedEtcd(data_dir=tmp_path / "etcd")
    server.start()
    client = EtcdClient([server.endpoint], timeout=2.0, retry_for=5.0)
    etcd_dir, backup = tmp_path / "etcd" / "etcd", tmp_path / "backup"
    try:
        client.put(b"/lost/a", b"kept")
        server.stop()
        shutil.copytree(etcd_dir, backup)
        server.start()
        watch = PrefixWatch(client, b"/lost/", client.current_revision() + 1)
        batches = iter(watch)
        delivered = int(client.put(b"/lost/b", b"lost").header.revision)
        assert [e.key for e in next(batches)] == [b"/lost/b"]
        server.kill()
        shutil.rmtree(etcd_dir)
        shutil.copytree(backup, etcd_dir)
        server.start()
        assert client.current_revision() == delivered - 1
        if reused_before_reconnect:
            # Written before the watch looks again: "/lost/c" takes the lost revision, and
            # "/lost/d" the next, which a watch resumed after the lost one would deliver alone.
            assert int(client.put(b"/lost/c", b"new").header.revision) == delivered
            client.put(b"/lost/d", b"new")
        with pytest.raises(WatchHistoryLost):
            next(batches)
    finally:
        client.close()
        server.stop()
