"""api_types: DESIGN §3 manifests parse and round-trip; each validation rule names its field."""

from __future__ import annotations

import copy
import json
import warnings
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

import api_types as at
from api_types import field_errors, parse_object

# DESIGN §3, verbatim (apiVersion is shown once there; it is added to each document below).
DESIGN_MANIFESTS = """
apiVersion: skybroker.io/v1alpha1
kind: ProviderAccount
metadata: {name: aws-east}
spec:
  driver: ec2
  region: us-east-1
  endpoint: http://127.0.0.1:5000          # optional
  credentialsRef: {namespace: skybroker-system, name: aws-east}
  images: {ubuntu-22.04: ami-0abc1234}
---
kind: Pool
metadata: {name: general}
spec:
  members:
    - {account: aws-east, zones: [us-east-1a, us-east-1b], priority: 10, weight: 1}
    - {account: sim-west, priority: 5, weight: 3}
  policy: {type: LowestCost}
  allowedNamespaces: [acme]
---
kind: HardwareProfile
metadata: {name: small}
spec: {cpu: {min: 1, max: 2}, memoryMiB: {min: 1024}, diskGiB: {min: 8}}
---
kind: Subnet
metadata: {name: web, namespace: acme}
spec: {pool: general, network: {name: main, cidr: 10.10.0.0/16}, cidr: 10.10.1.0/24}
---
kind: Firewall
metadata: {name: web, namespace: acme}
spec:
  rules:
    - {direction: Ingress, protocol: tcp, ports: "80", cidrs: [0.0.0.0/0]}
    - {direction: Ingress, protocol: tcp, ports: "8000-8100", cidrs: [10.0.0.0/8]}
---
kind: Instance
metadata: {name: web-1, namespace: acme, labels: {app: web}}
spec:
  pool: general
  hardware: {profile: small}            # or {cpu: 2, memoryMiB: 4096} or {size: t3.micro}
  image: ubuntu-22.04
  subnetRef: web
  firewallRefs: [web]
  powerState: Running
---
kind: Volume
metadata: {name: data-1, namespace: acme}
spec: {pool: general, sizeGiB: 10, attachTo: {instance: web-1, device: /dev/sdf}}
---
kind: Quota
metadata: {name: default, namespace: acme}
spec: {hard: {instances: 20, cpu: 40, memoryMiB: 81920, volumes: 20, volumeGiB: 2000}}
"""

OTHER_MANIFESTS = """
kind: Namespace
metadata: {name: acme}
---
kind: Secret
metadata: {name: aws-east, namespace: skybroker-system}
type: Opaque
data: {key: QUtJQUVYQU1QTEU=}
stringData: {secret: s3cr3t}
---
kind: Role
metadata: {name: instance-editor, namespace: acme}
rules:
  - {apiGroups: [skybroker.io], resources: [instances], verbs: [get, list, create]}
---
kind: ClusterRole
metadata: {name: view}
rules:
  - {apiGroups: ["*"], resources: ["*"], verbs: [get, list, watch], resourceNames: []}
---
kind: RoleBinding
metadata: {name: alice-edit, namespace: acme}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}
subjects:
  - {kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}
  - {kind: Group, name: "acme:devs"}
---
kind: ClusterRoleBinding
metadata: {name: admins}
roleRef: {kind: ClusterRole, name: cluster-admin}
subjects: [{kind: Group, name: "system:masters"}]
---
kind: Event
metadata: {name: web-1.17a8, namespace: acme}
involvedObject: {kind: Instance, namespace: acme, name: web-1, uid: 1234-abcd}
reason: Scheduled
message: placed on aws-east/us-east-1a
type: Normal
count: 2
firstTimestamp: "2024-05-01T10:00:00Z"
lastTimestamp: "2024-05-01T10:05:00Z"
source: {component: instance-controller}
---
kind: Instance
metadata: {name: web-2, namespace: acme}
spec: {account: aws-east, hardware: {cpu: 2, memoryMiB: {min: 4096, max: 8192}}, image: u}
---
kind: Instance
metadata: {name: web-3, namespace: acme}
spec: {pool: general, hardware: {size: t3.micro}, image: ubuntu-22.04, powerState: Stopped}
"""


def _docs(text: str) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(text) if d]
    for doc in docs:
        doc.setdefault("apiVersion", "skybroker.io/v1alpha1")
    return docs


