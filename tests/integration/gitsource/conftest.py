"""Fixtures of the GitOps tests: an origin repository, the servers of ``tests.gitservers``
(file://, git://, smart HTTP with and without basic auth), and ``gitops`` — the reconciler
harness running the scenario of ``tests.integration.gitsource.scenario``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gitservers import (
    PASSWORD,
    REPO_PATH,
    USER,
    Origin,
    Served,
    ServerLog,
    closed_port,
    git_daemon,
    http_server,
)
from tests.integration.gitsource.scenario import gitops_running
from tests.integration.reconcilers.harness import Harness, harness

__all__ = [
    "PASSWORD",
    "REPO_PATH",
    "USER",
    "Origin",
    "Served",
    "ServerLog",
    "cache_dir",
    "closed_port",
    "counted",
    "git_daemon",
    "gitops",
    "harness",
    "http_server",
    "origin",
    "served",
]


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    return Origin(tmp_path / "origin.git")


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture(params=["file", "git", "http", "http+auth"])
def served(request: pytest.FixtureRequest, origin: Origin) -> Iterator[Served]:
    """The origin on each transport (``log`` is None for file://: no server to count)."""
    if request.param == "file":
        yield Served("file", f"file://{origin.path}", origin, None)
    elif request.param == "git":
        with git_daemon(origin) as served:
            yield served
    else:
        with http_server(origin, basic_auth=request.param == "http+auth") as served:
            yield served


@pytest.fixture(params=["git", "http"])
def counted(request: pytest.FixtureRequest, origin: Origin) -> Iterator[Served]:
    """The origin on the transports whose server counts round trips."""
    with (git_daemon if request.param == "git" else http_server)(origin) as served:
        yield served


@pytest.fixture
def gitops(harness: Harness, tmp_path: Path) -> Iterator[Harness]:
    with gitops_running(harness, tmp_path / "git-cache") as running:
        yield running
