"""Reads served by the watch cache (``apiserver.cachedreads``): ``resourceVersion=0`` answers
what etcd answers, and while etcd is down (a private etcd, SIGKILLed) the reads the cache can
serve go on — with Kubernetes' warning header — while everything else is 503 at once."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api_types import Firewall, registry
from apiserver import ApiOptions, cachedreads
from apiserver.watchcache import WatchCache
from controller.store.embedded import EmbeddedEtcd
from controller.store.encryption import SecretCipher
from controller.store.etcd import EtcdClient
from controller.store.keys import KeyLayout, ObjectKey
from controller.store.objects import Store
from skybroker.apiserver import HttpServer
from tests.integration.apiserver.conftest import ROOT, SEED, TOKEN_FILE, TOKENS, firewall
from tests.waiting import eventually

FIREWALLS = f"{ROOT}/firewalls"
TEAM_A = f"{ROOT}/namespaces/team-a/firewalls"


class World:
    """A private etcd (so it can be killed), a store on a fail-fast client, an API server."""

    def __init__(self, tmp_path: Path) -> None:
        self.etcd = EmbeddedEtcd(data_dir=tmp_path / "etcd")
        self.etcd.start()
        self.client = EtcdClient([self.etcd.endpoint], fail_fast=True)
        self.store = Store(self.client, KeyLayout("/cached"), cipher=SecretCipher([os.urandom(32)]))
        for wire in SEED:
            self.store.create(registry.parse_object(wire))
        tokens = tmp_path / "tokens.csv"
        tokens.write_text(TOKEN_FILE)
        self.server = HttpServer(self.store, tokens, "127.0.0.1:0", ApiOptions())
        self.server.start()
        self.http = httpx.Client(
            base_url=self.server.url,
            headers={"Authorization": f"Bearer {TOKENS['admin']}"},
            timeout=60,
        )

    def close(self) -> None:
        self.http.close()
        self.server.stop()
        self.client.close()
        self.etcd.stop()

    def cache(self, plural: str) -> WatchCache:
        cache = self.server.api.watch_caches.get(registry.by_plural(plural))
        assert cache is not None
        return cache

    def caught_up(self, plural: str, revision: int) -> None:
        """Wait until the plural's cache holds every change up to ``revision``."""
        cache = self.cache(plural)
        eventually(lambda: cache.ready() and cache.last_revision >= revision, timeout=30)

    def create(self, body: dict[str, Any]) -> int:
        namespace = body["metadata"]["namespace"]
        answer = self.http.post(f"{ROOT}/namespaces/{namespace}/firewalls", json=body)
        assert answer.status_code == 201, answer.text
        return int(answer.json()["metadata"]["resourceVersion"])


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path)
    yield made
    made.close()


