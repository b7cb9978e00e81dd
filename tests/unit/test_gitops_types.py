"""GitSource (DESIGN §9): the manifest's shape, defaults, and every refusal naming its field."""

from __future__ import annotations

from typing import Any

import pytest

from api_types import GitSource, by_plural, json_schema, parse_object
from api_types.gitops import (
    REQUESTED_AT_ANNOTATION,
    SIGNATURE_HEADER,
    WEBHOOK_SECRET_KEY,
    GitRef,
    GitSourceCondition,
    duration_seconds,
    source_label_value,
)
from tests.unit.test_api_types import assert_rejected, errors_of

SHA = "0123456789abcdef0123456789abcdef01234567"


def manifest(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "skybroker.io/v1alpha1",
        "kind": "GitSource",
        "metadata": {"name": "infra", "namespace": "acme"},
        "spec": {"url": "git://127.0.0.1:9418/infra.git", **spec},
    }


def test_design_example_parses_and_round_trips() -> None:
    data = manifest(
        ref={"branch": "main"},
        path="envs/prod",
        interval="60s",
        prune=True,
        wait=True,
        timeout="5m",
        dependsOn=[{"name": "network"}],
        suspend=False,
        credentialsRef={"name": "git-creds"},
        webhookSecretRef={"name": "hook"},
        serviceAccount="gitops-acme",
    )
    data["status"] = {
        "artifact": {"revision": f"main@sha1:{SHA}", "fetchedAt": "2026-01-01T00:00:00Z"},
        "lastAppliedRevision": f"main@sha1:{SHA}",
        "lastAttemptedRevision": f"main@sha1:{SHA}",
        "inventory": [{"kind": "Instance", "namespace": "acme", "name": "web-1", "uid": "u1"}],
        "conditions": [{"type": "Ready", "status": "True", "reason": "Applied"}],
        "lastHandledRequest": "2026-01-01T00:00:00Z",
    }
    source = parse_object(data)
    assert isinstance(source, GitSource)
    assert source.spec.interval_seconds == 60 and source.spec.timeout_seconds == 300
    wire = source.to_wire()
    assert wire["spec"]["dependsOn"] == [{"name": "network"}]
    assert wire["spec"]["credentialsRef"] == {"name": "git-creds"}
    assert wire["status"]["artifact"]["revision"] == f"main@sha1:{SHA}"
    assert wire["status"]["inventory"][0]["kind"] == "Instance"
    assert wire["status"]["lastHandledRequest"] == "2026-01-01T00:00:00Z"
    assert source.status.last_handled_request == "2026-01-01T00:00:00Z"
    assert "phase" not in wire["status"]
    assert parse_object(wire) == source


def test_defaults_are_the_safe_ones() -> None:
    spec = parse_object(manifest()).to_wire()["spec"]
    assert spec["ref"] == {"branch": "main"}
    assert (spec["interval"], spec["timeout"]) == ("60s", "5m")
    assert (spec["prune"], spec["wait"], spec["suspend"]) == (False, False, False)
    assert "path" not in spec and "serviceAccount" not in spec


def test_registered_as_a_namespaced_kind_with_a_schema() -> None:
    info = by_plural("gitsources")
    assert info.kind == "GitSource" and info.namespaced and info.has_status
    assert "dependsOn" in json_schema("GitSource")["$defs"]["GitSourceSpec"]["properties"]


@pytest.mark.parametrize(
    "url",
    [
        "file:///srv/git/infra.git",
        "git://127.0.0.1:9418/infra.git",
        "http://git.example.com/infra.git",
        "https://git.example.com:8443/org/infra.git",
        "ssh://git@git.example.com:2222/org/infra.git",
        "https://bot@git.example.com/infra.git",
    ],
)
def test_urls_of_every_transport_are_accepted(url: str) -> None:
    assert parse_object(manifest(url=url)).spec.url == url  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "url, words",
    [
        ("ftp://git.example.com/infra.git", ("scheme must be one of", "file, git, http")),
        ("git.example.com:infra.git", ("scheme",)),
        ("https:///infra.git", ("no host",)),
        ("file://host/srv/infra.git", ("file:///absolute/path",)),
        ("https://bot:hunter2@git.example.com/infra.git", ("password", "credentialsRef")),
        ("https://git.example.com/in fra.git", ("spaces",)),
        ("https://git.example.com:99999/infra.git", ("not a valid URL",)),
        ("https://git.example.com/infra.git?x=1", ("no query",)),
        ("https://git.example.com/" + "a" * 3000, ("2048 characters",)),
    ],
)
def test_bad_urls_are_refused(url: str, words: tuple[str, ...]) -> None:
    assert_rejected(manifest(url=url), "spec.url", *words)


