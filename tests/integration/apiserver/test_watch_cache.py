"""The watch cache: many REST watches share one etcd watch; replay, fallback, selectors, bookmarks.

Each test starts the firewalls cache before its writes (``_cache``), so the watches that follow
are served from its buffer; the fallback test shrinks the buffer so a start falls below it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api_types import Firewall, registry
from apiserver import ApiOptions
from apiserver.watchcache import WatchCache
from controller.store.etcd import EtcdClient
from controller.store.keys import KeyLayout
from controller.store.objects import Store
from skybroker.apiserver import HttpServer
from tests.integration.apiserver.conftest import ROOT, TOKEN_FILE, TOKENS, firewall
from tests.waiting import eventually

FW = f"{ROOT}/namespaces/team-a/firewalls"
MERGE = {"Content-Type": "application/merge-patch+json"}


def _cache(server: HttpServer) -> WatchCache:
    cache = server.api.watch_caches.get(registry.by_plural("firewalls"))
    assert cache is not None
    return cache


def _revision(admin: httpx.Client) -> str:
    return str(admin.get(FW).json()["metadata"]["resourceVersion"])


def _events(http: httpx.Client, params: dict[str, str]) -> Generator[dict[str, Any]]:
    with http.stream("GET", FW, params={"watch": "true", **params}) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.strip():
                yield json.loads(line)


def _changes(http: httpx.Client, params: dict[str, str], count: int) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for event in _events(http, params):
        if event["type"] != "BOOKMARK":
            seen.append((event["type"], event["object"]["metadata"]["name"]))
        if len(seen) == count:
            break
    return seen


def _server_threads(ours: list[threading.Thread]) -> int:
    """Live threads, the test's own readers left out."""
    return sum(1 for thread in threading.enumerate() if thread not in ours)


