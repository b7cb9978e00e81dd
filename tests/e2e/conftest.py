"""Fixtures of the end-to-end tests: real OS processes, always reaped."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.e2e.up import start_up

__all__ = ["processes", "start_up"]


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Append every process a test starts; the ones still alive are killed at the end."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
