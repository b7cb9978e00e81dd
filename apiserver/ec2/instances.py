"""The instance actions: RunInstances, DescribeInstances, Start/Stop/TerminateInstances.

Where it sits: EC2 action handlers (``registry``), on DESIGN §12's mapping, writing Instances
through ``context.backend`` as the key's user (RBAC, validation, admission and quota as for
REST); ``instanceview`` renders what they answer (states, reservations, DescribeInstances).

**RunInstances** makes ``MinCount``..``MaxCount`` (1..:data:`MAX_COUNT`) Instances in the
key's namespace, drawn from the request's region (a Pool, ``context.pool``), and answers at
once with them ``pending`` (DESIGN: async; the reconcilers take them on). Parameters:

- ``ImageId``: a logical image name one of the pool's accounts maps (else
  ``InvalidAMIID.NotFound``) → ``spec.image``.
- ``InstanceType`` (required: there is no default type): a HardwareProfile's name →
  ``hardware: {profile}``, else a provider size → ``hardware: {size}`` (a size no member has
  shows up as the instance's placement failure, as for REST).
- ``TagSpecification.N`` of ResourceType ``instance`` (others are refused: nothing else is
  launched): tags become labels (``resources.labels_of``). ``Name`` is the object's name when
  ``MaxCount`` is 1 and it is a DNS-1123 name (it must then be free); otherwise each instance
  is named ``{base}-{8 hex}``, ``base`` being the Name tag made DNS-safe, else ``ec2``, the hex
  digits derived from the ClientToken and the launch index (random without a token), and the
  Name tag's text is kept as such (``resources.name_annotations``: any text is a Name, as in
  EC2 — skybroker's ``ec2`` provider tags ``{namespace}/{name}``).
- ``UserData``: base64 (as EC2 clients send it) of UTF-8 text → ``spec.userData``; not base64,
  or not text, is ``InvalidParameterValue``.
- ``SubnetId`` → ``spec.subnetRef``: one of the namespace's subnets in the request's region
  not being deleted (``vpcs.regional_subnets``; else ``InvalidSubnetID.NotFound``).
  ``SecurityGroupId.N`` (ids) and ``SecurityGroup.N`` (group names, ``securitygroups``:
  ``default`` being the default group of the subnet's VPC) → ``spec.firewallRefs``
  (``InvalidGroup.NotFound``). Security groups need a ``SubnetId`` — a firewall is realised
  in a subnet's network and there is no default VPC — else ``MissingParameter`` says so.
- ``Placement.AvailabilityZone`` → ``spec.placement.zone`` (one of the pool's zones, when
  those are known: ``catalog.pool_zones``).
- ``DryRun``: everything above is checked and the first instance's create dry-run (RBAC,
  validation, admission, quota for one); ``DryRunOperation``.

*Counts under a quota*, EC2's semantics: instances are created one by one; when the quota
refuses one (admission's 403 "exceeded quota: …") after at least ``MinCount`` exist, the
reservation is those; before, every one made is deleted again and the answer is
``InstanceLimitExceeded`` with the quota's message. Any other refusal also deletes what was
made: nothing is left behind by a failed RunInstances.

*ClientToken* (≤ 64 ASCII characters): every instance made records the SHA-256 of the token
(annotation :data:`CLIENT_TOKEN`) and of the request's parameters (:data:`REQUEST`); a request
whose token an instance of the namespace already carries creates nothing and answers that
reservation (its instances as they are now) — or ``IdempotentParameterMismatch`` when its
parameters differ. Instances rolled back by a failed request lose the annotation first, so a
retry tries again. Since the first instance's name follows from the token, a request that is
no retry (boto3 sends a fresh token with every call) costs one read to tell, never a listing
of the namespace. Two requests with one token at the very same moment are not serialised
(moto does not even do as much; the window is one round trip).

**StartInstances / StopInstances** set ``spec.powerState`` (Running/Stopped) and answer each
instance's previous and current state (``stopping``/``pending`` until the reconciler is
done); an instance being deleted or failed is ``IncorrectInstanceState``.
**TerminateInstances** deletes the Instances (the reconciler deletes the VM, then the object
goes) and answers ``shutting-down``. All three take ``InstanceId.N`` (the namespace's in the
request's region only, as DescribeInstances sees them: ``InvalidInstanceID.NotFound``) and
``DryRun``, and check every id before changing any.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from api_types.accounts import HardwareProfile
from api_types.compute import Instance
from api_types.meta import API_VERSION
from api_types.network import Firewall, Subnet
from api_types.registry import by_kind
from apiserver.ec2.catalog import pool_images, pool_zones
from apiserver.ec2.context import ActionContext
from apiserver.ec2.errors import Ec2Error, dry_run_succeeded, invalid_parameter, missing_parameter
from apiserver.ec2.instanceview import (
    LAUNCH_INDEX,
    RESERVATION,
    SHUTTING_DOWN,
    TERMINATED,
    Related,
    describe_instances,
    reservation,
    reservation_of,
    state_of,
)
from apiserver.ec2.params import Params
from apiserver.ec2.registry import ActionRegistry
from apiserver.ec2.resources import (
    NAME_TAG,
    client_token,
    given_name,
    id_of,
    labels_of,
    name_annotations,
    pick,
    requested_tags,
)
from apiserver.ec2.securitygroups import groups_named, security_groups
from apiserver.ec2.volumeview import region_instances
from apiserver.ec2.vpcs import VPC_ANNOTATION, is_default_group, regional_subnets
from apiserver.ec2.xmlwriter import Fields
from controller.errors import ApiError, NotFoundError

__all__ = [
    "CLIENT_TOKEN",
    "MAX_COUNT",
    "REQUEST",
    "register",
    "run_instances",
    "start_instances",
    "stop_instances",
    "terminate_instances",
]

log = structlog.get_logger(__name__)

Wire = dict[str, Any]

#: Annotation: SHA-256 of the ClientToken of the RunInstances that made the instance.
CLIENT_TOKEN = "ec2.skybroker.io/client-token-sha256"
#: Annotation: SHA-256 of that request's parameters (IdempotentParameterMismatch).
REQUEST = "ec2.skybroker.io/request-sha256"
#: The most instances one RunInstances makes (each is one etcd transaction).
MAX_COUNT = 100
_GENERATED = "ec2"
#: Parameters that do not make two requests with one token different.
_NOT_THE_REQUEST = ("Action", "Version", "ClientToken", "DryRun")
_INSTANCE = by_kind(Instance.KIND)


def register(registry: ActionRegistry) -> None:
    registry.add("RunInstances", run_instances)
    registry.add("DescribeInstances", describe_instances)
    registry.add("StartInstances", start_instances)
    registry.add("StopInstances", stop_instances)
    registry.add("TerminateInstances", terminate_instances)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- RunInstances


@dataclass
class _Launch:
    """What every instance of one RunInstances is made of."""

    namespace: str
    spec: Wire
    #: The requested tags (the Name tag is kept as such where it is not the name).
    tags: dict[str, str]
    labels: dict[str, str]
    annotations: dict[str, str]
    #: The object name when the Name tag names the one instance.
    name: str | None
    #: Generated names' stem otherwise.
    base: str = _GENERATED
    #: The request's ClientToken (generated names derive from it).
    token: str | None = None

    def instance(self, index: int, fresh: bool = False) -> Wire:
        """Instance ``index`` of the reservation; ``fresh``: under a random name even if the
        token would name it (its name is held by another object)."""
        name = self.name or _generated_name(self.base, None if fresh else self.token, index)
        annotations = {**self.annotations, **name_annotations(self.tags, name)}
        return {
            "apiVersion": API_VERSION,
            "kind": Instance.KIND,
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": dict(self.labels),
                "annotations": {**annotations, LAUNCH_INDEX: str(index)},
            },
            "spec": self.spec,
        }


def _generated_name(base: str, token: str | None, index: int) -> str:
    """``{base}-{8 hex}``: from the token and index when there is a token (the lookup by token
    is then one read, :func:`_by_token`), else random."""
    suffix = _sha256(f"{token}/{index}")[:8] if token is not None else secrets.token_hex(4)
    return f"{base}-{suffix}"


def _counts(params: Params) -> tuple[int, int]:
    least = params.integer("MinCount", 1, MAX_COUNT)
    most = params.integer("MaxCount", 1, MAX_COUNT)
    if least is None:
        raise missing_parameter("MinCount")
    if most is None:
        raise missing_parameter("MaxCount")
    if least > most:
        raise invalid_parameter("MinCount", f"{least} is greater than MaxCount ({most})")
    return least, most


def _hardware(context: ActionContext, instance_type: str) -> Wire:
    try:
        context.lookups.get(HardwareProfile, instance_type)
    except NotFoundError:
        return {"size": instance_type}
    return {"profile": instance_type}


def _user_data(params: Params) -> str | None:
    raw = params.get("UserData")
    if raw is None:
        return None
    try:
        return base64.b64decode(raw.encode("ascii"), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise invalid_parameter("UserData", "must be the base64 encoding of UTF-8 text") from None


def _firewalls(context: ActionContext, params: Params, network: str | None) -> list[str]:
    """``SecurityGroupId.N`` then ``SecurityGroup.N`` (group names: ``securitygroups``) as
    Firewall names, each once; ``default`` is the default group of ``network``, the VPC of the
    instance's subnet (every VPC has one of that name)."""
    ids, names = params.strings("SecurityGroupId"), params.strings("SecurityGroup")
    if not ids and not names:
        return []
    groups = security_groups(context)
    chosen = pick(Firewall.KIND, groups, ids) if ids else []
    if names:
        in_vpc = [
            group
            for group in groups
            if not is_default_group(group)
            or (group["metadata"].get("annotations") or {}).get(VPC_ANNOTATION) == network
        ]
        chosen += groups_named(in_vpc, names)
    return list(dict.fromkeys(str(group["metadata"]["name"]) for group in chosen))


