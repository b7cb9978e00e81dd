"""skyctl over both backends: what admission refuses about namespaces and images."""

from __future__ import annotations

from pathlib import Path

from api_types import Instance
from controller.store.objects import Store
from tests.integration.cli.helpers import Skyctl, write_manifest


def test_apply_into_a_missing_namespace_is_refused_naming_it(
    any_backend: Skyctl, store: Store, tmp_path: Path
) -> None:
    manifest = write_manifest(tmp_path / "web.yaml")
    manifest.write_text(manifest.read_text().replace("namespace: acme", "namespace: ghost"))
    applied = any_backend("apply", "-f", str(manifest))
    assert applied.code == 1
    assert 'instance.skybroker.io/web-1: namespaces "ghost" not found' in applied.err
    assert store.list(Instance, "ghost").items == []
    # with its Namespace first in the same file, the same manifest applies
    manifest.write_text(
        "apiVersion: skybroker.io/v1alpha1\nkind: Namespace\nmetadata: {name: ghost}\n---\n"
        + manifest.read_text()
    )
    again = any_backend("apply", "-f", str(manifest))
    assert again.code == 0, again.err
    assert [i.metadata.name for i in store.list(Instance, "ghost").items] == ["web-1"]


def test_apply_of_an_unmapped_image_names_spec_image(any_backend: Skyctl, tmp_path: Path) -> None:
    applied = any_backend("apply", "-f", str(write_manifest(tmp_path / "w.yaml", image="beos")))
    assert applied.code == 1
    assert "spec.image: image 'beos' is not mapped by any member account of pool" in applied.err
