"""EC2 ids, tags and pages for skybroker objects: the mapping every resource action shares.

Where it sits: under the resource action handlers (instances, network, volumes, tags — DESIGN
§12), over ``context.backend`` (REST's pipeline as the key's user). One mechanism for all of
them, so an id, a tag or a page means the same thing in every action:

* **Ids** are derived from uids and stable: :func:`ec2_id` is the kind's prefix and the first
  17 hex digits of the SHA-256 of the uid (``i-0b5d…``, ``subnet-…``, ``sg-…``, ``vol-…``);
  a VPC, a Subnets' ``network`` and no object of its own, takes the uid of its record, the
  default security group CreateVpc writes (:func:`vpc_id`; ``vpcs`` owns the record), so a
  VPC deleted and made again under the same name is a new id; and the "account id"
  (``ownerId``) is its namespace's (:func:`owner_id`). Hashing keeps EC2's shape whatever
  the uid looks like and tells nothing about it.
* **Lookups by id** (:func:`find`) list the kind in the key's namespace only, as the user: an
  id of another tenant's object is simply not there, so the answer is the kind's
  ``….NotFound`` code (``InvalidInstanceID.NotFound``…), never a 403 that would say it exists.
* **Tags are labels**, but for ``Name``, which is the object's name (:func:`tags_of`,
  :func:`labels_of`, :func:`name_of` — a generated ``{prefix}-{8 hex}`` when there is no
  ``Name``). EC2 takes any text as a ``Name`` (skybroker's own ``ec2`` provider tags
  ``{namespace}/{name}``): a ``Name`` that is no object name (:func:`given_name` None) gets
  the object a generated name, and the tag's text is kept in the annotation
  :data:`NAME_ANNOTATION` (:func:`name_annotations`), which :func:`name_tag` and
  :func:`tags_of` answer as the ``Name``. A tag that cannot be a label (key or value) is
  ``InvalidParameterValue`` naming it — nothing is half written. A create's tags come from its
  ``TagSpecification.N`` for its resource type (:func:`requested_tags`); Describe actions take
  EC2's tag filters ``tag:<key>``, ``tag-key`` and ``tag-value`` (:func:`tag_filter_names`,
  :func:`tag_attributes`).
* **Pages**: :func:`page` cuts a sorted listing at ``MaxResults`` (5-1000) and answers an
  opaque ``NextToken`` (the last id given, base64) that resumes after it; a token this server
  did not make is ``InvalidParameterValue``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from api_types.registry import KindInfo, by_kind
from api_types.validation import validate_dns1123_subdomain, validate_label_map
from apiserver.ec2.context import ActionContext
from apiserver.ec2.errors import Ec2Error, invalid_parameter
from apiserver.ec2.params import Params

__all__ = [
    "ID_PREFIXES",
    "NAME_ANNOTATION",
    "NAME_TAG",
    "NOT_FOUND_CODES",
    "TAG_FILTERS",
    "client_token",
    "ec2_id",
    "find",
    "given_name",
    "id_of",
    "kept_name",
    "labels_of",
    "listed",
    "name_annotations",
    "name_of",
    "name_tag",
    "owner_id",
    "page",
    "pick",
    "requested_tags",
    "tag_attributes",
    "tag_filter_names",
    "tags_of",
    "vpc_id",
]

Wire = dict[str, Any]
T = TypeVar("T")

#: The id prefix of each kind an EC2 resource maps onto.
ID_PREFIXES: Mapping[str, str] = {
    "Instance": "i",
    "Subnet": "subnet",
    "Firewall": "sg",
    "Volume": "vol",
}
#: EC2's "no such id" code per kind (a VPC's is ``InvalidVpcID.NotFound``).
NOT_FOUND_CODES: Mapping[str, str] = {
    "Instance": "InvalidInstanceID.NotFound",
    "Subnet": "InvalidSubnetID.NotFound",
    "Firewall": "InvalidGroup.NotFound",
    "Volume": "InvalidVolume.NotFound",
}
#: The tag that is the object's name.
NAME_TAG = "Name"
#: Annotation: the ``Name`` tag of an object whose name it is not (text that is no object
#: name, or a stem of generated names), answered as its ``Name`` tag.
NAME_ANNOTATION = "ec2.skybroker.io/name"
_HEX_DIGITS = 17
MAX_RESULTS = 1000
MIN_RESULTS = 5


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:_HEX_DIGITS]


def ec2_id(kind: str, uid: str) -> str:
    """The stable EC2 id of the object of ``kind`` with ``uid``: ``i-`` + 17 hex digits…"""
    return f"{ID_PREFIXES[kind]}-{_digest(uid)}"


def vpc_id(namespace: str, network: str, record_uid: str | None) -> str:
    """The id of the VPC that is network ``network`` of ``namespace``'s subnets: ``vpc-`` and
    the digits of its record's uid (its default security group, so they are that group's
    ``sg-`` digits), like every id. A VPC with no record — known only from subnets written
    through REST, so there is no uid to take — has the digits of its namespace and network
    name (a uid has no ``/``: the two never meet)."""
    if record_uid is not None:
        return f"vpc-{_digest(record_uid)}"
    return f"vpc-{_digest(f'{namespace}/{network}')}"


def owner_id(namespace: str) -> str:
    """The 12-digit "AWS account id" of a namespace (``ownerId`` of reservations, security
    groups…): stable, derived like the ids, telling nothing about the namespace."""
    digest = hashlib.sha256(f"owner/{namespace}".encode()).hexdigest()
    return f"{int(digest, 16) % 10**12:012d}"


def _info(kind: str) -> KindInfo:
    return by_kind(kind)


def listed(context: ActionContext, kind: str, selector: str | None = None) -> list[Wire]:
    """Every object of ``kind`` in the key's namespace the user may list (RBAC applies)."""
    return context.backend.list(_info(kind), context.namespace, selector).items