def test_hundred_watches_share_one_etcd_watch(server: HttpServer, admin: httpx.Client) -> None:
    cache = _cache(server)
    start = _revision(admin)
    results: dict[int, list[tuple[str, str]]] = {}
    clients: list[httpx.Client] = []
    readers: list[threading.Thread] = []

    def read(index: int, http: httpx.Client) -> None:
        results[index] = _changes(http, {"resourceVersion": start}, 3)

    def open_watches(count: int) -> None:
        for _ in range(count):
            http = httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {TOKENS['admin']}"},
                timeout=60,
            )  # fmt: skip
            clients.append(http)
            reader = threading.Thread(target=read, args=(len(readers), http), daemon=True)
            readers.append(reader)
            reader.start()
        eventually(lambda: cache.subscribers == len(readers), what="every watch subscribed")

    try:
        open_watches(1)
        one = _server_threads(readers)
        open_watches(99)
        hundred = _server_threads(readers)
        assert hundred - one <= 3, f"threads: {one} with one watch, {hundred} with 100"
        assert admin.post(FW, json=firewall("a")).status_code == 201
        patched = admin.patch(f"{FW}/a", json={"metadata": {"labels": {"x": "1"}}}, headers=MERGE)
        assert patched.status_code == 200
        assert admin.delete(f"{FW}/a").status_code == 200
        for reader in readers:
            reader.join(60)
        expected = [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
        assert len(results) == 100
        assert all(seen == expected for seen in results.values()), results
        eventually(lambda: cache.subscribers == 0, what="the gone clients unsubscribed")
    finally:
        for http in clients:
            http.close()


def test_resume_inside_the_buffer_gets_exactly_the_later_events(
    server: HttpServer, admin: httpx.Client
) -> None:
    cache = _cache(server)
    revisions = []
    for name in ("a", "b", "c"):
        answer = admin.post(FW, json=firewall(name))
        revisions.append(answer.json()["metadata"]["resourceVersion"])
    assert cache.origin < int(revisions[0])
    events = _events(admin, {"resourceVersion": revisions[0]})
    first = next(events)
    assert cache.subscribers == 1, "served by the cache"
    second = next(events)
    events.close()
    seen = [(e["type"], e["object"]["metadata"]["name"]) for e in (first, second)]
    assert seen == [("ADDED", "b"), ("ADDED", "c")]


def test_selector_watch_from_the_cache_sees_objects_leave_and_enter(
    server: HttpServer, admin: httpx.Client
) -> None:
    cache = _cache(server)
    start = _revision(admin)
    admin.post(FW, json=firewall("a", app="web"))
    admin.post(FW, json=firewall("other", namespace="team-b", app="web"))  # another namespace
    for labels in ({"app": "db"}, {"app": "web"}):
        admin.patch(f"{FW}/a", json={"metadata": {"labels": labels}}, headers=MERGE)
    admin.delete(f"{FW}/a")
    events = _events(admin, {"resourceVersion": start, "labelSelector": "app=web"})
    seen = []
    for event in events:
        assert cache.subscribers == 1, "served by the cache"
        if event["type"] != "BOOKMARK":
            seen.append((event["type"], event["object"]["metadata"]["name"]))
        if len(seen) == 4:
            break
    events.close()
    assert seen == [("ADDED", "a"), ("DELETED", "a"), ("ADDED", "a"), ("DELETED", "a")]


def test_the_cache_validates_each_value_once_and_deleted_shows_the_object_before(
    server: HttpServer, admin: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event's previous object is the one the cache holds (what etcd sends as the previous
    value), so the cache validates only the new value; a DELETED — a delete, or an object
    leaving a selector — still shows the object as it was, at the revision of the event."""
    cache = _cache(server)
    start = _revision(admin)
    decoded: list[str] = []
    decode = cache.store.decode

    def counting_decode(key: Any, raw: bytes, mod_revision: int, **options: Any) -> Any:
        if threading.current_thread().name == "api-watch-cache-firewalls":
            decoded.append(key.name)
        return decode(key, raw, mod_revision, **options)

    monkeypatch.setattr(cache.store, "decode", counting_decode)
    admin.post(FW, json=firewall("once", app="web")).raise_for_status()
    revisions = []
    for labels in ({"app": "db"}, {"app": "web", "v": "2"}):
        answer = admin.patch(f"{FW}/once", json={"metadata": {"labels": labels}}, headers=MERGE)
        revisions.append(answer.json()["metadata"]["resourceVersion"])
    admin.delete(f"{FW}/once").raise_for_status()
    events = _events(admin, {"resourceVersion": start, "labelSelector": "app=web"})
    seen = []
    for event in events:
        if event["type"] != "BOOKMARK":
            metadata = event["object"]["metadata"]
            seen.append((event["type"], metadata["labels"], metadata["resourceVersion"]))
        if len(seen) == 4:
            break
    events.close()
    left, back, gone = seen[1], seen[2], seen[3]
    assert left == ("DELETED", {"app": "web"}, revisions[0])  # as it was, at the patch
    assert back[:2] == ("ADDED", {"app": "web", "v": "2"}) and back[2] == revisions[1]
    assert gone[0] == "DELETED" and gone[1] == {"app": "web", "v": "2"}
    assert int(gone[2]) > int(revisions[1])  # the delete's revision
    assert decoded == ["once"] * 3  # created, patched twice; the delete decodes nothing


def test_bookmarks_advance_on_a_quiet_prefix(server: HttpServer, admin: httpx.Client) -> None:
    _cache(server)
    start = int(_revision(admin))
    # A write elsewhere moves etcd's revision; the firewalls' watch learns it from a progress
    # notification (every 5 s on the test etcd), and the bookmarks carry it.
    elsewhere = admin.post(
        f"{ROOT}/namespaces", json={"kind": "Namespace", "metadata": {"name": "quiet-test"}}
    )
    assert elsewhere.status_code == 201, elsewhere.text
    moved = int(elsewhere.json()["metadata"]["resourceVersion"])
    assert moved > start
    for event in _events(admin, {"resourceVersion": str(start)}):
        assert event["type"] == "BOOKMARK", event
        if int(event["object"]["metadata"]["resourceVersion"]) >= moved:
            break


@pytest.fixture
def small_server(api_store: Store, tmp_path: Path) -> Iterator[HttpServer]:
    """A server whose watch caches keep three events."""
    token_file = tmp_path / "tokens.csv"
    token_file.write_text(TOKEN_FILE)
    options = ApiOptions(bookmark_interval=0.3, watch_cache_size=3)
    http = HttpServer(api_store, token_file, "127.0.0.1:0", options)
    http.start()
    yield http
    http.stop()


def test_start_below_the_buffer_falls_back_and_compacted_is_gone(
    small_server: HttpServer, api_store: Store
) -> None:
    cache = _cache(small_server)
    admin = httpx.Client(
        base_url=small_server.url, headers={"Authorization": f"Bearer {TOKENS['admin']}"},
        timeout=30,
    )  # fmt: skip
    try:
        start = _revision(admin)
        names = [f"fw-{i}" for i in range(6)]
        for name in names:
            assert admin.post(FW, json=firewall(name)).status_code == 201
        eventually(lambda: cache.origin > int(start), what="the buffer moved past the start")
        seen = []
        for event in _events(admin, {"resourceVersion": start}):
            assert cache.subscribers == 0, "its own etcd watch"
            if event["type"] == "ADDED":
                seen.append(event["object"]["metadata"]["name"])
            if len(seen) == len(names):
                break
        assert seen == names
        api_store.client.compact(api_store.client.current_revision())
        answer = admin.get(FW, params={"watch": "true", "resourceVersion": start})
        assert answer.status_code == 410 and answer.json()["reason"] == "Gone"
    finally:
        admin.close()


def test_server_stop_ends_cached_streams(
    server: HttpServer, client: Callable[[str | None], httpx.Client]
) -> None:
    cache = _cache(server)
    http = client("admin")
    ended = threading.Event()

    def read() -> None:
        for _ in _events(http, {"resourceVersion": _revision(http)}):
            pass
        ended.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    eventually(lambda: cache.subscribers == 1, what="the watch subscribed")
    server.stop()
    eventually(ended.is_set, what="the stream ended with the server")


def test_first_watch_without_revision_is_served_by_the_cache(
    server: HttpServer, admin: httpx.Client
) -> None:
    """The cache starts before the list, so the list's revision is inside its window."""
    admin.post(FW, json=firewall("existing"))
    events = _events(admin, {})
    first = next(events)
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "existing")
    cache = _cache(server)
    eventually(lambda: cache.subscribers == 1, what="served by the cache")
    admin.post(FW, json=firewall("later"))
    for event in events:
        if event["type"] != "BOOKMARK":
            assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "later")
            break
    events.close()


