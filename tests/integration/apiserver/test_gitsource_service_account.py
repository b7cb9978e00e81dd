"""Admission of a GitSource's ``spec.serviceAccount``: whoever sets it must be allowed to act as
that user (be it, be in system:masters, or hold ``impersonate`` on ``users/{name}``), through a
real server. Users (conftest): bob = edit in team-b, admin = system:masters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from api_types.gitops import GitSource
from controller.store.objects import Store
from tests.integration.apiserver.conftest import ROOT
from tests.waiting import eventually

SOURCES = f"{ROOT}/namespaces/team-b/gitsources"
URL = "https://git.example.com/infra.git"


def _gitsource(name: str, account: str | None = None, url: str = URL) -> dict[str, Any]:
    spec: dict[str, Any] = {"url": url}
    if account is not None:
        spec["serviceAccount"] = account
    return {"kind": "GitSource", "metadata": {"name": name, "namespace": "team-b"}, "spec": spec}


def _assert_forbidden(answer: httpx.Response, writer: str, account: str) -> None:
    assert answer.status_code == 403, answer.text
    status = answer.json()
    assert status["reason"] == "Forbidden"
    for named in ("spec.serviceAccount", f'User "{writer}"', f'"{account}"', "impersonate"):
        assert named in status["message"], status["message"]
    assert [cause["field"] for cause in status["details"]["causes"]] == ["spec.serviceAccount"]


@pytest.fixture
def bob(client: Callable[[str | None], httpx.Client]) -> httpx.Client:
    return client("bob")


def _grant(admin: httpx.Client, name: str, rules: list[dict[str, Any]]) -> None:
    """A Role in team-b with ``rules``, bound to bob."""
    role = {"kind": "Role", "metadata": {"name": name, "namespace": "team-b"}, "rules": rules}
    binding = {"kind": "RoleBinding", "metadata": {"name": name, "namespace": "team-b"},
               "roleRef": {"kind": "Role", "name": name},
               "subjects": [{"kind": "User", "name": "bob"}]}  # fmt: skip
    assert admin.post(f"{ROOT}/namespaces/team-b/roles", json=role).status_code == 201
    assert admin.post(f"{ROOT}/namespaces/team-b/rolebindings", json=binding).status_code == 201


def test_an_edit_user_may_not_make_a_gitsource_apply_as_someone_else(bob: httpx.Client) -> None:
    _assert_forbidden(bob.post(SOURCES, json=_gitsource("infra", "admin")), "bob", "admin")
    dry = bob.post(SOURCES, params={"dryRun": "All"}, json=_gitsource("infra", "admin"))
    _assert_forbidden(dry, "bob", "admin")
    assert bob.get(f"{SOURCES}/infra").status_code == 404  # nothing written


def test_oneself_or_no_service_account_needs_no_grant(bob: httpx.Client) -> None:
    assert bob.post(SOURCES, json=_gitsource("own", "bob")).status_code == 201
    assert bob.post(SOURCES, json=_gitsource("default")).status_code == 201
    # A spec change keeps being allowed when the account is still bob himself.
    patch = {"spec": {"url": "https://git.example.com/other.git"}}
    assert bob.patch(f"{SOURCES}/own", json=patch).status_code == 200


def test_masters_may_name_any_user(admin: httpx.Client) -> None:
    assert admin.post(SOURCES, json=_gitsource("infra", "carol")).status_code == 201


def test_impersonate_on_that_user_allows_it_and_no_other(
    admin: httpx.Client, bob: httpx.Client
) -> None:
    rule = {"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"],
            "resourceNames": ["carol"]}  # fmt: skip
    _grant(admin, "act-as-carol", [rule])
    # The authorizer's caches follow etcd's watch: wait for the binding to be seen.
    trial = _gitsource("x", "carol")
    eventually(lambda: bob.post(SOURCES, params={"dryRun": "All"}, json=trial).status_code == 201)
    assert bob.post(SOURCES, json=_gitsource("infra", "carol")).status_code == 201
    _assert_forbidden(bob.post(SOURCES, json=_gitsource("other", "admin")), "bob", "admin")
    # The grant is namespaced: it does not reach team-a.
    elsewhere = _gitsource("infra", "carol")
    elsewhere["metadata"]["namespace"] = "team-a"
    rb = {"kind": "RoleBinding", "metadata": {"name": "bob-edit", "namespace": "team-a"},
          "roleRef": {"kind": "ClusterRole", "name": "edit"},
          "subjects": [{"kind": "User", "name": "bob"}]}  # fmt: skip
    assert admin.post(f"{ROOT}/namespaces/team-a/rolebindings", json=rb).status_code == 201
    team_a = f"{ROOT}/namespaces/team-a/gitsources"
    plain = _gitsource("plain")
    plain["metadata"]["namespace"] = "team-a"
    eventually(lambda: bob.post(team_a, json=plain).status_code == 201)  # edit there is seen
    _assert_forbidden(bob.post(team_a, json=elsewhere), "bob", "carol")


def test_an_edit_user_may_not_change_the_spec_of_a_gitsource_an_admin_pointed_elsewhere(
    admin: httpx.Client, bob: httpx.Client
) -> None:
    assert admin.post(SOURCES, json=_gitsource("infra", "carol")).status_code == 201
    current = bob.get(f"{SOURCES}/infra").json()
    current["spec"]["url"] = "https://evil.example.com/infra.git"
    _assert_forbidden(bob.put(f"{SOURCES}/infra", json=current), "bob", "carol")
    patch = {"spec": {"url": "https://evil.example.com/infra.git"}}
    _assert_forbidden(bob.patch(f"{SOURCES}/infra", json=patch), "bob", "carol")
    dry = bob.patch(f"{SOURCES}/infra", params={"dryRun": "All"}, json=patch)
    _assert_forbidden(dry, "bob", "carol")
    retarget = {"spec": {"serviceAccount": "bob"}}  # on update the new value is checked
    assert bob.patch(f"{SOURCES}/infra", json=retarget).status_code == 200
    back = {"spec": {"serviceAccount": "carol"}}
    _assert_forbidden(bob.patch(f"{SOURCES}/infra", json=back), "bob", "carol")
    spec = admin.get(f"{SOURCES}/infra").json()["spec"]
    assert (spec["url"], spec["serviceAccount"]) == (URL, "bob")


def test_metadata_and_status_writes_are_not_checked(
    admin: httpx.Client, bob: httpx.Client, api_store: Store
) -> None:
    assert admin.post(SOURCES, json=_gitsource("infra", "carol")).status_code == 201
    # Metadata only (what `skyctl sync` writes): the spec, and who it applies as, are unchanged.
    sync = {"metadata": {"annotations": {"gitops.skybroker.io/requested-at": "now"}}}
    assert bob.patch(f"{SOURCES}/infra", json=sync).status_code == 200
    # The controller writes status through the store.
    source = api_store.get(GitSource, "infra", "team-b")
    source.status.last_attempted_revision = "main@sha1:" + "a" * 40
    api_store.update_status(source, actor="gitsource-controller")
    # And through the API's /status, by a user allowed to write it but not to act as carol.
    status_rule = {"apiGroups": [""], "resources": ["gitsources/status"], "verbs": ["update"]}
    _grant(admin, "status-writer", [status_rule])
    current = admin.get(f"{SOURCES}/infra").json()
    current["status"]["lastHandledRequest"] = "now"
    eventually(lambda: bob.put(f"{SOURCES}/infra/status", json=current).status_code == 200)
    stored = admin.get(f"{SOURCES}/infra").json()
    assert stored["status"]["lastHandledRequest"] == "now"
    assert stored["status"]["lastAttemptedRevision"] == "main@sha1:" + "a" * 40
    assert stored["spec"]["serviceAccount"] == "carol"
