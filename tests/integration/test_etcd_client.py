"""EtcdClient against a real etcd that goes away: riding over an outage, or failing fast."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from controller.errors import StoreUnavailableError
from controller.store.embedded import EmbeddedEtcd
from controller.store.etcd import EtcdClient
from tests.waiting import eventually


def failed_at_once(client: EtcdClient) -> bool:
    with pytest.raises(StoreUnavailableError):
        client.put(b"/ff/k", b"down")
    return True


@pytest.mark.slow
def test_a_fail_fast_client_answers_at_once_while_etcd_is_down_and_sees_it_return(
    tmp_path: Path,
) -> None:
    server = EmbeddedEtcd(data_dir=tmp_path / "etcd")
    server.start()
    retry_for = 3.0
    client = EtcdClient([server.endpoint], retry_for=retry_for, timeout=2.0, fail_fast=True)
    try:
        client.put(b"/ff/k", b"up")
        assert not client.known_down
        server.kill()
        failed_at_once(client)  # the first call rides the outage for retry_for, then gives up
        assert client.known_down
        # Now every call fails at once: 50 calls that each rode the outage would take 150 s.
        started = time.monotonic()
        for _ in range(50):
            failed_at_once(client)
        assert time.monotonic() - started < retry_for
        server.start()
        eventually(lambda: _reachable(client))  # a probe got through: the outage is over
        assert not client.known_down
        client.put(b"/ff/k", b"back")
        assert client.range(b"/ff/k").kvs[0].value == b"back"
    finally:
        client.close()
        server.stop()


def _reachable(client: EtcdClient) -> bool:
    try:
        client.range(b"/ff/k")
    except StoreUnavailableError:
        return False
    return True
