"""Kinds without a life cycle carry no ``status.phase`` (issue 9, item 8): Quota,
HardwareProfile, ProviderAccount and Pool say how they are with conditions alone."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from api_types import field_errors, parse_object

API = "skybroker.io/v1alpha1"

PHASELESS: list[dict[str, Any]] = [
    {"kind": "Quota", "metadata": {"name": "q", "namespace": "acme"}, "spec": {"hard": {}}},
    {"kind": "HardwareProfile", "metadata": {"name": "small"}, "spec": {"cpu": {"min": 1}}},
    {"kind": "ProviderAccount", "metadata": {"name": "sim"},
     "spec": {"driver": "simulated", "region": "local"}},
    {"kind": "Pool", "metadata": {"name": "general"}, "spec": {"members": [{"account": "sim"}]}},
]  # fmt: skip


@pytest.mark.parametrize("manifest", PHASELESS, ids=lambda m: m["kind"])
def test_a_phaseless_kind_refuses_a_phase_and_reads_the_legacy_pending_as_none(
    manifest: dict[str, Any],
) -> None:
    fresh = parse_object({"apiVersion": API, **manifest})
    assert fresh.status.phase is None  # type: ignore[attr-defined]
    assert "phase" not in fresh.to_wire().get("status", {})

    # What earlier versions' admission stored in every new object still reads, as no phase.
    legacy = parse_object({"apiVersion": API, **manifest, "status": {"phase": "Pending"}})
    assert legacy.status.phase is None  # type: ignore[attr-defined]
    assert "phase" not in legacy.to_wire().get("status", {})

    with pytest.raises(ValidationError) as refused:
        parse_object({"apiVersion": API, **manifest, "status": {"phase": "Ready"}})
    assert field_errors(refused.value) == [
        ("status.phase", "this kind has no life cycle: status.phase must be absent")
    ]


def test_kinds_with_a_life_cycle_keep_their_phase() -> None:
    firewall = parse_object(
        {
            "apiVersion": API,
            "kind": "Firewall",
            "metadata": {"name": "web", "namespace": "acme"},
            "spec": {"rules": []},
            "status": {"phase": "Pending"},
        }
    )
    assert firewall.status.phase == "Pending"  # type: ignore[attr-defined]
