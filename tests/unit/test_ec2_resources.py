"""The EC2 resource mapping every action shares: ids, tags as labels, pages."""

from __future__ import annotations

import re

import pytest

from apiserver.ec2.errors import Ec2Error
from apiserver.ec2.filters import apply_filters
from apiserver.ec2.params import Params
from apiserver.ec2.resources import (
    NAME_ANNOTATION,
    ec2_id,
    given_name,
    labels_of,
    name_annotations,
    name_of,
    name_tag,
    owner_id,
    page,
    requested_tags,
    tag_attributes,
    tag_filter_names,
    tags_of,
    vpc_id,
)


def test_ids_are_stable_shaped_and_distinct() -> None:
    uid = "3f2a8d0e-0c6b-4a53-9f0e-6c1d2b7a9e10"
    assert ec2_id("Instance", uid) == ec2_id("Instance", uid)
    assert re.fullmatch(r"i-[0-9a-f]{17}", ec2_id("Instance", uid))
    assert re.fullmatch(r"vol-[0-9a-f]{17}", ec2_id("Volume", uid))
    assert ec2_id("Instance", uid) != ec2_id("Instance", uid.replace("3", "4"))
    # A VPC's id comes from its record's uid; one without a record from namespace and name.
    assert re.fullmatch(r"vpc-[0-9a-f]{17}", vpc_id("acme", "main", uid))
    assert vpc_id("acme", "main", uid) != vpc_id("acme", "main", uid.replace("3", "4"))
    assert vpc_id("acme", "main", uid)[4:] == ec2_id("Firewall", uid)[3:]
    assert vpc_id("acme", "main", None) != vpc_id("team-b", "main", None)
    assert re.fullmatch(r"vpc-[0-9a-f]{17}", vpc_id("acme", "main", None))
    assert vpc_id("acme", "main", None) != vpc_id("acme", "main", uid)
    assert re.fullmatch(r"[0-9]{12}", owner_id("acme")) and owner_id("acme") == owner_id("acme")
    assert owner_id("acme") != owner_id("team-b")


def test_name_is_a_tag_and_labels_are_the_others() -> None:
    obj = {"metadata": {"name": "web-1", "labels": {"tier": "front", "app": "shop"}}}
    assert tags_of(obj) == [
        {"key": "Name", "value": "web-1"},
        {"key": "app", "value": "shop"},
        {"key": "tier", "value": "front"},
    ]
    assert labels_of({"Name": "x", "tier": "front"}, "Tag") == {"tier": "front"}
    with pytest.raises(Ec2Error) as bad:
        labels_of({"cost center": "42"}, "TagSpecification.1.Tag")
    assert bad.value.code == "InvalidParameterValue" and "'cost center'" in str(bad.value)


def _params(**values: str) -> Params:
    return Params(list(values.items()))


def test_pages_resume_after_the_token_and_end_without_one() -> None:
    items = [f"i-{n:017x}" for n in range(12)]
    first, token = page(items, str, _params(MaxResults="5"))
    assert first == items[:5] and token is not None
    second, token = page(items, str, _params(MaxResults="5", NextToken=token))
    assert second == items[5:10] and token is not None
    last, token = page(items, str, _params(MaxResults="5", NextToken=token))
    assert last == items[10:] and token is None
    everything, none = page(list(reversed(items)), str, _params())
    assert everything == items and none is None
    with pytest.raises(Ec2Error):
        page(items, str, _params(MaxResults="1001"))
    with pytest.raises(Ec2Error):
        page(items, str, _params(NextToken="%%%"))


def test_tag_lists_tell_an_absent_value_from_an_empty_one() -> None:
    params = _params(**{"Tag.1.Key": "a", "Tag.2.Key": "b", "Tag.2.Value": ""})
    assert params.tags() == {"a": None, "b": ""}
    with pytest.raises(Ec2Error) as twice:
        _params(**{"Tag.1.Key": "a", "Tag.3.Key": "a"}).tags()
    assert "Tag.3.Key" in str(twice.value)
    nested = _params(**{"TagSpecification.2.Tag.1.Key": "a", "TagSpecification.2.Tag.4.Key": "a"})
    with pytest.raises(Ec2Error) as named:
        nested.tag_specifications()
    assert "TagSpecification.2.Tag.4.Key" in str(named.value)


def test_a_creates_tags_name_it_and_must_be_for_its_type() -> None:
    params = Params(
        [
            ("TagSpecification.1.ResourceType", "subnet"),
            ("TagSpecification.1.Tag.1.Key", "Name"),
            ("TagSpecification.1.Tag.1.Value", "web"),
            ("TagSpecification.1.Tag.2.Key", "tier"),
            ("TagSpecification.1.Tag.2.Value", "front"),
        ]
    )
    tags = requested_tags(params, "subnet")
    assert tags == {"Name": "web", "tier": "front"}
    assert name_of(tags, "subnet") == "web" and name_annotations(tags, "web") == {}
    assert re.fullmatch(r"subnet-[0-9a-f]{8}", name_of({}, "subnet"))
    with pytest.raises(Ec2Error) as wrong_type:
        requested_tags(params, "vpc")
    assert "TagSpecification.1.ResourceType" in str(wrong_type.value)


def test_any_text_is_a_name_tag_as_in_ec2() -> None:
    """A ``Name`` that is no object name (skybroker's ec2 provider tags ``namespace/name``)
    gets a generated name and is kept, to be answered as the ``Name`` tag (it used to be
    refused as InvalidParameterValue)."""
    for text in ("acme/web-1", "Web Server", "x" * 255):
        tags = {"Name": text, "tier": "front"}
        assert given_name(tags) is None
        name = name_of(tags, "subnet")
        assert re.fullmatch(r"subnet-[0-9a-f]{8}", name)
        annotations = name_annotations(tags, name)
        assert annotations == {NAME_ANNOTATION: text}
        obj = {"metadata": {"name": name, "labels": {"tier": "front"},
                            "annotations": annotations}}  # fmt: skip
        assert name_tag(obj) == text
        assert tags_of(obj) == [{"key": "Name", "value": text}, {"key": "tier", "value": "front"}]
    assert given_name({"Name": "web-1"}) == "web-1" and given_name({}) is None
    assert name_annotations({}, "web-1") == {}


def test_tag_filters() -> None:
    objects = [
        {"metadata": {"name": "a", "labels": {"tier": "front"}}},
        {"metadata": {"name": "b", "labels": {"tier": "back"}}},
        {"metadata": {"name": "c"}},
    ]

    def chosen(filters: dict[str, list[str]]) -> list[str]:
        kept = apply_filters(
            objects, filters, tag_filter_names(filters), lambda o: tag_attributes(tags_of(o))
        )
        return [o["metadata"]["name"] for o in kept]

    assert chosen({"tag:tier": ["front"]}) == ["a"]
    assert chosen({"tag:Name": ["b", "c"]}) == ["b", "c"]
    assert chosen({"tag-key": ["tier"]}) == ["a", "b"]
    assert chosen({"tag-value": ["ba*"]}) == ["b"]
    with pytest.raises(Ec2Error):
        chosen({"tags": ["x"]})