ALL_DOCS = _docs(DESIGN_MANIFESTS) + _docs(OTHER_MANIFESTS)


def errors_of(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        parse_object(data)
    return field_errors(info.value)


def assert_rejected(data: dict[str, Any], path: str, *words: str) -> None:
    errors = errors_of(data)
    matching = [msg for field, msg in errors if field == path]
    assert matching, f"no error at {path!r}; got {errors}"
    for word in words:
        assert any(word in msg for msg in matching), f"{word!r} not in {matching}"


def test_every_design_kind_is_covered() -> None:
    kinds = {doc["kind"] for doc in _docs(DESIGN_MANIFESTS)}
    assert kinds == {
        "ProviderAccount", "Pool", "HardwareProfile", "Subnet",
        "Firewall", "Instance", "Volume", "Quota",
    }  # fmt: skip


@pytest.mark.parametrize("doc", ALL_DOCS, ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifest_parses_and_round_trips(doc: dict[str, Any]) -> None:
    obj = parse_object(doc)
    assert type(obj) is at.by_kind(doc["kind"]).model
    assert obj.kind == doc["kind"] and obj.metadata.name == doc["metadata"]["name"]
    wire = obj.to_wire()
    again = parse_object(wire)
    assert again == obj
    assert again.to_wire() == wire
    # Everything the manifest said survives on the wire (defaults may be added).
    for key, value in doc.items():
        if key != "metadata":
            assert _subset(value, wire[key]), (key, value, wire[key])


def _subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and _subset(v, actual[k]) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return len(expected) == len(actual) and all(map(_subset, expected, actual))
    return bool(expected == actual)


def test_design_values_are_typed() -> None:
    objs = {o.kind: o for o in map(parse_object, _docs(DESIGN_MANIFESTS))}
    account = objs["ProviderAccount"]
    assert isinstance(account, at.ProviderAccount)
    assert account.spec.credentials_ref is not None
    assert account.spec.credentials_ref.name == "aws-east"
    assert account.spec.images == {"ubuntu-22.04": "ami-0abc1234"}
    assert account.spec.api_budget.burst >= 1 and account.spec.api_budget.requests_per_second > 0
    pool = objs["Pool"]
    assert isinstance(pool, at.Pool)
    assert pool.spec.policy.type is at.PoolPolicyType.LOWEST_COST
    assert [m.weight for m in pool.spec.members] == [1, 3]
    assert pool.spec.allows("acme") and not pool.spec.allows("other")
    profile = objs["HardwareProfile"]
    assert isinstance(profile, at.HardwareProfile)
    assert profile.spec.memory_mib is not None and profile.spec.memory_mib.contains(4096)
    instance = objs["Instance"]
    assert isinstance(instance, at.Instance)
    assert instance.spec.hardware.profile == "small"
    assert instance.spec.power_state is at.PowerState.RUNNING
    assert instance.spec.drift_policy is at.DriftPolicy.CORRECT
    assert instance.spec.deletion_policy is at.DeletionPolicy.DELETE
    assert instance.status.phase is None and instance.status.conditions == []
    firewall = objs["Firewall"]
    assert isinstance(firewall, at.Firewall)
    assert [r.port_range for r in firewall.spec.rules] == [(80, 80), (8000, 8100)]
    volume = objs["Volume"]
    assert isinstance(volume, at.Volume) and volume.spec.attach_to is not None
    assert volume.to_wire()["spec"]["sizeGiB"] == 10


def test_secret_decoding_prefers_string_data() -> None:
    secret = at.Secret.model_validate(
        {"metadata": {"name": "s"}, "data": {"key": "YQ==", "secret": "Yg=="},
         "stringData": {"secret": "plain"}}
    )  # fmt: skip
    assert secret.decoded() == {"key": b"a", "secret": b"plain"}
    assert secret.get_text("missing") is None
    assert not at.Secret.HAS_STATUS and "status" not in secret.to_wire()


def test_inline_hardware_constraints_normalise() -> None:
    hw = at.HardwareSpec.model_validate({"cpu": 2, "memoryMiB": {"min": 1024}})
    cpu, memory, disk = hw.constraints()
    assert cpu == at.IntRange(min=2, max=2) and memory == at.IntRange(min=1024) and disk is None
    assert hw.inline and not at.HardwareSpec.model_validate({"size": "t3.micro"}).inline


def test_cluster_scoped_namespace_is_ignored() -> None:
    pool = parse_object({**_docs(DESIGN_MANIFESTS)[1], "metadata": {"name": "p", "namespace": "x"}})
    assert pool.metadata.namespace is None


def test_quota_usage_exceeds() -> None:
    hard = at.QuotaLimits(instances=1, cpu=4)
    assert at.QuotaUsage(instances=2, cpu=4).exceeds(hard) == ["instances"]
    assert at.QuotaUsage(memory_mib=10**9).exceeds(hard) == []


# --------------------------------------------------------------------------- rejections


def doc(kind: str, name: str | None = None) -> dict[str, Any]:
    """A deep copy of the first test document of ``kind`` (or named ``name``)."""
    for d in ALL_DOCS:
        if d["kind"] == kind and name in (None, d["metadata"]["name"]):
            return copy.deepcopy(d)
    raise KeyError(kind)


def with_spec(kind: str, **changes: Any) -> dict[str, Any]:
    d = doc(kind)
    d["spec"].update(changes)
    return d


@pytest.mark.parametrize(
    "name, words",
    [
        ("Web-1", ["DNS-1123"]),
        ("web_1", ["DNS-1123"]),
        ("-web", ["DNS-1123"]),
        ("web.", ["DNS-1123"]),
        ("", ["DNS-1123"]),
        ("wéb", ["DNS-1123"]),
        ("web\n", ["DNS-1123"]),
        ("a" * 254, ["253"]),
    ],
)
def test_bad_object_names(name: str, words: list[str]) -> None:
    d = doc("Instance")
    d["metadata"]["name"] = name
    assert_rejected(d, "metadata.name", *words)


def test_longest_names_are_accepted() -> None:
    d = doc("Instance")
    d["metadata"]["name"] = "a" * 253
    assert parse_object(d).metadata.name == "a" * 253


def test_namespace_names_are_labels() -> None:
    d = doc("Instance")
    d["metadata"]["namespace"] = "a" * 64
    assert_rejected(d, "metadata.namespace", "63")
    ns = doc("Namespace")
    ns["metadata"]["name"] = "team.acme"
    assert_rejected(ns, "metadata.name", "label")


@pytest.mark.parametrize(
    "labels",
    [{"app": "x" * 64}, {"x" * 64: "v"}, {"app": "-bad"}, {"Bad Prefix/app": "v"}, {"": "v"}],
)
def test_bad_labels(labels: dict[str, str]) -> None:
    d = doc("Instance")
    d["metadata"]["labels"] = labels
    assert_rejected(d, "metadata.labels")


def test_bad_references_name_the_field() -> None:
    assert_rejected(with_spec("Instance", pool="General"), "spec.pool", "DNS-1123")
    assert_rejected(with_spec("Instance", subnetRef="a b"), "spec.subnetRef")
    assert_rejected(with_spec("Instance", firewallRefs=["ok", "NO"]), "spec.firewallRefs[1]")
    # a firewall is realised in a subnet's network: without one the instance would wait forever
    assert_rejected(
        with_spec("Instance", subnetRef=None, firewallRefs=["web"]),
        "spec.firewallRefs",
        "set subnetRef too",
    )
    d = doc("Pool")
    d["spec"]["members"][1]["account"] = "Sim_West"
    assert_rejected(d, "spec.members[1].account", "DNS-1123")
    assert_rejected(with_spec("Pool", allowedNamespaces=["a.b"]), "spec.allowedNamespaces[0]")
    d = doc("Volume")
    d["spec"]["attachTo"]["instance"] = "Web"
    assert_rejected(d, "spec.attachTo.instance")


@pytest.mark.parametrize(
    "cidr", ["10.0.0.0/33", "10.0.0.1/8", "10.0.0.0", "300.0.0.0/8", "banana", " 10.0.0.0/8"]
)
def test_bad_cidrs(cidr: str) -> None:
    d = doc("Subnet")
    d["spec"]["network"]["cidr"] = cidr
    assert_rejected(d, "spec.network.cidr", "CIDR")
    fw = doc("Firewall")
    fw["spec"]["rules"][0]["cidrs"] = ["10.0.0.0/8", cidr]
    assert_rejected(fw, "spec.rules[0].cidrs[1]", "CIDR")


def test_subnet_cidr_must_lie_inside_network() -> None:
    assert_rejected(with_spec("Subnet", cidr="10.11.0.0/24"), "spec.cidr", "inside")
    assert_rejected(with_spec("Subnet", cidr="10.0.0.0/8"), "spec.cidr", "inside")
    assert_rejected(with_spec("Subnet", cidr="fd00::/64"), "spec.cidr", "IPv6")
    assert parse_object(with_spec("Subnet", cidr="10.10.0.0/16"))


@pytest.mark.parametrize(
    "ports, words",
    [
        ("0", ["between 1 and 65535"]),
        ("65536", ["between 1 and 65535"]),
        ("100-80", ["greater"]),
        ("80-", ["port range"]),
        ("eighty", ["port range"]),
        ("+80", ["port range"]),
        ("٨٠", ["port range"]),
    ],
)
def test_bad_port_ranges(ports: str, words: list[str]) -> None:
    d = doc("Firewall")
    d["spec"]["rules"][1]["ports"] = ports
    assert_rejected(d, "spec.rules[1].ports", *words)


def test_ports_follow_protocol() -> None:
    d = doc("Firewall")
    del d["spec"]["rules"][0]["ports"]
    assert_rejected(d, "spec.rules[0].ports", "required")
    d = doc("Firewall")
    d["spec"]["rules"][0]["protocol"] = "icmp"
    assert_rejected(d, "spec.rules[0].ports", "must not be set")
    d["spec"]["rules"][0].pop("ports")
    assert parse_object(d)
    d["spec"]["rules"][0]["ports"] = 80
    assert_rejected(d, "spec.rules[0].ports", "string")
    d = doc("Firewall")
    d["spec"]["rules"][0]["cidrs"] = []
    assert_rejected(d, "spec.rules[0].cidrs")
    d["spec"]["rules"][0]["protocol"] = "sctp"
    assert_rejected(d, "spec.rules[0].protocol", "tcp")


def test_sizes_must_be_positive() -> None:
    assert_rejected(with_spec("Volume", sizeGiB=-1), "spec.sizeGiB", "greater than 0")
    assert_rejected(with_spec("Volume", sizeGiB=0), "spec.sizeGiB", "greater than 0")
    d = with_spec("Instance", hardware={"cpu": -2})
    assert_rejected(d, "spec.hardware.cpu", "greater than 0")
    d = doc("HardwareProfile")
    d["spec"]["cpu"] = {"min": 4, "max": 2}
    assert_rejected(d, "spec.cpu.max", "less than min")
    d["spec"]["cpu"] = {"min": 0}
    assert_rejected(d, "spec.cpu.min", "greater than 0")
    d = doc("Quota")
    d["spec"]["hard"]["volumeGiB"] = -5
    assert_rejected(d, "spec.hard.volumeGiB", "greater than or equal to 0")
    assert_rejected(with_spec("Pool", policy={"type": "Priority", "failurePenalty": -1}),
                    "spec.policy.failurePenalty")  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "spec", "path", "limit"),
    [
        ("Instance", {"hardware": {"cpu": 10**29}}, "spec.hardware.cpu", "4096 vCPUs"),
        ("Instance", {"hardware": {"cpu": 10**3999}}, "spec.hardware.cpu", "4096 vCPUs"),
        ("Instance", {"hardware": {"cpu": {"min": 2, "max": 5000}}}, "spec.hardware.cpu.max",
         "4096"),
        ("Instance", {"hardware": {"memoryMiB": 2**40}}, "spec.hardware.memoryMiB", "64 TiB"),
        ("Instance", {"hardware": {"diskGiB": {"min": 10**6}}}, "spec.hardware.diskGiB.min",
         "64 TiB"),
        ("HardwareProfile", {"memoryMiB": {"max": 10**12}}, "spec.memoryMiB.max", "64 TiB"),
        ("Volume", {"sizeGiB": 10**12}, "spec.sizeGiB", "65536 GiB"),
        ("Quota", {"hard": {"cpu": 10**21}}, "spec.hard.cpu", "at most"),
        ("Quota", {"hard": {"instances": 10**7}}, "spec.hard.instances", "1000000"),
        ("Quota", {"hard": {"volumeGiB": 10**15}}, "spec.hard.volumeGiB", "at most"),
        ("Pool", {"members": [{"account": "a", "weight": 10**9}]}, "spec.members[0].weight",
         "1000000"),
        ("Pool", {"members": [{"account": "a", "priority": -(10**9)}]},
         "spec.members[0].priority", "greater than or equal"),
        ("Pool", {"policy": {"failurePenalty": 10**8}}, "spec.policy.failurePenalty", "seconds"),
        ("ProviderAccount", {"apiBudget": {"burst": 10**9}}, "spec.apiBudget.burst", "1000000"),
    ],
)  # fmt: skip
def test_numbers_have_upper_bounds(kind: str, spec: dict[str, Any], path: str, limit: str) -> None:
    assert_rejected(with_spec(kind, **spec), path, limit)


