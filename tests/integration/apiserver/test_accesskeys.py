"""AccessKeys through a real server (DESIGN §12): only cluster administrators read or write them
and their Secrets; admission names the bad field; the resolver finds a key by id, follows
disable/enable/delete, reads the encrypted Secret and caches it per TTL; the garbage collector
removes a deleted key's Secret.

Users (conftest): admin = system:masters, alice = admin in team-a, bob = edit in team-b,
viewer = view in team-a, nobody = no binding.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from api_types import registry
from api_types.accesskeys import AccessKey
from api_types.common import SYSTEM_NAMESPACE
from apiserver.accesskeys import AccessKeys
from apiserver.auth import AUTHENTICATED_GROUP
from controller.errors import NotFoundError
from controller.gc import GarbageCollector
from controller.store.objects import Store
from tests.integration.apiserver.conftest import ROOT
from tests.waiting import eventually

KEYS = f"{ROOT}/accesskeys"
SYSTEM_SECRETS = f"{ROOT}/namespaces/{SYSTEM_NAMESPACE}/secrets"
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
MERGE = {"Content-Type": "application/merge-patch+json"}


def _key(name: str = "ci", key_id: str = KEY_ID, **spec: Any) -> dict[str, Any]:
    return {
        "kind": "AccessKey",
        "metadata": {"name": name},
        "spec": {"accessKeyId": key_id, "user": "alice", "groups": ["tenants"],
                 "namespace": "team-a", "secretRef": {"name": f"ak-{name}"}, **spec},
    }  # fmt: skip


def _secret(name: str, value: str, owner: dict[str, Any] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if owner is not None:
        metadata["ownerReferences"] = [
            {"kind": "AccessKey", "name": owner["metadata"]["name"],
             "uid": owner["metadata"]["uid"]}
        ]  # fmt: skip
    return {"kind": "Secret", "metadata": metadata, "stringData": {"secretAccessKey": value}}


def _created(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _fields(answer: httpx.Response) -> list[str]:
    return [cause["field"] for cause in answer.json()["details"]["causes"]]


@pytest.fixture
def resolver(server: Any, api_store: Store) -> Iterator[AccessKeys]:
    keys = AccessKeys(api_store)
    keys.start()
    assert keys.wait_for_sync(30)
    yield keys
    keys.stop()


def test_only_cluster_admins_read_or_write_access_keys_and_their_secrets(
    admin: httpx.Client, client: Callable[[str | None], httpx.Client]
) -> None:
    key = _created(admin.post(KEYS, json=_key()))
    assert "status" not in key and key["spec"]["disabled"] is False
    _created(admin.post(SYSTEM_SECRETS, json=_secret("ak-ci", SECRET, key)))
    assert admin.get(f"{KEYS}/ci").json()["spec"]["accessKeyId"] == KEY_ID
    assert [k["metadata"]["name"] for k in admin.get(KEYS).json()["items"]] == ["ci"]

    for user in ("alice", "bob", "viewer", "nobody"):
        http = client(user)
        for answer in (
            http.get(KEYS),
            http.get(f"{KEYS}/ci"),
            http.post(KEYS, json=_key("mine", "AKIAAAAAAAAAAAAAAAAA", user=user)),
            http.patch(f"{KEYS}/ci", json={"spec": {"disabled": True}}, headers=MERGE),
            http.delete(f"{KEYS}/ci"),
            http.get(f"{SYSTEM_SECRETS}/ak-ci"),
            http.get(SYSTEM_SECRETS),
        ):
            assert answer.status_code == 403, (user, answer.request.url, answer.text)
            assert SECRET not in answer.text
    anonymous = client(None).get(KEYS)
    assert anonymous.status_code == 401
    got = admin.get(f"{SYSTEM_SECRETS}/ak-ci").json()
    assert base64.b64decode(got["data"]["secretAccessKey"]).decode() == SECRET


def test_admission_names_the_field(admin: httpx.Client) -> None:
    missing = admin.post(KEYS, json=_key("lost", namespace="no-such-team"))
    assert missing.status_code == 422 and _fields(missing) == ["spec.namespace"]
    assert "not found" in missing.text
    invalid = admin.post(KEYS, json=_key("bad", "AKIA-not-an-id"))
    assert invalid.status_code == 422 and _fields(invalid) == ["spec.accessKeyId"]
    _created(admin.post(KEYS, json=_key("first")))
    taken = admin.post(KEYS, json=_key("second"))
    assert taken.status_code == 422 and _fields(taken) == ["spec.accessKeyId"]
    assert "'first'" in taken.text
    # Re-writing a key with its own id is no clash.
    kept = admin.patch(f"{KEYS}/first", json={"spec": {"disabled": True}}, headers=MERGE)
    assert kept.status_code == 200, kept.text


def test_a_granted_writer_cannot_mint_keys_for_others(
    admin: httpx.Client, client: Callable[[str | None], httpx.Client]
) -> None:
    """``create accesskeys`` alone is not the right to act as another user or group."""
    role = {"kind": "ClusterRole", "metadata": {"name": "key-minter"},
            "rules": [{"apiGroups": ["skybroker.io"], "resources": ["accesskeys"],
                       "verbs": ["create", "get"]}]}  # fmt: skip
    binding = {"kind": "ClusterRoleBinding", "metadata": {"name": "key-minter"},
               "roleRef": {"kind": "ClusterRole", "name": "key-minter"},
               "subjects": [{"kind": "User", "name": "nobody"}]}  # fmt: skip
    _created(admin.post(f"{ROOT}/clusterroles", json=role))
    _created(admin.post(f"{ROOT}/clusterrolebindings", json=binding))
    nobody = client("nobody")
    eventually(lambda: nobody.get(f"{KEYS}/none").status_code == 404, what="the binding")

    as_admin = nobody.post(KEYS, json=_key("k1", "AKIA1111111111111111", user="admin", groups=[]))
    assert as_admin.status_code == 403 and _fields(as_admin) == ["spec.user"]
    as_masters = nobody.post(
        KEYS, json=_key("k2", "AKIA2222222222222222", user="nobody", groups=["system:masters"])
    )
    assert as_masters.status_code == 403 and _fields(as_masters) == ["spec.groups[0]"]
    assert "impersonate" in as_masters.json()["message"]
    own = nobody.post(KEYS, json=_key("k3", "AKIA3333333333333333", user="nobody", groups=[]))
    assert own.status_code == 201, own.text


def test_resolver_follows_the_key_and_its_secret(admin: httpx.Client, resolver: AccessKeys) -> None:
    assert resolver("AKIAZZZZZZZZZZZZZZZZ") is None
    assert resolver("not-an-id") is None
    key = _created(admin.post(KEYS, json=_key()))
    # The key exists before its Secret: no credential, and no negative answer kept.
    eventually(lambda: resolver.informer.by_index("accessKeyId", KEY_ID), what="the informer")
    assert resolver(KEY_ID) is None
    _created(admin.post(SYSTEM_SECRETS, json=_secret("ak-ci", SECRET, key)))
    credential = resolver(KEY_ID)
    assert credential is not None
    assert credential.secret_access_key == SECRET  # decrypted: the store seals Secrets
    assert credential.user.name == "alice" and credential.namespace == "team-a"
    assert credential.user.groups == {"tenants", AUTHENTICATED_GROUP}
    assert SECRET not in repr(credential)

    disabled = admin.patch(f"{KEYS}/ci", json={"spec": {"disabled": True}}, headers=MERGE)
    assert disabled.status_code == 200, disabled.text
    eventually(lambda: resolver(KEY_ID) is None, what="disabled key stops resolving")
    enabled = admin.patch(f"{KEYS}/ci", json={"spec": {"disabled": False}}, headers=MERGE)
    assert enabled.status_code == 200, enabled.text
    eventually(lambda: resolver(KEY_ID) is not None, what="enabled key resolves again")

    assert admin.delete(f"{KEYS}/ci").status_code == 200
    eventually(lambda: resolver(KEY_ID) is None, what="deleted key stops resolving")
    assert KEY_ID not in resolver._secrets  # the secret left memory with the key


def test_resolver_caches_the_secret_for_its_ttl(admin: httpx.Client, api_store: Store) -> None:
    now = [0.0]
    resolver = AccessKeys(api_store, secret_ttl=10.0, clock=lambda: now[0])
    resolver.start()
    try:
        assert resolver.wait_for_sync(30)
        key = _created(admin.post(KEYS, json=_key()))
        _created(admin.post(SYSTEM_SECRETS, json=_secret("ak-ci", SECRET, key)))
        eventually(lambda: resolver(KEY_ID) is not None, what="the key")
        rotated = admin.patch(
            f"{SYSTEM_SECRETS}/ak-ci",
            json={"stringData": {"secretAccessKey": "rotated"}},
            headers=MERGE,
        )
        assert rotated.status_code == 200, rotated.text
        first = resolver(KEY_ID)
        assert first is not None and first.secret_access_key == SECRET  # within the TTL
        now[0] = 10.5
        second = resolver(KEY_ID)
        assert second is not None and second.secret_access_key == "rotated"
    finally:
        resolver.stop()


def test_an_id_two_keys_claim_resolves_to_nothing(api_store: Store, resolver: AccessKeys) -> None:
    """Admission refuses a second key with a taken id; a direct write to etcd does not."""
    for name in ("one", "two"):
        wire = {"apiVersion": "skybroker.io/v1alpha1", **_key(name)}
        api_store.create(registry.parse_object(wire))
        api_store.create(registry.parse_object(
            {"apiVersion": "skybroker.io/v1alpha1", **_secret(f"ak-{name}", SECRET)}
            | {"metadata": {"name": f"ak-{name}", "namespace": SYSTEM_NAMESPACE}}
        ))  # fmt: skip
    eventually(lambda: len(resolver.informer.by_index("accessKeyId", KEY_ID)) == 2)
    assert resolver(KEY_ID) is None


def test_deleting_a_key_garbage_collects_its_secret(admin: httpx.Client, api_store: Store) -> None:
    key = _created(admin.post(KEYS, json=_key()))
    _created(admin.post(SYSTEM_SECRETS, json=_secret("ak-ci", SECRET, key)))
    _created(admin.post(SYSTEM_SECRETS, json=_secret("unowned", SECRET)))
    collector = GarbageCollector(api_store)
    assert collector.collect_once() == []  # the owner lives: nothing to collect
    assert admin.delete(f"{KEYS}/ci").status_code == 200
    collected = collector.collect_once()
    assert [str(k) for k in collected] == [f"secrets/{SYSTEM_NAMESPACE}/ak-ci"]
    with pytest.raises(NotFoundError):
        api_store.get(registry.by_kind("Secret").model, "ak-ci", SYSTEM_NAMESPACE)
    assert admin.get(f"{SYSTEM_SECRETS}/unowned").status_code == 200
    assert api_store.list(AccessKey).items == []
