"""Checkout.manifests: which files, in which order, under which path, within which limits —
read from the cache's object store of a real fetch (no working tree)."""

from __future__ import annotations

from pathlib import Path

import pytest

from api_types.gitops import GitRef
from controller.errors import TerminalError
from reconcilers.gitsource import (
    Checkout,
    ManifestLimitExceeded,
    ManifestLimits,
    PathNotFound,
    fetch,
)
from tests.gitservers import Origin

TREE = {
    "b.yaml": b"b",
    "a.yml": b"a",
    "c.json": b"{}",
    "z/d.yaml": b"d",
    "a/b/c.yaml": b"c",
    "notes.txt": b"not a manifest",
    "README.md": b"# not a manifest",
    "old.yaml.bak": b"not a manifest",
    "envs/prod/web.yaml": b"web",
    "envs/prod/net/subnet.yml": b"subnet",
    "envs/staging/web.yaml": b"staging",
}


@pytest.fixture
def checkout(origin: Origin, cache_dir: Path) -> Checkout:
    origin.commit(TREE, symlinks={"link.yaml": "b.yaml", "envs/prod/up.yaml": "../../b.yaml"})
    return fetch(f"file://{origin.path}", GitRef(branch="main"), None, cache_dir)


def test_yaml_yml_and_json_files_in_path_order(checkout: Checkout) -> None:
    assert [name for name, _ in checkout.manifests()] == [
        "a.yml",
        "a/b/c.yaml",
        "b.yaml",
        "c.json",
        "envs/prod/net/subnet.yml",
        "envs/prod/web.yaml",
        "envs/staging/web.yaml",
        "z/d.yaml",
    ]
    assert dict(checkout.manifests())["a/b/c.yaml"] == b"c"


@pytest.mark.parametrize("path", ["envs/prod", "./envs/prod/", "envs//prod", "envs/./prod"])
def test_a_path_selects_a_directory_recursively(checkout: Checkout, path: str) -> None:
    assert list(checkout.manifests(path)) == [
        ("envs/prod/net/subnet.yml", b"subnet"),
        ("envs/prod/web.yaml", b"web"),
    ]


@pytest.mark.parametrize("path", [None, ".", "", "/"])
def test_no_path_is_the_root(checkout: Checkout, path: str | None) -> None:
    assert len(list(checkout.manifests(path))) == 8


@pytest.mark.parametrize(
    "path, words",
    [
        ("envs/dev", "envs/dev is no directory"),
        ("envs/prod/web.yaml", "envs/prod/web.yaml is no directory"),
        ("link.yaml", "link.yaml is no directory"),
        ("envs/../..", "must not contain '..'"),
    ],
)
def test_a_path_that_is_no_directory_is_terminal(checkout: Checkout, path: str, words: str) -> None:
    with pytest.raises(PathNotFound) as missing:
        list(checkout.manifests(path))
    assert isinstance(missing.value, TerminalError) and missing.value.reason == "PathNotFound"
    assert words in str(missing.value) and str(checkout.revision) in str(missing.value)


def test_too_many_files_fail_before_the_first_is_read(checkout: Checkout) -> None:
    reading = checkout.manifests(limits=ManifestLimits(max_files=7))
    with pytest.raises(ManifestLimitExceeded, match="8 manifest files under the root; the limit"):
        next(reading)
    assert len(list(checkout.manifests(limits=ManifestLimits(max_files=8)))) == 8


def test_a_file_too_large_is_named(origin: Origin, cache_dir: Path) -> None:
    origin.commit({"a.yaml": b"x" * 10, "big.yaml": b"x" * 11})
    checkout = fetch(f"file://{origin.path}", GitRef(branch="main"), None, cache_dir)

    with pytest.raises(ManifestLimitExceeded) as too_big:
        list(checkout.manifests(limits=ManifestLimits(max_file_bytes=10)))

    assert "big.yaml is 11 bytes; the limit is 10" in str(too_big.value)
    assert too_big.value.reason == "ManifestLimitExceeded"
    with pytest.raises(ManifestLimitExceeded, match="exceed 20 bytes in all"):
        list(checkout.manifests(limits=ManifestLimits(max_total_bytes=20)))
    assert len(list(checkout.manifests(limits=ManifestLimits(max_file_bytes=11)))) == 2


def test_reading_needs_no_working_tree(checkout: Checkout) -> None:
    assert not (checkout.repository / "b.yaml").exists()
    assert list(checkout.repository.rglob("*.yaml")) == []
