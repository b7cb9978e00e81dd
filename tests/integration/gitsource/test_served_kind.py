"""GitSource through the generic machinery: the REST API stores and validates it, skyctl
applies it, lists it with ``get gs`` (URL, REVISION, READY, AGE) and explains it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from api_types import Condition, ConditionStatus, GitArtifact, GitSource
from controller.store.objects import Store
from tests.integration.cli.helpers import Skyctl, running_api_server

SHA = "0123456789abcdef0123456789abcdef01234567"
MANIFEST = """\
apiVersion: skybroker.io/v1alpha1
kind: GitSource
metadata: {name: infra, namespace: acme}
spec:
  url: git://127.0.0.1:9418/infra.git
  ref: {branch: main}
  path: envs/prod
  prune: true
"""


def test_gitsources_are_served_listed_and_explained(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SKYCONFIG", str(tmp_path / "no-config.yaml"))
    manifest = tmp_path / "infra.yaml"
    manifest.write_text(MANIFEST)
    with running_api_server(store, tmp_path) as server:
        skyctl = Skyctl(("--server", server.url, "--token", "admin-token"))
        assert skyctl("apply", "-f", str(manifest)).code == 0

        listed = skyctl("get", "gs", "-n", "acme")
        assert listed.code == 0, listed.err
        header, row = listed.out.splitlines()
        assert header.split() == ["NAME", "URL", "REVISION", "READY", "AGE"]
        assert row.split()[:4] == ["infra", "git://127.0.0.1:9418/infra.git", "<none>", "<none>"]

        source = store.get(GitSource, "infra", "acme")
        source.status.artifact = GitArtifact(
            revision=f"main@sha1:{SHA}", fetched_at=datetime.now(UTC)
        )
        source.status.conditions = [Condition(type="Ready", status=ConditionStatus.TRUE)]
        store.update_status(source)
        row = skyctl("get", "gitsources", "-n", "acme").out.splitlines()[1]
        assert row.split()[2:4] == [f"main@sha1:{SHA}", "True"]

        manifest.write_text(MANIFEST.replace("{branch: main}", "{branch: main, tag: v1}"))
        refused = skyctl("apply", "-f", str(manifest))
        assert refused.code != 0 and "spec.ref.tag" in refused.err

        explained = skyctl("explain", "gs.spec.ref")
        assert explained.code == 0 and "commit" in explained.out