def test_largest_numbers_within_bounds_are_accepted() -> None:
    d = doc("Instance")
    d["spec"]["hardware"] = {"cpu": 4096, "memoryMiB": 64 * 1024 * 1024, "diskGiB": 65536}
    assert parse_object(d)
    assert parse_object(with_spec("Volume", sizeGiB=65536))


def test_unknown_fields_are_rejected() -> None:
    assert_rejected(with_spec("Instance", colour="blue"), "spec.colour", "unknown field")
    d = doc("Instance")
    d["spec"]["hardware"]["gpus"] = 1
    assert_rejected(d, "spec.hardware.gpus", "unknown field")
    d = doc("Instance")
    d["specs"] = {}
    assert_rejected(d, "specs", "unknown field")
    d = doc("Instance")
    d["metadata"]["nmae"] = "x"
    assert_rejected(d, "metadata.nmae", "unknown field")
    d = doc("Secret")
    d["spec"] = {}
    assert_rejected(d, "spec", "unknown field")


def test_wrong_types_are_rejected_not_coerced() -> None:
    assert_rejected(with_spec("Volume", sizeGiB="10"), "spec.sizeGiB", "integer")
    assert_rejected(with_spec("Volume", sizeGiB=10.0), "spec.sizeGiB", "integer")
    assert_rejected(with_spec("Volume", sizeGiB=True), "spec.sizeGiB", "integer")
    assert_rejected(with_spec("Instance", hardware={"cpu": "2"}), "spec.hardware.cpu", "integer")
    assert_rejected(with_spec("Instance", image=42), "spec.image", "string")
    assert_rejected(with_spec("Instance", firewallRefs="web"), "spec.firewallRefs", "list")
    assert_rejected(with_spec("Instance", powerState="running"), "spec.powerState", "Running")
    d = doc("Pool")
    d["spec"]["members"][0]["priority"] = "10"
    assert_rejected(d, "spec.members[0].priority", "integer")
    d = doc("Secret")
    d["immutable"] = "yes"
    assert_rejected(d, "immutable", "boolean")
    d = doc("Instance")
    d["apiVersion"] = "v1"
    assert_rejected(d, "apiVersion", "skybroker.io/v1alpha1")
    d = doc("Instance")
    d["kind"] = "Instance"
    d["metadata"] = "web-1"
    assert_rejected(d, "metadata")


