"""Malformed and hostile requests end in a clean 4xx Status, and never in a half-done write."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.apiserver.conftest import ROOT, firewall

FW = f"{ROOT}/namespaces/team-a/firewalls"

YAML_BOMB = b"""
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
kind: Firewall
"""


def _post(admin: httpx.Client, body: bytes, content_type: str) -> httpx.Response:
    return admin.post(FW, content=body, headers={"Content-Type": content_type})


@pytest.mark.parametrize(
    ("body", "content_type", "code", "reason"),
    [
        (YAML_BOMB, "application/yaml", 400, "BadRequest"),
        (b"{" * 50_000 + b"}" * 50_000, "application/json", 400, "BadRequest"),
        (b'{"a":' * 200 + b"1" + b"}" * 200, "application/json", 400, "BadRequest"),
        (b"- " * 20_000 + b"x", "application/yaml", 400, "BadRequest"),
        (b"[1, 2]", "application/json", 400, "BadRequest"),
        (b"", "application/json", 400, "BadRequest"),
        (b'{"kind": "Firewall", "spec": 1' + b"0" * 5000 + b"}", "application/json", 400,
         "BadRequest"),
        (b"\xff\xfe not utf-8", "application/yaml", 400, "BadRequest"),
        (b"{not json", "application/json", 400, "BadRequest"),
        (b"kind: Firewall", "text/html", 415, "UnsupportedMediaType"),
        (b'{"kind": "Widget"}', "application/json", 400, "BadRequest"),
        (b'{"kind": 7}', "application/json", 400, "BadRequest"),
    ],
)  # fmt: skip
def test_bad_bodies(
    admin: httpx.Client, body: bytes, content_type: str, code: int, reason: str
) -> None:
    answer = _post(admin, body, content_type)
    assert answer.status_code == code, answer.text
    assert answer.json()["kind"] == "Status" and answer.json()["reason"] == reason
    assert "int_max_str_digits" not in answer.text  # no interpreter text
    assert admin.get(FW).json()["items"] == []


@pytest.mark.parametrize(
    ("plural", "body", "content_type", "code", "field"),
    [
        ("instances", b'{"spec": {"pool": "p", "image": "i", "hardware": {"cpu": 1'
         + b"0" * 29 + b"}}}", "application/json", 422, "spec.hardware.cpu"),
        ("instances", b'{"spec": {"pool": "p", "image": "i", "hardware": {"cpu": 1'
         + b"0" * 3999 + b"}}}", "application/json", 422, "spec.hardware.cpu"),
        ("instances", b"spec: {pool: p, image: i, hardware: {cpu: 1" + b"0" * 4999 + b"}}",
         "application/yaml", 400, None),
        ("quotas", b'{"spec": {"hard": {"cpu": 1' + b"0" * 21 + b"}}}", "application/json", 422,
         "spec.hard.cpu"),
        ("volumes", b'{"spec": {"pool": "p", "sizeGiB": 1' + b"0" * 12 + b"}}",
         "application/json", 422, "spec.sizeGiB"),
    ],
)  # fmt: skip
def test_numbers_out_of_bounds(
    admin: httpx.Client,
    plural: str,
    body: bytes,
    content_type: str,
    code: int,
    field: str | None,
) -> None:
    body = (
        body.replace(b"{", b'{"metadata": {"name": "big"}, ', 1)
        if body[:1] == b"{"
        else (b"metadata: {name: big}\n" + body)
    )
    url = f"{ROOT}/namespaces/team-a/{plural}"
    answer = admin.post(url, content=body, headers={"Content-Type": content_type})
    assert answer.status_code == code, answer.text
    assert "int_max_str_digits" not in answer.text  # no interpreter text
    if field is not None:
        assert field in {c["field"] for c in answer.json()["details"]["causes"]}
    assert admin.get(url).json()["items"] == []


def test_ten_megabyte_body_is_refused_before_parsing(admin: httpx.Client) -> None:
    answer = _post(admin, b"{" + b" " * (10 * 1024 * 1024) + b"}", "application/json")
    assert answer.status_code == 413 and answer.json()["reason"] == "RequestEntityTooLarge"

    def chunks() -> Any:  # no Content-Length: the limit applies while reading
        for _ in range(10):
            yield b" " * (1024 * 1024)

    streamed = admin.post(FW, content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413


def test_wrong_types_name_every_field(admin: httpx.Client) -> None:
    body: dict[str, Any] = firewall("web")
    body["spec"]["rules"][0]["ports"] = 80
    body["spec"]["rules"][0]["protocol"] = "carrier-pigeon"
    body["metadata"]["labels"] = {"ok": "x", "bad key!": "y"}
    body["spec"]["colour"] = "blue"
    answer = admin.post(FW, json=body)
    assert answer.status_code == 422 and answer.json()["reason"] == "Invalid"
    fields = {c["field"] for c in answer.json()["details"]["causes"]}
    assert {"spec.rules[0].ports", "spec.rules[0].protocol", "metadata.labels",
            "spec.colour"} <= fields  # fmt: skip


def test_conflicts_and_mismatches(admin: httpx.Client) -> None:
    created = admin.post(FW, json=firewall("web")).json()
    duplicate = admin.post(FW, json=firewall("web"))
    assert duplicate.status_code == 409 and duplicate.json()["reason"] == "AlreadyExists"
    stale = dict(created, metadata={**created["metadata"], "resourceVersion": "1"})
    answer = admin.put(f"{FW}/web", json=stale)
    assert answer.status_code == 409 and answer.json()["reason"] == "Conflict"
    no_version = dict(created, metadata={**created["metadata"], "resourceVersion": None})
    assert admin.put(f"{FW}/web", json=no_version).status_code == 422
    assert admin.put(f"{FW}/other", json=created).status_code == 400  # name mismatch
    moved = firewall("x", "team-b")
    assert admin.post(FW, json=moved).status_code == 400  # namespace mismatch
    assert admin.post(FW, json={**firewall("y"), "kind": "Volume"}).status_code == 400
    assert admin.get(f"{FW}/missing").status_code == 404
    assert admin.delete(f"{FW}/missing").status_code == 404


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "-1"},
        {"limit": "ten"},
        {"continue": "garbage"},
        {"continue": "eyJydiI6IDEsICJhZnRlciI6ICIifQ=="},  # {"rv": 1, "after": ""}
        {"watch": "maybe"},
        {"watch": "true", "resourceVersion": "abc"},
        {"labelSelector": "=oops"},
    ],
)
def test_bad_query_parameters(admin: httpx.Client, params: dict[str, str]) -> None:
    answer = admin.get(FW, params=params)
    assert answer.status_code == 400, answer.text
    assert answer.json()["kind"] == "Status"
