"""Fixtures of the API server tests: a real uvicorn server on a free port over real etcd.

Users (token file): ``admin`` (system:masters), ``alice`` (admin in team-a), ``bob`` (edit in
team-b), ``viewer`` (view in team-a), ``nobody`` (authenticated, no binding). Every test gets
its own key prefix, so servers and data never meet.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api_types import registry
from apiserver import ApiOptions
from controller.store.encryption import SecretCipher
from controller.store.etcd import EtcdClient
from controller.store.keys import KeyLayout
from controller.store.objects import Store
from skybroker.apiserver import HttpServer

ROOT = "/apis/skybroker.io/v1alpha1"
TOKENS = {
    "admin": "admin-token",
    "alice": "alice-token",
    "bob": "bob-token",
    "viewer": "viewer-token",
    "nobody": "nobody-token",
}
TOKEN_FILE = """# test users
admin-token,admin,u-admin,"system:masters"
alice-token,alice,u-alice,"tenants"
bob-token,bob,u-bob
viewer-token,viewer,u-viewer
nobody-token,nobody,u-nobody
"""


def _binding(namespace: str, user: str, role: str) -> dict[str, Any]:
    return {
        "kind": "RoleBinding",
        "metadata": {"name": f"{user}-{role}", "namespace": namespace},
        "roleRef": {"kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "User", "name": user}],
    }


SEED: list[dict[str, Any]] = [
    {"kind": "Namespace", "metadata": {"name": "team-a"}},
    {"kind": "Namespace", "metadata": {"name": "team-b"}},
    _binding("team-a", "alice", "admin"),
    _binding("team-b", "bob", "edit"),
    _binding("team-a", "viewer", "view"),
]


@pytest.fixture
def cipher() -> SecretCipher:
    return SecretCipher([os.urandom(32)])


@pytest.fixture
def api_store(etcd_client: EtcdClient, layout: KeyLayout, cipher: SecretCipher) -> Store:
    store = Store(etcd_client, layout, cipher=cipher)
    for wire in SEED:
        store.create(registry.parse_object(wire))
    return store


@pytest.fixture
def server(api_store: Store, tmp_path: Path) -> Iterator[HttpServer]:
    token_file = tmp_path / "tokens.csv"
    token_file.write_text(TOKEN_FILE)
    http = HttpServer(api_store, token_file, "127.0.0.1:0", ApiOptions(bookmark_interval=0.3))
    http.start()
    yield http
    http.stop()


@pytest.fixture
def client(server: HttpServer) -> Callable[[str | None], httpx.Client]:
    """``client("alice")``: an httpx client with that user's token (None = no token)."""
    made: list[httpx.Client] = []

    def make(user: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {TOKENS[user]}"} if user else {}
        http = httpx.Client(base_url=server.url, headers=headers, timeout=30)
        made.append(http)
        return http

    yield make  # type: ignore[misc]
    for http in made:
        http.close()


@pytest.fixture
def admin(client: Callable[[str | None], httpx.Client]) -> httpx.Client:
    return client("admin")


def firewall(name: str, namespace: str = "team-a", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "skybroker.io/v1alpha1",
        "kind": "Firewall",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"rules": [{"direction": "Ingress", "protocol": "tcp", "ports": "80",
                            "cidrs": ["0.0.0.0/0"]}]},
    }  # fmt: skip
