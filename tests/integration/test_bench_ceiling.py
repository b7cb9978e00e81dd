"""``bench.ceiling``'s skeletons do what their rows claim, on a real etcd: the converge skeleton
writes every object exactly twice, values the real controller could have written, and the
create skeleton creates once (201) and refuses the same key again (409), from a worker thread
and on the event loop alike. The benchmark itself is run by hand (it is not a timed test)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from bench.ceiling import converge_skeleton, skeleton_app
from bench.store_limits import Instance
from controller.store.etcd import EtcdClient


def test_the_converge_skeleton_writes_each_object_twice_with_valid_values(
    etcd_client: EtcdClient, key_prefix: str
) -> None:
    prefix = f"{key_prefix}/converge/"
    seconds, cpu_per_object = converge_skeleton(etcd_client, prefix, 40, workers=4)
    kvs, _ = etcd_client.range_prefix(prefix.encode())
    assert len(kvs) == 40
    assert {int(kv.version) for kv in kvs} == {3}  # the seed, the intent, the result
    assert {Instance.model_validate_json(kv.value).status.phase for kv in kvs} == {"Running"}
    assert seconds > 0 and cpu_per_object > 0


async def _post(app: Any, path: str, body: bytes) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "http", "method": "POST", "path": path}, receive, send)
    return sent[0]["status"], sent[1]["body"]


@pytest.mark.parametrize("on_loop", [False, True])
def test_the_create_skeleton_creates_once(
    etcd_client: EtcdClient, key_prefix: str, on_loop: bool
) -> None:
    app = skeleton_app(etcd_client, key_prefix, on_loop=on_loop)
    body = json.dumps({"x": 1}).encode()

    async def twice() -> list[tuple[int, bytes]]:
        return [await _post(app, "/a", body), await _post(app, "/a", body)]

    assert asyncio.run(twice()) == [(201, body), (409, body)]
    assert etcd_client.range(f"{key_prefix}/a".encode()).kvs[0].value == body