def test_a_password_in_the_url_is_not_echoed() -> None:
    errors = errors_of(manifest(url="https://bot:hunter2@git.example.com/infra.git"))
    assert errors and not any("hunter2" in message for _, message in errors)


@pytest.mark.parametrize(
    "ref", [{"branch": "main"}, {"branch": "feature/x-1"}, {"tag": "v1.2.0"}, {"commit": SHA}]
)
def test_one_ref_of_each_kind_is_accepted(ref: dict[str, str]) -> None:
    assert parse_object(manifest(ref=ref))


@pytest.mark.parametrize(
    "ref, path, words",
    [
        ({"branch": "main", "tag": "v1"}, "spec.ref.tag", ("exactly one", "branch")),
        ({"tag": "v1", "commit": SHA}, "spec.ref.commit", ("exactly one",)),
        ({}, "spec.ref.branch", ("exactly one of branch, tag or commit is required",)),
        ({"commit": SHA[:12]}, "spec.ref.commit", ("40-hex sha1",)),
        ({"commit": SHA.upper()}, "spec.ref.commit", ("40-hex sha1",)),
        ({"branch": "a..b"}, "spec.ref.branch", ("not a valid git branch",)),
        ({"branch": "-rf"}, "spec.ref.branch", ("not a valid git branch",)),
        ({"branch": "x.lock"}, "spec.ref.branch", ("not a valid git branch",)),
        ({"tag": "v 1"}, "spec.ref.tag", ("not a valid git branch or tag",)),
        ({"branch": ""}, "spec.ref.branch", ("1-255 characters",)),
        ({"branch": "b" * 256}, "spec.ref.branch", ("1-255 characters",)),
        ({"branch": 7}, "spec.ref.branch", ("string",)),
        ({"sha": SHA}, "spec.ref.sha", ("unknown field",)),
    ],
)
def test_bad_refs_are_refused(ref: dict[str, Any], path: str, words: tuple[str, ...]) -> None:
    assert_rejected(manifest(ref=ref), path, *words)


@pytest.mark.parametrize("path", ["envs/prod", "./envs/prod/", "manifests", "."])
def test_relative_paths_are_accepted(path: str) -> None:
    assert parse_object(manifest(path=path))


@pytest.mark.parametrize(
    "path, words",
    [
        ("../other", ("must not contain '..'",)),
        ("envs/../../etc", ("must not contain '..'",)),
        ("/etc/skybroker", ("relative to the repository root",)),
        ("envs\\prod", ("'/'-separated",)),
        ("", ("1-1024 characters",)),
        ("a/" * 600, ("1-1024 characters",)),
        (["envs"], ("string",)),
    ],
)
def test_bad_paths_are_refused(path: Any, words: tuple[str, ...]) -> None:
    assert_rejected(manifest(path=path), "spec.path", *words)


@pytest.mark.parametrize(
    "text, seconds", [("90s", 90), ("5m", 300), ("2h", 7200), ("1h30m15s", 5415), ("0s", 0)]
)
def test_durations(text: str, seconds: int) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("interval", "1s", ("between 5s and 168h",)),
        ("interval", "169h", ("between 5s and 168h",)),
        ("interval", "999999h", ("between",)),
        ("interval", "1" * 40 + "s", ("not a duration",)),
        ("interval", "5 m", ("not a duration",)),
        ("interval", "1d", ("not a duration",)),
        ("interval", "", ("not a duration",)),
        ("interval", 60, ("string",)),
        ("timeout", "0s", ("between 1s and 24h",)),
        ("timeout", "25h", ("between 1s and 24h",)),
        ("timeout", "1m30", ("not a duration",)),
    ],
)
def test_bad_durations_are_refused(field: str, value: Any, words: tuple[str, ...]) -> None:
    assert_rejected(manifest(**{field: value}), f"spec.{field}", *words)


@pytest.mark.parametrize("field", ["prune", "wait", "suspend"])
@pytest.mark.parametrize("value", ["true", 1, None])
def test_switches_are_strict_booleans(field: str, value: Any) -> None:
    assert_rejected(manifest(**{field: value}), f"spec.{field}", "boolean")


