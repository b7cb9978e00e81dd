"""The EC2 face of a Volume: every row of ``apiserver.ec2.volumeview``'s state table."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from api_types import Volume
from apiserver.ec2.volumeview import attachment_of, timestamp, volume_state


def _volume(
    phase: str | None,
    attach_to: str | None = None,
    attached_to: str | None = None,
    deleting: bool = False,
) -> Volume:
    metadata: dict[str, Any] = {"name": "data-1", "namespace": "acme"}
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-03T07:00:00Z"
    spec: dict[str, Any] = {"pool": "general", "sizeGiB": 10}
    if attach_to:
        spec["attachTo"] = {"instance": attach_to, "device": "/dev/sdf"}
    status: dict[str, Any] = {"phase": phase}
    if attached_to:
        status["attachedTo"] = {"instance": attached_to, "device": "/dev/sdf"}
    return Volume.model_validate(
        {"kind": "Volume", "metadata": metadata, "spec": spec, "status": status}
    )


@pytest.mark.parametrize(
    ("volume", "state"),
    [
        (_volume("Pending"), "creating"),
        (_volume("Scheduled"), "creating"),
        (_volume("Provisioning", attach_to="web-1"), "creating"),
        (_volume(None), "creating"),
        (_volume("Available"), "available"),
        (_volume("Available", attach_to="web-1"), "in-use"),
        (_volume("Attached", attach_to="web-1", attached_to="web-1"), "in-use"),
        (_volume("Attached", attached_to="web-1"), "in-use"),
        (_volume("Failed"), "error"),
        (_volume("Deleting", attached_to="web-1"), "deleting"),
        (_volume("Available", deleting=True), "deleting"),
    ],
)
def test_volume_state(volume: Volume, state: str) -> None:
    assert volume_state(volume) == state


@pytest.mark.parametrize(
    ("volume", "expected"),
    [
        (_volume("Available"), None),
        (_volume("Available", attach_to="web-1"), ("web-1", "attaching")),
        (_volume("Attached", attach_to="web-1", attached_to="web-1"), ("web-1", "attached")),
        # attachTo moved to another instance: the new one, attaching
        (_volume("Attached", attach_to="web-2", attached_to="web-1"), ("web-2", "attaching")),
        # attachTo removed: the one still seen, detaching
        (_volume("Attached", attached_to="web-1"), ("web-1", "detaching")),
    ],
)
def test_attachment(volume: Volume, expected: tuple[str, str] | None) -> None:
    attachment = attachment_of(volume)
    found = None if attachment is None else (attachment.instance, attachment.state)
    assert found == expected


def test_timestamps_are_ec2s_form() -> None:
    moment = datetime(2026, 12, 3, 7, 45, 55, 123456, tzinfo=UTC)
    assert timestamp(moment) == "2026-12-03T07:45:55.123Z"
    assert timestamp(None) is None