def test_pool_xor_account() -> None:
    assert_rejected(with_spec("Instance", account="aws-east"), "spec.account", "exactly one")
    d = doc("Instance")
    del d["spec"]["pool"]
    assert_rejected(d, "spec.pool", "exactly one of pool or account")
    d["spec"]["account"] = "aws-east"
    assert parse_object(d)
    for kind in ("Subnet", "Volume"):
        d = doc(kind)
        d["spec"]["account"] = "aws-east"
        assert_rejected(d, "spec.account", "exactly one")
        del d["spec"]["account"], d["spec"]["pool"]
        assert_rejected(d, "spec.pool")


@pytest.mark.parametrize(
    "hardware, got",
    [
        ({"profile": "small", "size": "t3.micro"}, "profile and size"),
        ({"profile": "small", "cpu": 2}, "profile and inline"),
        ({"size": "t3.micro", "memoryMiB": 1024}, "size and inline"),
        ({}, "none"),
    ],
)
def test_hardware_takes_exactly_one_form(hardware: dict[str, Any], got: str) -> None:
    assert_rejected(with_spec("Instance", hardware=hardware), "spec.hardware", "exactly one", got)


def test_other_rules() -> None:
    assert_rejected(with_spec("Instance", userData="x" * (16 * 1024 + 1)), "spec.userData", "16384")
    assert parse_object(with_spec("Instance", userData="x" * 16 * 1024))
    assert_rejected(with_spec("ProviderAccount", endpoint="ftp://h"), "spec.endpoint", "http")
    assert_rejected(with_spec("ProviderAccount", endpoint="http://"), "spec.endpoint", "host")
    assert_rejected(with_spec("ProviderAccount", driver="EC2"), "spec.driver", "DNS-1123")
    assert parse_object(with_spec("ProviderAccount", driver="openstack"))
    assert_rejected(
        with_spec("ProviderAccount", apiBudget={"requestsPerSecond": 0}),
        "spec.apiBudget.requestsPerSecond",
    )
    assert_rejected(with_spec("ProviderAccount", apiBudget={"burst": 0}), "spec.apiBudget.burst")
    d = doc("Pool")
    d["spec"]["members"].append({"account": "aws-east"})
    assert_rejected(d, "spec.members[2]", "duplicate")
    assert_rejected(with_spec("Pool", members=[]), "spec.members")
    assert_rejected(with_spec("Pool", policy={"type": "Cheapest"}), "spec.policy.type")
    d = doc("Secret")
    d["data"]["key"] = "not base64!"
    assert_rejected(d, "data", "base64")
    d = doc("ClusterRoleBinding")
    d["roleRef"]["kind"] = "Role"
    assert_rejected(d, "roleRef.kind", "ClusterRole")
    d = doc("RoleBinding")
    d["subjects"][0]["kind"] = "ServiceAccount"
    assert_rejected(d, "subjects[0].kind", "User")
    d = doc("Role")
    d["rules"][0]["verbs"] = []
    assert_rejected(d, "rules[0].verbs")
    d = doc("Event")
    d["type"] = "Error"
    assert_rejected(d, "type", "Warning")
    d = doc("Event")
    d["count"] = 0
    assert_rejected(d, "count", "greater than 0")
    d = doc("Instance")
    d["kind"] = "Volume"
    assert_rejected(d, "spec.hardware", "unknown field")


