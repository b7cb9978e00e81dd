"""skyctl given several API servers (DESIGN §13): an unreachable one, or an idempotent request
answered 503, moves it to the next; a create that may have reached a server is not sent twice."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from api_types import registry
from controller.store.embedded import free_port
from controller.store.objects import Store
from skybroker.apiserver import HttpServer
from skyctl.backend import ApiError
from skyctl.config import ConfigError, server_text
from skyctl.http import HttpBackend, parse_servers
from tests.integration.cli.helpers import Skyctl, running_api_server


class _Unavailable(BaseHTTPRequestHandler):
    """A server that answers every request 503 (its store unreachable) and counts them."""

    calls: list[str] = []

    def _answer(self) -> None:
        self.calls.append(self.command)
        body = b'{"kind":"Status","code":503,"reason":"ServiceUnavailable","message":"etcd"}'
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def unavailable() -> Iterator[tuple[str, list[str]]]:
    calls: list[str] = []
    handler = type("Handler", (_Unavailable,), {"calls": calls})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", calls
    server.shutdown()
    server.server_close()


@pytest.fixture
def api(store: Store, tmp_path: Path) -> Iterator[HttpServer]:
    with running_api_server(store, tmp_path) as server:
        yield server


NAMESPACE = {"apiVersion": "skybroker.io/v1alpha1", "kind": "Namespace"}


def test_servers_parse_from_a_list_or_commas() -> None:
    assert parse_servers("http://a:1/, http://b:2") == ["http://a:1", "http://b:2"]
    assert parse_servers(["http://a:1"]) == ["http://a:1"]
    with pytest.raises(ValueError, match="server"):
        parse_servers(" , ")
    assert server_text(["http://a:1", "http://b:2"], "ha") == "http://a:1,http://b:2"
    with pytest.raises(ConfigError, match="context 'ha': server must be"):
        server_text([1], "ha")


def test_an_unreachable_server_is_skipped_for_every_method(api: HttpServer) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    backend = HttpBackend([dead, api.url], "admin-token")
    try:
        info = registry.by_kind("Namespace")
        created = backend.create({**NAMESPACE, "metadata": {"name": "n1"}}, dry_run=False)
        assert created["metadata"]["name"] == "n1"
        assert backend.get(info, None, "n1")["metadata"]["uid"] == created["metadata"]["uid"]
    finally:
        backend.close()


def test_503_retries_reads_elsewhere_but_not_creates(
    api: HttpServer, unavailable: tuple[str, list[str]]
) -> None:
    url, calls = unavailable
    backend = HttpBackend(f"{url},{api.url}", "admin-token")
    info = registry.by_kind("Namespace")
    try:
        assert backend.list(info, None, None).items  # 503 there, answered here
        assert calls == ["GET"]
        backend._current = 0  # back to the unavailable one first
        with pytest.raises(ApiError) as raised:
            backend.create({**NAMESPACE, "metadata": {"name": "n2"}}, dry_run=False)
        assert raised.value.code == 503
        assert calls == ["GET", "POST"]  # sent once, not repeated on the other server
        # ... and the next request goes to the other server.
        backend.create({**NAMESPACE, "metadata": {"name": "n2"}}, dry_run=False)
        assert calls == ["GET", "POST"]
    finally:
        backend.close()


def test_a_context_lists_several_servers(
    api: HttpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    dead = f"http://127.0.0.1:{free_port()}"
    context = {"name": "ha", "server": [dead, api.url], "token": "admin-token"}
    config.write_text(yaml.safe_dump({"current-context": "ha", "contexts": [context]}))
    monkeypatch.setenv("SKYCONFIG", str(config))
    skyctl = Skyctl(())
    listed = skyctl("get", "namespaces")
    assert listed.code == 0, listed.err
    assert "acme" in listed.out
    contexts = skyctl("config", "get-contexts")
    assert f"{dead},{api.url}" in contexts.out


def test_a_watch_that_fails_resumes_on_the_next_server(api: HttpServer) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    backend = HttpBackend([dead, api.url], "admin-token")
    info = registry.by_kind("Namespace")
    try:
        with pytest.raises(ApiError) as raised:
            next(iter(backend.watch(info, None, None, "0")))
        assert raised.value.retryable
        stream = iter(backend.watch(info, None, None, "0"))  # as skyctl.follow resumes
        assert next(stream).object["metadata"]["name"]
        stream.close()  # type: ignore[attr-defined]
    finally:
        backend.close()
