"""One reconcile pass (``controller.passes.Pass``) against a running manager's store and lease:
one status save on leaving, only when something changed; explicit saves; finalizers."""

from __future__ import annotations

import pytest

from api_types import Namespace, Volume
from controller.errors import ConflictError, TerminalError
from controller.passes import Pass
from tests.integration.reconcilers.harness import Harness

FINALIZER = "skybroker.io/test"


def namespace(harness: Harness, name: str = "acme") -> Namespace:
    created = harness.apply(
        {"apiVersion": "skybroker.io/v1alpha1", "kind": "Namespace", "metadata": {"name": name}}
    )[0]
    assert isinstance(created, Namespace)
    return created


def stored(harness: Harness, name: str = "acme") -> Namespace:
    found = harness.get(Namespace, name)
    assert found is not None
    return found


def test_leaving_a_pass_saves_once_and_only_what_changed(harness: Harness) -> None:
    harness.start()
    read = namespace(harness)
    with Pass(harness.manager, read) as pass_:
        pass_.condition("Probe", True, "Looked")
    assert pass_.obj is not read  # the stored copy
    first = stored(harness)
    condition = first.status.condition("Probe")
    assert condition is not None and condition.reason == "Looked"

    with Pass(harness.manager, first) as pass_:
        pass_.condition("Probe", True, "Looked")  # re-asserted: no change, no write
    assert stored(harness).metadata.resource_version == first.metadata.resource_version


def test_an_explicit_save_is_durable_and_an_error_still_saves_on_leaving(
    harness: Harness,
) -> None:
    harness.start()
    with pytest.raises(RuntimeError), Pass(harness.manager, namespace(harness)) as pass_:
        pass_.phase = "Active"
        pass_.save()
        assert stored(harness).status.phase == "Active"
        pass_.condition("Probe", False, "Failing")
        raise RuntimeError("the cloud call after the save")
    condition = stored(harness).status.condition("Probe")
    assert condition is not None and condition.reason == "Failing"


def test_a_lost_race_is_not_saved_again(harness: Harness) -> None:
    harness.start()
    read = namespace(harness)
    with pytest.raises(ConflictError), Pass(harness.manager, read) as pass_:
        pass_.condition("Probe", True, "Mine")
        raise ConflictError("acme changed meanwhile")
    assert stored(harness).status.condition("Probe") is None


def test_a_terminal_failure_is_phase_failed_with_its_reason(harness: Harness) -> None:
    harness.start()
    namespace(harness)
    (volume,) = harness.apply(
        {
            "apiVersion": "skybroker.io/v1alpha1",
            "kind": "Volume",
            "metadata": {"name": "data", "namespace": "acme"},
            "spec": {"sizeGiB": 1, "pool": "general"},
        }
    )
    assert isinstance(volume, Volume)
    pass_ = Pass(harness.manager, volume)
    with pass_, pytest.raises(TerminalError), pass_.failed_on_terminal():
        raise TerminalError("the cloud refuses", reason="VolumeLimitExceeded")
    after = harness.get(Volume, "data", "acme")
    assert after is not None
    ready = after.status.condition("Ready")
    assert after.status.phase == "Failed"
    assert ready is not None and (ready.status, ready.reason) == ("False", "VolumeLimitExceeded")


def test_finalizers_are_fenced_writes_and_the_last_one_releases_the_object(
    harness: Harness,
) -> None:
    harness.start()
    with Pass(harness.manager, namespace(harness)) as pass_:
        pass_.add_finalizer(FINALIZER)
        assert stored(harness).metadata.finalizers == [FINALIZER]
    harness.store.delete(Namespace, "acme")
    with Pass(harness.manager, stored(harness)) as pass_:
        pass_.phase = "Terminating"  # not saved: the object goes with its last finalizer
        pass_.remove_finalizer(FINALIZER)
    assert harness.get(Namespace, "acme") is None
