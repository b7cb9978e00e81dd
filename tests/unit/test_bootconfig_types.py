"""Boot rendezvous data (DESIGN §11): the BootConfig kind, the Instance's bootConfigRef, health
and agent record; every bad field refused at its own path with a reason; round trips."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from api_types import (
    AgentState,
    BootConfig,
    Instance,
    MemberTemplate,
    Remediation,
    VirtualCluster,
    field_errors,
    parse_object,
    registry,
)
from api_types.bootconfigs import (
    MAX_CONFIG_BYTES,
    MAX_PARAMETER_VALUE_BYTES,
    MAX_PARAMETERS,
)
from tests.unit.test_api_types_properties import dns_labels, dns_subdomains, round_trips

Wire = dict[str, Any]

BOOT: Wire = {
    "apiVersion": "skybroker.io/v1alpha1",
    "kind": "BootConfig",
    "metadata": {"name": "web", "namespace": "acme"},
    "spec": {
        "config": "#!/bin/sh\necho configured\n",
        "parameters": {"role": "web"},
        "dynamic": False,
        "slots": 0,
        "staleAfter": "10m",
    },
}

INSTANCE: Wire = {
    "apiVersion": "skybroker.io/v1alpha1",
    "kind": "Instance",
    "metadata": {"name": "web-1", "namespace": "acme"},
    "spec": {
        "pool": "general",
        "hardware": {"profile": "small"},
        "image": "ubuntu-22.04",
        "bootConfigRef": "web",
        "health": {"remediation": "Restart", "after": "10m"},
    },
}


def _errors(good: Wire, change: Callable[[Wire], object]) -> list[tuple[str, str]]:
    wire = copy.deepcopy(good)
    change(wire)
    with pytest.raises(ValidationError) as refused:
        parse_object(wire)
    return field_errors(refused.value)


def _set(path: str, value: Any) -> Callable[[Wire], None]:
    def change(wire: Wire) -> None:
        *parents, last = path.split(".")
        for part in parents:
            wire = wire.setdefault(part, {})
        wire[last] = value

    return change


def _drop(path: str) -> Callable[[Wire], None]:
    def change(wire: Wire) -> None:
        *parents, last = path.split(".")
        for part in parents:
            wire = wire[part]
        del wire[last]

    return change


# ----------------------------------------------------------------------------- BootConfig


def test_bootconfig_is_registered_namespaced_with_its_plural() -> None:
    info = registry.by_plural("bootconfigs")
    assert info.model is BootConfig and info.kind == "BootConfig"
    assert info.namespaced and info.has_status
    assert registry.lookup("bootconfig") is info


def test_a_good_bootconfig_validates_and_round_trips() -> None:
    obj = parse_object(BOOT)
    assert isinstance(obj, BootConfig)
    assert obj.spec.parameters == {"role": "web"}
    assert obj.spec.stale_after_seconds == 600
    assert obj.status.revision is None and obj.status.claimed == 0
    round_trips(obj)


def test_bootconfig_defaults() -> None:
    obj = BootConfig.model_validate(
        {"kind": "BootConfig", "metadata": {"name": "x", "namespace": "acme"}, "spec": {}}
    )
    assert obj.spec.config == "" and obj.spec.parameters == {}
    assert obj.spec.dynamic is False and obj.spec.slots == 0
    assert obj.spec.stale_after == "10m"


def test_a_dynamic_bootconfig_with_slots_and_its_status() -> None:
    wire = copy.deepcopy(BOOT)
    wire["spec"] |= {"dynamic": True, "slots": 3}
    wire["status"] = {"revision": 4, "claimed": 2, "conditions": [
        {"type": "Ready", "status": "True"}]}  # fmt: skip
    obj = parse_object(wire)
    assert isinstance(obj, BootConfig)
    assert obj.spec.slots == 3 and obj.status.revision == 4 and obj.status.claimed == 2
    round_trips(obj)


def test_config_at_the_limit_is_accepted() -> None:
    wire = copy.deepcopy(BOOT)
    wire["spec"]["config"] = "x" * MAX_CONFIG_BYTES
    parse_object(wire)


@pytest.mark.parametrize(
    "change, path, words",
    [
        (_set("spec.config", "x" * (MAX_CONFIG_BYTES + 1)), "spec.config", "at most 65536"),
        (_set("spec.config", "é" * (MAX_CONFIG_BYTES // 2 + 1)), "spec.config", "bytes"),
        (_set("spec.config", 42), "spec.config", "string"),
        (_set("spec.parameters", ["role"]), "spec.parameters", "dictionary"),
        (_set("spec.parameters", {"role": 1}), "spec.parameters.role", "string"),
        (_set("spec.parameters", {"bad key": "x"}), "spec.parameters.bad key", "'bad key'"),
        (_set("spec.parameters", {"": "x"}), "spec.parameters.", "1-253"),
        (_set("spec.parameters", {"k" * 254: "x"}), "spec.parameters." + "k" * 254, "1-253"),
        (
            _set("spec.parameters", {"role": "x" * (MAX_PARAMETER_VALUE_BYTES + 1)}),
            "spec.parameters.role",
            f"at most {MAX_PARAMETER_VALUE_BYTES} bytes",
        ),
        (
            _set("spec.parameters", {f"p{i}": "" for i in range(MAX_PARAMETERS + 1)}),
            "spec.parameters",
            f"at most {MAX_PARAMETERS} entries",
        ),
        (_set("spec.dynamic", "true"), "spec.dynamic", "boolean"),
        (_set("spec.slots", 2), "spec.slots", "set dynamic: true, or slots: 0"),
        (_set("spec.dynamic", True), "spec.slots", "needs slots ≥ 1"),
        (_set("spec.slots", -1), "spec.slots", "greater than or equal to 0"),
        (_set("spec.slots", "2"), "spec.slots", "integer"),
        (_set("spec.slots", 10**7), "spec.slots", "at most"),
        (_set("spec.staleAfter", "10"), "spec.staleAfter", "not a duration"),
        (_set("spec.staleAfter", "10 m"), "spec.staleAfter", "not a duration"),
        (_set("spec.staleAfter", 600), "spec.staleAfter", "string"),
        (_set("spec.staleAfter", "29s"), "spec.staleAfter", "between 30s and 24h"),
        (_set("spec.staleAfter", "24h1s"), "spec.staleAfter", "between 30s and 24h"),
        (_set("spec.nope", 1), "spec.nope", "unknown field"),
        (_drop("spec"), "spec", "required"),
        (_set("status.revision", -1), "status.revision", "greater than or equal to 0"),
        (_set("status.claimed", "1"), "status.claimed", "integer"),
        (_set("status.phase", "Running"), "status.phase", "no life cycle"),
    ],
)
def test_bad_bootconfig_fields_are_refused_at_their_path(
    change: Callable[[Wire], object], path: str, words: str
) -> None:
    errors = _errors(BOOT, change)
    assert any(p == path and words in message for p, message in errors), errors


def test_an_oversized_config_is_not_echoed_in_the_error() -> None:
    big = "PASSWORD=hunter2\n" * (MAX_CONFIG_BYTES // 10)
    errors = _errors(BOOT, _set("spec.config", big))
    assert all("hunter2" not in message for _, message in errors)


# ------------------------------------------------------------------------------- Instance


def test_an_instance_with_boot_config_and_health_round_trips() -> None:
    obj = parse_object(INSTANCE)
    assert isinstance(obj, Instance)
    assert obj.spec.boot_config_ref == "web"
    assert obj.spec.health is not None
    assert obj.spec.health.remediation is Remediation.RESTART
    assert obj.spec.health.after_seconds == 600
    assert obj.status.agent is None
    round_trips(obj)


def test_health_defaults_to_no_remediation_after_five_minutes() -> None:
    wire = copy.deepcopy(INSTANCE)
    wire["spec"]["health"] = {}
    obj = parse_object(wire)
    assert isinstance(obj, Instance) and obj.spec.health is not None
    assert obj.spec.health.remediation is Remediation.NONE
    assert obj.spec.health.after == "5m"


def test_an_instance_without_the_new_fields_is_unchanged_on_the_wire() -> None:
    wire = copy.deepcopy(INSTANCE)
    del wire["spec"]["bootConfigRef"], wire["spec"]["health"]
    written = parse_object(wire).to_wire()
    assert "bootConfigRef" not in written["spec"] and "health" not in written["spec"]
    assert "agent" not in written["status"]


def test_the_agent_record_validates() -> None:
    wire = copy.deepcopy(INSTANCE)
    wire["status"] = {
        "phase": "Running",
        "agent": {
            "state": "Configured",
            "address": "10.0.0.7",
            "parameters": {"role": "web", "port": "8080"},
            "configRevision": 3,
            "lastReport": "2026-12-03T08:00:00Z",
        },
    }
    obj = parse_object(wire)
    assert isinstance(obj, Instance) and obj.status.agent is not None
    assert obj.status.agent.state is AgentState.CONFIGURED
    assert obj.status.agent.config_revision == 3
    round_trips(obj)


@pytest.mark.parametrize(
    "change, path, words",
    [
        (
            _set("spec.userData", "#cloud-config\n"),
            "spec.userData",
            "must not be set together with bootConfigRef",
        ),
        (_set("spec.bootConfigRef", "Not_A_Name"), "spec.bootConfigRef", "DNS-1123"),
        (_set("spec.health.remediation", "Reboot"), "spec.health.remediation", "'None'"),
        (_set("spec.health.after", "30s"), "spec.health.after", "between 1m and 168h"),
        (_set("spec.health.after", "169h"), "spec.health.after", "between 1m and 168h"),
        (_set("spec.health.after", "soon"), "spec.health.after", "not a duration"),
        (_set("spec.health.every", "5m"), "spec.health.every", "unknown field"),
        (_set("status.agent", {}), "status.agent.state", "required"),
        (_set("status.agent", {"state": "Happy"}), "status.agent.state", "'Booting'"),
        (
            _set("status.agent", {"state": "Booting", "configRevision": -1}),
            "status.agent.configRevision",
            "greater than or equal to 0",
        ),
        (
            _set("status.agent", {"state": "Booting", "parameters": {"a b": "x"}}),
            "status.agent.parameters.a b",
            "'a b'",
        ),
        (
            _set("status.agent", {"state": "Booting", "address": "a" * 256}),
            "status.agent.address",
            "at most 255 characters",
        ),
        (
            _set("status.agent", {"state": "Booting", "lastReport": "yesterday"}),
            "status.agent.lastReport",
            "datetime",
        ),
    ],
)
def test_bad_instance_boot_fields_are_refused_at_their_path(
    change: Callable[[Wire], object], path: str, words: str
) -> None:
    errors = _errors(INSTANCE, change)
    assert any(p == path and words in message for p, message in errors), errors


def test_user_data_with_boot_config_is_refused_without_echoing_the_user_data() -> None:
    errors = _errors(INSTANCE, _set("spec.userData", "password: hunter2"))
    assert errors == [
        (
            "spec.userData",
            "must not be set together with bootConfigRef: the boot string is the user data",
        )
    ]


def test_remediation_needs_a_boot_config() -> None:
    errors = _errors(INSTANCE, _drop("spec.bootConfigRef"))
    assert errors == [
        ("spec.health.remediation", "acts when the boot agent is lost: set bootConfigRef too")
    ]
    wire = copy.deepcopy(INSTANCE)
    del wire["spec"]["bootConfigRef"]
    wire["spec"]["health"] = {"remediation": "None"}
    parse_object(wire)  # reporting only needs nothing


def test_virtualcluster_member_templates_carry_the_boot_fields() -> None:
    template = {"hardware": {"profile": "small"}, "image": "ubuntu-22.04",
                "bootConfigRef": "web", "health": {"remediation": "Replace"}}  # fmt: skip
    member = MemberTemplate.model_validate(template)
    spec = member.instance_spec("general")
    assert spec.boot_config_ref == "web"
    assert spec.health is not None and spec.health.remediation is Remediation.REPLACE
    wire = {
        "kind": "VirtualCluster",
        "metadata": {"name": "shop", "namespace": "acme"},
        "spec": {"pool": "general", "members": [
            {"name": "lb", "replicas": 1, "template": template | {"userData": "x"}}]},
    }  # fmt: skip
    with pytest.raises(ValidationError) as refused:
        VirtualCluster.model_validate(wire)
    assert [p for p, _ in field_errors(refused.value)] == ["spec.members[0].template.userData"]


# --------------------------------------------------------------------------- properties


@st.composite
def boot_configs(draw: st.DrawFn) -> Wire:
    dynamic = draw(st.booleans())
    keys = st.text("abcXYZ019-_.", min_size=1, max_size=20)
    return {
        "kind": "BootConfig",
        "metadata": {"name": draw(dns_subdomains()), "namespace": draw(dns_labels())},
        "spec": {
            "config": draw(st.text(max_size=200)),
            "parameters": draw(st.dictionaries(keys, st.text(max_size=50), max_size=5)),
            "dynamic": dynamic,
            "slots": draw(st.integers(1, 1000)) if dynamic else 0,
            "staleAfter": draw(st.sampled_from(["30s", "90s", "10m", "1h30m", "24h"])),
        },
        "status": {"revision": draw(st.integers(0, 10**9)), "claimed": draw(st.integers(0, 5))},
    }


@settings(max_examples=60, deadline=None)
@given(wire=boot_configs())
def test_generated_bootconfigs_validate_and_round_trip(wire: Wire) -> None:
    round_trips(parse_object(wire))