# --------------------------------------------------------------------------- envelope


def test_plain_strings_assigned_in_python_serialise_cleanly() -> None:
    obj = parse_object(doc("Instance"))
    assert isinstance(obj, at.Instance)
    obj.status.phase = "Running"  # type: ignore[assignment]
    obj.status.conditions.append(at.Condition(type="Ready", status="True", reason="Up"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wire = obj.to_wire()
    assert wire["status"]["phase"] == "Running"
    assert wire["status"]["conditions"][0]["status"] == "True"
    again = parse_object(wire)
    assert isinstance(again, at.Instance) and again.status.phase is at.InstancePhase.RUNNING
    ready = again.status.condition("Ready")
    assert ready is not None and ready.status is at.ConditionStatus.TRUE


def test_metadata_is_strict_and_complete() -> None:
    d = doc("Instance")
    d["metadata"].update(
        uid="u-1",
        resourceVersion="42",
        generation=3,
        creationTimestamp="2024-05-01T10:00:00Z",
        annotations={"note": "free text allowed here"},
        finalizers=["skybroker.io/cloud"],
        ownerReferences=[{"kind": "Pool", "name": "general", "uid": "u-0", "controller": True}],
    )
    obj = parse_object(d)
    assert obj.metadata.generation == 3 and obj.metadata.owner_references[0].controller
    assert obj.to_wire()["metadata"]["resourceVersion"] == "42"
    assert parse_object(obj.to_wire()) == obj
    d["metadata"]["generation"] = "3"
    assert_rejected(d, "metadata.generation", "integer")
    d["metadata"]["generation"] = 3
    d["metadata"]["ownerReferences"][0]["controller"] = "yes"
    assert_rejected(d, "metadata.ownerReferences[0].controller", "boolean")
    assert at.Instance.namespaced() and not at.Pool.namespaced()


@pytest.mark.parametrize("data", ALL_DOCS, ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_json_mode_validation_agrees(data: dict[str, Any]) -> None:
    """The store decodes its own values with ``model_validate_json``: same result as dicts."""
    obj = parse_object(data)
    model = at.by_kind(data["kind"]).model
    assert model.model_validate_json(json.dumps(obj.to_wire())) == obj
    assert model.model_validate_json(json.dumps(data)) == obj


@pytest.mark.parametrize(
    "change",
    [{"sizeGiB": "10"}, {"sizeGiB": 10.5}, {"sizeGiB": True}, {"pool": "A"}, {"account": "x"}],
)
def test_json_mode_rejects_like_dict_mode(change: dict[str, Any]) -> None:
    data = with_spec("Volume", **change)
    with pytest.raises(ValidationError) as info:
        at.Volume.model_validate_json(json.dumps(data))
    assert field_errors(info.value) == errors_of(data)
