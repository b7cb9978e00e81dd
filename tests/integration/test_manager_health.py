"""The manager's health port over real HTTP: served on ``health_listen`` while ``run`` runs."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from controller.asgi import ListenError
from controller.manager import Manager, ManagerOptions
from controller.store.objects import Store
from tests.waiting import eventually


def _refused(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.fixture
def manager(store: Store) -> Iterator[Manager]:
    manager = Manager(store, ManagerOptions(health_listen="127.0.0.1:0"))
    ready = threading.Event()
    thread = threading.Thread(target=manager.run, kwargs={"ready": ready.set}, name="manager")
    thread.start()
    eventually(ready.is_set, what="the manager is running")
    yield manager
    manager.stop()
    thread.join(60)


def test_health_port_answers_and_closes_with_the_manager(manager: Manager) -> None:
    assert manager.health_address is not None
    host, port = manager.health_address
    with httpx.Client(base_url=f"http://{host}:{port}") as http:
        assert (http.get("/healthz").status_code, http.get("/healthz").text) == (200, "ok")
        eventually(lambda: http.get("/readyz").text == "ok", what="/readyz says ok")
        assert http.get("/readyz").status_code == 200
        assert "# TYPE" in http.get("/metrics").text
        assert (http.get("/nope").status_code, http.get("/nope").text) == (404, "not found")
        assert http.post("/healthz").status_code == 501
    manager.stop()
    eventually(lambda: _refused((host, port)), what="the health port is closed")


def test_a_taken_port_fails_run_at_once(manager: Manager, store: Store) -> None:
    assert manager.health_address is not None
    host, port = manager.health_address
    second = Manager(store, ManagerOptions(health_listen=f"{host}:{port}"))
    with pytest.raises(ListenError) as raised:
        second.run()
    assert raised.value.address == f"{host}:{port}"
