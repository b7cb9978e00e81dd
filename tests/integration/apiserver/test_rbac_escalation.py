"""RBAC escalation prevention (``apiserver.escalation``) through a real server: a Role or binding
grants only what its writer holds, unless the writer has ``escalate`` / ``bind``; so a namespace
admin cannot grant herself ``impersonate`` and name a cluster admin as a GitSource's
serviceAccount. Users (conftest): alice = admin in team-a, bob = edit in team-b, admin =
system:masters, nobody = no binding."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.integration.apiserver.conftest import ROOT
from tests.waiting import eventually

TEAM_A = f"{ROOT}/namespaces/team-a"
IMPERSONATE_ALL = {"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"]}
IMPERSONATE_CAROL = {**IMPERSONATE_ALL, "resourceNames": ["carol"]}


@pytest.fixture
def alice(client: Callable[[str | None], httpx.Client]) -> httpx.Client:
    return client("alice")


@pytest.fixture
def bob(client: Callable[[str | None], httpx.Client]) -> httpx.Client:
    return client("bob")


def _role(name: str, rules: list[dict[str, Any]], namespace: str | None = "team-a") -> Any:
    if namespace is None:
        return {"kind": "ClusterRole", "metadata": {"name": name}, "rules": rules}
    return {"kind": "Role", "metadata": {"name": name, "namespace": namespace}, "rules": rules}


def _binding(
    name: str, ref_kind: str, ref: str, user: str, namespace: str | None = "team-a"
) -> Any:
    kind = "RoleBinding" if namespace else "ClusterRoleBinding"
    metadata = {"name": name, "namespace": namespace} if namespace else {"name": name}
    return {"kind": kind, "metadata": metadata, "roleRef": {"kind": ref_kind, "name": ref},
            "subjects": [{"kind": "User", "name": user}]}  # fmt: skip


def _gitsource(account: str, namespace: str, name: str = "infra") -> Any:
    spec = {"url": "https://git.example.com/infra.git", "serviceAccount": account}
    return {"kind": "GitSource", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def _assert_escalation(answer: httpx.Response, field: str, *named: str) -> None:
    assert answer.status_code == 403, answer.text
    status = answer.json()
    assert status["reason"] == "Forbidden"
    for text in ('User "alice"', "escalation", *named):
        assert text in status["message"], status["message"]
    assert [cause["field"] for cause in status["details"]["causes"]] == [field]


def test_a_namespace_admin_may_not_grant_herself_impersonate(
    admin: httpx.Client, alice: httpx.Client
) -> None:
    role = _role("act-as-anyone", [IMPERSONATE_ALL])
    _assert_escalation(alice.post(f"{TEAM_A}/roles", json=role), "rules", 'impersonate "users"')
    dry = alice.post(f"{TEAM_A}/roles", params={"dryRun": "All"}, json=role)
    _assert_escalation(dry, "rules", "impersonate")
    assert admin.get(f"{TEAM_A}/roles/act-as-anyone").status_code == 404
    # Nor bind herself to a role someone else wrote with it, or to cluster-admin.
    assert admin.post(f"{TEAM_A}/roles", json=role).status_code == 201
    mine = _binding("mine", "Role", "act-as-anyone", "alice")
    _assert_escalation(alice.post(f"{TEAM_A}/rolebindings", json=mine), "roleRef", "impersonate")
    root = _binding("root", "ClusterRole", "cluster-admin", "alice")
    _assert_escalation(alice.post(f"{TEAM_A}/rolebindings", json=root), "roleRef", "cluster-admin")
    assert admin.get(f"{TEAM_A}/rolebindings/mine").status_code == 404
    # So the hole the GitSource check relies on being closed stays closed.
    answer = alice.post(f"{TEAM_A}/gitsources", json=_gitsource("admin", "team-a"))
    assert answer.status_code == 403 and "spec.serviceAccount" in answer.text


def test_wildcards_and_all_names_are_covered_only_by_the_same(alice: httpx.Client) -> None:
    star = _role("star", [{"apiGroups": [""], "resources": ["instances"], "verbs": ["*"]}])
    _assert_escalation(alice.post(f"{TEAM_A}/roles", json=star), "rules", '* "instances"')
    quotas = _role("quotas", [{"apiGroups": [""], "resources": ["quotas"], "verbs": ["update"]}])
    _assert_escalation(alice.post(f"{TEAM_A}/roles", json=quotas), "rules", 'update "quotas"')


def test_a_namespace_admin_may_grant_what_she_holds(alice: httpx.Client, bob: httpx.Client) -> None:
    rules = [{"apiGroups": [""], "resources": ["instances"], "verbs": ["get", "create"],
              "resourceNames": ["web"]},
             {"apiGroups": ["skybroker.io"], "resources": ["firewalls"],
              "verbs": ["list"]}]  # fmt: skip
    assert alice.post(f"{TEAM_A}/roles", json=_role("web", rules)).status_code == 201
    bound = _binding("bob-web", "Role", "web", "bob")
    assert alice.post(f"{TEAM_A}/rolebindings", json=bound).status_code == 201
    edit = _binding("bob-edit", "ClusterRole", "edit", "bob")
    assert alice.post(f"{TEAM_A}/rolebindings", json=edit).status_code == 201
    eventually(lambda: bob.get(f"{TEAM_A}/firewalls").status_code == 200)


def test_a_binding_to_a_missing_role_needs_bind(alice: httpx.Client) -> None:
    ghost = _binding("ghost", "ClusterRole", "not-yet", "alice")
    answer = alice.post(f"{TEAM_A}/rolebindings", json=ghost)
    _assert_escalation(answer, "roleRef.name", '"not-yet"', "does not exist")


def test_bind_and_escalate_grants_delegate_it(
    admin: httpx.Client, alice: httpx.Client, bob: httpx.Client
) -> None:
    """Kubernetes' delegation: ``bind`` on a named role lets alice hand it out without holding
    it; ``escalate`` on roles lets her write rules she lacks."""
    as_carol = _role("as-carol", [IMPERSONATE_CAROL], None)
    assert admin.post(f"{ROOT}/clusterroles", json=as_carol).status_code == 201
    delegate = [
        {"apiGroups": [""], "resources": ["clusterroles"], "verbs": ["bind"],
         "resourceNames": ["as-carol"]},
        {"apiGroups": [""], "resources": ["roles"], "verbs": ["escalate"]},
    ]  # fmt: skip
    assert admin.post(f"{TEAM_A}/roles", json=_role("delegate", delegate)).status_code == 201
    grant = _binding("alice-delegate", "Role", "delegate", "alice")
    assert admin.post(f"{TEAM_A}/rolebindings", json=grant).status_code == 201
    to_bob = _binding("bob-as-carol", "ClusterRole", "as-carol", "bob")
    eventually(lambda: alice.post(f"{TEAM_A}/rolebindings", json=to_bob).status_code == 201)
    # bind is per name: another ClusterRole with the same rules is not delegated.
    as_carol_2 = _role("as-carol-2", [IMPERSONATE_CAROL], None)
    assert admin.post(f"{ROOT}/clusterroles", json=as_carol_2).status_code == 201
    other = _binding("bob-as-carol-2", "ClusterRole", "as-carol-2", "bob")
    _assert_escalation(alice.post(f"{TEAM_A}/rolebindings", json=other), "roleRef", "impersonate")
    role = _role("act-as-anyone", [IMPERSONATE_ALL])
    assert alice.post(f"{TEAM_A}/roles", json=role).status_code == 201
    # bob, given edit in team-a too, may now name carol there.
    edit = _binding("bob-edit", "ClusterRole", "edit", "bob")
    assert alice.post(f"{TEAM_A}/rolebindings", json=edit).status_code == 201
    eventually(
        lambda: (
            bob.post(f"{TEAM_A}/gitsources", json=_gitsource("carol", "team-a")).status_code == 201
        )
    )


def test_a_cluster_admins_cluster_role_binding_grants_impersonate(
    admin: httpx.Client, client: Callable[[str | None], httpx.Client], bob: httpx.Client
) -> None:
    """The legitimate path: a cluster admin (here ``nobody``, bound to cluster-admin by a
    ClusterRoleBinding — not in system:masters) grants impersonate on users/carol cluster-wide."""
    root = _binding("nobody-root", "ClusterRole", "cluster-admin", "nobody", None)
    assert admin.post(f"{ROOT}/clusterrolebindings", json=root).status_code == 201
    operator = client("nobody")
    cluster_role = _role("as-carol", [IMPERSONATE_CAROL], None)
    eventually(lambda: operator.post(f"{ROOT}/clusterroles", json=cluster_role).status_code == 201)
    grant = _binding("bob-as-carol", "ClusterRole", "as-carol", "bob", None)
    assert operator.post(f"{ROOT}/clusterrolebindings", json=grant).status_code == 201
    team_b = f"{ROOT}/namespaces/team-b/gitsources"
    eventually(lambda: bob.post(team_b, json=_gitsource("carol", "team-b")).status_code == 201)
    denied = bob.post(team_b, json=_gitsource("admin", "team-b", "other"))
    assert denied.status_code == 403 and "spec.serviceAccount" in denied.text


def test_writes_that_grant_nothing_new_are_not_checked(
    admin: httpx.Client, alice: httpx.Client
) -> None:
    powerful = _role("powerful", [IMPERSONATE_ALL])
    assert admin.post(f"{TEAM_A}/roles", json=powerful).status_code == 201
    relabel = {"metadata": {"labels": {"owner": "alice"}}}
    assert alice.patch(f"{TEAM_A}/roles/powerful", json=relabel).status_code == 200
    more = {"rules": [IMPERSONATE_ALL, IMPERSONATE_CAROL]}
    _assert_escalation(alice.patch(f"{TEAM_A}/roles/powerful", json=more), "rules")
    bound = _binding("bob-powerful", "Role", "powerful", "bob")
    assert admin.post(f"{TEAM_A}/rolebindings", json=bound).status_code == 201
    assert alice.patch(f"{TEAM_A}/rolebindings/bob-powerful", json=relabel).status_code == 200
    add_self = {"subjects": [{"kind": "User", "name": "bob"}, {"kind": "User", "name": "alice"}]}
    answer = alice.patch(f"{TEAM_A}/rolebindings/bob-powerful", json=add_self)
    _assert_escalation(answer, "roleRef", "impersonate")
    assert alice.delete(f"{TEAM_A}/rolebindings/bob-powerful").status_code == 200
    assert alice.delete(f"{TEAM_A}/roles/powerful").status_code == 200
