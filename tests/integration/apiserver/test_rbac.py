"""The RBAC matrix: users by verbs by kinds, through a real server (one server, many requests).

Bindings (conftest): alice = admin in team-a, bob = edit in team-b, viewer = view in team-a,
nobody = no binding, anonymous = no token, admin = system:masters.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import httpx

from tests.integration.apiserver.conftest import ROOT, firewall
from tests.waiting import eventually

USERS = ["admin", "alice", "bob", "viewer", "nobody", None]
_names = itertools.count()


def _secret(name: str, namespace: str) -> dict[str, Any]:
    return {"kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "stringData": {"key": "k", "secret": "s3cr3t"}}  # fmt: skip


def _quota(name: str, namespace: str) -> dict[str, Any]:
    return {"kind": "Quota", "metadata": {"name": name, "namespace": namespace},
            "spec": {"hard": {"instances": 5}}}  # fmt: skip


def _binding(name: str, namespace: str) -> dict[str, Any]:
    return {"kind": "RoleBinding", "metadata": {"name": name, "namespace": namespace},
            "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "someone"}]}  # fmt: skip


def _gitsource(name: str, namespace: str) -> dict[str, Any]:
    return {"kind": "GitSource", "metadata": {"name": name, "namespace": namespace},
            "spec": {"url": "https://git.example.com/infra.git"}}  # fmt: skip


def _pool(name: str, namespace: str) -> dict[str, Any]:
    return {"kind": "Pool", "metadata": {"name": name}, "spec": {"members": [{"account": "a"}]}}


KINDS: dict[str, tuple[str, Callable[[str, str], dict[str, Any]], bool]] = {
    # plural: (home namespace or "" for cluster-scoped, manifest maker, namespaced)
    "firewalls": ("team-a", lambda n, ns: firewall(n, ns), True),
    "secrets": ("team-a", _secret, True),
    "quotas": ("team-a", _quota, True),
    "rolebindings": ("team-a", _binding, True),
    "gitsources": ("team-a", _gitsource, True),
    "pools": ("", _pool, False),
}

ALL = {"get", "list", "watch", "create", "update", "delete"}
READ = {"get", "list", "watch"}
#: (user, plural, namespace) → verbs allowed; anything not listed is forbidden.
ALLOWED: dict[tuple[str, str, str], set[str]] = {
    **{("admin", plural, ns): ALL for plural in KINDS for ns in ("team-a", "team-b", "")},
    ("alice", "firewalls", "team-a"): ALL,
    ("alice", "secrets", "team-a"): ALL,
    ("alice", "quotas", "team-a"): READ,
    ("alice", "rolebindings", "team-a"): ALL,
    ("alice", "gitsources", "team-a"): ALL,
    ("bob", "firewalls", "team-b"): ALL,
    ("bob", "secrets", "team-b"): ALL,
    ("bob", "quotas", "team-b"): READ,
    ("bob", "gitsources", "team-b"): ALL,  # edit may create and change GitSources
    ("viewer", "firewalls", "team-a"): READ,
    ("viewer", "quotas", "team-a"): READ,
    ("viewer", "gitsources", "team-a"): READ,  # view may only read them
}


def _collection(plural: str, namespace: str) -> str:
    return f"{ROOT}/namespaces/{namespace}/{plural}" if namespace else f"{ROOT}/{plural}"


def _attempt(
    admin: httpx.Client, user: httpx.Client, plural: str, namespace: str, verb: str
) -> int:
    maker = KINDS[plural][1]
    collection = _collection(plural, namespace)
    name = f"obj-{next(_names)}"
    if verb != "create":
        created = admin.post(collection, json=maker(name, namespace))
        assert created.status_code == 201, created.text
    if verb == "get":
        return user.get(f"{collection}/{name}").status_code
    if verb == "list":
        return user.get(collection).status_code
    if verb == "watch":
        # a watch from "now" answers at once (headers) once authorized; read no further
        revision = admin.get(collection).json()["metadata"]["resourceVersion"]
        params = {"watch": "true", "resourceVersion": revision}
        with user.stream("GET", collection, params=params) as response:
            return response.status_code
    if verb == "create":
        return user.post(collection, json=maker(name, namespace)).status_code
    if verb == "update":
        current = admin.get(f"{collection}/{name}").json()
        current["metadata"]["labels"] = {"touched": "yes"}
        return user.put(f"{collection}/{name}", json=current).status_code
    return user.delete(f"{collection}/{name}").status_code


def test_rbac_matrix(client: Callable[[str | None], httpx.Client], admin: httpx.Client) -> None:
    wrong = []
    for user_name in USERS:
        user = client(user_name)
        for plural, (home, _, namespaced) in KINDS.items():
            namespaces = ["team-a", "team-b"] if namespaced else [home]
            for namespace, verb in itertools.product(namespaces, sorted(ALL)):
                code = _attempt(admin, user, plural, namespace, verb)
                if user_name is None:
                    expected = {401}
                elif verb in ALLOWED.get((user_name, plural, namespace), set()):
                    expected = {200, 201}
                else:
                    expected = {403}
                if code not in expected:
                    wrong.append((user_name, verb, plural, namespace, code))
    assert not wrong, wrong


def test_forbidden_names_user_verb_resource_namespace(client: Any) -> None:
    answer = client("bob").get(f"{ROOT}/namespaces/team-a/firewalls")
    status = answer.json()
    assert answer.status_code == 403 and status["reason"] == "Forbidden"
    assert status["message"] == (
        'User "bob" cannot list resource "firewalls" in namespace "team-a"'
    )
    unauthenticated = client(None).get(f"{ROOT}/namespaces/team-a/firewalls")
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["reason"] == "Unauthorized"
    bad = httpx.get(
        f"{client(None).base_url}{ROOT}/namespaces",
        headers={"Authorization": "Bearer not-a-token"},
    )
    assert bad.status_code == 401


def test_tenants_see_only_their_namespaces(client: Any, admin: httpx.Client) -> None:
    alice = client("alice")
    assert alice.get(f"{ROOT}/namespaces/team-a").status_code == 200
    assert alice.get(f"{ROOT}/namespaces/team-b").status_code == 403
    # Kubernetes' behaviour: a cluster-wide list needs a cluster-wide permission.
    assert alice.get(f"{ROOT}/namespaces").status_code == 403
    assert alice.get(f"{ROOT}/firewalls").status_code == 403
    # Nobody but cluster roles may write status (a tenant could reset its quota usage).
    admin.post(f"{ROOT}/namespaces/team-a/firewalls", json=firewall("fw"))
    current = admin.get(f"{ROOT}/namespaces/team-a/firewalls/fw").json()
    status_path = f"{ROOT}/namespaces/team-a/firewalls/fw/status"
    assert alice.put(status_path, json=current).status_code == 403


def test_stored_roles_and_group_bindings_apply_without_restart(
    client: Any, admin: httpx.Client
) -> None:
    nobody = client("nobody")
    assert nobody.get(f"{ROOT}/pools").status_code == 403
    role = {
        "kind": "ClusterRole",
        "metadata": {"name": "pool-reader"},
        "rules": [{"apiGroups": ["skybroker.io"], "resources": ["pools"], "verbs": ["list"]}],
    }
    binding = {"kind": "ClusterRoleBinding", "metadata": {"name": "everyone-reads-pools"},
               "roleRef": {"kind": "ClusterRole", "name": "pool-reader"},
               "subjects": [{"kind": "Group", "name": "system:authenticated"}]}  # fmt: skip
    assert admin.post(f"{ROOT}/clusterroles", json=role).status_code == 201
    assert admin.post(f"{ROOT}/clusterrolebindings", json=binding).status_code == 201
    # the informers pick the binding up from the watch
    eventually(lambda: nobody.get(f"{ROOT}/pools").status_code == 200)
    assert nobody.get(f"{ROOT}/pools/x").status_code == 403  # list only, not get
