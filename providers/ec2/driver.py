# mypy: disable-error-code="no-untyped-call"
# (libcloud ships py.typed but leaves the EC2 driver unannotated)
"""libcloud's EC2 driver with the portability fixes skybroker needs (all valid against AWS).

Where it sits: under ``providers.ec2.adapter``; nothing else touches libcloud. The fixes:

* EC2-compatible servers: libcloud knows AWS's regions only (any other name is
  ``Invalid region``) and sends every request to ``/``. A driver given a ``host`` takes any
  region name (the server defines its regions) and a ``path`` (skybroker's own front door is
  at ``/ec2/``); the sizes of a region libcloud does not know come from the server
  (DescribeInstanceTypes) instead of libcloud's AWS price table.
* Response namespace: EC2-compatible servers (moto answers ``…/doc/2013-10-15/``, some
  without the trailing slash) use another XML namespace than libcloud's, and libcloud then
  silently finds nothing in the response. Every body is normalised to libcloud's namespace.
* Errors become ``Ec2ApiError`` carrying HTTP status, error code, request id and Retry-After,
  instead of libcloud's flattened message string.
* ``ex_create_tags``/``ex_delete_tags`` number ``ResourceId``/``Tag`` from 1, as EC2 requires.
* ``detach_volume`` sends ``InstanceId`` (EC2-compatible servers look the attachment up by it).
* Every Describe call follows ``NextToken`` (moto pages instances at 100 reservations), and
  fails on a token answered twice instead of looping; the instance list skips libcloud's
  extra DescribeAddresses call per listing.
* Token lookups use DescribeTags (indexed by key and value on AWS, and six times faster
  than a tag-filtered DescribeInstances on moto at 300 instances).
* Creates carry ``TagSpecification`` so a resource never exists untagged (libcloud tags
  volumes, VPCs and subnets in a second call: a crash in between would leak them).
* Security-group rules are authorized/revoked in one call per direction (``IpPermissions.N``).
* Placement groups: libcloud creates every group with ``Strategy=cluster`` and untagged,
  builds ``GroupName.N`` of its listing as ``str + int`` (a TypeError) and drops each group's
  state, id and tags; here the strategy and tags are sent, the listing filters by
  ``Filter.N`` and keeps all four, and an instance's ``placement/groupName`` (which libcloud
  ignores) lands in ``node.extra["placement_group"]``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from libcloud.compute.base import Node, NodeSize, StorageVolume
from libcloud.compute.drivers.ec2 import (
    NAMESPACE,
    EC2Connection,
    EC2Network,
    EC2NetworkSubnet,
    EC2NodeDriver,
    EC2PlacementGroup,
    EC2Response,
    EC2SecurityGroup,
)
from libcloud.utils.xml import findall, findtext

from controller.errors import SkybrokerError, TerminalError

__all__ = ["Ec2ApiError", "IpPermission", "PortableEC2NodeDriver", "ResourceRef"]

_FOREIGN_NAMESPACE = re.compile(r'xmlns="http://ec2\.amazonaws\.com/doc/[^"]*"')
_OUR_NAMESPACE = f'xmlns="{NAMESPACE}"'


class Ec2ApiError(SkybrokerError):
    """An error answer of the EC2 API, with everything needed to classify and report it."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        request_id: str | None,
        retry_after: float | None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


class PortableEC2Response(EC2Response):
    """Normalises the namespace of answers and raises ``Ec2ApiError`` for error answers."""

    def parse_body(self) -> Any:
        if self.body:
            self.body = _FOREIGN_NAMESPACE.sub(_OUR_NAMESPACE, self.body, count=1)
        return super().parse_body()

    def parse_error(self) -> str:
        code, message, request_id = f"HTTP{self.status}", str(self.error or ""), None
        try:
            root = ET.fromstring(self.body or "")
        except ET.ParseError:
            root = None
        if root is not None:
            for element in root.iter():
                name = _local(element.tag)
                if name == "Code" and element.text:
                    code = element.text.strip()
                elif name == "Message" and element.text:
                    message = element.text.strip()
                elif name in ("RequestID", "RequestId") and element.text:
                    request_id = element.text.strip()
        headers = self.headers or {}
        request_id = request_id or headers.get("x-amzn-requestid")
        raise Ec2ApiError(int(self.status), code, message, request_id, _retry_after(headers))


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:  # an HTTP date: libcloud converts those for its own errors only
        return None