def _name(tags: dict[str, str], most: int) -> tuple[str | None, str]:
    """(the object's name, the stem of generated names) per the module docstring."""
    tag = tags.get(NAME_TAG)
    if not tag:
        return None, _GENERATED
    if most == 1 and (name := given_name(tags)) is not None:
        return name, _GENERATED
    stem = re.sub(r"[^a-z0-9]+", "-", tag.lower()).strip("-")[:50].strip("-")
    return None, stem or _GENERATED


def _request_hash(params: Params) -> str:
    kept = sorted(
        (name, value)
        for name, value in params.values.items()
        if name not in _NOT_THE_REQUEST and not name.startswith("X-Amz-")
    )
    return _sha256(json.dumps(kept))


def _launch(context: ActionContext, params: Params, most: int, reservation: str) -> _Launch:
    pool = context.pool()
    image = params.require("ImageId")
    if image not in pool_images(context, pool):
        raise Ec2Error(
            "InvalidAMIID.NotFound",
            f"The image id '[{image}]' does not exist (no account of pool "
            f"'{pool.metadata.name}' maps it)",
        )
    spec: Wire = {
        "pool": pool.metadata.name,
        "hardware": _hardware(context, params.require("InstanceType")),
        "image": image,
    }
    subnet_id = params.get("SubnetId")
    network = None
    if subnet_id:
        (subnet,) = pick(Subnet.KIND, regional_subnets(context, pool.metadata.name), [subnet_id])
        spec["subnetRef"] = subnet["metadata"]["name"]
        network = str(subnet["spec"]["network"]["name"])
    elif params.strings("SecurityGroupId") or params.strings("SecurityGroup"):
        raise missing_parameter(
            "SubnetId (security groups are realised in a subnet's network and there is no "
            "default VPC: give SubnetId with SecurityGroupId.N)"
        )
    firewalls = _firewalls(context, params, network)
    if firewalls:
        spec["firewallRefs"] = firewalls
    user_data = _user_data(params)
    if user_data is not None:
        spec["userData"] = user_data
    zone = params.get("Placement.AvailabilityZone")
    if zone:
        zones = pool_zones(context, pool)
        if zones and zone not in zones:
            raise invalid_parameter(
                "Placement.AvailabilityZone", f"'{zone}' is not a zone of this region"
            )
        spec["placement"] = {"zone": zone}
    tags = requested_tags(params, "instance")
    name, base = _name(tags, most)
    annotations = {RESERVATION: reservation}
    token = params.get("ClientToken")
    if token:
        annotations[CLIENT_TOKEN] = _sha256(token)
        annotations[REQUEST] = _request_hash(params)
    labels = labels_of(tags, "TagSpecification.N.Tag")
    return _Launch(context.namespace, spec, tags, labels, annotations, name, base, token or None)


