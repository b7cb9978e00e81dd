"""controller.fields: parsing field selectors and matching them against wire dicts."""

from __future__ import annotations

import pytest

from controller.fields import FieldRequirement, FieldSelector, parse_field_selector

INSTANCE: dict[str, object] = {
    "kind": "Instance",
    "metadata": {"name": "web-1", "namespace": "acme"},
    "spec": {
        "pool": "general",
        "hardware": {"profile": "small", "cpu": 2},
        "firewallRefs": ["web"],
        "deleteOnStop": True,
        "ratio": 1.5,
        "userData": None,
    },
    "status": {"phase": "Running"},
}


def test_parses_all_three_operators() -> None:
    selector = parse_field_selector("metadata.name=a, status.phase==Running ,spec.pool!=b")
    assert selector.requirements == (
        FieldRequirement("metadata.name", "a", True),
        FieldRequirement("status.phase", "Running", True),
        FieldRequirement("spec.pool", "b", False),
    )


@pytest.mark.parametrize("text", [None, "", "   "])
def test_blank_selector_is_empty_and_matches_everything(text: str | None) -> None:
    selector = parse_field_selector(text)
    assert selector.empty
    assert selector == FieldSelector()
    assert selector.matches({})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metadata.name=web-1", True),
        ("metadata.name==web-2", False),
        ("metadata.name!=web-2", True),
        ("metadata.namespace=acme", True),
        ("status.phase!=Running", False),
        ("status.phase=Running,metadata.name=web-1", True),
        ("status.phase=Running,metadata.name=web-2", False),
        ("spec.pool=general", True),
        ("spec.hardware.profile=small", True),
        ("spec.hardware.cpu=2", True),
        ("spec.hardware.cpu!=2", False),
        ("spec.deleteOnStop=true", True),
        ("spec.deleteOnStop=True", False),
        ("spec.ratio=1.5", True),
        # missing and null read as the empty string
        ("spec.zone=", True),
        ("spec.zone!=", False),
        ("spec.userData=", True),
        ("spec.pool.deeper=", True),
        # a list or mapping equals no value
        ("spec.firewallRefs=web", False),
        ("spec.firewallRefs!=web", True),
        ("spec.hardware=", False),
    ],
)
def test_matches(text: str, expected: bool) -> None:
    assert parse_field_selector(text).matches(INSTANCE) is expected


def test_cluster_scoped_object_has_empty_namespace() -> None:
    pool = {"kind": "Pool", "metadata": {"name": "general"}}
    assert parse_field_selector("metadata.namespace=").matches(pool)
    assert not parse_field_selector("metadata.namespace=acme").matches(pool)


@pytest.mark.parametrize(
    ("text", "bad_term", "reason"),
    [
        ("metadata.name", "metadata.name", "expected FIELD=VALUE"),
        ("metadata.name=a,,status.phase=b", "", "expected FIELD=VALUE"),
        ("status.phase=a=b", "status.phase=a=b", "expected FIELD=VALUE"),
        ("metadata.labels=x", "metadata.labels=x", "'metadata.labels' is not supported"),
        ("spec=x", "spec=x", "'spec' is not supported"),
        ("spec..pool=x", "spec..pool=x", "is not supported"),
        ("status.placement.zone=a", "status.placement.zone=a", "is not supported"),
        ("=x", "=x", "expected FIELD=VALUE"),
    ],
)
def test_bad_terms_are_named(text: str, bad_term: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_field_selector(text)
    message = str(caught.value)
    assert f"term {bad_term!r}" in message
    assert reason in message
