"""The EC2 front door's wire format: parameter decoding and list helpers (``params``),
filters, the XML answer and error documents (``xmlwriter``), the error mapping and the action
registry — no server needed."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest

from apiserver.ec2.actions import default_actions
from apiserver.ec2.errors import Ec2Error, ec2_error_from
from apiserver.ec2.filters import apply_filters
from apiserver.ec2.params import MAX_PARAMETERS, Params, TagSpecification, parse_pairs
from apiserver.ec2.registry import ActionRegistry
from apiserver.ec2.xmlwriter import EC2_NAMESPACE, error_document, response_document
from apiserver.status import ApiError
from controller.errors import ConflictError, FieldCause, InvalidObjectError


def params(text: str) -> Params:
    return Params(parse_pairs(text.encode("ascii"), "request body"))


def refusal(call, *args) -> Ec2Error:  # type: ignore[no-untyped-def]
    with pytest.raises(Ec2Error) as raised:
        call(*args)
    return raised.value


# --------------------------------------------------------------------------- params


def test_decoding_and_required_parameters() -> None:
    p = params("Action=DescribeImages&Version=2016-11-15&Name=a+b%2Fc%C3%A9&Empty=")
    assert p.require("Action") == "DescribeImages"
    assert p.get("Name") == "a b/cé"
    missing = refusal(p.require, "Empty")
    assert (missing.code, missing.message) == (
        "MissingParameter",
        "The request must contain the parameter Empty",
    )
    assert refusal(params, "A=1&A=2").code == "InvalidParameterValue"
    assert "A" in refusal(params, "A=1&A=2").message
    assert refusal(parse_pairs, b"A=%FF", "request body").code == "InvalidParameterValue"
    assert refusal(parse_pairs, "A=é".encode(), "request body").code == "InvalidParameterValue"
    many = "&".join(f"P{i}=1" for i in range(MAX_PARAMETERS + 1)).encode()
    assert "too many" in refusal(parse_pairs, many, "request body").message


def test_lists_in_index_order_with_gaps() -> None:
    p = params("InstanceId.10=c&InstanceId.2=b&InstanceId.1=a&Other.1=x")
    assert p.strings("InstanceId") == ["a", "b", "c"]
    assert p.strings("Missing") == []
    assert "InstanceId.0" in refusal(params("InstanceId.0=a").strings, "InstanceId").message
    assert refusal(params("InstanceId.x=a").strings, "InstanceId").code == ("InvalidParameterValue")
    nested = params(
        "IpPermissions.2.IpProtocol=udp&IpPermissions.1.IpProtocol=tcp"
        "&IpPermissions.1.IpRanges.1.CidrIp=10.0.0.0/8"
    ).structures("IpPermissions")
    assert [(index, p.get("IpProtocol")) for index, p in nested] == [(1, "tcp"), (2, "udp")]
    assert [r.get("CidrIp") for _, r in nested[0][1].structures("IpRanges")] == ["10.0.0.0/8"]
    assert (
        "IpPermissions.1"
        in refusal(params("IpPermissions.1=x").structures, "IpPermissions").message
    )


def test_filters_and_tag_specifications() -> None:
    p = params(
        "Filter.1.Name=state&Filter.1.Value.2=stopped&Filter.1.Value.1=running"
        "&Filter.2.Name=tag:team&Filter.2.Value.1=a"
        "&TagSpecification.1.ResourceType=instance"
        "&TagSpecification.1.Tag.1.Key=Name&TagSpecification.1.Tag.1.Value=web"
        "&TagSpecification.1.Tag.2.Key=empty"
    )
    assert p.filters() == {"state": ["running", "stopped"], "tag:team": ["a"]}
    assert p.tag_specifications() == [TagSpecification("instance", {"Name": "web", "empty": ""})]
    nameless = refusal(params("Filter.3.Value.1=x").filters)
    assert (nameless.code, nameless.message) == (
        "MissingParameter",
        "The request must contain the parameter Filter.3.Name",
    )
    duplicate = refusal(
        params("TagSpecification.1.Tag.1.Key=a&TagSpecification.1.Tag.2.Key=a").tag_specifications
    )
    assert "TagSpecification.1.Tag.2.Key" in duplicate.message


def test_integers_and_booleans() -> None:
    p = params("MaxResults=50&Big=1001&Text=ten&DryRun=TRUE&Bad=yes")
    assert p.integer("MaxResults", 5, 1000) == 50
    assert p.integer("Absent", 5, 1000) is None
    assert "Big" in refusal(p.integer, "Big", 5, 1000).message
    assert "Text" in refusal(p.integer, "Text", 5, 1000).message
    assert p.boolean("DryRun") is True and p.boolean("Absent") is False
    assert refusal(p.boolean, "Bad").code == "InvalidParameterValue"


# --------------------------------------------------------------------------- filters


def test_filters_match_any_value_with_wildcards_and_refuse_unknown_names() -> None:
    items = ["alpha", "beta", "gamma"]

    def attributes(item: str) -> dict[str, list[str]]:
        return {"name": [item], "letter": [item[0]]}

    assert apply_filters(items, {}, ("name",), attributes) == items
    chosen = apply_filters(items, {"name": ["a*", "?eta"]}, ("name", "letter"), attributes)
    assert chosen == ["alpha", "beta"]
    both = apply_filters(items, {"name": ["*a"], "letter": ["g"]}, ("name", "letter"), attributes)
    assert both == ["gamma"]
    unknown = refusal(apply_filters, items, {"colour": ["red"]}, ("name",), attributes)
    assert unknown.code == "InvalidParameterValue" and "colour" in unknown.message


# --------------------------------------------------------------------------- XML


def test_response_document_shape() -> None:
    document = response_document(
        "DescribeThings",
        "req-1",
        {
            "thingSet": [{"name": "a<&>", "ready": True, "skipped": None}, {"count": 2}],
            "nested": {"inner": "x"},
            "empty": [],
        },
    )
    assert document.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    root = ElementTree.fromstring(document)
    ns = {"e": EC2_NAMESPACE}
    assert root.tag == f"{{{EC2_NAMESPACE}}}DescribeThingsResponse"
    assert [child.tag.split("}")[1] for child in root] == [
        "requestId",
        "thingSet",
        "nested",
        "empty",
    ]
    assert root.findtext("e:requestId", namespaces=ns) == "req-1"
    items = root.findall("e:thingSet/e:item", ns)
    assert items[0].findtext("e:name", namespaces=ns) == "a<&>"
    assert items[0].findtext("e:ready", namespaces=ns) == "true"
    assert items[0].find("e:skipped", ns) is None
    assert items[1].findtext("e:count", namespaces=ns) == "2"
    assert root.findtext("e:nested/e:inner", namespaces=ns) == "x"
    empty = root.find("e:empty", ns)
    assert empty is not None and len(empty) == 0


def test_error_document_shape() -> None:
    root = ElementTree.fromstring(error_document("InvalidAction", "no <such> action", "req-2"))
    assert root.tag == "Response"
    assert root.findtext("Errors/Error/Code") == "InvalidAction"
    assert root.findtext("Errors/Error/Message") == "no <such> action"
    assert root.findtext("RequestID") == "req-2"
    assert [child.tag for child in root] == ["Errors", "RequestID"]


# --------------------------------------------------------------------------- errors, registry


def test_rest_errors_map_onto_ec2_codes() -> None:
    forbidden = ec2_error_from(ApiError(403, "Forbidden", 'User "x" cannot list pools'))
    assert (forbidden.code, forbidden.status) == ("UnauthorizedOperation", 403)
    invalid = ec2_error_from(
        InvalidObjectError("bad instance", (FieldCause("spec.image", "unknown image"),))
    )
    assert invalid.code == "InvalidParameterValue" and "spec.image" in invalid.message
    assert ec2_error_from(ConflictError("lost the race")).status == 503
    internal = ec2_error_from(RuntimeError("secret detail"))
    assert (internal.code, internal.status) == ("InternalError", 500)
    assert "secret" not in internal.message
    same = Ec2Error("InvalidAction", "x")
    assert ec2_error_from(same) is same


def test_registry_refuses_unknown_actions_and_double_registration() -> None:
    actions = default_actions()
    # Every action module's names (each module adds its own set; other modules' may follow).
    catalog = {
        "DescribeAvailabilityZones",
        "DescribeImages",
        "DescribeInstanceTypes",
        "DescribeRegions",
    }
    instances = {
        "RunInstances", "DescribeInstances", "StartInstances", "StopInstances",
        "TerminateInstances", "CreateTags", "DeleteTags", "DescribeTags",
    }  # fmt: skip
    network = {
        "CreateVpc", "DescribeVpcs", "DeleteVpc",
        "CreateSubnet", "DescribeSubnets", "DeleteSubnet",
        "CreateSecurityGroup", "DescribeSecurityGroups", "DeleteSecurityGroup",
        "AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress",
        "RevokeSecurityGroupIngress", "RevokeSecurityGroupEgress",
    }  # fmt: skip
    assert catalog | network | instances <= set(actions.names())
    assert actions.names() == sorted(actions.names())
    unknown = refusal(actions.handler, "LaunchRockets")
    assert (unknown.code, unknown.status) == ("InvalidAction", 400)
    registry = ActionRegistry()
    registry.add("X", lambda context, p: {})
    with pytest.raises(ValueError, match="twice"):
        registry.add("X", lambda context, p: {})