def _carries(obj: Wire, digest: str) -> bool:
    return (obj["metadata"].get("annotations") or {}).get(CLIENT_TOKEN) == digest


def _by_token(context: ActionContext, params: Params, token: str, most: int) -> list[Wire]:
    """The instances an earlier RunInstances with ``token`` made in the namespace. Its first
    instance's name follows from the token (or is the Name tag): one read tells there is none
    (every RunInstances), and only a retry, or a name held by another object (a rolled-back
    leftover still being deleted), lists the namespace."""
    digest = _sha256(token)
    name, base = _name(requested_tags(params, "instance"), most)
    try:
        context.backend.get(_INSTANCE, context.namespace, name or _generated_name(base, token, 0))
    except ApiError as exc:
        if exc.not_found:
            return []
        raise
    # Ours (a retry) or another's (a leftover): the reservation is whatever carries the token.
    return [obj for obj in region_instances(context) if _carries(obj, digest)]


def _quota_refused(exc: ApiError) -> bool:
    # Admission's quota refusal (apiserver.quota): a 403 like Kubernetes' "exceeded quota: …".
    return exc.code == 403 and exc.message.startswith("exceeded quota")


def _roll_back(context: ActionContext, made: Sequence[Wire]) -> None:
    """Delete what a failed RunInstances made, its token annotation dropped first so that a
    retry with the token does not take the leftovers for its reservation."""
    for obj in made:
        name = str(obj["metadata"]["name"])
        try:
            if CLIENT_TOKEN in (obj["metadata"].get("annotations") or {}):
                patch = {"metadata": {"annotations": {CLIENT_TOKEN: None, REQUEST: None}}}
                context.backend.patch(_INSTANCE, context.namespace, name, patch, dry_run=False)
            context.backend.delete(_INSTANCE, context.namespace, name, dry_run=False)
        except ApiError as exc:
            # The original refusal is what the client must see; this one is for operators.
            log.warning("RunInstances roll-back failed", instance=name, error=exc.message)


