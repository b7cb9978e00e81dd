"""The apply engine's all-or-nothing mode (``controller.apply.apply_manifests``) on real etcd,
through the API server's admission pipeline in-process (``apiserver.local.LocalBackend``):
the path the GitSource reconciler applies a revision with."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from api_types import registry
from apiserver.auth import MASTERS_GROUP, User
from apiserver.handlers import Resources
from apiserver.local import LocalBackend
from apiserver.rbac import Authorizer
from controller.apply import (
    CREATED,
    UNCHANGED,
    Manifest,
    apply_manifests,
    in_prune_order,
    live_objects,
    load_manifests,
    prune,
)
from controller.store.etcd import EtcdClient
from controller.store.objects import Store
from tests.etcd_writes import key_revisions
from tests.integration.cli.helpers import seed

#: One object of each kind the seed lets stand alone, in reverse apply order on purpose.
ALL_KINDS = """\
kind: Instance
metadata: {name: web-1, namespace: acme}
spec: {pool: general, hardware: {cpu: 1, memoryMiB: 1024}, image: ubuntu-22.04}
---
kind: Firewall
metadata: {name: web, namespace: acme}
spec: {rules: [{direction: Ingress, protocol: tcp, ports: "80", cidrs: [0.0.0.0/0]}]}
---
kind: Subnet
metadata: {name: lan, namespace: acme}
spec: {pool: general, network: {name: lan, cidr: 10.0.0.0/16}, cidr: 10.0.0.0/24}
---
kind: Quota
metadata: {name: q, namespace: acme}
spec: {hard: {instances: 10}}
---
kind: HardwareProfile
metadata: {name: small}
spec: {cpu: {min: 1, max: 2}, memoryMiB: {min: 1024}}
---
kind: Secret
metadata: {name: creds, namespace: acme}
stringData: {token: s3cret}
---
kind: Namespace
metadata: {name: team-b}
"""
WRITE_ORDER = ["Namespace", "Secret", "HardwareProfile", "Quota", "Subnet", "Firewall", "Instance"]

FIREWALL = """\
kind: Firewall
metadata: {{name: {name}, namespace: {namespace}}}
spec: {{rules: [{{direction: Ingress, protocol: {protocol}, ports: "80", cidrs: [0.0.0.0/0]}}]}}
"""


def firewall(name: str, namespace: str = "acme", protocol: str = "tcp") -> str:
    return FIREWALL.format(name=name, namespace=namespace, protocol=protocol)


@pytest.fixture
def authorizer(store: Store) -> Iterator[Authorizer]:
    seed(store)  # account, pool, namespace acme, alice admin in acme
    authorizer = Authorizer(store)
    authorizer.start()
    assert authorizer.wait_for_sync(10)
    yield authorizer
    authorizer.stop()


@pytest.fixture
def admin(store: Store, authorizer: Authorizer) -> LocalBackend:
    return LocalBackend(
        Resources(store, authorizer), User("admin", "u-admin", frozenset({MASTERS_GROUP}))
    )


@pytest.fixture
def alice(store: Store, authorizer: Authorizer) -> LocalBackend:
    return LocalBackend(Resources(store, authorizer), User("alice", "u-alice", frozenset()))


def repo(directory: Path, **files: str) -> list[Path]:
    directory.mkdir(exist_ok=True)
    for old in directory.iterdir():
        old.unlink()
    for name, text in files.items():
        (directory / f"{name}.yaml").write_text(text)
    return sorted(directory.iterdir())


def manifests(directory: Path) -> list[Manifest]:
    return load_manifests([str(directory)])


def create_revisions(client: EtcdClient, prefix: str) -> dict[str, int]:
    """``Kind/name`` → the revision its key was created at, for the objects under ``prefix``."""
    kvs, _ = client.range_prefix(f"{prefix}/registry/".encode())
    found = {}
    for kv in kvs:
        plural, *_, name = bytes(kv.key).decode().removeprefix(f"{prefix}/registry/").split("/")
        found[f"{registry.by_plural(plural).kind}/{name}"] = int(kv.create_revision)
    return found


def test_a_valid_set_is_written_in_kind_order_and_a_second_apply_writes_nothing(
    admin: LocalBackend, etcd_client: EtcdClient, key_prefix: str, tmp_path: Path
) -> None:
    repo(tmp_path / "git", all=ALL_KINDS)
    before = create_revisions(etcd_client, key_prefix)

    plan = apply_manifests(admin, manifests(tmp_path / "git"), "acme")

    assert plan.failure is None and plan.written
    assert [c.target.info.kind for c in plan.changes] == WRITE_ORDER
    assert all(c.action == CREATED for c in plan.changes)
    created = {
        key: revision
        for key, revision in create_revisions(etcd_client, key_prefix).items()
        if key not in before
    }
    ordered = sorted(created, key=created.__getitem__)
    assert [key.split("/")[0] for key in ordered] == WRITE_ORDER

    written = key_revisions(etcd_client, key_prefix)
    again = apply_manifests(admin, manifests(tmp_path / "git"), "acme")
    assert again.failure is None
    assert [c.action for c in again.changes] == [UNCHANGED] * len(WRITE_ORDER)
    assert key_revisions(etcd_client, key_prefix) == written  # not one write


def test_an_update_lists_the_fields_it_changes(admin: LocalBackend, tmp_path: Path) -> None:
    repo(tmp_path / "git", fw=firewall("web"))
    apply_manifests(admin, manifests(tmp_path / "git"), "acme")
    repo(tmp_path / "git", fw=firewall("web", protocol="udp"))

    plan = apply_manifests(admin, manifests(tmp_path / "git"), "acme", dry_run=True)

    assert not plan.written
    (update,) = plan.updates
    assert update.fields == ("spec.rules",)
    live = admin.get(registry.by_kind("Firewall"), "acme", "web")
    assert live["spec"]["rules"][0]["protocol"] == "tcp"  # the dry run wrote nothing


def test_one_invalid_document_applies_nothing_and_names_file_index_and_field(
    admin: LocalBackend, etcd_client: EtcdClient, key_prefix: str, tmp_path: Path
) -> None:
    good_then_bad = firewall("a") + "---\n" + firewall("b", protocol="gopher")
    paths = repo(tmp_path / "git", a=ALL_KINDS, b=good_then_bad)
    written = key_revisions(etcd_client, key_prefix)

    plan = apply_manifests(admin, manifests(tmp_path / "git"), "acme")

    assert plan.failure is not None and not plan.written
    assert (plan.failure.file, plan.failure.document) == (str(paths[1]), 2)
    assert plan.failure.field == "spec.rules[0].protocol"
    assert plan.failure.error.code == 422
    assert key_revisions(etcd_client, key_prefix) == written


def test_a_document_the_user_may_not_write_applies_nothing(
    alice: LocalBackend, etcd_client: EtcdClient, key_prefix: str, tmp_path: Path
) -> None:
    paths = repo(tmp_path / "git", fw=firewall("mine") + "---\n" + firewall("theirs", "other"))
    written = key_revisions(etcd_client, key_prefix)

    plan = apply_manifests(alice, manifests(tmp_path / "git"), "acme")

    assert plan.failure is not None
    assert (plan.failure.file, plan.failure.document, plan.failure.field) == (
        str(paths[0]),
        2,
        "",
    )
    assert plan.failure.error.code == 403
    assert 'User "alice" cannot get resource "firewalls" in namespace "other"' in str(plan.failure)
    assert key_revisions(etcd_client, key_prefix) == written


def test_prune_goes_in_reverse_kind_order_and_keeps_what_is_annotated(
    admin: LocalBackend, tmp_path: Path
) -> None:
    kept = firewall("kept").replace(
        "namespace: acme}", "namespace: acme, annotations: {gitops.skybroker.io/prune: disabled}}"
    )
    secret = "kind: Secret\nmetadata: {name: creds}\nstringData: {token: t}\n"
    profile = (
        "kind: HardwareProfile\nmetadata: {name: tiny}\n"
        "spec: {cpu: {min: 1}, memoryMiB: {min: 512}}\n"
    )
    repo(tmp_path / "git", a=firewall("web"), b=kept, c=secret, d=profile)
    first = apply_manifests(admin, manifests(tmp_path / "git"), "acme")
    assert first.failure is None

    repo(tmp_path / "git", a=firewall("web"))
    second = apply_manifests(admin, manifests(tmp_path / "git"), "acme")
    assert second.failure is None
    reported: list[str] = []
    pruned = prune(
        admin,
        in_prune_order(live_objects(admin, sorted(first.keys))),
        second.keys,
        dry_run=False,
        report=reported.append,
    )

    assert [live.key for live in pruned] == [
        ("HardwareProfile", None, "tiny"),
        ("Secret", "acme", "creds"),
    ]
    assert reported == [
        "hardwareprofile.skybroker.io/tiny pruned",
        "secret.skybroker.io/creds pruned",
    ]
    assert admin.get(registry.by_kind("Firewall"), "acme", "kept")["metadata"]["name"] == "kept"
    assert admin.get(registry.by_kind("Firewall"), "acme", "web")["metadata"]["name"] == "web"


def test_an_object_named_twice_is_a_failure(admin: LocalBackend, tmp_path: Path) -> None:
    paths = repo(tmp_path / "git", a=firewall("web"), b=firewall("web", protocol="udp"))

    plan = apply_manifests(admin, manifests(tmp_path / "git"), "acme")

    assert plan.failure is not None and not plan.written
    assert (plan.failure.file, plan.failure.document) == (str(paths[1]), 1)
    assert plan.failure.field == "metadata.name"


#: An Instance naming a HardwareProfile, a Subnet and a Firewall of the same set, in a Namespace
#: of the
#: same set: the plain dry-run refuses it (the references do not exist yet), a staged one not.
DEPENDENT = """\
kind: Instance
metadata: {name: web-1, namespace: team-c}
spec: {pool: general, hardware: {profile: mini}, image: ubuntu-22.04, subnetRef: web,
       firewallRefs: [web]}