def _names(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [
        f"{i['metadata'].get('namespace')}/{i['metadata']['name']}" for i in answer.json()["items"]
    ]


def _items(answer: httpx.Response) -> list[Any]:
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


def _pages(http: httpx.Client, path: str, params: dict[str, str]) -> list[str]:
    names: list[str] = []
    token: str | None = None
    while True:
        query = {**params, "limit": "2", **({"continue": token} if token else {})}
        answer = http.get(path, params=query)
        names += _names(answer)
        token = answer.json()["metadata"].get("continue")
        if not token:
            return names


def _seed(world: World) -> int:
    """Five firewalls over two namespaces, two labelled, and a bad direct write; the revision
    of the last change."""
    for name, namespace, labels in [
        ("web", "team-a", {"tier": "front"}),
        ("db", "team-a", {}),
        ("cache", "team-a", {"tier": "front"}),
        ("api", "team-b", {}),
        ("zeta", "team-b", {}),
    ]:
        world.create(firewall(name, namespace, **labels))
    bad = world.store.layout.object_key(ObjectKey("firewalls", "team-a", "broken"))
    world.client.put(bad, b'{"kind": "Firewall", "spec": 7}')
    return world.client.current_revision()


def test_resource_version_zero_answers_what_etcd_answers(world: World) -> None:
    world.http.get(FIREWALLS)  # the first read starts the plural's cache
    last = _seed(world)
    world.caught_up("firewalls", last)
    http = world.http
    for path, params in [
        (FIREWALLS, {}),
        (TEAM_A, {}),
        (FIREWALLS, {"labelSelector": "tier=front"}),
        (f"{ROOT}/namespaces/team-b/firewalls", {"fieldSelector": "metadata.name=zeta"}),
    ]:
        from_cache = http.get(path, params={**params, "resourceVersion": "0"})
        from_etcd = http.get(path, params=params)
        assert _items(from_cache) == _items(from_etcd), (path, params)
        assert "warning" not in from_cache.headers
        assert _pages(http, path, {**params, "resourceVersion": "0"}) == _pages(http, path, params)
    assert "team-a/broken" in _names(http.get(TEAM_A, params={"resourceVersion": "0"}))
    for name in ("web", "broken"):
        cached = http.get(f"{TEAM_A}/{name}", params={"resourceVersion": "0"})
        assert cached.status_code == 200 and cached.json() == http.get(f"{TEAM_A}/{name}").json()
    missing = http.get(f"{TEAM_A}/nope", params={"resourceVersion": "0"})
    assert missing.status_code == 404, missing.text
    # A resourceVersion the cache holds is served; one etcd has not reached yet is 504.
    assert _names(http.get(TEAM_A, params={"resourceVersion": str(last)})) == _names(
        http.get(TEAM_A)
    )
    future = http.get(TEAM_A, params={"resourceVersion": str(last + 1000)})
    assert future.status_code == 504 and future.headers["Retry-After"] == "1", future.text
    malformed = http.get(TEAM_A, params={"resourceVersion": "yesterday"})
    assert malformed.status_code == 400 and "resourceVersion" in malformed.json()["message"]


def test_reads_the_cache_can_serve_go_on_while_etcd_is_down(world: World) -> None:
    http = world.http
    world.http.get(FIREWALLS)
    last = _seed(world)
    world.caught_up("firewalls", last)
    before = _items(http.get(FIREWALLS))
    world.etcd.kill()

    during = http.get(FIREWALLS)
    assert _items(during) == before
    assert "etcd is unreachable" in during.headers["warning"], during.headers
    assert during.headers["warning"].startswith('299 - "')
    assert _items(http.get(FIREWALLS, params={"resourceVersion": "0"})) == before
    assert _names(http.get(TEAM_A, params={"labelSelector": "tier=front"})) == [
        "team-a/cache",
        "team-a/web",
    ]
    web = http.get(f"{TEAM_A}/web")
    assert web.status_code == 200 and web.json()["metadata"]["name"] == "web"
    assert "warning" in web.headers
    assert http.get(f"{TEAM_A}/nope").status_code == 404
    # A watch starts from the cache's copy and stays open.
    with http.stream("GET", TEAM_A, params={"watch": "true"}) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()
        added = [json.loads(next(lines)) for _ in range(3)]
    assert {(e["type"], e["object"]["metadata"]["name"]) for e in added} == {
        ("ADDED", "web"),
        ("ADDED", "db"),
        ("ADDED", "cache"),
    }
    # What the cache cannot serve is 503 at once: a newer revision, writes, other plurals.
    newer = http.get(FIREWALLS, params={"resourceVersion": str(last + 1000)})
    assert newer.status_code == 503, newer.text
    assert http.post(TEAM_A, json=firewall("late")).status_code == 503
    assert http.get(f"{ROOT}/namespaces/team-a/volumes").status_code == 503

    world.etcd.start()
    eventually(lambda: http.post(TEAM_A, json=firewall("late")).status_code == 201, timeout=60)
    after = http.get(TEAM_A)
    assert "warning" not in after.headers and "team-a/late" in _names(after)
    eventually(lambda: "team-a/late" in _names(http.get(TEAM_A, params={"resourceVersion": "0"})))


def test_what_the_cache_decodes_is_not_remembered_as_the_stores_own(world: World) -> None:
    """A watch event carries the key's previous value. Decoded for the cache, it must not be
    remembered by the store as the key's value at the event's revision: the store answers
    ``newer_than`` (an informer's read-your-writes) and bases writes on what it remembers, so
    an informer sharing the API server's store read the old value as the newest. The status
    is written by another store, so only the cache tells this one of it."""
    other = Store(world.client, world.store.layout)  # firewalls are not encrypted
    world.http.get(TEAM_A)  # starts the cache
    world.create(firewall("web"))
    for phase in ("Pending", "Ready"):
        current = other.get(Firewall, "web", "team-a")
        current.status.phase = phase
        written = other.update_status(current)
    revision = int(str(written.metadata.resource_version))
    world.caught_up("firewalls", revision)  # the cache decoded the last status write
    known = world.store.newer_than(ObjectKey("firewalls", "team-a", "web"), revision - 1)
    assert known is None or known.status.phase == "Ready", known


def _a_worker_waits_in_the_watch_cache() -> bool:
    frames = sys._current_frames()
    for thread in threading.enumerate():
        frame = frames.get(thread.ident or 0) if thread.name.startswith("api-worker") else None
        while frame is not None:
            code = frame.f_code
            if code.co_name == "wait_for" and code.co_filename.endswith("watchcache.py"):
                return True
            frame = frame.f_back
    return False


def test_a_read_waiting_for_its_resource_version_holds_up_no_other_request(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Such a read waits on a worker thread, while single-object requests run on the event
    loop: a create sent meanwhile is answered, and its revision ends the read's wait."""
    monkeypatch.setattr(cachedreads, "CATCH_UP_SECONDS", 60.0)
    world.http.get(TEAM_A)  # the first read starts the plural's cache
    world.caught_up("firewalls", world.client.current_revision())
    awaited = world.client.current_revision() + 1  # a private etcd: the create's revision
    answers: dict[str, httpx.Response] = {}

    def read() -> None:
        params = {"resourceVersion": str(awaited)}
        answers["read"] = world.http.get(f"{TEAM_A}/later", params=params)

    reader = threading.Thread(target=read)
    reader.start()
    eventually(_a_worker_waits_in_the_watch_cache, timeout=30)
    assert world.create(firewall("later")) == awaited
    reader.join(60)
    assert answers["read"].status_code == 200, answers["read"].text
    assert answers["read"].json()["metadata"]["resourceVersion"] == str(awaited)