def _create_one(context: ActionContext, launch: _Launch, index: int) -> Wire:
    try:
        return context.backend.create(launch.instance(index), dry_run=False)
    except ApiError as exc:
        if exc.reason != "AlreadyExists" or launch.name is not None:
            raise
    # A generated name held by another object (a leftover of a rolled-back request with the
    # token, still being deleted): any other name does.
    return context.backend.create(launch.instance(index, fresh=True), dry_run=False)


def _create(context: ActionContext, launch: _Launch, least: int, most: int) -> list[Wire]:
    made: list[Wire] = []
    for index in range(most):
        try:
            made.append(_create_one(context, launch, index))
        except ApiError as exc:
            quota = _quota_refused(exc)
            if quota and len(made) >= least:
                break
            _roll_back(context, made)
            if quota:
                raise Ec2Error(
                    "InstanceLimitExceeded",
                    f"{exc.message} (MinCount {least}, but only {len(made)} more fit)",
                ) from None
            raise
        except Exception:
            _roll_back(context, made)
            raise
    return made


def run_instances(context: ActionContext, params: Params) -> Fields:
    dry_run = params.boolean("DryRun")
    least, most = _counts(params)
    token = client_token(params)
    if token and (earlier := _by_token(context, params, token, most)):
        recorded = (earlier[0]["metadata"].get("annotations") or {}).get(REQUEST)
        if recorded != _request_hash(params):
            raise Ec2Error(
                "IdempotentParameterMismatch",
                f"The client token '{token}' was used by a RunInstances with other parameters",
            )
        if dry_run:
            raise dry_run_succeeded()
        return reservation(context, reservation_of(earlier[0]), earlier, Related(context))
    reservation_id = f"r-{secrets.token_hex(9)[:17]}"
    launch = _launch(context, params, most, reservation_id)
    if dry_run:
        context.backend.create(launch.instance(0), dry_run=True)
        raise dry_run_succeeded()
    made = _create(context, launch, least, most)
    return reservation(context, reservation_id, made, Related(context))


