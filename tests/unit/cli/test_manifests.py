"""skyctl manifest loading: multi-document YAML, directories, stdin, Lists, hostile input."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from controller.apply.manifests import ManifestError, load_manifests

DOC = "apiVersion: skybroker.io/v1alpha1\nkind: HardwareProfile\nmetadata: {{name: {name}}}\n"


def names(manifests: list) -> list[str]:
    return [m.obj["metadata"]["name"] for m in manifests]


def test_multi_document_file_skips_empty_documents(tmp_path: Path) -> None:
    path = tmp_path / "all.yaml"
    path.write_text("# header\n---\n" + DOC.format(name="a") + "---\n---\n" + DOC.format(name="b"))
    loaded = load_manifests([str(path)])
    assert names(loaded) == ["a", "b"]
    assert "document 2" in loaded[1].source


def test_directory_in_name_order_and_recursion_only_with_flag(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(DOC.format(name="b"))
    (tmp_path / "a.yml").write_text(DOC.format(name="a"))
    (tmp_path / "notes.txt").write_text("not a manifest")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.json").write_text(
        '{"apiVersion": "skybroker.io/v1alpha1", "kind": "HardwareProfile",'
        ' "metadata": {"name": "c"}}'
    )
    assert names(load_manifests([str(tmp_path)])) == ["a", "b"]
    assert names(load_manifests([str(tmp_path)], recursive=True)) == ["a", "b", "c"]


def test_stdin_and_list_documents() -> None:
    text = (
        "kind: List\nitems:\n"
        "  - {kind: HardwareProfile, metadata: {name: x}}\n"
        "  - {kind: HardwareProfile, metadata: {name: y}}\n"
    )
    loaded = load_manifests(["-"], stdin=io.BytesIO(text.encode()))
    assert names(loaded) == ["x", "y"]


def test_yaml_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    bomb = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for level in "bcdefghi":
        previous = chr(ord(level) - 1)
        bomb += f"{level}: &{level} [*{previous},*{previous},*{previous},*{previous}]\n"
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb)
    with pytest.raises(ManifestError, match="aliases expand the document to more than"):
        load_manifests([str(path)])
    path.write_text("a: &a [1, *a]\n")  # an alias inside its own anchor: endless
    with pytest.raises(ManifestError, match="its own ancestor"):
        load_manifests([str(path)])


def test_ordinary_anchors_aliases_and_merge_keys_load_as_independent_copies(
    tmp_path: Path,
) -> None:
    path = tmp_path / "anchors.yaml"
    path.write_text(  # anchors live within one document (YAML's rule): a List of two
        "kind: List\n"
        "items:\n"
        "  - kind: HardwareProfile\n"
        "    metadata: {name: x, labels: &labels {app: web, tier: front}}\n"
        "    spec: &base {cpu: {min: 1}, memoryMiB: {min: 512}}\n"
        "  - kind: HardwareProfile\n"
        "    metadata: {name: y, labels: *labels}\n"
        "    spec:\n"
        "      <<: *base\n"
        "      memoryMiB: {min: 2048}\n"
    )
    x, y = (m.obj for m in load_manifests([str(path)]))
    assert y["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert y["spec"] == {"cpu": {"min": 1}, "memoryMiB": {"min": 2048}}
    y["spec"]["cpu"]["min"] = 4  # the alias gave a copy, not the anchor's object
    assert x["spec"]["cpu"] == {"min": 1}


def test_deep_nesting_missing_files_and_non_mappings(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text('{"a":' * 100 + "1" + "}" * 100)
    with pytest.raises(ManifestError, match="deeper"):
        load_manifests([str(deep)])
    with pytest.raises(ManifestError, match="no such file"):
        load_manifests([str(tmp_path / "absent.yaml")])
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(ManifestError, match="mapping"):
        load_manifests([str(scalar)])