class PortableEC2Connection(EC2Connection):
    """libcloud's EC2 connection, answering with :class:`PortableEC2Response`."""
    responseCls = PortableEC2Response


@dataclass(frozen=True)
class IpPermission:
    """One ``IpPermissions.N`` entry: protocol (``-1`` = all), optional ports, CIDRs."""

    protocol: str
    from_port: int | None
    to_port: int | None
    cidrs: tuple[str, ...]


class ResourceRef:
    """Any EC2 resource addressed by id alone (libcloud's calls on one resource read ``.id``)."""

    def __init__(self, resource_id: str) -> None:
        self.id = resource_id
        self.extra: dict[str, Any] = {}


def _tag_specification(resource_type: str, tags: Mapping[str, str]) -> dict[str, str]:
    params = {"TagSpecification.1.ResourceType": resource_type}
    for index, (key, value) in enumerate(tags.items(), start=1):
        params[f"TagSpecification.1.Tag.{index}.Key"] = key
        params[f"TagSpecification.1.Tag.{index}.Value"] = value
    return params


#: The AWS region a driver for a server's own region is built on: libcloud takes the region's
#: endpoint, API name and country from its table, none of which matters with a host given.
_STAND_IN_REGION = "us-east-1"


class PortableEC2NodeDriver(EC2NodeDriver):
    """``EC2NodeDriver`` with the fixes listed in the module docstring."""

    connectionCls = PortableEC2Connection

    def __init__(
        self,
        key: str,
        secret: str,
        *,
        region: str,
        host: str | None = None,
        path: str = "/",
        **kwargs: Any,
    ) -> None:
        #: A region of the server at ``host`` that libcloud's table does not have.
        self.own_region = host is not None and region not in self.list_regions()
        known = _STAND_IN_REGION if self.own_region else region
        super().__init__(key, secret, region=known, host=host, **kwargs)
        # SigV4 signs region_name into the credential scope, and create_node checks a
        # location's region against it: the server's own name, not the stand-in's.
        self.region_name = region
        self.path = path

    def list_sizes(self, location: Any = None) -> list[NodeSize]:
        if not self.own_region:
            sizes: list[NodeSize] = super().list_sizes(location)
            return sizes
        pages = self._describe_all({"Action": "DescribeInstanceTypes"})
        return [
            self._to_instance_type(item)
            for page in pages
            for item in findall(page, "instanceTypeSet/item", NAMESPACE)
        ]

    def _to_instance_type(self, element: Any) -> NodeSize:
        """A DescribeInstanceTypes item as libcloud's sizes look (``extra``: ``vcpu`` and
        ``architectures``; no price: a server's own types have none)."""

        def number(xpath: str) -> int:
            text = findtext(element=element, xpath=xpath, namespace=NAMESPACE)
            return int(text) if text and text.isdigit() else 0

        name = findtext(element=element, xpath="instanceType", namespace=NAMESPACE)
        architectures = [
            item.text
            for item in findall(element, "processorInfo/supportedArchitectures/item", NAMESPACE)
            if item.text
        ]
        extra = {"vcpu": number("vCpuInfo/defaultVCpus"), "architectures": architectures}
        disk = number("instanceStorageInfo/totalSizeInGB")
        memory = number("memoryInfo/sizeInMiB")
        # price None = not priced, as libcloud's own table has it for some sizes (its
        # annotation says float)
        return NodeSize(name, name, memory, disk, None, None, self, extra=extra)  # type: ignore[arg-type]

    def _request(self, params: Mapping[str, str]) -> Any:
        return self.connection.request(self.path, params=dict(params)).object

    def _describe_all(self, params: Mapping[str, str]) -> list[Any]:
        """Every page of a Describe call (``NextToken`` followed to the end).

        A server that answers a token it already gave does not page (it ignores
        ``NextToken``): that is an error, not a loop that never ends while the account's
        inventory waits for it.
        """
        pages: list[Any] = []
        token: str | None = None
        given: set[str] = set()
        while True:
            page_params = dict(params)
            if token:
                page_params["NextToken"] = token
            page = self._request(page_params)
            pages.append(page)
            token = findtext(element=page, xpath="nextToken", namespace=NAMESPACE)
            if not token:
                return pages
            if token in given:
                raise TerminalError(
                    f"{params.get('Action')}: the server answered NextToken {token!r} again "
                    f"after {len(pages)} pages; it does not page",
                    reason="ProviderError",
                    code="NextTokenRepeated",
                )
            given.add(token)

    def _filtered(self, action: str, filters: Mapping[str, Any] | None) -> dict[str, str]:
        params = {"Action": action}
        if filters:
            params.update(self._build_filters(dict(filters)))
        return params

    # listings (paged)
    def list_nodes(  # type: ignore[override]  # libcloud's type comment says str; it takes lists
        self, ex_node_ids: Iterable[str] | None = None, ex_filters: Mapping[str, Any] | None = None
    ) -> list[Node]:
        params = self._filtered("DescribeInstances", ex_filters)
        if ex_node_ids:
            params.update(self._pathlist("InstanceId", list(ex_node_ids)))
        nodes: list[Node] = []
        for page in self._describe_all(params):
            for reservation in findall(page, "reservationSet/item", NAMESPACE):
                nodes += self._to_nodes(reservation, "instancesSet/item")
        return nodes

    def list_volumes(
        self, node: Node | None = None, ex_filters: Mapping[str, Any] | None = None
    ) -> list[StorageVolume]:
        filters = dict(ex_filters or {})
        if node is not None:
            filters["attachment.instance-id"] = node.id
        pages = self._describe_all(self._filtered("DescribeVolumes", filters))
        return [
            self._to_volume(el)
            for page in pages
            for el in findall(page, "volumeSet/item", NAMESPACE)
        ]

    def ex_list_networks(
        self, network_ids: Iterable[str] | None = None, filters: Mapping[str, Any] | None = None
    ) -> list[EC2Network]:
        params = self._filtered("DescribeVpcs", filters)
        if network_ids:
            params.update(self._pathlist("VpcId", list(network_ids)))
        return [net for page in self._describe_all(params) for net in self._to_networks(page)]

    def ex_list_subnets(
        self, subnet_ids: Iterable[str] | None = None, filters: Mapping[str, Any] | None = None
    ) -> list[EC2NetworkSubnet]:
        params = self._filtered("DescribeSubnets", filters)
        if subnet_ids:
            params.update(self._pathlist("SubnetId", list(subnet_ids)))
        return [sub for page in self._describe_all(params) for sub in self._to_subnets(page)]

    def ex_get_security_groups(
        self,
        group_ids: Iterable[str] | None = None,
        group_names: Iterable[str] | None = None,
        filters: Mapping[str, Any] | None = None,
    ) -> list[EC2SecurityGroup]:
        params = self._filtered("DescribeSecurityGroups", filters)
        if group_ids:
            params.update(self._pathlist("GroupId", list(group_ids)))
        if group_names:
            params.update(self._pathlist("GroupName", list(group_names)))
        pages = self._describe_all(params)
        return [group for page in pages for group in self._to_security_groups(page)]

    def ex_list_placement_groups(  # libcloud's takes names only (and fails on them)
        self, filters: Mapping[str, Any] | None = None
    ) -> list[EC2PlacementGroup]:
        pages = self._describe_all(self._filtered("DescribePlacementGroups", filters))
        return [
            self._to_placement_group(el)
            for page in pages
            for el in findall(page, "placementGroupSet/item", NAMESPACE)
        ]

    def _to_placement_group(self, element: Any) -> EC2PlacementGroup:
        group: EC2PlacementGroup = super()._to_placement_group(element)
        group.extra = {
            "state": findtext(element=element, xpath="state", namespace=NAMESPACE),
            "group_id": findtext(element=element, xpath="groupId", namespace=NAMESPACE),
            "tags": self._get_resource_tags(element),
        }
        return group

    def _to_node(self, element: Any) -> Node:
        node: Node = super()._to_node(element)
        group = findtext(element=element, xpath="placement/groupName", namespace=NAMESPACE)
        node.extra["placement_group"] = group or None
        return node

    # tags
    def ex_find_tagged(self, resource_type: str, key: str, value: str) -> list[str]:
        """Ids of the resources of ``resource_type`` tagged ``key=value`` (DescribeTags)."""
        filters = {"resource-type": resource_type, "key": key, "value": value}
        pages = self._describe_all(self._filtered("DescribeTags", filters))
        return [
            findtext(element=item, xpath="resourceId", namespace=NAMESPACE)
            for page in pages
            for item in findall(page, "tagSet/item", NAMESPACE)
        ]

    def ex_create_tags(self, resource: ResourceRef, tags: Mapping[str, str]) -> bool:
        if tags:
            params = {"Action": "CreateTags", "ResourceId.1": resource.id}
            for index, (key, value) in enumerate(tags.items(), start=1):
                params[f"Tag.{index}.Key"] = key
                params[f"Tag.{index}.Value"] = value
            self._request(params)
        return True

    def ex_delete_tags(self, resource: ResourceRef, tags: Mapping[str, str | None]) -> bool:
        if tags:
            params = {"Action": "DeleteTags", "ResourceId.1": resource.id}
            for index, (key, value) in enumerate(tags.items(), start=1):
                params[f"Tag.{index}.Key"] = key
                if value is not None:
                    params[f"Tag.{index}.Value"] = value
            self._request(params)
        return True

    def detach_volume(
        self,
        volume: StorageVolume | ResourceRef,
        ex_force: bool = False,
        ex_instance_id: str | None = None,
    ) -> bool:
        params = {"Action": "DetachVolume", "VolumeId": volume.id}
        instance_id = ex_instance_id or (volume.extra or {}).get("instance_id")
        if instance_id:
            params["InstanceId"] = instance_id
        if ex_force:
            params["Force"] = "true"
        self._request(params)
        return True

    # creates tagged from birth
    def ex_create_tagged_volume(
        self, size_gib: int, zone: str, volume_type: str, tags: Mapping[str, str]
    ) -> StorageVolume:
        params = {
            "Action": "CreateVolume",
            "Size": str(size_gib),
            "AvailabilityZone": zone,
            "VolumeType": volume_type,
            **_tag_specification("volume", tags),
        }
        volume: StorageVolume = self._to_volume(self._request(params))
        return volume

    def ex_create_tagged_placement_group(
        self, name: str, strategy: str, tags: Mapping[str, str]
    ) -> None:
        params = {"Action": "CreatePlacementGroup", "GroupName": name, "Strategy": strategy}
        if tags:
            params.update(_tag_specification("placement-group", tags))
        self._request(params)

    def ex_create_tagged_network(self, cidr: str, tags: Mapping[str, str]) -> EC2Network:
        params = {"Action": "CreateVpc", "CidrBlock": cidr, **_tag_specification("vpc", tags)}
        network: EC2Network = self._to_network(findall(self._request(params), "vpc", NAMESPACE)[0])
        return network

    def ex_create_tagged_subnet(
        self, vpc_id: str, cidr: str, zone: str, tags: Mapping[str, str]
    ) -> EC2NetworkSubnet:
        params = {
            "Action": "CreateSubnet",
            "VpcId": vpc_id,
            "CidrBlock": cidr,
            "AvailabilityZone": zone,
            **_tag_specification("subnet", tags),
        }
        subnet: EC2NetworkSubnet = self._to_subnet(
            findall(self._request(params), "subnet", NAMESPACE)[0]
        )
        return subnet

    def ex_create_tagged_security_group(
        self, name: str, description: str, vpc_id: str, tags: Mapping[str, str]
    ) -> str:
        params = {
            "Action": "CreateSecurityGroup",
            "GroupName": name,
            "GroupDescription": description,
            "VpcId": vpc_id,
            **_tag_specification("security-group", tags),
        }
        group_id: str = findtext(
            element=self._request(params), xpath="groupId", namespace=NAMESPACE
        )
        return group_id

    def ex_change_rules(
        self, action: str, group_id: str, permissions: Iterable[IpPermission]
    ) -> None:
        """One Authorize/RevokeSecurityGroupIngress/Egress call for many permissions."""
        params = {"Action": action, "GroupId": group_id}
        for index, perm in enumerate(permissions, start=1):
            prefix = f"IpPermissions.{index}."
            params[prefix + "IpProtocol"] = perm.protocol
            if perm.from_port is not None and perm.to_port is not None:
                params[prefix + "FromPort"] = str(perm.from_port)
                params[prefix + "ToPort"] = str(perm.to_port)
            for cidr_index, cidr in enumerate(perm.cidrs, start=1):
                params[f"{prefix}IpRanges.{cidr_index}.CidrIp"] = cidr
        if len(params) > 2:
            self._request(params)
