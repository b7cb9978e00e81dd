"""``skyctl describe instance`` shows the boot agent's record (``status.agent``, DESIGN §11)."""

from __future__ import annotations

from typing import Any, cast

from api_types.registry import KindInfo, by_kind
from skyctl.backend import Backend, ListResult
from skyctl.describe import describe

Wire = dict[str, Any]


class _OneObject:
    """A backend holding one object, no events and no history."""

    description = "test"

    def __init__(self, obj: Wire) -> None:
        self._obj = obj

    def get(self, info: KindInfo, namespace: str | None, name: str) -> Wire:
        return self._obj

    def list(self, info: KindInfo, namespace: str | None, selector: str | None) -> ListResult:
        return ListResult([], "1")

    def history(self, info: KindInfo, namespace: str | None, name: str) -> list[Wire]:
        return []


def _instance(status: Wire) -> Wire:
    return {
        "apiVersion": "skybroker.io/v1alpha1",
        "kind": "Instance",
        "metadata": {"name": "web-1", "namespace": "acme", "uid": "u"},
        "spec": {"pool": "general", "hardware": {"cpu": 1}, "image": "ubuntu-22.04"},
        "status": status,
    }


def test_describe_instance_shows_the_agent_section() -> None:
    obj = _instance(
        {
            "phase": "Running",
            "agent": {
                "state": "Configured",
                "address": "10.0.0.5",
                "parameters": {"role": "web", "tier": "front"},
                "configRevision": 3,
                "lastReport": "2026-12-03T10:00:00+00:00",
                "lastTransitionTime": "2026-12-03T10:00:01+00:00",
            },
        }
    )
    text = describe(cast(Backend, _OneObject(obj)), by_kind("Instance"), "acme", "web-1")
    section = text.split("Agent:\n", 1)[1].split("Events:", 1)[0]
    lines = {
        line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
        for line in section.splitlines()
    }
    assert lines["State"] == "Configured"
    assert lines["Address"] == "10.0.0.5"
    assert lines["Parameters"] == "role=web,tier=front"
    assert lines["Config revision"] == "3"
    assert lines["Last report"].startswith("2026-12-03T10:00:00+00:00 (")
    assert lines["Remediated"] == "<none>"


def test_describe_instance_without_an_agent_has_no_agent_section() -> None:
    text = describe(
        cast(Backend, _OneObject(_instance({"phase": "Running"}))),
        by_kind("Instance"),
        "acme",
        "web-1",
    )
    assert "Agent:" not in text
