"""Secrets: encrypted at rest (AES-GCM), readable through the API, data only for `get`."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from api_types.tenancy import Secret
from controller.store.encryption import SecretCipher
from controller.store.keys import ObjectKey
from controller.store.objects import Store
from tests.integration.apiserver.conftest import ROOT
from tests.waiting import eventually

SECRETS = f"{ROOT}/namespaces/team-a/secrets"
PLAIN = "hunter2-very-secret"


def _raw(store: Store, name: str) -> bytes:
    key = store.layout.object_key(ObjectKey("secrets", "team-a", name))
    return bytes(store.client.range(key).kvs[0].value)


def _everything_at_rest(store: Store) -> bytes:
    prefix = store.layout.prefix.encode()
    return b"".join(bytes(kv.value) for kv in store.client.range_prefix(prefix)[0])


def test_secret_is_encrypted_at_rest_and_readable(admin: httpx.Client, api_store: Store) -> None:
    body = {"kind": "Secret", "metadata": {"name": "creds"},
            "stringData": {"secret": PLAIN}}  # fmt: skip
    created = admin.post(SECRETS, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["data"] == {"secret": base64.b64encode(PLAIN.encode()).decode()}
    assert "stringData" not in created.json() or not created.json()["stringData"]
    changed = admin.patch(
        f"{SECRETS}/creds",
        json={"stringData": {"secret": PLAIN + "-2"}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert changed.status_code == 200, changed.text

    raw = _raw(api_store, "creds")
    assert SecretCipher.is_sealed(raw)
    at_rest = _everything_at_rest(api_store)  # object, history records, everything
    for needle in (PLAIN.encode(), base64.b64encode(PLAIN.encode())):
        assert needle not in at_rest
    got = admin.get(f"{SECRETS}/creds").json()
    assert base64.b64decode(got["data"]["secret"]).decode() == PLAIN + "-2"
    history = admin.get(f"{SECRETS}/creds/history").json()["items"]
    assert history[-1]["changes"][0]["after"] == "(redacted)"


def test_plaintext_direct_write_is_read_and_sealed_on_next_write(
    admin: httpx.Client, api_store: Store
) -> None:
    key = api_store.layout.object_key(ObjectKey("secrets", "team-a", "direct"))
    manifest = {"apiVersion": "skybroker.io/v1alpha1", "kind": "Secret",
                "metadata": {"name": "direct", "namespace": "team-a"},
                "data": {"key": base64.b64encode(b"AKIA").decode()}}  # fmt: skip
    api_store.client.put(key, json.dumps(manifest).encode())
    got = admin.get(f"{SECRETS}/direct")
    assert got.status_code == 200 and got.json()["data"]["key"] == "QUtJQQ=="
    labelled = admin.patch(
        f"{SECRETS}/direct",
        json={"metadata": {"labels": {"rotated": "no"}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert labelled.status_code == 200, labelled.text
    assert SecretCipher.is_sealed(_raw(api_store, "direct"))
    assert api_store.get(Secret, "direct", "team-a").get_text("key") == "AKIA"


def test_secret_data_only_for_get(client: Any, admin: httpx.Client) -> None:
    body = {"kind": "Secret", "metadata": {"name": "creds"}, "stringData": {"k": PLAIN}}
    assert admin.post(SECRETS, json=body).status_code == 201
    viewer = client("viewer")
    assert viewer.get(f"{SECRETS}/creds").status_code == 403  # view cannot read secrets
    role = {
        "kind": "Role",
        "metadata": {"name": "lister", "namespace": "team-a"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}],
    }
    binding = {"kind": "RoleBinding", "metadata": {"name": "lister", "namespace": "team-a"},
               "roleRef": {"kind": "Role", "name": "lister"},
               "subjects": [{"kind": "User", "name": "viewer"}]}  # fmt: skip
    assert admin.post(f"{ROOT}/namespaces/team-a/roles", json=role).status_code == 201
    assert admin.post(f"{ROOT}/namespaces/team-a/rolebindings", json=binding).status_code == 201
    eventually(lambda: viewer.get(SECRETS).status_code == 200, what="the binding applies")
    items = viewer.get(SECRETS).json()["items"]
    assert [i["metadata"]["name"] for i in items] == ["creds"]
    assert "data" not in items[0], "list without get must not carry secret data"
    assert admin.get(SECRETS).json()["items"][0]["data"]