@pytest.mark.parametrize(
    "depends_on, path, words",
    [
        ([{"name": "net"}, {"name": "net"}], "spec.dependsOn[1].name", ("listed twice",)),
        ([{"name": "infra"}], "spec.dependsOn[0].name", ("cannot depend on itself",)),
        ([{"name": "Net_1"}], "spec.dependsOn[0].name", ("DNS-1123",)),
        ([{"name": "net", "namespace": "other"}], "spec.dependsOn[0].namespace",
         ("unknown field",)),
        ([{"name": f"s{i}"} for i in range(65)], "spec.dependsOn", ("at most 64",)),
        ("net", "spec.dependsOn", ("list",)),
    ],
)  # fmt: skip
def test_bad_dependencies_are_refused(depends_on: Any, path: str, words: tuple[str, ...]) -> None:
    assert_rejected(manifest(dependsOn=depends_on), path, *words)


@pytest.mark.parametrize("field", ["credentialsRef", "webhookSecretRef"])
def test_secret_references_stay_in_the_namespace(field: str) -> None:
    assert_rejected(
        manifest(**{field: {"name": "creds", "namespace": "skybroker-system"}}),
        f"spec.{field}.namespace",
        "unknown field",
    )
    assert_rejected(manifest(**{field: {}}), f"spec.{field}.name", "required")
    assert_rejected(manifest(**{field: {"name": "Bad Name"}}), f"spec.{field}.name", "DNS-1123")


@pytest.mark.parametrize(
    "value, words", [("a user", ("printable",)), ("u" * 300, ("1-255",)), (5, ("string",))]
)
def test_bad_service_accounts_are_refused(value: Any, words: tuple[str, ...]) -> None:
    assert_rejected(manifest(serviceAccount=value), "spec.serviceAccount", *words)


def test_system_style_user_names_are_accepted() -> None:
    assert parse_object(manifest(serviceAccount="system:gitsource:acme:infra"))


def test_url_is_required_and_unknown_fields_are_refused() -> None:
    data = manifest()
    del data["spec"]["url"]
    assert_rejected(data, "spec.url", "required")
    assert_rejected(manifest(branch="main"), "spec.branch", "unknown field")


def test_status_is_phaseless_and_typed() -> None:
    data = manifest()
    data["status"] = {"phase": "Ready"}
    assert_rejected(data, "status.phase", "no life cycle")
    data["status"] = {"artifact": {"revision": "", "fetchedAt": "2026-01-01T00:00:00Z"}}
    assert_rejected(data, "status.artifact.revision", "at least 1")
    data["status"] = {"inventory": [{"kind": "Instance"}]}
    assert_rejected(data, "status.inventory[0].name", "required")


def test_contract_names() -> None:
    assert source_label_value("acme", "infra") == "acme.infra"
    assert [c.value for c in GitSourceCondition] == ["Ready", "Reconciling", "Stalled", "Healthy"]
    assert REQUESTED_AT_ANNOTATION == "gitops.skybroker.io/requested-at"
    assert SIGNATURE_HEADER == "X-Hub-Signature-256"
    assert WEBHOOK_SECRET_KEY == "webhookSecret"


SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(
    "text, ref",
    [
        ("main", {"branch": "main"}),
        ("refs/heads/release/1.x", {"branch": "release/1.x"}),
        ("tags/v1.2.0", {"tag": "v1.2.0"}),
        ("refs/tags/v1.2.0", {"tag": "v1.2.0"}),
        (SHA, {"commit": SHA}),
        (f"main@sha1:{SHA}", {"commit": SHA}),  # a revision as the status shows it
        (f"v1.2.0@sha1:{SHA}", {"commit": SHA}),
    ],
)
def test_a_revision_on_one_line_parses_to_one_ref(text: str, ref: dict[str, str]) -> None:
    assert GitRef.parse(text) == GitRef.model_validate(ref)


@pytest.mark.parametrize(
    "text, words",
    [
        ("", ("revision ''", "1-255 characters")),
        ("bad..ref", ("revision 'bad..ref'", "not a valid git branch or tag name")),
        ("main@sha1:abc", ("'abc' is not a commit",)),
        ("tags/", ("revision 'tags/'",)),
    ],
)
def test_a_bad_revision_says_what_is_wrong(text: str, words: tuple[str, ...]) -> None:
    with pytest.raises(ValueError) as caught:
        GitRef.parse(text)
    assert all(word in str(caught.value) for word in words), str(caught.value)
