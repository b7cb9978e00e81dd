"""``skybroker apiserver`` and ``skybroker up`` as real processes: serve, authenticate, stop."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from controller.store.embedded import EmbeddedEtcd
from controller.store.encryption import SecretCipher, write_key_file
from controller.store.etcd import EtcdClient

pytestmark = pytest.mark.slow
ROOT = "/apis/skybroker.io/v1alpha1"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never became ready")


def _stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=20)


def test_apiserver_command(etcd_server: EmbeddedEtcd, key_prefix: str, tmp_path: Path) -> None:
    tokens, key_file = tmp_path / "tokens.csv", tmp_path / "enc.key"
    tokens.write_text('tok-1,root,1,"system:masters"\n')
    write_key_file(key_file)
    port = _port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "skybroker", "apiserver", "--etcd-endpoints", etcd_server.endpoint,
        "--listen", f"127.0.0.1:{port}", "--token-file", str(tokens),
        "--encryption-key-file", str(key_file), "--prefix", key_prefix,
    ]  # fmt: skip
    process = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        _wait_ready(url, process)
        headers = {"Authorization": "Bearer tok-1"}
        assert httpx.get(f"{url}{ROOT}/namespaces", headers=headers).status_code == 200
        assert httpx.get(f"{url}{ROOT}/namespaces").status_code == 401
        namespace = {"kind": "Namespace", "metadata": {"name": "ops"}}
        assert httpx.post(f"{url}{ROOT}/namespaces", json=namespace, headers=headers).is_success
        secret = {"kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "plain-value"}}
        created = httpx.post(f"{url}{ROOT}/namespaces/ops/secrets", json=secret, headers=headers)
        assert created.status_code == 201, created.text
        client = EtcdClient([etcd_server.endpoint])
        raw = bytes(client.range(f"{key_prefix}/registry/secrets/ops/s".encode()).kvs[0].value)
        client.close()
        assert SecretCipher.is_sealed(raw) and b"plain-value" not in raw
        assert SecretCipher.from_file(key_file).open(raw, b"secrets/ops/s").startswith(b"{")
    finally:
        # uvicorn shuts down gracefully, then re-raises the signal it caught (conventional)
        assert _stop(process) in (0, -signal.SIGTERM)


def test_up_writes_an_admin_skyctl_config(tmp_path: Path) -> None:
    port = _port()
    command = [
        sys.executable, "-m", "skybroker", "up", "--data-dir", str(tmp_path / "data"),
        "--listen", f"127.0.0.1:{port}", "--health-listen", "",
    ]  # fmt: skip
    process = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        _wait_ready(f"http://127.0.0.1:{port}", process)
        config = yaml.safe_load((tmp_path / "data" / "skyctl.yaml").read_text())
        context = next(c for c in config["contexts"] if c["name"] == config["current-context"])
        assert context["server"] == f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {context['token']}"}
        answer = httpx.get(f"{context['server']}{ROOT}/namespaces", headers=headers)
        assert answer.status_code == 200, answer.text
        assert (tmp_path / "data" / "skyctl.yaml").stat().st_mode & 0o077 == 0
        key = (tmp_path / "data" / "encryption.key").read_text().strip()
        assert len(base64.b64decode(key)) == 32
    finally:
        _stop(process)