def test_compaction_overtaking_the_cache_ends_its_streams_with_410(
    server: HttpServer, admin: httpx.Client, api_store: Store
) -> None:
    cache = _cache(server)
    events: list[dict[str, Any]] = []

    def read() -> None:
        events.extend(_events(admin, {"resourceVersion": _revision(admin)}))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    eventually(lambda: cache.subscribers == 1, what="the watch subscribed")
    client = api_store.client
    writes = iter(range(1000))

    def overtaken() -> bool:
        if any(event["type"] == "ERROR" for event in events):
            return True
        # Move etcd past the cache's last revision (a write it does not watch), compact there
        # and break the cache's etcd stream: it resumes from a compacted revision. (A progress
        # notification landing in between moves the cache along; then the next round does it.)
        namespace = {"kind": "Namespace", "metadata": {"name": f"move-{next(writes)}"}}
        assert admin.post(f"{ROOT}/namespaces", json=namespace).status_code == 201
        client.compact(client.current_revision())
        watch = cache._watch
        call = watch._call if watch is not None else None
        if call is not None:
            call.cancel()
        return False

    eventually(overtaken, what="the stream ended with an ERROR", poll=0.2)
    reader.join(30)
    error = events[-1]
    assert error["type"] == "ERROR" and error["object"]["code"] == 410, error
    # the cache restarted from the current revision: a new watch is served by it again
    eventually(lambda: cache.origin >= client.current_revision() - 1 and cache.subscribers == 0)
    events.clear()
    later = threading.Thread(target=read, daemon=True)
    later.start()
    eventually(lambda: cache.subscribers == 1, what="a new watch subscribed to the restarted cache")
    assert admin.post(FW, json=firewall("after")).status_code == 201
    eventually(lambda: any(e["type"] == "ADDED" for e in events), what="the new watch's event")
    server.stop()
    later.join(30)


def test_an_event_previous_value_never_becomes_the_base_of_a_write(
    server: HttpServer, admin: httpx.Client, etcd_client: EtcdClient, layout: KeyLayout
) -> None:
    """An event's previous object (the cache's copy, or a stream's own watch's decoded previous
    value) must not be taken by the API server's store for the value at the event's revision,
    or a status write based on that revision (what a client that saw the event sends; /status
    is written without a read first) would write the spec of before the event back."""
    cache = _cache(server)
    admin.post(FW, json=firewall("based")).raise_for_status()
    other = Store(etcd_client, layout)  # another API server's or skyctl --etcd's store
    seen = other.get(Firewall, "based", "team-a")
    seen.metadata.labels = {"edited": "elsewhere"}
    edited = other.update(seen)
    revision = int(edited.metadata.resource_version or 0)
    eventually(lambda: cache.last_revision >= revision, what="the cache sees the edit")

    body = edited.to_wire()
    body["status"] = {"conditions": [{"type": "Ready", "status": "True", "reason": "Realised"}]}
    answer = admin.put(f"{FW}/based/status", json=body)
    assert answer.status_code == 200, answer.text

    stored = other.get(Firewall, "based", "team-a")
    assert stored.metadata.labels == {"edited": "elsewhere"}
    ready = stored.status.condition("Ready")
    assert ready is not None and ready.reason == "Realised"
