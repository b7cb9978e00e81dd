"""``skybroker up`` as an operator runs it: its embedded etcd dies with it, an orphan is cleaned,
a data dir in use is refused at once.

Real processes throughout: ``up`` is started with ``python -m skybroker``, killed with SIGKILL as
an OOM killer or a supervisor would, and the etcd it started is looked at through ``/proc``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from api_types import Namespace
from controller.store.embedded import EmbeddedEtcd
from controller.store.etcd import EtcdClient
from controller.store.keys import KeyLayout
from controller.store.objects import Store
from tests.e2e.up import DEADLINE, ROOT, Up, eventually_within, free_port, running

pytestmark = pytest.mark.slow
ORPHAN_NOTICE = "stopped an orphaned etcd"


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
    assert running(etcd_pid)

    first.process.send_signal(signal.SIGKILL)
    first.process.wait(timeout=30)
    eventually_within(
        lambda: not running(etcd_pid), f"etcd (pid {etcd_pid}) gone after up's SIGKILL"
    )

    second = start_up(data_dir)
    second.wait_ready()
    answer = httpx.get(f"{second.url}{ROOT}/namespaces/kept", headers=second.headers())
    assert answer.status_code == 200, answer.text
    assert ORPHAN_NOTICE not in second.output()
    second.process.send_signal(signal.SIGTERM)
    assert second.process.wait(timeout=30) == 0, second.output()
    assert not running(second.etcd_pid())


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
        assert not running(orphan.pid)
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
         "--listen", f"127.0.0.1:{free_port()}", "--health-listen", ""],
        capture_output=True, text=True, timeout=DEADLINE,
    )  # fmt: skip
    assert second.returncode == 1
    assert second.stderr.strip().splitlines() == [
        f"skybroker up: data dir {data_dir} is in use by pid {first.process.pid}"
    ]
    assert first.process.poll() is None and running(etcd_pid)
    assert httpx.get(f"{first.url}/readyz", timeout=5).status_code == 200
