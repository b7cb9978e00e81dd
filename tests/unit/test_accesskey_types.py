"""AccessKey's schema (DESIGN §12) and skyctl's generated ids and secrets: a good key validates
and round-trips; each bad field is refused at its own path; ``get ak`` never shows a secret."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from pydantic import ValidationError

from api_types import AccessKey, field_errors, parse_object, registry
from api_types.accesskeys import is_access_key_id
from skyctl import accesskeys as cli
from skyctl.kinds import resolve_kind
from skyctl.main import parse_args
from skyctl.printers import table_rows

Wire = dict[str, Any]

GOOD: Wire = {
    "apiVersion": "skybroker.io/v1alpha1",
    "kind": "AccessKey",
    "metadata": {"name": "ci-robot"},
    "spec": {
        "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
        "user": "alice",
        "groups": ["tenants"],
        "namespace": "acme",
        "secretRef": {"name": "accesskey-akiaiosfodnn7example"},
    },
}


def _with(path: str, value: Any) -> Wire:
    wire = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    target = wire
    for part in parents:
        target = target[part]
    if value is _DROP:
        del target[last]
    else:
        target[last] = value
    return wire


_DROP = object()


def _errors(wire: Wire) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        parse_object(wire)
    return field_errors(info.value)


def test_good_key_validates_round_trips_and_is_cluster_scoped() -> None:
    key = parse_object(GOOD)
    assert isinstance(key, AccessKey)
    assert key.spec.disabled is False and key.spec.groups == ["tenants"]
    assert key.to_wire()["spec"] == {**GOOD["spec"], "disabled": False}
    assert parse_object(key.to_wire()) == key
    info = registry.by_plural("accesskeys")
    assert info.kind == "AccessKey" and not info.namespaced and not info.has_status
    assert resolve_kind("ak") is info and resolve_kind("accesskey") is info
    namespaced = parse_object({**GOOD, "metadata": {"name": "k", "namespace": "acme"}})
    assert namespaced.metadata.namespace is None  # ignored, as for every cluster-scoped kind


@pytest.mark.parametrize(
    ("path", "value", "field", "words"),
    [
        ("spec.accessKeyId", "AKIA123", "spec.accessKeyId", "not an access key id"),
        ("spec.accessKeyId", "akiaiosfodnn7example", "spec.accessKeyId", "AKIA followed"),
        ("spec.accessKeyId", "ASIAIOSFODNN7EXAMPLE", "spec.accessKeyId", "AKIA followed"),
        ("spec.accessKeyId", _DROP, "spec.accessKeyId", "required"),
        ("spec.user", "", "spec.user", "at least 1"),
        ("spec.user", _DROP, "spec.user", "required"),
        ("spec.groups", [""], "spec.groups[0]", "at least 1"),
        ("spec.namespace", "Not_A_Label", "spec.namespace", ""),
        ("spec.namespace", _DROP, "spec.namespace", "required"),
        ("spec.secretRef", _DROP, "spec.secretRef", "required"),
        ("spec.secretRef", {"name": "s", "namespace": "acme"}, "spec.secretRef.namespace",
         "unknown field"),
        ("spec.disabled", "yes", "spec.disabled", "boolean"),
        ("spec.secretAccessKey", "x" * 40, "spec.secretAccessKey", "unknown field"),
        ("status", {}, "status", "unknown field"),
    ],
)  # fmt: skip
def test_each_bad_field_is_named(path: str, value: Any, field: str, words: str) -> None:
    errors = _errors(_with(path, value))
    assert [f for f, _ in errors] == [field], errors
    assert words.lower() in errors[0][1].lower()


def test_generated_ids_and_secrets_have_aws_shapes_and_differ() -> None:
    ids = {cli.new_access_key_id() for _ in range(200)}
    secrets = {cli.new_secret_access_key() for _ in range(200)}
    assert len(ids) == len(secrets) == 200
    assert all(is_access_key_id(i) and len(i) == 20 for i in ids)
    assert all(re.fullmatch(r"[A-Za-z0-9+/]{40}", s) for s in secrets)
    assert cli.secret_name("AKIAIOSFODNN7EXAMPLE") == "accesskey-akiaiosfodnn7example"


def test_created_key_repr_leaves_the_secret_out() -> None:
    created = cli.CreatedAccessKey("k", "AKIAIOSFODNN7EXAMPLE", "s3cr3t" * 6)
    assert "s3cr3t" not in repr(created)


def test_get_columns_show_no_secret() -> None:
    info = registry.by_kind("AccessKey")
    wire = {**copy.deepcopy(GOOD), "metadata": {"name": "ci-robot"}}
    header, row = table_rows(info, [wire], wide=False, namespaces=False)
    assert header == ["NAME", "ID", "USER", "NAMESPACE", "DISABLED", "AGE"]
    assert row[:5] == ["ci-robot", "AKIAIOSFODNN7EXAMPLE", "alice", "acme", "False"]
    wide_header, _ = table_rows(info, [wire], wide=True, namespaces=False)
    assert wide_header[-2] == "SECRET"


def test_create_accesskey_parses_and_plain_create_still_needs_files() -> None:
    args = parse_args(
        ["create", "accesskey", "ci", "--user", "alice", "--group", "a", "--group", "b", "-n", "x"]
    )
    assert (args.kind, args.names, args.user, args.groups, args.namespace) == (
        "accesskey", ["ci"], "alice", ["a", "b"], "x"
    )  # fmt: skip
    plain = parse_args(["create", "-f", "m.yaml"])
    assert plain.kind is None and plain.filename == ["m.yaml"] and plain.groups == []