def id_of(kind: str, obj: Wire) -> str:
    return ec2_id(kind, str(obj["metadata"]["uid"]))


def find(context: ActionContext, kind: str, ids: Sequence[str]) -> list[Wire]:
    """The objects of ``kind`` with these EC2 ids in the key's namespace, in the order asked;
    the kind's NotFound code naming the ids that are not there (another tenant's included)."""
    return pick(kind, listed(context, kind), ids)


def pick(kind: str, objects: Sequence[Wire], ids: Sequence[str]) -> list[Wire]:
    """:func:`find` among ``objects`` of ``kind`` an action already narrowed (a region's
    subnets, the groups not being deleted): the ones with these ids, or the NotFound code."""
    by_id = {id_of(kind, obj): obj for obj in objects}
    missing = [wanted for wanted in ids if wanted not in by_id]
    if missing:
        noun = kind.lower()
        raise Ec2Error(
            NOT_FOUND_CODES[kind], f"The {noun} ID '{', '.join(missing)}' does not exist"
        )
    return [by_id[wanted] for wanted in ids]


def name_tag(obj: Wire) -> str:
    """The ``Name`` tag of an object: the text it was created with (:data:`NAME_ANNOTATION`)
    when that is not its name, else its name."""
    annotations: Mapping[str, str] = obj["metadata"].get("annotations") or {}
    return annotations.get(NAME_ANNOTATION) or str(obj["metadata"]["name"])


def tags_of(obj: Wire) -> list[dict[str, str]]:
    """EC2's ``tagSet`` of an object: ``Name`` (:func:`name_tag`), then its labels, by key."""
    labels: Mapping[str, str] = obj["metadata"].get("labels") or {}
    tags = [{"key": NAME_TAG, "value": name_tag(obj)}]
    tags += [{"key": key, "value": labels[key]} for key in sorted(labels)]
    return tags


def labels_of(tags: Mapping[str, str], where: str) -> dict[str, str]:
    """The labels some tags become (``Name`` left out: it is the name); a tag that cannot be
    a label is ``InvalidParameterValue`` naming ``where`` and the key."""
    labels = {}
    for key, value in tags.items():
        if key == NAME_TAG:
            continue
        try:
            validate_label_map({key: value})
        except ValueError as exc:
            raise invalid_parameter(f"{where} {key!r}", f"cannot be a label: {exc}") from None
        labels[key] = value
    return labels


def given_name(tags: Mapping[str, str]) -> str | None:
    """The object name a create's ``Name`` tag gives: the tag when it is an object name (a
    DNS-1123 subdomain); None without one, or when it is other text (the caller generates a
    name and keeps the text: :func:`name_annotations`)."""
    text = tags.get(NAME_TAG)
    if text is None:
        return None
    try:
        return validate_dns1123_subdomain(text)
    except ValueError:
        return None