---
kind: Subnet
metadata: {name: web, namespace: team-c}
spec: {pool: general, network: {name: main, cidr: 10.0.0.0/16}, cidr: 10.0.1.0/24}
---
kind: Firewall
metadata: {name: web, namespace: team-c}
spec: {rules: [{direction: Ingress, protocol: tcp, ports: "80", cidrs: [0.0.0.0/0]}]}
---
kind: HardwareProfile
metadata: {name: mini}
spec: {cpu: {min: 1}, memoryMiB: {min: 512}}
---
kind: Namespace
metadata: {name: team-c}
"""


def test_a_staged_dry_run_sees_the_objects_planned_before_it(
    admin: LocalBackend, etcd_client: EtcdClient, key_prefix: str, tmp_path: Path
) -> None:
    paths = repo(tmp_path / "git", all=DEPENDENT)
    written = key_revisions(etcd_client, key_prefix)

    unstaged = apply_manifests(admin, manifests(tmp_path / "git"), "acme")
    assert unstaged.failure is not None
    assert (unstaged.failure.file, unstaged.failure.document) == (str(paths[0]), 2)
    assert key_revisions(etcd_client, key_prefix) == written

    plan = apply_manifests(admin, manifests(tmp_path / "git"), "acme", stage=admin)
    assert plan.failure is None and plan.written
    kinds = ["Namespace", "HardwareProfile", "Subnet", "Firewall", "Instance"]
    assert [c.target.info.kind for c in plan.changes] == kinds
    assert admin.get(registry.by_kind("Instance"), "team-c", "web-1")["spec"]["firewallRefs"] == [
        "web"
    ]


INSTANCE = """\
kind: Instance
metadata: {{name: {name}, namespace: acme}}
spec: {{pool: general, hardware: {{cpu: 2, memoryMiB: 1024}}, image: ubuntu-22.04}}
"""
QUOTA = "kind: Quota\nmetadata: {name: q, namespace: acme}\nspec: {hard: {cpu: 5}}\n"


def instances(count: int) -> str:
    return "---\n".join(INSTANCE.format(name=f"web-{i}") for i in range(1, count + 1))


def test_staged_objects_count_against_quota_so_a_plan_over_it_writes_nothing(
    admin: LocalBackend, etcd_client: EtcdClient, key_prefix: str, tmp_path: Path
) -> None:
    """Each Instance fits alone (cpu 2 of 5), three together do not: the plan fails at the
    third, naming it, before any write — not half-way through the writes."""
    admin.create(
        {"kind": "Quota", "metadata": {"name": "q", "namespace": "acme"},
         "spec": {"hard": {"cpu": 5}}},
        dry_run=False,
    )  # fmt: skip
    paths = repo(tmp_path / "git", web=instances(3))
    written = key_revisions(etcd_client, key_prefix)

    plan = apply_manifests(admin, manifests(tmp_path / "git"), "acme", stage=admin)

    assert plan.failure is not None and not plan.written
    assert (plan.failure.file, plan.failure.document) == (str(paths[0]), 3)
    assert plan.failure.error.code == 403
    message = str(plan.failure)
    assert "exceeded quota: q, cpu: requested 2, used 4" in message, message
    assert "by earlier documents of this plan" in message and "limited 5" in message
    assert key_revisions(etcd_client, key_prefix) == written

    repo(tmp_path / "git", web=instances(2))
    fits = apply_manifests(admin, manifests(tmp_path / "git"), "acme", stage=admin)
    assert fits.failure is None and fits.written
    assert [change.action for change in fits.changes] == [CREATED, CREATED]
    used = admin.get(registry.by_kind("Quota"), "acme", "q")["status"]["used"]
    assert (used["instances"], used["cpu"]) == (2, 4)


def test_a_quota_planned_in_the_same_set_limits_the_documents_after_it(
    admin: LocalBackend, etcd_client: EtcdClient, key_prefix: str, tmp_path: Path
) -> None:
    paths = repo(tmp_path / "git", a_quota=QUOTA, web=instances(3))
    written = key_revisions(etcd_client, key_prefix)

    plan = apply_manifests(admin, manifests(tmp_path / "git"), "acme", stage=admin)

    assert plan.failure is not None and not plan.written
    assert (plan.failure.file, plan.failure.document) == (str(paths[1]), 3)
    assert "exceeded quota: q, cpu: requested 2, used 4" in str(plan.failure)
    assert key_revisions(etcd_client, key_prefix) == written


ROLE_AND_BINDING = """\
kind: Role
metadata: {{name: ops, namespace: acme}}
rules: [{{apiGroups: [""], resources: [{resource}], verbs: [{verb}]}}]
---
kind: RoleBinding
metadata: {{name: ops, namespace: acme}}
roleRef: {{kind: Role, name: ops}}
subjects: [{{kind: User, name: bob}}]
"""


def test_a_binding_may_refer_to_a_role_of_the_same_set_and_grants_only_what_the_writer_holds(
    alice: LocalBackend, etcd_client: EtcdClient, key_prefix: str, tmp_path: Path
) -> None:
    """Escalation prevention in a staged plan: the Role planned before the binding is found
    (its rules checked), and a Role alice could not write fails the plan."""
    impersonate = ROLE_AND_BINDING.format(resource="users", verb="impersonate")
    paths = repo(tmp_path / "git", rbac=impersonate)
    written = key_revisions(etcd_client, key_prefix)
    refused = apply_manifests(alice, manifests(tmp_path / "git"), "acme", stage=alice)
    assert refused.failure is not None
    assert (refused.failure.file, refused.failure.document) == (str(paths[0]), 1)
    assert refused.failure.error.code == 403 and "impersonate" in str(refused.failure)
    assert key_revisions(etcd_client, key_prefix) == written

    repo(tmp_path / "git", rbac=ROLE_AND_BINDING.format(resource="instances", verb="get"))
    plan = apply_manifests(alice, manifests(tmp_path / "git"), "acme", stage=alice)
    assert plan.failure is None and plan.written
    assert [change.action for change in plan.changes] == [CREATED, CREATED]
