"""The drift watch drops the echoes of a sync's own writes and nothing else (``OwnWrites``)."""

from __future__ import annotations

from api_types import Instance, registry
from controller.apply import CONFIGURED, CREATED, UNCHANGED, Change, Plan, Target
from reconcilers.gitsource.reconciler import OwnWrites

INFO = registry.by_kind("Instance")


def _instance(name: str, resource_version: str) -> Instance:
    obj = registry.parse_object(
        {
            "kind": "Instance",
            "metadata": {"name": name, "namespace": "acme", "resourceVersion": resource_version},
            "spec": {"pool": "general", "hardware": {"cpu": 1}, "image": "ubuntu-22.04"},
        }
    )
    assert isinstance(obj, Instance)
    return obj


def _change(name: str, action: str, base: str | None) -> Change:
    target = Target(INFO, "acme", name, {}, {})
    live = None if base is None else {"metadata": {"resourceVersion": base}}
    return Change(target, action, live, {})


def test_only_the_echo_of_each_planned_write_is_dropped_once() -> None:
    own = OwnWrites()
    own.expect(
        Plan(
            (
                _change("created", CREATED, None),
                _change("updated", CONFIGURED, "7"),
                _change("same", UNCHANGED, "5"),
            )
        )
    )
    assert own.create(_instance("created", "10")) is False  # the sync's create
    assert own.create(_instance("created", "12")) is True  # deleted and created by someone
    assert own.update(_instance("updated", "7"), _instance("updated", "11")) is False
    assert own.update(_instance("updated", "11"), _instance("updated", "13")) is True  # drift
    assert own.update(_instance("same", "5"), _instance("same", "14")) is True  # not written
    assert own.update(_instance("other", "7"), _instance("other", "15")) is True
    assert own.delete(_instance("updated", "13")) is True
