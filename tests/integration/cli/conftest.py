"""skyctl over either backend: the same verbs must behave the same through the REST API and in
the ``--etcd`` admin mode (which runs the API server's own operations)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.store.embedded import EmbeddedEtcd
from controller.store.objects import Store
from tests.integration.cli.helpers import Skyctl, running_api_server, seed


@pytest.fixture(params=["http", "etcd"])
def any_backend(
    request: pytest.FixtureRequest,
    etcd_server: EmbeddedEtcd,
    key_prefix: str,
    store: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Skyctl]:
    """skyctl as the admin, through an API server or straight on etcd, over a seeded store."""
    monkeypatch.setenv("SKYCONFIG", str(tmp_path / "no-config.yaml"))
    if request.param == "etcd":
        seed(store)
        yield Skyctl(("--etcd", etcd_server.endpoint, "--etcd-prefix", key_prefix))
        return
    with running_api_server(store, tmp_path) as server:
        yield Skyctl(("--server", server.url, "--token", "admin-token"))


#: The GitSource the sync and diff tests ask things of (played reconcilers answer them).
GITSOURCE = """\
apiVersion: skybroker.io/v1alpha1
kind: GitSource
metadata: {name: infra, namespace: acme}
spec: {url: "https://git.example.com/infra.git"}
"""


@pytest.fixture
def with_gitsource(any_backend: Skyctl, tmp_path: Path) -> Skyctl:
    """``any_backend`` once GitSource ``acme/infra`` is applied."""
    manifest = tmp_path / "gitsource.yaml"
    manifest.write_text(GITSOURCE)
    applied = any_backend("apply", "-f", str(manifest))
    assert applied.code == 0, applied.err
    return any_backend
