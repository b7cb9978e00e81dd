"""Admission answers a create with phase Pending only where the kind has a life cycle: Quota,
HardwareProfile, ProviderAccount and Pool get no phase at all (issue 9, item 8)."""

from __future__ import annotations

import httpx

from tests.integration.apiserver.conftest import ROOT, firewall


def test_phaseless_kinds_are_created_without_a_phase(admin: httpx.Client) -> None:
    bodies = {
        f"{ROOT}/provideraccounts": {"kind": "ProviderAccount", "metadata": {"name": "sim"},
                                     "spec": {"driver": "simulated", "region": "local"}},
        f"{ROOT}/hardwareprofiles": {"kind": "HardwareProfile", "metadata": {"name": "small"},
                                     "spec": {"cpu": {"min": 1}}},
        f"{ROOT}/pools": {"kind": "Pool", "metadata": {"name": "general"},
                          "spec": {"members": [{"account": "sim"}]}},
        f"{ROOT}/namespaces/team-a/quotas": {"kind": "Quota", "metadata": {"name": "default"},
                                             "spec": {"hard": {"instances": 2}}},
    }  # fmt: skip
    for path, body in bodies.items():
        created = admin.post(path, json=body)
        assert created.status_code == 201, created.text
        assert "phase" not in created.json()["status"], path
        name = body["metadata"]["name"]  # type: ignore[index]
        assert "phase" not in admin.get(f"{path}/{name}").json()["status"], path

    # A kind with a life cycle still answers at once with Pending.
    web = admin.post(f"{ROOT}/namespaces/team-a/firewalls", json=firewall("web"))
    assert web.json()["status"]["phase"] == "Pending"
