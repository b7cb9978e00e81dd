"""``skybroker up`` as an operator runs it: its embedded etcd dies with it, an orphan is cleaned,
a data dir in use is refused at once.

Real processes throughout: ``up`` is started with ``python -m skybroker``, killed with SIGKILL as
an OOM killer or a supervisor would, and the etcd it started is looked at through ``/proc``.
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

from api_types import Namespace
from controller.store.embedded import EmbeddedEtcd
from controller.store.etcd import EtcdClient
from controller.store.keys import KeyLayout
from controller.store.objects import Store

pytestmark = pytest.mark.slow
ROOT = "/apis/skybroker.io/v1alpha1"
DEADLINE = 60.0  # seconds; generous for a loaded 2-core machine
ORPHAN_NOTICE = "stopped an orphaned etcd"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _running(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie waiting to be reaped is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _eventually(condition: Callable[[], bool], what: str) -> None:
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
        self.url = f"http://127.0.0.1:{_port()}"
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

        _eventually(ready, f"{self.url} ready")

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


def test_a_killed_up_takes_its_etcd_along_and_the_next_up_serves_the_same_data(
    tmp_path: Path, start_up: Callable[[Path], Up]
) -> None:
    data_dir = tmp_path / "data"
    first = start_up(data_dir)
    first.wait_ready()
    namespace = {"kind": "Namespace", "metadata": {"name": "kept"}}
    created = httpx.post(f"{first.url}{ROOT}/namespaces", json=namespace, headers=first.headers())
    assert created.status_code == 201, created.text
    etcd_pid = first.etcd_pid()
    assert _running(etcd_pid)

    first.process.send_signal(signal.SIGKILL)
    first.process.wait(timeout=30)
    _eventually(lambda: not _running(etcd_pid), f"etcd (pid {etcd_pid}) gone after up's SIGKILL")

    second = start_up(data_dir)
    second.wait_ready()
    answer = httpx.get(f"{second.url}{ROOT}/namespaces/kept", headers=second.headers())
    assert answer.status_code == 200, answer.text
    assert ORPHAN_NOTICE not in second.output()
    second.process.send_signal(signal.SIGTERM)
    assert second.process.wait(timeout=30) == 0, second.output()
    assert not _running(second.etcd_pid())


def test_up_stops_an_orphaned_etcd_of_its_data_dir_and_carries_on(
    tmp_path: Path, start_up: Callable[[Path], Up]
) -> None:
    """An etcd left running on D (by an older version, or where no parent-death signal exists)
    is stopped by the next ``up`` on D, which says so and serves what that etcd held."""
    data_dir = tmp_path / "data"
    orphan = EmbeddedEtcd(data_dir=data_dir)
    orphan.start()
    try:
        assert orphan.pid is not None
        assert (data_dir / "etcd.pid").read_text().strip() == str(orphan.pid)
        client = EtcdClient([orphan.endpoint])
        Store(client, KeyLayout("/skybroker")).create(
            Namespace.model_validate({"metadata": {"name": "from-the-orphan"}})
        )
        client.close()

        up = start_up(data_dir)
        up.wait_ready()
        assert not _running(orphan.pid)
        notices = [line for line in up.output().splitlines() if ORPHAN_NOTICE in line]
        assert len(notices) == 1 and str(orphan.pid) in notices[0], up.output()
        answer = httpx.get(f"{up.url}{ROOT}/namespaces/from-the-orphan", headers=up.headers())
        assert answer.status_code == 200, answer.text
    finally:
        orphan.stop()


def test_a_pid_file_naming_another_process_is_left_alone(
    tmp_path: Path, start_up: Callable[[Path], Up]
) -> None:
    """A stale etcd.pid whose pid now belongs to an unrelated process: that process lives."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        (data_dir / "etcd.pid").write_text(f"{bystander.pid}\n")
        up = start_up(data_dir)
        up.wait_ready()
        assert bystander.poll() is None
        assert ORPHAN_NOTICE not in up.output()
    finally:
        bystander.kill()
        bystander.wait()


def test_a_second_up_on_a_data_dir_in_use_fails_at_once_with_one_line(
    tmp_path: Path, start_up: Callable[[Path], Up]
) -> None:
    data_dir = tmp_path / "data"
    first = start_up(data_dir)
    first.wait_ready()
    etcd_pid = first.etcd_pid()
    second = subprocess.run(
        [sys.executable, "-m", "skybroker", "up", "--data-dir", str(data_dir),
         "--listen", f"127.0.0.1:{_port()}", "--health-listen", ""],
        capture_output=True, text=True, timeout=DEADLINE,
    )  # fmt: skip
    assert second.returncode == 1
    assert second.stderr.strip().splitlines() == [
        f"skybroker up: data dir {data_dir} is in use by pid {first.process.pid}"
    ]
    assert first.process.poll() is None and _running(etcd_pid)
    assert httpx.get(f"{first.url}/readyz", timeout=5).status_code == 200