# --------------------------------------------------------------------------- power, terminate


def _state(code_name: tuple[int, str]) -> Fields:
    return {"code": code_name[0], "name": code_name[1]}


def _instances(context: ActionContext, params: Params) -> list[Wire]:
    ids = params.strings("InstanceId")
    if not ids:
        raise missing_parameter("InstanceId.N")
    context.pool()
    return pick(Instance.KIND, region_instances(context), list(dict.fromkeys(ids)))


def _power(context: ActionContext, params: Params, power: str, verb: str) -> Fields:
    dry_run = params.boolean("DryRun")
    objects = _instances(context, params)
    for obj in objects:
        if state_of(obj) in (SHUTTING_DOWN, TERMINATED):
            raise Ec2Error(
                "IncorrectInstanceState",
                f"The instance '{id_of('Instance', obj)}' is not in a state from which it can "
                f"be {verb} ({state_of(obj)[1]})",
            )
    changes: list[Fields] = []
    for obj in objects:
        after = obj
        if obj["spec"].get("powerState", "Running") != power:
            patch = {"spec": {"powerState": power}}
            name = str(obj["metadata"]["name"])
            after = context.backend.patch(
                _INSTANCE, context.namespace, name, patch, dry_run=dry_run
            )
        changes.append(
            {
                "instanceId": id_of("Instance", obj),
                "currentState": _state(state_of(after)),
                "previousState": _state(state_of(obj)),
            }
        )
    if dry_run:
        raise dry_run_succeeded()
    return {"instancesSet": changes}


def start_instances(context: ActionContext, params: Params) -> Fields:
    return _power(context, params, "Running", "started")


def stop_instances(context: ActionContext, params: Params) -> Fields:
    return _power(context, params, "Stopped", "stopped")


def terminate_instances(context: ActionContext, params: Params) -> Fields:
    dry_run = params.boolean("DryRun")
    objects = _instances(context, params)
    changes: list[Fields] = []
    for obj in objects:
        before = state_of(obj)
        try:
            context.backend.delete(
                _INSTANCE, context.namespace, str(obj["metadata"]["name"]), dry_run=dry_run
            )
        except ApiError as exc:
            if not exc.not_found:  # gone meanwhile: terminated is what was asked
                raise
        current = TERMINATED if before == TERMINATED else SHUTTING_DOWN
        changes.append(
            {
                "instanceId": id_of("Instance", obj),
                "currentState": _state(current),
                "previousState": _state(before),
            }
        )
    if dry_run:
        raise dry_run_succeeded()
    return {"instancesSet": changes}
