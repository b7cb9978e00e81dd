"""The rendezvous endpoints under load and abuse (DESIGN §11): waiting long-polls hold no
thread, the per-address rate limit, secrets kept out of the logs, metrics, and shutdown
answering the polls that wait."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from structlog.testing import capture_logs

from api_types.bootconfigs import BootConfig
from apiserver import ApiOptions
from apiserver.rendezvous import RendezvousRoutes
from controller.cache import Informer
from controller.rendezvous import RecordCache
from controller.store.etcd import EtcdClient
from controller.store.keys import KeyLayout
from controller.store.objects import Store
from skybroker.apiserver import HttpServer
from tests.integration.apiserver.rendezvous_world import (
    CLAIMS,
    api_server,
    bearer,
    boot_config,
    config_path,
    enroll,
    register,
    set_revision,
)
from tests.waiting import eventually

#: Enough for the load test's polls from one address.
UNLIMITED = ApiOptions(rendezvous_rate=100_000, rendezvous_burst=100_000)
POLLS = 200


def test_waiting_long_polls_hold_no_thread(api_store: Store, tmp_path: Path) -> None:
    boot_config(api_store, "web")
    set_revision(api_store, "web", 1)
    uid, secret = register(api_store, "web")
    headers = bearer(secret)
    with api_server(api_store, tmp_path, UNLIMITED) as server:

        async def scenario() -> tuple[int, int, list[httpx.Response]]:
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
            # As many fetches that answer at once: every pool the server grows under that
            # load is grown before counting. On connections of their own, closed afterwards:
            # one the server closes as idle while a poll reuses it would fail the poll.
            async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as http:
                warm = [http.get(config_path(uid), headers=headers) for _ in range(POLLS)]
                assert {a.status_code for a in await asyncio.gather(*warm)} == {200}
            async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as http:
                before = threading.active_count()
                url = f"{config_path(uid)}?afterRevision=1&timeoutSeconds=120"
                polls = [
                    asyncio.ensure_future(http.get(url, headers=headers)) for _ in range(POLLS)
                ]
                deadline = time.monotonic() + 60
                while server.api.rendezvous.waiting() < POLLS:
                    assert time.monotonic() < deadline, server.api.rendezvous.waiting()
                    assert not any(poll.done() for poll in polls)
                    await asyncio.sleep(0.02)
                during = threading.active_count()
                set_revision(api_store, "web", 2)
                return before, during, list(await asyncio.gather(*polls))

        before, during, answers = asyncio.run(scenario())
    # A thread per waiting poll would add 200; the executors' pools are already grown.
    print(f"threads: {before} before the polls, {during} while {POLLS} wait")
    assert during <= before + 2, (before, during)
    assert [a.status_code for a in answers] == [200] * POLLS
    assert {a.json()["revision"] for a in answers} == {2}


def test_rate_limit_per_client_address(api_store: Store, tmp_path: Path) -> None:
    boot_config(api_store, "web")
    uid, secret = register(api_store, "web")
    options = ApiOptions(rendezvous_rate=0.5, rendezvous_burst=3)
    with api_server(api_store, tmp_path, options) as server:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            answers = [http.get(config_path(uid), headers=bearer(secret)) for _ in range(3)]
            assert [a.status_code for a in answers] == [200] * 3
            limited = http.get(config_path(uid), headers=bearer(secret))
            assert limited.status_code == 429
            assert limited.json()["kind"] == "Status"
            assert limited.json()["reason"] == "TooManyRequests"
            assert int(limited.headers["Retry-After"]) in (1, 2)
            # Every endpoint counts, whatever it would have answered.
            assert http.post(CLAIMS).status_code == 429
            assert http.get("/rendezvous/nowhere").status_code == 429
            # The REST API is not limited by it.
            assert http.get("/healthz").status_code == 200
            # A forwarding header does not make another address, even from 127.0.0.1.
            spoofed = {**bearer(secret), "X-Forwarded-For": "203.0.113.9"}
            assert http.get(config_path(uid), headers=spoofed).status_code == 429
        # Another address has a bucket of its own.
        transport = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(base_url=server.url, timeout=30, transport=transport) as other:
            assert other.get(config_path(uid), headers=bearer(secret)).status_code == 200


def test_secrets_never_reach_the_log(api_store: Store, server: HttpServer) -> None:
    boot_config(api_store, "web")
    boot_config(api_store, "pool", dynamic=True, slots=1)
    uid, secret = register(api_store, "web")
    enrollment = enroll(api_store, "pool")
    with capture_logs() as logs, httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get(config_path(uid), headers=bearer(secret)).status_code == 200
        report = {"status": "Configured", "message": "ok"}
        url = f"{config_path(uid)}/report"
        assert http.put(url, json=report, headers=bearer(secret)).status_code == 204
        wrong = http.get(config_path(uid), headers=bearer(secret[::-1]))
        assert wrong.status_code == 401
        claimed = http.post(CLAIMS, headers=bearer(enrollment))
        assert claimed.status_code == 201
        assert http.post(CLAIMS, headers=bearer(enrollment)).status_code == 409
        assert http.post(CLAIMS, headers=bearer(secret)).status_code == 401
    text = repr(logs)
    for value in (secret, secret[::-1], enrollment, claimed.json()["secret"]):
        assert value not in text
    assert "Bearer" not in text and "authorization" not in text.lower()
    refused = [e for e in logs if e["event"] == "rendezvous request refused"]
    assert any(e.get("uuid") == uid and e["code"] == 401 for e in refused), logs
    [claim] = [e for e in logs if e["event"] == "slot claimed"]
    assert claim["uuid"] == claimed.json()["uuid"] and claim["slot"] == 0


def test_metrics_count_requests_by_endpoint_and_code(api_store: Store, server: HttpServer) -> None:
    boot_config(api_store, "web")
    uid, secret = register(api_store, "web")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get(config_path(uid), headers=bearer(secret)).status_code == 200
        assert http.get(config_path(uid)).status_code == 401
        assert http.get("/rendezvous/x").status_code == 404
        metrics = http.get("/metrics").text
    for line in (
        'apiserver_rendezvous_requests_total{code="200",endpoint="config"}',
        'apiserver_rendezvous_requests_total{code="401",endpoint="config"}',
        'apiserver_rendezvous_requests_total{code="404",endpoint="other"}',
        "apiserver_rendezvous_waiting_polls 0.0",
    ):
        assert line in metrics, line


def test_shutdown_answers_the_waiting_polls(api_store: Store, tmp_path: Path) -> None:
    boot_config(api_store, "web")
    set_revision(api_store, "web", 5)
    uid, secret = register(api_store, "web")
    url = f"{config_path(uid)}?afterRevision=5&timeoutSeconds=300"
    with (
        ThreadPoolExecutor(1) as pool,
        api_server(api_store, tmp_path, ApiOptions()) as server,
        httpx.Client(base_url=server.url, timeout=60) as http,
    ):
        polling = pool.submit(http.get, url, headers=bearer(secret))
        eventually(lambda: server.api.rendezvous.waiting() == 1, what="the poll to wait")
        server.stop()
        # Answered as at its timeout (the agent polls again elsewhere), not cut off.
        answer = polling.result(timeout=30)
    assert answer.status_code == 200
    assert answer.json()["revision"] == 5


def test_an_unreachable_store_is_503(layout: KeyLayout) -> None:
    """Nothing listens on port 1: every read fails as etcd being down does."""
    client = EtcdClient(["127.0.0.1:1"], timeout=1.0, retry_for=0.3, fail_fast=True)
    store = Store(client, layout)
    routes = RendezvousRoutes(
        store,
        Informer(store, BootConfig),
        RecordCache(store),
        max_body_bytes=1024,
        rate=100.0,
        burst=100,
    )
    uid = "0b6f7a4e-1d2c-4e5f-8a9b-0c1d2e3f4a5b"

    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=routes)
        async with httpx.AsyncClient(transport=transport, base_url="http://rdv") as http:
            return [
                await http.get(config_path(uid), headers=bearer("x" * 43)),
                await http.put(f"{config_path(uid)}/report", json={"status": "Configured"},
                               headers=bearer("x" * 43)),
                await http.post(CLAIMS, headers=bearer("x" * 43)),
            ]  # fmt: skip

    try:
        answers = asyncio.run(scenario())
    finally:
        client.close()
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.json()["reason"] == "ServiceUnavailable"
        assert answer.headers["Retry-After"] == "1"


def test_a_poll_whose_client_leaves_stops_waiting(api_store: Store, server: HttpServer) -> None:
    boot_config(api_store, "web")
    uid, secret = register(api_store, "web")
    request = (
        f"GET {config_path(uid)}?afterRevision=0&timeoutSeconds=300 HTTP/1.1\r\n"
        f"Host: {server.address[0]}:{server.address[1]}\r\n"
        f"Authorization: Bearer {secret}\r\n\r\n"
    ).encode()
    with socket.create_connection(server.address, timeout=30) as sock:
        sock.sendall(request)
        eventually(lambda: server.api.rendezvous.waiting() == 1, what="the poll to wait")
    eventually(lambda: server.api.rendezvous.waiting() == 0, what="the poll to end")
