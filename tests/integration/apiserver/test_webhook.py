"""The GitSource webhook, POST /hooks/gitsources/{namespace}/{name}, through a real server.

A delivery signed with the GitSource's webhook secret sets the requested-at annotation (202);
every refusal is the same 401 and writes nothing (the GitSource's resourceVersion stays).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from api_types.gitops import REQUESTED_AT_ANNOTATION, SIGNATURE_HEADER, github_signature
from controller.store.codec import MAX_VALUE_BYTES
from tests.integration.apiserver.conftest import ROOT

SECRET = "It's a Secret to Everybody"
PUSH = json.dumps({"ref": "refs/heads/main", "after": "0" * 40}).encode()
SOURCES = f"{ROOT}/namespaces/team-a/gitsources"
HOOK = "/hooks/gitsources/team-a/infra"


def _gitsource(name: str, secret_name: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"url": "https://git.example.com/infra.git"}
    if secret_name is not None:
        spec["webhookSecretRef"] = {"name": secret_name}
    return {"kind": "GitSource", "metadata": {"name": name, "namespace": "team-a"}, "spec": spec}


def _secret(name: str, entries: dict[str, str]) -> dict[str, Any]:
    return {"kind": "Secret", "metadata": {"name": name, "namespace": "team-a"},
            "stringData": entries}  # fmt: skip


@pytest.fixture
def hooked(admin: httpx.Client) -> None:
    """GitSource team-a/infra keyed by Secret hook's webhookSecret; others broken in each way."""
    for manifest, collection in [
        (_secret("hook", {"webhookSecret": SECRET}), "secrets"),
        (_secret("no-entry", {"token": SECRET}), "secrets"),
        (_gitsource("infra", "hook"), "gitsources"),
        (_gitsource("unkeyed", None), "gitsources"),
        (_gitsource("secretless", "missing"), "gitsources"),
        (_gitsource("entryless", "no-entry"), "gitsources"),
    ]:
        answer = admin.post(f"{ROOT}/namespaces/team-a/{collection}", json=manifest)
        assert answer.status_code == 201, answer.text


@pytest.fixture
def anonymous(client: Callable[[str | None], httpx.Client]) -> Iterator[httpx.Client]:
    """No bearer token: GitHub cannot send one."""
    yield client(None)


def _deliver(
    http: httpx.Client, path: str = HOOK, body: bytes = PUSH, signature: str | None = None
) -> httpx.Response:
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "push"}
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    return http.post(path, content=body, headers=headers)


def _signed(secret: str = SECRET, body: bytes = PUSH) -> str:
    return github_signature(secret.encode(), body)


@pytest.mark.usefixtures("hooked")
def test_a_signed_delivery_requests_a_sync(anonymous: httpx.Client, admin: httpx.Client) -> None:
    answer = _deliver(anonymous, signature=_signed())
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    assert accepted["kind"] == "GitSource"
    assert (accepted["namespace"], accepted["name"]) == ("team-a", "infra")
    source = admin.get(f"{SOURCES}/infra").json()
    assert source["metadata"]["annotations"][REQUESTED_AT_ANNOTATION] == accepted["requestedAt"]
    assert source["metadata"]["generation"] == 1  # metadata only: the spec is untouched

    again = _deliver(anonymous, signature=_signed())  # each delivery is a new request
    assert again.status_code == 202
    annotations = admin.get(f"{SOURCES}/infra").json()["metadata"]["annotations"]
    assert annotations[REQUESTED_AT_ANNOTATION] == again.json()["requestedAt"]


@pytest.mark.usefixtures("hooked")
@pytest.mark.parametrize(
    "name, signature",
    [
        ("infra", _signed(body=PUSH + b" ")),  # signature of another body
        ("infra", None),  # no header
        ("infra", _signed(secret="a guess")),  # the wrong secret
        ("infra", "sha1=" + _signed().removeprefix("sha256=")),  # another scheme
        ("unkeyed", _signed()),  # the GitSource has no webhookSecretRef
        ("secretless", _signed()),  # its Secret does not exist
        ("entryless", _signed()),  # its Secret has no webhookSecret entry
        ("absent", _signed()),  # no such GitSource: the same 401, its absence not told
    ],
)
def test_every_refusal_is_the_same_401_and_writes_nothing(
    anonymous: httpx.Client, admin: httpx.Client, name: str, signature: str | None
) -> None:
    before = admin.get(f"{SOURCES}/{name}").json()
    answer = _deliver(anonymous, f"/hooks/gitsources/team-a/{name}", signature=signature)
    assert answer.status_code == 401, answer.text
    status = answer.json()
    assert (status["kind"], status["reason"]) == ("Status", "Unauthorized")
    assert status["message"] == "the webhook delivery is not authorized"
    assert admin.get(f"{SOURCES}/{name}").json() == before


def test_an_unknown_namespace_is_refused_alike(anonymous: httpx.Client) -> None:
    answer = _deliver(anonymous, "/hooks/gitsources/nowhere/infra", signature=_signed())
    assert answer.status_code == 401
    assert answer.json()["message"] == "the webhook delivery is not authorized"


@pytest.mark.usefixtures("hooked")
def test_a_huge_body_is_refused_before_anything_is_read(
    anonymous: httpx.Client, admin: httpx.Client
) -> None:
    before = admin.get(f"{SOURCES}/infra").json()["metadata"]["resourceVersion"]
    body = b" " * (MAX_VALUE_BYTES + 1)
    answer = _deliver(anonymous, body=body, signature=_signed(body=body))
    assert answer.status_code == 413 and answer.json()["reason"] == "RequestEntityTooLarge"
    assert admin.get(f"{SOURCES}/infra").json()["metadata"]["resourceVersion"] == before


@pytest.mark.usefixtures("hooked")
def test_only_post_and_only_gitsource_paths(anonymous: httpx.Client) -> None:
    for method in ("GET", "PUT", "DELETE"):
        answer = anonymous.request(method, HOOK)
        assert answer.status_code == 405, (method, answer.text)
        assert answer.json()["reason"] == "MethodNotAllowed"
    for path in ("/hooks/", "/hooks/gitsources/team-a", "/hooks/instances/team-a/infra",
                 "/hooks/gitsources/team-a/infra/extra", "/hooks/gitsources//infra"):  # fmt: skip
        answer = _deliver(anonymous, path, signature=_signed())
        assert answer.status_code == 404, (path, answer.text)
