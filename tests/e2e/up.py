"""``skybroker up`` run as an operator runs it, for the end-to-end tests: a real process on a
data dir, its output in a file beside the test, the admin token its data dir holds.

``start_up`` is the fixture that starts them and stops (SIGTERM) and reaps whatever is left.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

__all__ = ["DEADLINE", "ROOT", "Up", "eventually_within", "free_port", "running", "start_up"]

ROOT = "/apis/skybroker.io/v1alpha1"
DEADLINE = 60.0  # seconds; generous for a loaded 2-core machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def running(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie waiting to be reaped is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def eventually_within(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {DEADLINE}s: {what}")


class Up:
    """One ``skybroker up`` process on a data dir, its output in a file beside the test."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.data_dir = data_dir
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = log
        command = [
            sys.executable, "-m", "skybroker", "--log-level", "warning", "up",
            "--data-dir", str(data_dir), "--listen", self.url.removeprefix("http://"),
            "--health-listen", "",
        ]  # fmt: skip
        with open(log, "wb") as output:
            self.process = subprocess.Popen(
                command,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.process.poll() is None, f"up exited:\n{self.output()}"
            try:
                return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        eventually_within(ready, f"{self.url} ready")

    def headers(self) -> dict[str, str]:
        config = yaml.safe_load((self.data_dir / "skyctl.yaml").read_text())
        return {"Authorization": f"Bearer {config['contexts'][0]['token']}"}

    def etcd_pid(self) -> int:
        return int(json.loads((self.data_dir / "endpoints.json").read_text())["pid"])


@pytest.fixture
def start_up(tmp_path: Path) -> Iterator[Callable[[Path], Up]]:
    """Start ``up`` processes; any still alive at the end are stopped (SIGTERM) and reaped."""
    started: list[Up] = []

    def start(data_dir: Path) -> Up:
        up = Up(data_dir, tmp_path / f"up-{len(started)}.log")
        started.append(up)
        return up

    yield start
    for up in started:
        if up.process.poll() is None:
            up.process.send_signal(signal.SIGTERM)
        try:
            up.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            up.process.kill()
            up.process.wait()
