"""``skyctl sync gitsource/NAME [--wait]`` over both backends: the request is the requested-at
annotation; ``--wait`` ends when the reconciler (played here by a test thread writing status
through the store) echoes it into ``status.lastHandledRequest``."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from api_types import registry
from api_types.gitops import REQUESTED_AT_ANNOTATION, GitSource
from controller.errors import ConflictError
from controller.store.objects import Store
from tests.integration.cli.helpers import Skyctl
from tests.waiting import eventually


@pytest.fixture
def skyctl(with_gitsource: Skyctl) -> Skyctl:
    return with_gitsource


def _infra(store: Store) -> GitSource:
    return store.get(GitSource, "infra", "acme")


def _requested(store: Store) -> str | None:
    return _infra(store).metadata.annotations.get(REQUESTED_AT_ANNOTATION)


def _handle(store: Store, request: str, ready: str, message: str) -> None:
    """What the reconciler does once it has synced: echo the request, say whether Ready."""
    wire = _infra(store).to_wire()
    wire["status"] = {
        "lastHandledRequest": request,
        "conditions": [{"type": "Ready", "status": ready, "reason": "Synced", "message": message}],
    }
    store.update_status(registry.parse_object(wire), actor="gitsource-reconciler")


@pytest.fixture
def reconciler(store: Store) -> Iterator[dict[str, str]]:
    """A thread that handles the first sync request it sees, as ``outcome`` says (a test fills
    it in first: ready True/False, message)."""
    outcome: dict[str, str] = {}
    handled = threading.Event()

    def run() -> None:
        while not handled.is_set():
            eventually(lambda: _requested(store) is not None or handled.is_set())
            request = _requested(store)
            if request is None:
                return
            try:
                _handle(store, request, outcome["ready"], outcome["message"])
            except ConflictError:  # skyctl's write and this read crossed: read again
                continue
            handled.set()

    thread = threading.Thread(target=run, name="play-reconciler", daemon=True)
    thread.start()
    yield outcome
    handled.set()
    thread.join(35)


def test_sync_writes_the_request_annotation(skyctl: Skyctl, store: Store) -> None:
    assert _requested(store) is None
    done = skyctl("sync", "gitsource/infra", "-n", "acme")
    assert (done.code, done.out) == (0, "gitsource/infra sync requested\n"), done.err
    first = _requested(store)
    assert first is not None
    assert _infra(store).metadata.generation == 1  # metadata only: nothing to re-apply
    again = skyctl("sync", "gs/infra", "-n", "acme")  # the short name; a new request each time
    assert (again.code, again.out) == (0, "gitsource/infra sync requested\n"), again.err
    assert _requested(store) not in (None, first)


@pytest.mark.parametrize("ready, code", [("True", 0), ("False", 1)])
def test_wait_returns_when_the_request_is_handled(
    skyctl: Skyctl, store: Store, reconciler: dict[str, str], ready: str, code: int
) -> None:
    reconciler.update(ready=ready, message="applied main@sha1:abc")
    done = skyctl("sync", "gs/infra", "-n", "acme", "--wait", "--timeout", "60s")
    assert done.code == code, done.err
    assert done.out == (
        "gitsource/infra sync requested\n"
        f"gitsource/infra Ready={ready}: Synced: applied main@sha1:abc\n"
    )
    assert _infra(store).status.last_handled_request == _requested(store)


def test_wait_times_out_cleanly(skyctl: Skyctl, store: Store) -> None:
    done = skyctl("sync", "gitsource/infra", "-n", "acme", "--wait", "--timeout", "0.3s")
    assert done.code == 1
    assert done.out == "gitsource/infra sync requested\n"
    assert done.err.startswith("error: timed out after 0.3s waiting for gitsource/infra to sync")
    assert _requested(store) is not None  # the request stays: the reconciler will handle it


def test_only_a_gitsource_can_be_synced(skyctl: Skyctl, store: Store) -> None:
    refused = skyctl("sync", "instance/web-1", "-n", "acme")
    assert refused.code == 2
    assert "only a GitSource can be synced" in refused.err and "Instance" in refused.err
    assert skyctl("sync", "gitsource", "-n", "acme").code == 2  # no name
    missing = skyctl("sync", "gitsource/absent", "-n", "acme")
    assert missing.code == 1 and "not found" in missing.err
    assert _requested(store) is None