def kept_name(tags: Mapping[str, str], name: str) -> str | None:
    """The text of a create's ``Name`` tag when it is not ``name``, what the object is called
    (None: no Name tag, or the name itself)."""
    text = tags.get(NAME_TAG)
    return None if text is None or text == name else text


def name_annotations(tags: Mapping[str, str], name: str) -> dict[str, str]:
    """The annotations that keep a create's ``Name`` tag on an object named ``name``: none
    when the tag is the name (or absent), else :data:`NAME_ANNOTATION` with its text."""
    kept = kept_name(tags, name)
    return {} if kept is None else {NAME_ANNOTATION: kept}


def name_of(tags: Mapping[str, str], prefix: str) -> str:
    """The object name a create's tags ask for: :func:`given_name`, else ``{prefix}-`` and 8
    random hex digits (keep the tag with :func:`name_annotations`)."""
    return given_name(tags) or f"{prefix}-{secrets.token_hex(4)}"


def requested_tags(params: Params, resource_type: str) -> dict[str, str]:
    """The tags a create's ``TagSpecification.N`` give its ``resource_type`` (``instance``,
    ``subnet`` …; several specifications of that type merge); a specification for another type
    is ``InvalidParameterValue`` naming its ``ResourceType``, as EC2 answers."""
    tags: dict[str, str] = {}
    for index, specification in enumerate(params.tag_specifications(), start=1):
        if specification.resource_type != resource_type:
            raise invalid_parameter(
                f"TagSpecification.{index}.ResourceType",
                f"{specification.resource_type!r} is not {resource_type!r}, what this creates",
            )
        tags.update(specification.tags)
    return tags


#: The tag filters of every tagged resource's Describe besides ``tag:<key>``.
TAG_FILTERS = ("tag-key", "tag-value")


def tag_filter_names(filters: Mapping[str, Sequence[str]]) -> list[str]:
    """The tag filters a Describe accepts, for ``apply_filters``'s ``supported``:
    ``tag-key``, ``tag-value`` and each ``tag:<key>`` among the request's ``filters``."""
    return [*TAG_FILTERS, *(name for name in filters if name.startswith("tag:"))]


def tag_attributes(tags: Sequence[Mapping[str, str]]) -> dict[str, list[str]]:
    """A ``tagSet`` (:func:`tags_of`) as filter attributes: ``tag:<key>`` → its value,
    ``tag-key`` → every key, ``tag-value`` → every value."""
    attributes: dict[str, list[str]] = {f"tag:{tag['key']}": [tag["value"]] for tag in tags}
    attributes["tag-key"] = [tag["key"] for tag in tags]
    attributes["tag-value"] = [tag["value"] for tag in tags]
    return attributes


def _token(last: str) -> str:
    return base64.urlsafe_b64encode(last.encode("utf-8")).decode("ascii")


def _after(token: str) -> str:
    try:
        after = base64.b64decode(token.encode("ascii"), altchars=b"-_", validate=True)
        return after.decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise invalid_parameter("NextToken", "is not a token this server gave") from None


def page(items: Sequence[T], key: Callable[[T], str], params: Params) -> tuple[list[T], str | None]:
    """``items`` sorted by ``key`` (an EC2 id), from after ``NextToken``, at most
    ``MaxResults``; and the token of the next page (None on the last)."""
    ordered = sorted(items, key=key)
    token = params.get("NextToken")
    if token is not None:
        after = _after(token)
        ordered = [item for item in ordered if key(item) > after]
    limit = params.integer("MaxResults", MIN_RESULTS, MAX_RESULTS)
    if limit is None or len(ordered) <= limit:
        return ordered, None
    shown = ordered[:limit]
    return shown, _token(key(shown[-1]))


#: EC2's bound on a ``ClientToken``: 1 to 64 ASCII characters.
MAX_CLIENT_TOKEN = 64


def client_token(params: Params) -> str | None:
    """A create's ``ClientToken`` (idempotency), if given: 1 to 64 ASCII characters, else
    ``InvalidParameterValue``."""
    token = params.get("ClientToken")
    if token is not None and not (0 < len(token) <= MAX_CLIENT_TOKEN and token.isascii()):
        raise invalid_parameter("ClientToken", f"must be 1 to {MAX_CLIENT_TOKEN} ASCII characters")
    return token
