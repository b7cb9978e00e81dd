"""Values written straight into etcd that do not decode or validate: listed, shown, deletable."""

from __future__ import annotations

import httpx
import pytest

from controller.store.keys import ObjectKey
from controller.store.objects import Store
from tests.integration.apiserver.conftest import ROOT, firewall

FW = f"{ROOT}/namespaces/team-a/firewalls"
BAD_VALUES = {
    "garbage": b"\xff\xfe not a manifest",
    "typo": b'{"kind": "Firewall", "metadata": {"name": "typo", "namespace": "team-a"}, "spec": 7}',
}


@pytest.fixture
def bad_values(api_store: Store) -> dict[str, bytes]:
    for name, value in BAD_VALUES.items():
        api_store.client.put(
            api_store.layout.object_key(ObjectKey("firewalls", "team-a", name)), value
        )
    return BAD_VALUES


@pytest.mark.usefixtures("bad_values")
def test_list_shows_invalid_values_as_rows_with_their_errors(admin: httpx.Client) -> None:
    assert admin.post(FW, json=firewall("good")).status_code == 201
    listed = admin.get(FW)
    assert listed.status_code == 200, listed.text
    rows = {item["metadata"]["name"]: item for item in listed.json()["items"]}
    assert sorted(rows) == ["garbage", "good", "typo"]
    for name in ("garbage", "typo"):
        assert rows[name]["kind"] == "Firewall"
        assert rows[name]["status"]["phase"] == "Invalid"
        (ready,) = rows[name]["status"]["conditions"]
        assert (ready["type"], ready["status"], ready["reason"]) == (
            "Ready", "False", "InvalidObject"
        )  # fmt: skip
    assert "UTF-8" in rows["garbage"]["status"]["conditions"][0]["message"]
    assert "spec" in rows["typo"]["status"]["conditions"][0]["message"]
    across = admin.get(f"{ROOT}/firewalls").json()["items"]
    assert len(across) == 3
    # a selector cannot know an invalid value's labels: it is not among the matches
    selected = admin.get(FW, params={"labelSelector": "app"}).json()["items"]
    assert selected == []
    single = admin.get(f"{FW}/typo")
    assert single.status_code == 200 and single.json() == rows["typo"]
    patched = admin.patch(
        f"{FW}/typo",
        json={"spec": {"rules": []}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert patched.status_code == 422 and "spec" in patched.text


@pytest.mark.usefixtures("bad_values")
def test_delete_removes_a_value_that_does_not_decode(admin: httpx.Client, api_store: Store) -> None:
    dry = admin.delete(f"{FW}/garbage", params={"dryRun": "All"})
    assert dry.status_code == 200, dry.text
    assert admin.get(f"{FW}/garbage").json()["status"]["phase"] == "Invalid"
    for name in ("garbage", "typo"):
        answer = admin.delete(f"{FW}/{name}")
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "Success"
        assert admin.get(f"{FW}/{name}").status_code == 404
        key = ObjectKey("firewalls", "team-a", name)
        assert [r.action for r in api_store.history(key)] == ["Deleted"]
    assert admin.get(FW).json()["items"] == []
