"""Watch: ordered NDJSON events, resume after a dropped connection, bookmarks, 410."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx

from controller.store.objects import Store
from tests.integration.apiserver.conftest import ROOT, firewall

FW = f"{ROOT}/namespaces/team-a/firewalls"


def _events(http: httpx.Client, params: dict[str, str]) -> Iterator[dict[str, Any]]:
    with http.stream("GET", FW, params={"watch": "true", **params}) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.strip():
                yield json.loads(line)


def _revision(admin: httpx.Client) -> str:
    return str(admin.get(FW).json()["metadata"]["resourceVersion"])


def test_watch_from_revision_streams_every_change(admin: httpx.Client) -> None:
    start = _revision(admin)
    admin.post(FW, json=firewall("a"))
    admin.patch(
        f"{FW}/a",
        json={"metadata": {"labels": {"x": "1"}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    admin.delete(f"{FW}/a")
    seen = []
    for event in _events(admin, {"resourceVersion": start}):
        if event["type"] != "BOOKMARK":
            seen.append((event["type"], event["object"]["metadata"]["name"]))
        if len(seen) == 3:
            break
    assert seen == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]


def test_watch_without_revision_lists_first_and_sends_bookmarks(admin: httpx.Client) -> None:
    admin.post(FW, json=firewall("existing"))
    events = _events(admin, {})
    first = next(events)
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "existing")
    bookmark = next(events)  # quiet for the bookmark interval (0.3 s in tests)
    assert bookmark["type"] == "BOOKMARK"
    assert int(bookmark["object"]["metadata"]["resourceVersion"]) >= int(
        first["object"]["metadata"]["resourceVersion"]
    )
    events.close()


def test_resume_after_dropped_connection_misses_nothing(admin: httpx.Client) -> None:
    writes = 40
    start = _revision(admin)
    stop = threading.Event()

    def writer() -> None:
        for i in range(writes):
            assert admin.post(FW, json=firewall(f"fw-{i}")).status_code == 201
            time.sleep(0.005)
        stop.set()

    thread = threading.Thread(target=writer)
    thread.start()
    names: list[str] = []
    last = start
    while len(names) < writes:
        # read a few events, then drop the connection and resume from the last revision seen
        for count, event in enumerate(_events(admin, {"resourceVersion": last})):
            last = event["object"]["metadata"]["resourceVersion"]
            if event["type"] == "ADDED":
                names.append(event["object"]["metadata"]["name"])
            if count == 4 or len(names) == writes:
                break
    thread.join()
    assert names == [f"fw-{i}" for i in range(writes)], "each event exactly once, in order"


def test_label_selector_watch_sees_objects_leave_and_enter(admin: httpx.Client) -> None:
    start = _revision(admin)
    admin.post(FW, json=firewall("a", app="web"))
    for labels in ({"app": "db"}, {"app": "web"}):
        admin.patch(
            f"{FW}/a",
            json={"metadata": {"labels": labels}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
    seen = []
    for event in _events(admin, {"resourceVersion": start, "labelSelector": "app=web"}):
        if event["type"] != "BOOKMARK":
            seen.append(event["type"])
        if len(seen) == 3:
            break
    assert seen == ["ADDED", "DELETED", "ADDED"]


def test_compacted_revision_is_gone(admin: httpx.Client, api_store: Store) -> None:
    old = _revision(admin)
    admin.post(FW, json=firewall("a"))
    admin.post(FW, json=firewall("b"))
    page = admin.get(FW, params={"limit": 1}).json()
    admin.post(FW, json=firewall("c"))  # the page's revision is now history
    api_store.client.compact(api_store.client.current_revision())
    answer = admin.get(FW, params={"watch": "true", "resourceVersion": old})
    assert answer.status_code == 410 and answer.json()["reason"] == "Gone"
    paged = admin.get(FW, params={"limit": 1, "continue": page["metadata"]["continue"]})
    assert paged.status_code == 410
    future = admin.get(FW, params={"watch": "true", "resourceVersion": "999999999"})
    assert future.status_code == 400
