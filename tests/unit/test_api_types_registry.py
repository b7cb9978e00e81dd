"""api_types.registry: lookups, the plural rule, parse_object dispatch, error paths, schemas."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

import api_types as at
from api_types import (
    KindInfo,
    Scope,
    UnknownKindError,
    all_kinds,
    by_kind,
    by_plural,
    field_errors,
    json_schema,
    lookup,
    parse_object,
)

CLUSTER = {"Namespace", "ProviderAccount", "Pool", "HardwareProfile", "ClusterRole",
           "ClusterRoleBinding", "AccessKey"}  # fmt: skip
NAMESPACED = {"Instance", "Subnet", "Firewall", "Volume", "Quota", "Secret", "Role",
              "RoleBinding", "Event", "GitSource", "VirtualCluster", "BootConfig"}  # fmt: skip
NO_STATUS = {"Secret", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "Event",
             "AccessKey"}  # fmt: skip


def test_all_design_kinds_are_registered_with_their_scope() -> None:
    kinds = {info.kind: info for info in all_kinds()}
    assert set(kinds) == CLUSTER | NAMESPACED
    for name, info in kinds.items():
        assert isinstance(info, KindInfo)
        assert info.namespaced == (name in NAMESPACED)
        assert info.scope is (Scope.NAMESPACED if name in NAMESPACED else Scope.CLUSTER)
        assert info.has_status == (name not in NO_STATUS)
        assert name == info.model.KIND and info.model.SCOPE is info.scope
        assert getattr(at, name) is info.model


@pytest.mark.parametrize("info", all_kinds(), ids=lambda i: i.kind)
def test_plural_rule_and_lookups(info: KindInfo) -> None:
    assert info.plural == info.kind.lower() + "s"
    assert by_kind(info.kind) is info
    assert by_plural(info.plural) is info
    assert lookup(info.kind.lower()) is info and lookup(info.plural.upper()) is info
    assert "status" in info.model.model_fields or not info.has_status


def test_known_plurals_from_design() -> None:
    assert by_plural("provideraccounts").kind == "ProviderAccount"
    assert by_plural("hardwareprofiles").kind == "HardwareProfile"
    assert by_plural("rolebindings").kind == "RoleBinding"
    assert by_kind("Instance").model is at.Instance


def test_kind_info_is_frozen() -> None:
    info = by_kind("Pool")
    with pytest.raises(AttributeError):
        info.plural = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    "call, name",
    [(by_kind, "Widget"), (by_kind, "instance"), (by_plural, "instance"), (lookup, "widgets")],
)
def test_unknown_kinds_name_themselves_and_the_known_ones(call: Any, name: str) -> None:
    with pytest.raises(UnknownKindError) as info:
        call(name)
    assert isinstance(info.value, LookupError)
    assert repr(name) in str(info.value)
    assert "Instance" in str(info.value) or "instances" in str(info.value)


def _errors(data: Any) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        parse_object(data)
    return field_errors(info.value)


def test_parse_object_dispatch_and_bad_kinds() -> None:
    obj = parse_object({"kind": "Namespace", "metadata": {"name": "acme"}})
    assert isinstance(obj, at.Namespace) and obj.status.phase is None
    assert _errors({"metadata": {"name": "x"}}) == [("kind", "required field is missing")]
    assert _errors({"kind": 7, "metadata": {"name": "x"}})[0][0] == "kind"
    assert _errors(["not", "a", "mapping"])[0][0] == ""
    with pytest.raises(UnknownKindError, match="Widget"):
        parse_object({"kind": "Widget", "metadata": {"name": "x"}})


def test_field_errors_use_wire_names_even_for_python_name_input() -> None:
    data = {
        "kind": "Instance",
        "metadata": {"name": "x", "namespace": "acme"},
        "spec": {
            "pool": "p",
            "image": "i",
            "hardware": {"memory_mib": {"min": 4, "max": 2}, "disk_gib": "big"},
            "firewall_refs": ["ok", "NOT OK"],
        },
    }
    errors = dict(_errors(data))
    assert set(errors) == {
        "spec.hardware.memoryMiB.max",
        "spec.hardware.diskGiB",
        "spec.firewallRefs[1]",
    }
    assert errors["spec.hardware.memoryMiB.max"] == "max (2) is less than min (4)"
    assert not any(msg.startswith("Value error") for msg in errors.values())


def test_field_errors_of_a_sub_model() -> None:
    with pytest.raises(ValidationError) as info:
        at.FirewallSpec.model_validate({"rules": [{"direction": "In"}]})
    paths = [path for path, _ in field_errors(info.value)]
    assert paths == ["rules[0].direction", "rules[0].protocol", "rules[0].cidrs"]


@pytest.mark.parametrize("info", all_kinds(), ids=lambda i: i.kind)
def test_json_schema_of_every_kind(info: KindInfo) -> None:
    schema = json_schema(info.kind)
    assert isinstance(schema, dict) and schema["type"] == "object"
    props = schema["properties"]
    assert {"apiVersion", "kind", "metadata"} <= set(props)
    assert props["kind"].get("const", props["kind"].get("default")) == info.kind
    assert ("status" in props) == info.has_status
    assert all("description" in p for p in props.values()), props
    schema["properties"].clear()
    assert json_schema(info.kind)["properties"], "json_schema must return a fresh copy"


def test_json_schema_uses_wire_names_and_descriptions() -> None:
    schema = json_schema("Instance")
    defs = schema["$defs"]
    hardware = defs["HardwareSpec"]["properties"]
    assert {"profile", "size", "cpu", "memoryMiB", "diskGiB", "arch"} == set(hardware)
    assert "description" in hardware["memoryMiB"]
    spec = defs["InstanceSpec"]["properties"]
    assert {"subnetRef", "firewallRefs", "userData", "powerState", "driftPolicy"} <= set(spec)
    status = defs["InstanceStatus"]["properties"]
    assert {"providerID", "createToken", "rejections", "addresses", "placement"} <= set(status)
    assert "sizeGiB" in json_schema("Volume")["$defs"]["VolumeSpec"]["properties"]
